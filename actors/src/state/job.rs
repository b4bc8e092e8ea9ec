//! A message on its way through the actors: the message, its failover chain,
//! how many attempts it has had, and the lease it is worked under (every
//! outcome of the job carries that lease as its fence).

use std::sync::Arc;

use msgengine_domain::lifecycle::Outcome;
use msgengine_domain::message::OutboundMessage;
use msgengine_domain::ProviderId;
use msgengine_storage::repo::messages::{LeaseFence, OutcomeRow};

/// One message being delivered.
#[derive(Debug, Clone)]
pub struct Job {
    pub message: Arc<OutboundMessage>,
    /// Providers to try, in order (from the router policy).
    pub chain: Arc<[ProviderId]>,
    /// Index in `chain` of the provider now responsible.
    pub position: usize,
    /// Attempts made on the current provider.
    pub attempts_on_provider: u32,
    /// Attempts made in all (including earlier leases, from the database).
    pub total_attempts: u32,
    /// The lease this node holds on the message (owner and token).
    pub lease: LeaseFence,
}

impl Job {
    /// The provider now responsible, if the chain is not exhausted.
    pub fn provider(&self) -> Option<ProviderId> {
        self.chain.get(self.position).copied()
    }

    /// Moves to the next provider of the chain; false when there is none.
    pub fn fail_over(&mut self) -> bool {
        self.position += 1;
        self.attempts_on_provider = 0;
        self.position < self.chain.len()
    }

    /// An outcome of this job, fenced by its lease, for the status writer.
    pub fn outcome(&self, outcome: Outcome) -> OutcomeRow {
        OutcomeRow {
            id: self.message.id,
            outcome,
            fence: Some(self.lease),
        }
    }

    /// The idempotency key sent to providers: stable for a message across
    /// retries, failovers and restarts.
    pub fn idempotency_key(&self) -> String {
        self.message.id.to_string()
    }
}

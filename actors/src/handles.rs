//! The narrow handles the actors get instead of one shared engine context:
//! [`Outcomes`] (queue an outcome for the status writer) and [`Reroute`]
//! (hand a job on to another provider). They sit below every actor, so a
//! provider actor depends on them and never on the router or dispatch.

use std::sync::Arc;

use chrono::Utc;
use futures::future::BoxFuture;
use msgengine_domain::lifecycle::Outcome;
use msgengine_storage::repo::messages::OutcomeRow;

use crate::state::job::Job;
use crate::writers::outcome::OutcomeWriter;

/// Queues outcomes without waiting: the writer applies backpressure by its
/// channel; if it is full, a task waits instead of the caller.
#[derive(Clone)]
pub struct Outcomes {
    writer: OutcomeWriter,
}

impl Outcomes {
    pub fn new(writer: OutcomeWriter) -> Self {
        Self { writer }
    }

    /// Queues one outcome.
    pub fn submit(&self, row: OutcomeRow) {
        let writer = self.writer.clone();
        if let Some(row) = writer.try_submit(row) {
            actix::spawn(async move { writer.submit(row).await });
        }
    }

    /// A job with no provider left: it fails (`no_provider`).
    pub fn fail_unroutable(&self, job: &Job) {
        crate::metrics::record_failed(job.message.channel, "none", "no_provider", 1);
        let outcome = Outcome::unroutable(job.message.channel, Utc::now());
        self.submit(job.outcome(outcome));
    }

    /// Gives jobs back to the database, due again in a second (lease released).
    pub fn defer(&self, jobs: Vec<Job>, why: &str) {
        let at = Utc::now() + chrono::Duration::seconds(1);
        for job in jobs {
            let outcome = Outcome::deferred(why, job.provider(), at, Utc::now());
            self.submit(job.outcome(outcome));
        }
    }

    /// Gives a job of a disabled organization back to the database, due at
    /// once: the claim leaves it alone until the organization is enabled.
    pub fn hand_back(&self, job: &Job, why: &str) {
        let now = Utc::now();
        self.submit(job.outcome(Outcome::deferred(why, None, now, now)));
    }

    /// The recipient is suppressed: the job ends `rejected`.
    pub fn reject_suppressed(&self, job: &Job, reason: &str) {
        crate::metrics::record_failed(job.message.channel, "none", "suppressed", 1);
        self.submit(job.outcome(Outcome::suppressed(reason, Utc::now())));
    }
}

/// How a provider actor hands jobs on: implemented by dispatch, which knows
/// the routes; the provider actor only knows this trait.
pub trait Reroute: Send + Sync + 'static {
    /// Re-plans jobs whose provider went away (their leases stay held).
    fn reroute(self: Arc<Self>, jobs: Vec<Job>) -> BoxFuture<'static, ()>;

    /// Hands jobs to their current provider's actor (after a failover).
    fn deliver(&self, jobs: Vec<Job>);
}

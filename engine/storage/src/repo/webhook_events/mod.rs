//! Provider events received through verified webhooks: recorded once
//! (replays change nothing), applied to their message as the caller's
//! [`Decide`] says (the engine passes the domain's
//! `lifecycle::merge_reports`: the state a group reaches, never backwards,
//! and the history entries; storage only executes it), and kept until
//! matched when the message is not known yet.
//!
//! Late matching is fair between organizations and bounded: each round
//! ([`retry_unmatched`]) visits the organizations with open events in random
//! order and takes at most a quota of each one's newest, within a total; an
//! event still unmatched after the matching window is closed (`closed_at`)
//! and leaves the scan, and an event that names no message at all (an
//! opt-out reply) is closed as it is recorded. Suppressions an event asks for
//! do not depend on a match: the webhook writer adds them with the events.

mod apply;
mod insert;
mod late;

use chrono::{DateTime, Utc};
use msgengine_domain::lifecycle::ProviderReport;
use msgengine_domain::message::{MessageEvent, MessageState};
use msgengine_domain::{OrganizationId, ProviderId};
use uuid::Uuid;

pub use late::{retry_unmatched, unmatched, LateLimits, LateRound};

use self::apply::{apply, Fresh};
use self::insert::insert_events;
use crate::error::StoreError;

/// What the reports of one message decide, given by the caller (the
/// lifecycle lives in the domain, not here): the state they reach, if the
/// message moves, and the history entries to append. The engine passes
/// `msgengine_domain::lifecycle::merge_reports`.
pub type Decide = fn(
    ProviderId,
    &[ProviderReport<'_>],
    DateTime<Utc>,
) -> (Option<MessageState>, Vec<MessageEvent>);

/// One event to record (the storage shape of the providers crate's
/// `WebhookEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub event_id: String,
    pub provider_message_id: Option<String>,
    pub message_id: Option<Uuid>,
    pub state: Option<MessageState>,
    /// `opened`, `clicked`, `complained`, `unsubscribed`, `deferred`.
    pub engagement: Option<String>,
    pub raw_status: String,
    pub recipient: Option<String>,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    /// `bounce`, `complaint`, `unsubscribe`.
    pub suppress: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

impl EventRow {
    /// The event as the lifecycle reads a provider's report.
    pub fn report(&self) -> ProviderReport<'_> {
        ProviderReport {
            state: self.state,
            engagement: self.engagement.as_deref(),
            raw_status: &self.raw_status,
            reason: self.reason.as_deref(),
            error_code: self.error_code.as_deref(),
            occurred_at: self.occurred_at,
        }
    }
}

/// A message's state as an applied event group found and left it (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub message_id: Uuid,
    pub from: MessageState,
    pub to: MessageState,
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events seen for the first time.
    pub recorded: usize,
    /// Events already recorded (replays): nothing changed.
    pub duplicates: usize,
    /// New events applied to a message.
    pub applied: usize,
    /// New events whose message is not known (yet): kept for later.
    pub unmatched: usize,
    /// The state of each message the new events were applied to, before and after.
    pub transitions: Vec<Transition>,
}

/// One webhook request's events, for [`ingest_many`].
#[derive(Debug, Clone, Copy)]
pub struct IngestJob<'a> {
    pub org: OrganizationId,
    pub provider: ProviderId,
    pub events: &'a [EventRow],
}

/// Records `events` of one provider connection and applies the new ones as
/// `decide` says, in the caller's transaction.
pub async fn ingest(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrganizationId,
    provider: ProviderId,
    events: &[EventRow],
    decide: Decide,
) -> Result<Ingested, StoreError> {
    let mut out = ingest_many(
        tx,
        &[IngestJob {
            org,
            provider,
            events,
        }],
        decide,
    )
    .await?;
    Ok(out.pop().unwrap_or_default())
}

/// Records the events of many webhook requests and applies the new ones as
/// `decide` says, in the caller's transaction, with a fixed number of statements whatever the
/// number of requests and events (one multi-row insert, one update per kind
/// of message reference, one mark, one outbound enqueue). The answer has one
/// [`Ingested`] per job, in order. An event that appears twice (a replay, or
/// the same event in two requests of the group) counts as new for the first
/// job that carries it and as a duplicate for the others.
pub async fn ingest_many(
    tx: &deadpool_postgres::Transaction<'_>,
    jobs: &[IngestJob<'_>],
    decide: Decide,
) -> Result<Vec<Ingested>, StoreError> {
    let mut out = vec![Ingested::default(); jobs.len()];
    let total: usize = jobs.iter().map(|j| j.events.len()).sum();
    if total == 0 {
        return Ok(out);
    }
    // Claimed by the first job that carries them.
    let mut unclaimed = insert_events(tx, jobs, total).await?;
    let mut fresh: Vec<Fresh<'_>> = Vec::with_capacity(total);
    for (job_index, job) in jobs.iter().enumerate() {
        for e in job.events {
            let new = unclaimed
                .get_mut(&job.provider.0)
                .is_some_and(|ids| ids.remove(e.event_id.as_str()));
            if new {
                fresh.push(Fresh {
                    job: job_index,
                    org: job.org,
                    provider: job.provider,
                    event: e,
                });
                out[job_index].recorded += 1;
            } else {
                out[job_index].duplicates += 1;
            }
        }
    }
    let applied = apply(tx, &fresh, decide).await?;
    for (group, transition) in applied {
        let first = group.first().map_or(0, |f| f.job);
        out[first].transitions.push(transition);
        for f in group {
            out[f.job].applied += 1;
        }
    }
    for o in &mut out {
        o.unmatched = o.recorded - o.applied;
    }
    Ok(out)
}

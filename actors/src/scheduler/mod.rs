//! The scheduler: claims due messages nobody holds — scheduled messages whose
//! time has come, retries left to the database, and messages whose lease
//! expired because their node died — with `FOR UPDATE SKIP LOCKED`, leases
//! them to this node under a new token and dispatches them. A claim takes at
//! most [`CLAIM_BATCH`] rows, [`CLAIM_PER_ORG`] of one organization (visited
//! in random order, so every tenant's backlog moves in every claim) and
//! [`crate::EngineConfig::claim_max_bytes`] of content, and skips disabled
//! organizations; while the node holds `max_held_jobs`, only a fair trickle. A message's lifetime counts
//! from its `sendAt` when it has one (from its creation otherwise). It also
//! refreshes the organizations' active flags and expires old idempotency
//! keys. Lease renewal runs on its own task ([`crate::state::lease::run_renewal`]),
//! so a slow claim never delays it.

pub mod dispatch;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use msgengine_domain::lifecycle::Outcome;
use msgengine_storage::repo::messages::{self, ClaimedMessage, OutcomeRow};

use msgengine_storage::driver::deadpool_postgres::Pool;

use crate::config::EngineConfig;
use crate::scheduler::dispatch::{Dispatcher, Leased};

/// What the scheduler uses: the settings, the store, and dispatch (whose
/// leases, organization flags and outcome writer it shares).
pub struct Scheduler {
    pub config: Arc<EngineConfig>,
    pub pool: Pool,
    pub dispatch: Arc<Dispatcher>,
    /// Test hook: the scheduler claims nothing while set.
    pub paused: Arc<AtomicBool>,
}

/// Most messages one claim takes.
pub const CLAIM_BATCH: i64 = 2000;

/// Most messages of one organization one claim takes: with
/// [`CLAIM_BATCH`], at least four tenants' backlogs move in every claim, and
/// a tenant alone with a backlog still gets whole batches (the scheduler
/// claims again at once while some tenant fills its quota).
pub const CLAIM_PER_ORG: i64 = 500;

/// While this node holds `max_held_jobs` or more, a claim takes at most
/// this many, [`TRICKLE_PER_ORG`] per organization, once a tick: every
/// tenant's due messages keep moving (a tenant whose provider hoards jobs
/// cannot stall the others), while the bulk waits in the database for room
/// instead of churning between memory and the database.
pub const TRICKLE: i64 = 200;
/// An organization's share of a [`TRICKLE`] claim.
pub const TRICKLE_PER_ORG: i64 = 20;

/// How often the organizations' active flags are read again (changes made
/// through another node).
const ORG_REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Runs until `stop` is set.
pub async fn run(sched: Scheduler, stop: Arc<AtomicBool>) {
    let mut last_orgs = Instant::now();
    let mut last_sweep = Instant::now();
    let mut last_match = Instant::now();
    let mut last_nonces = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let more = if sched.paused.load(Ordering::Relaxed) {
            false
        } else {
            match claim(&sched).await {
                Ok(more) => more,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler claim failed");
                    false
                }
            }
        };
        if last_orgs.elapsed() >= ORG_REFRESH_EVERY {
            last_orgs = Instant::now();
            if let Err(e) = sched.dispatch.orgs.refresh(&sched.pool).await {
                tracing::warn!(error = %e, "organization flags not refreshed");
            }
        }
        if last_match.elapsed() >= UNMATCHED_EVERY {
            last_match = Instant::now();
            retry_unmatched(&sched).await;
        }
        if last_sweep.elapsed() >= Duration::from_secs(3600) {
            last_sweep = Instant::now();
            sweep_idempotency(&sched).await;
        }
        if last_nonces.elapsed() >= NONCE_SWEEP_EVERY {
            last_nonces = Instant::now();
            sweep_nonces(&sched).await;
        }
        if !more {
            tokio::time::sleep(sched.config.scheduler_interval).await;
        }
    }
}

/// One claim; returns whether more may be due now (a full batch, or some
/// organization filled its quota).
async fn claim(sched: &Scheduler) -> Result<bool, msgengine_storage::StoreError> {
    let lease_until =
        Utc::now() + chrono::Duration::from_std(sched.config.lease_for).unwrap_or_default();
    let waited = Instant::now();
    let client = sched.pool.get().await?;
    crate::metrics::record_pool_wait(waited.elapsed());
    let max_bytes = i64::try_from(sched.config.claim_max_bytes).unwrap_or(i64::MAX);
    let full = sched.dispatch.leases.len() >= sched.config.max_held_jobs;
    let limits = claim_limits(full, max_bytes);
    let claim = msgengine_domain::lifecycle::Claim::due(Utc::now());
    let claimed =
        messages::claim_due(&client, sched.config.node_id, lease_until, limits, &claim).await?;
    drop(client);
    let (rows, saturated) = (claimed.messages, claimed.saturated);
    let n = rows.len();
    if n == 0 {
        return Ok(false);
    }
    let max_age = chrono::Duration::from_std(sched.config.message_lifetime).unwrap_or_default();
    let mut due = Vec::with_capacity(n);
    let mut adopted = 0usize;
    for row in rows {
        let id = row.message.id;
        // Still held by a job here (its lease ran out while renewals lagged):
        // the job goes on under this claim instead of racing a second one.
        if sched
            .dispatch
            .leases
            .adopt(id.0, row.lease_token, lease_until)
        {
            adopted += 1;
            continue;
        }
        let now = Utc::now();
        if is_expired(&row, now, max_age) {
            crate::metrics::record_failed(row.message.channel, "none", "expired", 1);
            sched.dispatch.outcomes.submit(OutcomeRow {
                id,
                outcome: Outcome::expired(now),
                fence: Some(sched.dispatch.leases.fence(row.lease_token)),
            });
            continue;
        }
        due.push(Leased {
            attempts: row.attempt_count.max(0) as u32,
            token: row.lease_token,
            message: Arc::new(row.message),
        });
    }
    if adopted > 0 {
        tracing::warn!(
            adopted,
            "claimed messages this node still held (lease renewals lagged); their jobs go on under the new leases"
        );
    }
    sched.dispatch.dispatch(due, lease_until).await;
    Ok(!full && (saturated || n >= CLAIM_BATCH as usize))
}

/// How much one claim may take: a full batch, or a fair trickle while this
/// node holds as many jobs as it may.
fn claim_limits(full: bool, max_bytes: i64) -> messages::ClaimLimits {
    let (total, per_org) = if full {
        (TRICKLE, TRICKLE_PER_ORG)
    } else {
        (CLAIM_BATCH, CLAIM_PER_ORG)
    };
    messages::ClaimLimits {
        total,
        per_org,
        max_bytes,
    }
}

/// Whether a claimed message outlived its lifetime: counted from its
/// `sendAt` when it has one (a message may be scheduled up to 30 days
/// ahead), else from its creation.
pub fn is_expired(
    row: &ClaimedMessage,
    now: chrono::DateTime<Utc>,
    lifetime: chrono::Duration,
) -> bool {
    let from = row
        .send_at
        .map_or(row.created_at, |at| at.max(row.created_at));
    now - from > lifetime
}

/// How often provider events that named an unknown message are tried again
/// (a provider's webhook can overtake our own write of its message id).
const UNMATCHED_EVERY: Duration = Duration::from_secs(2);

/// One round of late matching: per organization (a quota each, so one
/// tenant's unmatched events cannot hide another's), bounded in all, and
/// closing events unmatched for an hour (a webhook overtakes our own write
/// by milliseconds to seconds, not hours).
const LATE_LIMITS: msgengine_storage::repo::webhook_events::LateLimits =
    msgengine_storage::repo::webhook_events::LateLimits {
        window: chrono::Duration::hours(1),
        per_org: 200,
        total: 5_000,
    };

/// Applies webhook events whose message has become known.
async fn retry_unmatched(sched: &Scheduler) {
    let result = async {
        let mut client = sched.pool.get().await?;
        let tx = client.transaction().await?;
        let round = msgengine_storage::repo::webhook_events::retry_unmatched(
            &tx,
            LATE_LIMITS,
            msgengine_domain::lifecycle::merge_reports,
        )
        .await?;
        tx.commit().await?;
        Ok::<_, msgengine_storage::StoreError>(round)
    }
    .await;
    match result {
        Ok(round) if round.applied == 0 && round.closed == 0 => {}
        Ok(round) => tracing::debug!(
            applied = round.applied,
            closed = round.closed,
            "late provider events matched or closed"
        ),
        Err(e) => tracing::warn!(error = %e, "matching late provider events failed"),
    }
}

/// How often expired webhook nonces are deleted, and at most how many per
/// statement (a sweep repeats while it deletes full statements).
const NONCE_SWEEP_EVERY: Duration = Duration::from_secs(60);
const NONCE_SWEEP_LIMIT: i64 = 5_000;

async fn sweep_nonces(sched: &Scheduler) {
    let client = match sched.pool.get().await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "webhook nonce sweep: no connection");
            return;
        }
    };
    // Bounded: at most 100 statements a sweep, the rest next minute.
    for _ in 0..100 {
        match msgengine_storage::repo::webhook_nonces::sweep_expired(&client, NONCE_SWEEP_LIMIT)
            .await
        {
            Ok(n) if n as i64 >= NONCE_SWEEP_LIMIT => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "webhook nonce sweep failed");
                return;
            }
        }
    }
}

async fn sweep_idempotency(sched: &Scheduler) {
    let before = Utc::now() - chrono::Duration::hours(24);
    match sched.pool.get().await {
        Ok(client) => {
            if let Err(e) = messages::expire_idempotency(&client, before).await {
                tracing::warn!(error = %e, "idempotency sweep failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "idempotency sweep: no connection"),
    }
}

#[cfg(test)]
mod tests {
    use msgengine_domain::message::{MessageState, OutboundMessage};
    use msgengine_domain::{Channel, MessageId, OrganizationId};

    use super::*;

    fn claimed(
        created_at: chrono::DateTime<Utc>,
        send_at: Option<chrono::DateTime<Utc>>,
    ) -> ClaimedMessage {
        ClaimedMessage {
            message: OutboundMessage {
                id: MessageId::new(),
                organization_id: OrganizationId::new(),
                channel: Channel::Sms,
                to: "+2348031234567".into(),
                from: None,
                subject: None,
                text: "x".into(),
                html: None,
                metadata: None,
                extras: None,
                routing: None,
            },
            state: MessageState::Queued,
            attempt_count: 0,
            created_at,
            send_at,
            lease_token: 1,
        }
    }

    #[test]
    fn lifetime_counts_from_send_at_when_there_is_one() {
        let now = Utc::now();
        let day = chrono::Duration::hours(24);
        let two_days_ago = now - chrono::Duration::days(2);
        assert!(is_expired(&claimed(two_days_ago, None), now, day));
        let due_now = claimed(two_days_ago, Some(now - chrono::Duration::minutes(1)));
        assert!(
            !is_expired(&due_now, now, day),
            "scheduled 2 days ahead, due now"
        );
        let late = claimed(two_days_ago, Some(now - chrono::Duration::hours(25)));
        assert!(is_expired(&late, now, day));
        // A sendAt before the creation does not shorten the lifetime.
        let backdated = claimed(now - chrono::Duration::hours(1), Some(two_days_ago));
        assert!(!is_expired(&backdated, now, day));
    }
}

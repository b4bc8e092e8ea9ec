//! The scheduler: claims due messages nobody holds — scheduled messages whose
//! time has come, retries left to the database, and messages whose lease
//! expired because their node died — with `FOR UPDATE SKIP LOCKED`, leases
//! them to this node and dispatches them. It also renews this node's leases
//! on messages it still holds in memory, and expires old idempotency keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use msgengine_domain::message::{MessageEvent, MessageState, OutboundMessage};
use msgengine_domain::{Channel, MessageId, OrganizationId};
use msgengine_storage::repo::messages::{self, ClaimedMessage, OutcomeRow};
use serde_json::json;

use crate::engine::{stored_extras, stored_metadata};
use crate::runtime::Shared;

const CLAIM_BATCH: i64 = 2000;

/// Runs until `stop` is set.
pub async fn run(shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let renew_every = shared.config.lease_for / 3;
    let mut last_renew = Instant::now();
    let mut last_sweep = Instant::now();
    let mut last_match = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let claimed = match claim(&shared).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "scheduler claim failed");
                0
            }
        };
        if last_renew.elapsed() >= renew_every {
            last_renew = Instant::now();
            if let Err(e) = renew(&shared).await {
                tracing::error!(error = %e, "lease renewal failed");
            }
        }
        if last_match.elapsed() >= UNMATCHED_EVERY {
            last_match = Instant::now();
            retry_unmatched(&shared).await;
        }
        if last_sweep.elapsed() >= Duration::from_secs(3600) {
            last_sweep = Instant::now();
            sweep_idempotency(&shared).await;
        }
        if claimed < CLAIM_BATCH as usize {
            tokio::time::sleep(shared.config.scheduler_interval).await;
        }
    }
}

async fn claim(shared: &Arc<Shared>) -> Result<usize, msgengine_storage::StoreError> {
    let lease_until =
        Utc::now() + chrono::Duration::from_std(shared.config.lease_for).unwrap_or_default();
    let waited = Instant::now();
    let client = shared.pool.get().await?;
    crate::metrics::record_pool_wait(waited.elapsed());
    let rows =
        messages::claim_due(&client, shared.config.node_id, lease_until, CLAIM_BATCH).await?;
    drop(client);
    let n = rows.len();
    if n == 0 {
        return Ok(0);
    }
    let max_age = chrono::Duration::from_std(shared.config.message_lifetime).unwrap_or_default();
    let mut due = Vec::with_capacity(n);
    for row in rows {
        if Utc::now() - row.created_at > max_age {
            if let Ok(channel) = row.channel.parse::<Channel>() {
                crate::metrics::record_failed(channel, "none", "expired", 1);
            }
            shared.submit(expired_row(&row));
            continue;
        }
        let (id, attempts) = (row.id, row.attempt_count.max(0) as u32);
        match to_outbound(row) {
            Some(message) => due.push((message, attempts)),
            None => tracing::error!(message = %id, "claimed message has an unknown channel"),
        }
    }
    shared.dispatch(due).await;
    Ok(n)
}

async fn renew(shared: &Arc<Shared>) -> Result<u64, msgengine_storage::StoreError> {
    let lease_until =
        Utc::now() + chrono::Duration::from_std(shared.config.lease_for).unwrap_or_default();
    let client = shared.pool.get().await?;
    messages::renew_leases(&client, shared.config.node_id, lease_until).await
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
async fn retry_unmatched(shared: &Arc<Shared>) {
    let result = async {
        let mut client = shared.pool.get().await?;
        let tx = client.transaction().await?;
        let round =
            msgengine_storage::repo::webhook_events::retry_unmatched(&tx, LATE_LIMITS).await?;
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

async fn sweep_idempotency(shared: &Arc<Shared>) {
    let before = Utc::now() - chrono::Duration::hours(24);
    match shared.pool.get().await {
        Ok(client) => {
            if let Err(e) = messages::expire_idempotency(&client, before).await {
                tracing::warn!(error = %e, "idempotency sweep failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "idempotency sweep: no connection"),
    }
}

/// A claimed row as the message adapters take it.
pub fn to_outbound(row: ClaimedMessage) -> Option<OutboundMessage> {
    Some(OutboundMessage {
        id: MessageId(row.id),
        organization_id: OrganizationId(row.organization_id),
        channel: row.channel.parse().ok()?,
        to: row.recipient,
        from: row.sender,
        subject: row.subject,
        text: row.body_text.unwrap_or_default(),
        html: row.body_html,
        metadata: stored_metadata(row.metadata),
        extras: stored_extras(row.extras),
    })
}

fn expired_row(row: &ClaimedMessage) -> OutcomeRow {
    let event = MessageEvent {
        state: MessageState::Expired,
        at: Utc::now(),
        reason: Some("not delivered within the message lifetime".into()),
        provider_id: None,
        attempt: None,
        provider_at: None,
    };
    OutcomeRow {
        id: row.id,
        state: MessageState::Expired,
        events: json!([event]),
        attempts: json!([]),
        attempt_delta: 0,
        provider_id: None,
        provider_message_id: None,
        next_attempt_at: None,
        release_lease: true,
    }
}

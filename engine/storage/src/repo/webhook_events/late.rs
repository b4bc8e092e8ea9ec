//! Late matching: events whose message was not known when they arrived,
//! applied once it is, fairly per organization, and closed after the window.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::message::MessageState;
use msgengine_domain::{OrganizationId, ProviderId};

use super::apply::{apply, Fresh};
use super::{Decide, EventRow};
use crate::error::StoreError;

/// How many unmatched events one late-matching round looks at.
#[derive(Debug, Clone, Copy)]
pub struct LateLimits {
    /// Events older than this are closed instead of tried again.
    pub window: chrono::Duration,
    /// Most events of one organization per round (its newest).
    pub per_org: i64,
    /// Most events per round in all.
    pub total: i64,
}

/// What one late-matching round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateRound {
    /// Events applied to their message, now known.
    pub applied: usize,
    /// Events closed: unmatched for longer than the window.
    pub closed: u64,
}

/// Open events (neither applied nor closed, received within the window):
/// for each organization that has some, in random order, its newest
/// `per_org`, up to `total` in all.
pub async fn unmatched(
    client: &impl GenericClient,
    limits: LateLimits,
) -> Result<Vec<(OrganizationId, ProviderId, EventRow)>, StoreError> {
    let since = Utc::now() - limits.window;
    let stmt = client
        .prepare_cached(
            "SELECT w.organization_id, w.provider_id, w.event_id, w.provider_message_id,
                    w.message_id, w.state, w.engagement, w.raw_status, w.recipient, w.error_code,
                    w.reason, w.suppress, w.occurred_at
               FROM (SELECT id FROM organizations ORDER BY random()) o
              CROSS JOIN LATERAL (
                    SELECT * FROM webhook_events e
                     WHERE e.organization_id = o.id
                       AND e.applied_at IS NULL AND e.closed_at IS NULL AND e.received_at > $1
                     ORDER BY e.received_at DESC
                     LIMIT $2) w
              LIMIT $3",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&since, &limits.per_org, &limits.total])
        .await?;
    rows.iter().map(unmatched_row).collect()
}

fn unmatched_row(
    r: &tokio_postgres::Row,
) -> Result<(OrganizationId, ProviderId, EventRow), StoreError> {
    let state: Option<String> = r.try_get("state")?;
    let state = match state {
        Some(s) => Some(
            s.parse::<MessageState>()
                .map_err(|_| StoreError::Corrupt(format!("unknown state {s}")))?,
        ),
        None => None,
    };
    Ok((
        OrganizationId(r.try_get("organization_id")?),
        ProviderId(r.try_get("provider_id")?),
        EventRow {
            event_id: r.try_get("event_id")?,
            provider_message_id: r.try_get("provider_message_id")?,
            message_id: r.try_get("message_id")?,
            state,
            engagement: r.try_get("engagement")?,
            raw_status: r.try_get("raw_status")?,
            recipient: r.try_get("recipient")?,
            error_code: r.try_get("error_code")?,
            reason: r.try_get("reason")?,
            suppress: r.try_get("suppress")?,
            occurred_at: r.try_get("occurred_at")?,
        },
    ))
}

/// One late-matching round (the scheduler runs one every 2 s): closes up to
/// `limits.total` events unmatched for longer than the window, then applies
/// the open events whose message is known now, fairly per organization
/// ([`unmatched`]).
pub async fn retry_unmatched(
    tx: &deadpool_postgres::Transaction<'_>,
    limits: LateLimits,
    decide: Decide,
) -> Result<LateRound, StoreError> {
    let closed = close_unmatched(tx, Utc::now() - limits.window, limits.total).await?;
    let pending = unmatched(tx, limits).await?;
    let fresh: Vec<Fresh<'_>> = pending
        .iter()
        .map(|(org, provider, event)| Fresh {
            job: 0,
            org: *org,
            provider: *provider,
            event,
        })
        .collect();
    let applied = apply(tx, &fresh, decide).await?;
    Ok(LateRound {
        applied: applied.iter().map(|(group, _)| group.len()).sum(),
        closed,
    })
}

/// Closes up to `limit` open events received before `before`.
async fn close_unmatched(
    client: &impl GenericClient,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE webhook_events SET closed_at = now()
              WHERE (provider_id, event_id) IN (
                    SELECT provider_id, event_id FROM webhook_events
                     WHERE applied_at IS NULL AND closed_at IS NULL AND received_at <= $1
                     LIMIT $2
                       FOR UPDATE SKIP LOCKED)",
        )
        .await?;
    Ok(client.execute(&stmt, &[&before, &limit]).await?)
}

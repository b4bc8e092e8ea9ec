//! Provider events received through verified webhooks: recorded once
//! (replays change nothing), applied to their message (never backwards), and
//! kept until matched when the message is not known yet.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::message::{MessageEvent, MessageState};
use msgengine_domain::{OrganizationId, ProviderId};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;

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

/// Records `events` of one provider connection and applies the new ones, in
/// the caller's transaction.
pub async fn ingest(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrganizationId,
    provider: ProviderId,
    events: &[EventRow],
) -> Result<Ingested, StoreError> {
    let mut out = Ingested::default();
    if events.is_empty() {
        return Ok(out);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO webhook_events (provider_id, event_id, organization_id, provider_message_id,
                                         message_id, state, engagement, raw_status, recipient,
                                         error_code, reason, suppress, occurred_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (provider_id, event_id) DO NOTHING",
        )
        .await?;
    let mut fresh = Vec::with_capacity(events.len());
    for e in events {
        let state = e.state.map(MessageState::as_str);
        let n = tx
            .execute(
                &insert,
                &[
                    &provider.0,
                    &e.event_id,
                    &org.0,
                    &e.provider_message_id,
                    &e.message_id,
                    &state,
                    &e.engagement,
                    &e.raw_status,
                    &e.recipient,
                    &e.error_code,
                    &e.reason,
                    &e.suppress,
                    &e.occurred_at,
                ],
            )
            .await?;
        if n == 1 {
            fresh.push(e.clone());
        } else {
            out.duplicates += 1;
        }
    }
    out.recorded = fresh.len();
    let applied = apply(tx, org, provider, &fresh, &mut out.transitions).await?;
    out.applied = applied;
    out.unmatched = fresh.len() - applied;
    Ok(out)
}

/// The history entry an event appends to its message. `at` is when the
/// engine recorded it (`recorded_at`), so a message's history never goes back
/// in time; the provider's own time of the event is kept as `providerAt`
/// (some providers stamp whole seconds, Meta for one, and a provider's clock
/// is not ours).
fn history_entry(provider: ProviderId, e: &EventRow, recorded_at: DateTime<Utc>) -> Option<Value> {
    // Engagement implies delivered (providers.md §12); a deferral is only a note.
    let state = e.state.or(match e.engagement.as_deref() {
        Some("opened") | Some("clicked") => Some(MessageState::Delivered),
        _ => None,
    })?;
    let mut reason = match (&e.engagement, &e.reason) {
        (Some(k), Some(r)) => format!("{k}: {r}"),
        (Some(k), None) => k.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => format!("provider reported {}", e.raw_status),
    };
    if let Some(code) = &e.error_code {
        reason = format!("{reason} (code {code})");
    }
    serde_json::to_value(MessageEvent {
        state,
        at: recorded_at,
        reason: Some(reason),
        provider_id: Some(provider),
        attempt: None,
        provider_at: Some(e.occurred_at),
    })
    .ok()
}

/// Applies new events to their messages; returns how many found one.
/// Several events for one message are applied in one update: the history
/// gets all of them in time order, the state the furthest they reach.
async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrganizationId,
    provider: ProviderId,
    events: &[EventRow],
    transitions: &mut Vec<Transition>,
) -> Result<usize, StoreError> {
    // Key: our id when known, else the provider's id.
    let mut by_id: HashMap<Uuid, Vec<&EventRow>> = HashMap::new();
    let mut by_pmid: HashMap<&str, Vec<&EventRow>> = HashMap::new();
    for e in events {
        match (&e.message_id, &e.provider_message_id) {
            (Some(id), _) => by_id.entry(*id).or_default().push(e),
            (None, Some(p)) => by_pmid.entry(p.as_str()).or_default().push(e),
            (None, None) => {}
        }
    }
    let mut applied = 0usize;
    let by_id_stmt = tx
        .prepare_cached(
            "WITH old AS (SELECT id, state FROM messages
                            WHERE id = $1 AND organization_id = $2 FOR UPDATE)
             UPDATE messages m SET
                 state = CASE WHEN $3::text IS NOT NULL AND msgengine_can_advance(m.state, $3)
                              THEN $3 ELSE m.state END,
                 provider_message_id = COALESCE(m.provider_message_id, $5),
                 events = m.events || $4::jsonb, updated_at = now()
               FROM old WHERE m.id = old.id
           RETURNING m.id, old.state, m.state",
        )
        .await?;
    let by_pmid_stmt = tx
        .prepare_cached(
            "WITH old AS (SELECT id, state FROM messages
                            WHERE provider_id = $1 AND provider_message_id = $2
                              AND organization_id = $3 FOR UPDATE)
             UPDATE messages m SET
                 state = CASE WHEN $4::text IS NOT NULL AND msgengine_can_advance(m.state, $4)
                              THEN $4 ELSE m.state END,
                 events = m.events || $5::jsonb, updated_at = now()
               FROM old WHERE m.id = old.id
           RETURNING m.id, old.state, m.state",
        )
        .await?;
    let mark = tx
        .prepare_cached(
            "UPDATE webhook_events SET applied_at = now(), message_id = $3
              WHERE provider_id = $1 AND event_id = ANY($2)",
        )
        .await?;
    for (id, group) in &by_id {
        let (state, history) = merge(provider, group);
        let pmid = group.iter().find_map(|e| e.provider_message_id.clone());
        let state = state.map(MessageState::as_str);
        if let Some(row) = tx
            .query_opt(&by_id_stmt, &[id, &org.0, &state, &history, &pmid])
            .await?
        {
            let matched: Uuid = row.try_get(0)?;
            transitions.push(transition(&row)?);
            let ids: Vec<&str> = group.iter().map(|e| e.event_id.as_str()).collect();
            tx.execute(&mark, &[&provider.0, &ids, &matched]).await?;
            crate::repo::org_webhooks::enqueue_outcomes(tx, &[matched], &[&history]).await?;
            applied += group.len();
        }
    }
    for (pmid, group) in &by_pmid {
        let (state, history) = merge(provider, group);
        let state = state.map(MessageState::as_str);
        if let Some(row) = tx
            .query_opt(
                &by_pmid_stmt,
                &[&provider.0, pmid, &org.0, &state, &history],
            )
            .await?
        {
            let matched: Uuid = row.try_get(0)?;
            transitions.push(transition(&row)?);
            let ids: Vec<&str> = group.iter().map(|e| e.event_id.as_str()).collect();
            tx.execute(&mark, &[&provider.0, &ids, &matched]).await?;
            crate::repo::org_webhooks::enqueue_outcomes(tx, &[matched], &[&history]).await?;
            applied += group.len();
        }
    }
    Ok(applied)
}

/// A `RETURNING id, old state, new state` row.
fn transition(row: &tokio_postgres::Row) -> Result<Transition, StoreError> {
    let parse = |i: usize| -> Result<MessageState, StoreError> {
        let s: String = row.try_get(i)?;
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown state {s}")))
    };
    Ok(Transition {
        message_id: row.try_get(0)?,
        from: parse(1)?,
        to: parse(2)?,
    })
}

/// The furthest state a group of events reaches (by the state machine's
/// order) and their history entries in time order.
fn merge(provider: ProviderId, group: &[&EventRow]) -> (Option<MessageState>, Value) {
    let mut sorted: Vec<&&EventRow> = group.iter().collect();
    sorted.sort_by_key(|e| e.occurred_at);
    let mut state: Option<MessageState> = None;
    for e in &sorted {
        if let Some(next) = e.state {
            state = match state {
                Some(cur) if !cur.can_advance_to(next) => Some(cur),
                _ => Some(next),
            };
        }
    }
    let now = Utc::now();
    let history: Vec<Value> = sorted
        .iter()
        .filter_map(|e| history_entry(provider, e, now))
        .collect();
    (state, Value::Array(history))
}

/// Events still waiting for their message, oldest first (up to `limit`,
/// received in the last `max_age`), per organization and provider.
pub async fn unmatched(
    client: &impl GenericClient,
    max_age: chrono::Duration,
    limit: i64,
) -> Result<Vec<(OrganizationId, ProviderId, EventRow)>, StoreError> {
    let since = Utc::now() - max_age;
    let stmt = client
        .prepare_cached(
            "SELECT organization_id, provider_id, event_id, provider_message_id, message_id, state,
                    engagement, raw_status, recipient, error_code, reason, suppress, occurred_at
               FROM webhook_events
              WHERE applied_at IS NULL AND received_at > $1
              ORDER BY received_at LIMIT $2",
        )
        .await?;
    let rows = client.query(&stmt, &[&since, &limit]).await?;
    rows.iter()
        .map(|r| {
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
        })
        .collect()
}

/// Applies recorded-but-unmatched events whose message is known now (the
/// scheduler calls this); returns how many were applied.
pub async fn retry_unmatched(
    tx: &deadpool_postgres::Transaction<'_>,
    max_age: chrono::Duration,
    limit: i64,
) -> Result<usize, StoreError> {
    let pending = unmatched(tx, max_age, limit).await?;
    let mut groups: HashMap<(OrganizationId, ProviderId), Vec<EventRow>> = HashMap::new();
    for (org, provider, e) in pending {
        groups.entry((org, provider)).or_default().push(e);
    }
    let mut applied = 0;
    let mut transitions = Vec::new();
    for ((org, provider), events) in groups {
        applied += apply(tx, org, provider, &events, &mut transitions).await?;
    }
    Ok(applied)
}

//! Outcome updates: many messages' outcomes in one `UPDATE … FROM unnest`,
//! each applied only under its lease fence and never moving a state back.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::lifecycle::Outcome;
use msgengine_domain::message::{Attempt, MessageEvent};
use msgengine_domain::MessageId;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::LeaseFence;
use crate::error::StoreError;

/// What one attempt (or an engine decision) does to a message: the
/// domain's outcome, under the lease it was produced with.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    pub id: MessageId,
    pub outcome: Outcome,
    /// The lease this outcome was produced under: the row is applied only
    /// while the message still holds exactly this lease (a stale holder's
    /// outcome changes nothing, not even the history). `None`: applied
    /// whatever the lease (only for writers that hold no lease).
    pub fence: Option<LeaseFence>,
}

/// The outcome update (see [`apply_outcomes`]), as a macro so the
/// `RETURNING` variant is a literal too (no SQL built per batch).
macro_rules! apply_outcomes_sql {
    () => {
        "UPDATE messages m SET
                 state = CASE WHEN msgengine_can_advance(m.state, v.state) THEN v.state ELSE m.state END,
                 events = m.events || v.events,
                 attempts = m.attempts || v.attempts,
                 attempt_count = m.attempt_count + v.attempt_delta,
                 provider_id = COALESCE(v.provider_id, m.provider_id),
                 provider_message_id = COALESCE(v.provider_message_id, m.provider_message_id),
                 next_attempt_at = COALESCE(v.next_attempt_at,
                                            CASE WHEN v.release_lease THEN LEAST(m.next_attempt_at, now())
                                                 ELSE m.next_attempt_at END),
                 lease_owner = CASE WHEN v.release_lease THEN NULL ELSE m.lease_owner END,
                 lease_until = CASE WHEN v.release_lease THEN NULL ELSE m.lease_until END,
                 lease_token = CASE WHEN v.release_lease THEN NULL ELSE m.lease_token END,
                 updated_at = now()
               FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::jsonb[], $5::int4[], $6::uuid[],
                           $7::text[], $8::timestamptz[], $9::bool[], $10::uuid[], $11::int8[])
                 AS v(id, state, events, attempts, attempt_delta, provider_id, provider_message_id,
                      next_attempt_at, release_lease, fence_owner, fence_token)
              WHERE m.id = v.id
                AND (v.fence_owner IS NULL
                     OR (m.lease_owner = v.fence_owner AND m.lease_token = v.fence_token))"
    };
}
const APPLY_OUTCOMES: &str = apply_outcomes_sql!();
const APPLY_OUTCOMES_RETURNING: &str = concat!(apply_outcomes_sql!(), " RETURNING m.id");

/// Applies many outcomes in one statement; at most one row per message id
/// (coalesce first). Returns the number of messages updated: a fenced row
/// whose lease is gone is not counted, so `rows.len() - returned` outcomes
/// were stale.
pub async fn apply_outcomes(
    client: &impl GenericClient,
    rows: &[OutcomeRow],
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let stmt = client.prepare_cached(APPLY_OUTCOMES).await?;
    let columns = OutcomeColumns::of(rows);
    Ok(client.execute(&stmt, &columns.params()).await?)
}

/// [`apply_outcomes`], answering which messages were updated (a stale
/// outcome's is missing), for a caller that acts on exactly those.
pub async fn apply_outcomes_returning(
    client: &impl GenericClient,
    rows: &[OutcomeRow],
) -> Result<Vec<Uuid>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client.prepare_cached(APPLY_OUTCOMES_RETURNING).await?;
    let columns = OutcomeColumns::of(rows);
    let applied = client.query(&stmt, &columns.params()).await?;
    applied
        .iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}

/// The outcome rows as the update's arrays.
struct OutcomeColumns<'a> {
    ids: Vec<Uuid>,
    states: Vec<&'a str>,
    events: Vec<Json<&'a [MessageEvent]>>,
    attempts: Vec<Json<&'a [Attempt]>>,
    deltas: Vec<i32>,
    providers: Vec<Option<Uuid>>,
    provider_ids: Vec<Option<&'a str>>,
    next: Vec<Option<DateTime<Utc>>>,
    release: Vec<bool>,
    fence_owners: Vec<Option<Uuid>>,
    fence_tokens: Vec<Option<i64>>,
}

impl<'a> OutcomeColumns<'a> {
    fn of(rows: &'a [OutcomeRow]) -> Self {
        let outcomes = || rows.iter().map(|r| &r.outcome);
        Self {
            ids: rows.iter().map(|r| r.id.0).collect(),
            states: outcomes().map(|o| o.state.as_str()).collect(),
            events: outcomes().map(|o| Json(o.events.as_slice())).collect(),
            attempts: outcomes().map(|o| Json(o.attempts.as_slice())).collect(),
            deltas: outcomes().map(|o| o.attempt_delta).collect(),
            providers: outcomes().map(|o| o.provider_id.map(|p| p.0)).collect(),
            provider_ids: outcomes()
                .map(|o| o.provider_message_id.as_deref())
                .collect(),
            next: outcomes().map(|o| o.next_attempt_at).collect(),
            release: outcomes().map(|o| o.release_lease).collect(),
            fence_owners: rows.iter().map(|r| r.fence.map(|f| f.owner)).collect(),
            fence_tokens: rows.iter().map(|r| r.fence.map(|f| f.token)).collect(),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 11] {
        [
            &self.ids,
            &self.states,
            &self.events,
            &self.attempts,
            &self.deltas,
            &self.providers,
            &self.provider_ids,
            &self.next,
            &self.release,
            &self.fence_owners,
            &self.fence_tokens,
        ]
    }
}

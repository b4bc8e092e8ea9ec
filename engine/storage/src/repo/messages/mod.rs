//! Messages: batched inserts at accept time, batched outcome updates
//! (`outcomes.rs`), the scheduler's claim of due rows (`claim.rs`), leases, and
//! status reads.
//!
//! Every write here handles many messages in one statement (binary `COPY` for
//! inserts, arrays through `unnest` for updates), because writes per message
//! decide the engine's throughput. The
//! normal path is one insert (already leased to the accepting node) and one
//! outcome update. Rows are typed (the domain's message, events and
//! attempts, written as JSON straight from them). What a row says is decided
//! by the domain's lifecycle (`msgengine_domain::lifecycle`); `events` and
//! `attempts` only ever grow (`||`), and the state only advances
//! (`msgengine_can_advance`, a safety net tested against the domain's table).
//!
//! Leases: a message being worked on carries `lease_owner` (the engine
//! process), `lease_until` and `lease_token` (which claim of it this is; see
//! migrations/V6). A leased message is due (`next_attempt_at`) when its
//! lease was taken to end, so the scheduler's index range skips the work in
//! flight; releasing a lease without a new due time makes it due at once.
//! An outcome carrying a [`LeaseFence`] is applied only while the message's
//! lease is still exactly that fence; renewals are fenced the same way. A stale holder's write changes nothing.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::message::{Attempt, MessageEvent, MessageState, OutboundMessage};
use msgengine_domain::routing::MessageRouting;
use msgengine_domain::Channel;
use serde_json::Value;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::error::StoreError;

mod claim;
mod outcomes;

pub use claim::{claim_due, ClaimLimits, Claimed, ClaimedMessage};
pub use outcomes::{apply_outcomes, apply_outcomes_returning, OutcomeRow};

/// The lease token of a row inserted already leased (at accept). Claims take
/// tokens from `messages_lease_token_seq`, which start at 1; a message is
/// inserted once, so `(owner, INSERT_LEASE_TOKEN)` names exactly that lease.
pub const INSERT_LEASE_TOKEN: i64 = 0;

/// Which lease an outcome was produced under: applied only while the message
/// is still leased to `owner` with `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseFence {
    pub owner: Uuid,
    pub token: i64,
}

/// Writes many messages with binary `COPY` (the fastest way into PostgreSQL:
/// no per-row executor work). Leased rows get `owner` until `lease_until`,
/// with token [`INSERT_LEASE_TOKEN`], and are due at `lease_until`. Must run
/// inside the caller's transaction.
pub async fn copy_many(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[NewMessageRow],
    owner: Uuid,
    lease_until: DateTime<Utc>,
) -> Result<u64, StoreError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    if rows.is_empty() {
        return Ok(0);
    }
    let sink = tx
        .copy_in(
            "COPY messages (id, organization_id, channel, state, recipient, sender, subject, body_text,
                            body_html, metadata, send_at, next_attempt_at, lease_owner, lease_until, events,
                            extras, lease_token, routing)
             FROM STDIN BINARY",
        )
        .await?;
    let types = [
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::UUID,
        Type::TIMESTAMPTZ,
        Type::JSONB,
        Type::JSONB,
        Type::INT8,
        Type::JSONB,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for r in rows {
        // A leased row is due (for the scheduler's claim) when its lease
        // ends: the claim's index range then never walks rows in flight.
        let (lease_owner, lease, token, due) = if r.leased {
            (
                Some(owner),
                Some(lease_until),
                Some(INSERT_LEASE_TOKEN),
                lease_until,
            )
        } else {
            (None, None, None, r.next_attempt_at)
        };
        let m = &r.message;
        let state = r.state.as_str();
        // An html-only email has no text: stored NULL, read back empty.
        let text = Some(m.text.as_str()).filter(|t| !t.is_empty());
        let metadata = m.metadata.as_ref().map(Json);
        let extras = m.extras.as_deref().map(Json);
        let events = Json(&r.events);
        let routing = m.routing.as_deref().map(Json);
        let values: [&(dyn ToSql + Sync); 18] = [
            &m.id.0,
            &m.organization_id.0,
            &m.channel.as_str(),
            &state,
            &m.to,
            &m.from,
            &m.subject,
            &text,
            &m.html,
            &metadata,
            &r.send_at,
            &due,
            &lease_owner,
            &lease,
            &events,
            &extras,
            &token,
            &routing,
        ];
        writer.as_mut().write(&values).await?;
    }
    Ok(writer.finish().await?)
}

/// A message to insert: the message as it will be dispatched, and its
/// first state and history (`msgengine_domain::lifecycle::Start`).
#[derive(Debug, Clone)]
pub struct NewMessageRow {
    pub message: OutboundMessage,
    /// `queued` (dispatched at once), `scheduled`, or `rejected`.
    pub state: MessageState,
    pub send_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
    /// Insert already leased to the accepting node (dispatched from memory).
    pub leased: bool,
    /// The first history entries.
    pub events: Vec<MessageEvent>,
}

/// Extends the leases `owner` still holds among `held` (message id and
/// lease token) to `lease_until`; returns the ids renewed. A lease that was
/// released, expired and claimed again (by anyone, under another token) is
/// not touched and not returned: its holder has lost it.
pub async fn renew_held(
    client: &impl GenericClient,
    owner: Uuid,
    held: &[(Uuid, i64)],
    lease_until: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client
        .prepare_cached(
            "UPDATE messages m SET lease_until = $2
               FROM unnest($3::uuid[], $4::int8[]) AS h(id, token)
              WHERE m.id = h.id AND m.lease_owner = $1 AND m.lease_token = h.token
          RETURNING m.id",
        )
        .await?;
    let ids: Vec<Uuid> = held.iter().map(|(id, _)| *id).collect();
    let tokens: Vec<i64> = held.iter().map(|(_, t)| *t).collect();
    let rows = client
        .query(&stmt, &[&owner, &lease_until, &ids, &tokens])
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}

/// Gives up every lease `owner` holds (graceful shutdown): the messages are
/// due again at once for whichever node claims them. Fenced by the owner
/// alone: the owner id names this process (a new id per start), so this can
/// only release leases the process itself took, and at shutdown it gives up
/// every one of them, whatever their token.
pub async fn release_leases(client: &impl GenericClient, owner: Uuid) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE messages SET lease_owner = NULL, lease_until = NULL, lease_token = NULL
              WHERE lease_owner = $1 AND state IN ('scheduled', 'accepted', 'queued', 'sending')",
        )
        .await?;
    Ok(client.execute(&stmt, &[&owner]).await?)
}

/// `next_attempt_at` of a disabled organization's unfinished messages: out
/// of the scheduler's way (its claim walks `next_attempt_at` order, and a
/// disabled tenant's backlog at the front would cost every claim a scan).
const PARKED_UNTIL: &str = "9999-12-31 00:00:00+00";

/// Moves an organization's unfinished messages out of the scheduler's way
/// while it is disabled (run in the disabling transaction). Leases are left
/// alone: a node holding one hands it back or finishes its attempt.
pub async fn park_organization(client: &impl GenericClient, org: Uuid) -> Result<u64, StoreError> {
    let sql = format!(
        "UPDATE messages SET next_attempt_at = '{PARKED_UNTIL}'
          WHERE organization_id = $1 AND state IN ('scheduled', 'accepted', 'queued', 'sending')"
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client.execute(&stmt, &[&org]).await?)
}

/// Makes a re-enabled organization's parked messages due again: at once, or
/// at their `send_at` when that is still ahead (run in the enabling transaction).
pub async fn unpark_organization(
    client: &impl GenericClient,
    org: Uuid,
) -> Result<u64, StoreError> {
    let sql = format!(
        "UPDATE messages SET next_attempt_at = GREATEST(COALESCE(send_at, now()), now())
          WHERE organization_id = $1 AND state IN ('scheduled', 'accepted', 'queued', 'sending')
            AND next_attempt_at >= '{PARKED_UNTIL}'"
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client.execute(&stmt, &[&org]).await?)
}

/// A message's status as the API shows it.
#[derive(Debug, Clone)]
pub struct MessageStatus {
    pub id: Uuid,
    pub channel: Channel,
    pub state: MessageState,
    pub recipient: String,
    pub provider_id: Option<Uuid>,
    pub provider_message_id: Option<String>,
    pub attempt_count: i32,
    pub attempts: Vec<Attempt>,
    pub events: Vec<MessageEvent>,
    /// The sender's own metadata, as given.
    pub metadata: Option<Value>,
    /// Category, tags and the routing plan (`None` for messages accepted
    /// before plans were stored).
    pub routing: Option<MessageRouting>,
    pub send_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A text column read as the domain type it names (a channel, a state).
pub(crate) fn parsed<T: std::str::FromStr>(
    row: &tokio_postgres::Row,
    column: &str,
) -> Result<T, StoreError> {
    let text: &str = row.try_get(column)?;
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {column} {text}")))
}

/// One message of `org` (another organization's id is `NotFound`).
pub async fn get_status(
    client: &impl GenericClient,
    org: Uuid,
    id: Uuid,
) -> Result<MessageStatus, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, channel, state, recipient, provider_id, provider_message_id, attempt_count,
                    attempts, events, metadata, routing, send_at, created_at, updated_at
               FROM messages WHERE id = $1 AND organization_id = $2",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&id, &org])
        .await?
        .ok_or(StoreError::NotFound)?;
    let Json(attempts) = row.try_get("attempts")?;
    let Json(events) = row.try_get("events")?;
    // Written by this code, but read leniently: a plan an older or newer
    // build stored in another shape never hides the rest of the status.
    let routing: Option<Value> = row.try_get("routing")?;
    let routing = routing.and_then(|v| serde_json::from_value::<MessageRouting>(v).ok());
    Ok(MessageStatus {
        id: row.try_get("id")?,
        channel: parsed(&row, "channel")?,
        state: parsed(&row, "state")?,
        recipient: row.try_get("recipient")?,
        provider_id: row.try_get("provider_id")?,
        provider_message_id: row.try_get("provider_message_id")?,
        attempt_count: row.try_get("attempt_count")?,
        attempts,
        events,
        metadata: row.try_get("metadata")?,
        routing,
        send_at: row.try_get("send_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// An idempotency key to record with its request's messages.
#[derive(Debug, Clone)]
pub struct IdempotencyRow {
    pub organization_id: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub response: Value,
}

/// Records idempotency keys; returns the indexes of the rows that were new
/// (the others already existed: their requests must not insert messages).
pub async fn insert_idempotency(
    client: &impl GenericClient,
    rows: &[IdempotencyRow],
) -> Result<Vec<usize>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (organization_id, key, request_hash, response)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[])
             ON CONFLICT (organization_id, key) DO NOTHING
             RETURNING organization_id, key",
        )
        .await?;
    let orgs: Vec<Uuid> = rows.iter().map(|r| r.organization_id).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|r| r.request_hash.as_slice()).collect();
    let responses: Vec<&Value> = rows.iter().map(|r| &r.response).collect();
    let inserted = client
        .query(&stmt, &[&orgs, &keys, &hashes, &responses])
        .await?;
    let mut fresh = Vec::with_capacity(inserted.len());
    for row in &inserted {
        let org: Uuid = row.try_get(0)?;
        let key: String = row.try_get(1)?;
        if let Some(i) = rows
            .iter()
            .position(|r| r.organization_id == org && r.key == key)
        {
            fresh.push(i);
        }
    }
    Ok(fresh)
}

/// A stored idempotency record: the request's hash and the response given.
pub async fn find_idempotency(
    client: &impl GenericClient,
    org: Uuid,
    key: &str,
) -> Result<Option<(Vec<u8>, Value)>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT request_hash, response FROM idempotency_keys WHERE organization_id = $1 AND key = $2")
        .await?;
    let row = client.query_opt(&stmt, &[&org, &key]).await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Deletes idempotency keys older than `before`.
pub async fn expire_idempotency(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < $1")
        .await?;
    Ok(client.execute(&stmt, &[&before]).await?)
}

/// Messages waiting in one state, for the queue gauges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStat {
    /// `scheduled`, `queued` or `sending`.
    pub state: &'static str,
    pub depth: i64,
    /// Seconds since the oldest message in this state was created; for
    /// `scheduled`, how overdue the oldest due one is (0 when none is due).
    pub oldest_age_secs: f64,
}

/// Depth and oldest age of the unfinished states, in one statement over the
/// scheduler's partial index (cost grows with the queue, not the table).
/// Every state is returned, at zero when empty.
pub async fn queue_stats(client: &impl GenericClient) -> Result<Vec<QueueStat>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT state, count(*),
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8,
                    COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)
                                       FILTER (WHERE next_attempt_at <= now())), 0)::float8
               FROM messages
              WHERE state IN ('scheduled', 'queued', 'sending')
              GROUP BY state",
        )
        .await?;
    let rows = client.query(&stmt, &[]).await?;
    let mut out: Vec<QueueStat> = ["scheduled", "queued", "sending"]
        .into_iter()
        .map(|state| QueueStat {
            state,
            depth: 0,
            oldest_age_secs: 0.0,
        })
        .collect();
    for row in rows {
        let state: String = row.try_get(0)?;
        if let Some(stat) = out.iter_mut().find(|s| s.state == state) {
            stat.depth = row.try_get(1)?;
            let age: f64 = row.try_get(2)?;
            let overdue: f64 = row.try_get(3)?;
            stat.oldest_age_secs = if stat.state == "scheduled" {
                overdue
            } else {
                age
            }
            .max(0.0);
        }
    }
    Ok(out)
}

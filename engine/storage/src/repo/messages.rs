//! Messages: batched inserts at accept time, batched outcome updates, the
//! scheduler's claim of due rows, leases, and status reads.
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
//! flight; releasing a lease without a new due time makes it due at once. An outcome carrying a [`LeaseFence`] is applied only while
//! the message's lease is still exactly that fence; renewals are fenced the
//! same way. A stale holder's write changes nothing.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::lifecycle::Outcome;
use msgengine_domain::message::{MessageEvent, MessageExtras, MessageState, OutboundMessage};
use msgengine_domain::{MessageId, OrganizationId};
use serde_json::{Map, Value};
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::error::StoreError;

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
                            extras, lease_token)
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
        let values: [&(dyn ToSql + Sync); 17] = [
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
    attempts: Vec<Json<&'a [msgengine_domain::message::Attempt]>>,
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

/// A message claimed by the scheduler, with what dispatch needs.
#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    /// The message as the adapters take it, read straight from the row.
    pub message: OutboundMessage,
    pub state: MessageState,
    pub attempt_count: i32,
    pub created_at: DateTime<Utc>,
    /// When the client asked it to be sent (its lifetime counts from here).
    pub send_at: Option<DateTime<Utc>>,
    /// The token of this claim's lease (with the claiming owner, its fence).
    pub lease_token: i64,
}

/// How much one claim takes (see [`claim_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Most rows in all.
    pub total: i64,
    /// Most rows of one organization.
    pub per_org: i64,
    /// Most bytes of content in all (always at least one row).
    pub max_bytes: i64,
}

/// What one claim took.
#[derive(Debug, Default)]
pub struct Claimed {
    pub messages: Vec<ClaimedMessage>,
    /// Whether some organization filled its quota (it may have more due:
    /// the caller claims again at once instead of waiting a tick).
    pub saturated: bool,
}

/// Claims due messages nobody holds (scheduled ones whose time has come,
/// retries, and those whose lease expired with a crashed node) of active
/// organizations, leasing them to `owner` under one new token. Scheduled
/// messages move to `queued` with an event.
///
/// Fair per tenant: the active organizations are visited in a random order,
/// each giving at most `per_org` of its oldest due rows, up to `total` in
/// all; so one organization's backlog costs another at most one quota's
/// wait per claim, whatever its size. The content taken stops before it
/// passes `max_bytes` (in the visiting order), always at least one row, so
/// a message bigger than the budget still goes.
///
/// The size is read from the stored values without detoasting them:
/// `octet_length` of a text is its raw length from the TOAST header, and
/// `pg_column_size` of `extras` is its stored (possibly compressed) size,
/// an estimate that is close for attachments (base64 barely compresses).
/// Messages of a disabled organization are left as they are.
pub async fn claim_due(
    client: &impl GenericClient,
    owner: Uuid,
    lease_until: DateTime<Utc>,
    limits: ClaimLimits,
) -> Result<Claimed, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH token AS (SELECT nextval('messages_lease_token_seq') AS t),
                  candidate AS (
                      SELECT c.id, c.organization_id, o.visit, c.next_attempt_at, c.bytes
                        FROM (SELECT id, row_number() OVER (ORDER BY random()) AS visit
                                FROM organizations WHERE is_active) o
                       CROSS JOIN LATERAL (
                             SELECT m.id, m.organization_id, m.next_attempt_at,
                                    COALESCE(octet_length(m.body_text), 0)
                                  + COALESCE(octet_length(m.body_html), 0)
                                  + COALESCE(pg_column_size(m.extras), 0) AS bytes
                               FROM messages m
                              WHERE m.organization_id = o.id
                                AND m.state IN ('scheduled', 'accepted', 'queued', 'sending')
                                AND m.next_attempt_at <= now()
                                AND (m.lease_until IS NULL OR m.lease_until < now())
                              ORDER BY m.next_attempt_at
                              LIMIT $4
                                FOR UPDATE OF m SKIP LOCKED) c
                       LIMIT $3),
                  due AS (
                      SELECT id FROM (
                          SELECT id,
                                 sum(bytes) OVER w AS running,
                                 row_number() OVER w AS n
                            FROM candidate
                          WINDOW w AS (ORDER BY visit, next_attempt_at, id
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) sized
                       WHERE n = 1 OR running <= $5),
                  saturated AS (
                      SELECT COALESCE(bool_or(n >= $4), false) AS hit
                        FROM (SELECT count(*) AS n FROM candidate GROUP BY organization_id) per_org)
             UPDATE messages m SET
                 lease_owner = $1, lease_until = $2, lease_token = (SELECT t FROM token),
                 next_attempt_at = $2,
                 state = CASE WHEN m.state IN ('scheduled', 'accepted') THEN 'queued' ELSE m.state END,
                 events = CASE WHEN m.state IN ('scheduled', 'accepted')
                               THEN m.events || jsonb_build_array(jsonb_build_object(
                                        'state', 'queued', 'at', to_jsonb(now()), 'reason', 'due'))
                               ELSE m.events END,
                 updated_at = now()
               FROM due
              WHERE m.id = due.id
          RETURNING m.id, m.organization_id, m.channel, m.state, m.recipient, m.sender, m.subject,
                    m.body_text, m.body_html, m.metadata, m.attempt_count, m.created_at,
                    m.send_at, m.extras, m.lease_token, (SELECT hit FROM saturated) AS saturated",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &owner,
                &lease_until,
                &limits.total,
                &limits.per_org,
                &limits.max_bytes,
            ],
        )
        .await?;
    let saturated = match rows.first() {
        Some(row) => row.try_get("saturated")?,
        None => false,
    };
    Ok(Claimed {
        messages: rows
            .iter()
            .map(claimed_from_row)
            .collect::<Result<_, _>>()?,
        saturated,
    })
}

fn claimed_from_row(row: &tokio_postgres::Row) -> Result<ClaimedMessage, StoreError> {
    let state: String = row.try_get("state")?;
    let channel: String = row.try_get("channel")?;
    let id: Uuid = row.try_get("id")?;
    let text: Option<String> = row.try_get("body_text")?;
    let message = OutboundMessage {
        id: MessageId(id),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        channel: channel
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown channel {channel}")))?,
        to: row.try_get("recipient")?,
        from: row.try_get("sender")?,
        subject: row.try_get("subject")?,
        text: text.unwrap_or_default(),
        html: row.try_get("body_html")?,
        metadata: stored_json::<Map<String, Value>>(row, "metadata", id),
        extras: stored_json::<MessageExtras>(row, "extras", id).map(Box::new),
    };
    Ok(ClaimedMessage {
        message,
        state: state
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown message state {state}")))?,
        attempt_count: row.try_get("attempt_count")?,
        created_at: row.try_get("created_at")?,
        send_at: row.try_get("send_at")?,
        lease_token: row.try_get("lease_token")?,
    })
}

/// A JSON column read straight into its type. Written from that type at
/// accept, so it always reads back; a value that does not (a row written
/// by hand) is sent without it, as before, and logged.
fn stored_json<T: serde::de::DeserializeOwned>(
    row: &tokio_postgres::Row,
    column: &str,
    id: Uuid,
) -> Option<T> {
    match row.try_get::<_, Option<Json<T>>>(column) {
        Ok(value) => value.map(|Json(v)| v),
        Err(e) => {
            tracing::warn!(message = %id, column, error = %e, "stored value not readable; sent without it");
            None
        }
    }
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
    pub channel: String,
    pub state: String,
    pub recipient: String,
    pub provider_id: Option<Uuid>,
    pub provider_message_id: Option<String>,
    pub attempt_count: i32,
    pub attempts: Value,
    pub events: Value,
    pub metadata: Option<Value>,
    pub send_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
                    attempts, events, metadata, send_at, created_at, updated_at
               FROM messages WHERE id = $1 AND organization_id = $2",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&id, &org])
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(MessageStatus {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        state: row.try_get("state")?,
        recipient: row.try_get("recipient")?,
        provider_id: row.try_get("provider_id")?,
        provider_message_id: row.try_get("provider_message_id")?,
        attempt_count: row.try_get("attempt_count")?,
        attempts: row.try_get("attempts")?,
        events: row.try_get("events")?,
        metadata: row.try_get("metadata")?,
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

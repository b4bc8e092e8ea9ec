//! The scheduler's claim of due messages, read straight into the domain's
//! outbound message.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::lifecycle::Claim;
use msgengine_domain::message::{MessageExtras, MessageState, OutboundMessage};
use msgengine_domain::routing::MessageRouting;
use msgengine_domain::{MessageId, OrganizationId};
use serde_json::{Map, Value};
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::parsed;
use crate::error::StoreError;

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
/// organizations, leasing them to `owner` under one new token. Waiting
/// messages move as `claim` says (the domain's `lifecycle::Claim::due`:
/// `scheduled`/`accepted` to `queued` with a `due` history entry).
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
    claim: &Claim,
) -> Result<Claimed, StoreError> {
    let moves_from: Vec<&str> = claim.moves_from.iter().map(|s| s.as_str()).collect();
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
                 state = CASE WHEN m.state = ANY($6::text[]) THEN $7 ELSE m.state END,
                 events = CASE WHEN m.state = ANY($6::text[])
                               THEN m.events || jsonb_build_array($8::jsonb)
                               ELSE m.events END,
                 updated_at = now()
               FROM due
              WHERE m.id = due.id
          RETURNING m.id, m.organization_id, m.channel, m.state, m.recipient, m.sender, m.subject,
                    m.body_text, m.body_html, m.metadata, m.attempt_count, m.created_at,
                    m.send_at, m.extras, m.routing, m.lease_token,
                    (SELECT hit FROM saturated) AS saturated",
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
                &moves_from,
                &claim.to.as_str(),
                &Json(&claim.event),
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
    let id: Uuid = row.try_get("id")?;
    let text: Option<String> = row.try_get("body_text")?;
    let message = OutboundMessage {
        id: MessageId(id),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        channel: parsed(row, "channel")?,
        to: row.try_get("recipient")?,
        from: row.try_get("sender")?,
        subject: row.try_get("subject")?,
        text: text.unwrap_or_default(),
        html: row.try_get("body_html")?,
        metadata: stored_json::<Map<String, Value>>(row, "metadata", id),
        extras: stored_json::<MessageExtras>(row, "extras", id).map(Box::new),
        routing: stored_json::<MessageRouting>(row, "routing", id).map(Box::new),
    };
    Ok(ClaimedMessage {
        message,
        state: parsed(row, "state")?,
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

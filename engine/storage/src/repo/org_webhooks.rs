//! Outbound webhooks: an organization's endpoint (one per organization, its
//! secret sealed under the key ring and never read back by the API) and the
//! durable delivery queue the delivery worker drains.
//!
//! Events are produced in bulk: [`enqueue_outcomes`] turns a status batch
//! into delivery rows with one `INSERT … SELECT`, guarded by a one-time
//! `EXISTS` so that, while no organization has an enabled endpoint, it reads
//! nothing beyond that check. Deliveries are claimed `FOR UPDATE SKIP LOCKED`
//! with their `next_attempt_at` pushed forward as a lease, so a crashed node's
//! claims come back by themselves; a claim visits endpoints fairly (a quota
//! each, random order) and only enabled endpoints of active organizations.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::message::MessageEvent;
use msgengine_domain::OrganizationId;
use serde_json::Value;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::crypto::{Binding, KeyRing};
use crate::error::StoreError;
use crate::repo::rotation::{self, SealedColumn};

const SECRET_PURPOSE: &str = "org_webhook_endpoints.secret";

fn binding(org: Uuid, row: Uuid) -> Binding<'static> {
    Binding {
        purpose: SECRET_PURPOSE,
        organization_id: org,
        row_id: row,
    }
}

/// An endpoint as the API shows it (no secret, only its last four characters).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub secret_last4: String,
    pub enabled: bool,
    pub events: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a `PUT` sets. `secret: None` keeps the stored secret.
pub struct EndpointChange<'a> {
    pub url: &'a str,
    pub secret: Option<&'a str>,
    pub enabled: bool,
    pub events: Option<&'a [String]>,
}

const ENDPOINT_COLUMNS: &str = "id, url, secret_last4, enabled, events, created_at, updated_at";

fn endpoint(row: &Row) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        secret_last4: row.try_get("secret_last4")?,
        enabled: row.try_get("enabled")?,
        events: row.try_get("events")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn last4(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// The organization's endpoint, if any.
pub async fn get(
    client: &impl GenericClient,
    org: OrganizationId,
) -> Result<Option<Endpoint>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM org_webhook_endpoints WHERE organization_id = $1"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&org.0])
        .await?
        .as_ref()
        .map(endpoint)
        .transpose()
}

/// Creates or replaces the organization's endpoint. A new endpoint needs a
/// secret (`NotFound` otherwise, which the caller never lets happen).
/// Returns the endpoint and whether it was created.
pub async fn put(
    client: &impl GenericClient,
    ring: &KeyRing,
    org: OrganizationId,
    change: &EndpointChange<'_>,
) -> Result<(Endpoint, bool), StoreError> {
    let existing = get(client, org).await?;
    let id = existing.as_ref().map_or_else(Uuid::new_v4, |e| e.id);
    let sealed = change
        .secret
        .map(|s| ring.seal(s.as_bytes(), &binding(org.0, id)))
        .transpose()?;
    let last4 = change.secret.map(last4);
    let sql = if existing.is_some() {
        format!(
            "UPDATE org_webhook_endpoints SET
                 url = $3, secret = COALESCE($4, secret), secret_last4 = COALESCE($5, secret_last4),
                 enabled = $6, events = $7, updated_at = now()
              WHERE id = $1 AND organization_id = $2
          RETURNING {ENDPOINT_COLUMNS}"
        )
    } else if sealed.is_some() {
        // Two concurrent first PUTs: the unique organization_id makes one a conflict.
        format!(
            "INSERT INTO org_webhook_endpoints (id, organization_id, url, secret, secret_last4, enabled, events)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING {ENDPOINT_COLUMNS}"
        )
    } else {
        return Err(StoreError::NotFound);
    };
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &id,
                &org.0,
                &change.url,
                &sealed,
                &last4,
                &change.enabled,
                &change.events,
            ],
        )
        .await?;
    Ok((endpoint(&row)?, existing.is_none()))
}

/// What [`rotate_secrets`] did to the endpoints' signing secrets.
#[derive(Debug, Default)]
pub struct EndpointRotationReport {
    /// Endpoints whose secret was re-sealed under the newest key.
    pub rotated: u64,
    /// Endpoints already sealed under the newest key.
    pub current: u64,
    /// Endpoints whose secret could not be opened (unknown key or tampered):
    /// left untouched, by endpoint id.
    pub failed: Vec<(Uuid, String)>,
}

/// Re-seals every endpoint secret under the ring's newest key, `batch` rows
/// at a time (the `keys rotate` command; providers' secrets are
/// `providers::rotate_secrets`). Safe beside a running server: a row changed
/// meanwhile is left as the server wrote it, under the newest key already.
pub async fn rotate_secrets(
    client: &impl GenericClient,
    ring: &KeyRing,
    batch: i64,
) -> Result<EndpointRotationReport, StoreError> {
    let column = SealedColumn {
        table: "org_webhook_endpoints",
        column: "secret",
        binding,
    };
    let r = rotation::rotate(client, ring, &column, batch).await?;
    Ok(EndpointRotationReport {
        rotated: r.rotated,
        current: r.current,
        failed: r.failed,
    })
}

/// Deletes the organization's endpoint and its pending deliveries.
pub async fn delete(client: &impl GenericClient, org: OrganizationId) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM org_webhook_endpoints WHERE organization_id = $1")
        .await?;
    Ok(client.execute(&stmt, &[&org.0]).await? > 0)
}

/// Queues one event for the organization's endpoint (the test event).
/// Returns false when the organization has no endpoint.
pub async fn enqueue(
    client: &impl GenericClient,
    org: OrganizationId,
    event_id: Uuid,
    payload: &Value,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO org_webhook_deliveries (id, endpoint_id, organization_id, payload)
             SELECT $1, e.id, e.organization_id, $3 FROM org_webhook_endpoints e
              WHERE e.organization_id = $2",
        )
        .await?;
    Ok(client.execute(&stmt, &[&event_id, &org.0, payload]).await? > 0)
}

/// Whether any organization has an enabled endpoint (the status writer asks
/// this about once a second, so that without endpoints a batch costs nothing more).
pub async fn any_enabled(client: &impl GenericClient) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM org_webhook_endpoints WHERE enabled)")
        .await?;
    Ok(client.query_one(&stmt, &[]).await?.try_get(0)?)
}

/// Turns a status batch (message ids with the JSON arrays of events just
/// appended to them) into one `message.status` delivery per event, for
/// messages whose organization has an enabled endpoint whose filter admits
/// the event's state. The message's current provider ids and metadata go
/// into the payload. One statement; reads nothing past a one-time `EXISTS`
/// while no endpoint is enabled.
pub async fn enqueue_outcomes(
    client: &impl GenericClient,
    ids: &[Uuid],
    events: &[&[MessageEvent]],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let events: Vec<Json<&[MessageEvent]>> = events.iter().map(|e| Json(*e)).collect();
    let stmt = client
        .prepare_cached(
            "INSERT INTO org_webhook_deliveries (id, endpoint_id, organization_id, payload)
             SELECT x.event_id, x.endpoint_id, x.organization_id,
                    jsonb_build_object(
                        'id', x.event_id, 'type', 'message.status', 'messageId', x.message_id,
                        'status', x.item->>'state',
                        'providerId', COALESCE(x.item->'providerId', to_jsonb(x.provider_id)),
                        'providerMessageId', x.provider_message_id,
                        'metadata', x.metadata,
                        'occurredAt', x.item->'at', 'reason', x.item->'reason')
               FROM (SELECT gen_random_uuid() AS event_id, e.id AS endpoint_id,
                            m.organization_id, m.id AS message_id, m.provider_id,
                            m.provider_message_id, m.metadata, ev.item
                       FROM unnest($1::uuid[], $2::jsonb[]) AS v(id, events)
                       JOIN messages m ON m.id = v.id
                       JOIN org_webhook_endpoints e
                         ON e.organization_id = m.organization_id AND e.enabled
                       CROSS JOIN LATERAL jsonb_array_elements(
                             CASE WHEN jsonb_typeof(v.events) = 'array' THEN v.events
                                  ELSE '[]'::jsonb END) AS ev(item)
                      WHERE EXISTS (SELECT 1 FROM org_webhook_endpoints WHERE enabled)
                        AND ev.item ? 'state'
                        AND (e.events IS NULL OR ev.item->>'state' = ANY(e.events))) x",
        )
        .await?;
    Ok(client.execute(&stmt, &[&ids, &events]).await?)
}

/// A claimed delivery with what sending it needs (the secret opened).
pub struct ClaimedDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub url: String,
    pub secret: zeroize::Zeroizing<Vec<u8>>,
    pub payload: Value,
    /// Attempts including this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// How many deliveries one claim may take, overall and per endpoint.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits<'a> {
    /// Most deliveries in all.
    pub total: i64,
    /// Most deliveries of one endpoint (when it has none in flight).
    pub per_endpoint: i64,
    /// Endpoints with deliveries in flight on this node, and how many more
    /// each may take now (0: skipped).
    pub endpoint_room: &'a [(Uuid, i64)],
}

/// Claims due deliveries of enabled endpoints of active organizations,
/// fairly: endpoints are visited in random order and each gives at most its
/// room (`per_endpoint`, or what `endpoint_room` says) of its oldest due
/// rows, up to `total` in all, so one organization's backlog or slow
/// endpoint cannot take every slot nor hide the others' rows. The rows are
/// leased for `lease_secs` (their `next_attempt_at` moves forward and
/// `attempts` counts this try). Deliveries of a disabled endpoint or an
/// inactive organization stay queued, unclaimed, until it is enabled again
/// or they expire ([`expire`]). A row whose secret cannot be opened is
/// failed at once.
pub async fn claim_due(
    client: &impl GenericClient,
    ring: &KeyRing,
    limits: ClaimLimits<'_>,
    lease_secs: f64,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH picked AS (
                 SELECT d.id
                   FROM (SELECT e.id, COALESCE(r.room, $2) AS room
                           FROM org_webhook_endpoints e
                           JOIN organizations o ON o.id = e.organization_id AND o.is_active
                           LEFT JOIN unnest($3::uuid[], $4::int8[]) AS r(endpoint_id, room)
                                  ON r.endpoint_id = e.id
                          WHERE e.enabled AND COALESCE(r.room, $2) > 0
                          ORDER BY random()) e
                  CROSS JOIN LATERAL (
                        SELECT q.id FROM org_webhook_deliveries q
                         WHERE q.endpoint_id = e.id
                           AND q.delivered_at IS NULL AND q.failed_at IS NULL
                           AND q.next_attempt_at <= now()
                         ORDER BY q.next_attempt_at
                         LIMIT e.room
                           FOR UPDATE SKIP LOCKED) d
                  LIMIT $1)
             UPDATE org_webhook_deliveries d
                SET attempts = d.attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $5)
               FROM picked, org_webhook_endpoints e
              WHERE d.id = picked.id AND e.id = d.endpoint_id
          RETURNING d.id, d.endpoint_id, d.organization_id, e.url, e.secret, d.payload,
                    d.attempts, d.created_at",
        )
        .await?;
    let room_ids: Vec<Uuid> = limits.endpoint_room.iter().map(|(id, _)| *id).collect();
    let rooms: Vec<i64> = limits.endpoint_room.iter().map(|(_, n)| *n).collect();
    let rows = client
        .query(
            &stmt,
            &[
                &limits.total,
                &limits.per_endpoint,
                &room_ids,
                &rooms,
                &lease_secs,
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let endpoint_id: Uuid = row.try_get("endpoint_id")?;
        let org: Uuid = row.try_get("organization_id")?;
        let sealed: Vec<u8> = row.try_get("secret")?;
        let secret = match ring.open(&sealed, &binding(org, endpoint_id)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(delivery = %id, error = %e, "webhook endpoint secret unreadable");
                finish(client, id, Err(("endpoint secret unreadable", None)), None).await?;
                continue;
            }
        };
        out.push(ClaimedDelivery {
            id,
            endpoint_id,
            url: row.try_get("url")?,
            secret,
            payload: row.try_get("payload")?,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
        });
    }
    Ok(out)
}

/// Gives a claimed delivery back untried: due at once, its attempt uncounted.
pub async fn release(client: &impl GenericClient, id: Uuid) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE org_webhook_deliveries SET attempts = attempts - 1, next_attempt_at = now()
              WHERE id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .await?;
    client.execute(&stmt, &[&id]).await?;
    Ok(())
}

/// Fails up to `limit` unfinished deliveries created before `before` (older
/// than the delivery lifetime: whether their endpoint kept failing, was
/// disabled, or their organization was), so the queue of a disabled
/// endpoint is bounded. Returns how many.
pub async fn expire(
    client: &impl GenericClient,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE org_webhook_deliveries SET failed_at = now(),
                    last_error = 'expired: not delivered within the delivery lifetime'
              WHERE id IN (SELECT id FROM org_webhook_deliveries
                            WHERE delivered_at IS NULL AND failed_at IS NULL AND created_at < $1
                            LIMIT $2
                              FOR UPDATE SKIP LOCKED)",
        )
        .await?;
    Ok(client.execute(&stmt, &[&before, &limit]).await?)
}

/// Records an attempt's result: `Ok(status)` delivered; `Err((error,
/// status))` with `retry_at` rescheduled, or failed for good when `None`.
pub async fn finish(
    client: &impl GenericClient,
    id: Uuid,
    result: Result<i32, (&str, Option<i32>)>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE org_webhook_deliveries SET
                 delivered_at = CASE WHEN $2 THEN now() END,
                 failed_at = CASE WHEN NOT $2 AND $5::timestamptz IS NULL THEN now() END,
                 next_attempt_at = COALESCE($5, next_attempt_at),
                 last_status = $3, last_error = $4
              WHERE id = $1",
        )
        .await?;
    let (ok, status, error) = match result {
        Ok(status) => (true, Some(status), None),
        Err((error, status)) => (false, status, Some(error)),
    };
    client
        .execute(&stmt, &[&id, &ok, &status, &error, &retry_at])
        .await?;
    Ok(())
}

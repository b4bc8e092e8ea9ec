//! Single-use webhook nonces (Mailgun's signed `token`): remembered per
//! provider connection until the end of their timestamp window, so a
//! signature is honoured for one body only, on every node sharing the
//! database.
//!
//! Invariant: a nonce is stored with the SHA-256 of the first body that
//! carried it; [`claim`] answers whether a request may proceed without ever
//! overwriting that first digest.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::error::StoreError;

/// What a claim of a nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// First seen now: proceed.
    First,
    /// Seen before with the same body: a retry of the same request, harmless
    /// (its events carry the same ids).
    Repeat,
    /// Seen before with a different body: a replayed signature, refuse.
    Replayed,
}

/// Records `nonce` for `provider_id` with the body's digest, or compares
/// with the one recorded first.
pub async fn claim(
    client: &impl GenericClient,
    provider_id: Uuid,
    nonce: &str,
    body_sha256: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<NonceUse, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH ins AS (
                 INSERT INTO webhook_nonces (provider_id, nonce, body_sha256, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (provider_id, nonce) DO NOTHING
                 RETURNING body_sha256, true AS fresh)
             SELECT body_sha256, fresh FROM ins
             UNION ALL
             SELECT body_sha256, false AS fresh FROM webhook_nonces
              WHERE provider_id = $1 AND nonce = $2 AND NOT EXISTS (SELECT 1 FROM ins)",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&provider_id, &nonce, &body_sha256, &expires_at])
        .await?;
    let first = match rows.first() {
        Some(row) => {
            if row.try_get::<_, bool>("fresh")? {
                return Ok(NonceUse::First);
            }
            Some(row.try_get::<_, Vec<u8>>("body_sha256")?)
        }
        // A concurrent claim committed after this statement's snapshot: its
        // row is visible to a new statement.
        None => recorded(client, provider_id, nonce).await?,
    };
    Ok(match first {
        Some(digest) if digest == body_sha256 => NonceUse::Repeat,
        _ => NonceUse::Replayed,
    })
}

async fn recorded(
    client: &impl GenericClient,
    provider_id: Uuid,
    nonce: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT body_sha256 FROM webhook_nonces WHERE provider_id = $1 AND nonce = $2",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&provider_id, &nonce]).await?;
    Ok(row.map(|r| r.try_get("body_sha256")).transpose()?)
}

/// Deletes up to `limit` nonces past their window; how many went.
pub async fn sweep_expired(client: &impl GenericClient, limit: i64) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "DELETE FROM webhook_nonces WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM webhook_nonces WHERE expires_at < now() LIMIT $1))",
        )
        .await?;
    Ok(client.execute(&stmt, &[&limit]).await?)
}

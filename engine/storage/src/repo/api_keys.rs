//! Organization API keys. Only a SHA-256 of each key is stored; the key itself
//! exists once, in the response that issued it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::{ApiKeyId, OrganizationId};
use tokio_postgres::Row;

use crate::error::StoreError;

/// An API key's record (never the key).
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub organization_id: OrganizationId,
    pub name: String,
    /// The first characters of the key, to recognise it in a list.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The identity a valid key authenticates as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_id: ApiKeyId,
    pub organization_id: OrganizationId,
}

const COLUMNS: &str = "id, organization_id, name, prefix, created_at, revoked_at";

fn from_row(row: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: ApiKeyId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// The fields of a key being issued.
pub struct NewApiKey<'a> {
    pub id: ApiKeyId,
    pub organization_id: OrganizationId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a [u8],
}

/// Stores a newly issued key's hash.
pub async fn insert(
    client: &impl GenericClient,
    key: &NewApiKey<'_>,
) -> Result<ApiKey, StoreError> {
    let sql = format!(
        "INSERT INTO api_keys (id, organization_id, name, prefix, key_hash)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &key.id.0,
                &key.organization_id.0,
                &key.name,
                &key.prefix,
                &key.key_hash,
            ],
        )
        .await?;
    from_row(&row)
}

/// The identity of an unrevoked key of an active organization, by the key's hash.
pub async fn find_identity(
    client: &impl GenericClient,
    key_hash: &[u8],
) -> Result<Option<KeyIdentity>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT k.id, k.organization_id
               FROM api_keys k
               JOIN organizations o ON o.id = k.organization_id
              WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND o.is_active",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&key_hash]).await? else {
        return Ok(None);
    };
    Ok(Some(KeyIdentity {
        key_id: ApiKeyId(row.try_get(0)?),
        organization_id: OrganizationId(row.try_get(1)?),
    }))
}

/// An organization's keys, newest first.
pub async fn list(
    client: &impl GenericClient,
    org: OrganizationId,
) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE organization_id = $1 ORDER BY id DESC");
    let stmt = client.prepare_cached(&sql).await?;
    client
        .query(&stmt, &[&org.0])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Revokes a key of `org`. Idempotent; `NotFound` when the key is not that organization's.
pub async fn revoke(
    client: &impl GenericClient,
    org: OrganizationId,
    key_id: ApiKeyId,
) -> Result<ApiKey, StoreError> {
    let sql = format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
          WHERE id = $1 AND organization_id = $2 RETURNING {COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(&stmt, &[&key_id.0, &org.0])
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

//! Provider connections of every channel, in one table.
//!
//! Non-secret settings are stored as `jsonb`; all of a row's secret fields are
//! sealed together into `secrets` under the key ring, bound to the row's
//! organization and id (see [`crate::crypto`]). Reads open the secrets, so a
//! caller always holds a complete, typed spec. Deleting keeps the row (for
//! message history) but wipes its secrets.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::provider::{self, ProviderSpec, SplitSpec};
use msgengine_domain::{OrganizationId, ProviderId};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::crypto::{Binding, KeyRing};
use crate::error::StoreError;
use crate::repo::rotation::{self, SealedColumn};

/// The `purpose` part of the secrets' binding.
pub const SECRETS_PURPOSE: &str = "providers.secrets";

/// A provider connection with its opened spec.
#[derive(Debug, Clone)]
pub struct ProviderRecord<S> {
    pub id: ProviderId,
    pub organization_id: OrganizationId,
    pub spec: S,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, organization_id, provider_type, name, is_active, settings, secrets, created_at, updated_at";

fn binding(org: Uuid, row: Uuid) -> Binding<'static> {
    Binding {
        purpose: SECRETS_PURPOSE,
        organization_id: org,
        row_id: row,
    }
}

fn seal(
    ring: &KeyRing,
    org: Uuid,
    id: Uuid,
    secrets: &Map<String, Value>,
) -> Result<Option<Vec<u8>>, StoreError> {
    if secrets.is_empty() {
        return Ok(None);
    }
    let plain = zeroize::Zeroizing::new(
        serde_json::to_vec(secrets).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    );
    Ok(Some(ring.seal(&plain, &binding(org, id))?))
}

fn from_row<S: ProviderSpec>(ring: &KeyRing, row: &Row) -> Result<ProviderRecord<S>, StoreError> {
    let id: Uuid = row.try_get("id")?;
    let org: Uuid = row.try_get("organization_id")?;
    let settings = match row.try_get::<_, Value>("settings")? {
        Value::Object(map) => map,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "provider {id}: settings is not an object"
            )))
        }
    };
    let secrets = match row.try_get::<_, Option<Vec<u8>>>("secrets")? {
        None => Map::new(),
        Some(sealed) => {
            let plain = ring.open(&sealed, &binding(org, id))?;
            serde_json::from_slice(&plain).map_err(|_| {
                StoreError::Corrupt(format!("provider {id}: secrets are not a JSON object"))
            })?
        }
    };
    let provider_type: String = row.try_get("provider_type")?;
    let name: String = row.try_get("name")?;
    let spec = provider::join::<S>(
        &name,
        row.try_get("is_active")?,
        &provider_type,
        SplitSpec { settings, secrets },
    )
    .map_err(|e| StoreError::Corrupt(format!("provider {id}: {e}")))?;
    Ok(ProviderRecord {
        id: ProviderId(id),
        organization_id: OrganizationId(org),
        spec,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Stores a new connection. A duplicate name in the channel is `Conflict`.
pub async fn insert<S: ProviderSpec>(
    client: &impl GenericClient,
    ring: &KeyRing,
    org: OrganizationId,
    id: ProviderId,
    spec: &S,
) -> Result<ProviderRecord<S>, StoreError> {
    let parts = provider::split(spec);
    let sealed = seal(ring, org.0, id.0, &parts.secrets)?;
    let sql = format!(
        "INSERT INTO providers (id, organization_id, channel, provider_type, name, is_active, settings, secrets)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &id.0,
                &org.0,
                &S::CHANNEL.as_str(),
                &spec.provider_type(),
                &spec.name(),
                &spec.is_active(),
                &Value::Object(parts.settings),
                &sealed,
            ],
        )
        .await?;
    from_row(ring, &row)
}

/// Locks the organization's set of connections until the caller's transaction
/// ends and counts its live (not deleted) connections, all channels together.
/// Two creates in one organization serialise here, so a cap checked against
/// this count holds under concurrency (`FOR NO KEY UPDATE`: foreign-key checks
/// of other tables on the organization row are not blocked).
pub async fn lock_and_count_live(
    client: &impl GenericClient,
    org: OrganizationId,
) -> Result<i64, StoreError> {
    super::organizations::lock(client, org).await?;
    let count = client
        .prepare_cached(
            "SELECT count(*) FROM providers WHERE organization_id = $1 AND deleted_at IS NULL",
        )
        .await?;
    Ok(client.query_one(&count, &[&org.0]).await?.try_get(0)?)
}

/// The organization's live connections of the spec's channel, oldest first.
pub async fn list<S: ProviderSpec>(
    client: &impl GenericClient,
    ring: &KeyRing,
    org: OrganizationId,
) -> Result<Vec<ProviderRecord<S>>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM providers
          WHERE organization_id = $1 AND channel = $2 AND deleted_at IS NULL
          ORDER BY created_at, id"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &[&org.0, &S::CHANNEL.as_str()]).await?;
    rows.iter().map(|r| from_row(ring, r)).collect()
}

/// One live connection of the organization; another tenant's id is `NotFound`.
/// With `for_update` the row is locked until the caller's transaction ends.
pub async fn get<S: ProviderSpec>(
    client: &impl GenericClient,
    ring: &KeyRing,
    org: OrganizationId,
    id: ProviderId,
    for_update: bool,
) -> Result<ProviderRecord<S>, StoreError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT {COLUMNS} FROM providers
          WHERE id = $1 AND organization_id = $2 AND channel = $3 AND deleted_at IS NULL{lock}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(&stmt, &[&id.0, &org.0, &S::CHANNEL.as_str()])
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(ring, &row)
}

/// A live connection of channel `S` by id alone, whatever its organization:
/// for inbound webhooks, which carry only the provider id in their URL and
/// are authenticated afterwards by the connection's own webhook secret.
pub async fn get_for_webhook<S: ProviderSpec>(
    client: &impl GenericClient,
    ring: &KeyRing,
    id: ProviderId,
) -> Result<ProviderRecord<S>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM providers
          WHERE id = $1 AND channel = $2 AND deleted_at IS NULL"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(&stmt, &[&id.0, &S::CHANNEL.as_str()])
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(ring, &row)
}

/// Replaces a connection's configuration with `spec` (already merged and validated).
pub async fn update<S: ProviderSpec>(
    client: &impl GenericClient,
    ring: &KeyRing,
    org: OrganizationId,
    id: ProviderId,
    spec: &S,
) -> Result<ProviderRecord<S>, StoreError> {
    let parts = provider::split(spec);
    let sealed = seal(ring, org.0, id.0, &parts.secrets)?;
    let sql = format!(
        "UPDATE providers
            SET provider_type = $4, name = $5, is_active = $6, settings = $7, secrets = $8, updated_at = now()
          WHERE id = $1 AND organization_id = $2 AND channel = $3 AND deleted_at IS NULL
      RETURNING {COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &id.0,
                &org.0,
                &S::CHANNEL.as_str(),
                &spec.provider_type(),
                &spec.name(),
                &spec.is_active(),
                &Value::Object(parts.settings),
                &sealed,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(ring, &row)
}

/// Deletes a connection: it stops being listed or used, its secrets are wiped,
/// and the row stays for history. `NotFound` if it is not the organization's.
pub async fn delete<S: ProviderSpec>(
    client: &impl GenericClient,
    org: OrganizationId,
    id: ProviderId,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE providers SET deleted_at = now(), is_active = false, secrets = NULL, updated_at = now()
              WHERE id = $1 AND organization_id = $2 AND channel = $3 AND deleted_at IS NULL",
        )
        .await?;
    match client
        .execute(&stmt, &[&id.0, &org.0, &S::CHANNEL.as_str()])
        .await?
    {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// Progress of a key rotation pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Rows whose secrets were re-sealed under the newest key.
    pub rotated: u64,
    /// Rows already sealed under the newest key.
    pub current: u64,
    /// Rows whose secrets could not be opened (unknown key or tampered): left untouched.
    pub failed: Vec<(ProviderId, String)>,
}

/// Re-seals every provider's secrets under the ring's newest key, in batches of
/// `batch` rows. Each row is re-sealed with a compare-and-set on the old
/// ciphertext, so it is safe alongside a running server and safe to interrupt:
/// a re-run continues where it stopped (old keys stay in the ring until done).
pub async fn rotate_secrets(
    client: &impl GenericClient,
    ring: &KeyRing,
    batch: i64,
) -> Result<RotationReport, StoreError> {
    let column = SealedColumn {
        table: "providers",
        column: "secrets",
        binding,
    };
    let r = rotation::rotate(client, ring, &column, batch).await?;
    Ok(RotationReport {
        rotated: r.rotated,
        current: r.current,
        failed: r
            .failed
            .into_iter()
            .map(|(id, e)| (ProviderId(id), e))
            .collect(),
    })
}

/// The names of some of the organization's connections, deleted ones
/// included (a message's routing explanation names them).
pub async fn names(
    client: &impl GenericClient,
    org: OrganizationId,
    ids: &[uuid::Uuid],
) -> Result<Vec<(uuid::Uuid, String)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client
        .prepare_cached(
            "SELECT id, name FROM providers WHERE organization_id = $1 AND id = ANY($2)",
        )
        .await?;
    client
        .query(&stmt, &[&org.0, &ids])
        .await?
        .iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("name")?)))
        .collect()
}

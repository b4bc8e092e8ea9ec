//! Organizations (tenants).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::OrganizationId;
use tokio_postgres::Row;

use crate::error::StoreError;

/// An organization as stored.
#[derive(Debug, Clone)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, is_active, created_at, updated_at, disabled_at";

fn from_row(row: &Row) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: OrganizationId(row.try_get("id")?),
        name: row.try_get("name")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

/// Inserts a new, active organization.
pub async fn insert(
    client: &impl GenericClient,
    id: OrganizationId,
    name: &str,
) -> Result<Organization, StoreError> {
    let sql = format!("INSERT INTO organizations (id, name) VALUES ($1, $2) RETURNING {COLUMNS}");
    let stmt = client.prepare_cached(&sql).await?;
    from_row(&client.query_one(&stmt, &[&id.0, &name]).await?)
}

/// One organization by id.
/// Takes the organization's row lock for the rest of the transaction: what
/// changes its providers, rules or quiet hours takes it, so each change is
/// checked against a state no other can change meanwhile. `NotFound` when
/// there is no such organization.
pub async fn lock(client: &impl GenericClient, org: OrganizationId) -> Result<(), StoreError> {
    let lock = client
        .prepare_cached("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    client
        .query_opt(&lock, &[&org.0])
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(())
}

pub async fn get(
    client: &impl GenericClient,
    id: OrganizationId,
) -> Result<Organization, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM organizations WHERE id = $1");
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Organizations in id (creation) order, after `after`, at most `limit`.
pub async fn list(
    client: &impl GenericClient,
    after: Option<OrganizationId>,
    limit: i64,
) -> Result<Vec<Organization>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM organizations WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let after = after.map(|a| a.0);
    client
        .query(&stmt, &[&after, &limit])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Disables an organization (idempotent: a second call keeps the first time).
pub async fn disable(
    client: &impl GenericClient,
    id: OrganizationId,
) -> Result<Organization, StoreError> {
    let sql = format!(
        "UPDATE organizations
            SET is_active = false,
                disabled_at = COALESCE(disabled_at, now()),
                updated_at = CASE WHEN is_active THEN now() ELSE updated_at END
          WHERE id = $1
      RETURNING {COLUMNS}"
    );
    update_one(client, &sql, id).await
}

/// Enables an organization again (idempotent: an active one is answered unchanged).
pub async fn enable(
    client: &impl GenericClient,
    id: OrganizationId,
) -> Result<Organization, StoreError> {
    let sql = format!(
        "UPDATE organizations
            SET is_active = true,
                disabled_at = NULL,
                updated_at = CASE WHEN is_active THEN updated_at ELSE now() END
          WHERE id = $1
      RETURNING {COLUMNS}"
    );
    update_one(client, &sql, id).await
}

/// Runs an `UPDATE … WHERE id = $1 RETURNING` of one organization.
async fn update_one(
    client: &impl GenericClient,
    sql: &str,
    id: OrganizationId,
) -> Result<Organization, StoreError> {
    let stmt = client.prepare_cached(sql).await?;
    let row = client
        .query_opt(&stmt, &[&id.0])
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Whether each of `ids` is active (unknown ids are left out).
pub async fn active_flags(
    client: &impl GenericClient,
    ids: &[uuid::Uuid],
) -> Result<Vec<(OrganizationId, bool)>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT id, is_active FROM organizations WHERE id = ANY($1)")
        .await?;
    client
        .query(&stmt, &[&ids])
        .await?
        .iter()
        .map(|r| Ok((OrganizationId(r.try_get(0)?), r.try_get(1)?)))
        .collect()
}

/// Sets an organization's admission rate (messages per second, burst).
pub async fn set_rate_limit(
    client: &impl GenericClient,
    id: OrganizationId,
    per_second: i32,
    burst: i32,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE organizations SET rate_per_second = $2, rate_burst = $3, updated_at = now() WHERE id = $1",
        )
        .await?;
    match client.execute(&stmt, &[&id.0, &per_second, &burst]).await? {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// An organization's admission rate and burst as stored (`None` where it
/// sets none); `None` when there is no such organization.
pub async fn rate_limit(
    client: &impl GenericClient,
    id: OrganizationId,
) -> Result<Option<(Option<i32>, Option<i32>)>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT rate_per_second, rate_burst FROM organizations WHERE id = $1")
        .await?;
    match client.query_opt(&stmt, &[&id.0]).await? {
        Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
        None => Ok(None),
    }
}

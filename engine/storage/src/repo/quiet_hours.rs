//! An organization's quiet hours: one row, the settings as the domain type's
//! JSON. The caller validates before writing.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::routing::quiet::QuietHours;
use msgengine_domain::OrganizationId;

use crate::error::StoreError;

/// Stored quiet hours.
#[derive(Debug, Clone, PartialEq)]
pub struct QuietRecord {
    pub quiet: QuietHours,
    pub updated_at: DateTime<Utc>,
}

fn from_row(row: &tokio_postgres::Row) -> Result<QuietRecord, StoreError> {
    let settings: serde_json::Value = row.try_get("settings")?;
    let quiet = serde_json::from_value(settings)
        .map_err(|e| StoreError::Corrupt(format!("quiet hours: {e}")))?;
    Ok(QuietRecord {
        quiet,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The organization's quiet hours, if it has set them.
pub async fn get(
    client: &impl GenericClient,
    org: OrganizationId,
) -> Result<Option<QuietRecord>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT settings, updated_at FROM routing_quiet_hours WHERE organization_id = $1",
        )
        .await?;
    client
        .query_opt(&stmt, &[&org.0])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Sets (or replaces) them.
pub async fn put(
    client: &impl GenericClient,
    org: OrganizationId,
    quiet: &QuietHours,
) -> Result<QuietRecord, StoreError> {
    let settings = serde_json::to_value(quiet)
        .map_err(|e| StoreError::Corrupt(format!("quiet hours: {e}")))?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO routing_quiet_hours (organization_id, settings) VALUES ($1, $2)
             ON CONFLICT (organization_id) DO UPDATE SET settings = $2, updated_at = now()
             RETURNING settings, updated_at",
        )
        .await?;
    from_row(&client.query_one(&stmt, &[&org.0, &settings]).await?)
}

/// Removes them; `false` when there were none.
pub async fn delete(client: &impl GenericClient, org: OrganizationId) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM routing_quiet_hours WHERE organization_id = $1")
        .await?;
    Ok(client.execute(&stmt, &[&org.0]).await? > 0)
}

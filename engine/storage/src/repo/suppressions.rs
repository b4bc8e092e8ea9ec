//! An organization's suppression list: recipients it must not send to.
//! `recipient` is normalised by the caller (lower-case email, E.164 number).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::OrganizationId;
use uuid::Uuid;

use crate::error::StoreError;

/// A suppressed recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub recipient: String,
    /// `bounce`, `complaint`, `unsubscribe` or `manual`.
    pub reason: String,
    pub provider_id: Option<Uuid>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn from_row(row: &tokio_postgres::Row) -> Result<Suppression, StoreError> {
    Ok(Suppression {
        recipient: row.try_get("recipient")?,
        reason: row.try_get("reason")?,
        provider_id: row.try_get("provider_id")?,
        note: row.try_get("note")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Adds (or keeps) a suppression; the first reason recorded stays. Returns
/// the stored row and whether it is new.
pub async fn add(
    client: &impl GenericClient,
    org: OrganizationId,
    recipient: &str,
    reason: &str,
    provider_id: Option<Uuid>,
    note: Option<&str>,
) -> Result<(Suppression, bool), StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH ins AS (
                 INSERT INTO suppressions (organization_id, recipient, reason, provider_id, note)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (organization_id, recipient) DO NOTHING
                 RETURNING recipient, reason, provider_id, note, created_at, true AS fresh)
             SELECT * FROM ins
             UNION ALL
             SELECT recipient, reason, provider_id, note, created_at, false AS fresh
               FROM suppressions WHERE organization_id = $1 AND recipient = $2
                AND NOT EXISTS (SELECT 1 FROM ins)",
        )
        .await?;
    let row = client
        .query_one(&stmt, &[&org.0, &recipient, &reason, &provider_id, &note])
        .await?;
    let fresh: bool = row.try_get("fresh")?;
    Ok((from_row(&row)?, fresh))
}

/// Removes a suppression; `false` when there was none.
pub async fn remove(
    client: &impl GenericClient,
    org: OrganizationId,
    recipient: &str,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM suppressions WHERE organization_id = $1 AND recipient = $2")
        .await?;
    Ok(client.execute(&stmt, &[&org.0, &recipient]).await? > 0)
}

/// One suppression.
pub async fn get(
    client: &impl GenericClient,
    org: OrganizationId,
    recipient: &str,
) -> Result<Option<Suppression>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT recipient, reason, provider_id, note, created_at FROM suppressions
              WHERE organization_id = $1 AND recipient = $2",
        )
        .await?;
    client
        .query_opt(&stmt, &[&org.0, &recipient])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// A page of the list, in recipient order after `after`.
pub async fn list(
    client: &impl GenericClient,
    org: OrganizationId,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Suppression>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT recipient, reason, provider_id, note, created_at FROM suppressions
              WHERE organization_id = $1 AND ($2::text IS NULL OR recipient > $2)
              ORDER BY recipient LIMIT $3",
        )
        .await?;
    client
        .query(&stmt, &[&org.0, &after, &limit])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Every suppressed recipient of the organization with its reason (for the
/// engine's in-memory check at accept time).
pub async fn all_recipients(
    client: &impl GenericClient,
    org: OrganizationId,
) -> Result<Vec<(String, String)>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT recipient, reason FROM suppressions WHERE organization_id = $1")
        .await?;
    client
        .query(&stmt, &[&org.0])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

//! The append-only audit log. Rows carry field *names*, never values.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use msgengine_domain::{ApiKeyId, OrganizationId};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A tenant request, authenticated by this key.
    ApiKey(ApiKeyId),
    /// The operator, through the admin API.
    Admin,
    /// The engine itself (key rotation, sweeps).
    System,
}

impl Actor {
    fn parts(self) -> (&'static str, Option<Uuid>) {
        match self {
            Actor::ApiKey(id) => ("api_key", Some(id.0)),
            Actor::Admin => ("admin", None),
            Actor::System => ("system", None),
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub organization_id: OrganizationId,
    pub actor: Actor,
    /// Dotted verb: `provider.create`, `api_key.revoke`...
    pub action: &'a str,
    /// `provider`, `api_key`, `organization`.
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    /// Names of the fields that changed (never their values).
    pub changed_fields: &'a [String],
    /// Non-secret details (a provider's channel and type, a test's outcome).
    pub details: Value,
}

/// A stored entry.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub organization_id: OrganizationId,
    pub actor_type: String,
    pub actor_key_id: Option<ApiKeyId>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub changed_fields: Vec<String>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// Appends an entry (join the caller's transaction so it commits with the change).
pub async fn append(
    client: &impl GenericClient,
    entry: &NewAuditEntry<'_>,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO audit_log (organization_id, actor_type, actor_key_id, action,
                                    target_type, target_id, changed_fields, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    let (actor_type, actor_key_id) = entry.actor.parts();
    client
        .execute(
            &stmt,
            &[
                &entry.organization_id.0,
                &actor_type,
                &actor_key_id,
                &entry.action,
                &entry.target_type,
                &entry.target_id,
                &entry.changed_fields,
                &entry.details,
            ],
        )
        .await?;
    Ok(())
}

/// An organization's entries, newest first, older than `before` (an entry id), at most `limit`.
pub async fn list(
    client: &impl GenericClient,
    org: OrganizationId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, organization_id, actor_type, actor_key_id, action, target_type,
                    target_id, changed_fields, details, created_at
               FROM audit_log
              WHERE organization_id = $1 AND ($2::bigint IS NULL OR id < $2)
              ORDER BY id DESC
              LIMIT $3",
        )
        .await?;
    let rows = client.query(&stmt, &[&org.0, &before, &limit]).await?;
    rows.iter()
        .map(|row| {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                organization_id: OrganizationId(row.try_get("organization_id")?),
                actor_type: row.try_get("actor_type")?,
                actor_key_id: row
                    .try_get::<_, Option<Uuid>>("actor_key_id")?
                    .map(ApiKeyId),
                action: row.try_get("action")?,
                target_type: row.try_get("target_type")?,
                target_id: row.try_get("target_id")?,
                changed_fields: row.try_get("changed_fields")?,
                details: row.try_get("details")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

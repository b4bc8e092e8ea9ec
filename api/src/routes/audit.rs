//! `GET /api/audit`: the organization's audit trail, newest first.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_domain::ApiKeyId;
use msgengine_storage::repo::audit::{self, AuditEntry};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::page_limit;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many (1-500, default 100).
    limit: Option<i64>,
    /// Entries older than this entry id (the previous page's `nextBefore`).
    before: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditView {
    id: i64,
    actor_type: String,
    actor_key_id: Option<ApiKeyId>,
    action: String,
    target_type: String,
    target_id: Option<uuid::Uuid>,
    changed_fields: Vec<String>,
    details: Value,
    created_at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            actor_type: e.actor_type,
            actor_key_id: e.actor_key_id,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            changed_fields: e.changed_fields,
            details: e.details,
            created_at: e.created_at,
        }
    }
}

pub async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let client = state.pool.get().await?;
    let entries = audit::list(&client, tenant.organization_id, query.before, limit).await?;
    let next_before = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let views: Vec<AuditView> = entries.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({"entries": views, "nextBefore": next_before})))
}

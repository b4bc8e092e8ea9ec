//! `GET /api/audit`: the organization's audit trail, newest first.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::audit::AuditEntry;
use msgengine_domain::ApiKeyId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditList {
    entries: Vec<AuditView>,
    next_before: Option<i64>,
}

pub async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.app.audit_trail(*tenant, query.before, limit).await?;
    Ok(HttpResponse::Ok().json(AuditList {
        entries: page.entries.into_iter().map(Into::into).collect(),
        next_before: page.next_before,
    }))
}

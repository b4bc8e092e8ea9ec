//! `/api/suppressions`: the organization's suppression list. Bounces,
//! complaints and unsubscribes reported by providers add to it on their own;
//! these routes list, add and remove entries. A send to a suppressed
//! recipient is refused (`recipient_suppressed`).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::suppress::normalize;
use msgengine_domain::validate as v;
use msgengine_storage::repo::audit::{self, Actor, NewAuditEntry};
use msgengine_storage::repo::suppressions::{self, Suppression};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{page_limit, Json};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    /// The previous page's `nextAfter`.
    after: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SuppressionView {
    recipient: String,
    reason: String,
    provider_id: Option<uuid::Uuid>,
    note: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Suppression> for SuppressionView {
    fn from(s: Suppression) -> Self {
        Self {
            recipient: s.recipient,
            reason: s.reason,
            provider_id: s.provider_id,
            note: s.note,
            created_at: s.created_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddBody {
    recipient: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

const REASONS: [&str; 4] = ["bounce", "complaint", "unsubscribe", "manual"];

/// An email address or E.164 number, normalised; 422 otherwise.
fn recipient(field: &str, raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    if raw.contains('@') {
        v::email(field, raw)?;
        Ok(normalize(raw))
    } else {
        Ok(v::e164(field, raw)?)
    }
}

pub async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    // PostgreSQL text cannot hold U+0000: refuse it here rather than fail the query.
    if query.after.as_deref().is_some_and(|a| a.contains('\0')) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "after must not contain a NUL character",
        )
        .with_field("after"));
    }
    let client = state.pool.get().await?;
    let page = suppressions::list(
        &client,
        tenant.organization_id,
        query.after.as_deref(),
        limit,
    )
    .await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|s| s.recipient.clone()))
        .flatten();
    let items: Vec<SuppressionView> = page.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({"suppressions": items, "nextAfter": next})))
}

pub async fn add(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<AddBody>,
) -> Result<HttpResponse, ApiError> {
    let recipient = recipient("recipient", &body.recipient)?;
    let reason = body.reason.as_deref().unwrap_or("manual");
    if !REASONS.contains(&reason) {
        return Err(ApiError::from(v::ValidationError::new(
            "reason",
            "invalid_reason",
            "reason is one of bounce, complaint, unsubscribe, manual",
        )));
    }
    if let Some(note) = &body.note {
        v::text("note", note, 500)?;
    }
    let org = tenant.organization_id;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (stored, fresh) =
        suppressions::add(&tx, org, &recipient, reason, None, body.note.as_deref()).await?;
    if fresh {
        audit::append(
            &tx,
            &NewAuditEntry {
                organization_id: org,
                actor: Actor::ApiKey(tenant.key_id),
                action: "suppression.add",
                target_type: "suppression",
                target_id: None,
                changed_fields: &[],
                details: json!({"reason": reason}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    state
        .engine
        .suppressions()
        .add(org, &stored.recipient, &stored.reason);
    let status = if fresh {
        actix_web::http::StatusCode::CREATED
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(SuppressionView::from(stored)))
}

pub async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let recipient =
        recipient("recipient", &path).map_err(|_| ApiError::not_found("suppression"))?;
    let client = state.pool.get().await?;
    match suppressions::get(&client, tenant.organization_id, &recipient).await? {
        Some(s) => Ok(HttpResponse::Ok().json(SuppressionView::from(s))),
        None => Err(ApiError::not_found("suppression")),
    }
}

pub async fn remove(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let recipient =
        recipient("recipient", &path).map_err(|_| ApiError::not_found("suppression"))?;
    let org = tenant.organization_id;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if !suppressions::remove(&tx, org, &recipient).await? {
        return Err(ApiError::not_found("suppression"));
    }
    audit::append(
        &tx,
        &NewAuditEntry {
            organization_id: org,
            actor: Actor::ApiKey(tenant.key_id),
            action: "suppression.remove",
            target_type: "suppression",
            target_id: None,
            changed_fields: &[],
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    state.engine.suppressions().remove(org, &recipient);
    Ok(HttpResponse::NoContent().finish())
}

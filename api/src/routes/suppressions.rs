//! `/api/suppressions`: the organization's suppression list. Bounces,
//! complaints and unsubscribes reported by providers add to it on their own;
//! these routes list, add and remove entries. A send to a suppressed
//! recipient is refused (`recipient_suppressed`). The use cases are
//! `msgengine_actors::app::suppressions`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use msgengine_actors::app::suppressions::{NewSuppression, Suppression};
use serde::{Deserialize, Serialize};

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SuppressionList {
    suppressions: Vec<SuppressionView>,
    next_after: Option<String>,
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

pub async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state
        .app
        .suppressions(*tenant, query.after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(SuppressionList {
        suppressions: page.suppressions.into_iter().map(Into::into).collect(),
        next_after: page.next_after,
    }))
}

pub async fn add(
    tenant: Tenant,
    state: web::Data<AppState>,
    Json(body): Json<AddBody>,
) -> Result<HttpResponse, ApiError> {
    let new = NewSuppression {
        recipient: &body.recipient,
        reason: body.reason.as_deref(),
        note: body.note.as_deref(),
    };
    let (stored, fresh) = state.app.add_suppression(*tenant, new).await?;
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(SuppressionView::from(stored)))
}

pub async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = state.app.suppression(*tenant, &path).await?;
    Ok(HttpResponse::Ok().json(SuppressionView::from(found)))
}

pub async fn remove(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.app.remove_suppression(*tenant, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

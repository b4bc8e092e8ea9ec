//! Operations beside sending, asked of one provider connection:
//! `POST /api/email/providers/{id}/verify-domain`,
//! `GET /api/email/providers/{id}/stats?from=&to=`,
//! `GET|POST /api/whatsapp/providers/{id}/templates`.
//!
//! The use cases (`msgengine_actors::app::manage`) make the real,
//! authenticated call through the connection's adapter; a provider type
//! without the operation answers 422 `unsupported_operation` in words, a
//! provider that fails answers 502 `provider_error` with its (secret-free)
//! reason.

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use msgengine_actors::app::manage::{TemplateDraft, TemplateInfo};
use msgengine_domain::ProviderId;
use serde::{Deserialize, Serialize};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::state::AppState;

fn id(path: &str) -> Result<ProviderId, ApiError> {
    Ok(ProviderId(parse_id(path, "provider")?))
}

pub async fn verify_domain(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = state.app.verify_domain(*tenant, id(&path)?).await?;
    Ok(HttpResponse::Ok().json(found))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD` (UTC). Default: 7 days before `to`.
    from: Option<NaiveDate>,
    /// Last day, inclusive. Default: today.
    to: Option<NaiveDate>,
}

pub async fn stats(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let stats = state
        .app
        .email_stats(*tenant, id(&path)?, query.from, query.to)
        .await?;
    Ok(HttpResponse::Ok().json(stats))
}

#[derive(Serialize)]
struct TemplateList {
    templates: Vec<TemplateInfo>,
}

pub async fn list_templates(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let templates = state.app.whatsapp_templates(*tenant, id(&path)?).await?;
    Ok(HttpResponse::Ok().json(TemplateList { templates }))
}

pub async fn create_template(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(draft): Json<TemplateDraft>,
) -> Result<HttpResponse, ApiError> {
    let created = state
        .app
        .create_whatsapp_template(*tenant, id(&path)?, &draft)
        .await?;
    Ok(HttpResponse::Created().json(created))
}

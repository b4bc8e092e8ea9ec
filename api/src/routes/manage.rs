//! Operations beside sending, asked of one provider connection:
//! `POST /api/email/providers/{id}/verify-domain`,
//! `GET /api/email/providers/{id}/stats?from=&to=`,
//! `GET|POST /api/whatsapp/providers/{id}/templates`.
//!
//! The connection's adapter makes the real, authenticated call
//! (`providers::manage`); a provider type without the operation answers 422
//! `unsupported_operation` in words, a provider that fails answers 502
//! `provider_error` with its (secret-free) reason.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{Duration, NaiveDate, Utc};
use msgengine_domain::provider::{EmailProviderSpec, ProviderSpec, WhatsappProviderSpec};
use msgengine_domain::ProviderId;
use msgengine_providers::manage::{self, TemplateDraft};
use msgengine_providers::ProviderError;
use msgengine_storage::repo::providers as repo;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{parse_id, Json};
use crate::routes::admin::not_found;
use crate::state::AppState;

async fn spec<S: ProviderSpec>(
    state: &AppState,
    tenant: &Tenant,
    path: &str,
) -> Result<S, ApiError> {
    let id = ProviderId(parse_id(path, "provider")?);
    let client = state.pool.get().await?;
    let record = repo::get::<S>(&client, &state.ring, tenant.organization_id, id, false)
        .await
        .map_err(not_found("provider"))?;
    Ok(record.spec)
}

fn provider_error(e: ProviderError) -> ApiError {
    if e.code.as_deref() == Some("msgengine_unsupported") {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_operation",
            e.message,
        );
    }
    ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", e.to_string())
}

fn unsupported(e: msgengine_providers::UnsupportedProvider) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported_operation",
        format!(
            "{} connections do not offer this operation",
            e.provider_type
        ),
    )
}

pub async fn verify_domain(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let spec: EmailProviderSpec = spec(&state, &tenant, &path).await?;
    let admin =
        manage::email_admin_for(&spec.into_any(), state.engine.http()).map_err(unsupported)?;
    let found = admin.verify_domain().await.map_err(provider_error)?;
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

/// The longest range one stats request may cover.
const MAX_STATS_DAYS: i64 = 90;

pub async fn stats(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let to = query.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = query.from.unwrap_or(to - Duration::days(6));
    if from > to {
        return Err(
            ApiError::bad_request("invalid_range", "from must not be after to").with_field("from"),
        );
    }
    if (to - from).num_days() >= MAX_STATS_DAYS {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("a stats range covers at most {MAX_STATS_DAYS} days"),
        )
        .with_field("from"));
    }
    let spec: EmailProviderSpec = spec(&state, &tenant, &path).await?;
    let admin =
        manage::email_admin_for(&spec.into_any(), state.engine.http()).map_err(unsupported)?;
    let stats = admin.stats(from, to).await.map_err(provider_error)?;
    Ok(HttpResponse::Ok().json(stats))
}

pub async fn list_templates(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let spec: WhatsappProviderSpec = spec(&state, &tenant, &path).await?;
    let admin =
        manage::whatsapp_admin_for(&spec.into_any(), state.engine.http()).map_err(unsupported)?;
    let templates = admin.list_templates().await.map_err(provider_error)?;
    Ok(HttpResponse::Ok().json(json!({"templates": templates})))
}

pub async fn create_template(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(draft): Json<TemplateDraft>,
) -> Result<HttpResponse, ApiError> {
    validate_draft(&draft)?;
    let spec: WhatsappProviderSpec = spec(&state, &tenant, &path).await?;
    let admin =
        manage::whatsapp_admin_for(&spec.into_any(), state.engine.http()).map_err(unsupported)?;
    let created = admin
        .create_template(&draft)
        .await
        .map_err(provider_error)?;
    Ok(HttpResponse::Created().json(created))
}

fn validate_draft(d: &TemplateDraft) -> Result<(), ApiError> {
    use msgengine_domain::validate::{self as v, ValidationError};
    let name_ok = (1..=512).contains(&d.name.len())
        && d.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(ValidationError::new(
            "name",
            "invalid_template_name",
            "a template name is 1-512 lower-case letters, digits and underscores",
        )
        .into());
    }
    if !["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&d.category.as_str()) {
        return Err(ValidationError::new(
            "category",
            "invalid_category",
            "category is MARKETING, UTILITY or AUTHENTICATION",
        )
        .into());
    }
    v::text("language", &d.language, 15)?;
    v::text("body", &d.body, 1024)?;
    let placeholders = (1..=100)
        .take_while(|n| d.body.contains(&format!("{{{{{n}}}}}")))
        .count();
    if d.examples.len() != placeholders {
        return Err(ValidationError::new(
            "examples",
            "examples_mismatch",
            format!(
                "the body has {placeholders} placeholders ({{{{1}}}}…); give one example value for each"
            ),
        )
        .into());
    }
    Ok(())
}

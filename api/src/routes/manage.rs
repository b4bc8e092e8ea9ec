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
use chrono::{Datelike, Duration, NaiveDate, Utc};
use msgengine_domain::provider::{EmailProviderSpec, ProviderSpec, WhatsappProviderSpec};
use msgengine_domain::text::clean_untrusted;
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

/// Most characters of provider text shown in an error answer.
const MAX_PROVIDER_TEXT_CHARS: usize = 600;

/// The provider's answer, its text cleaned and capped (it is untrusted).
fn provider_error(e: ProviderError) -> ApiError {
    if e.code.as_deref() == Some("msgengine_unsupported") {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_operation",
            clean_untrusted(&e.message, MAX_PROVIDER_TEXT_CHARS),
        );
    }
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "provider_error",
        clean_untrusted(&e.to_string(), MAX_PROVIDER_TEXT_CHARS),
    )
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
/// The years a stats date may fall in: providers keep nothing older, and
/// the bounds keep every date sum in range.
const STATS_YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

/// The `(from, to)` days of a stats request: each within [`STATS_YEARS`],
/// `from` not after `to`, at most [`MAX_STATS_DAYS`] days; 422 naming the
/// field otherwise. `today` is passed in so the rules are pure.
fn stats_range(query: &StatsQuery, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let invalid = |field: &str, message: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_range", message).with_field(field)
    };
    let in_years = |field: &str, day: NaiveDate| {
        if STATS_YEARS.contains(&day.year()) {
            Ok(day)
        } else {
            Err(invalid(
                field,
                format!(
                    "{field} must be a day in the years {} to {}",
                    STATS_YEARS.start(),
                    STATS_YEARS.end()
                ),
            ))
        }
    };
    let to = in_years("to", query.to.unwrap_or(today))?;
    let from = match query.from {
        Some(from) => in_years("from", from)?,
        None => to
            .checked_sub_signed(Duration::days(6))
            .ok_or_else(|| invalid("to", "to is too early".into()))?,
    };
    if from > to {
        return Err(invalid("from", "from must not be after to".into()));
    }
    if (to - from).num_days() >= MAX_STATS_DAYS {
        return Err(invalid(
            "from",
            format!("a stats range covers at most {MAX_STATS_DAYS} days"),
        ));
    }
    Ok((from, to))
}

pub async fn stats(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = stats_range(&query, Utc::now().date_naive())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a real day")
    }

    fn range(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<(NaiveDate, NaiveDate), (u16, Option<String>)> {
        stats_range(&StatsQuery { from, to }, day(2026, 3, 10))
            .map_err(|e| (e.status.as_u16(), e.field))
    }

    #[test]
    fn defaults_to_the_last_seven_days() {
        assert_eq!(range(None, None), Ok((day(2026, 3, 4), day(2026, 3, 10))));
        assert_eq!(
            range(None, Some(day(2025, 1, 3))),
            Ok((day(2024, 12, 28), day(2025, 1, 3)))
        );
    }

    #[test]
    fn extreme_dates_are_refused_naming_the_field_never_a_panic() {
        let earliest = NaiveDate::MIN;
        let latest = NaiveDate::MAX;
        assert_eq!(range(None, Some(earliest)), Err((422, Some("to".into()))));
        assert_eq!(range(None, Some(latest)), Err((422, Some("to".into()))));
        assert_eq!(
            range(Some(earliest), Some(day(2026, 1, 1))),
            Err((422, Some("from".into())))
        );
        assert_eq!(
            range(Some(latest), Some(day(2026, 1, 1))),
            Err((422, Some("from".into())))
        );
        assert_eq!(
            range(None, Some(day(1999, 12, 31))),
            Err((422, Some("to".into())))
        );
    }

    #[test]
    fn order_and_span_are_checked() {
        assert_eq!(
            range(Some(day(2026, 3, 2)), Some(day(2026, 3, 1))),
            Err((422, Some("from".into())))
        );
        assert_eq!(
            range(Some(day(2025, 1, 1)), Some(day(2026, 1, 1))),
            Err((422, Some("from".into())))
        );
        assert!(range(Some(day(2026, 1, 1)), Some(day(2026, 3, 31))).is_ok());
    }
}

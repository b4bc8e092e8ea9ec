//! Operations beside sending, asked of one provider connection: verify its
//! sending domain, read its delivery stats, list and create WhatsApp
//! templates. The connection's adapter makes the real, authenticated call
//! (`msgengine_providers::manage`); a provider type without the operation is
//! `unsupported_operation` (422) in words, a provider that fails is
//! `provider_error` (502) with its secret-free reason, cleaned and capped
//! (provider text is untrusted).

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate};
use msgengine_domain::provider::{EmailProviderSpec, ProviderSpec, WhatsappProviderSpec};
use msgengine_domain::text::clean_untrusted;
use msgengine_domain::ProviderId;
use msgengine_providers::manage::{EmailAdmin, WhatsappAdmin};
use msgengine_providers::registry;
use msgengine_providers::{ProviderError, UnsupportedProvider};

pub use msgengine_providers::manage::{
    DayStats, DnsRecord, DomainVerification, EmailStats, TemplateDraft, TemplateInfo,
};

use super::{App, AppError, ErrorKind, Tenant};

/// Most characters of provider text shown in an error answer.
const MAX_PROVIDER_TEXT_CHARS: usize = 600;

/// The provider's answer, its text cleaned and capped (it is untrusted).
fn provider_error(e: ProviderError) -> AppError {
    if e.code.as_deref() == Some("msgengine_unsupported") {
        return AppError::unprocessable(
            "unsupported_operation",
            clean_untrusted(&e.message, MAX_PROVIDER_TEXT_CHARS),
        );
    }
    AppError::new(
        ErrorKind::BadGateway,
        "provider_error",
        clean_untrusted(&e.to_string(), MAX_PROVIDER_TEXT_CHARS),
    )
}

fn unsupported(e: UnsupportedProvider) -> AppError {
    AppError::unprocessable(
        "unsupported_operation",
        format!(
            "{} connections do not offer this operation",
            e.provider_type
        ),
    )
}

impl App {
    async fn email_admin(
        &self,
        tenant: Tenant,
        id: ProviderId,
    ) -> Result<Arc<dyn EmailAdmin>, AppError> {
        let spec = self.provider::<EmailProviderSpec>(tenant, id).await?.spec;
        registry::email_admin_for(&spec.into_any(), self.engine().http()).map_err(unsupported)
    }

    async fn whatsapp_admin(
        &self,
        tenant: Tenant,
        id: ProviderId,
    ) -> Result<Arc<dyn WhatsappAdmin>, AppError> {
        let spec = self
            .provider::<WhatsappProviderSpec>(tenant, id)
            .await?
            .spec;
        registry::whatsapp_admin_for(&spec.into_any(), self.engine().http()).map_err(unsupported)
    }

    /// The DNS records the email provider wants for the connection's domain,
    /// and whether each is in place.
    pub async fn verify_domain(
        &self,
        tenant: Tenant,
        id: ProviderId,
    ) -> Result<DomainVerification, AppError> {
        let admin = self.email_admin(tenant, id).await?;
        admin.verify_domain().await.map_err(provider_error)
    }

    /// The provider's delivery stats per day over `from..=to` (see [`stats_range`]).
    pub async fn email_stats(
        &self,
        tenant: Tenant,
        id: ProviderId,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<EmailStats, AppError> {
        let (from, to) = stats_range(from, to, chrono::Utc::now().date_naive())?;
        let admin = self.email_admin(tenant, id).await?;
        admin.stats(from, to).await.map_err(provider_error)
    }

    pub async fn whatsapp_templates(
        &self,
        tenant: Tenant,
        id: ProviderId,
    ) -> Result<Vec<TemplateInfo>, AppError> {
        let admin = self.whatsapp_admin(tenant, id).await?;
        admin.list_templates().await.map_err(provider_error)
    }

    /// Submits a template for the provider's review.
    pub async fn create_whatsapp_template(
        &self,
        tenant: Tenant,
        id: ProviderId,
        draft: &TemplateDraft,
    ) -> Result<TemplateInfo, AppError> {
        validate_draft(draft)?;
        let admin = self.whatsapp_admin(tenant, id).await?;
        admin.create_template(draft).await.map_err(provider_error)
    }
}

/// The longest range one stats request may cover.
const MAX_STATS_DAYS: i64 = 90;
/// The years a stats date may fall in: providers keep nothing older, and
/// the bounds keep every date sum in range.
const STATS_YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

/// The `(from, to)` days of a stats request: each within [`STATS_YEARS`],
/// `from` not after `to`, at most [`MAX_STATS_DAYS`] days; 422 naming the
/// field otherwise. `today` is passed in so the rules are pure.
pub fn stats_range(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), AppError> {
    let invalid = |field: &str, message: String| {
        AppError::unprocessable("invalid_range", message).with_field(field)
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
    let to = in_years("to", to.unwrap_or(today))?;
    let from = match from {
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

fn validate_draft(d: &TemplateDraft) -> Result<(), AppError> {
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
        stats_range(from, to, day(2026, 3, 10)).map_err(|e| {
            assert_eq!(e.kind, ErrorKind::Unprocessable);
            (422, e.field)
        })
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

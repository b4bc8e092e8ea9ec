//! SendGrid (Twilio SendGrid, email), speaking SendGrid's v3 API
//! (providers.md §2) on `{baseUrl or https://api.sendgrid.com}` with
//! `Authorization: Bearer <apiKey>`:
//!
//! - [`SendgridSender`]: `POST /v3/mail/send` (§2.1).
//! - [`SendgridWebhook`]: the Signed Event Webhook, ECDSA P-256 over the
//!   timestamp header and the raw body, a JSON array of events (§2.2).
//! - [`SendgridAdmin`]: domain authentication (`/v3/whitelabel/domains`),
//!   stats (`GET /v3/stats`), the event webhook settings.
//! - [`SendgridProbe`]: `GET /v3/scopes`, read-only.
//!
//! Errors are `{"errors": [{"message", "field", "help"}]}`;
//! [`classify_response`] gives them their meaning for every call.

mod admin;
mod descriptor;
mod probe;
mod send;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::http;
use crate::send::{FailureKind, ProviderError};

pub use admin::SendgridAdmin;
pub use probe::SendgridProbe;
pub use send::SendgridSender;
pub use webhook::SendgridWebhook;

/// SendGrid's API host; EU-pinned subusers set `baseUrl` to `https://api.eu.sendgrid.com`.
pub const DEFAULT_BASE_URL: &str = "https://api.sendgrid.com";

#[derive(Deserialize)]
struct Refused {
    #[serde(default)]
    errors: Vec<Problem>,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

/// What a SendGrid answer that is not a success means. The reason is every
/// `errors[].message` (with its `field`), joined; SendGrid has no error codes.
///
/// Status meanings are the shared ones (401/403 bad or under-scoped key, 400
/// and 413 content: permanent; 429 rate limited; 5xx transient). SendGrid
/// documents no `Retry-After` (§2.1): on a 429 without one, the wait is
/// taken from `X-RateLimit-Reset` (epoch seconds) when present.
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let problems: Vec<String> = serde_json::from_slice::<Refused>(body)
        .map(|r| r.errors)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let message = p.message.filter(|m| !m.trim().is_empty())?;
            Some(match p.field.filter(|f| !f.is_empty()) {
                Some(field) => format!("{message} (field {field})"),
                None => message,
            })
        })
        .collect();
    let reason = if !problems.is_empty() {
        problems.join("; ")
    } else if (200..300).contains(&status) {
        "SendGrid answered without an X-Message-Id".to_owned()
    } else {
        http::plain_reason(status, body)
    };
    let kind = http::kind_for_status(status);
    let mut error = http::error_from_answer(kind, status, headers, None, reason);
    if kind == FailureKind::RateLimited && error.retry_after.is_none() {
        error.retry_after = rate_limit_reset(headers, SystemTime::now());
    }
    error
}

/// The wait until `X-RateLimit-Reset` (unix seconds), zero when past.
fn rate_limit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset: u64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(reset);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn errors_are_joined_with_their_fields() {
        let e = classify_response(
            400,
            &HeaderMap::new(),
            br#"{"errors": [{"message": "The from object must be provided for every email send.", "field": "from", "help": "http://x"},
                            {"message": "Invalid type.", "field": null}]}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(
            e.message,
            "The from object must be provided for every email send. (field from); Invalid type."
        );
    }

    #[test]
    fn rate_limit_waits_for_the_reset_time() {
        let mut headers = HeaderMap::new();
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() + 60)
            .unwrap_or(0);
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).expect("digits"),
        );
        let e = classify_response(
            429,
            &headers,
            br#"{"errors":[{"field":null,"message":"too many requests"}]}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
        let wait = e.retry_after.map(|d| d.as_secs()).unwrap_or(0);
        assert!((55..=60).contains(&wait), "{wait}");
    }

    #[test]
    fn unauthorized_and_server_errors_keep_their_meaning() {
        let e = classify_response(
            401,
            &HeaderMap::new(),
            br#"{"errors":[{"field":null,"message":"The provided authorization grant is invalid, expired, or revoked"}]}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(
            classify_response(503, &HeaderMap::new(), b"").kind,
            FailureKind::Transient
        );
        assert_eq!(
            classify_response(413, &HeaderMap::new(), b"").kind,
            FailureKind::Permanent
        );
        assert_eq!(
            classify_response(202, &HeaderMap::new(), b"").kind,
            FailureKind::Transient
        );
    }
}

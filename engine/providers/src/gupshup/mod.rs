//! Gupshup WhatsApp (self-serve API, providers.md §7), header
//! `apikey: <accessToken>` on every call, all of them against the
//! connection's `baseUrl` (default `https://api.gupshup.io`):
//!
//! - [`GupshupSender`]: session messages (text, or media by link) through
//!   `POST /wa/api/v1/msg` (§7.1) and template messages through
//!   `POST /wa/api/v1/template/msg` (§7.2), form-urlencoded with JSON objects
//!   embedded as string field values.
//! - [`GupshupWebhook`]: the app's callbacks (§7.3), which Gupshup does not
//!   sign: the callback URL carries the connection's `webhookSecret` as a
//!   `token` query parameter.
//! - [`GupshupAdmin`] and [`GupshupProbe`]: the template list of the app
//!   (`GET /sm/api/v1/template/list/{appName}`), which is also the
//!   connection test. That endpoint is not in providers.md; it is the one
//!   Gupshup's self-serve API and its client libraries use (unconfirmed here).
//!
//! Gupshup answers `{"status": "submitted", "messageId": "…"}` on success and
//! `{"status": "error", "message": "…"}` on failure, sometimes with HTTP 200
//! (§7.2), so the body's `status` decides, not only the HTTP code.
//!
//! Gupshup carries no custom data through a send (§7 documents none), so its
//! callbacks are matched on Gupshup's `messageId` only, never on ours.

mod descriptor;
mod manage;
mod send;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::http;
use crate::send::{FailureKind, ProviderError};

pub use manage::{GupshupAdmin, GupshupProbe};
pub use send::GupshupSender;
pub use webhook::{verify_token_param, GupshupWebhook};

/// Gupshup's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.gupshup.io";

/// The reason given for a 2xx answer that says nothing usable.
const NO_ID_REASON: &str = "Gupshup answered without a submitted messageId";

/// A phone number as Gupshup wants it: the digits only (`+234 803…` → `234803…`).
fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// A number Gupshup reports (digits with the country code, no `+`) in the
/// engine's E.164 form, so suppressions and recipients match ours.
fn e164(number: &str) -> String {
    let digits = digits(number);
    if digits.is_empty() {
        number.to_owned()
    } else {
        format!("+{digits}")
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
}

/// Gupshup's id when the body says `submitted`.
fn submitted_id(body: &[u8]) -> Option<String> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    if answer.status.as_deref() != Some("submitted") {
        return None;
    }
    answer.message_id.filter(|id| !id.is_empty())
}

/// What a Gupshup answer that is not a submission means. The reason is the
/// body's `message`. A `{"status": "error"}` body with HTTP 2xx is
/// permanent (Gupshup answers validation and auth failures that way), unless
/// its reason speaks of a rate limit. Gupshup's rate-limit status is not
/// documented (providers.md §13: "assume 429"), hence that text check, and
/// its numeric code `4001` ("API rate limited", §7.2) is rate limiting
/// wherever it appears; otherwise the shared status meanings apply.
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let answer = serde_json::from_slice::<Answer>(body).ok();
    let code = answer.as_ref().and_then(|a| match &a.code {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    });
    let said_error = answer.as_ref().and_then(|a| a.status.as_deref()) == Some("error");
    let reason = match answer.and_then(|a| a.message) {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(other @ (Value::Object(_) | Value::Array(_))) => other.to_string(),
        _ if (200..300).contains(&status) => NO_ID_REASON.to_owned(),
        _ => http::plain_reason(status, body),
    };
    let kind = if status == 429 || code.as_deref() == Some("4001") || mentions_rate_limit(&reason) {
        FailureKind::RateLimited
    } else if (200..300).contains(&status) && said_error {
        FailureKind::Permanent
    } else {
        http::kind_for_status(status)
    };
    http::error_from_answer(kind, status, headers, code, reason)
}

fn mentions_rate_limit(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("rate limit") || reason.contains("too many requests")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> ProviderError {
        classify_response(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn error_bodies_are_permanent_even_with_http_200() {
        for status in [200, 400] {
            let e = classify(
                status,
                r#"{"status": "error", "message": "Invalid Destination"}"#,
            );
            assert_eq!(e.kind, FailureKind::Permanent, "{status}");
            assert_eq!(e.message, "Invalid Destination");
            assert_eq!(e.http_status, Some(status));
        }
    }

    #[test]
    fn bad_key_is_permanent() {
        let e = classify(
            401,
            r#"{"status": "error", "message": "Authentication Failed"}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
    }

    #[test]
    fn rate_limits_are_recognised_by_status_code_or_reason() {
        assert_eq!(classify(429, "").kind, FailureKind::RateLimited);
        let e = classify(
            200,
            r#"{"status": "error", "message": "API rate limit exceeded"}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
        let e = classify(400, r#"{"status": "error", "code": 4001, "message": "x"}"#);
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (FailureKind::RateLimited, Some("4001"))
        );
    }

    #[test]
    fn server_errors_and_unknown_success_bodies_are_transient() {
        assert_eq!(classify(502, "<html/>").kind, FailureKind::Transient);
        assert_eq!(
            classify(202, r#"{"status": "queued"}"#).kind,
            FailureKind::Transient
        );
    }

    #[test]
    fn only_submitted_answers_carry_an_id() {
        let ok = br#"{"status": "submitted", "messageId": "ee4a68a0-1203-4c85-8dc3-49d0b3226a35"}"#;
        assert_eq!(
            submitted_id(ok).as_deref(),
            Some("ee4a68a0-1203-4c85-8dc3-49d0b3226a35")
        );
        assert_eq!(
            submitted_id(br#"{"status": "error", "messageId": "x"}"#),
            None
        );
    }

    #[test]
    fn numbers_lose_everything_but_digits_and_come_back_as_e164() {
        assert_eq!(digits("+234 803-123-4567"), "2348031234567");
        assert_eq!(e164("2348031234567"), "+2348031234567");
        assert_eq!(e164(""), "");
    }
}

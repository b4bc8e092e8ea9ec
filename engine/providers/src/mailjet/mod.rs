//! Mailjet (email), speaking Mailjet's APIs (providers.md §3) on
//! `{baseUrl or https://api.mailjet.com}` with HTTP Basic auth
//! `API_KEY:SECRET_KEY` (the connection's `apiKey` holds both, joined by a
//! colon, as the email spec validates):
//!
//! - [`MailjetSender`]: Send API v3.1, `POST /v3.1/send` (§3.1).
//! - [`MailjetWebhook`]: the event callback (§3.2). Mailjet does not sign
//!   its webhooks, so msgengine requires the connection's `webhookSecret`
//!   as a `token` query parameter (or as the password of HTTP Basic
//!   credentials in the callback URL, the protection Mailjet documents).
//! - [`MailjetAdmin`]: sender domain DNS (`/v3/REST/dns`), stats
//!   (`/v3/REST/statcounters`), callbacks (`/v3/REST/eventcallbackurl`).
//! - [`MailjetProbe`]: `GET /v3/REST/dns/{domain}`, read-only.
//!
//! [`classify_response`] gives every error answer its meaning.

mod admin;
mod descriptor;
mod probe;
mod send;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::http;
use crate::send::ProviderError;

pub use admin::MailjetAdmin;
pub use probe::MailjetProbe;
pub use send::MailjetSender;
pub use webhook::MailjetWebhook;

/// Mailjet's API host; US-region accounts set `baseUrl` to `https://api.us.mailjet.com`.
pub const DEFAULT_BASE_URL: &str = "https://api.mailjet.com";

/// The Basic-auth user and password from `apiKey` = `API_KEY:SECRET_KEY`.
pub(crate) fn credentials(api_key: Option<&Secret>) -> Option<(&str, &str)> {
    api_key?
        .expose()
        .split_once(':')
        .filter(|(public, private)| !public.is_empty() && !private.is_empty())
}

/// The message that `credentials` are missing.
const NEEDS_KEYS: &str = "MAILJET needs apiKey as API_KEY:SECRET_KEY";

/// One entry of `Errors[]`, or a request-level error object.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct MjError {
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    status_code: Option<u16>,
    #[serde(default)]
    error_message: Option<String>,
    /// v3 REST errors say more here than in `ErrorMessage`.
    #[serde(default)]
    error_info: Option<String>,
    #[serde(default)]
    error_related_to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Batch {
    messages: Vec<MessageOutcome>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessageOutcome {
    #[serde(default)]
    errors: Vec<MjError>,
}

/// The first error Mailjet reports: per message (`Messages[].Errors[]`) or
/// for the whole request (a flat object).
fn first_error(body: &[u8]) -> Option<MjError> {
    if let Ok(batch) = serde_json::from_slice::<Batch>(body) {
        if let Some(e) = batch.messages.into_iter().flat_map(|m| m.errors).next() {
            return Some(e);
        }
    }
    serde_json::from_slice::<MjError>(body)
        .ok()
        .filter(|e| e.error_message.is_some() || e.error_code.is_some())
}

/// What a Mailjet answer that is not a success means: the error's own
/// `StatusCode` (falling back to the HTTP status) decides the kind with the
/// shared status meanings (401 bad keys and 400 `mj-00xx` validation errors
/// are permanent, 429 rate limited, 5xx transient); the code is Mailjet's
/// `ErrorCode` (`mj-0013`, `send-0003`), the reason its `ErrorMessage` with
/// the fields it relates to. Mailjet documents no `Retry-After` (§13).
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let error = first_error(body).unwrap_or_default();
    let message = error
        .error_message
        .filter(|m| !m.trim().is_empty())
        .or(error.error_info.filter(|m| !m.trim().is_empty()));
    let reason = match message {
        Some(m) if error.error_related_to.is_empty() => m,
        Some(m) => format!("{m} ({})", error.error_related_to.join(", ")),
        None if (200..300).contains(&status) => "Mailjet answered without a message id".to_owned(),
        None => http::plain_reason(status, body),
    };
    let effective = match error.status_code {
        Some(inner) if (400..600).contains(&inner) => inner,
        _ => status,
    };
    let code = error.error_code.filter(|c| !c.is_empty());
    http::error_from_answer(
        http::kind_for_status(effective),
        status,
        headers,
        code,
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::FailureKind;

    #[test]
    fn per_message_validation_errors_are_permanent_with_mailjet_code() {
        let e = classify_response(
            400,
            &HeaderMap::new(),
            br#"{"Messages": [{"Status": "error", "Errors": [{"ErrorIdentifier": "1ab",
                 "ErrorCode": "mj-0013", "StatusCode": 400,
                 "ErrorMessage": "\"x\" is an invalid email address.", "ErrorRelatedTo": ["To[0].Email"]}]}]}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(e.code.as_deref(), Some("mj-0013"));
        assert_eq!(
            e.message,
            "\"x\" is an invalid email address. (To[0].Email)"
        );
    }

    #[test]
    fn request_level_errors_use_the_flat_object() {
        let e = classify_response(
            401,
            &HeaderMap::new(),
            br#"{"ErrorIdentifier": "x", "StatusCode": 401,
                 "ErrorMessage": "API key authentication/authorization failure. You may be unauthorized to access the API or your API key may be expired. Visit API keys management section to check your keys."}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(e
            .message
            .starts_with("API key authentication/authorization failure."));
        let e = classify_response(429, &HeaderMap::new(), b"");
        assert_eq!(e.kind, FailureKind::RateLimited);
        let e = classify_response(500, &HeaderMap::new(), b"<html/>");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Transient, "HTTP 500 Internal Server Error")
        );
    }

    #[test]
    fn credentials_need_both_halves() {
        let both = Secret::new("pub:priv");
        assert_eq!(credentials(Some(&both)), Some(("pub", "priv")));
        assert_eq!(credentials(Some(&Secret::new("pub:"))), None);
        assert_eq!(credentials(None), None);
    }
}

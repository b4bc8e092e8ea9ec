//! Mailgun (email), speaking Mailgun's HTTP API (providers.md §1) on
//! `{baseUrl or https://api.mailgun.net}` with HTTP Basic auth `api:<apiKey>`:
//!
//! - [`MailgunSender`]: `POST /v3/{domain}/messages` (§1.1).
//! - [`MailgunWebhook`]: the JSON event webhook, HMAC-SHA256 signed in the
//!   body with the webhook signing key (`webhookSecret`) (§1.4).
//! - [`MailgunAdmin`]: DNS verification (`PUT /v4/domains/{d}/verify`),
//!   stats (`GET /v3/{d}/stats/total`), webhooks (`/v3/domains/{d}/webhooks`).
//! - [`MailgunProbe`]: `GET /v4/domains/{domain}`, read-only.
//!
//! Errors are `{"message": "…"}` (plain text for some 401/404s);
//! [`classify_response`] gives them their meaning for every call.

mod admin;
mod descriptor;
mod probe;
mod send;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::http;
use crate::send::{FailureKind, ProviderError};

pub use admin::MailgunAdmin;
pub use probe::MailgunProbe;
pub use send::MailgunSender;
pub use webhook::MailgunWebhook;

/// Mailgun's US API host; EU domains set `baseUrl` to `https://api.eu.mailgun.net`.
pub const DEFAULT_BASE_URL: &str = "https://api.mailgun.net";

#[derive(Deserialize)]
struct Refused {
    message: String,
}

/// What a Mailgun answer that is not a success means. The reason is
/// `{"message"}` when the body is JSON, the plain text otherwise.
///
/// Beyond the shared status meanings: HTTP 420 (seen for sandbox/free
/// domains: "not allowed to send … try again after <date>", providers.md
/// §1.1, unconfirmed in current docs) is a quota, so rate limited. Mailgun
/// documents no `Retry-After` on 429 (§13); we honour one if it comes.
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let reason = match serde_json::from_slice::<Refused>(body) {
        Ok(refused) if !refused.message.trim().is_empty() => refused.message,
        _ if (200..300).contains(&status) => "Mailgun answered without a message id".to_owned(),
        _ => http::plain_reason(status, body),
    };
    let kind = match status {
        420 => FailureKind::RateLimited,
        _ => http::kind_for_status(status),
    };
    http::error_from_answer(kind, status, headers, None, reason)
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    #[test]
    fn bad_request_is_permanent_with_mailgun_reason() {
        let e = classify_response(
            400,
            &HeaderMap::new(),
            br#"{"message": "to parameter is not a valid address. please check documentation"}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(e.http_status, Some(400));
        assert_eq!(
            e.message,
            "to parameter is not a valid address. please check documentation"
        );
    }

    #[test]
    fn plain_text_unauthorized_is_permanent() {
        let e = classify_response(401, &HeaderMap::new(), b"Forbidden");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Permanent, "Forbidden")
        );
    }

    #[test]
    fn rate_limits_and_quotas_carry_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = classify_response(429, &headers, br#"{"message": "slow down"}"#);
        assert_eq!(e.kind, FailureKind::RateLimited);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));
        let e = classify_response(
            420,
            &HeaderMap::new(),
            br#"{"message": "Domain x is not allowed to send"}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
    }

    #[test]
    fn server_errors_are_transient_and_ok_without_id_too() {
        let e = classify_response(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Transient, "HTTP 502 Bad Gateway")
        );
        let e = classify_response(200, &HeaderMap::new(), b"{}");
        assert_eq!(e.kind, FailureKind::Transient);
    }
}

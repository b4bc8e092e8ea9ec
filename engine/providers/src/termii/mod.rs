//! Termii SMS (providers.md §11): `POST {baseUrl}/api/sms/send`, JSON, the
//! API key **in the body** as `api_key` (in the query string for GETs).
//! The base URL is account-specific at Termii (§13: no stable one); without
//! `baseUrl` the older documented host `https://api.ng.termii.com` is used.
//!
//! The body: `to` (digits with the country code, no `+`), `from` (the
//! message's `from`, else the connection's `senderId`), `sms`, `type`
//! (`plain` when every character has a GSM-7 form, else `unicode`), and
//! `channel: "generic"`. The `dnd` route (needed to reach DND-registered
//! Nigerian numbers, activated per account) has no field in the connection
//! spec yet, so every send takes the generic route.
//!
//! Success is HTTP 200 `{"message_id", "message": "Successfully Sent",
//! "balance", "user"}` (`message_id` confirmed, sometimes beside
//! `message_id_str`; a JSON number is accepted too). Termii reports no
//! segment count, so the receipt carries none. Errors are 4xx JSON with a
//! `message` (§13: shape and codes unconfirmed): 401/403 and other 4xx are
//! permanent (bad key, sender id not approved, insufficient balance), 429
//! or a rate-limit reason is rate limited (Termii documents no rate limit,
//! §13), 5xx transient. Termii carries no custom data and documents no
//! idempotency key (`X-Msgengine-Idempotency-Key` is sent for our
//! simulator).

mod descriptor;
mod manage;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::SmsProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

pub use manage::{TermiiAdmin, TermiiProbe};
pub use webhook::TermiiWebhook;

/// Termii's older, documented API host; accounts may have their own.
pub const DEFAULT_BASE_URL: &str = "https://api.ng.termii.com";
/// The reason given for a 2xx answer that says nothing usable.
const NO_ID_REASON: &str = "Termii answered without a message_id";
/// The route every send takes (see the module docs).
const CHANNEL: &str = "generic";

/// A Termii connection.
pub struct TermiiSender {
    http: crate::http::ProviderClient,
    /// `None` when `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
    sender_id: Option<String>,
}

impl TermiiSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &SmsProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            endpoint: http::endpoint(
                spec.base_url.as_deref(),
                DEFAULT_BASE_URL,
                &["api", "sms", "send"],
            ),
            api_key: spec.credential("apiKey").cloned(),
            sender_id: spec.sender_id.clone(),
        }
    }
}

/// The send body, in Termii's field names and this order.
#[derive(Serialize)]
struct SmsSend<'a> {
    api_key: &'a str,
    to: String,
    from: &'a str,
    sms: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'static str,
}

#[async_trait::async_trait]
impl Sender for TermiiSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "TERMII baseUrl must be an http(s) URL",
            ));
        };
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured(
                "TERMII needs credentials.apiKey",
            ));
        };
        let Some(from) = message.from.as_deref().or(self.sender_id.as_deref()) else {
            return Err(ProviderError::misconfigured("TERMII needs senderId"));
        };
        let body = SmsSend {
            api_key: api_key.expose(),
            to: message.to.chars().filter(char::is_ascii_digit).collect(),
            from,
            sms: &message.text,
            kind: if is_gsm7(&message.text) {
                "plain"
            } else {
                "unicode"
            },
            channel: CHANNEL,
        };
        let secrets = [api_key.expose()];
        let request = self
            .http
            .post(endpoint.clone())
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(&body);
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        http::sent_or_error(&answer, &secrets, sent_id, classify_response)
    }
}

/// GSM 03.38 basic characters (beside ASCII letters and digits) and the
/// extension table, as `msgengine_domain::send::segments` counts them.
const GSM7: &str =
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà\u{c}^{}\\[~]|€";

/// Whether Termii can send `text` as `plain` (GSM-7) rather than `unicode`.
fn is_gsm7(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || GSM7.contains(c))
}

#[derive(Deserialize)]
struct Sent {
    #[serde(default)]
    message_id: Option<Value>,
    #[serde(default)]
    message_id_str: Option<String>,
}

/// Termii's id of an accepted send (`message_id`, as a string or a number;
/// `message_id_str` when only that is given).
fn sent_id(body: &[u8]) -> Option<String> {
    let sent: Sent = serde_json::from_slice(body).ok()?;
    let id = match sent.message_id {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    id.or(sent.message_id_str)
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

#[derive(Deserialize)]
struct Refused {
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
}

/// What a Termii answer that is not an accepted send means (see the module
/// docs). The reason is the body's `message` (a string, or a list/object of
/// validation errors shown as JSON), else the plain text or status line.
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let refused = serde_json::from_slice::<Refused>(body).ok();
    let code = refused.as_ref().and_then(|r| match &r.code {
        Some(Value::String(s)) if !s.is_empty() && s != "ok" => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    let reason = match refused.and_then(|r| r.message) {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(other @ (Value::Object(_) | Value::Array(_))) => other.to_string(),
        _ if (200..300).contains(&status) => NO_ID_REASON.into(),
        _ => http::plain_reason(status, body),
    };
    let lower = reason.to_ascii_lowercase();
    let kind = if lower.contains("rate limit") || lower.contains("too many requests") {
        FailureKind::RateLimited
    } else {
        http::kind_for_status(status)
    };
    http::error_from_answer(kind, status, headers, code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> ProviderError {
        classify_response(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn ids_come_as_strings_or_numbers() {
        assert_eq!(
            sent_id(br#"{"code": "ok", "message_id": "9122821270554876574", "message": "Successfully Sent"}"#)
                .as_deref(),
            Some("9122821270554876574")
        );
        assert_eq!(
            sent_id(br#"{"message_id": 9122821270554876574}"#).as_deref(),
            Some("9122821270554876574")
        );
        assert_eq!(
            sent_id(br#"{"message_id_str": "42"}"#).as_deref(),
            Some("42")
        );
        assert_eq!(sent_id(br#"{"message": "Successfully Sent"}"#), None);
    }

    #[test]
    fn client_errors_are_permanent_with_termii_reason() {
        let e = classify(
            400,
            r#"{"message": "ApplicationSenderId not found for applicationId: 1 and senderName: Acme"}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(e.message.starts_with("ApplicationSenderId not found"));
        assert_eq!(
            classify(401, r#"{"message": "Invalid API key"}"#).kind,
            FailureKind::Permanent
        );
        let e = classify(422, r#"{"message": {"to": ["The to field is required."]}}"#);
        assert_eq!(e.message, r#"{"to":["The to field is required."]}"#);
    }

    #[test]
    fn rate_limits_server_errors_and_empty_success_are_retryable() {
        assert_eq!(classify(429, "").kind, FailureKind::RateLimited);
        assert_eq!(
            classify(400, r#"{"message": "Rate limit exceeded"}"#).kind,
            FailureKind::RateLimited
        );
        assert_eq!(classify(500, "").kind, FailureKind::Transient);
        let e = classify(200, r#"{"code": "ok"}"#);
        assert_eq!((e.kind, e.code), (FailureKind::Transient, None));
    }

    #[test]
    fn gsm7_texts_are_plain_and_others_unicode() {
        assert!(is_gsm7("Your code is 1234. €5 [ok] {x} ~ | ^ \\ @ £ ¥ è"));
        assert!(!is_gsm7("Ọjọ́ àìkú ✓"));
        assert!(!is_gsm7("emoji 🙂"));
    }
}

//! Gupshup WhatsApp (self-serve API), speaking Gupshup's session-message
//! endpoint: `POST {baseUrl or https://api.gupshup.io}/wa/api/v1/msg`, header
//! `apikey: <accessToken>`, form-urlencoded `channel=whatsapp`, `source`,
//! `destination`, `src.name`, and `message` as a JSON string
//! (providers.md §7.1). This sends free-form text, which WhatsApp only
//! delivers inside the 24-hour customer-service window; templates come later.
//!
//! Success is HTTP 2xx (commonly 202) `{"status": "submitted", "messageId": "…"}`.
//! Errors are `{"status": "error", "message": "…"}`, sometimes with HTTP 200
//! (providers.md §7.2), so the body's `status` decides, not only the HTTP code.
//!
//! Gupshup documents no idempotency key; `X-Msgengine-Idempotency-Key` is
//! sent for our simulator.

use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

/// Gupshup's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.gupshup.io";

/// A Gupshup WhatsApp connection.
pub struct GupshupSender {
    http: reqwest::Client,
    /// `None` when `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
    /// The business number as Gupshup wants it: digits, no `+`.
    source: Option<String>,
    app_name: Option<String>,
}

impl GupshupSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: reqwest::Client) -> Self {
        Self {
            http,
            endpoint: http::endpoint(
                spec.base_url.as_deref(),
                DEFAULT_BASE_URL,
                &["wa", "api", "v1", "msg"],
            ),
            api_key: spec.access_token.clone(),
            source: spec.phone_number.as_deref().map(digits),
            app_name: spec.app_name.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Sender for GupshupSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "GUPSHUP baseUrl must be an http(s) URL",
            ));
        };
        let (Some(api_key), Some(app_name)) = (&self.api_key, &self.app_name) else {
            return Err(ProviderError::misconfigured(
                "GUPSHUP needs accessToken and appName",
            ));
        };
        // A per-message `from` overrides the connection's business number.
        let Some(source) = message.from.as_deref().map(digits).or(self.source.clone()) else {
            return Err(ProviderError::misconfigured("GUPSHUP needs phoneNumber"));
        };
        let text = serde_json::to_string(&TextMessage {
            kind: "text",
            text: &message.text,
        })
        .map_err(|_| ProviderError::new(FailureKind::Permanent, "the text cannot be encoded"))?;
        let destination = digits(&message.to);
        let form = [
            ("channel", "whatsapp"),
            ("source", source.as_str()),
            ("destination", destination.as_str()),
            ("src.name", app_name.as_str()),
            ("message", text.as_str()),
        ];
        let secrets = [api_key.expose()];
        let request = self
            .http
            .post(endpoint.clone())
            .header("apikey", api_key.expose())
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .form(&form);
        let answer = http::execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        http::sent_or_error(&answer, &secrets, submitted_id, classify_response)
    }
}

/// Gupshup's `message` field for a text, serialised in this field order:
/// `{"type":"text","text":"…"}`.
#[derive(Serialize)]
struct TextMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

/// A phone number as Gupshup wants it: the digits only (`+234 803…` → `234803…`).
fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
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
/// documented (providers.md §13: "assume 429"), hence that text check;
/// otherwise the shared status meanings apply.
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
        _ if (200..300).contains(&status) => {
            "Gupshup answered without a submitted messageId".to_owned()
        }
        _ => http::plain_reason(status, body),
    };
    let kind = if status == 429 || mentions_rate_limit(&reason) {
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
    fn rate_limits_are_recognised_by_status_or_reason() {
        assert_eq!(classify(429, "").kind, FailureKind::RateLimited);
        let e = classify(
            200,
            r#"{"status": "error", "message": "API rate limit exceeded"}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
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
    fn numbers_lose_everything_but_digits() {
        assert_eq!(digits("+234 803-123-4567"), "2348031234567");
    }
}

//! Twilio SMS, speaking Twilio Programmable Messaging's Message resource:
//! `POST {baseUrl or https://api.twilio.com}/2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! HTTP Basic auth `AccountSid:AuthToken` (or `ApiKeySid:ApiKeySecret`, the
//! Account SID staying in the path), form fields `To`, `From` or
//! `MessagingServiceSid`, `Body` (providers.md §6.1).
//!
//! Success is HTTP 201 with the message resource (`sid`, `status`,
//! `num_segments` as a string). Errors are
//! `{"code", "message", "more_info", "status"}`.
//!
//! Idempotency: we send `I-Twilio-Idempotency-Token: <key>` as asked, but
//! providers.md §6.1/§13 only knows that header on Twilio's *own* webhook
//! requests; Twilio does not document honouring it on message create, so a
//! retry after a timeout may still create a second message. The
//! `X-Msgengine-Idempotency-Key` header is sent too, for our simulator.
//!
//! The Account SID is treated as a secret (it is sealed with the
//! credentials): the request URL, which holds it, is never formatted into an
//! error, and provider text that echoes it is scrubbed.

use msgengine_domain::message::{MessageState, OutboundMessage};
use msgengine_domain::provider::SmsProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

/// Twilio's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// The header Twilio uses for idempotency (on its webhooks; see the module docs).
pub const TWILIO_IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";
const API_VERSION: &str = "2010-04-01";

/// Twilio error codes whose meaning differs from their HTTP status.
const RATE_LIMITED_CODES: [&str; 2] = [
    "20429", // too many concurrent requests (HTTP 429): not processed, safe to retry
    "63018", // WhatsApp channel rate limit exceeded
];
const TRANSIENT_CODES: [&str; 1] = [
    "30001", // queue overflow: Twilio could not queue it now
];

/// A Twilio SMS connection.
pub struct TwilioSmsSender {
    http: reqwest::Client,
    /// `None` when accountSid is missing or `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    /// Basic-auth user and password: accountSid + authToken, or apiKeySid + apiKeySecret.
    auth: Option<(Secret, Secret)>,
    /// Every credential value, to scrub from provider text.
    secrets: Vec<Secret>,
    sender_id: Option<String>,
}

impl TwilioSmsSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &SmsProviderSpec, http: reqwest::Client) -> Self {
        let account_sid = spec.credential("accountSid");
        let endpoint = account_sid.and_then(|sid| {
            let base = spec.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
            // providers.md gives the base as `https://api.twilio.com/2010-04-01`;
            // accept a baseUrl written either way.
            let segments: &[&str] = if base.trim_end_matches('/').ends_with(API_VERSION) {
                &["Accounts", sid.expose(), "Messages.json"]
            } else {
                &[API_VERSION, "Accounts", sid.expose(), "Messages.json"]
            };
            http::endpoint(Some(base), DEFAULT_BASE_URL, segments)
        });
        let auth = match (
            account_sid,
            spec.credential("authToken"),
            spec.credential("apiKeySid"),
            spec.credential("apiKeySecret"),
        ) {
            (Some(sid), Some(token), _, _) => Some((sid.clone(), token.clone())),
            (Some(_), None, Some(key), Some(secret)) => Some((key.clone(), secret.clone())),
            _ => None,
        };
        Self {
            http,
            endpoint,
            auth,
            secrets: spec.credentials.values().cloned().collect(),
            sender_id: spec.sender_id.clone(),
        }
    }

    fn scrub(&self, error: ProviderError) -> ProviderError {
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
        http::scrub(error, &secrets)
    }
}

#[async_trait::async_trait]
impl Sender for TwilioSmsSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "TWILIO needs credentials.accountSid, and baseUrl (when set) must be an http(s) URL",
            ));
        };
        let Some((user, password)) = &self.auth else {
            return Err(ProviderError::misconfigured(
                "TWILIO needs credentials.authToken, or credentials.apiKeySid with credentials.apiKeySecret",
            ));
        };
        let Some(sender) = message.from.as_deref().or(self.sender_id.as_deref()) else {
            return Err(ProviderError::misconfigured("TWILIO needs senderId"));
        };
        let sender_field = if is_messaging_service_sid(sender) {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let form = [
            ("To", message.to.as_str()),
            (sender_field, sender),
            ("Body", message.text.as_str()),
        ];
        let request = self
            .http
            .post(endpoint.clone())
            .basic_auth(user.expose(), Some(password.expose()))
            .header(TWILIO_IDEMPOTENCY_HEADER, idempotency_key)
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .form(&form);
        let answer = http::execute(request).await.map_err(|e| self.scrub(e))?;
        if (200..300).contains(&answer.status) {
            if let Some(created) = parse_created(&answer.body) {
                return created
                    .into_receipt(answer.status)
                    .map_err(|e| self.scrub(e));
            }
        }
        Err(self.scrub(classify_response(
            answer.status,
            &answer.headers,
            &answer.body,
        )))
    }
}

/// A Messaging Service SID: `MG` and 32 hexadecimal characters.
fn is_messaging_service_sid(sender: &str) -> bool {
    sender.len() == 34
        && sender.starts_with("MG")
        && sender[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The message resource of a successful create (the fields we use).
#[derive(Deserialize)]
struct Created {
    sid: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    num_segments: Option<Value>,
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    error_message: Option<String>,
}

fn parse_created(body: &[u8]) -> Option<Created> {
    serde_json::from_slice::<Created>(body)
        .ok()
        .filter(|c| !c.sid.is_empty())
}

impl Created {
    /// `delivered` → Delivered; a resource already `failed`, `undelivered`
    /// or `canceled` is a permanent failure with Twilio's error code; any
    /// other status (`queued`, `accepted`, `sending`, `sent`, `scheduled`) → Sent.
    fn into_receipt(self, http_status: u16) -> Result<SendReceipt, ProviderError> {
        let state = match self.status.as_deref() {
            Some("delivered") => MessageState::Delivered,
            Some(failed @ ("failed" | "undelivered" | "canceled")) => {
                let reason = self
                    .error_message
                    .unwrap_or_else(|| format!("Twilio reported the message {failed}"));
                let mut error = ProviderError::new(FailureKind::Permanent, http::bound(&reason));
                error.http_status = Some(http_status);
                error.code = self.error_code.as_ref().and_then(code_text);
                return Err(error);
            }
            _ => MessageState::Sent,
        };
        let segments = match &self.num_segments {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        Ok(SendReceipt {
            provider_message_id: self.sid,
            state,
            segments,
        })
    }
}

#[derive(Deserialize)]
struct Refused {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

/// A Twilio error code as text, whether Twilio sent it as a number or a string.
fn code_text(code: &Value) -> Option<String> {
    match code {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// What a Twilio answer that is not a created message means. The error code
/// decides where it is more specific than the HTTP status: `20429` (and the
/// WhatsApp `63018`) is rate limiting, `30001` queue overflow is transient;
/// otherwise the shared status meanings apply (401 `20003` bad credentials
/// and 400 `21211` invalid To are permanent).
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let refused = serde_json::from_slice::<Refused>(body).ok();
    let code = refused
        .as_ref()
        .and_then(|r| r.code.as_ref())
        .and_then(code_text);
    let reason = match refused
        .and_then(|r| r.message)
        .filter(|m| !m.trim().is_empty())
    {
        Some(message) => message,
        None if (200..300).contains(&status) => "Twilio answered without a message sid".to_owned(),
        None => http::plain_reason(status, body),
    };
    let kind = match code.as_deref() {
        Some(c) if RATE_LIMITED_CODES.contains(&c) => FailureKind::RateLimited,
        Some(c) if TRANSIENT_CODES.contains(&c) => FailureKind::Transient,
        _ => http::kind_for_status(status),
    };
    http::error_from_answer(kind, status, headers, code, reason)
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    fn classify(status: u16, body: &str) -> ProviderError {
        classify_response(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn invalid_number_is_permanent_with_twilio_code_and_reason() {
        let e = classify(
            400,
            r#"{"code": 21211, "message": "The 'To' number +123 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(e.code.as_deref(), Some("21211"));
        assert_eq!(
            e.message,
            "The 'To' number +123 is not a valid phone number."
        );
    }

    #[test]
    fn authentication_failure_is_permanent() {
        let e = classify(
            401,
            r#"{"code": 20003, "message": "Authenticate", "status": 401}"#,
        );
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (FailureKind::Permanent, Some("20003"))
        );
    }

    #[test]
    fn code_20429_is_rate_limited_with_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let e = classify_response(
            429,
            &headers,
            br#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
        let e = classify(400, r#"{"code": "20429", "message": "Too Many Requests"}"#);
        assert_eq!(e.kind, FailureKind::RateLimited);
    }

    #[test]
    fn queue_overflow_is_transient_whatever_the_status() {
        let e = classify(400, r#"{"code": 30001, "message": "Queue overflow"}"#);
        assert_eq!(e.kind, FailureKind::Transient);
    }

    #[test]
    fn server_errors_are_transient() {
        assert_eq!(classify(500, "oops").kind, FailureKind::Transient);
        assert_eq!(classify(503, "").message, "HTTP 503 Service Unavailable");
    }

    #[test]
    fn created_resource_maps_status_and_segments() {
        let created = parse_created(br#"{"sid": "SM1", "status": "queued", "num_segments": "2"}"#);
        let receipt = created.map(|c| c.into_receipt(201));
        assert_eq!(
            receipt.and_then(Result::ok),
            Some(SendReceipt {
                provider_message_id: "SM1".into(),
                state: MessageState::Sent,
                segments: Some(2),
            })
        );
        let delivered =
            parse_created(br#"{"sid": "SM2", "status": "delivered", "num_segments": 1}"#)
                .map(|c| c.into_receipt(201));
        assert_eq!(
            delivered
                .and_then(Result::ok)
                .map(|r| (r.state, r.segments)),
            Some((MessageState::Delivered, Some(1)))
        );
        let failed = parse_created(
            br#"{"sid": "SM3", "status": "failed", "error_code": 30007, "error_message": "filtered"}"#,
        )
        .map(|c| c.into_receipt(201));
        let e = failed.and_then(Result::err);
        assert_eq!(
            e.map(|e| (e.kind, e.code, e.message)),
            Some((
                FailureKind::Permanent,
                Some("30007".into()),
                "filtered".into()
            ))
        );
    }

    #[test]
    fn messaging_service_sids_are_recognised() {
        assert!(is_messaging_service_sid(
            "MG0123456789abcdef0123456789abcdef"
        ));
        assert!(!is_messaging_service_sid("MGacme"));
        assert!(!is_messaging_service_sid("+15005550006"));
    }
}

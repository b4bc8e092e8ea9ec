//! Interakt (a WhatsApp BSP, providers.md §9), speaking its public message
//! API: `POST {baseUrl or https://api.interakt.ai}/v1/public/message/`
//! (trailing slash), `Authorization: Basic <API key>` with the key sent
//! as-is (the dashboard's key already is the Basic credential), JSON.
//!
//! - [`InteraktSender`]: text (`type: "Text"`), templates (`type:
//!   "Template"` with `bodyValues`, `headerValues`, `fileName`) and media.
//!   The recipient goes as `fullPhoneNumber` (digits with country code) and
//!   our message id as `callbackData`, which webhooks echo.
//! - [`InteraktWebhook`]: `Interakt-Signature` and the `message_api_*` events.
//! - [`InteraktAdmin`]: §9 documents no management API; every operation
//!   says so.
//! - [`InteraktProbe`]: §9 documents no read-only call; see its docs.
//!
//! Unconfirmed (providers.md §13), relied on here: the success envelope
//! (`result`, `message`, `id`: the `id` is what clients rely on), the error
//! envelope (`{"result": false, "message"}`), rate-limit headers (none
//! assumed; `Retry-After` honoured if sent). Media session messages
//! (`type` `Image`/`Document`/`Video`/`Audio` with `data.mediaUrl`,
//! `data.message` as caption, `data.fileName`) are only named in passing by
//! §9 ("and media types"); the field names follow public integrations.
//! Interakt documents no idempotency key; `X-Msgengine-Idempotency-Key` is
//! sent for our simulator.

mod admin;
mod descriptor;
mod probe;
mod webhook;

pub(crate) use descriptor::DESCRIPTOR;

pub use admin::InteraktAdmin;
pub use probe::InteraktProbe;
pub use webhook::InteraktWebhook;

use msgengine_domain::message::{Media, MediaKind, OutboundMessage, WhatsappTemplate};
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

/// Interakt's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.interakt.ai";

/// `/v1/public/message/`, trailing slash included (the empty last segment).
const MESSAGE_PATH: [&str; 4] = ["v1", "public", "message", ""];

/// The message endpoint under `base`, or `None` when it is not an http(s) URL.
fn message_url(base: Option<&str>) -> Option<Url> {
    http::endpoint(base, DEFAULT_BASE_URL, &MESSAGE_PATH)
}

/// An INTERAKT connection's sender.
pub struct InteraktSender {
    http: crate::http::ProviderClient,
    /// `None` when `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
    /// Every secret of the connection, to scrub from provider text.
    secrets: Vec<Secret>,
}

impl InteraktSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            endpoint: message_url(spec.base_url.as_deref()),
            api_key: spec.access_token.clone(),
            secrets: secrets_of(spec),
        }
    }
}

/// The connection's secrets (API key, webhook secret).
fn secrets_of(spec: &WhatsappProviderSpec) -> Vec<Secret> {
    [&spec.access_token, &spec.webhook_secret]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

#[async_trait::async_trait]
impl Sender for InteraktSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "INTERAKT baseUrl must be an http(s) URL",
            ));
        };
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured(
                "INTERAKT needs accessToken (the API key)",
            ));
        };
        let body = message_body(message)?;
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
        let request = self
            .http
            .post(endpoint.clone())
            .header(AUTHORIZATION, format!("Basic {}", api_key.expose()))
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(&body);
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        http::sent_or_error(&answer, &secrets, accepted_id, classify_response)
    }
}

/// The JSON body of one send: a template, else media, else text.
pub(crate) fn message_body(message: &OutboundMessage) -> Result<Value, ProviderError> {
    let mut body = Map::new();
    let number: String = message.to.chars().filter(char::is_ascii_digit).collect();
    body.insert("fullPhoneNumber".into(), json!(number));
    body.insert("callbackData".into(), json!(message.id.to_string()));
    let extras = message.extras.as_deref();
    if let Some(template) = extras.and_then(|e| e.template.as_ref()) {
        body.insert("type".into(), json!("Template"));
        body.insert("template".into(), template_object(template)?);
    } else if let Some(media) = extras.and_then(|e| e.media.as_ref()) {
        let link = media_link(media)?;
        let kind = match media.kind {
            MediaKind::Image => "Image",
            MediaKind::Document => "Document",
            MediaKind::Audio => "Audio",
            MediaKind::Video => "Video",
        };
        let mut data = Map::new();
        if !message.text.is_empty() {
            data.insert("message".into(), json!(message.text));
        }
        data.insert("mediaUrl".into(), json!(link));
        if let Some(name) = media.filename.as_deref().filter(|n| !n.is_empty()) {
            data.insert("fileName".into(), json!(name));
        }
        body.insert("type".into(), json!(kind));
        body.insert("data".into(), Value::Object(data));
    } else {
        body.insert("type".into(), json!("Text"));
        body.insert("data".into(), json!({"message": message.text}));
    }
    Ok(Value::Object(body))
}

/// `{"name", "languageCode", "bodyValues"?, "headerValues"?, "fileName"?}`.
fn template_object(template: &WhatsappTemplate) -> Result<Value, ProviderError> {
    let mut object = Map::new();
    object.insert("name".into(), json!(template.name));
    object.insert("languageCode".into(), json!(template.language));
    if let Some(media) = &template.header_media {
        object.insert("headerValues".into(), json!([media_link(media)?]));
        if let Some(name) = media.filename.as_deref().filter(|n| !n.is_empty()) {
            object.insert("fileName".into(), json!(name));
        }
    }
    if !template.variables.is_empty() {
        object.insert("bodyValues".into(), json!(template.variables));
    }
    Ok(Value::Object(object))
}

/// Interakt takes media by public URL only (§9: `headerValues` are media
/// URLs); a provider media id from another upload means nothing to it.
fn media_link(media: &Media) -> Result<&str, ProviderError> {
    media
        .link
        .as_deref()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            ProviderError::new(
                FailureKind::Permanent,
                "Interakt takes WhatsApp media by link only, not by mediaId",
            )
        })
}

/// Interakt's answer envelope (unconfirmed, §13).
#[derive(Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub(crate) result: Option<bool>,
    #[serde(default)]
    pub(crate) message: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
}

impl Envelope {
    /// `message` as text, when it says something.
    pub(crate) fn reason(&self) -> Option<String> {
        match &self.message {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(other @ (Value::Object(_) | Value::Array(_))) => Some(other.to_string()),
            _ => None,
        }
    }
}

/// The Interakt message id of an accepted send: `id`, unless `result` is false.
fn accepted_id(body: &[u8]) -> Option<String> {
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    if envelope.result == Some(false) {
        return None;
    }
    match envelope.id? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What an Interakt answer that is not an accepted send means: 429 or a
/// reason speaking of a rate limit ("Rate limit exceeded for this
/// resource") is rate limited; `{"result": false}` with HTTP 2xx is
/// permanent (a refused request); otherwise the shared status meanings
/// (401/403 "Invalid token provided" permanent, 5xx transient).
pub fn classify_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let envelope = serde_json::from_slice::<Envelope>(body).ok();
    let refused = envelope.as_ref().and_then(|e| e.result) == Some(false);
    let reason = match envelope.as_ref().and_then(Envelope::reason) {
        Some(reason) => reason,
        None if (200..300).contains(&status) => "Interakt answered without a message id".to_owned(),
        None => http::plain_reason(status, body),
    };
    let kind = if status == 429 || reason.to_ascii_lowercase().contains("rate limit") {
        FailureKind::RateLimited
    } else if (200..300).contains(&status) && refused {
        FailureKind::Permanent
    } else {
        http::kind_for_status(status)
    };
    http::error_from_answer(kind, status, headers, None, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> ProviderError {
        classify_response(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn the_message_url_keeps_its_trailing_slash() {
        assert_eq!(
            message_url(None).map(String::from).as_deref(),
            Some("https://api.interakt.ai/v1/public/message/")
        );
        assert_eq!(
            message_url(Some("http://127.0.0.1:9/"))
                .map(String::from)
                .as_deref(),
            Some("http://127.0.0.1:9/v1/public/message/")
        );
    }

    #[test]
    fn only_answers_with_an_id_and_no_false_result_are_accepted() {
        let ok = br#"{"result": true, "message": "Message created successfully", "id": "6a3f"}"#;
        assert_eq!(accepted_id(ok).as_deref(), Some("6a3f"));
        assert_eq!(accepted_id(br#"{"id": "6a3f"}"#).as_deref(), Some("6a3f"));
        assert_eq!(accepted_id(br#"{"result": false, "id": "6a3f"}"#), None);
        assert_eq!(accepted_id(br#"{"result": true}"#), None);
    }

    #[test]
    fn refusals_rate_limits_and_server_errors_are_classified() {
        let e = classify(200, r#"{"result": false, "message": "Template not found"}"#);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Permanent, "Template not found")
        );
        let e = classify(
            401,
            r#"{"result": false, "message": "Invalid token provided"}"#,
        );
        assert_eq!(e.kind, FailureKind::Permanent);
        let e = classify(
            400,
            r#"{"message": "Rate limit exceeded for this resource"}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
        assert_eq!(classify(502, "<html/>").kind, FailureKind::Transient);
        assert_eq!(classify(201, "{}").kind, FailureKind::Transient);
    }
}

//! Mailjet's Send API v3.1: `POST /v3.1/send`, JSON (providers.md §3.1),
//! one message per call.
//!
//! `Messages[0]`: `From` (the message's, else `fromEmail`/`fromName`),
//! `To`, `ReplyTo`, `Subject`, `TextPart`/`HTMLPart`, `Attachments`
//! (`ContentType`, `Filename`, `Base64Content`), `Headers` (custom headers
//! and `X-Msgengine-Idempotency-Key`), `CustomID` = our message id and
//! `EventPayload` = the metadata as a JSON object (both echoed by every
//! event as `CustomID` / `Payload`), and `CustomCampaign` = the first tag
//! (Mailjet groups a message into one campaign).
//!
//! Success is HTTP 200 with `Messages[0].Status = "success"`; the receipt's
//! id is `To[0].MessageID` (a 64-bit integer, kept as its decimal text),
//! which every event carries as `MessageID`. Mailjet has no idempotency
//! key: a retry after a timeout may duplicate.

use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::{classify_response, credentials, DEFAULT_BASE_URL, NEEDS_KEYS};
use crate::esp::{self, Mailbox};
use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{ProviderError, SendReceipt, Sender};

/// Budget for the metadata carried in `EventPayload`.
const MAX_PAYLOAD_BYTES: usize = 4 * 1024;

/// A Mailjet connection.
pub struct MailjetSender {
    http: crate::http::ProviderClient,
    /// `None` when `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
    default_from: Option<Mailbox>,
}

impl MailjetSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &EmailProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            endpoint: http::endpoint(
                spec.base_url.as_deref(),
                DEFAULT_BASE_URL,
                &["v3.1", "send"],
            ),
            api_key: spec.api_key.clone(),
            default_from: esp::default_sender(spec),
        }
    }
}

/// `{"Email", "Name"?}`.
fn address(mailbox: &Mailbox) -> Value {
    let mut object = Map::new();
    object.insert("Email".into(), mailbox.email.clone().into());
    if let Some(name) = &mailbox.name {
        object.insert("Name".into(), name.clone().into());
    }
    Value::Object(object)
}

/// The Send API body of one message.
fn body(message: &OutboundMessage, from: &Mailbox, key: &str) -> Value {
    let extras = esp::extras(message);
    let mut m = Map::new();
    m.insert("From".into(), address(from));
    m.insert(
        "To".into(),
        json!([address(&esp::parse_mailbox(&message.to))]),
    );
    if let Some(reply_to) = &extras.reply_to {
        m.insert("ReplyTo".into(), address(&esp::parse_mailbox(reply_to)));
    }
    if let Some(subject) = &message.subject {
        m.insert("Subject".into(), subject.clone().into());
    }
    if !message.text.is_empty() || message.html.is_none() {
        m.insert("TextPart".into(), message.text.clone().into());
    }
    if let Some(html) = &message.html {
        m.insert("HTMLPart".into(), html.clone().into());
    }
    if !extras.attachments.is_empty() {
        let attachments: Vec<Value> = extras
            .attachments
            .iter()
            .map(|a| {
                json!({"ContentType": esp::content_type(a), "Filename": a.filename,
                       "Base64Content": a.content_base64})
            })
            .collect();
        m.insert("Attachments".into(), attachments.into());
    }
    let mut headers: Map<String, Value> = extras
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into()))
        .collect();
    headers.insert(IDEMPOTENCY_HEADER.into(), key.into());
    m.insert("Headers".into(), headers.into());
    m.insert("CustomID".into(), message.id.to_string().into());
    if let Some(metadata) = &message.metadata {
        let payload: Map<String, Value> = esp::custom_data(metadata, &[], MAX_PAYLOAD_BYTES)
            .into_iter()
            .map(|(name, value)| (name, value.into_owned().into()))
            .collect();
        if !payload.is_empty() {
            m.insert(
                "EventPayload".into(),
                Value::Object(payload).to_string().into(),
            );
        }
    }
    if let Some(tag) = extras.tags.first() {
        m.insert("CustomCampaign".into(), tag.clone().into());
    }
    json!({"Messages": [Value::Object(m)]})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Sent {
    messages: Vec<Outcome>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Outcome {
    status: String,
    #[serde(default)]
    to: Vec<Recipient>,
}

#[derive(Deserialize)]
struct Recipient {
    #[serde(rename = "MessageID", default)]
    message_id: Value,
}

/// `To[0].MessageID` of a message Mailjet took.
fn accepted_id(body: &[u8]) -> Option<String> {
    let sent: Sent = serde_json::from_slice(body).ok()?;
    let outcome = sent.messages.into_iter().next()?;
    if outcome.status != "success" {
        return None;
    }
    esp::text_of(&outcome.to.into_iter().next()?.message_id)
}

#[async_trait::async_trait]
impl Sender for MailjetSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "MAILJET baseUrl (when set) must be an http(s) URL",
            ));
        };
        let Some((public, private)) = credentials(self.api_key.as_ref()) else {
            return Err(ProviderError::misconfigured(NEEDS_KEYS));
        };
        let Some(from) = esp::sender(message, self.default_from.as_ref()) else {
            return Err(ProviderError::misconfigured("MAILJET needs fromEmail"));
        };
        let extras = esp::extras(message);
        esp::check_headers(&extras.headers)?;
        for attachment in &extras.attachments {
            esp::decode_attachment(attachment)?;
        }
        let secrets = [private, public];
        let request = self
            .http
            .post(endpoint.clone())
            .basic_auth(public, Some(private))
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(&body(message, &from, idempotency_key));
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        http::sent_or_error(&answer, &secrets, accepted_id, classify_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_id_keeps_the_64_bit_message_id_exact() {
        let body = br#"{"Messages": [{"Status": "success", "CustomID": "x", "To": [{"Email": "a@x.com",
            "MessageUUID": "1ab23cd4", "MessageID": 1152921504606846977, "MessageHref": "h"}], "Cc": [], "Bcc": []}]}"#;
        assert_eq!(accepted_id(body).as_deref(), Some("1152921504606846977"));
        assert_eq!(
            accepted_id(br#"{"Messages": [{"Status": "error", "Errors": []}]}"#),
            None
        );
    }
}

//! SendGrid's Mail Send: `POST /v3/mail/send`, JSON (providers.md §2.1).
//!
//! Body: one personalization to the recipient; `from` (the message's, else
//! `fromEmail`/`fromName`); `reply_to`; `subject` when the message has one
//! (SendGrid then requires it, and refuses in its own words); `content`
//! `text/plain` before `text/html`; `attachments` (base64 as given,
//! disposition `attachment`); `categories` from the tags (at most 10);
//! `headers` (custom headers and `X-Msgengine-Idempotency-Key`); and
//! `custom_args` with `msgengine-id` (our message id) and the metadata as
//! strings. SendGrid copies custom args to the top level of every webhook
//! event, so metadata names that are event fields are left out.
//!
//! Success is HTTP 202 with an empty body and `X-Message-Id`, the receipt's
//! id. Webhook events carry `sg_message_id` = that id, a dot and a suffix
//! (a prefix relation widely relied upon, not formally specified: §13).
//! SendGrid has no idempotency key: a retry after a timeout may duplicate.

use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use serde_json::{json, Map, Value};
use url::Url;

use super::{classify_response, DEFAULT_BASE_URL};
use crate::esp::{self, Mailbox, MESSAGE_ID_KEY};
use crate::http::{self, IDEMPOTENCY_HEADER};
use crate::send::{ProviderError, SendReceipt, Sender};

/// SendGrid accepts at most this many categories per message.
const MAX_CATEGORIES: usize = 10;
/// Budget for metadata in `custom_args` (SendGrid caps all custom args of
/// a message at 10,000 bytes).
const MAX_CUSTOM_ARGS_BYTES: usize = 8 * 1024;
/// Top-level event fields a custom arg must not shadow (§2.2).
pub(super) const EVENT_FIELDS: [&str; 24] = [
    "email",
    "timestamp",
    "event",
    "smtp-id",
    "sg_event_id",
    "sg_message_id",
    "category",
    "asm_group_id",
    "reason",
    "status",
    "response",
    "attempt",
    "type",
    "bounce_classification",
    "url",
    "url_offset",
    "useragent",
    "ip",
    "tls",
    "pool",
    "sg_machine_open",
    "cert_err",
    "marketing_campaign_id",
    "send_at",
];

/// A SendGrid connection.
pub struct SendgridSender {
    http: crate::http::ProviderClient,
    /// `None` when `baseUrl` is not an http(s) URL.
    endpoint: Option<Url>,
    api_key: Option<Secret>,
    default_from: Option<Mailbox>,
}

impl SendgridSender {
    /// A sender for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &EmailProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            endpoint: http::endpoint(
                spec.base_url.as_deref(),
                DEFAULT_BASE_URL,
                &["v3", "mail", "send"],
            ),
            api_key: spec.api_key.clone(),
            default_from: esp::default_sender(spec),
        }
    }
}

/// `{"email", "name"?}`.
fn address(mailbox: &Mailbox) -> Value {
    let mut object = Map::new();
    object.insert("email".into(), mailbox.email.clone().into());
    if let Some(name) = &mailbox.name {
        object.insert("name".into(), name.clone().into());
    }
    Value::Object(object)
}

/// The Mail Send body of one message.
fn body(message: &OutboundMessage, from: &Mailbox, key: &str) -> Value {
    let extras = esp::extras(message);
    let mut custom_args = Map::new();
    custom_args.insert(MESSAGE_ID_KEY.into(), message.id.to_string().into());
    if let Some(metadata) = &message.metadata {
        for (name, value) in esp::custom_data(metadata, &EVENT_FIELDS, MAX_CUSTOM_ARGS_BYTES) {
            custom_args.insert(name, value.into_owned().into());
        }
    }
    let mut content = Vec::new();
    if !message.text.is_empty() || message.html.is_none() {
        content.push(json!({"type": "text/plain", "value": message.text}));
    }
    if let Some(html) = &message.html {
        content.push(json!({"type": "text/html", "value": html}));
    }
    let mut headers: Map<String, Value> = extras
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into()))
        .collect();
    headers.insert(IDEMPOTENCY_HEADER.into(), key.into());
    let mut body = Map::new();
    body.insert(
        "personalizations".into(),
        json!([{"to": [address(&esp::parse_mailbox(&message.to))]}]),
    );
    body.insert("from".into(), address(from));
    if let Some(reply_to) = &extras.reply_to {
        body.insert("reply_to".into(), address(&esp::parse_mailbox(reply_to)));
    }
    if let Some(subject) = message.subject.as_deref().filter(|s| !s.is_empty()) {
        body.insert("subject".into(), subject.into());
    }
    body.insert("content".into(), content.into());
    if !extras.attachments.is_empty() {
        let attachments: Vec<Value> = extras
            .attachments
            .iter()
            .map(|a| {
                json!({"content": a.content_base64, "type": esp::content_type(a),
                       "filename": a.filename, "disposition": "attachment"})
            })
            .collect();
        body.insert("attachments".into(), attachments.into());
    }
    if !extras.tags.is_empty() {
        let categories: Vec<&str> = extras
            .tags
            .iter()
            .take(MAX_CATEGORIES)
            .map(String::as_str)
            .collect();
        body.insert("categories".into(), json!(categories));
    }
    body.insert("headers".into(), headers.into());
    body.insert("custom_args".into(), custom_args.into());
    Value::Object(body)
}

#[async_trait::async_trait]
impl Sender for SendgridSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ProviderError::misconfigured(
                "SENDGRID baseUrl (when set) must be an http(s) URL",
            ));
        };
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured("SENDGRID needs apiKey"));
        };
        let Some(from) = esp::sender(message, self.default_from.as_ref()) else {
            return Err(ProviderError::misconfigured("SENDGRID needs fromEmail"));
        };
        let extras = esp::extras(message);
        esp::check_headers(&extras.headers)?;
        for attachment in &extras.attachments {
            esp::decode_attachment(attachment)?;
        }
        let secrets = [api_key.expose()];
        let request = self
            .http
            .post(endpoint.clone())
            .bearer_auth(api_key.expose())
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(&body(message, &from, idempotency_key));
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        let message_id = answer
            .headers
            .get("x-message-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        http::sent_or_error(&answer, &secrets, |_| message_id, classify_response)
    }
}

#[cfg(test)]
mod tests {
    use msgengine_domain::message::{Attachment, MessageExtras};
    use msgengine_domain::{Channel, MessageId, OrganizationId};

    use super::*;

    #[test]
    fn body_carries_extras_and_custom_args_without_shadowing_event_fields() {
        let message = OutboundMessage {
            id: MessageId::new(),
            organization_id: OrganizationId::new(),
            channel: Channel::Email,
            to: "Ada <ada@example.org>".into(),
            from: None,
            subject: None,
            text: String::new(),
            html: Some("<p>Hi</p>".into()),
            metadata: json!({"event": "x", "plan": "pro"}).as_object().cloned(),
            extras: Some(Box::new(MessageExtras {
                tags: (0..12).map(|i| format!("t{i}")).collect(),
                attachments: vec![Attachment {
                    filename: "a.pdf".into(),
                    content_type: "application/pdf".into(),
                    content_base64: "JVBERi0=".into(),
                }],
                ..MessageExtras::default()
            })),
            routing: None,
        };
        let from = Mailbox {
            email: "ops@example.com".into(),
            name: None,
        };
        let body = body(&message, &from, "k");
        assert_eq!(
            body["personalizations"],
            json!([{"to": [{"email": "ada@example.org", "name": "Ada"}]}])
        );
        assert_eq!(
            body["content"],
            json!([{"type": "text/html", "value": "<p>Hi</p>"}])
        );
        assert!(body.get("subject").is_none());
        assert_eq!(body["categories"].as_array().map(Vec::len), Some(10));
        assert_eq!(
            body["custom_args"],
            json!({"msgengine-id": message.id.to_string(), "plan": "pro"})
        );
        assert_eq!(body["attachments"][0]["disposition"], "attachment");
    }
}

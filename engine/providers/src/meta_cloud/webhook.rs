//! Meta's webhook (providers.md §5.2).
//!
//! - GET handshake: `hub.mode=subscribe`, `hub.verify_token` equal (constant
//!   time) to the connection's `webhookVerifyToken`, answered with the raw
//!   `hub.challenge`. Anything else is refused.
//! - POST: `X-Hub-Signature-256: sha256=<hex>`, the lowercase hex of
//!   HMAC-SHA256 over the raw body keyed with the app secret (the
//!   connection's `webhookSecret`). Meta signs no timestamp, so there is no
//!   freshness check; replays are harmless because each event id is stable.
//! - `entry[].changes[]` with `field: "messages"`: every `value.statuses[]`
//!   item is one event (`sent`, `delivered`, `read`, `failed` with
//!   `errors[]`). Inbound user messages (`value.messages`) and other fields
//!   (`message_template_status_update`, `account_update`) are not status
//!   events and are skipped without error.
//!
//! No suppression is derived: Meta's statuses carry no opt-out, and a failure
//! such as 131050 (the user stopped marketing messages) does not bar utility
//! messages, so it must not suppress the number for everything.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::webhook::{
    constant_time_eq, InboundWebhook, WebhookError, WebhookEvent, WebhookHandler, WebhookReply,
};

/// The signature header Meta sends with every notification.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// The `object` of a WhatsApp Business Account notification.
const OBJECT: &str = "whatsapp_business_account";

/// A META_CLOUD connection's webhook scheme.
pub struct MetaCloudWebhook {
    app_secret: Option<Secret>,
    verify_token: Option<Secret>,
}

impl MetaCloudWebhook {
    /// The handler for `spec`: its `webhookSecret` (app secret) and `webhookVerifyToken`.
    pub fn new(spec: &WhatsappProviderSpec) -> Self {
        Self {
            app_secret: spec.webhook_secret.clone(),
            verify_token: spec.webhook_verify_token.clone(),
        }
    }
}

impl WebhookHandler for MetaCloudWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let Some(secret) = &self.app_secret else {
            return Err(WebhookError::Unauthorized(
                "webhookSecret (the Meta app secret) is not configured for this connection".into(),
            ));
        };
        let Some(header) = request.header(SIGNATURE_HEADER) else {
            return Err(WebhookError::Unauthorized(format!(
                "the {SIGNATURE_HEADER} header is missing"
            )));
        };
        let Some(given) = header.trim().strip_prefix("sha256=") else {
            return Err(WebhookError::Unauthorized(format!(
                "{SIGNATURE_HEADER} is not of the form sha256=<hex>"
            )));
        };
        let expected = hex::encode(hmac_sha256(secret.expose().as_bytes(), request.body));
        if !constant_time_eq(given.to_ascii_lowercase().as_bytes(), expected.as_bytes()) {
            return Err(WebhookError::Unauthorized(format!(
                "{SIGNATURE_HEADER} does not match the body signed with the app secret"
            )));
        }
        Ok(())
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let notification: Notification = serde_json::from_slice(request.body).map_err(|e| {
            WebhookError::Malformed(format!("not a Meta webhook notification: {e}"))
        })?;
        if notification.object.as_deref().is_some_and(|o| o != OBJECT) {
            return Err(WebhookError::Malformed(format!("object is not {OBJECT}")));
        }
        let events = notification
            .entry
            .iter()
            .flat_map(|entry| &entry.changes)
            .filter(|change| change.field.as_deref() == Some("messages"))
            .flat_map(|change| &change.value.statuses)
            .filter_map(|status| event_of(status, now))
            .collect();
        Ok(events)
    }

    fn handshake(
        &self,
        request: &InboundWebhook<'_>,
    ) -> Option<Result<WebhookReply, WebhookError>> {
        Some(self.answer_handshake(request.query))
    }
}

impl MetaCloudWebhook {
    fn answer_handshake(&self, query: &str) -> Result<WebhookReply, WebhookError> {
        let Some(expected) = &self.verify_token else {
            return Err(WebhookError::Unauthorized(
                "webhookVerifyToken is not configured for this connection".into(),
            ));
        };
        let mut mode = None;
        let mut token = None;
        let mut challenge = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "hub.mode" => mode = Some(value.into_owned()),
                "hub.verify_token" => token = Some(value.into_owned()),
                "hub.challenge" => challenge = Some(value.into_owned()),
                _ => {}
            }
        }
        if mode.as_deref() != Some("subscribe") {
            return Err(WebhookError::Malformed("hub.mode must be subscribe".into()));
        }
        let token = token.unwrap_or_default();
        if !constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) {
            return Err(WebhookError::Unauthorized(
                "hub.verify_token does not match the connection's webhookVerifyToken".into(),
            ));
        }
        match challenge.filter(|c| !c.is_empty()) {
            Some(challenge) => Ok(WebhookReply::Challenge(challenge)),
            None => Err(WebhookError::Malformed("hub.challenge is missing".into())),
        }
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: ChangeValue,
}

#[derive(Default, Deserialize)]
struct ChangeValue {
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    recipient_id: Option<String>,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<StatusError>,
}

#[derive(Deserialize)]
struct StatusError {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<Value>,
}

/// One status as an event; `None` for an item without message id or status.
fn event_of(status: &Status, now: DateTime<Utc>) -> Option<WebhookEvent> {
    let id = status.id.as_deref().filter(|s| !s.is_empty())?;
    let raw = status.status.as_deref().filter(|s| !s.is_empty())?;
    let timestamp = match &status.timestamp {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let at = timestamp
        .parse::<i64>()
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or(now);
    let mut event = WebhookEvent::new(format!("{id}:{raw}:{timestamp}"), raw, at);
    event.provider_message_id = Some(id.to_owned());
    event.message_id = status
        .biz_opaque_callback_data
        .clone()
        .filter(|s| !s.is_empty());
    event.state = state_of(raw);
    event.recipient = status.recipient_id.as_deref().map(e164);
    if let Some(error) = status.errors.first() {
        event.error_code = error.code.as_ref().and_then(|c| match c {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
        event.reason = error.reason();
    }
    Some(event)
}

impl StatusError {
    /// `title` (or `message`), then `error_data.details` when it adds something.
    fn reason(&self) -> Option<String> {
        let head = self
            .title
            .as_deref()
            .or(self.message.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let details = self
            .error_data
            .as_ref()
            .and_then(|d| d.get("details"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|d| !d.is_empty() && Some(*d) != head);
        match (head, details) {
            (Some(h), Some(d)) => Some(format!("{h}: {d}")),
            (Some(h), None) => Some(h.to_owned()),
            (None, d) => d.map(str::to_owned),
        }
    }
}

/// Meta's status word in the engine's terms (providers.md §12). `played`
/// (a voice message listened to, in some API versions, §13 unconfirmed)
/// counts as read; `deleted` and unknown words move no state.
fn state_of(raw: &str) -> Option<MessageState> {
    match raw {
        "sent" => Some(MessageState::Sent),
        "delivered" => Some(MessageState::Delivered),
        "read" | "played" => Some(MessageState::Read),
        "failed" => Some(MessageState::Failed),
        _ => None,
    }
}

/// Meta's `recipient_id` (a wa_id: country code and number, digits only) in
/// E.164, as our messages address it; anything else as given.
fn e164(recipient: &str) -> String {
    if !recipient.is_empty() && recipient.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{recipient}")
    } else {
        recipient.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_onto_engine_states() {
        assert_eq!(state_of("sent"), Some(MessageState::Sent));
        assert_eq!(state_of("delivered"), Some(MessageState::Delivered));
        assert_eq!(state_of("read"), Some(MessageState::Read));
        assert_eq!(state_of("played"), Some(MessageState::Read));
        assert_eq!(state_of("failed"), Some(MessageState::Failed));
        assert_eq!(state_of("deleted"), None);
    }

    #[test]
    fn wa_ids_become_e164() {
        assert_eq!(e164("2348031234567"), "+2348031234567");
        assert_eq!(e164("group.x"), "group.x");
    }

    #[test]
    fn handshake_needs_subscribe_the_token_and_a_challenge() {
        let handler = MetaCloudWebhook {
            app_secret: None,
            verify_token: Some(Secret::new("vt-123")),
        };
        assert_eq!(
            handler.answer_handshake("hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=42"),
            Ok(WebhookReply::Challenge("42".into()))
        );
        assert!(matches!(
            handler.answer_handshake("hub.mode=subscribe&hub.verify_token=vt-124&hub.challenge=4"),
            Err(WebhookError::Unauthorized(_))
        ));
        assert!(matches!(
            handler
                .answer_handshake("hub.mode=unsubscribe&hub.verify_token=vt-123&hub.challenge=4"),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            handler.answer_handshake("hub.mode=subscribe&hub.verify_token=vt-123"),
            Err(WebhookError::Malformed(_))
        ));
    }
}

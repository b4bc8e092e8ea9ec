//! AiSensy's webhooks (message status), configured in the AiSensy dashboard
//! on higher plans.
//!
//! **Unconfirmed format** (providers.md §8, §13: "webhook payload and any
//! webhook signature"). The parser is tolerant on purpose: it accepts an
//! object or an array of them, and in each looks for the message under
//! `data.message`, else `data`, else at the top, with its id in
//! `messageId` / `message_id` / `submitted_message_id` / `id`, its status in
//! `status` / `message_status` (case-insensitive: `queued`, `submitted`,
//! `enqueued`, `pending` → queued; `sent`; `delivered`; `read`; `failed`,
//! `undelivered`, `rejected` → failed; anything else moves no state), the
//! recipient in `phone_number` / `destination` / `phone` / `to`, and a
//! failure's reason and code in `failureResponse` / `error` / `reason`.
//! Objects without both an id and a status (inbound messages, contact
//! events) yield no event. The time is when we received it: AiSensy's
//! timestamp format is not documented. Event ids are derived from (message
//! id, status), so a replay yields the same id.
//!
//! **Not signed** (no scheme documented): the webhook URL set in the
//! dashboard must carry the connection's `webhookSecret` as a `token` query
//! parameter, as for Gupshup; without a configured secret every call is
//! refused.

use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use serde_json::{Map, Value};

use crate::gupshup::verify_token_param;
use crate::webhook::{InboundWebhook, WebhookError, WebhookEvent, WebhookHandler};

/// The webhook handler of one AiSensy connection.
pub struct AisensyWebhook {
    token: Option<Secret>,
}

impl AisensyWebhook {
    /// The handler for `spec`: its `webhookSecret` is the expected token.
    pub fn new(spec: &WhatsappProviderSpec) -> Self {
        Self {
            token: spec.webhook_secret.clone(),
        }
    }
}

impl WebhookHandler for AisensyWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        verify_token_param(request, self.token.as_ref(), "AiSensy")
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|_| WebhookError::Malformed("the body is not JSON".into()))?;
        let items = match body {
            Value::Array(items) => items,
            Value::Object(_) => vec![body],
            _ => {
                return Err(WebhookError::Malformed(
                    "the body is not a JSON object or array".into(),
                ))
            }
        };
        Ok(items
            .iter()
            .filter_map(|item| event_of(item, now))
            .collect())
    }
}

/// The object describing the message: `data.message`, `data`, or the item.
fn message_object(item: &Value) -> Option<&Map<String, Value>> {
    let data = item.get("data");
    data.and_then(|d| d.get("message"))
        .and_then(Value::as_object)
        .or_else(|| data.and_then(Value::as_object))
        .or_else(|| item.as_object())
}

fn first_text<'a>(object: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|key| object.get(*key).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An AiSensy status word in the engine's terms (§12 lists AiSensy's
/// webhook statuses as unconfirmed; these are the WhatsApp words).
fn state_of(status: &str) -> Option<MessageState> {
    match status.to_ascii_lowercase().as_str() {
        "queued" | "submitted" | "enqueued" | "pending" => Some(MessageState::Queued),
        "sent" => Some(MessageState::Sent),
        "delivered" => Some(MessageState::Delivered),
        "read" => Some(MessageState::Read),
        "failed" | "undelivered" | "rejected" => Some(MessageState::Failed),
        _ => None,
    }
}

/// A number in the engine's E.164 form (`919876543210` → `+919876543210`).
fn e164(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        number.to_owned()
    } else {
        format!("+{digits}")
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A failure's (code, reason) from `failureResponse`, `error` or `reason`.
fn failure_of(object: &Map<String, Value>) -> (Option<String>, Option<String>) {
    for key in ["failureResponse", "error"] {
        match object.get(key) {
            Some(Value::Object(detail)) => {
                let code = detail.get("code").and_then(text_of);
                let reason = ["reason", "message", "title", "details"]
                    .iter()
                    .find_map(|k| detail.get(*k).and_then(text_of));
                return (code, reason);
            }
            Some(Value::String(s)) if !s.trim().is_empty() => return (None, Some(s.clone())),
            _ => {}
        }
    }
    (None, object.get("reason").and_then(text_of))
}

fn event_of(item: &Value, now: DateTime<Utc>) -> Option<WebhookEvent> {
    let message = message_object(item)?;
    let id = first_text(
        message,
        &["messageId", "message_id", "submitted_message_id", "id"],
    )?;
    let status = first_text(message, &["status", "message_status"])?;
    let state = state_of(status);
    let mut event = WebhookEvent::new(
        format!("aisensy:{id}:{}", status.to_ascii_lowercase()),
        status,
        now,
    );
    event.state = state;
    event.provider_message_id = Some(id.to_owned());
    event.recipient =
        first_text(message, &["phone_number", "destination", "phone", "to"]).map(e164);
    if state == Some(MessageState::Failed) {
        let (code, reason) = failure_of(message);
        event.error_code = code;
        event.reason = reason;
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("time")
    }

    #[test]
    fn nested_and_flat_shapes_are_read_alike() {
        let nested = json!({"topic": "message.status.updated",
                            "data": {"message": {"id": "m-1", "status": "DELIVERED",
                                                 "phone_number": "919876543210"}}});
        let flat =
            json!({"messageId": "m-1", "status": "delivered", "destination": "+919876543210"});
        let a = event_of(&nested, now()).expect("event");
        let b = event_of(&flat, now()).expect("event");
        assert_eq!(a.event_id, "aisensy:m-1:delivered");
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(a.state, Some(MessageState::Delivered));
        assert_eq!(a.recipient.as_deref(), Some("+919876543210"));
        assert_eq!(a.raw_status, "DELIVERED");
    }

    #[test]
    fn failures_carry_code_and_reason() {
        let item = json!({"data": {"id": "m-2", "status": "failed",
                                   "failureResponse": {"code": 131026, "reason": "Message undeliverable"}}});
        let e = event_of(&item, now()).expect("event");
        assert_eq!(e.state, Some(MessageState::Failed));
        assert_eq!(e.error_code.as_deref(), Some("131026"));
        assert_eq!(e.reason.as_deref(), Some("Message undeliverable"));
    }

    #[test]
    fn objects_without_id_or_status_yield_nothing() {
        assert!(event_of(&json!({"data": {"message": {"text": "hi"}}}), now()).is_none());
        assert!(event_of(&json!({"status": "sent"}), now()).is_none());
        let unknown = event_of(&json!({"id": "m", "status": "clicked"}), now()).expect("event");
        assert_eq!(unknown.state, None);
    }
}

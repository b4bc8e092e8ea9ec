//! Gupshup's app callbacks (providers.md §7.3), in the "v2" format
//! `{"app", "timestamp" (ms), "version": 2, "type", "payload"}` and in the
//! Meta-format ("v3") mode, which forwards the Cloud API shape (§5.2) with
//! Gupshup's id added as `gs_id` on statuses.
//!
//! - `type: "message-event"`: `payload.type` `enqueued` → queued, `sent`,
//!   `delivered`, `read`, `failed` (with `payload.payload.code`/`reason`);
//!   `deleted` and unknown types move no state. Gupshup's id is `gsId` for
//!   `sent`/`delivered`/`read` (their `id` is the WhatsApp wamid) and `id`
//!   for `enqueued`/`failed`: correlation uses `gsId`, else `id`.
//! - `type: "user-event"` with `payload.type: "opted-out"`: an unsubscribe,
//!   suppressing the number (`payload.phone`; §7.3 does not show the field,
//!   Gupshup's docs name it `phone`). `opted-in`, inbound `message`s and
//!   `billing-event`s concern no message of ours and yield no event.
//!
//! Event ids are derived from (Gupshup id, event type, event time), so a
//! replayed callback yields the same id.
//!
//! **Not signed.** Gupshup documents no signature for self-serve callbacks
//! (§7.3, §13: "whether callbacks are signed (none found)"). The callback
//! URL set in the Gupshup console must carry the connection's
//! `webhookSecret` as a `token` query parameter; without a configured secret
//! every callback is refused.

use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use serde::Deserialize;
use serde_json::Value;

use super::e164;
use crate::webhook::{
    token_eq, usable_token, Engagement, InboundWebhook, SuppressionReason, WebhookError,
    WebhookEvent, WebhookHandler,
};

/// Checks the `token` query parameter of a callback from a provider that
/// does not sign (Gupshup, AiSensy) against the connection's `webhookSecret`,
/// in constant time. Refuses when no secret is configured: an unguessable
/// URL is the only protection these providers offer.
pub fn verify_token_param(
    request: &InboundWebhook<'_>,
    secret: Option<&Secret>,
    provider: &str,
) -> Result<(), WebhookError> {
    let Some(secret) = usable_token(secret) else {
        return Err(WebhookError::Unauthorized(format!(
            "{provider} does not sign its callbacks and this connection has no webhookSecret of \
             at least 16 characters: set one and append ?token=<webhookSecret> to the callback URL"
        )));
    };
    let token = url::form_urlencoded::parse(request.query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value);
    match token {
        None => Err(WebhookError::Unauthorized(
            "the token query parameter is missing".into(),
        )),
        Some(token) if token_eq(token.as_bytes(), secret.expose().as_bytes()) => Ok(()),
        Some(_) => Err(WebhookError::Unauthorized(
            "the token query parameter does not match the connection's webhookSecret".into(),
        )),
    }
}

/// The callback handler of one Gupshup connection.
pub struct GupshupWebhook {
    token: Option<Secret>,
}

impl GupshupWebhook {
    /// The handler for `spec`: its `webhookSecret` is the expected token.
    pub fn new(spec: &WhatsappProviderSpec) -> Self {
        Self {
            token: spec.webhook_secret.clone(),
        }
    }
}

impl WebhookHandler for GupshupWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        // No timestamp is signed (nothing is), so there is no freshness
        // check; replays are absorbed by the stable event ids.
        verify_token_param(request, self.token.as_ref(), "Gupshup")
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let callback: Callback = serde_json::from_slice(request.body)
            .map_err(|_| WebhookError::Malformed("the body is not a Gupshup callback".into()))?;
        if let Some(entries) = callback.entry {
            return Ok(meta_format_events(entries, now));
        }
        let stamp_ms = callback.timestamp.as_ref().and_then(integer);
        let payload = callback.payload.unwrap_or(Value::Null);
        let malformed = |what: &str| {
            WebhookError::Malformed(format!("the {what} payload is not in Gupshup's shape"))
        };
        match callback.kind.as_deref() {
            Some("message-event") => {
                let event: MessageEventPayload =
                    serde_json::from_value(payload).map_err(|_| malformed("message-event"))?;
                message_event(event, stamp_ms, now).map(|e| vec![e])
            }
            Some("user-event") => {
                let event: UserEventPayload =
                    serde_json::from_value(payload).map_err(|_| malformed("user-event"))?;
                Ok(user_event(event, stamp_ms, now).into_iter().collect())
            }
            Some(_) => Ok(Vec::new()),
            None => Err(WebhookError::Malformed(
                "a Gupshup callback without type".into(),
            )),
        }
    }
}

#[derive(Deserialize)]
struct Callback {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    payload: Option<Value>,
    /// Present in the Meta-format ("v3") mode only.
    #[serde(default)]
    entry: Option<Vec<MetaEntry>>,
}

#[derive(Deserialize)]
struct MessageEventPayload {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "gsId")]
    gs_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    payload: Option<EventDetail>,
}

#[derive(Deserialize, Default)]
struct EventDetail {
    /// Unix seconds.
    #[serde(default)]
    ts: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct UserEventPayload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    destination: Option<String>,
}

/// An integer sent as a JSON number or a string of digits.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A provider code as text, whether sent as a number or a string.
fn code_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Gupshup's message-event type in the engine's terms (§12).
fn state_of(kind: &str) -> Option<MessageState> {
    match kind {
        "enqueued" => Some(MessageState::Queued),
        "sent" => Some(MessageState::Sent),
        "delivered" => Some(MessageState::Delivered),
        "read" => Some(MessageState::Read),
        "failed" => Some(MessageState::Failed),
        _ => None,
    }
}

fn message_event(
    event: MessageEventPayload,
    stamp_ms: Option<i64>,
    now: DateTime<Utc>,
) -> Result<WebhookEvent, WebhookError> {
    let Some(provider_id) = event.gs_id.or(event.id).filter(|id| !id.is_empty()) else {
        return Err(WebhookError::Malformed(
            "a Gupshup message-event without id or gsId".into(),
        ));
    };
    let detail = event.payload.unwrap_or_default();
    let ts = detail.ts.as_ref().and_then(integer);
    let occurred_at = ts
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .or_else(|| stamp_ms.and_then(DateTime::from_timestamp_millis))
        .unwrap_or(now);
    let stamp = ts.or(stamp_ms).map(|t| t.to_string()).unwrap_or_default();
    let mut out = WebhookEvent::new(
        format!("gupshup:{provider_id}:{}:{stamp}", event.kind),
        event.kind.as_str(),
        occurred_at,
    );
    out.state = state_of(&event.kind);
    out.provider_message_id = Some(provider_id);
    out.recipient = event.destination.as_deref().map(e164);
    if out.state == Some(MessageState::Failed) {
        out.error_code = detail.code.as_ref().and_then(code_text);
        out.reason = detail.reason.filter(|r| !r.is_empty());
    }
    Ok(out)
}

fn user_event(
    event: UserEventPayload,
    stamp_ms: Option<i64>,
    now: DateTime<Utc>,
) -> Option<WebhookEvent> {
    if event.kind != "opted-out" {
        return None;
    }
    let phone = event.phone.or(event.destination).map(|p| e164(&p))?;
    let stamp = stamp_ms.map(|t| t.to_string()).unwrap_or_default();
    let occurred_at = stamp_ms
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(now);
    let mut out = WebhookEvent::new(
        format!("gupshup:user-event:{phone}:opted-out:{stamp}"),
        "opted-out",
        occurred_at,
    );
    out.engagement = Some(Engagement::Unsubscribed);
    out.suppress = Some(SuppressionReason::Unsubscribe);
    out.recipient = Some(phone);
    Some(out)
}

#[derive(Deserialize)]
struct MetaEntry {
    #[serde(default)]
    changes: Vec<MetaChange>,
}

#[derive(Deserialize)]
struct MetaChange {
    #[serde(default)]
    value: Option<MetaValue>,
}

#[derive(Deserialize)]
struct MetaValue {
    #[serde(default)]
    statuses: Vec<MetaStatus>,
}

#[derive(Deserialize)]
struct MetaStatus {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    gs_id: Option<String>,
    status: String,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    recipient_id: Option<String>,
    #[serde(default)]
    errors: Vec<MetaError>,
}

#[derive(Deserialize)]
struct MetaError {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The statuses of a Meta-format ("v3") callback; inbound messages and
/// other fields yield nothing. Gupshup's `gs_id` is the correlation id, the
/// wamid only when it is missing.
fn meta_format_events(entries: Vec<MetaEntry>, now: DateTime<Utc>) -> Vec<WebhookEvent> {
    let statuses = entries
        .into_iter()
        .flat_map(|e| e.changes)
        .filter_map(|c| c.value)
        .flat_map(|v| v.statuses);
    statuses
        .filter_map(|status| {
            let provider_id = status.gs_id.or(status.id).filter(|id| !id.is_empty())?;
            let ts = status.timestamp.as_ref().and_then(integer);
            let stamp = ts.map(|t| t.to_string()).unwrap_or_default();
            let occurred_at = ts
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .unwrap_or(now);
            let mut out = WebhookEvent::new(
                format!("gupshup:{provider_id}:{}:{stamp}", status.status),
                status.status.as_str(),
                occurred_at,
            );
            out.state = state_of(&status.status);
            out.provider_message_id = Some(provider_id);
            out.recipient = status.recipient_id.as_deref().map(e164);
            if let Some(error) = status.errors.into_iter().next() {
                out.error_code = error.code.as_ref().and_then(code_text);
                out.reason = error.message.or(error.title);
            }
            Some(out)
        })
        .collect()
}

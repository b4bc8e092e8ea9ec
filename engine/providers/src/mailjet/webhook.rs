//! Mailjet's event callback (providers.md §3.2): one event object per POST
//! (`Version` 1) or a JSON array of them (`Version` 2).
//!
//! Mailjet does not sign its webhooks. msgengine therefore requires the
//! connection's `webhookSecret` in the callback URL, compared in constant
//! time: as the `token` query parameter (what [`super::MailjetAdmin`] sets
//! up), or as the password of HTTP Basic credentials in the URL
//! (`https://user:secret@host/...`, the protection Mailjet documents).
//! Without a configured `webhookSecret` every request is refused. There is
//! no signed timestamp, so nothing can be checked for staleness; replays
//! are harmless because event ids are stable.
//!
//! Events carry no id: [`WebhookEvent::event_id`] is derived from the
//! event object itself (a hash of `MessageID`, `event` and all its fields).
//!
//! Mapping (§12): `sent` (accepted by the recipient's server) → delivered,
//! `open`/`click` → engagement (implying delivered), `bounce` with
//! `hard_bounce` → bounced + bounce suppression, soft → failed, `blocked`
//! → failed (code `suppressed` when `preblocked`), `spam` → complaint,
//! `unsub` → unsubscribe; each with its suppression.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use serde_json::{Map, Value};

use crate::esp;
use crate::webhook::{
    token_eq, usable_token, Engagement, InboundWebhook, SuppressionReason, WebhookError,
    WebhookEvent, WebhookHandler,
};

/// A Mailjet connection's webhook scheme.
pub struct MailjetWebhook {
    token: Option<Secret>,
}

impl MailjetWebhook {
    /// The handler for `spec`; its `webhookSecret` is the expected token.
    pub fn new(spec: &EmailProviderSpec) -> Self {
        Self {
            token: spec.webhook_secret.clone(),
        }
    }
}

/// The password of an `Authorization: Basic` header, when there is one.
fn basic_password(request: &InboundWebhook<'_>) -> Option<String> {
    let value = request.header("authorization")?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

impl WebhookHandler for MailjetWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let Some(token) = usable_token(self.token.as_ref()) else {
            return Err(WebhookError::Unauthorized(
                "webhookSecret (at least 16 characters) is not configured: Mailjet does not sign webhooks, so msgengine requires it as the token query parameter".into(),
            ));
        };
        let expected = token.expose().as_bytes();
        let in_query = url::form_urlencoded::parse(request.query.as_bytes())
            .any(|(name, value)| name == "token" && token_eq(value.as_bytes(), expected));
        let in_basic =
            basic_password(request).is_some_and(|password| token_eq(password.as_bytes(), expected));
        if in_query || in_basic {
            return Ok(());
        }
        Err(WebhookError::Unauthorized(
            "missing or wrong token query parameter (Mailjet does not sign webhooks)".into(),
        ))
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|e| WebhookError::Malformed(format!("not a Mailjet JSON event: {e}")))?;
        match body {
            Value::Object(event) => Ok(vec![parse_event(&event, now)?]),
            Value::Array(events) => events
                .iter()
                .map(|e| match e {
                    Value::Object(event) => parse_event(event, now),
                    _ => Err(WebhookError::Malformed(
                        "a Mailjet event is not an object".into(),
                    )),
                })
                .collect(),
            _ => Err(WebhookError::Malformed(
                "a Mailjet webhook is an event object or an array of them".into(),
            )),
        }
    }
}

fn text<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    data.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One event object as an engine event.
fn parse_event(
    data: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<WebhookEvent, WebhookError> {
    let raw = text(data, "event")
        .ok_or_else(|| WebhookError::Malformed("a Mailjet event has no event".into()))?;
    let provider_message_id = data.get("MessageID").and_then(esp::text_of);
    let recipient = text(data, "email").map(str::to_owned);
    // Mailjet gives events no id: the whole event object identifies it (a
    // retried delivery repeats it byte for byte; two bounces of one message
    // in the same second still differ in their fields). Keys are sorted so
    // the id does not depend on the order Mailjet wrote them in.
    let sorted: std::collections::BTreeMap<&String, &Value> = data.iter().collect();
    let whole = serde_json::to_string(&sorted).unwrap_or_default();
    let event_id = esp::derived_event_id(
        "mailjet",
        &[provider_message_id.as_deref().unwrap_or(""), raw, &whole],
    );
    let at = data.get("time").and_then(esp::unix_time_of).unwrap_or(now);
    let mut event = WebhookEvent::new(event_id, raw, at);
    event.provider_message_id = provider_message_id;
    event.message_id = text(data, "CustomID").map(str::to_owned);
    event.recipient = recipient;
    apply_mapping(&mut event, data);
    Ok(event)
}

/// `error (error_related_to): comment`, from what the event gives.
fn failure_reason(data: &Map<String, Value>) -> Option<String> {
    let error = text(data, "error")?;
    let mut reason = error.to_owned();
    if let Some(related) = text(data, "error_related_to") {
        reason = format!("{reason} ({related})");
    }
    if let Some(comment) = text(data, "comment") {
        reason = format!("{reason}: {comment}");
    }
    Some(reason)
}

/// Sets state, engagement, suppression, code and reason from the event.
fn apply_mapping(event: &mut WebhookEvent, data: &Map<String, Value>) {
    match event.raw_status.as_str() {
        // Accepted by the recipient's server: our delivered (§12).
        "sent" => {
            event.state = Some(MessageState::Delivered);
            event.reason = text(data, "smtp_reply").map(str::to_owned);
        }
        "open" => {
            event.engagement = Some(Engagement::Opened);
            event.state = Some(MessageState::Delivered);
        }
        "click" => {
            event.engagement = Some(Engagement::Clicked);
            event.state = Some(MessageState::Delivered);
            event.reason = text(data, "url").map(str::to_owned);
        }
        "bounce" => {
            event.reason = failure_reason(data);
            if data.get("hard_bounce").and_then(Value::as_bool) == Some(true) {
                event.state = Some(MessageState::Bounced);
                event.suppress = Some(SuppressionReason::Bounce);
            } else {
                event.state = Some(MessageState::Failed);
            }
        }
        "blocked" => {
            event.state = Some(MessageState::Failed);
            event.reason = failure_reason(data);
            if text(data, "error") == Some("preblocked") {
                event.error_code = Some("suppressed".into());
            }
        }
        "spam" => {
            event.engagement = Some(Engagement::Complained);
            event.suppress = Some(SuppressionReason::Complaint);
            event.reason = text(data, "source").map(str::to_owned);
        }
        "unsub" => {
            event.engagement = Some(Engagement::Unsubscribed);
            event.suppress = Some(SuppressionReason::Unsubscribe);
        }
        _ => {}
    }
}

//! Mailgun's event webhook (providers.md §1.4): one JSON object per POST,
//! `{"signature": {"timestamp", "token", "signature"}, "event-data": {…}}`.
//!
//! Verification, exactly as Mailgun specifies: HMAC-SHA256 keyed with the
//! account's HTTP webhook signing key (the connection's `webhookSecret`)
//! over the `timestamp` string immediately followed by the `token` string,
//! hex-encoded, compared in constant time with `signature`. The timestamp
//! must be within [`MAX_CLOCK_SKEW_SECS`](crate::webhook::MAX_CLOCK_SKEW_SECS)
//! of now (Mailgun recommends refusing stale ones).
//!
//! Only `timestamp` and `token` are signed, not `event-data`: a captured
//! signature could carry any events. So verification reads the `signature`
//! object alone (the rest of the body is skipped, not built), and the token
//! is the request's [`Nonce`]: the endpoint remembers it for the timestamp
//! window and refuses it on a request with a different body.
//!
//! Mapping (§12): `accepted` → sent (Mailgun took it: our `sent`), `rejected`
//! → failed, `delivered` → delivered, `failed` permanent with reason
//! `bounce`/`delayed-bounce` → bounced + bounce suppression, other permanent
//! failures → failed (`suppress-*` with code `suppressed`), `failed`
//! temporary → a Deferred note (Mailgun still retries), `opened`/`clicked`
//! → engagement (implying delivered), `complained`/`unsubscribed` →
//! engagement + suppression.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::esp::{self, MESSAGE_ID_KEY};
use crate::webhook::{
    check_fresh, constant_time_eq, Engagement, InboundWebhook, Nonce, SuppressionReason,
    WebhookError, WebhookEvent, WebhookHandler, MAX_CLOCK_SKEW_SECS,
};

/// A Mailgun connection's webhook scheme.
pub struct MailgunWebhook {
    signing_key: Option<Secret>,
}

impl MailgunWebhook {
    /// The handler for `spec`; its `webhookSecret` is the signing key.
    pub fn new(spec: &EmailProviderSpec) -> Self {
        Self {
            signing_key: spec.webhook_secret.clone(),
        }
    }
}

/// The body as parsing reads it, once verified.
#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "event-data")]
    event_data: Map<String, Value>,
}

/// The body as far as verification reads it: `event-data` is skipped.
#[derive(Deserialize)]
struct Signed {
    signature: Signature,
}

/// Longest token accepted (Mailgun's are 50 characters): it is stored.
const MAX_TOKEN_CHARS: usize = 256;

#[derive(Deserialize)]
struct Signature {
    timestamp: String,
    token: String,
    signature: String,
}

fn payload(request: &InboundWebhook<'_>) -> Result<Payload, WebhookError> {
    serde_json::from_slice(request.body).map_err(|e| {
        WebhookError::Malformed(format!(
            "not a Mailgun JSON event with signature and event-data: {e}"
        ))
    })
}

fn signature(request: &InboundWebhook<'_>) -> Result<Signature, WebhookError> {
    serde_json::from_slice::<Signed>(request.body)
        .map(|signed| signed.signature)
        .map_err(|_| WebhookError::Unauthorized("no Mailgun signature object in the body".into()))
}

impl WebhookHandler for MailgunWebhook {
    fn verify(&self, request: &InboundWebhook<'_>, now: DateTime<Utc>) -> Result<(), WebhookError> {
        let Some(key) = &self.signing_key else {
            return Err(WebhookError::Unauthorized(
                "webhookSecret (Mailgun's HTTP webhook signing key) is not configured".into(),
            ));
        };
        let signature = signature(request)?;
        if signature.token.chars().count() > MAX_TOKEN_CHARS {
            return Err(WebhookError::Unauthorized("the token is too long".into()));
        }
        let given = hex::decode(signature.signature.trim())
            .map_err(|_| WebhookError::Unauthorized("signature is not hex".into()))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
            .map_err(|_| WebhookError::Unauthorized("unusable signing key".into()))?;
        mac.update(signature.timestamp.as_bytes());
        mac.update(signature.token.as_bytes());
        let expected = mac.finalize().into_bytes();
        if !constant_time_eq(&expected, &given) {
            return Err(WebhookError::Unauthorized(
                "HMAC-SHA256 over timestamp and token does not match".into(),
            ));
        }
        let timestamp =
            signature.timestamp.trim().parse::<i64>().map_err(|_| {
                WebhookError::Unauthorized("signed timestamp is not a number".into())
            })?;
        check_fresh(timestamp, now)
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let data = payload(request)?.event_data;
        Ok(vec![event(&data, now)?])
    }

    /// The signed token, remembered until its timestamp can no longer pass
    /// the freshness check (on any node whose clock is within the same skew).
    fn nonce(&self, request: &InboundWebhook<'_>) -> Option<Nonce> {
        let signature = signature(request).ok()?;
        let timestamp = signature.timestamp.trim().parse::<i64>().ok()?;
        let until = timestamp.checked_add(2 * MAX_CLOCK_SKEW_SECS)?;
        Some(Nonce {
            value: signature.token,
            expires_at: DateTime::from_timestamp(until, 0)?,
        })
    }
}

fn text<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    data.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One `event-data` object as an engine event.
fn event(data: &Map<String, Value>, now: DateTime<Utc>) -> Result<WebhookEvent, WebhookError> {
    let raw = text(data, "event")
        .ok_or_else(|| WebhookError::Malformed("event-data has no event".into()))?;
    let at = data.get("timestamp").and_then(esp::unix_time_of);
    let provider_message_id = data
        .get("message")
        .and_then(|m| m.pointer("/headers/message-id"))
        .and_then(Value::as_str)
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let event_id = match text(data, "id") {
        Some(id) => id.to_owned(),
        None => esp::derived_event_id(
            "mailgun",
            &[
                provider_message_id.as_deref().unwrap_or(""),
                raw,
                &at.map(|t| t.timestamp_micros()).unwrap_or(0).to_string(),
                text(data, "recipient").unwrap_or(""),
            ],
        ),
    };
    let mut event = WebhookEvent::new(event_id, raw, at.unwrap_or(now));
    event.provider_message_id = provider_message_id;
    event.message_id = data
        .get("user-variables")
        .and_then(|v| v.get(MESSAGE_ID_KEY))
        .and_then(esp::text_of);
    event.recipient = text(data, "recipient").map(str::to_owned);
    apply_mapping(&mut event, data);
    Ok(event)
}

/// Sets state, engagement, suppression, code and reason from the event.
fn apply_mapping(event: &mut WebhookEvent, data: &Map<String, Value>) {
    let status = data.get("delivery-status");
    let status_text = |key: &str| {
        status
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let smtp_code = status.and_then(|s| s.get("code")).and_then(esp::text_of);
    let described = status_text("description").or(status_text("message"));
    let reason = text(data, "reason");
    match event.raw_status.as_str() {
        "accepted" => event.state = Some(MessageState::Sent),
        "delivered" => event.state = Some(MessageState::Delivered),
        "rejected" => {
            event.state = Some(MessageState::Failed);
            event.reason = data
                .get("reject")
                .and_then(|r| r.get("reason"))
                .and_then(Value::as_str)
                .or(reason)
                .map(str::to_owned);
        }
        "failed" => {
            event.error_code = smtp_code;
            event.reason = described.or(reason).map(str::to_owned);
            let permanent = text(data, "severity") != Some("temporary");
            match reason {
                _ if !permanent => event.engagement = Some(Engagement::Deferred),
                Some("bounce" | "delayed-bounce") => {
                    event.state = Some(MessageState::Bounced);
                    event.suppress = Some(SuppressionReason::Bounce);
                }
                Some(r) if r.starts_with("suppress-") => {
                    event.state = Some(MessageState::Failed);
                    event.error_code = Some("suppressed".into());
                    event.reason = Some(format!("the recipient is on Mailgun's {r} list"));
                }
                _ => event.state = Some(MessageState::Failed),
            }
        }
        "opened" => engage(event, Engagement::Opened),
        "clicked" => {
            engage(event, Engagement::Clicked);
            event.reason = text(data, "url").map(str::to_owned);
        }
        "complained" => {
            event.engagement = Some(Engagement::Complained);
            event.suppress = Some(SuppressionReason::Complaint);
        }
        "unsubscribed" => {
            event.engagement = Some(Engagement::Unsubscribed);
            event.suppress = Some(SuppressionReason::Unsubscribe);
        }
        _ => {}
    }
}

/// An open or click: engagement, and proof of delivery (§12).
fn engage(event: &mut WebhookEvent, engagement: Engagement) {
    event.engagement = Some(engagement);
    event.state = Some(MessageState::Delivered);
}

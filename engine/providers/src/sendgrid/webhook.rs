//! SendGrid's Signed Event Webhook (providers.md §2.2): a JSON array of
//! events per POST.
//!
//! Verification, exactly as SendGrid specifies: the
//! `X-Twilio-Email-Event-Webhook-Signature` header is base64 of a DER
//! ECDSA signature (P-256, SHA-256) over the bytes of the
//! `X-Twilio-Email-Event-Webhook-Timestamp` header immediately followed by
//! the raw body. The public key is the connection's `webhookSecret`: base64
//! DER SubjectPublicKeyInfo as SendGrid shows it (PEM armour and line
//! breaks are tolerated). The timestamp must be within
//! [`MAX_CLOCK_SKEW_SECS`](crate::webhook::MAX_CLOCK_SKEW_SECS) of now.
//!
//! Mapping (§12): `processed` → sent, `delivered` → delivered, `dropped` →
//! failed (code `suppressed` for the suppression-list reasons), `deferred`
//! → a Deferred note, `bounce` → bounced + bounce suppression, except
//! `type=blocked` (soft) → failed, `open`/`click` → engagement (implying
//! delivered), `spamreport` → complaint, `unsubscribe`/`group_unsubscribe`
//! → unsubscribe; each with its suppression.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::EmailProviderSpec;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};

use crate::esp::{self, MESSAGE_ID_KEY};
use crate::webhook::{
    check_fresh, Engagement, InboundWebhook, SuppressionReason, WebhookError, WebhookEvent,
    WebhookHandler,
};

/// The signature header (base64 DER ECDSA).
pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// The signed timestamp header (unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// `dropped` reasons that mean the address is on a suppression list.
const SUPPRESSED_DROPS: [&str; 3] = [
    "Bounced Address",
    "Unsubscribed Address",
    "Spam Reporting Address",
];

/// A SendGrid connection's webhook scheme.
pub struct SendgridWebhook {
    /// The verification key, or why there is none (never the key text).
    key: Result<VerifyingKey, &'static str>,
}

impl SendgridWebhook {
    /// The handler for `spec`; its `webhookSecret` is the public key.
    pub fn new(spec: &EmailProviderSpec) -> Self {
        let key = match &spec.webhook_secret {
            None => {
                Err("webhookSecret (SendGrid's signed event webhook public key) is not configured")
            }
            Some(secret) => public_key(secret.expose())
                .ok_or("webhookSecret is not a base64 DER P-256 public key as SendGrid shows it"),
        };
        Self { key }
    }
}

/// The key from base64 DER SubjectPublicKeyInfo (PEM armour allowed).
pub(super) fn public_key(text: &str) -> Option<VerifyingKey> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(key_base64(text))
        .ok()?;
    VerifyingKey::from_public_key_der(&der).ok()
}

/// The base64 of a key with PEM armour and whitespace removed.
pub(super) fn key_base64(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect()
}

impl WebhookHandler for SendgridWebhook {
    fn verify(&self, request: &InboundWebhook<'_>, now: DateTime<Utc>) -> Result<(), WebhookError> {
        let key = self
            .key
            .as_ref()
            .map_err(|why| WebhookError::Unauthorized((*why).into()))?;
        let (Some(signature), Some(timestamp)) = (
            request.header(SIGNATURE_HEADER),
            request.header(TIMESTAMP_HEADER),
        ) else {
            return Err(WebhookError::Unauthorized(format!(
                "missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}"
            )));
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|der| Signature::from_der(&der).ok())
            .ok_or_else(|| {
                WebhookError::Unauthorized("signature is not base64 DER ECDSA".into())
            })?;
        let mut signed = Vec::with_capacity(timestamp.len() + request.body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(request.body);
        key.verify(&signed, &signature).map_err(|_| {
            WebhookError::Unauthorized(
                "ECDSA signature over timestamp and body does not verify".into(),
            )
        })?;
        let timestamp = timestamp
            .trim()
            .parse::<i64>()
            .map_err(|_| WebhookError::Unauthorized("signed timestamp is not a number".into()))?;
        check_fresh(timestamp, now)
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let events: Vec<Map<String, Value>> =
            serde_json::from_slice(request.body).map_err(|e| {
                WebhookError::Malformed(format!("not a JSON array of SendGrid events: {e}"))
            })?;
        events.iter().map(|e| event(e, now)).collect()
    }
}

fn text<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    data.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One event object as an engine event.
fn event(data: &Map<String, Value>, now: DateTime<Utc>) -> Result<WebhookEvent, WebhookError> {
    let raw = text(data, "event")
        .ok_or_else(|| WebhookError::Malformed("a SendGrid event has no event".into()))?;
    let at = data.get("timestamp").and_then(esp::unix_time_of);
    // `sg_message_id` is `<X-Message-Id>.<suffix>`: the prefix matches the
    // send receipt (a relation relied upon, not specified: providers.md §13).
    let provider_message_id = text(data, "sg_message_id")
        .and_then(|id| id.split('.').next())
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let recipient = text(data, "email").map(str::to_owned);
    let event_id = match text(data, "sg_event_id") {
        Some(id) => id.to_owned(),
        None => esp::derived_event_id(
            "sendgrid",
            &[
                text(data, "sg_message_id").unwrap_or(""),
                raw,
                &at.map(|t| t.timestamp()).unwrap_or(0).to_string(),
                recipient.as_deref().unwrap_or(""),
            ],
        ),
    };
    let mut event = WebhookEvent::new(event_id, raw, at.unwrap_or(now));
    event.provider_message_id = provider_message_id;
    event.message_id = data.get(MESSAGE_ID_KEY).and_then(esp::text_of);
    event.recipient = recipient;
    apply_mapping(&mut event, data);
    Ok(event)
}

/// Sets state, engagement, suppression, code and reason from the event.
fn apply_mapping(event: &mut WebhookEvent, data: &Map<String, Value>) {
    let reason = text(data, "reason")
        .or(text(data, "response"))
        .map(str::to_owned);
    match event.raw_status.as_str() {
        "processed" => event.state = Some(MessageState::Sent),
        "delivered" => event.state = Some(MessageState::Delivered),
        "deferred" => {
            event.engagement = Some(Engagement::Deferred);
            event.reason = reason;
        }
        "dropped" => {
            event.state = Some(MessageState::Failed);
            if text(data, "reason").is_some_and(|r| SUPPRESSED_DROPS.contains(&r)) {
                event.error_code = Some("suppressed".into());
            }
            event.reason = reason;
        }
        "bounce" => {
            event.error_code = text(data, "status").map(str::to_owned);
            event.reason = reason;
            if text(data, "type") == Some("blocked") {
                event.state = Some(MessageState::Failed);
            } else {
                event.state = Some(MessageState::Bounced);
                event.suppress = Some(SuppressionReason::Bounce);
            }
        }
        "open" => {
            event.engagement = Some(Engagement::Opened);
            event.state = Some(MessageState::Delivered);
            if data.get("sg_machine_open").and_then(Value::as_bool) == Some(true) {
                event.reason = Some("machine open (mail privacy protection)".into());
            }
        }
        "click" => {
            event.engagement = Some(Engagement::Clicked);
            event.state = Some(MessageState::Delivered);
            event.reason = text(data, "url").map(str::to_owned);
        }
        "spamreport" => {
            event.engagement = Some(Engagement::Complained);
            event.suppress = Some(SuppressionReason::Complaint);
        }
        "unsubscribe" | "group_unsubscribe" => {
            event.engagement = Some(Engagement::Unsubscribed);
            event.suppress = Some(SuppressionReason::Unsubscribe);
        }
        _ => {}
    }
}

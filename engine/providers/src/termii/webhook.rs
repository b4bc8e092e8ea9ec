//! Termii's delivery webhook (providers.md §11.2), configured in the Termii
//! dashboard: a JSON `POST` `{"type": "outbound", "id", "message_id",
//! "receiver", "sender", "message", "sent_at", "cost", "status", "channel"}`.
//!
//! **Signature.** Header `X-Termii-Signature` = HMAC-SHA512 of the raw body
//! with the account's secret key (our `credentials.webhookSecret`), as a
//! hex digest. §13: the encoding (hex) and the signed bytes (the raw body)
//! are unconfirmed; we assume what §11 says and accept either hex case.
//! Nothing signed carries a time, so there is no freshness check: a replay
//! is absorbed by the stable event id, derived from (`message_id`, status).
//!
//! **Statuses** (§11.2, §12; the list and its casing are unconfirmed, so
//! they are matched case-insensitively, spaces collapsed): `Delivered` →
//! delivered; `Message Sent` → sent; `Message Failed`, `Rejected`,
//! `Expired`, `DND Active on Phone Number` → failed, the status itself
//! being the reason; others move no state. `Received` and `type: "inbound"`
//! are inbound messages and yield no event. `sent_at` is the send time (its
//! zone undocumented), not the event's, so events are dated when received.
//! `receiver` is reported as `+<digits>`, the engine's E.164 form.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::SmsProviderSpec;
use msgengine_domain::Secret;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha512;

use crate::webhook::{
    constant_time_eq, InboundWebhook, WebhookError, WebhookEvent, WebhookHandler,
};

/// The header carrying Termii's signature.
pub const SIGNATURE_HEADER: &str = "X-Termii-Signature";

/// The webhook handler of one Termii connection.
pub struct TermiiWebhook {
    secret: Option<Secret>,
}

impl TermiiWebhook {
    /// The handler for `spec`: `credentials.webhookSecret` is the signing key.
    pub fn new(spec: &SmsProviderSpec) -> Self {
        Self {
            secret: spec.credential("webhookSecret").cloned(),
        }
    }
}

impl WebhookHandler for TermiiWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let Some(secret) = self.secret.as_ref().filter(|s| !s.expose().is_empty()) else {
            return Err(WebhookError::Unauthorized(
                "this TERMII connection has no credentials.webhookSecret to check X-Termii-Signature with"
                    .into(),
            ));
        };
        let Some(signature) = request.header(SIGNATURE_HEADER) else {
            return Err(WebhookError::Unauthorized(
                "the X-Termii-Signature header is missing".into(),
            ));
        };
        let claimed = hex::decode(signature.trim()).map_err(|_| {
            WebhookError::Unauthorized("X-Termii-Signature is not a hex digest".into())
        })?;
        let mut mac = Hmac::<Sha512>::new_from_slice(secret.expose().as_bytes())
            .map_err(|_| WebhookError::Unauthorized("the webhook secret is unusable".into()))?;
        mac.update(request.body);
        let expected = mac.finalize().into_bytes();
        if constant_time_eq(&expected, &claimed) {
            Ok(())
        } else {
            Err(WebhookError::Unauthorized(
                "X-Termii-Signature does not match the body".into(),
            ))
        }
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let report: Report = serde_json::from_slice(request.body).map_err(|_| {
            WebhookError::Malformed("the body is not a Termii delivery report".into())
        })?;
        Ok(report.into_event(now)?.into_iter().collect())
    }
}

#[derive(Deserialize)]
struct Report {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    message_id: Option<Value>,
    #[serde(default)]
    receiver: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A status string lower-cased with its whitespace collapsed.
fn normalise(status: &str) -> String {
    status
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Termii's status (normalised) in the engine's terms (§12).
fn state_of(status: &str) -> Option<MessageState> {
    match status {
        "delivered" => Some(MessageState::Delivered),
        "message sent" | "sent" => Some(MessageState::Sent),
        "message failed" | "failed" | "rejected" | "expired" | "dnd active on phone number" => {
            Some(MessageState::Failed)
        }
        _ => None,
    }
}

impl Report {
    /// The event of an outbound report; `None` for inbound messages.
    fn into_event(self, now: DateTime<Utc>) -> Result<Option<WebhookEvent>, WebhookError> {
        let status = self.status.unwrap_or_default();
        let normalised = normalise(&status);
        let inbound = self
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("inbound"));
        if inbound || normalised == "received" {
            return Ok(None);
        }
        if normalised.is_empty() {
            return Err(WebhookError::Malformed(
                "a Termii report without status".into(),
            ));
        }
        let Some(provider_id) = self
            .message_id
            .as_ref()
            .and_then(text_of)
            .or_else(|| self.id.as_ref().and_then(text_of))
        else {
            return Err(WebhookError::Malformed(
                "a Termii report without message_id".into(),
            ));
        };
        let state = state_of(&normalised);
        let mut event = WebhookEvent::new(
            format!("termii:{provider_id}:{normalised}"),
            status.trim(),
            now,
        );
        event.state = state;
        event.provider_message_id = Some(provider_id);
        event.recipient = self.receiver.as_deref().and_then(|r| {
            let digits: String = r.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then(|| format!("+{digits}"))
        });
        if state == Some(MessageState::Failed) {
            event.reason = Some(status.trim().to_owned());
        }
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_case_insensitively() {
        for (raw, state) in [
            ("Delivered", Some(MessageState::Delivered)),
            ("DELIVERED", Some(MessageState::Delivered)),
            ("Message Sent", Some(MessageState::Sent)),
            ("message  failed", Some(MessageState::Failed)),
            ("Rejected", Some(MessageState::Failed)),
            ("EXPIRED", Some(MessageState::Failed)),
            ("DND Active on Phone Number", Some(MessageState::Failed)),
            ("Pending", None),
        ] {
            assert_eq!(state_of(&normalise(raw)), state, "{raw}");
        }
    }
}

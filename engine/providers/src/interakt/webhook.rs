//! Interakt's webhook (providers.md §9).
//!
//! Signature: header `Interakt-Signature: sha256=<hex>`, hex =
//! HMAC-SHA256(key = the webhook secret set in the Interakt dashboard, the
//! connection's `webhookSecret`; message = the raw body). UNCONFIRMED
//! (§13): several independent integrations verify it this way, but no
//! official Interakt page was found. No timestamp is signed, so there is no
//! freshness check; replays are harmless because event ids are stable.
//!
//! Events: `message_api_sent|delivered|read|failed|clicked` (and the same
//! `message_campaign_*` words) become events; `clicked` is an engagement
//! that implies delivery (§12). Inbound `message_received` and workflow
//! events are not status events and are skipped without error. Interakt
//! reports no opt-out, so no suppression is derived.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::WhatsappProviderSpec;
use msgengine_domain::Secret;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::webhook::{
    constant_time_eq, Engagement, InboundWebhook, WebhookError, WebhookEvent, WebhookHandler,
};

/// The signature header (unconfirmed, see the module docs).
pub const SIGNATURE_HEADER: &str = "Interakt-Signature";

/// An INTERAKT connection's webhook scheme.
pub struct InteraktWebhook {
    secret: Option<Secret>,
}

impl InteraktWebhook {
    /// The handler for `spec`, keyed with its `webhookSecret`.
    pub fn new(spec: &WhatsappProviderSpec) -> Self {
        Self {
            secret: spec.webhook_secret.clone(),
        }
    }
}

impl WebhookHandler for InteraktWebhook {
    fn verify(
        &self,
        request: &InboundWebhook<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let Some(secret) = &self.secret else {
            return Err(WebhookError::Unauthorized(
                "webhookSecret (the Interakt webhook secret key) is not configured for this connection"
                    .into(),
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
        let expected = match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
            Ok(mut mac) => {
                mac.update(request.body);
                hex::encode(mac.finalize().into_bytes())
            }
            // HMAC accepts keys of any length; unreachable in practice.
            Err(_) => String::new(),
        };
        if expected.is_empty()
            || !constant_time_eq(given.to_ascii_lowercase().as_bytes(), expected.as_bytes())
        {
            return Err(WebhookError::Unauthorized(format!(
                "{SIGNATURE_HEADER} does not match the body signed with the webhook secret"
            )));
        }
        Ok(())
    }

    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        let payload: Payload = serde_json::from_slice(request.body).map_err(|e| {
            WebhookError::Malformed(format!("not an Interakt webhook payload: {e}"))
        })?;
        Ok(event_of(&payload, now).into_iter().collect())
    }
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    customer: Option<Customer>,
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Customer {
    #[serde(default)]
    phone_number: Option<Value>,
    #[serde(default)]
    country_code: Option<Value>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message_status: Option<String>,
    #[serde(default)]
    callback_data: Option<String>,
    #[serde(default)]
    received_at_utc: Option<String>,
    #[serde(default)]
    delivered_at_utc: Option<String>,
    #[serde(default)]
    seen_at_utc: Option<String>,
    #[serde(default)]
    channel_failure_reason: Option<Value>,
}

/// The event of a status payload; `None` for inbound and other events.
fn event_of(payload: &Payload, now: DateTime<Utc>) -> Option<WebhookEvent> {
    let kind = payload.kind.as_deref()?;
    let word = kind
        .strip_prefix("message_api_")
        .or_else(|| kind.strip_prefix("message_campaign_"))?;
    let (state, engagement) = match word {
        "sent" => (MessageState::Sent, None),
        "delivered" => (MessageState::Delivered, None),
        "read" => (MessageState::Read, None),
        "failed" => (MessageState::Failed, None),
        "clicked" => (MessageState::Delivered, Some(Engagement::Clicked)),
        _ => return None,
    };
    let data = payload.data.as_ref()?;
    let message = data.message.as_ref()?;
    let id = message.id.as_deref().filter(|id| !id.is_empty())?;
    let stamp = match &payload.timestamp {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let when = match word {
        "delivered" => message.delivered_at_utc.as_deref(),
        "read" => message.seen_at_utc.as_deref(),
        _ => None,
    };
    let at = when
        .and_then(parse_time)
        .or_else(|| parse_time(&stamp))
        .or_else(|| message.received_at_utc.as_deref().and_then(parse_time))
        .unwrap_or(now);
    let mut event = WebhookEvent::new(format!("{id}:{kind}:{stamp}"), kind, at);
    event.provider_message_id = Some(id.to_owned());
    event.message_id = message.callback_data.clone().filter(|c| !c.is_empty());
    event.state = Some(state);
    event.engagement = engagement;
    event.recipient = data.customer.as_ref().and_then(Customer::e164);
    if state == MessageState::Failed {
        event.reason = match &message.channel_failure_reason {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(v @ (Value::Object(_) | Value::Array(_))) => Some(v.to_string()),
            _ => message.message_status.clone(),
        };
    }
    Some(event)
}

impl Customer {
    /// `+<country code><number>`, from `country_code` (`"+91"` or `"91"`)
    /// and `phone_number`.
    fn e164(&self) -> Option<String> {
        let text = |v: &Option<Value>| -> String {
            match v {
                Some(Value::String(s)) => s.chars().filter(char::is_ascii_digit).collect(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            }
        };
        let number = text(&self.phone_number);
        if number.is_empty() {
            return None;
        }
        Some(format!("+{}{number}", text(&self.country_code)))
    }
}

/// A time as Interakt writes it: RFC 3339, or an ISO date-time without an
/// offset (taken as UTC, as the `_utc` field names say), or unix seconds.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc());
        }
    }
    text.parse::<i64>()
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_interakt_shapes_parse_as_utc() {
        let want = DateTime::from_timestamp(1_700_000_000, 0);
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), want);
        assert_eq!(parse_time("2023-11-14T22:13:20.000000"), want);
        assert_eq!(parse_time("2023-11-14 22:13:20"), want);
        assert_eq!(parse_time("1700000000"), want);
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn customers_become_e164_numbers() {
        let customer = Customer {
            phone_number: Some(Value::String("9876543210".into())),
            country_code: Some(Value::String("+91".into())),
        };
        assert_eq!(customer.e164().as_deref(), Some("+919876543210"));
    }
}

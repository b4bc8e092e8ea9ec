//! Messages: the message as the engine hands it to a provider adapter, its
//! history entries and its attempts. The states a message moves through and
//! the rules of its moves are in [`crate::lifecycle`] ([`MessageState`] is
//! re-exported here).
//!
//! A message's history is a list of [`MessageEvent`]s (append-only, stored as
//! a JSON array beside the message and shown by the status API), and each
//! provider call is one [`Attempt`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::ids::{MessageId, OrganizationId, ProviderId};

pub use crate::state::{MessageState, UnknownState};

/// A message as a provider adapter sends it: validated, with the
/// organization's defaults not yet applied (the adapter applies its
/// connection's `fromEmail`, `senderId`... when `from` is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundMessage {
    pub id: MessageId,
    pub organization_id: OrganizationId,
    pub channel: Channel,
    /// Email address, or E.164 phone number for SMS and WhatsApp.
    pub to: String,
    /// Overrides the connection's sender (email address or sender id / number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Email only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    /// Email only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Echoed back in status and webhooks; adapters pass it to providers
    /// that carry custom data (Mailgun `v:` variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Channel-specific content beyond text (email reply-to, headers, tags,
    /// attachments; WhatsApp template and media). `None` for plain messages,
    /// so the common case costs nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extras: Option<Box<MessageExtras>>,
    /// Category, routing tags and the routing plan (`None` before routing
    /// for a plain transactional message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Box<crate::routing::MessageRouting>>,
}

/// Channel-specific content of a message. Every field is optional; the
/// request validation (`send::parse_send_request`) only lets through the
/// fields that make sense for the message's channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageExtras {
    /// Email: the Reply-To address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Email: custom headers (`X-…` names), sent as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Email: tags / categories (Mailgun `o:tag`, SendGrid `categories`,
    /// Mailjet `CustomCampaign`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Email: attachments, carried inline (base64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// WhatsApp: an approved template instead of free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<WhatsappTemplate>,
    /// WhatsApp: a media message (the text, if any, is its caption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
}

/// An email attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub filename: String,
    /// MIME type (`application/pdf`).
    pub content_type: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub content_base64: String,
}

/// A WhatsApp template reference with its variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatsappTemplate {
    /// The template's name at the provider (Meta/Gupshup/Interakt), or its
    /// id where the provider names templates by id (Gupshup `id`), or the
    /// campaign name (AiSensy).
    pub name: String,
    /// Language code (`en`, `en_US`, `pt_BR`).
    pub language: String,
    /// Body variables `{{1}}`, `{{2}}`, … in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<String>,
    /// Optional header media (image/document/video template headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_media: Option<Media>,
}

/// The kind of a WhatsApp media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Document,
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// A WhatsApp media item: by public `link` or by a provider `mediaId`
/// (from an upload); exactly one of them is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// Document file name shown to the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// One entry of a message's history: the state it moved to, when and why.
/// Stored as a JSON array beside the message and shown by the status API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    /// The state the message moved to (or, for a stale provider report, the
    /// state reported).
    pub state: MessageState,
    /// When the engine recorded it (so a history never goes back in time).
    /// Entries from provider webhooks also carry `providerAt`, the
    /// provider's own time of the event.
    pub at: DateTime<Utc>,
    /// Why, in words (the provider's error, `circuit open, failing over`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider connection involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
    /// The attempt number (1-based, across providers) this event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The provider's own time of the event, on entries from provider
    /// webhooks (`at` is when the engine recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_at: Option<DateTime<Utc>>,
}

impl MessageEvent {
    /// An event with no reason, provider or attempt.
    pub fn new(state: MessageState, at: DateTime<Utc>) -> Self {
        Self {
            state,
            at,
            reason: None,
            provider_id: None,
            attempt: None,
            provider_at: None,
        }
    }

    /// The same event with a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The same event tied to a provider connection.
    pub fn with_provider(mut self, provider_id: ProviderId) -> Self {
        self.provider_id = Some(provider_id);
        self
    }

    /// The same event tied to an attempt number.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }
}

/// How one provider call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The provider accepted the message.
    Sent,
    /// The provider reported delivery synchronously (sandbox, some APIs).
    Delivered,
    /// A failure worth retrying (5xx, connect error).
    TransientError,
    /// A failure retrying cannot fix (invalid recipient, bad credentials).
    PermanentError,
    /// The provider refused for rate (429).
    RateLimited,
    /// No answer in time.
    Timeout,
    /// Not sent: the provider's circuit breaker was open.
    CircuitOpen,
}

impl AttemptOutcome {
    /// The snake_case name used in the API, the database and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::TransientError => "transient_error",
            AttemptOutcome::PermanentError => "permanent_error",
            AttemptOutcome::RateLimited => "rate_limited",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::CircuitOpen => "circuit_open",
        }
    }

    /// The provider took the message (`sent` or `delivered`).
    pub fn is_success(self) -> bool {
        matches!(self, AttemptOutcome::Sent | AttemptOutcome::Delivered)
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call to a provider for a message, as recorded and shown by the status API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1-based, counted across every provider the message tried.
    pub number: u32,
    /// The provider connection called.
    pub provider_id: ProviderId,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
    /// The provider's id for the message, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// The provider's error, in words, when the attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error's class (`transient`, `timeout`...), when the attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
}

/// A fallback the message took: from one provider to the next after an
/// attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The attempt after which the message moved on (1-based).
    pub after_attempt: u32,
    pub from: ProviderId,
    pub to: ProviderId,
    pub outcome: AttemptOutcome,
}

impl Step {
    /// The step in words, with the providers' names from `plan` when known:
    /// `termii: transient_error; failed over to twilio`.
    pub fn explanation(&self, plan: Option<&crate::routing::Plan>) -> String {
        let name = |id: ProviderId| -> String {
            plan.and_then(|p| p.candidates.iter().find(|c| c.provider_id == id))
                .map_or_else(|| id.to_string(), |c| c.name.to_string())
        };
        format!(
            "{}: {} at attempt {}; failed over to {}",
            name(self.from),
            self.outcome.as_str(),
            self.after_attempt,
            name(self.to)
        )
    }
}

/// The fallbacks a message took, read from its attempts in order: each
/// time the provider changes from one attempt to the next.
pub fn fallback_steps(attempts: &[Attempt]) -> Vec<Step> {
    attempts
        .windows(2)
        .filter(|w| w[0].provider_id != w[1].provider_id)
        .map(|w| Step {
            after_attempt: w[0].number,
            from: w[0].provider_id,
            to: w[1].provider_id,
            outcome: w[0].outcome,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use MessageState::*;

    #[test]
    fn event_serialises_camel_case_and_omits_absent_fields() {
        let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single().unwrap();
        let provider = ProviderId::new();
        let event = MessageEvent::new(Sent, at)
            .with_provider(provider)
            .with_attempt(2)
            .with_reason("accepted by provider");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": "sent",
                "at": "2025-01-02T03:04:05Z",
                "reason": "accepted by provider",
                "providerId": provider.to_string(),
                "attempt": 2,
            })
        );
        assert_eq!(serde_json::from_value::<MessageEvent>(json).unwrap(), event);
        let bare = serde_json::to_value(MessageEvent::new(Accepted, at)).unwrap();
        assert_eq!(
            bare,
            serde_json::json!({"state": "accepted", "at": "2025-01-02T03:04:05Z"})
        );
    }

    #[test]
    fn attempt_serialises_camel_case_with_snake_case_outcome() {
        let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single().unwrap();
        let attempt = Attempt {
            number: 1,
            provider_id: ProviderId::new(),
            started_at: at,
            finished_at: at,
            outcome: AttemptOutcome::RateLimited,
            provider_message_id: None,
            error: Some("429 Too Many Requests".into()),
            error_class: Some("rate_limited".into()),
        };
        let json = serde_json::to_value(&attempt).unwrap();
        assert_eq!(json["outcome"], "rate_limited");
        assert_eq!(json["errorClass"], "rate_limited");
        assert_eq!(json["startedAt"], "2025-01-02T03:04:05Z");
        assert!(json.get("providerMessageId").is_none());
        assert_eq!(serde_json::from_value::<Attempt>(json).unwrap(), attempt);
        for outcome in [
            AttemptOutcome::Sent,
            AttemptOutcome::Delivered,
            AttemptOutcome::TransientError,
            AttemptOutcome::PermanentError,
            AttemptOutcome::RateLimited,
            AttemptOutcome::Timeout,
            AttemptOutcome::CircuitOpen,
        ] {
            assert_eq!(
                serde_json::to_value(outcome).ok(),
                Some(outcome.as_str().into())
            );
        }
    }

    #[test]
    fn fallback_steps_are_read_from_the_attempts() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).single().unwrap();
        let (a, b, c) = (ProviderId::new(), ProviderId::new(), ProviderId::new());
        let attempt = |number: u32, provider_id: ProviderId, outcome: AttemptOutcome| Attempt {
            number,
            provider_id,
            started_at: at,
            finished_at: at,
            outcome,
            provider_message_id: None,
            error: None,
            error_class: None,
        };
        let attempts = [
            attempt(1, a, AttemptOutcome::TransientError),
            attempt(2, a, AttemptOutcome::Timeout),
            attempt(3, b, AttemptOutcome::RateLimited),
            attempt(4, c, AttemptOutcome::Sent),
        ];
        let taken = fallback_steps(&attempts);
        assert_eq!(taken.len(), 2);
        assert_eq!(
            (taken[0].from, taken[0].to, taken[0].after_attempt),
            (a, b, 2)
        );
        assert_eq!(taken[1].outcome, AttemptOutcome::RateLimited);
        let mut plan: crate::routing::Plan = serde_json::from_value(serde_json::json!({
            "r": "default", "s": "priority",
            "c": [[a.0.simple().to_string(), "priority", 1], [b.0.simple().to_string(), "priority", 2]]
        }))
        .expect("a stored plan");
        let names = [(a, "termii"), (b, "twilio")];
        plan.name_places(&|id| {
            names
                .iter()
                .find(|(p, _)| *p == id)
                .map(|(_, n)| std::sync::Arc::from(*n))
        });
        assert_eq!(
            taken[0].explanation(Some(&plan)),
            "termii: timeout at attempt 2; failed over to twilio"
        );
        assert_eq!(
            taken[1].explanation(Some(&plan)),
            format!("twilio: rate_limited at attempt 3; failed over to {c}")
        );
        assert!(fallback_steps(&attempts[..1]).is_empty());
    }
}

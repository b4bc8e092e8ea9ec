//! The inbound-webhook seam: a provider's status callback, verified and
//! turned into engine events.
//!
//! `POST /api/webhooks/{channel}/{providerId}` hands the raw request (method,
//! the public URL the provider called, headers, body) to the
//! [`WebhookHandler`] of the connection's provider type:
//!
//! 1. [`WebhookHandler::verify`] checks the provider's own signature scheme
//!    exactly as the provider specifies it (Mailgun HMAC in the body, SendGrid
//!    ECDSA, Twilio HMAC-SHA1 over URL and parameters, Meta
//!    `X-Hub-Signature-256`, ...) and rejects stale timestamps where the
//!    scheme carries one. A failure is a 401 and changes nothing.
//! 2. [`WebhookHandler::parse`] maps the provider's vocabulary onto
//!    [`WebhookEvent`]s: the engine's state (or none for events that move no
//!    state), a stable `event_id` to deduplicate replays, and the suppression
//!    a bounce, complaint or unsubscribe implies.
//!
//! Handlers are pure: no I/O, no clock but the `now` given, so every scheme
//! is tested byte for byte.

use chrono::{DateTime, Utc};
use msgengine_domain::message::MessageState;
use msgengine_domain::Secret;
use reqwest::header::HeaderMap;
use serde::Serialize;

/// How far a signed timestamp may be from now before the request is refused
/// as stale (or replayed). Mailgun and SendGrid recommend a few minutes.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// One inbound webhook request, as received.
#[derive(Debug, Clone, Copy)]
pub struct InboundWebhook<'a> {
    /// `GET` (Meta's verify handshake) or `POST`.
    pub method: &'a str,
    /// The full URL the provider called, as the provider sees it (public
    /// scheme and host, path and query): Twilio signs it.
    pub url: &'a str,
    pub headers: &'a HeaderMap,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// The raw body bytes, exactly as received (signatures cover them).
    pub body: &'a [u8],
}

impl InboundWebhook<'_> {
    /// A header's value as text, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the verification refused, in words for the log (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature, or the secret it needs is not configured: 401.
    #[error("signature rejected: {0}")]
    Unauthorized(String),
    /// A signed timestamp too far from now: 401.
    #[error("stale request: {0}")]
    Stale(String),
    /// The body is not what this provider sends: 400.
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

/// Why an address goes on the organization's suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SuppressionReason {
    /// A hard (permanent) bounce.
    Bounce,
    /// The recipient marked the message as spam.
    Complaint,
    /// The recipient unsubscribed or opted out (SMS STOP, WhatsApp opt-out).
    Unsubscribe,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Unsubscribe => "unsubscribe",
        }
    }
}

/// Engagement and recipient-level events that move no delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engagement {
    Opened,
    Clicked,
    Complained,
    Unsubscribed,
    /// A temporary failure the provider is still retrying (Mailgun
    /// `failed`/`temporary`, SendGrid `deferred`): kept as a note.
    Deferred,
}

impl Engagement {
    /// The lower-case name stored with the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Engagement::Opened => "opened",
            Engagement::Clicked => "clicked",
            Engagement::Complained => "complained",
            Engagement::Unsubscribed => "unsubscribed",
            Engagement::Deferred => "deferred",
        }
    }
}

/// One provider event about one message, in the engine's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Stable id of this event at the provider (`sg_event_id`, Mailgun's
    /// `event-data.id`), or one derived from (provider message id, raw
    /// status, timestamp) where the provider has none: a replay carries the
    /// same id and changes nothing.
    pub event_id: String,
    /// The provider's id of the message (matches `SendReceipt::provider_message_id`).
    pub provider_message_id: Option<String>,
    /// Our message id when the provider echoes what we attached at send time
    /// (Mailgun `user-variables`, SendGrid `custom_args`, Twilio callback URL).
    pub message_id: Option<String>,
    /// The state the event moves the message to, if any (never backwards:
    /// the engine applies it only when it is progress).
    pub state: Option<MessageState>,
    /// Opened, clicked, ... (recorded in the history, no state change).
    pub engagement: Option<Engagement>,
    /// The provider's raw status word (`delivered`, `DeliveredToTerminal`).
    pub raw_status: String,
    /// When the provider says it happened (now when it does not say).
    pub occurred_at: DateTime<Utc>,
    /// The recipient address or number the event is about.
    pub recipient: Option<String>,
    /// The provider's error code, when it gave one.
    pub error_code: Option<String>,
    /// The provider's reason in words.
    pub reason: Option<String>,
    /// The suppression this event implies for `recipient`.
    pub suppress: Option<SuppressionReason>,
}

impl WebhookEvent {
    /// An event with only the essentials set.
    pub fn new(
        event_id: impl Into<String>,
        raw_status: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            provider_message_id: None,
            message_id: None,
            state: None,
            engagement: None,
            raw_status: raw_status.into(),
            occurred_at: at,
            recipient: None,
            error_code: None,
            reason: None,
            suppress: None,
        }
    }
}

/// A value a signature covers that must be accepted only once (Mailgun's
/// `token`): the signature does not cover the whole body, so the same
/// signature could otherwise carry other events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce {
    /// The value, unique per request at the provider.
    pub value: String,
    /// Until when it must be remembered: past it, the freshness check
    /// refuses the signed timestamp anyway.
    pub expires_at: DateTime<Utc>,
}

/// What the endpoint answers to a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookReply {
    /// 200 with an empty JSON object.
    Ok,
    /// 200 with this text body (Meta's `hub.challenge` handshake).
    Challenge(String),
}

/// One provider type's webhook scheme.
pub trait WebhookHandler: Send + Sync {
    /// Checks the signature (and timestamp) of `request`.
    fn verify(&self, request: &InboundWebhook<'_>, now: DateTime<Utc>) -> Result<(), WebhookError>;

    /// Turns a verified request into events (a request may carry several:
    /// SendGrid batches, Meta's `entry[].changes[]`).
    fn parse(
        &self,
        request: &InboundWebhook<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookEvent>, WebhookError>;

    /// The single-use value of a verified request, for schemes whose
    /// signature leaves part of the body uncovered: the endpoint remembers
    /// it until [`Nonce::expires_at`] (in the database, so across nodes) and
    /// refuses a second request carrying it with a different body. `None`
    /// (the default) for schemes that sign the whole request.
    fn nonce(&self, _request: &InboundWebhook<'_>) -> Option<Nonce> {
        None
    }

    /// A GET handshake (Meta's `hub.mode=subscribe`); `None` when this
    /// provider has none (the endpoint answers 405).
    fn handshake(
        &self,
        _request: &InboundWebhook<'_>,
    ) -> Option<Result<WebhookReply, WebhookError>> {
        None
    }
}

/// Compares two byte strings in constant time (for signatures).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Compares a token taken from a request with the configured one without
/// leaking the content or the length of either through timing: both are
/// hashed (SHA-256) and the digests compared in constant time.
pub fn token_eq(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    constant_time_eq(&Sha256::digest(given), &Sha256::digest(expected))
}

/// The configured token of a provider that does not sign its callbacks,
/// when it is long enough to be unguessable
/// ([`MIN_WEBHOOK_TOKEN_CHARS`](msgengine_domain::provider::MIN_WEBHOOK_TOKEN_CHARS));
/// a shorter one (stored before the rule) authenticates nothing.
pub fn usable_token(token: Option<&Secret>) -> Option<&Secret> {
    use msgengine_domain::provider::MIN_WEBHOOK_TOKEN_CHARS;
    token.filter(|t| t.expose().chars().count() >= MIN_WEBHOOK_TOKEN_CHARS)
}

/// Refuses a signed unix timestamp more than [`MAX_CLOCK_SKEW_SECS`] from `now`.
pub fn check_fresh(unix_secs: i64, now: DateTime<Utc>) -> Result<(), WebhookError> {
    let skew = (now.timestamp() - unix_secs).abs();
    if skew > MAX_CLOCK_SKEW_SECS {
        return Err(WebhookError::Stale(format!(
            "signed timestamp is {skew} s from now (at most {MAX_CLOCK_SKEW_SECS} s allowed)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_bytes_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn token_eq_compares_digests() {
        assert!(token_eq(b"a-long-enough-token", b"a-long-enough-token"));
        assert!(!token_eq(b"a-long-enough-token", b"a-long-enough-tokem"));
        assert!(!token_eq(b"", b"a-long-enough-token"));
    }

    #[test]
    fn short_tokens_are_not_usable() {
        let short = Secret::new("fifteen-chars-x");
        let long = Secret::new("sixteen-chars-xy");
        assert!(usable_token(Some(&short)).is_none());
        assert!(usable_token(Some(&long)).is_some());
        assert!(usable_token(None).is_none());
    }

    #[test]
    fn freshness_window_is_symmetric() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        assert!(check_fresh(1_700_000_000 - 300, now).is_ok());
        assert!(check_fresh(1_700_000_000 + 300, now).is_ok());
        assert!(matches!(
            check_fresh(1_700_000_000 - 301, now),
            Err(WebhookError::Stale(_))
        ));
        assert!(matches!(
            check_fresh(1_700_000_000 + 301, now),
            Err(WebhookError::Stale(_))
        ));
    }
}

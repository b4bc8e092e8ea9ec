//! The send seam: one delivery attempt of one message through one provider
//! connection.
//!
//! An adapter decides what a failure *means* ([`FailureKind`]) because only it
//! knows its provider's statuses and error codes; what to *do* about it
//! (back off, honour `retry_after`, fail over, fail the message) is the
//! caller's retry policy. Errors carry the provider's own code and reason in
//! words, never a secret.

use std::fmt;
use std::time::Duration;

use msgengine_domain::message::{MessageState, OutboundMessage};
use msgengine_domain::Channel;

/// What the provider said when it took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The provider's id for the message (Mailgun's Message-ID without angle
    /// brackets, Twilio's `SM…` sid, Gupshup's `messageId`, `sbx-<uuid>`).
    pub provider_message_id: String,
    /// `Sent`, or `Delivered` when the provider confirms delivery
    /// synchronously (the sandbox, a Twilio answer already `delivered`).
    pub state: MessageState,
    /// SMS segments billed, when the provider reports them (or the sandbox
    /// computes them); `None` for other channels.
    pub segments: Option<u32>,
}

/// What a failed attempt means for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Worth retrying later: connect errors, 5xx, 408, provider queue overflow.
    Transient,
    /// The provider did not answer within the request timeout. Retrying is
    /// safe only with an idempotency key: the provider may have taken it.
    Timeout,
    /// The provider refused for rate or quota reasons; wait `retry_after`
    /// when given.
    RateLimited,
    /// Retrying cannot help: bad credentials, invalid recipient, rejected content.
    Permanent,
}

impl FailureKind {
    /// The lower-case name used in metrics labels and attempt records.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Timeout => "timeout",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Permanent => "permanent",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure of one attempt. Never holds a secret: adapters scrub
/// credentials from provider text and never format request URLs into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub kind: FailureKind,
    /// From a `Retry-After` header, when the provider sent one.
    pub retry_after: Option<Duration>,
    /// The HTTP status, when the provider answered at all.
    pub http_status: Option<u16>,
    /// The provider's own error code (Twilio `21211`), when it gave one.
    pub code: Option<String>,
    /// The provider's reason in words, or what went wrong on the way to it.
    pub message: String,
}

impl ProviderError {
    /// An error of `kind` with only a message.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            retry_after: None,
            http_status: None,
            code: None,
            message: message.into(),
        }
    }

    /// A failure before any request was made because the connection is
    /// misconfigured (a missing credential). Permanent: retrying cannot help.
    pub fn misconfigured(message: impl Into<String>) -> Self {
        let mut e = Self::new(FailureKind::Permanent, message);
        e.code = Some("msgengine_misconfigured".into());
        e
    }

    /// `"transient" | "timeout" | "rate_limited" | "permanent"`.
    pub fn kind_str(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Whether another attempt (here or at another provider) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind != FailureKind::Permanent
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} provider error", self.kind)?;
        match (self.http_status, &self.code) {
            (Some(s), Some(c)) => write!(f, " (HTTP {s}, code {c})")?,
            (Some(s), None) => write!(f, " (HTTP {s})")?,
            (None, Some(c)) => write!(f, " (code {c})")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ProviderError {}

/// One adapter for one provider connection.
#[async_trait::async_trait]
pub trait Sender: Send + Sync {
    /// One attempt. `idempotency_key` is stable across retries and restarts
    /// of the same message (sent where the provider supports it: Twilio's
    /// `I-Twilio-Idempotency-Token` header; elsewhere an
    /// `X-Msgengine-Idempotency-Key` header is sent anyway, harmless for the
    /// provider and used by our simulator/test servers to detect duplicates).
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError>;
}

/// No adapter for this provider type yet (the other providers come in a
/// later issue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sending through {provider_type} on {channel} is not supported yet")]
pub struct UnsupportedProvider {
    pub channel: Channel,
    pub provider_type: &'static str,
}

/// What a connection's sender may need beyond its spec.
#[derive(Debug, Clone, Default)]
pub struct SenderContext {
    /// msgengine's public webhook URL for this connection
    /// (`{public_url}/api/webhooks/{channel}/{id}`), for providers that take a
    /// status-callback URL with each message (Twilio). `None`: the provider's
    /// console setting applies.
    pub status_callback: Option<url::Url>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_status_code_and_reason() {
        let mut e = ProviderError::new(FailureKind::Permanent, "invalid To");
        e.http_status = Some(400);
        e.code = Some("21211".into());
        assert_eq!(
            e.to_string(),
            "permanent provider error (HTTP 400, code 21211): invalid To"
        );
        assert_eq!(e.kind_str(), "permanent");
        assert!(!e.is_retryable());
    }

    #[test]
    fn kind_names_are_the_metric_label_values() {
        let names: Vec<_> = [
            FailureKind::Transient,
            FailureKind::Timeout,
            FailureKind::RateLimited,
            FailureKind::Permanent,
        ]
        .into_iter()
        .map(FailureKind::as_str)
        .collect();
        assert_eq!(names, ["transient", "timeout", "rate_limited", "permanent"]);
    }
}

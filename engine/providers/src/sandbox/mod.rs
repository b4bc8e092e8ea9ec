//! The `SANDBOX` provider of every channel: no vendor API and no network.
//!
//! It simulates a provider from the connection's [`SandboxConfig`]: waits
//! `latencyMs` (skipped at 0), then fails transiently with probability
//! `transientFailureRate` (like a 503), permanently with probability
//! `permanentFailureRate` (like an invalid recipient), and otherwise reports
//! the message delivered at once, with id `sbx-<uuid v4>`.
//!
//! It sits on the hot path of the benchmarks (15,000+ sends per second), so a
//! send allocates nothing but the id string: randomness comes from the
//! thread-local rng (also for the uuid, no syscall), and failure texts are
//! only built on failure.

mod descriptor;

pub(crate) use descriptor::{EMAIL, SMS, WHATSAPP};

use std::time::Duration;

use msgengine_domain::message::{MessageState, OutboundMessage};
use msgengine_domain::provider::SandboxConfig;
use msgengine_domain::Channel;
use rand::Rng;
use uuid::Uuid;

use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};

/// A simulated provider connection.
#[derive(Debug, Clone)]
pub struct SandboxSender {
    channel: Channel,
    latency: Duration,
    transient_rate: f64,
    permanent_rate: f64,
}

impl SandboxSender {
    /// A sandbox for `channel` behaving as `config` says. Rates outside 0-1
    /// (or NaN) are clamped; specs are validated when stored anyway.
    pub fn new(channel: Channel, config: &SandboxConfig) -> Self {
        let clamp = |rate: f64| {
            if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            }
        };
        Self {
            channel,
            latency: Duration::from_millis(u64::from(config.latency_ms)),
            transient_rate: clamp(config.transient_failure_rate),
            permanent_rate: clamp(config.permanent_failure_rate),
        }
    }

    fn outcome(&self, text: &str) -> Result<SendReceipt, ProviderError> {
        // The rng is not Send: it lives only in this synchronous function.
        let mut rng = rand::thread_rng();
        let draw: f64 = rng.gen();
        if draw < self.transient_rate {
            let mut error = ProviderError::new(
                FailureKind::Transient,
                "sandbox: simulated transient failure",
            );
            error.http_status = Some(503);
            return Err(error);
        }
        if draw < self.transient_rate + self.permanent_rate {
            let mut error = ProviderError::new(
                FailureKind::Permanent,
                "sandbox: simulated permanent failure (invalid recipient)",
            );
            error.http_status = Some(400);
            error.code = Some("invalid_recipient".into());
            return Err(error);
        }
        let uuid = uuid::Builder::from_random_bytes(rng.gen()).into_uuid();
        let mut id = String::with_capacity(4 + uuid::fmt::Hyphenated::LENGTH);
        id.push_str("sbx-");
        id.push_str(uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
        Ok(SendReceipt {
            provider_message_id: id,
            state: MessageState::Delivered,
            segments: (self.channel == Channel::Sms).then(|| sms_segments(text)),
        })
    }
}

#[async_trait::async_trait]
impl Sender for SandboxSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        _idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.outcome(&message.text)
    }
}

/// SMS segments, computed simply: 160 characters per segment for ASCII text,
/// 70 for anything else (UCS-2), at least one. Real concatenated SMS carries
/// 153 / 67 characters per part once split, and GSM-7 is not exactly ASCII;
/// the sandbox does not need that precision.
pub fn sms_segments(text: &str) -> u32 {
    let per_segment = if text.is_ascii() { 160 } else { 70 };
    let chars = if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    };
    u32::try_from(chars.div_ceil(per_segment).max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(channel: Channel, transient: f64, permanent: f64) -> SandboxSender {
        SandboxSender::new(
            channel,
            &SandboxConfig {
                latency_ms: 0,
                transient_failure_rate: transient,
                permanent_failure_rate: permanent,
            },
        )
    }

    #[test]
    fn segments_are_160_ascii_or_70_other_characters() {
        assert_eq!(sms_segments(""), 1);
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"é".repeat(70)), 1);
        assert_eq!(sms_segments(&"é".repeat(71)), 2);
    }

    #[test]
    fn success_is_delivered_with_a_sandbox_id() {
        let receipt = sandbox(Channel::Sms, 0.0, 0.0).outcome("hi");
        let receipt = receipt.expect("no failure configured");
        assert_eq!(receipt.state, MessageState::Delivered);
        assert_eq!(receipt.segments, Some(1));
        let uuid = receipt.provider_message_id.strip_prefix("sbx-");
        let parsed = uuid.and_then(|u| Uuid::parse_str(u).ok());
        assert_eq!(parsed.map(|u| u.get_version_num()), Some(4));
    }

    #[test]
    fn email_and_whatsapp_report_no_segments() {
        for channel in [Channel::Email, Channel::Whatsapp] {
            let receipt = sandbox(channel, 0.0, 0.0).outcome("hi");
            assert_eq!(receipt.map(|r| r.segments).ok(), Some(None));
        }
    }

    #[test]
    fn full_permanent_rate_always_fails_permanently() {
        let s = sandbox(Channel::Email, 0.0, 1.0);
        for _ in 0..100 {
            assert_eq!(
                s.outcome("x").err().map(|e| e.kind),
                Some(FailureKind::Permanent)
            );
        }
    }
}

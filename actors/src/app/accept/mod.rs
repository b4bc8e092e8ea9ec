//! Accepting a send request, as named stages:
//!
//! replay → admit → route → suppress → commit
//!
//! - [`replay`]: a request whose Idempotency-Key was seen gets the first answer again
//!   (or a conflict, for another body);
//! - [`admit`]: the organization's rate and burst (its tenant's answer);
//! - [`route`]: a channel with no active provider refuses the request at once;
//! - [`suppress`]: a single message to a suppressed recipient is refused, a batch member
//!   is stored `rejected`; every other message starts as the lifecycle says
//!   (`msgengine_domain::lifecycle::Start`);
//! - [`commit`]: the rows, the answer (stored with the key) and the counts, ready for the
//!   group commit.
//!
//! Each stage is a small decision over what the I/O between them fetched, tested alone
//! (no database, no actix); [`run::run`] runs them in order through the engine's handles.

pub mod admit;
pub mod commit;
pub mod quiet;
pub mod replay;
pub mod route;
pub mod run;
pub mod suppress;

pub use run::run;

use std::time::Duration;

use msgengine_domain::message::MessageState;
use msgengine_domain::{Channel, MessageId};
use msgengine_storage::StoreError;
use serde::Serialize;
use serde_json::Value;

/// Why a send was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("over the organization's send rate")]
    RateLimited { retry_after: Duration },
    #[error("a request may hold at most {burst} messages for this organization")]
    OverBurst { burst: u32 },
    /// No active provider for a message's channel; `index` is the message's
    /// position in a batch (`None` for a single message).
    #[error("no active {channel} provider")]
    NoProvider {
        channel: Channel,
        index: Option<usize>,
    },
    /// The message's plan leaves it no provider (`rule` decided; `why`
    /// says what each provider was left out for).
    #[error("no {channel} provider may take the message ({rule}): {why}")]
    NoRoute {
        channel: Channel,
        index: Option<usize>,
        rule: String,
        why: String,
    },
    #[error("the Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    #[error("the recipient is on the organization's suppression list ({reason})")]
    Suppressed { reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AcceptError {
    /// The `reason` label a refusal is counted under in
    /// `msgengine_messages_refused_total`; `None` for what is not counted
    /// there (an idempotency conflict, a store failure).
    pub fn refused_reason(&self) -> Option<&'static str> {
        match self {
            AcceptError::RateLimited { .. } => Some("rate_limited"),
            AcceptError::OverBurst { .. } => Some("invalid"),
            AcceptError::NoProvider { .. } | AcceptError::NoRoute { .. } => Some("no_provider"),
            AcceptError::Suppressed { .. } => Some("suppressed"),
            AcceptError::IdempotencyConflict | AcceptError::Store(_) => None,
        }
    }
}

/// A request's idempotency key and the hash of its body.
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// The accepted answer: the response body (also stored for idempotent replays).
pub struct Accepted {
    pub body: SendAnswer,
    /// True when this is a replay of an earlier request with the same key.
    pub replayed: bool,
}

/// The 202 body of a send: one `{id, status}` (a single message) or
/// `{messages: [...]}` (a batch), or, for an idempotent replay, the answer
/// stored with the key, byte for byte as it was given.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SendAnswer {
    One(MessageAnswer),
    Batch { messages: Vec<MessageAnswer> },
    Stored(Value),
}

/// One message's part of the answer; a rejected (suppressed) message also says why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageAnswer {
    pub id: MessageId,
    pub status: MessageState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Messages per channel ([`crate::metrics::CHANNELS`] order) among those marked true.
pub fn count_by_channel(items: impl Iterator<Item = (Channel, bool)>) -> [u64; 3] {
    let mut out = [0u64; 3];
    for (channel, counted) in items {
        if counted {
            out[crate::metrics::channel_index(channel)] += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_channel_only_what_is_marked() {
        let items = [
            (Channel::Sms, true),
            (Channel::Sms, true),
            (Channel::Email, false),
            (Channel::Whatsapp, true),
        ];
        let counts = count_by_channel(items.into_iter());
        for (i, channel) in crate::metrics::CHANNELS.into_iter().enumerate() {
            let expected = match channel {
                Channel::Sms => 2,
                Channel::Whatsapp => 1,
                Channel::Email => 0,
            };
            assert_eq!(counts[i], expected, "{channel}");
        }
    }

    #[test]
    fn refusals_are_counted_under_their_reason() {
        let cases = [
            (
                AcceptError::RateLimited {
                    retry_after: Duration::from_secs(1),
                },
                Some("rate_limited"),
            ),
            (AcceptError::OverBurst { burst: 5 }, Some("invalid")),
            (
                AcceptError::NoProvider {
                    channel: Channel::Sms,
                    index: None,
                },
                Some("no_provider"),
            ),
            (
                AcceptError::Suppressed {
                    reason: "bounce".into(),
                },
                Some("suppressed"),
            ),
            (AcceptError::IdempotencyConflict, None),
            (AcceptError::Store(StoreError::NotFound), None),
        ];
        for (error, reason) in cases {
            assert_eq!(error.refused_reason(), reason, "{error}");
        }
    }
}

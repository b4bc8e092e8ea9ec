//! The message states and the one table of which moves between them are
//! allowed ([`MessageState::can_advance_to`]). The SQL guard
//! `msgengine_can_advance` (migrations/V2) is a safety net checked against
//! this table by an integration test (`engine/tests/it/lifecycle.rs`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    Scheduled,
    Accepted,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Bounced,
    Rejected,
    Expired,
}

impl MessageState {
    /// Every state, in order of progress.
    pub const ALL: [MessageState; 11] = [
        MessageState::Scheduled,
        MessageState::Accepted,
        MessageState::Queued,
        MessageState::Sending,
        MessageState::Sent,
        MessageState::Delivered,
        MessageState::Read,
        MessageState::Failed,
        MessageState::Bounced,
        MessageState::Rejected,
        MessageState::Expired,
    ];

    /// The lower-case name used in the API, the database and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Scheduled => "scheduled",
            MessageState::Accepted => "accepted",
            MessageState::Queued => "queued",
            MessageState::Sending => "sending",
            MessageState::Sent => "sent",
            MessageState::Delivered => "delivered",
            MessageState::Read => "read",
            MessageState::Failed => "failed",
            MessageState::Bounced => "bounced",
            MessageState::Rejected => "rejected",
            MessageState::Expired => "expired",
        }
    }

    /// No further state change is possible: `failed`, `bounced`, `rejected`,
    /// `expired`, and `read` (`delivered` is not terminal: `read` may follow).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MessageState::Read
                | MessageState::Failed
                | MessageState::Bounced
                | MessageState::Rejected
                | MessageState::Expired
        )
    }

    /// The message reached its recipient: `delivered` or `read`.
    pub fn is_final_success(self) -> bool {
        matches!(self, MessageState::Delivered | MessageState::Read)
    }

    /// Progress order: scheduled 0, accepted 1, queued and sending 2 (the
    /// engine moves a message between them when it retries), sent 3,
    /// delivered 4, read 5, and every failure state 6.
    pub fn rank(self) -> u8 {
        match self {
            MessageState::Scheduled => 0,
            MessageState::Accepted => 1,
            MessageState::Queued | MessageState::Sending => 2,
            MessageState::Sent => 3,
            MessageState::Delivered => 4,
            MessageState::Read => 5,
            MessageState::Failed
            | MessageState::Bounced
            | MessageState::Rejected
            | MessageState::Expired => 6,
        }
    }

    /// Whether a message in `self` may move to `next`. Never out of a terminal
    /// state, never to a lower rank, never to the same state; `queued` and
    /// `sending` may swap (retries); `delivered` may only become `read` (a
    /// failure report after a delivery report is stale and ignored).
    pub fn can_advance_to(self, next: MessageState) -> bool {
        if self == next || self.is_terminal() {
            return false;
        }
        if self == MessageState::Delivered {
            return next == MessageState::Read;
        }
        next.rank() >= self.rank()
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a message state.
#[derive(Debug, thiserror::Error)]
#[error("unknown message state")]
pub struct UnknownState;

impl FromStr for MessageState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or(UnknownState)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageState::*;

    /// Every allowed move; anything not listed must be refused.
    const ALLOWED: [(MessageState, &[MessageState]); 11] = [
        (
            Scheduled,
            &[
                Accepted, Queued, Sending, Sent, Delivered, Read, Failed, Bounced, Rejected,
                Expired,
            ],
        ),
        (
            Accepted,
            &[
                Queued, Sending, Sent, Delivered, Read, Failed, Bounced, Rejected, Expired,
            ],
        ),
        (
            Queued,
            &[
                Sending, Sent, Delivered, Read, Failed, Bounced, Rejected, Expired,
            ],
        ),
        (
            Sending,
            &[
                Queued, Sent, Delivered, Read, Failed, Bounced, Rejected, Expired,
            ],
        ),
        (Sent, &[Delivered, Read, Failed, Bounced, Rejected, Expired]),
        (Delivered, &[Read]),
        (Read, &[]),
        (Failed, &[]),
        (Bounced, &[]),
        (Rejected, &[]),
        (Expired, &[]),
    ];

    #[test]
    fn can_advance_to_matches_the_full_transition_table() {
        for (from, allowed) in ALLOWED {
            for to in MessageState::ALL {
                assert_eq!(
                    from.can_advance_to(to),
                    allowed.contains(&to),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_and_success_states() {
        let terminal: Vec<_> = MessageState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Read, Failed, Bounced, Rejected, Expired]);
        let success: Vec<_> = MessageState::ALL
            .into_iter()
            .filter(|s| s.is_final_success())
            .collect();
        assert_eq!(success, [Delivered, Read]);
    }

    #[test]
    fn rank_follows_progress_order() {
        let ranks: Vec<u8> = MessageState::ALL
            .into_iter()
            .map(MessageState::rank)
            .collect();
        assert_eq!(ranks, [0, 1, 2, 2, 3, 4, 5, 6, 6, 6, 6]);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in MessageState::ALL {
            assert_eq!(s.as_str().parse::<MessageState>().ok(), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
        }
        assert!("lost".parse::<MessageState>().is_err());
    }
}

//! What claiming a due message for dispatch writes (the scheduler, on any
//! node): a message waiting for its time (`scheduled`) or left unleased at
//! accept (`accepted`) moves to `queued` with a `due` history entry; one
//! already `queued` or `sending` (a retry, an expired lease) keeps its state.

use chrono::{DateTime, Utc};

use super::state::MessageState;
use crate::message::MessageEvent;

/// The move a claim makes, for storage to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The states that move on being claimed.
    pub moves_from: [MessageState; 2],
    /// Where they move.
    pub to: MessageState,
    /// The history entry they get.
    pub event: MessageEvent,
}

impl Claim {
    /// A claim made at `now`.
    pub fn due(now: DateTime<Utc>) -> Self {
        Self {
            moves_from: [MessageState::Scheduled, MessageState::Accepted],
            to: MessageState::Queued,
            event: MessageEvent::new(MessageState::Queued, now).with_reason("due"),
        }
    }

    /// Whether a message in `state` moves when claimed.
    pub fn moves(&self, state: MessageState) -> bool {
        self.moves_from.contains(&state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_moves_only_waiting_messages_forward_to_queued() {
        let claim = Claim::due(Utc::now());
        for from in claim.moves_from {
            assert!(from.can_advance_to(claim.to), "{from:?} -> {:?}", claim.to);
        }
        assert!(!claim.moves(MessageState::Queued));
        assert!(!claim.moves(MessageState::Sending));
        assert_eq!(claim.event.state, claim.to);
        assert_eq!(claim.event.reason.as_deref(), Some("due"));
    }
}

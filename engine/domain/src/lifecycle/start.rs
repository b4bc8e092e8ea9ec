//! How a new message starts: its stored state, its first history entries,
//! when it is due and whether the accepting node dispatches it at once.

use chrono::{DateTime, Utc};

use super::state::MessageState;
use crate::message::MessageEvent;

/// The first state and history of an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// `queued` (sent now), `scheduled` (a `sendAt` ahead) or `rejected`
    /// (a batch member to a suppressed recipient).
    pub state: MessageState,
    /// `accepted` then the state, both at the time of acceptance.
    pub events: Vec<MessageEvent>,
    /// When the scheduler may claim it: its `sendAt` when scheduled, else now.
    pub due_at: DateTime<Utc>,
    /// Dispatched from memory right after the commit (inserted leased to the
    /// accepting node): only a `queued` message.
    pub dispatch_now: bool,
}

impl Start {
    /// A message accepted at `now`, to be sent at `send_at` (`None`: now).
    /// A `send_at` not after `now` means now.
    pub fn new(send_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        let scheduled_at = send_at.filter(|at| *at > now);
        let state = match scheduled_at {
            Some(_) => MessageState::Scheduled,
            None => MessageState::Queued,
        };
        Self {
            state,
            events: vec![
                MessageEvent::new(MessageState::Accepted, now),
                MessageEvent::new(state, now),
            ],
            due_at: scheduled_at.unwrap_or(now),
            dispatch_now: scheduled_at.is_none(),
        }
    }

    /// The same message refused for a suppressed recipient (`reason`, the
    /// suppression's): stored `rejected` so its id and reason can be looked
    /// up, never dispatched.
    pub fn suppressed(self, reason: &str) -> Self {
        let at = self
            .events
            .first()
            .map_or_else(Utc::now, |accepted| accepted.at);
        Self {
            state: MessageState::Rejected,
            events: vec![
                MessageEvent::new(MessageState::Accepted, at),
                MessageEvent::new(MessageState::Rejected, at)
                    .with_reason(suppressed_reason(reason)),
            ],
            dispatch_now: false,
            ..self
        }
    }

    /// The reason of the last history entry (a rejection's), if any.
    pub fn reason(&self) -> Option<&str> {
        self.events.last().and_then(|e| e.reason.as_deref())
    }
}

/// The words a refusal for a suppressed recipient gives (at accept and at
/// dispatch).
pub fn suppressed_reason(reason: &str) -> String {
    format!(
        "recipient_suppressed: the recipient is on this organization's suppression list ({reason})"
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn a_message_for_now_is_queued_and_dispatched_at_once() {
        for send_at in [
            None,
            Some(now()),
            Some(now() - chrono::Duration::seconds(1)),
        ] {
            let start = Start::new(send_at, now());
            assert_eq!(start.state, MessageState::Queued);
            assert_eq!(
                start.events,
                [
                    MessageEvent::new(MessageState::Accepted, now()),
                    MessageEvent::new(MessageState::Queued, now()),
                ]
            );
            assert_eq!(start.due_at, now());
            assert!(start.dispatch_now);
            assert_eq!(start.reason(), None);
        }
    }

    #[test]
    fn a_message_for_later_is_scheduled_and_due_at_its_send_at() {
        let later = now() + chrono::Duration::hours(2);
        let start = Start::new(Some(later), now());
        assert_eq!(start.state, MessageState::Scheduled);
        assert_eq!(
            start.events,
            [
                MessageEvent::new(MessageState::Accepted, now()),
                MessageEvent::new(MessageState::Scheduled, now()),
            ]
        );
        assert_eq!(start.due_at, later);
        assert!(!start.dispatch_now);
    }

    #[test]
    fn a_suppressed_recipient_is_stored_rejected_with_the_reason() {
        let later = now() + chrono::Duration::hours(2);
        for send_at in [None, Some(later)] {
            let start = Start::new(send_at, now()).suppressed("bounce");
            assert_eq!(start.state, MessageState::Rejected);
            assert!(!start.dispatch_now);
            assert_eq!(start.due_at, send_at.unwrap_or(now()));
            assert_eq!(start.events.len(), 2);
            assert_eq!(
                start.events[0],
                MessageEvent::new(MessageState::Accepted, now())
            );
            assert_eq!(
                start.events[1],
                MessageEvent::new(MessageState::Rejected, now())
                    .with_reason(suppressed_reason("bounce"))
            );
            assert_eq!(
                start.reason(),
                Some("recipient_suppressed: the recipient is on this organization's suppression list (bounce)")
            );
        }
    }
}

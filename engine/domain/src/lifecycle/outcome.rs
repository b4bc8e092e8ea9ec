//! What an attempt, or a decision of the engine about a message (retry,
//! failover, deferral, expiry, rejection), does to the message: the state it
//! advances to, the history entries and attempts it appends, and whether the
//! message stays with its job in memory or goes back to the database, due
//! at a time. Outcomes of one message written together merge
//! ([`Outcome::merge`]).

use chrono::{DateTime, Utc};

use super::start::suppressed_reason;
use super::state::MessageState;
use crate::channel::Channel;
use crate::ids::ProviderId;
use crate::message::{Attempt, AttemptOutcome, MessageEvent};

/// The reason recorded on a message whose outcome the database refused.
pub const STORAGE_REJECTED_REASON: &str =
    "storage_rejected: the database refused this outcome; its provider details were not stored";

/// What one outcome writes to its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The state to advance to (not applied if it would move the message back).
    pub state: MessageState,
    /// History entries to append.
    pub events: Vec<MessageEvent>,
    /// Attempts to append.
    pub attempts: Vec<Attempt>,
    /// How much the attempt count grows (usually `attempts.len()`).
    pub attempt_delta: i32,
    pub provider_id: Option<ProviderId>,
    pub provider_message_id: Option<String>,
    /// When the scheduler may claim it again; `None` keeps the stored time.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The holder gives the message up (a final outcome, or one that hands
    /// it back to the database).
    pub release_lease: bool,
}

/// One call to a provider: which connection, which attempt (1-based,
/// across providers), when it started and ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub provider: ProviderId,
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl Call {
    /// The attempt record of this call when it failed: how (`outcome`), the
    /// provider's error in words and its class (`transient`, `timeout`…).
    pub fn failed(self, outcome: AttemptOutcome, error: String, error_class: String) -> Attempt {
        Attempt {
            number: self.number,
            provider_id: self.provider,
            started_at: self.started_at,
            finished_at: self.finished_at,
            outcome,
            provider_message_id: None,
            error: Some(error),
            error_class: Some(error_class),
        }
    }
}

/// Where a message goes after an outcome that does not end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It stays with its job in memory (a short retry, a failover).
    InMemory,
    /// Back to the database, due again at this time.
    DueAt(DateTime<Utc>),
}

impl Outcome {
    /// An outcome with one history entry and no attempt.
    fn of_event(event: MessageEvent, next: Next) -> Self {
        let (next_attempt_at, release_lease) = match next {
            Next::InMemory => (None, false),
            Next::DueAt(at) => (Some(at), true),
        };
        Self {
            state: event.state,
            events: vec![event],
            attempts: Vec::new(),
            attempt_delta: 0,
            provider_id: None,
            provider_message_id: None,
            next_attempt_at,
            release_lease,
        }
    }

    /// An outcome that ends the message with one history entry.
    fn final_event(event: MessageEvent) -> Self {
        Self {
            next_attempt_at: None,
            release_lease: true,
            ..Self::of_event(event, Next::InMemory)
        }
    }

    /// The provider took the message: `sending` (at the call's start),
    /// `sent` and, when the provider `reported` delivery at once,
    /// `delivered`, with the successful attempt.
    pub fn sent(call: Call, reported: MessageState, provider_message_id: String) -> Self {
        let entry = |state, at| {
            MessageEvent::new(state, at)
                .with_provider(call.provider)
                .with_attempt(call.number)
        };
        let mut events = vec![
            entry(MessageState::Sending, call.started_at),
            entry(MessageState::Sent, call.finished_at),
        ];
        let delivered = reported == MessageState::Delivered;
        if delivered {
            events.push(entry(MessageState::Delivered, call.finished_at));
        }
        let attempt = Attempt {
            number: call.number,
            provider_id: call.provider,
            started_at: call.started_at,
            finished_at: call.finished_at,
            outcome: if delivered {
                AttemptOutcome::Delivered
            } else {
                AttemptOutcome::Sent
            },
            provider_message_id: Some(provider_message_id.clone()),
            error: None,
            error_class: None,
        };
        Self {
            state: reported,
            events,
            attempts: vec![attempt],
            attempt_delta: 1,
            provider_id: Some(call.provider),
            provider_message_id: Some(provider_message_id),
            next_attempt_at: None,
            release_lease: true,
        }
    }

    /// A failed attempt after which the same provider is tried again.
    pub fn retry(attempt: Attempt, next: Next, now: DateTime<Utc>) -> Self {
        Self::after_failure(attempt, "retry scheduled", next, now)
    }

    /// A failed attempt after which the next provider of the chain is tried.
    pub fn fail_over(attempt: Attempt, now: DateTime<Utc>) -> Self {
        Self::after_failure(attempt, "failing over", Next::InMemory, now)
    }

    /// A failed attempt the message goes on after: back to `queued`, with
    /// the attempt's error in the reason.
    fn after_failure(attempt: Attempt, what: &str, next: Next, now: DateTime<Utc>) -> Self {
        let reason = format!(
            "{what} after {}: {}",
            attempt.error_class.as_deref().unwrap_or("error"),
            attempt.error.as_deref().unwrap_or("")
        );
        let event = MessageEvent::new(MessageState::Queued, now)
            .with_reason(reason)
            .with_provider(attempt.provider_id)
            .with_attempt(attempt.number);
        Self {
            attempt_delta: 1,
            provider_id: Some(attempt.provider_id),
            attempts: vec![attempt],
            ..Self::of_event(event, next)
        }
    }

    /// A failed attempt that ends the message `failed` with `reason`.
    pub fn failed(attempt: Attempt, reason: &str, now: DateTime<Utc>) -> Self {
        let event = MessageEvent::new(MessageState::Failed, now)
            .with_reason(reason)
            .with_provider(attempt.provider_id)
            .with_attempt(attempt.number);
        Self {
            attempt_delta: 1,
            provider_id: Some(attempt.provider_id),
            attempts: vec![attempt],
            ..Self::final_event(event)
        }
    }

    /// The provider's circuit is open: no attempt; the message fails over
    /// (`InMemory`) or waits in the database until the circuit may close.
    pub fn circuit_open(provider: ProviderId, next: Next, now: DateTime<Utc>) -> Self {
        let event = MessageEvent::new(MessageState::Queued, now)
            .with_reason("circuit open")
            .with_provider(provider);
        Self::of_event(event, next)
    }

    /// The engine put the message off (`why`: organization disabled,
    /// provider busy…): back to the database, due at `due_at`.
    pub fn deferred(
        why: &str,
        provider: Option<ProviderId>,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut event =
            MessageEvent::new(MessageState::Queued, now).with_reason(format!("deferred: {why}"));
        event.provider_id = provider;
        Self::of_event(event, Next::DueAt(due_at))
    }

    /// Back to the database, due at `due_at`, with no history entry (a
    /// failure of ours, retried while it lasts, adds none).
    pub fn requeue(due_at: DateTime<Utc>) -> Self {
        Self {
            state: MessageState::Queued,
            events: Vec::new(),
            attempts: Vec::new(),
            attempt_delta: 0,
            provider_id: None,
            provider_message_id: None,
            next_attempt_at: Some(due_at),
            release_lease: true,
        }
    }

    /// The recipient was put on the suppression list since acceptance
    /// (`reason`, the suppression's): ends `rejected`.
    pub fn suppressed(reason: &str, now: DateTime<Utc>) -> Self {
        Self::final_event(
            MessageEvent::new(MessageState::Rejected, now).with_reason(suppressed_reason(reason)),
        )
    }

    /// The organization has no active provider for the channel: ends `failed`.
    pub fn unroutable(channel: Channel, now: DateTime<Utc>) -> Self {
        Self::final_event(
            MessageEvent::new(MessageState::Failed, now)
                .with_reason(format!("no active {channel} provider to send through")),
        )
    }

    /// Not delivered within its lifetime: ends `expired`.
    pub fn expired(now: DateTime<Utc>) -> Self {
        Self::final_event(
            MessageEvent::new(MessageState::Expired, now)
                .with_reason("not delivered within the message lifetime"),
        )
    }

    /// What replaces this outcome when the database refused it: `failed`,
    /// one entry with a fixed reason (no provider text), no attempts,
    /// released. The provider and attempt count are kept: they are not
    /// text a provider chose.
    pub fn storage_rejected(&self, now: DateTime<Utc>) -> Self {
        let mut event =
            MessageEvent::new(MessageState::Failed, now).with_reason(STORAGE_REJECTED_REASON);
        event.provider_id = self.provider_id;
        Self {
            attempt_delta: self.attempt_delta,
            provider_id: self.provider_id,
            ..Self::final_event(event)
        }
    }

    /// Merges a later outcome of the same message into this one, as if both
    /// were written in order: the state advances only when the table allows
    /// it, histories and attempts are appended, the later provider, due time
    /// and provider message id win when present, and either one releasing
    /// the lease releases it.
    pub fn merge(&mut self, later: Outcome) {
        if self.state.can_advance_to(later.state) {
            self.state = later.state;
        }
        self.events.extend(later.events);
        self.attempts.extend(later.attempts);
        self.attempt_delta += later.attempt_delta;
        self.provider_id = later.provider_id.or(self.provider_id);
        self.provider_message_id = later
            .provider_message_id
            .or(self.provider_message_id.take());
        self.next_attempt_at = later.next_attempt_at.or(self.next_attempt_at);
        self.release_lease |= later.release_lease;
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;

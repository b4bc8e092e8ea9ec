//! Retry policy: after a failed attempt, retry on the same provider, fail
//! over to the next one, or give up.
//!
//! Classification (what kind of failure an error is, [`ErrorClass`]) belongs
//! to the provider adapter; this module only decides what to do with a class.
//! Every decision is bounded: per provider by `max_attempts_per_provider`, per
//! message by `max_total_attempts`. A retry is a rescheduled attempt after a
//! delay, never an in-process sleep.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff::{clamp_retry_after, Backoff};
use crate::message::AttemptOutcome;
use crate::validate::ValidationError;

/// What kind of failure an attempt ended with, as the provider adapter classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Worth retrying: connect error, 5xx.
    Transient,
    /// No answer in time.
    Timeout,
    /// The provider refused for rate (429), maybe with a `Retry-After`.
    RateLimited,
    /// Retrying cannot help: invalid recipient, rejected credentials, 4xx.
    Permanent,
    /// Not attempted: the provider's circuit breaker is open.
    CircuitOpen,
}

impl ErrorClass {
    /// The snake_case name, for the attempt record and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Permanent => "permanent",
            ErrorClass::CircuitOpen => "circuit_open",
        }
    }

    /// Whether this failure counts against the provider's circuit breaker:
    /// only transient errors and timeouts do (a bad recipient or a rate
    /// refusal says nothing about the provider's health).
    pub fn trips_breaker(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::Timeout)
    }

    /// The attempt outcome an error of this class is recorded as.
    pub fn outcome(self) -> AttemptOutcome {
        match self {
            ErrorClass::Transient => AttemptOutcome::TransientError,
            ErrorClass::Timeout => AttemptOutcome::Timeout,
            ErrorClass::RateLimited => AttemptOutcome::RateLimited,
            ErrorClass::Permanent => AttemptOutcome::PermanentError,
            ErrorClass::CircuitOpen => AttemptOutcome::CircuitOpen,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try the same provider again after `after` (reschedule, don't sleep).
    RetrySameProvider { after: Duration },
    /// Move to the next provider in the route (the caller turns this into
    /// [`RetryDecision::Fail`] when there is none).
    FailOver,
    /// Give up: the message ends `failed`.
    Fail,
}

/// Bounds and pacing of retries for one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts on one provider before failing over. Default 3.
    pub max_attempts_per_provider: u32,
    /// Attempts across every provider before giving up. Default 8.
    pub max_total_attempts: u32,
    /// Delay between attempts on one provider. Default 200 ms to 30 s, jitter 0.5.
    pub backoff: Backoff,
    /// Longest `Retry-After` honoured (longer ones are clamped). Default 300 s.
    pub retry_after_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts_per_provider: 3,
            max_total_attempts: 8,
            backoff: Backoff::default(),
            retry_after_max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Checks the bounds: at least one attempt per provider and in total, and
    /// a `retry_after_max` no shorter than the backoff's base.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.max_attempts_per_provider == 0 {
            return Err(ValidationError::new(
                "maxAttemptsPerProvider",
                "out_of_range",
                "maxAttemptsPerProvider must be at least 1",
            ));
        }
        if self.max_total_attempts == 0 {
            return Err(ValidationError::new(
                "maxTotalAttempts",
                "out_of_range",
                "maxTotalAttempts must be at least 1",
            ));
        }
        if self.retry_after_max < self.backoff.base() {
            return Err(ValidationError::new(
                "retryAfterMax",
                "out_of_range",
                "retryAfterMax must be at least the backoff's base",
            ));
        }
        Ok(())
    }

    /// The next step after a failed attempt. `attempts_on_provider` and
    /// `total_attempts` count attempts made so far, including the one that just
    /// failed; `retry_after` is the provider's hint; `random01` a uniform draw
    /// in `[0, 1]` for jitter.
    ///
    /// Permanent errors fail; once `total_attempts` reaches the total bound
    /// the message fails; an open circuit fails over; transient errors,
    /// timeouts and rate refusals retry on the same provider (after the
    /// clamped `Retry-After` when given, never less than the backoff's base,
    /// else after the backoff) until the provider's attempts are spent, then
    /// fail over.
    pub fn next_step(
        &self,
        attempts_on_provider: u32,
        total_attempts: u32,
        class: ErrorClass,
        retry_after: Option<Duration>,
        random01: f64,
    ) -> RetryDecision {
        if class == ErrorClass::Permanent || total_attempts >= self.max_total_attempts {
            return RetryDecision::Fail;
        }
        if class == ErrorClass::CircuitOpen
            || attempts_on_provider >= self.max_attempts_per_provider
        {
            return RetryDecision::FailOver;
        }
        let after = match retry_after {
            Some(hint) => clamp_retry_after(hint, self.backoff.base(), self.retry_after_max),
            None => self.backoff.delay(attempts_on_provider, random01),
        };
        RetryDecision::RetrySameProvider { after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn backoff(jitter: f64) -> Backoff {
        Backoff::new(100 * MS, 1000 * MS, jitter).unwrap()
    }

    #[test]
    fn default_policy_is_sane_and_valid() {
        let p = RetryPolicy::default();
        assert_eq!((p.max_attempts_per_provider, p.max_total_attempts), (3, 8));
        assert_eq!(
            p.backoff,
            Backoff::new(200 * MS, Duration::from_secs(30), 0.5).unwrap()
        );
        assert_eq!(p.retry_after_max, Duration::from_secs(300));
        assert_eq!(p.validate(), Ok(()));
        let bad = RetryPolicy {
            max_attempts_per_provider: 0,
            ..p
        };
        assert_eq!(bad.validate().map_err(|e| e.code), Err("out_of_range"));
        let bad = RetryPolicy {
            max_total_attempts: 0,
            ..p
        };
        assert_eq!(
            bad.validate().map_err(|e| e.field),
            Err("maxTotalAttempts".into())
        );
        let bad = RetryPolicy {
            retry_after_max: MS,
            ..p
        };
        assert_eq!(
            bad.validate().map_err(|e| e.field),
            Err("retryAfterMax".into())
        );
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts_per_provider: 3,
            max_total_attempts: 8,
            backoff: backoff(0.0),
            retry_after_max: 2000 * MS,
        }
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        assert_eq!(
            policy().next_step(1, 1, ErrorClass::Permanent, None, 0.0),
            RetryDecision::Fail
        );
    }

    #[test]
    fn open_circuit_fails_over_not_fails() {
        let p = policy();
        assert_eq!(
            p.next_step(0, 0, ErrorClass::CircuitOpen, None, 0.0),
            RetryDecision::FailOver
        );
        assert_eq!(
            p.next_step(1, 5, ErrorClass::CircuitOpen, None, 0.0),
            RetryDecision::FailOver
        );
    }

    #[test]
    fn retryable_errors_retry_with_backoff_until_the_provider_is_spent() {
        let p = policy();
        for class in [
            ErrorClass::Transient,
            ErrorClass::Timeout,
            ErrorClass::RateLimited,
        ] {
            assert_eq!(
                p.next_step(1, 1, class, None, 0.0),
                RetryDecision::RetrySameProvider { after: 100 * MS }
            );
            assert_eq!(
                p.next_step(2, 2, class, None, 0.0),
                RetryDecision::RetrySameProvider { after: 200 * MS }
            );
            assert_eq!(p.next_step(3, 3, class, None, 0.0), RetryDecision::FailOver);
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_window() {
        let p = policy();
        let step = |hint| p.next_step(1, 1, ErrorClass::RateLimited, Some(hint), 0.9);
        assert_eq!(
            step(1500 * MS),
            RetryDecision::RetrySameProvider { after: 1500 * MS }
        );
        assert_eq!(
            step(Duration::ZERO),
            RetryDecision::RetrySameProvider { after: 100 * MS }
        );
        assert_eq!(
            step(Duration::from_secs(60)),
            RetryDecision::RetrySameProvider { after: 2000 * MS }
        );
    }

    #[test]
    fn total_attempts_bound_the_message() {
        let p = policy();
        assert_eq!(
            p.next_step(1, 8, ErrorClass::Transient, None, 0.0),
            RetryDecision::Fail
        );
        assert_eq!(
            p.next_step(0, 8, ErrorClass::CircuitOpen, None, 0.0),
            RetryDecision::Fail
        );
        assert!(matches!(
            p.next_step(1, 7, ErrorClass::Timeout, None, 0.0),
            RetryDecision::RetrySameProvider { .. }
        ));
    }

    #[test]
    fn error_classes_name_their_outcome_and_breaker_effect() {
        let tripping: Vec<_> = [
            ErrorClass::Transient,
            ErrorClass::Timeout,
            ErrorClass::RateLimited,
            ErrorClass::Permanent,
            ErrorClass::CircuitOpen,
        ]
        .into_iter()
        .filter(|c| c.trips_breaker())
        .collect();
        assert_eq!(tripping, [ErrorClass::Transient, ErrorClass::Timeout]);
        assert_eq!(
            ErrorClass::RateLimited.outcome(),
            AttemptOutcome::RateLimited
        );
        assert_eq!(ErrorClass::Permanent.outcome().as_str(), "permanent_error");
        assert_eq!(
            serde_json::to_value(ErrorClass::CircuitOpen).ok(),
            Some("circuit_open".into())
        );
    }
}

//! A circuit breaker per provider connection, as a pure state machine: the
//! caller passes the time in, so tests need no clock and no sleeps.
//!
//! - **Closed**: every call goes through; `failure_threshold` consecutive
//!   transient failures (or timeouts) open the circuit. A success resets the count.
//! - **Open**: no call goes through for `open_for`; the router fails over.
//! - **HalfOpen**: once `open_for` has passed, exactly `half_open_probes`
//!   calls go through as probes. When all of them succeed the circuit closes;
//!   one failure reopens it at once.
//!
//! Only transient failures and timeouts are recorded as failures: a bad
//! recipient or a rate refusal says nothing about the provider's health (see
//! [`super::ErrorClass::trips_breaker`]).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::validate::ValidationError;

/// How a breaker trips and recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the circuit. Default 5.
    pub failure_threshold: u32,
    /// How long the circuit stays open before probing. Default 10 s.
    pub open_for: Duration,
    /// Probes let through when half-open; all must succeed to close. Default 1.
    pub half_open_probes: u32,
}

impl BreakerConfig {
    /// A validated config: threshold and probes at least 1, `open_for` non-zero.
    pub fn new(
        failure_threshold: u32,
        open_for: Duration,
        half_open_probes: u32,
    ) -> Result<BreakerConfig, ValidationError> {
        let config = BreakerConfig {
            failure_threshold,
            open_for,
            half_open_probes,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the ranges (for a config built field by field).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.failure_threshold == 0 {
            return Err(ValidationError::new(
                "failureThreshold",
                "out_of_range",
                "failureThreshold must be at least 1",
            ));
        }
        if self.open_for.is_zero() {
            return Err(ValidationError::new(
                "openFor",
                "out_of_range",
                "openFor must be greater than zero",
            ));
        }
        if self.half_open_probes == 0 {
            return Err(ValidationError::new(
                "halfOpenProbes",
                "out_of_range",
                "halfOpenProbes must be at least 1",
            ));
        }
        Ok(())
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }
}

/// The breaker's state as reported (metrics, health API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// The state with its bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { since: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// A circuit breaker for one provider connection. Not thread-safe by design:
/// it lives inside the provider's actor.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Inner,
    transitions: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            config,
            inner: Inner::Closed { failures: 0 },
            transitions: 0,
        }
    }

    /// The breaker's config.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Replaces the config (a provider's settings changed), keeping the state.
    pub fn set_config(&mut self, config: BreakerConfig) {
        self.config = config;
    }

    /// Whether a call may go now. Closed: yes. Open: no until `open_for` has
    /// passed, then the breaker turns half-open. HalfOpen: yes for up to
    /// `half_open_probes` probes, no while they are outstanding. Every `true`
    /// must be followed by one `record_*` call.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        if let Inner::Open { since } = self.inner {
            if !self.open_elapsed(since, now) {
                return false;
            }
            self.move_to(Inner::HalfOpen {
                in_flight: 0,
                successes: 0,
            });
        }
        match &mut self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { .. } => false,
            Inner::HalfOpen {
                in_flight,
                successes,
            } => {
                if in_flight.saturating_add(*successes) < self.config.half_open_probes {
                    *in_flight += 1;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// A call succeeded (or failed in a way that shows the provider is up,
    /// such as a permanent error). Closed: resets the failure count.
    /// HalfOpen: counts a successful probe; closes once every probe succeeded.
    pub fn record_success(&mut self, _now: Instant) {
        match &mut self.inner {
            Inner::Closed { failures } => *failures = 0,
            // A call started before the circuit opened; it proves nothing now.
            Inner::Open { .. } => {}
            Inner::HalfOpen {
                in_flight,
                successes,
            } => {
                *in_flight = in_flight.saturating_sub(1);
                *successes += 1;
                if *successes >= self.config.half_open_probes {
                    self.move_to(Inner::Closed { failures: 0 });
                }
            }
        }
    }

    /// A call failed transiently or timed out (only those: see the module
    /// docs). Closed: counts, and opens at the threshold. HalfOpen: reopens.
    pub fn record_failure(&mut self, now: Instant) {
        let open = Inner::Open { since: now };
        match &mut self.inner {
            Inner::Closed { failures } => {
                *failures = failures.saturating_add(1);
                if *failures >= self.config.failure_threshold {
                    self.move_to(open);
                }
            }
            Inner::Open { .. } => {}
            Inner::HalfOpen { .. } => self.move_to(open),
        }
    }

    /// An acquired call ended without saying anything about the provider's
    /// health (rate refusal, cancelled): frees its probe slot when half-open,
    /// changes nothing otherwise.
    pub fn record_neutral(&mut self, _now: Instant) {
        if let Inner::HalfOpen { in_flight, .. } = &mut self.inner {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    /// The state at `now`: an open circuit whose `open_for` has passed reads
    /// as half-open (the next [`try_acquire`](Self::try_acquire) moves it there).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { since } if !self.open_elapsed(since, now) => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether calls are refused at `now` (open, not yet due for a probe).
    pub fn is_open(&self, now: Instant) -> bool {
        self.state(now) == BreakerState::Open
    }

    /// State changes so far (closed→open, open→half-open, half-open→closed or
    /// open), for metrics.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Whether a circuit opened at `since` is due for probing at `now`
    /// (comparing elapsed time, so a huge `open_for` cannot overflow).
    fn open_elapsed(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) >= self.config.open_for
    }

    fn move_to(&mut self, next: Inner) {
        self.inner = next;
        self.transitions += 1;
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new(BreakerConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn breaker(threshold: u32, probes: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::new(threshold, 10 * SEC, probes).unwrap())
    }

    /// A breaker opened at `t0` by `threshold` failures.
    fn opened(threshold: u32, probes: u32, t0: Instant) -> CircuitBreaker {
        let mut b = breaker(threshold, probes);
        for _ in 0..threshold {
            assert!(b.try_acquire(t0));
            b.record_failure(t0);
        }
        assert_eq!(b.state(t0), BreakerState::Open);
        b
    }

    #[test]
    fn config_is_validated_and_defaults_are_sane() {
        let field = |r: Result<BreakerConfig, ValidationError>| r.map_err(|e| e.field);
        assert_eq!(
            field(BreakerConfig::new(0, SEC, 1)),
            Err("failureThreshold".into())
        );
        assert_eq!(
            field(BreakerConfig::new(1, Duration::ZERO, 1)),
            Err("openFor".into())
        );
        assert_eq!(
            field(BreakerConfig::new(1, SEC, 0)),
            Err("halfOpenProbes".into())
        );
        let d = BreakerConfig::default();
        assert_eq!(
            (d.failure_threshold, d.open_for, d.half_open_probes),
            (5, 10 * SEC, 1)
        );
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    }

    #[test]
    fn closed_lets_everything_through_and_opens_at_the_threshold() {
        let t0 = Instant::now();
        let mut b = breaker(3, 1);
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.record_failure(t0);
        b.record_failure(t0);
        assert!(b.try_acquire(t0));
        assert_eq!((b.state(t0), b.transitions()), (BreakerState::Closed, 0));
        b.record_failure(t0);
        assert_eq!((b.state(t0), b.transitions()), (BreakerState::Open, 1));
        assert!(!b.try_acquire(t0));
        assert!(b.is_open(t0));
    }

    #[test]
    fn a_success_resets_the_consecutive_failure_count() {
        let t0 = Instant::now();
        let mut b = breaker(3, 1);
        b.record_failure(t0);
        b.record_failure(t0);
        b.record_success(t0);
        b.record_failure(t0);
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn open_refuses_until_open_for_has_passed_then_half_opens() {
        let t0 = Instant::now();
        let mut b = opened(2, 1, t0);
        assert!(!b.try_acquire(t0 + 9 * SEC));
        assert_eq!(b.state(t0 + 10 * SEC), BreakerState::HalfOpen);
        assert_eq!(b.transitions(), 1, "state() alone does not transition");
        assert!(b.try_acquire(t0 + 10 * SEC));
        assert_eq!(
            (b.state(t0 + 10 * SEC), b.transitions()),
            (BreakerState::HalfOpen, 2)
        );
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through_by_default() {
        let t0 = Instant::now();
        let t1 = t0 + 10 * SEC;
        let mut b = opened(1, 1, t0);
        assert!(b.try_acquire(t1));
        assert!(!b.try_acquire(t1));
        assert!(!b.try_acquire(t1 + SEC));
        b.record_success(t1 + SEC);
        assert_eq!((b.state(t1), b.transitions()), (BreakerState::Closed, 3));
        assert!(b.try_acquire(t1 + SEC));
    }

    #[test]
    fn half_open_lets_exactly_n_probes_through_and_closes_after_n_successes() {
        let t0 = Instant::now();
        let t1 = t0 + 10 * SEC;
        let mut b = opened(1, 3, t0);
        let granted = (0..10).filter(|_| b.try_acquire(t1)).count();
        assert_eq!(granted, 3);
        b.record_success(t1);
        b.record_success(t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        // Two probes are done but their slots are not reissued: N probes in all.
        assert!(!b.try_acquire(t1));
        b.record_success(t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_at_once_for_a_full_period() {
        let t0 = Instant::now();
        let t1 = t0 + 10 * SEC;
        let mut b = opened(1, 2, t0);
        assert!(b.try_acquire(t1));
        assert!(b.try_acquire(t1));
        b.record_success(t1);
        b.record_failure(t1 + SEC);
        assert_eq!(
            (b.state(t1 + SEC), b.transitions()),
            (BreakerState::Open, 3)
        );
        // The other probe's late answer changes nothing.
        b.record_success(t1 + 2 * SEC);
        assert!(!b.try_acquire(t1 + 10 * SEC));
        assert!(b.try_acquire(t1 + 11 * SEC));
        assert_eq!(b.transitions(), 4);
    }

    #[test]
    fn failures_while_open_do_not_extend_the_period() {
        let t0 = Instant::now();
        let mut b = opened(1, 1, t0);
        b.record_failure(t0 + 5 * SEC);
        assert!(b.try_acquire(t0 + 10 * SEC));
        assert_eq!(b.transitions(), 2);
    }

    #[test]
    fn a_neutral_result_frees_the_probe_slot() {
        let t0 = Instant::now();
        let t1 = t0 + 10 * SEC;
        let mut b = opened(1, 1, t0);
        assert!(b.try_acquire(t1));
        assert!(!b.try_acquire(t1));
        b.record_neutral(t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.try_acquire(t1));
        b.record_success(t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
        b.record_neutral(t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
    }
}

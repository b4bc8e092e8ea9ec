//! An organization's admission gate: its limiter and burst, checked from any
//! thread once the organization's own limits are loaded.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The tenant actor's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over the rate: retry after this long.
    RateLimited {
        retry_after: Duration,
    },
    /// More messages in one request than the burst allows at all.
    OverBurst {
        burst: u32,
    },
}

/// An organization's limiter and burst, checked from any thread.
pub(super) struct Limits {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
}

impl Limits {
    pub(super) fn new(rate: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst_nz = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst_nz)),
            burst: burst.max(1),
        }
    }

    fn admit(&self, count: u32) -> Admission {
        let Some(n) = NonZeroU32::new(count) else {
            return Admission::Admitted;
        };
        match self.limiter.check_n(n) {
            Ok(Ok(())) => Admission::Admitted,
            Ok(Err(not_until)) => {
                let clock = governor::clock::DefaultClock::default();
                Admission::RateLimited {
                    retry_after: not_until.wait_time_from(governor::clock::Clock::now(&clock)),
                }
            }
            Err(_) => Admission::OverBurst { burst: self.burst },
        }
    }
}

/// The admission state an organization's actor shares with the request
/// threads.
pub struct Gate {
    limits: RwLock<Arc<Limits>>,
    /// Whether `limits` holds the organization's own limits (loaded once).
    loaded: AtomicBool,
    /// Set by every admission; the actor clears it on each idle check and
    /// stops when it found it clear for long enough.
    pub(super) used: AtomicBool,
}

impl Gate {
    pub(super) fn new(rate: u32, burst: u32) -> Self {
        Self {
            limits: RwLock::new(Arc::new(Limits::new(rate, burst))),
            loaded: AtomicBool::new(false),
            used: AtomicBool::new(true),
        }
    }

    /// Admits `count` messages on the calling thread, or `None` while the
    /// organization's limits are not loaded yet (ask the actor).
    pub fn try_admit(&self, count: u32) -> Option<Admission> {
        if !self.loaded.load(Ordering::Acquire) {
            return None;
        }
        Some(self.admit(count))
    }

    pub(super) fn admit(&self, count: u32) -> Admission {
        self.used.store(true, Ordering::Relaxed);
        let limits = match self.limits.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        limits.admit(count)
    }

    pub(super) fn install(&self, limits: Limits) {
        let limits = Arc::new(limits);
        match self.limits.write() {
            Ok(mut guard) => *guard = limits,
            Err(poisoned) => *poisoned.into_inner() = limits,
        }
        self.loaded.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_wait_for_the_actor_until_the_limits_are_loaded() {
        let gate = Gate::new(10, 10);
        assert_eq!(gate.try_admit(1), None);
        gate.install(Limits::new(10, 10));
        assert_eq!(gate.try_admit(1), Some(Admission::Admitted));
    }

    #[test]
    fn a_request_over_the_burst_is_refused_as_such_and_the_rate_limits() {
        let gate = Gate::new(1, 1);
        gate.install(Limits::new(1, 5));
        assert_eq!(gate.try_admit(6), Some(Admission::OverBurst { burst: 5 }));
        assert_eq!(gate.try_admit(5), Some(Admission::Admitted));
        assert!(matches!(
            gate.try_admit(1),
            Some(Admission::RateLimited { retry_after }) if retry_after > Duration::ZERO
        ));
        assert_eq!(
            gate.try_admit(0),
            Some(Admission::Admitted),
            "nothing to admit"
        );
    }

    #[test]
    fn admissions_mark_the_gate_used() {
        let gate = Gate::new(10, 10);
        gate.used.store(false, Ordering::Relaxed);
        gate.install(Limits::new(10, 10));
        let _ = gate.try_admit(1);
        assert!(gate.used.load(Ordering::Relaxed));
    }
}

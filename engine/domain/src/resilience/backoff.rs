//! Backoff: how long to wait before the next attempt on a provider.
//!
//! Delays are exponential (`base * 2^(attempt-1)`, capped at `max`) with
//! jitter, validated at construction; a provider's `Retry-After` is honoured
//! within a window ([`clamp_retry_after`]). The policy that decides *whether*
//! to retry lives in [`super::retry`] and is re-exported here.

use std::time::Duration;

use crate::validate::ValidationError;

/// Exponential backoff with jitter, validated at construction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// A backoff starting at `base`, doubling up to `max`, with `jitter` (0 to
    /// 1) the share of each delay that is randomised away.
    pub fn new(base: Duration, max: Duration, jitter: f64) -> Result<Backoff, ValidationError> {
        if base.is_zero() {
            return Err(ValidationError::new(
                "base",
                "out_of_range",
                "base must be greater than zero",
            ));
        }
        if max < base {
            return Err(ValidationError::new(
                "max",
                "out_of_range",
                "max must be at least base",
            ));
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(ValidationError::new(
                "jitter",
                "out_of_range",
                "jitter must be between 0 and 1",
            ));
        }
        Ok(Backoff { base, max, jitter })
    }

    /// The first retry's delay before jitter.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The longest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The share of each delay that is randomised away (0 to 1).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay before retry number `attempt` (1 is the first retry; 0 is
    /// treated as 1): `base * 2^(attempt-1)` capped at `max`, then scaled by
    /// `1 - jitter * random01`. `random01` is a uniform draw in `[0, 1]`
    /// (clamped), passed in so the result is deterministic.
    pub fn delay(&self, attempt: u32, random01: f64) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let exponential = 1u32
            .checked_shl(doublings)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.max, |d| d.min(self.max));
        let random01 = if random01.is_nan() {
            0.0
        } else {
            random01.clamp(0.0, 1.0)
        };
        let keep = 1.0 - self.jitter * random01;
        if keep >= 1.0 {
            return exponential;
        }
        // `mul_f64` would panic on a result beyond `Duration::MAX`; keep the
        // unjittered delay in that (absurd) case instead.
        Duration::try_from_secs_f64(exponential.as_secs_f64() * keep).unwrap_or(exponential)
    }

    /// Same as the free function [`clamp_retry_after`].
    pub fn clamp_retry_after(retry_after: Duration, min: Duration, max: Duration) -> Duration {
        clamp_retry_after(retry_after, min, max)
    }
}

impl Default for Backoff {
    /// 200 ms doubling up to 30 s, half of each delay jittered.
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

/// A provider's `Retry-After` brought into `[min, max]`: a provider asking for
/// nothing still gets `min`, one asking for an hour gets `max`. Never panics;
/// if `min > max`, `max` wins.
pub fn clamp_retry_after(retry_after: Duration, min: Duration, max: Duration) -> Duration {
    retry_after.max(min).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn backoff(jitter: f64) -> Backoff {
        Backoff::new(100 * MS, 1000 * MS, jitter).unwrap()
    }

    #[test]
    fn new_validates_its_arguments() {
        let code = |r: Result<Backoff, ValidationError>| r.map_err(|e| (e.field, e.code));
        assert_eq!(
            code(Backoff::new(Duration::ZERO, MS, 0.0)),
            Err(("base".into(), "out_of_range"))
        );
        assert_eq!(
            code(Backoff::new(2 * MS, MS, 0.0)),
            Err(("max".into(), "out_of_range"))
        );
        for jitter in [-0.1, 1.1, f64::NAN] {
            assert_eq!(
                code(Backoff::new(MS, MS, jitter)),
                Err(("jitter".into(), "out_of_range"))
            );
        }
        assert!(Backoff::new(MS, MS, 0.0).is_ok());
        assert!(Backoff::new(MS, MS, 1.0).is_ok());
    }

    #[test]
    fn delay_doubles_from_base_and_caps_at_max() {
        let b = backoff(0.0);
        let delays: Vec<_> = (0..=6).map(|n| b.delay(n, 0.7)).collect();
        assert_eq!(
            delays,
            [
                100 * MS,
                100 * MS,
                200 * MS,
                400 * MS,
                800 * MS,
                1000 * MS,
                1000 * MS
            ]
        );
        assert_eq!(b.delay(33, 0.0), 1000 * MS);
        assert_eq!(b.delay(u32::MAX, 0.0), 1000 * MS);
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::MAX, 0.0).unwrap();
        assert_eq!(huge.delay(10, 0.0), Duration::MAX);
    }

    #[test]
    fn jitter_removes_up_to_its_share_of_the_delay() {
        let half = backoff(0.5);
        assert_eq!(half.delay(3, 0.0), 400 * MS);
        assert_eq!(half.delay(3, 0.5), 300 * MS);
        assert_eq!(half.delay(3, 1.0), 200 * MS);
        let full = backoff(1.0);
        assert_eq!(full.delay(3, 1.0), Duration::ZERO);
        assert_eq!(full.delay(3, 0.25), 300 * MS);
        // Out-of-range draws are clamped, never negative or longer.
        assert_eq!(half.delay(3, 7.0), 200 * MS);
        assert_eq!(half.delay(3, -1.0), 400 * MS);
        assert_eq!(half.delay(3, f64::NAN), 400 * MS);
    }

    #[test]
    fn retry_after_is_clamped_into_its_window() {
        let (lo, hi) = (200 * MS, 5000 * MS);
        assert_eq!(clamp_retry_after(Duration::ZERO, lo, hi), lo);
        assert_eq!(clamp_retry_after(1000 * MS, lo, hi), 1000 * MS);
        assert_eq!(clamp_retry_after(Duration::from_secs(3600), lo, hi), hi);
        assert_eq!(Backoff::clamp_retry_after(MS, hi, lo), lo);
    }
}

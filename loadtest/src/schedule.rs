//! The open-model send schedule.
//!
//! With a target of `rate` messages/second in requests of `batch_size`
//! messages, request `i` is due at `i * batch_size / rate` seconds after the
//! load starts, whether or not earlier requests have returned. Latency is
//! measured from that intended time, so a slow server cannot hide its delay
//! by slowing the client down (coordinated omission).

use std::time::Duration;

use anyhow::{ensure, Result};

/// When each request of an open-model run is due.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSchedule {
    /// Target messages per second.
    pub rate: f64,
    /// Messages per request.
    pub batch_size: u32,
    /// How many requests the run issues.
    pub requests: u64,
    /// Nanoseconds between two requests.
    interval_ns: f64,
}

impl OpenSchedule {
    /// `rate` messages/s for `duration` in requests of `batch_size`: the
    /// number of requests is `rate * duration / batch_size` rounded, at
    /// least one.
    pub fn new(rate: f64, duration: Duration, batch_size: u32) -> Result<Self> {
        ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be a positive number"
        );
        ensure!(
            (1..=1000).contains(&batch_size),
            "--batch-size must be 1 to 1000"
        );
        ensure!(!duration.is_zero(), "--duration must be positive");
        let requests = (rate * duration.as_secs_f64() / f64::from(batch_size))
            .round()
            .max(1.0);
        ensure!(
            requests <= 1e9,
            "--rate x --duration is too large ({requests} requests)"
        );
        Ok(Self {
            rate,
            batch_size,
            requests: requests as u64,
            interval_ns: f64::from(batch_size) * 1e9 / rate,
        })
    }

    /// Requests per second.
    pub fn request_rate(&self) -> f64 {
        self.rate / f64::from(self.batch_size)
    }

    /// Messages the whole run sends.
    pub fn messages(&self) -> u64 {
        self.requests * u64::from(self.batch_size)
    }

    /// When the run's last request is due, plus one interval: the scheduled
    /// length of the load.
    pub fn span(&self) -> Duration {
        self.offset(self.requests)
    }

    /// When request `i` is due, after the start.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_nanos(self.offset_ns(i))
    }

    fn offset_ns(&self, i: u64) -> u64 {
        (i as f64 * self.interval_ns).floor() as u64
    }

    /// How many requests are due by `elapsed` (those with `offset(i) <=
    /// elapsed`), at most [`OpenSchedule::requests`].
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let e = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // First guess from the division, then fix the rounding so it agrees
        // exactly with `offset`.
        let mut k = (e as f64 / self.interval_ns).floor() as u64;
        while k > 0 && self.offset_ns(k) > e {
            k -= 1;
        }
        while k < self.requests && self.offset_ns(k + 1) <= e {
            k += 1;
        }
        (k + 1).min(self.requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_count_and_rate() {
        let s = OpenSchedule::new(15_000.0, Duration::from_secs(60), 1000).expect("valid");
        assert_eq!(s.requests, 900);
        assert_eq!(s.messages(), 900_000);
        assert!((s.request_rate() - 15.0).abs() < 1e-9);
        let s = OpenSchedule::new(500.0, Duration::from_secs(5), 1).expect("valid");
        assert_eq!(s.requests, 2500);
        assert_eq!(s.offset(1), Duration::from_millis(2));
        assert_eq!(s.offset(500), Duration::from_secs(1));
        assert_eq!(s.span(), Duration::from_secs(5));
        // Less than one request's worth still sends one.
        let s = OpenSchedule::new(10.0, Duration::from_secs(1), 1000).expect("valid");
        assert_eq!(s.requests, 1);
    }

    #[test]
    fn invalid_schedules_are_refused() {
        assert!(OpenSchedule::new(0.0, Duration::from_secs(1), 1).is_err());
        assert!(OpenSchedule::new(f64::NAN, Duration::from_secs(1), 1).is_err());
        assert!(OpenSchedule::new(10.0, Duration::ZERO, 1).is_err());
        assert!(OpenSchedule::new(10.0, Duration::from_secs(1), 0).is_err());
        assert!(OpenSchedule::new(10.0, Duration::from_secs(1), 1001).is_err());
    }

    #[test]
    fn due_by_agrees_with_offset() {
        for (rate, batch) in [(500.0, 1), (5000.0, 1), (15_000.0, 1000), (333.3, 7)] {
            let s = OpenSchedule::new(rate, Duration::from_secs(3), batch).expect("valid");
            assert_eq!(s.due_by(Duration::ZERO), 1, "the first is due at once");
            for i in 0..s.requests {
                let at = s.offset(i);
                assert!(s.due_by(at) > i, "request {i} is due at its offset");
                if let Some(before) = at.checked_sub(Duration::from_nanos(1)) {
                    assert!(s.due_by(before) <= i, "request {i} is not due early");
                }
            }
            assert_eq!(s.due_by(Duration::from_secs(3600)), s.requests);
        }
    }

    #[test]
    fn offsets_increase_evenly() {
        let s = OpenSchedule::new(3.0, Duration::from_secs(10), 1).expect("valid");
        let gaps: Vec<u128> = (1..s.requests)
            .map(|i| (s.offset(i) - s.offset(i - 1)).as_nanos())
            .collect();
        assert!(gaps.iter().all(|g| (333_333_332..=333_333_334).contains(g)));
    }
}

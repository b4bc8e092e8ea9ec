//! Rolling health statistics of one provider connection: success rate over
//! the last [`WINDOW`] outcomes, a latency EWMA and the last error.
//!
//! Memory is fixed (a ring buffer of outcomes), so recording costs the same
//! after a billion sends as after one. The snapshot is what the provider
//! health API and the router's live view read.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::breaker::BreakerState;

/// Outcomes the success rate is computed over.
pub const WINDOW: usize = 100;
/// Weight of the newest latency sample in the EWMA.
pub const LATENCY_ALPHA: f64 = 0.2;
/// Longest `last_error` kept, in characters (provider errors can be pages of HTML).
pub const MAX_ERROR_CHARS: usize = 512;

/// Health of one provider connection.
#[derive(Debug, Clone)]
pub struct HealthStats {
    /// Ring buffer of the last outcomes (`true` = success).
    outcomes: [bool; WINDOW],
    /// Where the next outcome goes.
    next: usize,
    /// Outcomes held (up to `WINDOW`).
    len: usize,
    /// Successes among the held outcomes.
    successes: usize,
    /// Latency EWMA in microseconds; `None` before the first sample.
    latency_ewma_us: Option<f64>,
    last_error: Option<String>,
}

impl Default for HealthStats {
    fn default() -> Self {
        HealthStats {
            outcomes: [false; WINDOW],
            next: 0,
            len: 0,
            successes: 0,
            latency_ewma_us: None,
            last_error: None,
        }
    }
}

impl HealthStats {
    /// No outcomes yet: success rate 1.0, latency zero.
    pub fn new() -> HealthStats {
        HealthStats::default()
    }

    /// Records one call's outcome and latency.
    pub fn record(&mut self, success: bool, latency: Duration) {
        if self.len == WINDOW {
            if self.outcomes[self.next] {
                self.successes -= 1;
            }
        } else {
            self.len += 1;
        }
        self.outcomes[self.next] = success;
        if success {
            self.successes += 1;
        }
        self.next = (self.next + 1) % WINDOW;

        let sample = latency.as_secs_f64() * 1e6;
        self.latency_ewma_us = Some(match self.latency_ewma_us {
            None => sample,
            Some(ewma) => LATENCY_ALPHA * sample + (1.0 - LATENCY_ALPHA) * ewma,
        });
    }

    /// Remembers the latest error, cut to [`MAX_ERROR_CHARS`].
    pub fn record_error(&mut self, message: impl Into<String>) {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_ERROR_CHARS) {
            message.truncate(cut);
        }
        self.last_error = Some(message);
    }

    /// Share of successes among the last [`WINDOW`] outcomes; 1.0 when empty.
    pub fn success_rate(&self) -> f64 {
        if self.len == 0 {
            1.0
        } else {
            self.successes as f64 / self.len as f64
        }
    }

    /// Outcomes the success rate is computed over (at most [`WINDOW`]).
    pub fn samples(&self) -> usize {
        self.len
    }

    /// Latency EWMA (alpha 0.2), to the microsecond; zero before the first sample.
    pub fn latency_ewma(&self) -> Duration {
        // `as` saturates (and maps NaN to 0), so this never panics.
        self.latency_ewma_us.map_or(
            Duration::ZERO,
            |us| Duration::from_micros(us.round() as u64),
        )
    }

    /// The latest error recorded, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// A serialisable view, with the breaker's state beside it.
    pub fn snapshot(&self, breaker: BreakerState) -> HealthSnapshot {
        HealthSnapshot {
            success_rate: self.success_rate(),
            latency_ewma_ms: self.latency_ewma_us.unwrap_or(0.0) / 1e3,
            last_error: self.last_error.clone(),
            breaker: breaker.as_str().to_owned(),
        }
    }
}

/// A provider connection's health as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    /// Share of successes among the last 100 calls (1.0 with none).
    pub success_rate: f64,
    /// Latency EWMA in milliseconds.
    pub latency_ewma_ms: f64,
    /// The latest provider error, if any.
    pub last_error: Option<String>,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn empty_stats_are_healthy() {
        let h = HealthStats::new();
        assert_eq!((h.success_rate(), h.samples()), (1.0, 0));
        assert_eq!(h.latency_ewma(), Duration::ZERO);
        assert_eq!(h.last_error(), None);
    }

    #[test]
    fn success_rate_rolls_over_the_last_hundred_outcomes() {
        let mut h = HealthStats::new();
        for i in 0..10 {
            h.record(i % 2 == 0, MS);
        }
        assert_eq!((h.success_rate(), h.samples()), (0.5, 10));
        for _ in 0..WINDOW {
            h.record(false, MS);
        }
        assert_eq!((h.success_rate(), h.samples()), (0.0, WINDOW));
        for _ in 0..25 {
            h.record(true, MS);
        }
        assert_eq!(h.success_rate(), 0.25);
        for _ in 0..1000 {
            h.record(true, MS);
        }
        assert_eq!((h.success_rate(), h.samples()), (1.0, WINDOW));
    }

    #[test]
    fn latency_ewma_starts_at_the_first_sample_and_weights_new_ones_by_a_fifth() {
        let mut h = HealthStats::new();
        h.record(true, 100 * MS);
        assert_eq!(h.latency_ewma(), 100 * MS);
        h.record(true, 200 * MS);
        assert_eq!(h.latency_ewma(), 120 * MS);
        h.record(false, Duration::ZERO);
        assert_eq!(h.latency_ewma(), 96 * MS);
    }

    #[test]
    fn last_error_is_kept_and_bounded() {
        let mut h = HealthStats::new();
        h.record_error("503 Service Unavailable");
        assert_eq!(h.last_error(), Some("503 Service Unavailable"));
        h.record_error("é".repeat(MAX_ERROR_CHARS + 10));
        assert_eq!(
            h.last_error().map(|e| e.chars().count()),
            Some(MAX_ERROR_CHARS)
        );
    }

    #[test]
    fn snapshot_serialises_camel_case() {
        let mut h = HealthStats::new();
        h.record(true, 1500 * Duration::from_micros(1));
        h.record(false, 1500 * Duration::from_micros(1));
        h.record_error("timeout");
        let json = serde_json::to_value(h.snapshot(BreakerState::HalfOpen)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "successRate": 0.5,
                "latencyEwmaMs": 1.5,
                "lastError": "timeout",
                "breaker": "half_open",
            })
        );
    }
}

//! What a provider actor publishes for routing to read without asking it:
//! whether its circuit is open, whether its rate limit holds a backlog
//! beyond a short wait, its latency EWMA, and its delivery ratio from
//! receipts (fed by the webhook path and by synchronous deliveries). Every
//! field is read lock-free except the delivery window, a tiny mutex taken
//! once per receipt and once per plan that reads it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use msgengine_domain::routing::delivery::DeliveryWindow;
use msgengine_domain::routing::ProviderLiveness;

/// A backlog the limiter will take longer than this to release counts as
/// rate limited: routing moves the connection last.
pub const RATE_LIMITED_AFTER_SECS: f64 = 1.0;

pub struct LiveState {
    circuit_open: AtomicBool,
    rate_limited: AtomicBool,
    /// f64 bits of the latency EWMA in microseconds; 0 before the first call.
    latency_us: AtomicU64,
    delivery: Mutex<DeliveryWindow>,
    epoch: Instant,
}

impl Default for LiveState {
    fn default() -> Self {
        Self {
            circuit_open: AtomicBool::new(false),
            rate_limited: AtomicBool::new(false),
            latency_us: AtomicU64::new(0),
            delivery: Mutex::new(DeliveryWindow::default()),
            epoch: Instant::now(),
        }
    }
}

impl LiveState {
    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_secs_f64()
    }

    pub fn set_circuit_open(&self, open: bool) {
        self.circuit_open.store(open, Ordering::Relaxed);
    }

    pub fn circuit_open(&self) -> bool {
        self.circuit_open.load(Ordering::Relaxed)
    }

    pub fn rate_limited(&self) -> bool {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Publishes the limiter's backlog: `queued` jobs at `rate` per second.
    pub fn set_backlog(&self, queued: usize, rate: Option<u32>) {
        let limited =
            rate.is_some_and(|r| r > 0 && queued as f64 / f64::from(r) > RATE_LIMITED_AFTER_SECS);
        self.rate_limited.store(limited, Ordering::Relaxed);
    }

    pub fn set_latency(&self, ewma_secs: f64) {
        self.latency_us
            .store((ewma_secs * 1e6).to_bits(), Ordering::Relaxed);
    }

    /// Counts a final receipt for a message this connection sent.
    pub fn record_receipt(&self, delivered: bool, at: Instant) {
        let now = self.secs(at);
        if let Ok(mut window) = self.delivery.lock() {
            window.record(delivered, now);
        }
    }

    /// The delivery ratio and its sample size now.
    pub fn delivery(&self, at: Instant) -> (Option<f64>, u32) {
        let now = self.secs(at);
        self.delivery
            .lock()
            .map(|w| w.read(now))
            .unwrap_or((None, 0))
    }

    /// The state routing reads.
    pub fn liveness(&self, at: Instant) -> ProviderLiveness {
        let (delivery_ratio, delivery_samples) = self.delivery(at);
        let latency = f64::from_bits(self.latency_us.load(Ordering::Relaxed));
        ProviderLiveness {
            circuit_open: self.circuit_open(),
            rate_limited: self.rate_limited(),
            delivery_ratio,
            delivery_samples,
            latency_us: (latency > 0.0).then_some(latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn published_state_reads_back_as_liveness() {
        let live = LiveState::default();
        let now = Instant::now();
        assert_eq!(live.liveness(now), ProviderLiveness::healthy());
        live.set_circuit_open(true);
        live.set_backlog(30, Some(10));
        live.set_latency(0.25);
        for i in 0..10 {
            live.record_receipt(i < 8, now);
        }
        let seen = live.liveness(now + Duration::from_millis(1));
        assert!(seen.circuit_open && seen.rate_limited);
        assert_eq!(seen.delivery_samples, 10);
        assert!((seen.delivery_ratio.expect("ratio") - 0.8).abs() < 1e-6);
        assert!((seen.latency_us.expect("latency") - 250_000.0).abs() < 1e-6);
        live.set_backlog(5, Some(10));
        assert!(
            !live.liveness(now).rate_limited,
            "half a second of backlog is a short wait"
        );
        live.set_backlog(1_000, None);
        assert!(
            !live.liveness(now).rate_limited,
            "no limit, no rate limiting"
        );
    }
}

//! The handles of one provider connection's series.

use metrics::{counter, histogram, Counter, Gauge, Histogram};
use msgengine_domain::resilience::breaker::BreakerState;
use msgengine_domain::resilience::retry::ErrorClass;
use msgengine_domain::Channel;
use uuid::Uuid;

use super::*;

fn class_index(class: ErrorClass) -> usize {
    match class {
        ErrorClass::Transient => 0,
        ErrorClass::Timeout => 1,
        ErrorClass::RateLimited => 2,
        ErrorClass::Permanent => 3,
        ErrorClass::CircuitOpen => 4,
    }
}

fn breaker_index(state: BreakerState) -> usize {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

/// The handles of one provider connection's series, resolved once when its
/// actor starts.
pub struct ProviderMetrics {
    sent: Counter,
    delivered: Counter,
    send_latency: Histogram,
    delivery_latency: Histogram,
    /// By outcome: the four call error classes, then `ok`.
    duration: [Histogram; 5],
    /// By class, `circuit_open` last.
    errors: [Counter; 5],
    retries: [Counter; 5],
    failovers: Counter,
    /// Fallbacks off this connection: transient, timeout, rate_limited, circuit_open.
    fallbacks: [Counter; 4],
    failed_permanent: Counter,
    failed_exhausted: Counter,
    /// Into closed, half_open, open.
    transitions: [Counter; 3],
    /// The gauges labelled with the connection: removed from `/metrics`
    /// when the last handle on them goes (the actor stops).
    series: connections::ConnectionSeries,
    rate_limited: Counter,
}

impl ProviderMetrics {
    /// The series of connection `connection` (`provider_type` as stored).
    pub fn new(channel: Channel, provider_type: &str, connection: Uuid) -> Self {
        let ch = channel.as_str();
        let p = provider_label(channel, provider_type);
        let duration = [
            histogram!(PROVIDER_REQUEST_DURATION, "channel" => ch, "provider" => p, "outcome" => "transient"),
            histogram!(PROVIDER_REQUEST_DURATION, "channel" => ch, "provider" => p, "outcome" => "timeout"),
            histogram!(PROVIDER_REQUEST_DURATION, "channel" => ch, "provider" => p, "outcome" => "rate_limited"),
            histogram!(PROVIDER_REQUEST_DURATION, "channel" => ch, "provider" => p, "outcome" => "permanent"),
            histogram!(PROVIDER_REQUEST_DURATION, "channel" => ch, "provider" => p, "outcome" => "ok"),
        ];
        let metrics = Self {
            sent: counter!(MESSAGES_SENT, "channel" => ch, "provider" => p),
            delivered: counter!(MESSAGES_DELIVERED, "channel" => ch, "provider" => p),
            send_latency: histogram!(SEND_LATENCY, "channel" => ch),
            delivery_latency: histogram!(DELIVERY_LATENCY, "channel" => ch),
            duration,
            errors: class_counters(PROVIDER_ERRORS, ch, p),
            retries: class_counters(RETRIES, ch, p),
            failovers: counter!(FAILOVERS, "channel" => ch, "provider" => p),
            fallbacks: ["transient", "timeout", "rate_limited", "circuit_open"].map(
                |r| counter!(ROUTING_FALLBACKS, "channel" => ch, "provider" => p, "reason" => r),
            ),
            failed_permanent: counter!(MESSAGES_FAILED, "channel" => ch, "provider" => p, "reason" => "permanent"),
            failed_exhausted: counter!(MESSAGES_FAILED, "channel" => ch, "provider" => p, "reason" => "exhausted"),
            transitions: [
                counter!(BREAKER_TRANSITIONS, "provider" => p, "to" => "closed"),
                counter!(BREAKER_TRANSITIONS, "provider" => p, "to" => "half_open"),
                counter!(BREAKER_TRANSITIONS, "provider" => p, "to" => "open"),
            ],
            series: connections::ConnectionSeries::new(p, connection),
            rate_limited: counter!(RATE_LIMITED, "scope" => "provider"),
        };
        // Register every series at zero: a connection shows up with its
        // breaker closed and nothing counted yet.
        for c in metrics.errors.iter().chain(&metrics.retries) {
            c.increment(0);
        }
        for c in metrics.transitions.iter().chain(&metrics.fallbacks) {
            c.increment(0);
        }
        metrics.sent.increment(0);
        metrics.delivered.increment(0);
        metrics.failovers.increment(0);
        metrics.failed_permanent.increment(0);
        metrics.failed_exhausted.increment(0);
        metrics.breaker_state().set(0.0);
        metrics.breaker_open_seconds().set(0.0);
        metrics.success_ratio().set(1.0);
        metrics.latency_ewma().set(0.0);
        metrics.in_flight_gauge().set(0.0);
        metrics.delivery_ratio().set(1.0);
        metrics
    }

    fn delivery_ratio(&self) -> &Gauge {
        self.series.gauge(5)
    }

    /// The live delivery ratio from receipts (1 until there is one).
    pub fn delivery(&self, ratio: Option<f64>) {
        self.delivery_ratio().set(ratio.unwrap_or(1.0));
    }

    fn breaker_state(&self) -> &Gauge {
        self.series.gauge(0)
    }

    fn breaker_open_seconds(&self) -> &Gauge {
        self.series.gauge(1)
    }

    fn success_ratio(&self) -> &Gauge {
        self.series.gauge(2)
    }

    fn latency_ewma(&self) -> &Gauge {
        self.series.gauge(3)
    }

    fn in_flight_gauge(&self) -> &Gauge {
        self.series.gauge(4)
    }

    /// The provider accepted a message (`delivered`: and confirmed delivery at once).
    pub fn sent(&self, message_id: Uuid, delivered: bool) {
        self.sent.increment(1);
        let since = seconds_since_accept(message_id);
        if let Some(secs) = since {
            self.send_latency.record(secs);
        }
        if delivered {
            self.delivered.increment(1);
            if let Some(secs) = since {
                self.delivery_latency.record(secs);
            }
        }
    }

    /// One provider call finished (`None`: it succeeded).
    pub fn call(&self, failure: Option<ErrorClass>, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64();
        match failure {
            None => self.duration[4].record(secs),
            Some(class) => {
                let i = class_index(class).min(3);
                self.duration[i].record(secs);
                self.errors[i].increment(1);
            }
        }
    }

    /// A job found the circuit open (no call made).
    pub fn circuit_open(&self) {
        self.errors[4].increment(1);
    }

    /// A failed attempt will be tried again (same provider or the next one).
    pub fn retry(&self, class: ErrorClass) {
        self.retries[class_index(class)].increment(1);
    }

    /// A message moved off this provider to the next one of its chain
    /// after a failed call of `class`, or (`None`) with the circuit open.
    pub fn failover(&self, class: Option<ErrorClass>) {
        self.failovers.increment(1);
        let reason = match class {
            Some(ErrorClass::Transient | ErrorClass::Permanent) => 0,
            Some(ErrorClass::Timeout) => 1,
            Some(ErrorClass::RateLimited) => 2,
            Some(ErrorClass::CircuitOpen) | None => 3,
        };
        self.fallbacks[reason].increment(1);
    }

    /// A message failed for good on this provider.
    pub fn failed(&self, class: ErrorClass) {
        if class == ErrorClass::Permanent {
            self.failed_permanent.increment(1);
        } else {
            self.failed_exhausted.increment(1);
        }
    }

    /// The breaker changed state (`open_secs`: how long it has been open).
    pub fn breaker(&self, state: BreakerState, changed: bool, open_secs: f64) {
        if changed {
            self.transitions[breaker_index(state)].increment(1);
        }
        self.breaker_state().set(breaker_index(state) as f64);
        self.breaker_open_seconds().set(open_secs);
    }

    /// The rolling health statistics.
    pub fn health(&self, success_ratio: f64, latency_ewma: std::time::Duration, in_flight: usize) {
        self.success_ratio().set(success_ratio);
        self.latency_ewma().set(latency_ewma.as_secs_f64());
        self.in_flight_gauge().set(in_flight as f64);
    }

    /// Sends under way.
    pub fn in_flight(&self, n: usize) {
        self.in_flight_gauge().set(n as f64);
    }

    /// The connection's own limiter held sends back.
    pub fn rate_limited(&self) {
        self.rate_limited.increment(1);
    }
}

/// One counter per error class ([`class_index`] order).
fn class_counters(name: &'static str, ch: &'static str, p: &'static str) -> [Counter; 5] {
    [
        "transient",
        "timeout",
        "rate_limited",
        "permanent",
        "circuit_open",
    ]
    .map(|c| counter!(name, "channel" => ch, "provider" => p, "class" => c))
}

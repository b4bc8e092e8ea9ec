//! The engine's metrics: names, descriptions and the handles the hot paths
//! use, through the `metrics` facade (the server installs the Prometheus
//! recorder; without one every handle is a no-op).
//!
//! `docs/metrics.md` is the contract: every name here is listed there with its
//! labels, and a test scrapes `/metrics` against it. Label values are
//! `&'static str` from closed sets (channel, provider type, error class), so
//! recording allocates nothing; the per-connection and per-organization
//! series are resolved once into handles ([`ProviderMetrics`],
//! [`TenantSeries`]). A batch is counted with one `increment(n)`.

pub mod connections;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use msgengine_domain::message::MessageState;
use msgengine_domain::resilience::backoff::ErrorClass;
use msgengine_domain::resilience::breaker::BreakerState;
use msgengine_domain::{Channel, OrganizationId};
use uuid::Uuid;

pub const MESSAGES_ACCEPTED: &str = "msgengine_messages_accepted_total";
pub const MESSAGES_REFUSED: &str = "msgengine_messages_refused_total";
pub const MESSAGES_SENT: &str = "msgengine_messages_sent_total";
pub const MESSAGES_DELIVERED: &str = "msgengine_messages_delivered_total";
pub const MESSAGES_FAILED: &str = "msgengine_messages_failed_total";
pub const SEND_LATENCY: &str = "msgengine_message_send_latency_seconds";
pub const DELIVERY_LATENCY: &str = "msgengine_message_delivery_latency_seconds";
pub const RETRIES: &str = "msgengine_retries_total";
pub const FAILOVERS: &str = "msgengine_failovers_total";
pub const PROVIDER_REQUEST_DURATION: &str = "msgengine_provider_request_duration_seconds";
pub const PROVIDER_ERRORS: &str = "msgengine_provider_errors_total";
pub const BREAKER_STATE: &str = "msgengine_circuit_breaker_state";
pub const BREAKER_TRANSITIONS: &str = "msgengine_circuit_breaker_transitions_total";
pub const BREAKER_OPEN_SECONDS: &str = "msgengine_circuit_breaker_open_seconds";
pub const PROVIDER_SUCCESS_RATIO: &str = "msgengine_provider_health_success_ratio";
pub const PROVIDER_LATENCY_EWMA: &str = "msgengine_provider_latency_ewma_seconds";
pub const PROVIDER_IN_FLIGHT: &str = "msgengine_provider_in_flight";
pub const RATE_LIMITED: &str = "msgengine_rate_limited_total";
pub const TENANT_ACCEPTED: &str = "msgengine_tenant_messages_accepted_total";
pub const TENANT_RATE_LIMITED: &str = "msgengine_tenant_rate_limited_total";
pub const TENANTS_ACTIVE: &str = "msgengine_tenants_active";
pub const QUEUE_DEPTH: &str = "msgengine_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "msgengine_queue_oldest_age_seconds";
pub const DB_BATCH_ROWS: &str = "msgengine_db_batch_rows";
pub const DB_BATCH_DURATION: &str = "msgengine_db_batch_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "msgengine_db_pool_connections";
pub const DB_POOL_WAIT: &str = "msgengine_db_pool_wait_seconds";
pub const HTTP_REQUESTS: &str = "msgengine_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "msgengine_http_request_duration_seconds";
pub const WEBHOOKS_RECEIVED: &str = "msgengine_webhooks_received_total";
pub const WEBHOOKS_REJECTED: &str = "msgengine_webhooks_rejected_total";
pub const WEBHOOK_EVENTS: &str = "msgengine_webhook_events_total";
pub const OUTBOUND_WEBHOOKS: &str = "msgengine_outbound_webhooks_total";
pub const WRITER_FAILING: &str = "msgengine_writer_failing";
pub const STORAGE_REJECTED: &str = "msgengine_storage_rejected_total";
pub const ACCEPT_SPILLED: &str = "msgengine_accept_spilled_total";
pub const ACTOR_RESTARTS: &str = "msgengine_actor_restarts_total";
pub const LEASES_LOST: &str = "msgengine_leases_lost_total";
pub const BUILD_INFO: &str = "msgengine_build_info";

/// Buckets of `*_duration_seconds` and `*_wait_seconds` histograms.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of the end-to-end message latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Buckets of `msgengine_db_batch_rows`.
pub const BATCH_ROWS_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];

/// Actors whose supervised restarts are counted (label `actor`).
pub const ACTORS: &[&str] = &[
    "tenant",
    "provider",
    "router",
    "committer",
    "writer",
    "scheduler",
    "outbound_webhooks",
];

/// The three channels in a fixed order, for per-channel arrays.
pub const CHANNELS: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Whatsapp];

/// Index of a channel in [`CHANNELS`].
pub fn channel_index(channel: Channel) -> usize {
    match channel {
        Channel::Email => 0,
        Channel::Sms => 1,
        Channel::Whatsapp => 2,
    }
}

/// The `provider` label: the providerType in lower snake case, Twilio told
/// apart by channel.
pub fn provider_label(channel: Channel, provider_type: &str) -> &'static str {
    // One list of adapters, each naming its own label (providers::registry).
    msgengine_providers::registry::provider_label(channel, provider_type)
}

/// The `reason` of `msgengine_messages_failed_total` for a terminal state a
/// provider reported (webhooks).
pub fn failed_reason(state: MessageState) -> Option<&'static str> {
    match state {
        MessageState::Bounced => Some("bounced"),
        MessageState::Rejected => Some("rejected"),
        MessageState::Expired => Some("expired"),
        MessageState::Failed => Some("permanent"),
        _ => None,
    }
}

/// Seconds since a message was accepted, from its (v7, time-ordered) id.
pub fn seconds_since_accept(message_id: Uuid) -> Option<f64> {
    let (secs, nanos) = message_id.get_timestamp()?.to_unix();
    let accepted = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    std::time::SystemTime::now()
        .duration_since(accepted)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// A state change a provider reported (through a webhook) counted as
/// delivered or failed. `from` is the message's state before.
pub fn record_reported_transition(
    channel: Channel,
    provider: &'static str,
    message_id: Uuid,
    from: MessageState,
    to: MessageState,
) {
    let ch = channel.as_str();
    let was_delivered = matches!(from, MessageState::Delivered | MessageState::Read);
    if matches!(to, MessageState::Delivered | MessageState::Read) && !was_delivered {
        counter!(MESSAGES_DELIVERED, "channel" => ch, "provider" => provider).increment(1);
        if let Some(secs) = seconds_since_accept(message_id) {
            histogram!(DELIVERY_LATENCY, "channel" => ch).record(secs);
        }
    } else if from != to && !from.is_terminal() {
        if let Some(reason) = failed_reason(to) {
            record_failed(channel, provider, reason, 1);
        }
    }
}

/// Counts messages that reached a failed terminal state.
pub fn record_failed(channel: Channel, provider: &'static str, reason: &'static str, n: u64) {
    counter!(MESSAGES_FAILED, "channel" => channel.as_str(), "provider" => provider, "reason" => reason)
        .increment(n);
}

/// Counts messages refused at the edge.
pub fn record_refused(channel: Channel, reason: &'static str, n: u64) {
    if n > 0 {
        counter!(MESSAGES_REFUSED, "channel" => channel.as_str(), "reason" => reason).increment(n);
    }
}

/// Counts a supervised actor restart.
pub fn record_restart(actor: &'static str) {
    counter!(ACTOR_RESTARTS, "actor" => actor).increment(1);
}

/// Counts leases this node found lost (`stage`: `outcome` or `attempt`).
pub fn record_lease_lost(stage: &'static str, n: u64) {
    counter!(LEASES_LOST, "stage" => stage).increment(n);
}

/// Registers the series that exist from the start (at zero), so rates and
/// alerts have a baseline before the first event.
pub fn register_static_series() {
    for actor in ACTORS {
        counter!(ACTOR_RESTARTS, "actor" => *actor).absolute(0);
    }
    for scope in ["tenant", "provider"] {
        counter!(RATE_LIMITED, "scope" => scope).increment(0);
    }
    for result in ["delivered", "retry", "failed"] {
        counter!(OUTBOUND_WEBHOOKS, "result" => result).increment(0);
    }
    gauge!(TENANTS_ACTIVE).increment(0.0);
    for stage in ["outcome", "attempt"] {
        counter!(LEASES_LOST, "stage" => stage).increment(0);
    }
    for writer in FAILING_WRITERS {
        gauge!(WRITER_FAILING, "writer" => *writer).increment(0.0);
    }
    for (writer, result) in STORAGE_REJECTED_SERIES {
        counter!(STORAGE_REJECTED, "writer" => *writer, "result" => *result).increment(0);
    }
    counter!(ACCEPT_SPILLED).increment(0);
}

/// Writers whose failing state is reported (`msgengine_writer_failing`).
pub const FAILING_WRITERS: &[&str] = &["status", "webhook", "outbound"];

/// The `(writer, result)` pairs of `msgengine_storage_rejected_total`.
pub const STORAGE_REJECTED_SERIES: &[(&str, &str)] = &[
    ("status", "failed"),
    ("status", "dropped"),
    ("webhook", "refused"),
    ("outbound", "dropped"),
];

/// Sets whether a shared writer is failing (waiting to try a write again).
pub fn record_writer_failing(writer: &'static str, failing: bool) {
    gauge!(WRITER_FAILING, "writer" => writer).set(if failing { 1.0 } else { 0.0 });
}

/// Counts rows the database refused for a reason tied to their data:
/// `failed` (the message ended `failed` with `storage_rejected`), `refused`
/// (a webhook answered 422), `dropped` (not even that could be written).
pub fn record_storage_rejected(writer: &'static str, result: &'static str, n: u64) {
    counter!(STORAGE_REJECTED, "writer" => writer, "result" => result).increment(n);
}

/// Counts accepted messages stored for the scheduler instead of dispatched
/// from memory (this node held `engine.max_held_jobs`).
pub fn record_spilled(n: u64) {
    if n > 0 {
        counter!(ACCEPT_SPILLED).increment(n);
    }
}

/// The kind of a metric, for [`CATALOG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the engine exports, its kind and help text (the HELP lines).
pub const CATALOG: &[(&str, Kind, &str)] = &[
    (
        MESSAGES_ACCEPTED,
        Kind::Counter,
        "Messages committed and answered 202.",
    ),
    (
        MESSAGES_REFUSED,
        Kind::Counter,
        "Messages refused at the edge, by reason.",
    ),
    (
        MESSAGES_SENT,
        Kind::Counter,
        "Messages a provider accepted.",
    ),
    (
        MESSAGES_DELIVERED,
        Kind::Counter,
        "Messages with a delivery confirmation.",
    ),
    (
        MESSAGES_FAILED,
        Kind::Counter,
        "Messages that reached a failed terminal state, by reason.",
    ),
    (
        SEND_LATENCY,
        Kind::Histogram,
        "Seconds from accept (202) to the provider's acceptance.",
    ),
    (
        DELIVERY_LATENCY,
        Kind::Histogram,
        "Seconds from accept (202) to the delivery receipt.",
    ),
    (
        RETRIES,
        Kind::Counter,
        "Failed attempts that will be tried again.",
    ),
    (
        FAILOVERS,
        Kind::Counter,
        "Messages moved off a provider to the next of their chain.",
    ),
    (
        PROVIDER_REQUEST_DURATION,
        Kind::Histogram,
        "Seconds of one provider send call, by outcome.",
    ),
    (
        PROVIDER_ERRORS,
        Kind::Counter,
        "Failed provider calls by error class.",
    ),
    (
        BREAKER_STATE,
        Kind::Gauge,
        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ),
    (
        BREAKER_TRANSITIONS,
        Kind::Counter,
        "Circuit breaker transitions, by target state.",
    ),
    (
        BREAKER_OPEN_SECONDS,
        Kind::Gauge,
        "Seconds the breaker has been open (0 when not open).",
    ),
    (
        PROVIDER_SUCCESS_RATIO,
        Kind::Gauge,
        "Rolling success ratio of a provider connection.",
    ),
    (
        PROVIDER_LATENCY_EWMA,
        Kind::Gauge,
        "Latency EWMA of a provider connection, in seconds.",
    ),
    (
        PROVIDER_IN_FLIGHT,
        Kind::Gauge,
        "Sends under way on a provider connection.",
    ),
    (
        RATE_LIMITED,
        Kind::Counter,
        "429s to clients (tenant) and sends held by a provider limiter (provider).",
    ),
    (
        TENANT_ACCEPTED,
        Kind::Counter,
        "Accepted messages per organization (bounded label).",
    ),
    (
        TENANT_RATE_LIMITED,
        Kind::Counter,
        "429s per organization (bounded label).",
    ),
    (TENANTS_ACTIVE, Kind::Gauge, "Tenant actors running."),
    (QUEUE_DEPTH, Kind::Gauge, "Messages in an unfinished state."),
    (
        QUEUE_OLDEST_AGE,
        Kind::Gauge,
        "Age in seconds of the oldest message in that state.",
    ),
    (DB_BATCH_ROWS, Kind::Histogram, "Rows per batched write."),
    (
        DB_BATCH_DURATION,
        Kind::Histogram,
        "Seconds of one batched write, begin to commit.",
    ),
    (
        DB_POOL_CONNECTIONS,
        Kind::Gauge,
        "Database pool connections by state.",
    ),
    (
        DB_POOL_WAIT,
        Kind::Histogram,
        "Seconds to get a connection from the pool.",
    ),
    (HTTP_REQUESTS, Kind::Counter, "HTTP requests answered."),
    (
        HTTP_REQUEST_DURATION,
        Kind::Histogram,
        "Seconds from request in to response out.",
    ),
    (
        WEBHOOKS_RECEIVED,
        Kind::Counter,
        "Inbound provider webhooks accepted.",
    ),
    (
        WEBHOOKS_REJECTED,
        Kind::Counter,
        "Inbound provider webhooks refused, by reason.",
    ),
    (
        WEBHOOK_EVENTS,
        Kind::Counter,
        "Events in accepted webhooks, by result.",
    ),
    (
        OUTBOUND_WEBHOOKS,
        Kind::Counter,
        "Deliveries to organizations' webhook endpoints, by result.",
    ),
    (
        WRITER_FAILING,
        Kind::Gauge,
        "1 while a shared writer cannot write and waits to try again, else 0.",
    ),
    (
        ACCEPT_SPILLED,
        Kind::Counter,
        "Accepted messages stored for the scheduler instead of dispatched from memory: the node held all it may (engine.max_held_jobs).",
    ),
    (
        STORAGE_REJECTED,
        Kind::Counter,
        "Rows the database refused for a reason tied to their data, by writer and result.",
    ),
    (ACTOR_RESTARTS, Kind::Counter, "Supervised actor restarts."),
    (
        LEASES_LOST,
        Kind::Counter,
        "Work dropped because this node no longer held its lease, by stage.",
    ),
    (
        BUILD_INFO,
        Kind::Gauge,
        "Always 1; the version label names the build.",
    ),
];

/// Gives every metric of [`CATALOG`] its help text.
pub fn describe() {
    for (name, kind, help) in CATALOG {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, *help),
        }
    }
}

/// Counts a batched database write.
pub fn record_batch(writer: &'static str, rows: usize, elapsed: std::time::Duration) {
    histogram!(DB_BATCH_ROWS, "writer" => writer).record(rows as f64);
    histogram!(DB_BATCH_DURATION, "writer" => writer).record(elapsed.as_secs_f64());
}

/// Records how long getting a pooled connection took.
pub fn record_pool_wait(elapsed: std::time::Duration) {
    histogram!(DB_POOL_WAIT).record(elapsed.as_secs_f64());
}

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
        for c in metrics.transitions.iter() {
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
        metrics
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

    /// A message moved off this provider to the next one of its chain.
    pub fn failover(&self) {
        self.failovers.increment(1);
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

/// A map that gives at most `limit` keys a value of their own; the rest share
/// the overflow value. Pure (no metrics), so the bound is unit-tested.
pub struct BoundedLabels<K, V> {
    limit: usize,
    named: RwLock<HashMap<K, V>>,
    overflow: V,
}

impl<K: Hash + Eq + Copy, V: Clone> BoundedLabels<K, V> {
    pub fn new(limit: usize, overflow: V) -> Self {
        Self {
            limit,
            named: RwLock::new(HashMap::new()),
            overflow,
        }
    }

    /// The value of `key`: its own (made by `make` the first time, while
    /// fewer than `limit` keys have one), else the overflow value.
    pub fn get(&self, key: K, make: impl FnOnce(K) -> V) -> V {
        {
            let named = match self.named.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(v) = named.get(&key) {
                return v.clone();
            }
            if named.len() >= self.limit {
                return self.overflow.clone();
            }
        }
        let mut named = match self.named.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(v) = named.get(&key) {
            return v.clone();
        }
        if named.len() >= self.limit {
            return self.overflow.clone();
        }
        let v = make(key);
        named.insert(key, v.clone());
        v
    }
}

/// One organization's handles.
#[derive(Clone)]
pub struct TenantHandles {
    /// Accepted messages, per channel ([`CHANNELS`] order).
    pub accepted: [Counter; 3],
    pub rate_limited: Counter,
}

impl TenantHandles {
    fn new(org: &str) -> Self {
        let org = org.to_owned();
        Self {
            accepted: CHANNELS
                .map(|c| counter!(TENANT_ACCEPTED, "org" => org.clone(), "channel" => c.as_str())),
            rate_limited: counter!(TENANT_RATE_LIMITED, "org" => org),
        }
    }
}

/// The `msgengine_tenant_*` series: the first `limit` organizations get their
/// own `org` label value, the rest count under `org="other"`.
pub struct TenantSeries {
    labels: BoundedLabels<OrganizationId, TenantHandles>,
}

impl TenantSeries {
    pub fn new(limit: usize) -> Self {
        Self {
            labels: BoundedLabels::new(limit, TenantHandles::new("other")),
        }
    }

    /// The organization's handles.
    pub fn of(&self, org: OrganizationId) -> TenantHandles {
        self.labels
            .get(org, |org| TenantHandles::new(&org.0.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_keys_up_to_the_limit_get_their_own_value() {
        let labels = BoundedLabels::new(2, "other".to_owned());
        let make = |k: u32| format!("org-{k}");
        assert_eq!(labels.get(1, make), "org-1");
        assert_eq!(labels.get(2, make), "org-2");
        assert_eq!(labels.get(3, make), "other");
        // Keys seen before keep theirs once the map is full.
        assert_eq!(labels.get(1, make), "org-1");
        assert_eq!(labels.get(4, make), "other");
    }

    #[test]
    fn a_zero_limit_puts_everyone_under_other() {
        let labels = BoundedLabels::new(0, "other");
        assert_eq!(labels.get(7u8, |_| "seven"), "other");
    }

    #[test]
    fn provider_labels_are_lower_snake_case_and_twilio_is_told_apart_by_channel() {
        assert_eq!(provider_label(Channel::Sms, "TWILIO"), "twilio_sms");
        assert_eq!(
            provider_label(Channel::Whatsapp, "TWILIO"),
            "twilio_whatsapp"
        );
        assert_eq!(
            provider_label(Channel::Whatsapp, "META_CLOUD"),
            "meta_cloud"
        );
        assert_eq!(provider_label(Channel::Email, "SANDBOX"), "sandbox");
        assert_eq!(provider_label(Channel::Email, "SOMETHING_NEW"), "other");
    }

    #[test]
    fn the_accept_time_comes_from_the_v7_id() {
        let secs = seconds_since_accept(Uuid::now_v7()).expect("v7 has a timestamp");
        assert!((0.0..5.0).contains(&secs));
        assert_eq!(seconds_since_accept(Uuid::new_v4()), None);
    }

    #[test]
    fn terminal_states_map_to_failure_reasons() {
        assert_eq!(failed_reason(MessageState::Bounced), Some("bounced"));
        assert_eq!(failed_reason(MessageState::Failed), Some("permanent"));
        assert_eq!(failed_reason(MessageState::Delivered), None);
    }
}

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

pub mod catalog;
pub mod connections;
mod provider;
mod tenant;

pub use catalog::{describe, Kind, CATALOG};
pub use provider::ProviderMetrics;
pub use tenant::{BoundedLabels, TenantHandles, TenantSeries};

use metrics::{counter, gauge, histogram, Counter};
use msgengine_domain::message::MessageState;
use msgengine_domain::routing::Strategy;
use msgengine_domain::Channel;
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
pub const PROVIDER_DELIVERY_RATIO: &str = "msgengine_provider_delivery_ratio";
pub const ROUTING_DECISIONS: &str = "msgengine_routing_decisions_total";
pub const ROUTING_FALLBACKS: &str = "msgengine_routing_fallbacks_total";
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

/// Counts a planned message: the strategy that ordered it and whether a
/// rule (`by_rule`) or the channel's default decided. The 24 handles are
/// made once: this runs for every accepted message.
pub fn record_decision(channel: Channel, strategy: Strategy, by_rule: bool) {
    use std::sync::LazyLock;
    const STRATEGIES: [Strategy; 4] = [
        Strategy::Cheapest,
        Strategy::Priority,
        Strategy::BestDelivery,
        Strategy::Weighted,
    ];
    static HANDLES: LazyLock<Vec<Counter>> = LazyLock::new(|| {
        let mut all = Vec::with_capacity(24);
        for channel in CHANNELS {
            for strategy in STRATEGIES {
                for decided_by in ["default", "rule"] {
                    all.push(counter!(ROUTING_DECISIONS, "channel" => channel.as_str(),
                        "strategy" => strategy.as_str(), "decided_by" => decided_by));
                }
            }
        }
        all
    });
    let s = STRATEGIES.iter().position(|x| *x == strategy).unwrap_or(0);
    let i = (channel_index(channel) * 4 + s) * 2 + usize::from(by_rule);
    if let Some(c) = HANDLES.get(i) {
        c.increment(1);
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

/// Counts a batched database write.
pub fn record_batch(writer: &'static str, rows: usize, elapsed: std::time::Duration) {
    histogram!(DB_BATCH_ROWS, "writer" => writer).record(rows as f64);
    histogram!(DB_BATCH_DURATION, "writer" => writer).record(elapsed.as_secs_f64());
}

/// Records how long getting a pooled connection took.
pub fn record_pool_wait(elapsed: std::time::Duration) {
    histogram!(DB_POOL_WAIT).record(elapsed.as_secs_f64());
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

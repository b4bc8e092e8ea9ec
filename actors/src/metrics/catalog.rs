//! Every metric's kind and help text (the HELP lines): a table.

use super::*;

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
        PROVIDER_DELIVERY_RATIO,
        Kind::Gauge,
        "Delivered over final receipts of a provider connection, decaying with a 5-minute half-life (1 with none).",
    ),
    (
        ROUTING_DECISIONS,
        Kind::Counter,
        "Messages planned, by the strategy that ordered them and whether a rule or the default decided.",
    ),
    (
        ROUTING_FALLBACKS,
        Kind::Counter,
        "Messages moved off a provider to the next of their plan, by reason.",
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

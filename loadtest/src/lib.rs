//! msgengine's load-test harness (`msgengine-load`).
//!
//! It talks to a running engine over HTTP only, on loopback only
//! ([`target`]), and has two modes sharing one completion check and report:
//!
//! - `run`: the open model ([`open_loop`], [`schedule`]). Requests are
//!   issued on a fixed schedule whether or not earlier ones returned, and
//!   accept latency counts from each request's intended send time, so
//!   coordinated omission cannot hide latency.
//! - `send-many`: a closed loop ([`closed_loop`]) that sends N messages as
//!   fast as the engine allows, honouring 429 `Retry-After` and retrying
//!   transport errors and 5xx under a stable `Idempotency-Key` per batch.
//!
//! Either mode can set up its own tenant ([`setup`]: organization, API key,
//! admission rate, SANDBOX provider), measures the load phase ([`stats`]:
//! HDR latency histogram, errors by kind, per-second series, printed by
//! [`progress`]), then polls every accepted message until it is terminal
//! ([`completion`]) and writes the verdict and numbers ([`report`]).
//!
//! Built to stay out of the way of the engine it measures on the same small
//! machine: one HTTP/1.1 keep-alive client with a large pool ([`http`]),
//! request bodies written straight into bytes ([`payload`]), one tokio
//! worker thread by default.
//!
//! [`sim`] is the provider simulator behind the second binary,
//! `msgengine-sim`: providers' send APIs on loopback (Twilio, Meta Cloud
//! API, Mailgun), their signed status webhooks posted back to the engine,
//! and per-recipient / per-idempotency-key counts for exactly-once checks.

pub mod cli;
pub mod closed_loop;
pub mod completion;
pub mod http;
pub mod open_loop;
pub mod payload;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod setup;
pub mod sim;
pub mod stats;
pub mod target;

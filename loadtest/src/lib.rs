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
//! - `scenario FILE` / `ramp FILE` ([`scenario`]): a TOML scenario
//!   (loadtest/scenarios/) end to end with one command: the simulator
//!   started in-process, organizations and providers set up, the open-model
//!   load with a traffic mix (or rate steps up to the knee), end-to-end
//!   latency from the simulator's receipts ([`receipts`]), and a report
//!   directory with SVG charts ([`plot`]).
//!
//! [`sim`] is the provider simulator behind the second binary,
//! `msgengine-sim`: providers' send APIs on loopback (Twilio, Meta Cloud
//! API, Mailgun, SendGrid, Mailjet, an SMTP listener, Africa's Talking,
//! Termii, Gupshup, AiSensy, Interakt), their status webhooks (signed as
//! each provider signs) posted back to the engine,
//! and per-recipient / per-idempotency-key counts for exactly-once checks.

pub mod cli;
pub mod closed_loop;
pub mod completion;
pub mod http;
pub mod open_loop;
pub mod payload;
pub mod plot;
pub mod progress;
pub mod receipts;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod setup;
pub mod sim;
pub mod stats;
pub mod target;

/// Raises the process's soft limit on open files to its hard limit: a load
/// run holds thousands of connections, and a soft limit of 1,024 is common.
pub fn raise_open_files_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open files limit: {e}");
    }
}

//! One attempt: the adapter call (a panic caught), its result recorded in
//! the breaker, health and metrics, and the provider text made safe.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use futures::FutureExt;
use msgengine_domain::lifecycle::{Call, Outcome};
use msgengine_domain::message::MessageState;
use msgengine_domain::resilience::breaker::BreakerState;
use msgengine_domain::resilience::retry::ErrorClass;
use msgengine_domain::MessageId;
use msgengine_providers::{FailureKind, ProviderError, SendReceipt};

use super::ProviderActor;
use crate::state::job::Job;

impl ProviderActor {
    pub(super) fn start_attempt(&mut self, job: Job, ctx: &mut Context<Self>) {
        let id = job.message.id;
        let key_in_flight = (id, job.lease.token);
        let message = job.message.clone();
        let key = job.idempotency_key();
        let sender = self.sender.clone();
        let panic_now = std::mem::take(&mut self.panic_next);
        self.in_flight.insert(key_in_flight, job);
        let started_at = Utc::now();
        let t0 = Instant::now();
        let call = async move {
            if panic_now {
                panic!("injected adapter panic (test hook)");
            }
            sender.send(&message, &key).await
        };
        ctx.spawn(
            AssertUnwindSafe(call)
                .catch_unwind()
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(outcome) => {
                        act.finish(key_in_flight, started_at, t0.elapsed(), outcome, ctx)
                    }
                    Err(_) => {
                        tracing::error!(provider = %act.id, message = %id, "adapter panicked; restarting the provider actor");
                        ctx.stop();
                    }
                }),
        );
    }

    pub(super) fn finish(
        &mut self,
        key: (MessageId, i64),
        started_at: chrono::DateTime<Utc>,
        latency: Duration,
        result: Result<SendReceipt, ProviderError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(mut job) = self.in_flight.remove(&key) else {
            return;
        };
        let id = key.0;
        let now = Instant::now();
        match clean_result(result) {
            Ok(receipt) => {
                self.breaker.record_success(now);
                self.health.record(true, latency);
                self.metrics.call(None, latency);
                let delivered = receipt.state == MessageState::Delivered;
                self.metrics.sent(id.0, delivered);
                if delivered {
                    // A synchronous delivery is its own receipt.
                    self.live.record_receipt(true, now);
                }
                let call = Call {
                    provider: self.id,
                    number: job.total_attempts + 1,
                    started_at,
                    finished_at: Utc::now(),
                };
                let outcome = Outcome::sent(call, receipt.state, receipt.provider_message_id);
                self.env.outcomes.submit(job.outcome(outcome));
            }
            Err(error) => {
                let class = error_class(error.kind);
                match class {
                    c if c.trips_breaker() => self.breaker.record_failure(now),
                    // The provider answered: it is up, whatever it thought of the message.
                    ErrorClass::Permanent => self.breaker.record_success(now),
                    _ => self.breaker.record_neutral(now),
                }
                self.health.record(false, latency);
                self.health.record_error(error.message.clone());
                self.metrics.call(Some(class), latency);
                self.on_failure(&mut job, started_at, &error, class, ctx);
            }
        }
        let breaker = self.observe_breaker(now);
        self.live.set_circuit_open(breaker == BreakerState::Open);
        self.live
            .set_latency(self.health.latency_ewma().as_secs_f64());
        self.metrics.health(
            self.health.success_rate(),
            self.health.latency_ewma(),
            self.in_flight.len(),
        );
        self.pump(ctx);
        self.stop_if_idle(ctx);
    }

    /// Reports the breaker's state to the gauges, counting a change, and
    /// returns it.
    pub(super) fn observe_breaker(&mut self, now: Instant) -> BreakerState {
        let state = self.breaker.state(now);
        let changed = state != self.breaker_seen;
        self.breaker_seen = state;
        let open_secs = if state == BreakerState::Open {
            now.duration_since(*self.open_since.get_or_insert(now))
                .as_secs_f64()
        } else {
            self.open_since = None;
            0.0
        };
        self.metrics.breaker(state, changed, open_secs);
        state
    }
}

/// Most characters kept of a provider's error text (attempts, events, health).
const MAX_PROVIDER_TEXT_CHARS: usize = 500;

/// Most characters kept of a provider's message id.
const MAX_PROVIDER_ID_CHARS: usize = 256;

/// The adapter's answer with its provider-given text made safe to store and
/// show (no control characters, NUL included; capped): this is the one
/// place provider text enters attempts, events and health.
fn clean_result(result: Result<SendReceipt, ProviderError>) -> Result<SendReceipt, ProviderError> {
    use msgengine_domain::text::{clean_untrusted, clean_untrusted_opt};
    match result {
        Ok(mut receipt) => {
            receipt.provider_message_id =
                clean_untrusted(&receipt.provider_message_id, MAX_PROVIDER_ID_CHARS);
            Ok(receipt)
        }
        Err(mut error) => {
            error.message = clean_untrusted(&error.message, MAX_PROVIDER_TEXT_CHARS);
            error.code = clean_untrusted_opt(error.code, MAX_PROVIDER_ID_CHARS);
            Err(error)
        }
    }
}

fn error_class(kind: FailureKind) -> ErrorClass {
    match kind {
        FailureKind::Transient => ErrorClass::Transient,
        FailureKind::Timeout => ErrorClass::Timeout,
        FailureKind::RateLimited => ErrorClass::RateLimited,
        FailureKind::Permanent => ErrorClass::Permanent,
    }
}

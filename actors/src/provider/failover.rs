//! After a failed attempt or with the circuit open: retry here (in memory or
//! through the database), fail over along the chain, or fail.

use actix::prelude::*;
use chrono::Utc;
use msgengine_domain::lifecycle::{Call, Next, Outcome};
use msgengine_domain::message::{Attempt, AttemptOutcome};
use msgengine_domain::resilience::retry::{ErrorClass, RetryDecision};
use msgengine_domain::ProviderId;
use msgengine_providers::{FailureKind, ProviderError};

use super::ProviderActor;
use crate::state::job::Job;

impl ProviderActor {
    pub(super) fn on_failure(
        &mut self,
        job: &mut Job,
        started_at: chrono::DateTime<Utc>,
        error: &ProviderError,
        class: ErrorClass,
        ctx: &mut Context<Self>,
    ) {
        job.attempts_on_provider += 1;
        job.total_attempts += 1;
        let decision = self.env.settings.retry.next_step(
            job.attempts_on_provider,
            job.total_attempts,
            class,
            error.retry_after,
            rand::random::<f64>(),
        );
        let attempt = failed_attempt(job, self.id, started_at, error);
        let now = Utc::now();
        match decision {
            // A retiring actor keeps nothing: its retries go through the database.
            RetryDecision::RetrySameProvider { after }
                if after <= self.env.settings.in_memory_retry_max && !self.retiring =>
            {
                self.metrics.retry(class);
                let outcome = Outcome::retry(attempt, Next::InMemory, now);
                self.env.outcomes.submit(job.outcome(outcome));
                self.retry_later(job.clone(), after, ctx);
            }
            RetryDecision::RetrySameProvider { after } => {
                self.metrics.retry(class);
                let at = now + chrono::Duration::from_std(after).unwrap_or_default();
                let outcome = Outcome::retry(attempt, Next::DueAt(at), now);
                self.env.outcomes.submit(job.outcome(outcome));
            }
            RetryDecision::FailOver if job.fail_over() => {
                self.metrics.retry(class);
                self.metrics.failover(Some(class));
                self.env
                    .outcomes
                    .submit(job.outcome(Outcome::fail_over(attempt, now)));
                self.env.reroute.deliver(vec![job.clone()]);
            }
            RetryDecision::FailOver | RetryDecision::Fail => {
                self.metrics.failed(class);
                let outcome = Outcome::failed(attempt, &error.message, now);
                self.env.outcomes.submit(job.outcome(outcome));
            }
        }
    }

    /// Circuit open: fail over without an attempt; with no next provider,
    /// leave the message to the scheduler until the circuit may close.
    pub(super) fn on_circuit_open(&mut self, mut job: Job, _: &mut Context<Self>) {
        let now = Utc::now();
        self.metrics.circuit_open();
        if job.fail_over() {
            self.metrics.failover(None);
            let outcome = Outcome::circuit_open(self.id, Next::InMemory, now);
            self.env.outcomes.submit(job.outcome(outcome));
            self.env.reroute.deliver(vec![job]);
        } else {
            let at = now
                + chrono::Duration::from_std(self.env.settings.breaker.open_for)
                    .unwrap_or_default();
            let outcome = Outcome::circuit_open(self.id, Next::DueAt(at), now);
            self.env.outcomes.submit(job.outcome(outcome));
        }
    }
}

fn attempt_outcome(kind: FailureKind) -> AttemptOutcome {
    match kind {
        FailureKind::Transient => AttemptOutcome::TransientError,
        FailureKind::Timeout => AttemptOutcome::Timeout,
        FailureKind::RateLimited => AttemptOutcome::RateLimited,
        FailureKind::Permanent => AttemptOutcome::PermanentError,
    }
}

/// The attempt record of a failed call (the job's attempts already count it).
fn failed_attempt(
    job: &Job,
    provider: ProviderId,
    started_at: chrono::DateTime<Utc>,
    error: &ProviderError,
) -> Attempt {
    let call = Call {
        provider,
        number: job.total_attempts,
        started_at,
        finished_at: Utc::now(),
    };
    call.failed(
        attempt_outcome(error.kind),
        error.message.clone(),
        error.kind_str().to_owned(),
    )
}

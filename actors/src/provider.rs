//! ProviderActor: one per active provider connection.
//!
//! Holds the connection's sender (adapter), its rate limiter (the provider's
//! allowed rate), a concurrency cap, a circuit breaker and health statistics.
//! Jobs wait in the actor's queue until the limiter and the cap allow them
//! (a rate-limit refusal defers, never drops). Each finished attempt becomes
//! one outcome for the status writer; transient failures retry with backoff
//! (short waits in memory, long ones through the database), then fail over
//! along the job's chain; an open circuit fails over without an attempt.
//!
//! A panic inside an adapter call is caught, the job is requeued and the
//! actor stops; its supervisor restarts it and `restarting` rebuilds the
//! sender and breaker from the spec, keeping the queue (the struct survives
//! a restart; only the context is new).
//!
//! Jobs held in memory are never lost with the actor: short retries wait in
//! `delayed` (actor state, driven by one timer that `started` re-arms after a
//! restart), not in context timers; a retired actor hands every queued and
//! delayed job back to dispatch; a disabled organization's jobs go back to
//! the database ([`HandBack`]). The queue is bounded
//! ([`crate::EngineConfig::provider_queue_cap`]): past it, jobs are deferred
//! to the database instead of growing memory. An attempt starts only under a
//! lease this node still holds with time to spare
//! ([`crate::lease::HeldLeases::is_usable`]) and for an active organization.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use futures::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use msgengine_domain::lifecycle::{Call, Next, Outcome};
use msgengine_domain::message::{Attempt, AttemptOutcome, MessageState};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::resilience::backoff::{ErrorClass, RetryDecision};
use msgengine_domain::resilience::breaker::{BreakerState, CircuitBreaker};
use msgengine_domain::resilience::health::HealthStats;
use msgengine_domain::{MessageId, OrganizationId, ProviderId};
use msgengine_providers::{
    sender_for_connection, FailureKind, ProviderError, SendReceipt, Sender, SenderContext,
    UnsupportedProvider,
};

use crate::config::EngineConfig;
use crate::handles::{Outcomes, Reroute};
use crate::job::Job;
use crate::lease::{HeldLeases, LostAt};
use crate::metrics::ProviderMetrics;
use crate::orgs::ActiveOrgs;

/// Hand jobs to the provider.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Vec<Job>);

/// The provider's configuration changed (takes effect for the next attempts).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub spec: AnyProviderSpec,
}

/// The provider was deleted or deactivated: re-route queued jobs and stop
/// once in-flight attempts finish.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// The organization was disabled: give every job not yet in flight back to
/// the database (the scheduler leaves them until it is enabled).
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandBack;

/// How many jobs the actor holds (queued, waiting to retry and in flight).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Load;

/// Test hook: make the next adapter call panic (supervision tests).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PanicOnNextSend;

/// A running provider connection as the dispatcher sees it.
#[derive(Clone)]
pub struct ProviderHandle {
    pub addr: Addr<ProviderActor>,
    pub organization_id: OrganizationId,
    /// Set by the provider actor while its circuit is open.
    pub circuit_open: Arc<AtomicBool>,
}

/// What a provider actor is given: its settings, the HTTP client, its
/// outcome writer, the leases and organization flags it checks before an
/// attempt, and a way to hand jobs on. Not the engine.
#[derive(Clone)]
pub struct ProviderEnv {
    pub settings: Arc<EngineConfig>,
    /// The client every provider call goes through, enforcing
    /// [`EngineConfig::provider_addresses`].
    pub http: msgengine_providers::ProviderClient,
    pub outcomes: Outcomes,
    pub leases: Arc<HeldLeases>,
    pub orgs: ActiveOrgs,
    pub reroute: Arc<dyn Reroute>,
}

/// What this connection's sender needs beyond its spec: the status-callback
/// URL when the engine knows its public URL.
fn context(settings: &EngineConfig, id: ProviderId, spec: &AnyProviderSpec) -> SenderContext {
    let status_callback = settings.public_url.as_deref().and_then(|base| {
        url::Url::parse(&format!(
            "{}/api/webhooks/{}/{}",
            base.trim_end_matches('/'),
            spec.channel().as_str(),
            id.0
        ))
        .ok()
    });
    SenderContext { status_callback }
}

/// Starts a provider's actor, supervised, on one of the engine's arbiters.
pub fn start(
    env: ProviderEnv,
    arbiter: &ArbiterHandle,
    org: OrganizationId,
    id: ProviderId,
    spec: AnyProviderSpec,
) -> Result<ProviderHandle, UnsupportedProvider> {
    let sender = sender_for_connection(&spec, &env.http, &context(&env.settings, id, &spec))?;
    let circuit_open = Arc::new(AtomicBool::new(false));
    let flag = circuit_open.clone();
    let addr = Supervisor::start_in_arbiter(arbiter, move |_| ProviderActor {
        metrics: ProviderMetrics::new(spec.channel(), spec.provider_type(), id.0),
        breaker_seen: BreakerState::Closed,
        open_since: None,
        limiter: limiter_for(&env.settings, &spec),
        breaker: CircuitBreaker::new(env.settings.breaker),
        env,
        id,
        spec,
        sender,
        in_flight: HashMap::new(),
        queue: VecDeque::new(),
        delayed: Vec::new(),
        retry_timer: None,
        health: HealthStats::default(),
        circuit_open: flag,
        pump_scheduled: false,
        retiring: false,
        panic_next: false,
    });
    Ok(ProviderHandle {
        addr,
        organization_id: org,
        circuit_open,
    })
}

fn limiter_for(
    settings: &EngineConfig,
    _spec: &AnyProviderSpec,
) -> Option<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(settings.provider_rate_per_second)?;
    Some(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(rate),
    ))
}

pub struct ProviderActor {
    env: ProviderEnv,
    id: ProviderId,
    spec: AnyProviderSpec,
    sender: Arc<dyn Sender>,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Attempts under way, by message and lease token: a message claimed
    /// again while this node's stale attempt is still out is another job.
    in_flight: HashMap<(MessageId, i64), Job>,
    queue: VecDeque<Job>,
    /// Jobs waiting for a short retry, with the time they are due.
    delayed: Vec<(Instant, Job)>,
    /// When the earliest armed retry timer fires (it moves due retries to
    /// the queue). Timers are never cancelled: one that fires with nothing
    /// due does nothing (actix can spin on a cancelled handle while the
    /// context stops).
    retry_timer: Option<Instant>,
    breaker: CircuitBreaker,
    health: HealthStats,
    circuit_open: Arc<AtomicBool>,
    pump_scheduled: bool,
    retiring: bool,
    panic_next: bool,
    metrics: ProviderMetrics,
    /// The breaker state last reported, to count transitions.
    breaker_seen: BreakerState,
    /// When the breaker opened (for `msgengine_circuit_breaker_open_seconds`).
    open_since: Option<Instant>,
}

/// How often the breaker and health gauges are refreshed without traffic
/// (an open breaker's age grows, it turns half-open by time alone).
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

impl Actor for ProviderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.env.settings.provider_mailbox);
        ctx.run_interval(GAUGE_REFRESH, |act, _| {
            act.observe_breaker(Instant::now());
        });
        // After a restart the old context's timer is gone: arm a new one.
        self.arm_retry_timer(ctx);
        self.pump(ctx);
    }
}

impl Supervised for ProviderActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(provider = %self.id, "provider actor restarting");
        crate::metrics::record_restart("provider");
        // Attempts in flight died with the old context: run them again.
        let lost: Vec<Job> = self.in_flight.drain().map(|(_, job)| job).collect();
        for job in lost.into_iter().rev() {
            self.queue.push_front(job);
        }
        if let Ok(sender) = sender_for_connection(
            &self.spec,
            &self.env.http,
            &context(&self.env.settings, self.id, &self.spec),
        ) {
            self.sender = sender;
        }
        self.breaker = CircuitBreaker::new(self.env.settings.breaker);
        self.circuit_open.store(false, Ordering::Relaxed);
        self.pump_scheduled = false;
        self.retry_timer = None;
        self.panic_next = false;
        self.observe_breaker(Instant::now());
    }
}

impl Handler<Deliver> for ProviderActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let mut jobs = msg.0;
        if self.retiring {
            // Sent before the route table dropped this provider.
            actix::spawn(self.env.reroute.clone().reroute(jobs));
            return;
        }
        let held = self.queue.len() + self.delayed.len();
        let room = self.env.settings.provider_queue_cap.saturating_sub(held);
        if jobs.len() > room {
            let overflow = jobs.split_off(room);
            let at = Utc::now() + self.drain_estimate(held);
            for job in &overflow {
                // No event: a long backlog would add one to every waiting
                // message each time round.
                self.env.outcomes.submit(job.outcome(Outcome::requeue(at)));
            }
        }
        self.queue.extend(jobs);
        self.pump(ctx);
    }
}

impl Handler<Reconfigure> for ProviderActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        match sender_for_connection(
            &msg.spec,
            &self.env.http,
            &context(&self.env.settings, self.id, &msg.spec),
        ) {
            Ok(sender) => {
                self.sender = sender;
                self.limiter = limiter_for(&self.env.settings, &msg.spec);
                self.spec = msg.spec;
            }
            Err(e) => {
                tracing::warn!(provider = %self.id, error = %e, "new configuration cannot send; keeping the old one")
            }
        }
        self.pump(ctx);
    }
}

impl Handler<Retire> for ProviderActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.retiring = true;
        let held = self.take_waiting();
        // Not on the actor's context: the actor may stop right below, and
        // its context's futures with it.
        actix::spawn(self.env.reroute.clone().reroute(held));
        self.stop_if_idle(ctx);
    }
}

impl Handler<HandBack> for ProviderActor {
    type Result = ();

    fn handle(&mut self, _: HandBack, ctx: &mut Self::Context) {
        for job in self.take_waiting() {
            self.env.outcomes.hand_back(&job, "organization disabled");
        }
        self.stop_if_idle(ctx);
    }
}

impl Handler<Load> for ProviderActor {
    type Result = usize;

    fn handle(&mut self, _: Load, _: &mut Self::Context) -> usize {
        self.queue.len() + self.delayed.len() + self.in_flight.len()
    }
}

impl Handler<PanicOnNextSend> for ProviderActor {
    type Result = ();

    fn handle(&mut self, _: PanicOnNextSend, _: &mut Self::Context) {
        self.panic_next = true;
    }
}

impl ProviderActor {
    /// Starts as many queued attempts as the breaker, limiter and cap allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight.len() < self.env.settings.provider_concurrency
            && !self.queue.is_empty()
        {
            if !self.front_is_startable() {
                continue;
            }
            // The limiter first: a permit spent on a job that then fails over
            // costs nothing, while a half-open probe must not be taken and
            // then left unused.
            if let Some(limiter) = &self.limiter {
                if let Err(not_until) = limiter.check() {
                    let clock = governor::clock::DefaultClock::default();
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
                    if !self.pump_scheduled {
                        self.metrics.rate_limited();
                    }
                    self.schedule_pump(wait, ctx);
                    return;
                }
            }
            let now = Instant::now();
            let acquired = self.breaker.try_acquire(now);
            self.observe_breaker(now);
            if !acquired {
                self.circuit_open.store(true, Ordering::Relaxed);
                let jobs: Vec<Job> = self.queue.drain(..).collect();
                for job in jobs {
                    self.on_circuit_open(job, ctx);
                }
                return;
            }
            if let Some(job) = self.queue.pop_front() {
                self.start_attempt(job, ctx);
            }
        }
        self.metrics.in_flight(self.in_flight.len());
    }

    /// Reports the breaker's state to the gauges, counting a change, and
    /// returns it.
    fn observe_breaker(&mut self, now: Instant) -> BreakerState {
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

    /// Roughly how long this actor needs to work through `held` jobs (its
    /// rate, or its concurrency per second when it has none), between 1 and
    /// 30 s: when deferred jobs are worth claiming again.
    fn drain_estimate(&self, held: usize) -> chrono::Duration {
        let per_second = match self.env.settings.provider_rate_per_second {
            0 => self.env.settings.provider_concurrency.max(1),
            rate => rate as usize,
        };
        let secs = (held / per_second).clamp(1, 30);
        chrono::Duration::seconds(secs as i64)
    }

    /// Whether the first queued job may be attempted now; if not, it is
    /// taken off the queue: dropped when this node's lease on it is lost or
    /// about to end (the database gives it to the next claim), handed back
    /// when its organization is disabled.
    fn front_is_startable(&mut self) -> bool {
        let Some(job) = self.queue.front() else {
            return false;
        };
        let (id, token) = (job.message.id.0, job.lease.token);
        let leased = self.env.leases.is_usable(id, token);
        let active = self.env.orgs.is_active(job.message.organization_id);
        if leased && active {
            return true;
        }
        let Some(job) = self.queue.pop_front() else {
            return false;
        };
        if !leased {
            tracing::debug!(provider = %self.id, message = %job.message.id,
                "lease lost or about to end; the job is left to the next claim");
            self.env.leases.forget(id, token);
            self.env.leases.record_lost(LostAt::Attempt, 1);
        } else {
            self.env.outcomes.hand_back(&job, "organization disabled");
        }
        false
    }

    /// Takes every job not in flight (queued and waiting to retry).
    fn take_waiting(&mut self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.queue.drain(..).collect();
        jobs.extend(self.delayed.drain(..).map(|(_, job)| job));
        jobs
    }

    /// Keeps `job` in memory until `after` has passed, then queues it again.
    fn retry_later(&mut self, job: Job, after: Duration, ctx: &mut Context<Self>) {
        self.delayed.push((Instant::now() + after, job));
        self.arm_retry_timer(ctx);
    }

    /// Makes sure a timer fires when the earliest delayed job is due.
    fn arm_retry_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.delayed.iter().map(|(at, _)| *at).min() else {
            return;
        };
        if self.retry_timer.is_some_and(|at| at <= due) {
            return;
        }
        let wait = due.saturating_duration_since(Instant::now());
        ctx.run_later(wait, move |act, ctx| {
            if act.retry_timer == Some(due) {
                act.retry_timer = None;
            }
            act.release_due_retries(ctx);
        });
        self.retry_timer = Some(due);
    }

    /// Queues the delayed jobs that are due, in due order.
    fn release_due_retries(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let (mut due, later): (Vec<_>, Vec<_>) =
            self.delayed.drain(..).partition(|(at, _)| *at <= now);
        self.delayed = later;
        due.sort_by_key(|(at, _)| *at);
        self.queue.extend(due.into_iter().map(|(_, job)| job));
        self.arm_retry_timer(ctx);
        self.pump(ctx);
    }

    fn schedule_pump(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if self.pump_scheduled {
            return;
        }
        self.pump_scheduled = true;
        ctx.run_later(after.max(Duration::from_millis(1)), |act, ctx| {
            act.pump_scheduled = false;
            act.pump(ctx);
        });
    }

    fn start_attempt(&mut self, job: Job, ctx: &mut Context<Self>) {
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

    fn finish(
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
                self.metrics
                    .sent(id.0, receipt.state == MessageState::Delivered);
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
        self.circuit_open
            .store(breaker == BreakerState::Open, Ordering::Relaxed);
        self.metrics.health(
            self.health.success_rate(),
            self.health.latency_ewma(),
            self.in_flight.len(),
        );
        self.pump(ctx);
        self.stop_if_idle(ctx);
    }

    fn on_failure(
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
                self.metrics.failover();
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
    fn on_circuit_open(&mut self, mut job: Job, _: &mut Context<Self>) {
        let now = Utc::now();
        self.metrics.circuit_open();
        if job.fail_over() {
            self.metrics.failover();
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

    fn stop_if_idle(&mut self, ctx: &mut Context<Self>) {
        if self.retiring
            && self.in_flight.is_empty()
            && self.queue.is_empty()
            && self.delayed.is_empty()
        {
            ctx.stop();
            // A retired actor must not be restarted by its supervisor.
            ctx.terminate();
        }
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

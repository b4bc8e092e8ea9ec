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
//! ([`crate::state::lease::HeldLeases::is_usable`]) and for an active organization.

mod attempt;
mod failover;
pub mod live;
mod queue;

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use msgengine_domain::lifecycle::Outcome;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::resilience::breaker::{BreakerState, CircuitBreaker};
use msgengine_domain::resilience::health::HealthStats;
use msgengine_domain::{MessageId, OrganizationId, ProviderId};
use msgengine_providers::{sender_for_connection, Sender, SenderContext, UnsupportedProvider};

use crate::config::EngineConfig;
use crate::handles::{Outcomes, Reroute};
use crate::metrics::ProviderMetrics;
use crate::state::job::Job;
use crate::state::lease::HeldLeases;
use crate::state::orgs::ActiveOrgs;
pub use live::LiveState;

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

/// The connection's live state, for `GET /api/providers/health`.
#[derive(Message)]
#[rtype(result = "ConnectionHealth")]
pub struct GetHealth;

/// What a provider actor knows of its connection right now.
#[derive(Debug, Clone)]
pub struct ConnectionHealth {
    pub provider_id: ProviderId,
    pub channel: msgengine_domain::Channel,
    pub provider_type: &'static str,
    pub name: String,
    /// Breaker state, success rate over the last calls, latency EWMA, last error.
    pub health: msgengine_domain::resilience::HealthSnapshot,
    /// Calls the success rate is computed over.
    pub samples: usize,
    /// The limit in force, `(per second, burst)`: the connection's own or
    /// the engine's; `None`: unlimited.
    pub limit: Option<(u32, u32)>,
    /// Jobs waiting here (queued or waiting for a short retry).
    pub waiting: usize,
    pub in_flight: usize,
    /// Delivered over final receipts, decaying (`None` before any receipt),
    /// and the decayed number of receipts.
    pub delivery_ratio: Option<f64>,
    pub delivery_samples: u32,
    /// The limiter holds more than a short wait: routing puts it last.
    pub rate_limited: bool,
}

/// Test hook: make the next adapter call panic (supervision tests).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PanicOnNextSend;

/// A running provider connection as the dispatcher sees it.
#[derive(Clone)]
pub struct ProviderHandle {
    pub addr: Addr<ProviderActor>,
    pub organization_id: OrganizationId,
    /// What the actor publishes for routing: circuit, rate limit backlog,
    /// latency, delivery ratio.
    pub live: Arc<LiveState>,
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
    let live = Arc::new(LiveState::default());
    let published = live.clone();
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
        live: published,
        pump_scheduled: false,
        retiring: false,
        panic_next: false,
    });
    Ok(ProviderHandle {
        addr,
        organization_id: org,
        live,
    })
}

/// The limit in force on a connection, `(rate, burst)`: its own
/// `ratePerSecond`/`burst` when set (a Twilio long code's 1/s, a Meta tier),
/// else the engine's default (`provider_rate_per_second`); the burst is one
/// second's worth unless set. `None`: unlimited (rate 0).
fn limit_for(settings: &EngineConfig, spec: &AnyProviderSpec) -> Option<(NonZeroU32, NonZeroU32)> {
    let own = spec.routing();
    let rate = NonZeroU32::new(
        own.rate_per_second
            .unwrap_or(settings.provider_rate_per_second),
    )?;
    Some((rate, own.burst.and_then(NonZeroU32::new).unwrap_or(rate)))
}

/// The connection's limiter, for [`limit_for`]'s limit.
fn limiter_for(
    settings: &EngineConfig,
    spec: &AnyProviderSpec,
) -> Option<DefaultDirectRateLimiter> {
    let (rate, burst) = limit_for(settings, spec)?;
    Some(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
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
    live: Arc<LiveState>,
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
            let now = Instant::now();
            // An open breaker turns half-open by time alone: routing must
            // see it, or no message would come to probe it.
            let state = act.observe_breaker(now);
            act.live.set_circuit_open(state == BreakerState::Open);
            act.metrics.delivery(act.live.delivery(now).0);
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
        self.live.set_circuit_open(false);
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

impl Handler<GetHealth> for ProviderActor {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let state = self.breaker.state(now);
        let limit = limit_for(&self.env.settings, &self.spec);
        let live = self.live.liveness(now);
        MessageResult(ConnectionHealth {
            provider_id: self.id,
            channel: self.spec.channel(),
            provider_type: self.spec.provider_type(),
            name: self.spec.name().to_owned(),
            health: self.health.snapshot(state),
            samples: self.health.samples(),
            limit: limit.map(|(rate, burst)| (rate.get(), burst.get())),
            waiting: self.queue.len() + self.delayed.len(),
            in_flight: self.in_flight.len(),
            delivery_ratio: live.delivery_ratio,
            delivery_samples: live.delivery_samples,
            rate_limited: live.rate_limited,
        })
    }
}

impl Handler<PanicOnNextSend> for ProviderActor {
    type Result = ();

    fn handle(&mut self, _: PanicOnNextSend, _: &mut Self::Context) {
        self.panic_next = true;
    }
}

#[cfg(test)]
mod tests {
    use msgengine_domain::provider::{from_object, ProviderSpec, SmsProviderSpec};
    use serde_json::json;

    use super::*;

    fn spec(extra: serde_json::Value) -> AnyProviderSpec {
        let mut body = json!({"providerType": "SANDBOX", "name": "sim"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let serde_json::Value::Object(object) = body else {
            unreachable!("built as an object")
        };
        from_object::<SmsProviderSpec>(object)
            .expect("valid spec")
            .into_any()
    }

    /// How many calls the limiter lets through at once.
    fn burst(limiter: &DefaultDirectRateLimiter) -> usize {
        (0..1000).take_while(|_| limiter.check().is_ok()).count()
    }

    #[test]
    fn a_connection_rate_replaces_the_engine_default() {
        let engine = EngineConfig {
            provider_rate_per_second: 40,
            ..EngineConfig::default()
        };
        let default = limiter_for(&engine, &spec(json!({}))).expect("limited");
        assert_eq!(
            burst(&default),
            40,
            "the engine's default, one second's worth"
        );
        let own =
            limiter_for(&engine, &spec(json!({"ratePerSecond": 2, "burst": 5}))).expect("own");
        assert_eq!(burst(&own), 5);
        let no_burst = limiter_for(&engine, &spec(json!({"ratePerSecond": 3}))).expect("own");
        assert_eq!(burst(&no_burst), 3);
        let unlimited = EngineConfig {
            provider_rate_per_second: 0,
            ..EngineConfig::default()
        };
        assert!(
            limiter_for(&unlimited, &spec(json!({}))).is_none(),
            "0 = unlimited"
        );
        assert!(limiter_for(&unlimited, &spec(json!({"ratePerSecond": 1}))).is_some());
    }
}

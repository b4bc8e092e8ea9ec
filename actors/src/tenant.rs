//! TenantActor: one per organization, started on first use and stopped after
//! a while without traffic. It holds the organization's admission rate
//! limiter (messages per second and burst, from the organization's row or the
//! engine's default), and is where the content policy and the prepaid-credit
//! reservation will sit. A restart rebuilds the limiter from the database.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use msgengine_domain::OrganizationId;

use crate::runtime::Shared;

/// Admit `count` messages now, or say when to retry.
#[derive(Message)]
#[rtype(result = "Admission")]
pub struct Admit {
    pub count: u32,
}

/// The tenant actor's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over the rate: retry after this long.
    RateLimited {
        retry_after: Duration,
    },
    /// More messages in one request than the burst allows at all.
    OverBurst {
        burst: u32,
    },
}

/// Reload the organization's limits (after an admin change).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadLimits;

pub struct TenantActor {
    shared: Arc<Shared>,
    org: OrganizationId,
    limiter: DefaultDirectRateLimiter,
    burst: u32,
    last_used: Instant,
    registry: Arc<DashMap<OrganizationId, Addr<TenantActor>>>,
}

const IDLE_AFTER: Duration = Duration::from_secs(300);

impl TenantActor {
    fn limiter(rate: u32, burst: u32) -> DefaultDirectRateLimiter {
        let rate = NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
    }

    fn load_limits(&self, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        let org = self.org;
        let fut = async move {
            let client = shared.pool.get().await.ok()?;
            let row = client
                .query_opt(
                    "SELECT rate_per_second, rate_burst FROM organizations WHERE id = $1",
                    &[&org.0],
                )
                .await
                .ok()??;
            let rate: Option<i32> = row.try_get(0).ok()?;
            let burst: Option<i32> = row.try_get(1).ok()?;
            Some((rate, burst))
        };
        ctx.wait(fut.into_actor(self).map(|limits, act, _| {
            let (rate, burst) = limits.unwrap_or((None, None));
            let rate = rate.map_or(act.shared.config.default_tenant_rate, |r| r.max(1) as u32);
            let burst = burst.map_or(act.shared.config.default_tenant_burst.max(rate), |b| {
                b.max(1) as u32
            });
            act.limiter = Self::limiter(rate, burst);
            act.burst = burst;
        }));
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
        self.load_limits(ctx);
        ctx.run_interval(Duration::from_secs(30), |act, ctx| {
            if act.last_used.elapsed() > IDLE_AFTER {
                act.registry.remove(&act.org);
                ctx.stop();
                ctx.terminate();
            }
        });
    }
}

impl Supervised for TenantActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(organization = %self.org, "tenant actor restarting");
    }
}

impl Handler<Admit> for TenantActor {
    type Result = MessageResult<Admit>;

    fn handle(&mut self, msg: Admit, _: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let Some(n) = NonZeroU32::new(msg.count) else {
            return MessageResult(Admission::Admitted);
        };
        MessageResult(match self.limiter.check_n(n) {
            Ok(Ok(())) => Admission::Admitted,
            Ok(Err(not_until)) => {
                let clock = governor::clock::DefaultClock::default();
                Admission::RateLimited {
                    retry_after: not_until.wait_time_from(governor::clock::Clock::now(&clock)),
                }
            }
            Err(_) => Admission::OverBurst { burst: self.burst },
        })
    }
}

impl Handler<ReloadLimits> for TenantActor {
    type Result = ();

    fn handle(&mut self, _: ReloadLimits, ctx: &mut Self::Context) {
        self.load_limits(ctx);
    }
}

/// The running tenant actors, by organization.
#[derive(Clone, Default)]
pub struct Tenants {
    actors: Arc<DashMap<OrganizationId, Addr<TenantActor>>>,
}

impl Tenants {
    /// The organization's actor, started (supervised, on the engine's main
    /// arbiter) on first use.
    pub fn get(
        &self,
        shared: &Arc<Shared>,
        arbiter: &ArbiterHandle,
        org: OrganizationId,
    ) -> Addr<TenantActor> {
        if let Some(addr) = self.actors.get(&org) {
            if addr.connected() {
                return addr.clone();
            }
        }
        // A stopped (idle) actor's address is replaced by a new actor.
        self.actors.remove_if(&org, |_, addr| !addr.connected());
        let shared = shared.clone();
        let registry = self.actors.clone();
        let cfg_rate = shared.config.default_tenant_rate;
        let cfg_burst = shared.config.default_tenant_burst.max(cfg_rate);
        self.actors
            .entry(org)
            .or_insert_with(|| {
                Supervisor::start_in_arbiter(arbiter, move |_| TenantActor {
                    shared,
                    org,
                    limiter: TenantActor::limiter(cfg_rate, cfg_burst),
                    burst: cfg_burst,
                    last_used: Instant::now(),
                    registry,
                })
            })
            .clone()
    }

    /// Tells a running tenant actor to reload its limits.
    pub fn reload(&self, org: OrganizationId) {
        if let Some(addr) = self.actors.get(&org) {
            addr.do_send(ReloadLimits);
        }
    }
}

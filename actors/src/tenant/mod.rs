//! TenantActor: one per organization, started on first use and stopped after
//! a while without traffic. It holds the organization's admission rate
//! limiter (messages per second and burst, from the organization's row or the
//! engine's default), and is where the content policy and the prepaid-credit
//! reservation will sit. A restart rebuilds the limiter from the database.
//!
//! The limiter itself lives in a [`Gate`] the actor shares with the HTTP
//! workers: governor's limiter is a lock-free GCRA cell, so a request is
//! admitted on its own thread with one atomic update instead of a round trip
//! to the actor's thread. The actor owns the gate's contents: it loads the
//! organization's limits and installs a new limiter when they change. Until
//! the first load finished, requests go through the actor (which answers
//! only after the load), so an organization's first burst is never judged by
//! the default limits.

mod gate;

use gate::Limits;
pub use gate::{Admission, Gate};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use dashmap::DashMap;
use msgengine_domain::OrganizationId;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::organizations;

/// What a tenant actor needs: the store its limits are read from, and the
/// limits of an organization that sets none.
#[derive(Clone)]
pub struct TenantEnv {
    pub pool: Pool,
    pub default_rate: u32,
    pub default_burst: u32,
}

/// Admit `count` messages now, or say when to retry.
#[derive(Message)]
#[rtype(result = "Admission")]
pub struct Admit {
    pub count: u32,
}

/// Reload the organization's limits (after an admin change).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadLimits;

pub struct TenantActor {
    env: TenantEnv,
    org: OrganizationId,
    gate: Arc<Gate>,
    last_used: Instant,
    registry: Arc<DashMap<OrganizationId, Tenant>>,
}

const IDLE_AFTER: Duration = Duration::from_secs(300);

impl TenantActor {
    /// Reads the organization's limits and installs them in the gate.
    fn load_limits(&self) -> impl ActorFuture<Self, Output = ()> + 'static {
        let pool = self.env.pool.clone();
        let org = self.org;
        let fut = async move {
            let client = pool.get().await.ok()?;
            organizations::rate_limit(&client, org).await.ok()?
        };
        fut.into_actor(self).map(|limits, act, _| {
            let (rate, burst) = limits.unwrap_or((None, None));
            let rate = rate.map_or(act.env.default_rate, |r| r.max(1) as u32);
            let burst = burst.map_or(act.env.default_burst.max(rate), |b| b.max(1) as u32);
            act.gate.install(Limits::new(rate, burst));
        })
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
        ctx.wait(self.load_limits());
        ctx.run_interval(Duration::from_secs(30), |act, ctx| {
            if act.gate.used.swap(false, Ordering::Relaxed) {
                act.last_used = Instant::now();
            }
            if act.last_used.elapsed() > IDLE_AFTER {
                act.registry.remove(&act.org);
                metrics::gauge!(crate::metrics::TENANTS_ACTIVE).set(act.registry.len() as f64);
                ctx.stop();
                ctx.terminate();
            }
        });
    }
}

impl Supervised for TenantActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(organization = %self.org, "tenant actor restarting");
        crate::metrics::record_restart("tenant");
    }
}

impl Handler<Admit> for TenantActor {
    type Result = MessageResult<Admit>;

    fn handle(&mut self, msg: Admit, _: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        MessageResult(self.gate.admit(msg.count))
    }
}

impl Handler<ReloadLimits> for TenantActor {
    /// Answered once the new limits are installed.
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: ReloadLimits, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.load_limits())
    }
}

/// A running tenant actor and the gate it shares.
#[derive(Clone)]
pub struct Tenant {
    pub addr: Addr<TenantActor>,
    pub gate: Arc<Gate>,
}

impl Tenant {
    /// Admits `count` messages: on the calling thread once the limits are
    /// loaded, through the actor before.
    pub async fn admit(&self, count: u32) -> Result<Admission, MailboxError> {
        match self.gate.try_admit(count) {
            Some(admission) => Ok(admission),
            None => self.addr.send(Admit { count }).await,
        }
    }
}

/// The running tenant actors, by organization.
#[derive(Clone, Default)]
pub struct Tenants {
    actors: Arc<DashMap<OrganizationId, Tenant>>,
}

impl Tenants {
    /// The organization's actor, started (supervised, on the engine's main
    /// arbiter) on first use.
    pub fn get(&self, env: &TenantEnv, arbiter: &ArbiterHandle, org: OrganizationId) -> Tenant {
        if let Some(tenant) = self.actors.get(&org) {
            if tenant.addr.connected() {
                return tenant.clone();
            }
        }
        // A stopped (idle) actor's address is replaced by a new actor.
        self.actors.remove_if(&org, |_, t| !t.addr.connected());
        let env = env.clone();
        let registry = self.actors.clone();
        let cfg_rate = env.default_rate;
        let cfg_burst = env.default_burst.max(cfg_rate);
        let tenant = self
            .actors
            .entry(org)
            .or_insert_with(|| {
                // One gate for the actor's whole life, restarts included: a
                // restarted actor reloads the limits into it.
                let gate = Arc::new(Gate::new(cfg_rate, cfg_burst));
                let actor_gate = Arc::clone(&gate);
                let addr = Supervisor::start_in_arbiter(arbiter, move |_| TenantActor {
                    env,
                    org,
                    gate: actor_gate,
                    last_used: Instant::now(),
                    registry,
                });
                Tenant { addr, gate }
            })
            .clone();
        metrics::gauge!(crate::metrics::TENANTS_ACTIVE).set(self.actors.len() as f64);
        tenant
    }

    /// Has a running tenant actor reload its limits, and waits until they
    /// are in force (a tenant started later reads them when it starts).
    pub async fn reload(&self, org: OrganizationId) {
        let addr = self.actors.get(&org).map(|t| t.addr.clone());
        if let Some(addr) = addr {
            if let Err(e) = addr.send(ReloadLimits).await {
                tracing::warn!(organization = %org, error = %e, "tenant limits not reloaded");
            }
        }
    }
}

//! What the engine's parts share, and handing jobs to provider actors
//! (dispatch itself, the checks before a job reaches an actor, is in
//! [`crate::dispatch`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use msgengine_domain::lifecycle::Outcome;
use msgengine_domain::resilience::backoff::RetryPolicy;
use msgengine_domain::resilience::breaker::BreakerConfig;
use msgengine_domain::routing::RoutePolicy;
use msgengine_domain::{OrganizationId, ProviderId};
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::OutcomeRow;
use uuid::Uuid;

use crate::job::Job;
use crate::lease::HeldLeases;
use crate::orgs::ActiveOrgs;
use crate::provider::Deliver;
use crate::router::{LoadRoutes, RouteTable, RouterActor};
use crate::suppress::Suppressions;
use crate::writer::OutcomeWriter;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This process's id, the owner of its leases. New per start.
    pub node_id: Uuid,
    /// How long a lease lasts without renewal. Default 60 s.
    pub lease_for: Duration,
    /// Tenant admission rate when the organization sets none (messages/s). Default 20000.
    pub default_tenant_rate: u32,
    /// Tenant burst when the organization sets none. Default 20000.
    pub default_tenant_burst: u32,
    /// Concurrent attempts per provider connection. Default 256.
    pub provider_concurrency: usize,
    /// Provider actor mailbox capacity. Default 4096.
    pub provider_mailbox: usize,
    /// Jobs a provider actor holds at most (queued and waiting to retry);
    /// more are deferred to the database (lease released, due again in
    /// 1-30 s, by the actor's rate).
    /// Default 500000.
    pub provider_queue_cap: usize,
    /// Messages this node holds at most, all providers together (soft):
    /// past it, accepted messages are stored unleased for the scheduler, and
    /// the scheduler claims only a fair trickle ([`crate::scheduler`]).
    /// Default 1000000.
    pub max_held_jobs: usize,
    /// Attempts per second per provider connection; 0 = unlimited. Default 0.
    pub provider_rate_per_second: u32,
    /// Retries waiting at most this long stay in memory; longer ones go
    /// through the database. Default 2 s.
    pub in_memory_retry_max: Duration,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// Arbiters (threads) for provider actors. Default 2.
    pub arbiters: usize,
    /// Group-commit workers. Default 4.
    pub commit_workers: usize,
    /// Threads of the committer's and writer's runtime ([`crate::dbrt`]).
    pub db_threads: usize,
    /// Status writer shards. Default 2.
    pub writer_shards: usize,
    /// How often the scheduler looks for due messages. Default 200 ms.
    pub scheduler_interval: Duration,
    /// Most bytes of message content (text, HTML, extras) one scheduler
    /// claim loads; at least one message is always claimed. Default 64 MiB.
    pub claim_max_bytes: u64,
    /// A message not finished after this long expires. Default 24 h.
    pub message_lifetime: Duration,
    /// Provider HTTP request timeout. Default 30 s.
    pub provider_timeout: Duration,
    /// Every outbound provider call must go to a loopback host (tests, load
    /// tests against the simulator). Default false.
    pub outbound_loopback_only: bool,
    /// Provider calls (HTTP and SMTP) may reach private, loopback and
    /// link-local addresses. Default false: only public addresses, checked
    /// after DNS resolution at connect time (SSRF guard).
    pub providers_allow_private: bool,
    /// Organizations' webhook endpoints may be private, loopback or
    /// link-local addresses. Default false (refused: SSRF guard).
    pub webhooks_allow_private: bool,
    /// The public base URL of this engine (`https://msg.example.com`), for
    /// providers that take a status-callback URL per message. Default none.
    pub public_url: Option<String>,
    /// Organizations that get their own `org` label on the tenant metrics;
    /// the rest count under `org="other"`. Default 100.
    pub tenant_label_limit: usize,
    /// How often the queue and pool gauges are sampled. Default 5 s.
    pub queue_poll: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_id: Uuid::new_v4(),
            lease_for: Duration::from_secs(60),
            default_tenant_rate: 20_000,
            default_tenant_burst: 20_000,
            provider_concurrency: 256,
            provider_mailbox: 4096,
            provider_queue_cap: 500_000,
            max_held_jobs: 1_000_000,
            provider_rate_per_second: 0,
            in_memory_retry_max: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            arbiters: 2,
            commit_workers: 4,
            db_threads: 2,
            writer_shards: 2,
            scheduler_interval: Duration::from_millis(200),
            claim_max_bytes: 64 * 1024 * 1024,
            message_lifetime: Duration::from_secs(24 * 3600),
            provider_timeout: Duration::from_secs(30),
            outbound_loopback_only: false,
            providers_allow_private: false,
            webhooks_allow_private: false,
            public_url: None,
            tenant_label_limit: 100,
            queue_poll: Duration::from_secs(5),
        }
    }
}

impl EngineConfig {
    /// Which addresses provider calls may reach.
    pub fn provider_addresses(&self) -> msgengine_providers::AddressPolicy {
        use msgengine_providers::AddressPolicy;
        if self.outbound_loopback_only {
            AddressPolicy::Loopback
        } else if self.providers_allow_private {
            AddressPolicy::Any
        } else {
            AddressPolicy::Public
        }
    }

    /// Where outbound webhook deliveries may go.
    pub fn webhook_targets(&self) -> crate::outbound::Targets {
        use crate::outbound::Targets;
        if self.outbound_loopback_only {
            Targets::Loopback
        } else if self.webhooks_allow_private {
            Targets::Any
        } else {
            Targets::Public
        }
    }
}

/// State shared by the engine's tasks and actors.
pub struct Shared {
    pub config: EngineConfig,
    pub pool: Pool,
    pub ring: Arc<KeyRing>,
    /// The client every provider call goes through, enforcing
    /// [`EngineConfig::provider_addresses`].
    pub http: msgengine_providers::ProviderClient,
    pub routes: RouteTable,
    pub policy: Box<dyn RoutePolicy>,
    pub writer: OutcomeWriter,
    pub router: std::sync::OnceLock<Addr<RouterActor>>,
    pub arbiters: Vec<ArbiterHandle>,
    /// The bounded per-organization metric series.
    pub tenant_metrics: crate::metrics::TenantSeries,
    /// The leases this node holds (renewed, checked before each attempt).
    pub leases: Arc<HeldLeases>,
    /// The suppression lists, checked at accept and again at dispatch.
    pub suppressions: Suppressions,
    /// Which organizations may send.
    pub orgs: ActiveOrgs,
    /// Test hook: route loads fail while set.
    pub(crate) fail_route_loads: AtomicBool,
    /// Test hook: the scheduler claims nothing while set.
    pub(crate) claims_paused: AtomicBool,
    next: AtomicUsize,
}

/// reqwest as the providers crate re-exports it.
pub use msgengine_providers::reqwest as reqwest_client;

impl Shared {
    pub fn new(
        config: EngineConfig,
        pool: Pool,
        ring: Arc<KeyRing>,
        policy: Box<dyn RoutePolicy>,
        writer: OutcomeWriter,
        arbiters: Vec<ArbiterHandle>,
        leases: Arc<HeldLeases>,
    ) -> Self {
        let http = msgengine_providers::ProviderClient::new(
            config.provider_timeout,
            config.provider_addresses(),
        );
        Self {
            tenant_metrics: crate::metrics::TenantSeries::new(config.tenant_label_limit),
            config,
            pool,
            ring,
            http,
            routes: RouteTable::default(),
            policy,
            writer,
            router: std::sync::OnceLock::new(),
            arbiters,
            leases,
            suppressions: Suppressions::default(),
            orgs: ActiveOrgs::default(),
            fail_route_loads: AtomicBool::new(false),
            claims_paused: AtomicBool::new(false),
            next: AtomicUsize::new(0),
        }
    }

    /// The next arbiter, round robin, so provider actors spread over threads.
    pub fn next_arbiter(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len().max(1);
        self.arbiters
            .get(i)
            .cloned()
            .unwrap_or_else(actix::Arbiter::current)
    }

    /// Queues an outcome without waiting (the writer applies backpressure by
    /// its channel; if it is full, a task waits instead of the caller).
    pub fn submit(&self, row: OutcomeRow) {
        let writer = self.writer.clone();
        if let Some(row) = writer.try_submit(row) {
            actix::spawn(async move { writer.submit(row).await });
        }
    }

    /// Makes sure an organization's routes are loaded.
    pub async fn ensure_routes(
        &self,
        org: OrganizationId,
    ) -> Result<(), msgengine_storage::StoreError> {
        if self.fail_route_loads.load(Ordering::Relaxed) {
            return Err(msgengine_storage::StoreError::Unavailable(
                "route load failure injected (test hook)".into(),
            ));
        }
        if self.routes.is_loaded(org) {
            return Ok(());
        }
        let router = self.router.get().ok_or_else(|| {
            msgengine_storage::StoreError::Unavailable("router not started".into())
        })?;
        router
            .send(LoadRoutes {
                organization_id: org,
                force: false,
            })
            .await
            .map_err(|_| msgengine_storage::StoreError::Unavailable("router stopped".into()))?
    }

    /// Hands jobs to their current provider's actor, grouped per provider.
    /// A job with no provider left fails; a full mailbox defers the job to
    /// the scheduler (its lease is released with a short delay).
    pub fn deliver(&self, jobs: Vec<Job>) {
        let mut by_provider: std::collections::HashMap<ProviderId, Vec<Job>> =
            std::collections::HashMap::new();
        for job in jobs {
            match job.provider() {
                Some(p) => by_provider.entry(p).or_default().push(job),
                None => self.fail_unroutable(&job),
            }
        }
        for (provider, jobs) in by_provider {
            let Some(handle) = self.routes.provider(provider) else {
                self.defer(jobs, "provider not running");
                continue;
            };
            if let Err(err) = handle.addr.try_send(Deliver(jobs)) {
                let jobs = match err {
                    SendError::Full(Deliver(jobs)) | SendError::Closed(Deliver(jobs)) => jobs,
                };
                self.defer(jobs, "provider busy");
            }
        }
    }

    pub(crate) fn fail_unroutable(&self, job: &Job) {
        crate::metrics::record_failed(job.message.channel, "none", "no_provider", 1);
        let outcome = Outcome::unroutable(job.message.channel, Utc::now());
        self.submit(job.outcome(outcome));
    }

    /// Gives jobs back to the database, due again in a second (lease released).
    pub(crate) fn defer(&self, jobs: Vec<Job>, why: &str) {
        let at = Utc::now() + chrono::Duration::seconds(1);
        for job in jobs {
            let outcome = Outcome::deferred(why, job.provider(), at, Utc::now());
            self.submit(job.outcome(outcome));
        }
    }
}

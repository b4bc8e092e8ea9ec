//! What the engine's parts share, and dispatch: turning committed or claimed
//! messages into jobs on the right provider actors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use msgengine_domain::message::{MessageEvent, MessageState, OutboundMessage};
use msgengine_domain::resilience::backoff::RetryPolicy;
use msgengine_domain::resilience::breaker::BreakerConfig;
use msgengine_domain::routing::RoutePolicy;
use msgengine_domain::{OrganizationId, ProviderId};
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::OutcomeRow;
use uuid::Uuid;

use crate::job::Job;
use crate::provider::{event_row, Deliver};
use crate::router::{LoadRoutes, RouteTable, RouterActor};
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
            provider_rate_per_second: 0,
            in_memory_retry_max: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            arbiters: 2,
            commit_workers: 4,
            db_threads: 2,
            writer_shards: 2,
            scheduler_interval: Duration::from_millis(200),
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

    /// Plans and delivers messages (fresh from a commit or claimed by the
    /// scheduler). `attempts` is how many attempts each already had.
    pub async fn dispatch(&self, messages: Vec<(OutboundMessage, u32)>) {
        let mut orgs: Vec<OrganizationId> =
            messages.iter().map(|(m, _)| m.organization_id).collect();
        orgs.sort();
        orgs.dedup();
        for org in orgs {
            if let Err(e) = self.ensure_routes(org).await {
                tracing::error!(organization = %org, error = %e, "cannot load routes; messages stay leased until retried");
            }
        }
        let mut jobs = Vec::with_capacity(messages.len());
        for (message, attempts) in messages {
            let chain: Arc<[ProviderId]> = Arc::from(self.routes.plan(&*self.policy, &message));
            let job = Job {
                message: Arc::new(message),
                chain,
                position: 0,
                attempts_on_provider: 0,
                total_attempts: attempts,
            };
            jobs.push(job);
        }
        self.deliver(jobs);
    }

    /// Re-plans jobs whose provider went away.
    pub async fn reroute(&self, jobs: Vec<Job>) {
        let messages = jobs
            .into_iter()
            .map(|j| ((*j.message).clone(), j.total_attempts))
            .collect();
        self.dispatch(messages).await;
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

    fn fail_unroutable(&self, job: &Job) {
        let event = MessageEvent {
            state: MessageState::Failed,
            at: Utc::now(),
            reason: Some(format!(
                "no active {} provider to send through",
                job.message.channel
            )),
            provider_id: None,
            attempt: None,
            provider_at: None,
        };
        crate::metrics::record_failed(job.message.channel, "none", "no_provider", 1);
        self.submit(event_row(job, event, None, true));
    }

    fn defer(&self, jobs: Vec<Job>, why: &str) {
        let at = Utc::now() + chrono::Duration::seconds(1);
        for job in jobs {
            let event = MessageEvent {
                state: MessageState::Queued,
                at: Utc::now(),
                reason: Some(format!("deferred: {why}")),
                provider_id: job.provider(),
                attempt: None,
                provider_at: None,
            };
            self.submit(event_row(&job, event, Some(at), true));
        }
    }
}

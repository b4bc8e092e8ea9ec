//! The engine's settings.

use std::time::Duration;

use msgengine_domain::resilience::breaker::BreakerConfig;
use msgengine_domain::resilience::retry::RetryPolicy;
use uuid::Uuid;

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
    /// Group-commit workers. Default 2: each transaction costs the database
    /// the same whatever its size, and with 4 a single-message load spread
    /// into groups of about 5 rows (PostgreSQL 34 % of the machine at
    /// 5,000 msg/s, 28 % with 2; batch throughput unchanged).
    pub commit_workers: usize,
    /// Threads of the committer's and writer's runtime ([`crate::dbrt`]).
    pub db_threads: usize,
    /// Status writer shards. Default 2.
    pub writer_shards: usize,
    /// How long a status writer shard gathers outcomes before it writes
    /// them (fewer, larger statements; only delivery status waits, never an
    /// accept). Default 10 ms; zero writes whatever is queued at once.
    pub writer_linger: Duration,
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
            commit_workers: 2,
            db_threads: 2,
            writer_shards: 2,
            writer_linger: Duration::from_millis(10),
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

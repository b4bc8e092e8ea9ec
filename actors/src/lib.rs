//! msgengine's actor system and the machinery around it.
//!
//! - [`tenant::TenantActor`]: one per organization, admission rate limiting.
//! - [`router::RouterActor`]: owns the routing snapshot ([`router::RouteTable`])
//!   and the provider actors' lifecycle; routing itself is a pure policy
//!   evaluated by any caller over the snapshot.
//! - [`provider::ProviderActor`]: one per active provider connection: limiter,
//!   concurrency cap, circuit breaker, health, retries and failover.
//! - [`commit::GroupCommitter`]: group commit of accepted messages.
//! - [`writer::OutcomeWriter`]: batched status writes.
//! - [`inbound::WebhookWriter`]: group commit of inbound provider webhooks.
//! - [`dbrt::DbRuntime`]: the committer's and writer's own multi-threaded
//!   runtime, off the actor system's thread.
//! - [`suppress::Suppressions`]: the suppression lists, checked at accept.
//! - [`outbound`]: delivers status events to organizations' own webhook endpoints.
//! - [`scheduler`]: scheduled messages, database-held retries, crash recovery.
//! - [`dispatch`]: the checks between a leased message and a provider actor.
//! - [`lease::HeldLeases`]: the leases this node holds, fenced and renewed.
//! - [`orgs::ActiveOrgs`]: which organizations may send.
//! - [`gauges`]: the queue and pool gauges, sampled on a timer.
//! - [`metrics`]: metric names and the handles the hot paths record through.
//! - [`bulkhead`]: store-fault classification, backoff and writer health.
//!
//! - [`app`]: the use cases the edge calls; [`app::accept`] as named stages.
//!
//! [`Engine`] ties them together for the HTTP edge.

pub mod app;
pub mod bulkhead;
pub mod commit;
pub mod config;
pub mod dbrt;
pub mod dispatch;
pub mod engine;
pub mod gauges;
pub mod handles;
pub mod inbound;
pub mod job;
pub mod lease;
pub mod metrics;
pub mod orgs;
pub mod outbound;
pub mod provider;
pub mod router;
pub mod scheduler;
pub mod suppress;
pub mod tenant;
pub mod writer;

pub use app::accept::{AcceptError, Accepted, IdempotencyKey};
pub use config::EngineConfig;
pub use engine::Engine;

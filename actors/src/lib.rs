//! msgengine's actor system and the machinery around it, in folders that
//! depend on each other in one direction only (no import cycles):
//!
//! | folder | what | depends on |
//! |---|---|---|
//! | [`app`] | the use cases the edge calls; [`app::accept`] as named stages | engine and below |
//! | [`engine`] | the [`Engine`] handle and its start-up wiring | everything below |
//! | [`scheduler`] | claims of due messages; [`scheduler::dispatch`], the checks between a leased message and a provider actor | router, provider, handles, state |
//! | [`router`] | the routing snapshot ([`router::RouteTable`]) and the provider actors' lifecycle | provider, state |
//! | [`provider`] | [`provider::ProviderActor`], one per connection: limiter, cap, breaker, retries, failover | handles, state |
//! | [`tenant`] | [`tenant::TenantActor`], one per organization: admission | — |
//! | [`handles`] | the narrow handles actors get: [`handles::Outcomes`], [`handles::Reroute`] | writers, state |
//! | [`writers`] | group commit ([`writers::commit`]), status writes ([`writers::outcome`]), inbound webhooks ([`writers::inbound`]), store-fault handling ([`writers::bulkhead`]) | state |
//! | [`outbound`] | status events to organizations' own webhook endpoints | writers |
//! | [`state`] | what this node holds: jobs, leases, organization flags, suppression lists | — |
//!
//! Beside them: [`config`] (the engine's settings), [`dbrt`] (the writers'
//! own runtime, off the actor system's thread), [`gauges`] and [`metrics`].

pub mod app;
pub mod config;
pub mod dbrt;
pub mod engine;
pub mod gauges;
pub mod handles;
pub mod metrics;
pub mod outbound;
pub mod provider;
pub mod router;
pub mod scheduler;
pub mod state;
pub mod tenant;
pub mod writers;

pub use app::accept::{AcceptError, Accepted, IdempotencyKey};
pub use config::EngineConfig;
pub use engine::Engine;

// The paths other crates (the server, its tests) have used.
pub use scheduler::dispatch;
pub use state::{job, lease, orgs, suppress};
pub use writers::outcome as writer;
pub use writers::{bulkhead, commit, inbound};

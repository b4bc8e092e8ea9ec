//! Repositories: one module per aggregate, plain async functions over
//! `&impl GenericClient` so callers choose the transaction. Every query uses
//! `prepare_cached` and an explicit column list.

pub mod api_keys;
pub mod audit;
pub mod messages;
pub mod org_webhooks;
pub mod organizations;
pub mod providers;
pub mod quiet_hours;
mod rotation;
pub mod routing_rules;
pub mod suppressions;
pub mod webhook_events;
pub mod webhook_nonces;

pub use deadpool_postgres::GenericClient;

//! What every handler shares: the pool, the key ring, the auth cache, the
//! provider registry and the request limits. Built once by the server binary
//! and passed in (no process globals).

use std::sync::Arc;

use deadpool_postgres::Pool;
use msgengine_providers::ProviderRegistry;
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres;

use crate::auth::{AdminToken, AuthCache};

/// Request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted JSON body, in bytes. Default 262144 (256 KiB).
    pub max_body_bytes: usize,
    /// Largest send request body, in bytes (a batch of 1,000). Default 8 MiB.
    pub max_send_body_bytes: usize,
    /// Live provider connections per organization, all channels. Default 50.
    pub max_providers_per_org: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_send_body_bytes: 8 * 1024 * 1024,
            max_providers_per_org: 50,
        }
    }
}

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub ring: Arc<KeyRing>,
    pub admin: Arc<AdminToken>,
    pub auth: Arc<AuthCache>,
    pub registry: Arc<ProviderRegistry>,
    pub engine: msgengine_actors::Engine,
    /// Renders the Prometheus text page for `GET /metrics`.
    pub metrics: RenderMetrics,
    /// When set, `GET /metrics` requires this bearer token.
    pub metrics_token: Option<Arc<crate::metrics::ScrapeToken>>,
    pub limits: Limits,
    /// Connections behind webhook URLs (routes::webhooks).
    pub webhook_connections: Arc<crate::routes::webhooks::WebhookConnections>,
}

/// Renders the process's metrics in the Prometheus text format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

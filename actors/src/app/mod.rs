//! The application layer: one use case per thing a caller can ask, each
//! owning its transaction, its audit row and the caches and actors it must
//! tell. The HTTP edge (`msgengine-api`) extracts a request, calls one use
//! case and renders what it returns; it never opens a transaction, writes
//! audit, evicts a cache or builds a provider adapter.
//!
//! | module | use cases |
//! |---|---|
//! | [`accept`] | the named stages of a send: replay, admit, route, suppress, commit |
//! | [`messaging`] | send, message status |
//! | [`admin`] | organizations, API keys, rate limits (the operator's) |
//! | [`providers`] | provider connections: create, read, update, delete, test |
//! | [`manage`] | operations asked of one connection's provider (domains, stats, templates) |
//! | [`webhooks`] | inbound provider webhooks: lookup, verification, mapping, ingest |
//! | [`suppressions`] | the suppression list |
//! | [`endpoints`] | the organization's own webhook endpoint |
//! | [`audit`] | the audit trail |
//! | [`health`] | readiness |

pub mod accept;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod endpoints;
pub mod error;
pub mod health;
pub mod manage;
pub mod messaging;
pub mod provider_health;
pub mod providers;
pub mod routing;
pub mod suppressions;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use msgengine_domain::Secret;
use msgengine_providers::ProviderRegistry;
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres::Pool;

pub use auth::Tenant;
pub use error::{AppError, ErrorKind};

use crate::Engine;

/// What the use cases need to know beyond the engine.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// How long a validated API key is trusted without asking the database.
    pub auth_cache_ttl: Duration,
    /// Live provider connections per organization, all channels.
    pub max_providers_per_org: u32,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            auth_cache_ttl: Duration::from_secs(5),
            max_providers_per_org: 50,
        }
    }
}

/// The use cases, cheap to clone; built once by the server binary.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    ring: Arc<KeyRing>,
    engine: Engine,
    admin: auth::TokenDigest,
    auth: auth::AuthCache,
    connections: webhooks::WebhookConnections,
    probes: ProviderRegistry,
    config: AppConfig,
}

impl App {
    pub fn new(
        engine: Engine,
        pool: Pool,
        ring: Arc<KeyRing>,
        admin_token: &Secret,
        config: AppConfig,
    ) -> App {
        let probes = ProviderRegistry::live(engine.http());
        App {
            inner: Arc::new(Inner {
                pool,
                ring,
                admin: auth::TokenDigest::new(admin_token),
                auth: auth::AuthCache::new(config.auth_cache_ttl),
                connections: webhooks::WebhookConnections::default(),
                probes,
                engine,
                config,
            }),
        }
    }

    /// The engine (actor system) the use cases drive.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Whether `token` is the operator's admin token (constant time).
    pub fn is_admin_token(&self, token: &str) -> bool {
        self.inner.admin.verify(token)
    }

    /// The organization an API key belongs to; `None` for an unknown,
    /// revoked or disabled key.
    pub async fn authenticate(&self, key: &str) -> Result<Option<Tenant>, AppError> {
        self.inner.auth.authenticate(&self.inner.pool, key).await
    }

    fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    fn ring(&self) -> &KeyRing {
        &self.inner.ring
    }
}

//! The server's settings: one tree with defaults in code, an optional TOML
//! file, `MSGENGINE__SECTION__FIELD` environment overrides, then the named
//! variables operators rely on (`DATABASE_URL`, `MSGENGINE_ADMIN_TOKEN`,
//! `MSGENGINE_MASTER_KEYS`, `MSGENGINE_MASTER_KEYS_FILE`, `MSGENGINE_ENV`), then
//! command-line flags. Tests build a [`Settings`] in code and never touch the
//! process environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use msgengine_domain::Secret;
use serde::Deserialize;

/// `development` (the default) or `production`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Missing secrets are generated into the data directory; logs are human-readable.
    #[default]
    Development,
    /// Missing secrets refuse start-up; logs are JSON lines.
    Production,
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "production" | "prod" => Ok(Environment::Production),
            other => Err(format!(
                "MSGENGINE_ENV must be `development` or `production`, not `{other}`"
            )),
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    /// Where the server keeps its private PostgreSQL cluster and generated
    /// development secrets. Default `./data`.
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub security: SecuritySettings,
    pub engine: EngineSettings,
    pub metrics: MetricsSettings,
}

/// `GET /metrics` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Organizations that get their own `org` label on the `msgengine_tenant_*`
    /// series (the first seen); the rest count under `org="other"`. Default 100.
    pub tenant_label_limit: usize,
    /// How often the queue depth and age gauges are read from the database,
    /// in seconds. Default 5.
    pub queue_poll_secs: u64,
    /// When set, `GET /metrics` answers only requests with `Authorization:
    /// Bearer <token>` (401 otherwise). At least 16 characters. Default none
    /// (open, as the listener is loopback by default).
    pub bearer_token: Option<Secret>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            tenant_label_limit: 100,
            queue_poll_secs: 5,
            bearer_token: None,
        }
    }
}

/// The send pipeline's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Messages per second an organization may submit when its row sets no rate. Default 20000.
    pub default_tenant_rate: u32,
    /// Burst for the same. Default 20000 (at least one full batch of 1000).
    pub default_tenant_burst: u32,
    /// Concurrent attempts per provider connection. Default 256.
    pub provider_concurrency: usize,
    /// Attempts per second per provider connection, 0 = unlimited. Default 0.
    pub provider_rate_per_second: u32,
    /// Jobs one provider connection holds in memory at most (queued and
    /// waiting to retry); more are deferred to the database. Default 500000
    /// (half of `max_held_jobs`: one connection cannot take the node's all).
    pub provider_queue_cap: usize,
    /// Messages this node holds in memory at most, all providers together
    /// (a soft bound): past it, accepted messages are stored for the
    /// scheduler instead of dispatched from memory, and the scheduler claims
    /// only a small fair trickle until there is room. A held message costs
    /// about 1 KiB plus its content. Default 1000000.
    pub max_held_jobs: usize,
    /// Most bytes of message content (text, HTML, extras) one scheduler
    /// claim loads into memory (at least one message is always claimed).
    /// Default 67108864 (64 MiB).
    pub claim_max_bytes: u64,
    /// Provider HTTP request timeout, in milliseconds. Default 30000.
    pub provider_timeout_ms: u64,
    /// Lease on messages being sent, in seconds. Default 60.
    pub lease_secs: u64,
    /// On SIGTERM, how long in-flight sends may finish, in seconds. Default 20.
    pub drain_secs: u64,
    /// Refuse every outbound provider call whose host is not loopback (for
    /// tests and load tests against the simulator). Default false.
    pub outbound_loopback_only: bool,
    /// Let provider calls (HTTP and SMTP) reach private, loopback,
    /// link-local and other non-public addresses (a relay or provider on
    /// an internal network). Default false: a connection whose host is or
    /// resolves to such an address is refused before connecting.
    pub providers_allow_private: bool,
    /// Let organizations' webhook endpoints be private, loopback or
    /// link-local addresses (an internal receiver). Default false: such
    /// URLs are refused, so a tenant cannot make the engine call into its
    /// own network (SSRF).
    pub webhooks_allow_private: bool,
    /// Live provider connections an organization may have, all channels
    /// together; one more is refused with 409 `provider_limit_reached`. Default 50.
    pub max_providers_per_org: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            default_tenant_rate: 20_000,
            default_tenant_burst: 20_000,
            provider_concurrency: 256,
            provider_rate_per_second: 0,
            provider_queue_cap: 500_000,
            max_held_jobs: 1_000_000,
            claim_max_bytes: 64 * 1024 * 1024,
            provider_timeout_ms: 30_000,
            lease_secs: 60,
            drain_secs: 20,
            outbound_loopback_only: false,
            providers_allow_private: false,
            webhooks_allow_private: false,
            max_providers_per_org: 50,
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on. Default `127.0.0.1:8080`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// HTTP worker threads. Default: the number of CPU cores.
    pub workers: Option<usize>,
    /// Largest JSON request body, in bytes. Default 262144.
    pub max_body_bytes: usize,
    /// Graceful shutdown: how long in-flight requests may finish, in seconds. Default 30.
    pub shutdown_timeout_secs: u64,
    /// The URL providers reach this server at (`https://msg.example.com`),
    /// used for per-message status callbacks (Twilio). Default none.
    pub public_url: Option<String>,
    /// A second listener for the provider webhook routes (`/api/webhooks/…`,
    /// plus `/healthz`). When set, the main listener no longer serves them,
    /// so the webhook port can face the internet while the API stays
    /// private. Port 0 picks a free port. Default none (one listener).
    pub webhook_listen: Option<SocketAddr>,
}

/// Database settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgresql://` URL or `key=value` string. Unset: run a private cluster
    /// in `data_dir`. Usually given as `DATABASE_URL`.
    pub url: Option<Secret>,
    /// Maximum pooled connections. Default 16.
    pub pool_max_size: usize,
    /// How long a request waits for a pooled connection, in milliseconds. Default 5000.
    pub pool_wait_timeout_ms: u64,
    /// Longest any statement may run, in milliseconds (PostgreSQL's
    /// `statement_timeout` on every pooled connection); 0 = no limit. Default 30000.
    pub statement_timeout_ms: u64,
    /// Longest a statement may wait for a lock, in milliseconds (`lock_timeout`);
    /// 0 = no limit. Default 10000.
    pub lock_timeout_ms: u64,
}

/// Secrets and authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// The operator token for `/api/admin`. Usually `MSGENGINE_ADMIN_TOKEN`.
    /// At least 32 characters. Unset in development: generated into
    /// `data_dir/admin-token`.
    pub admin_token: Option<Secret>,
    /// The credential key ring, `id:base64key` entries oldest to newest,
    /// separated by commas. Usually `MSGENGINE_MASTER_KEYS`.
    pub master_keys: Option<Secret>,
    /// A file holding the key ring, one entry per line. Usually `MSGENGINE_MASTER_KEYS_FILE`.
    pub master_keys_file: Option<PathBuf>,
    /// How long a validated API key is trusted before the database is asked
    /// again, in milliseconds. Revocation through this server is immediate
    /// regardless. Default 30000.
    pub auth_cache_ttl_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            data_dir: PathBuf::from("./data"),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            security: SecuritySettings::default(),
            engine: EngineSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            max_body_bytes: 256 * 1024,
            shutdown_timeout_secs: 30,
            public_url: None,
            webhook_listen: None,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            pool_max_size: 16,
            pool_wait_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            lock_timeout_ms: 10_000,
        }
    }
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            admin_token: None,
            master_keys: None,
            master_keys_file: None,
            auth_cache_ttl_ms: 30_000,
        }
    }
}

/// A variable lookup, so loading is testable without touching the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn vars(&self) -> Vec<(String, String)>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }
}

impl Settings {
    /// Loads settings: defaults, then the TOML file named by `MSGENGINE_CONFIG`
    /// (if any), then `MSGENGINE__…` overrides, then the named variables.
    pub fn load(env: &dyn Env) -> Result<Settings, String> {
        let mut builder = config::Config::builder();
        if let Some(path) = env.var("MSGENGINE_CONFIG") {
            builder =
                builder.add_source(config::File::with_name(&path).format(config::FileFormat::Toml));
        }
        let overrides: std::collections::HashMap<String, String> = env
            .vars()
            .into_iter()
            .filter(|(k, _)| k.starts_with("MSGENGINE__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("MSGENGINE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        );
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| format!("invalid configuration: {e}"))?;
        if let Some(url) = env.var("DATABASE_URL") {
            settings.database.url = Some(Secret::new(url));
        }
        if let Some(token) = env.var("MSGENGINE_ADMIN_TOKEN") {
            settings.security.admin_token = Some(Secret::new(token));
        }
        if let Some(keys) = env.var("MSGENGINE_MASTER_KEYS") {
            settings.security.master_keys = Some(Secret::new(keys));
        }
        if let Some(file) = env.var("MSGENGINE_MASTER_KEYS_FILE") {
            settings.security.master_keys_file = Some(PathBuf::from(file));
        }
        if let Some(e) = env.var("MSGENGINE_ENV") {
            settings.environment = e.parse()?;
        }
        Ok(settings)
    }

    /// Refuses settings the server cannot run safely with.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(token) = &self.security.admin_token {
            if token.expose().chars().count() < 32 {
                return Err("MSGENGINE_ADMIN_TOKEN must be at least 32 characters".into());
            }
        }
        if self.environment == Environment::Production {
            if self.security.admin_token.is_none() {
                return Err(
                    "production mode needs MSGENGINE_ADMIN_TOKEN (at least 32 characters)".into(),
                );
            }
            if self.security.master_keys.is_none() && self.security.master_keys_file.is_none() {
                return Err(
                    "production mode needs a credential key ring: set MSGENGINE_MASTER_KEYS or MSGENGINE_MASTER_KEYS_FILE \
                     (create a key with `msgengine keys generate`)"
                        .into(),
                );
            }
        }
        if self.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        if self.engine.lease_secs < 5 {
            return Err("engine.lease_secs must be at least 5".into());
        }
        if self.engine.max_held_jobs == 0 {
            return Err("engine.max_held_jobs must be at least 1".into());
        }
        if self.engine.provider_queue_cap == 0 {
            return Err("engine.provider_queue_cap must be at least 1".into());
        }
        if self.engine.provider_concurrency == 0 {
            return Err("engine.provider_concurrency must be at least 1".into());
        }
        if self.metrics.queue_poll_secs == 0 {
            return Err("metrics.queue_poll_secs must be at least 1".into());
        }
        if self.database.pool_max_size == 0 {
            return Err("database.pool_max_size must be at least 1".into());
        }
        if (1..100).contains(&self.database.statement_timeout_ms) {
            return Err(
                "database.statement_timeout_ms must be 0 (no limit) or at least 100".into(),
            );
        }
        if let Some(token) = &self.metrics.bearer_token {
            if token.expose().chars().count() < 16 {
                return Err("metrics.bearer_token must be at least 16 characters".into());
            }
        }
        if self.engine.max_providers_per_org == 0 {
            return Err("engine.max_providers_per_org must be at least 1".into());
        }
        if self.server.webhook_listen == Some(self.server.listen) && self.server.listen.port() != 0
        {
            return Err("server.webhook_listen must differ from server.listen".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

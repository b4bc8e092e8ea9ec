//! Connection pool construction (deadpool-postgres over tokio-postgres, no TLS:
//! the engine talks to PostgreSQL over loopback or a unix socket).

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::error::StoreError;

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Maximum connections in the pool. Default 16.
    pub max_size: usize,
    /// How long a caller waits for a free connection, in milliseconds. Default 5000.
    pub wait_timeout_ms: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout_ms: 5_000,
        }
    }
}

/// Builds a pool for `conninfo` (a `postgresql://` URL or a `key=value` string)
/// and checks that one connection can be opened, so a bad address fails at start-up.
pub async fn connect_pool(conninfo: &str, settings: &PoolSettings) -> Result<Pool, StoreError> {
    let pg = tokio_postgres::Config::from_str(conninfo)
        .map_err(|e| StoreError::Config(format!("invalid database address: {e}")))?;
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(Duration::from_millis(settings.wait_timeout_ms)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Config(format!("cannot build pool: {e}")))?;
    // Fail fast on an unreachable server instead of at the first request.
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(pool)
}

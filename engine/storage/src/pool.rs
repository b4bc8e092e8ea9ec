//! Connection pool construction (deadpool-postgres over tokio-postgres).
//!
//! Invariants:
//! - TLS follows the connection string's `sslmode` / `sslrootcert` as libpq does
//!   ([`crate::tls`]); a unix socket (the private cluster) never uses TLS.
//! - Every pooled connection starts with `statement_timeout` and `lock_timeout` set (startup
//!   options, so no statement of any caller runs without them): a hung query or a lock held
//!   by a stuck transaction fails with [`StoreError::Unavailable`] instead of stalling the
//!   writers and lease renewal behind it. A caller that must wait longer (migrations) sets
//!   them for its own statements and `RESET`s them after.
//! - Every pooled connection plans each execution of a prepared statement afresh
//!   (`plan_cache_mode=force_custom_plan`). PostgreSQL otherwise switches a prepared
//!   statement to a generic plan after five executions and keeps it for the connection's
//!   life: a plan made while `messages` held a few hundred rows (a fresh database, the first
//!   seconds after a deploy) is a sequential scan and hash join, and the batched
//!   `UPDATE … FROM unnest(…)` writers kept scanning the whole table with it at every batch
//!   as it grew (16 ms per 40-row outcome batch at 100,000 rows, 58 % of the machine's CPU
//!   in PostgreSQL at 4,000 msg/s). A custom plan sees the table's current size and the
//!   arrays' real lengths; planning costs tens of microseconds per statement, and the
//!   statements stay parsed and cached.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::error::StoreError;
use crate::tls::{client_config, split_tls_params};

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Maximum connections in the pool. Default 16.
    pub max_size: usize,
    /// How long a caller waits for a free connection, in milliseconds. Default 5000.
    pub wait_timeout_ms: u64,
    /// Longest any statement may run, in milliseconds; 0 = no limit. Default 30000.
    pub statement_timeout_ms: u64,
    /// Longest a statement may wait for a lock, in milliseconds; 0 = no limit. Default 10000.
    pub lock_timeout_ms: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            lock_timeout_ms: 10_000,
        }
    }
}

/// Builds a pool for `conninfo` (a `postgresql://` URL or a `key=value` string)
/// and checks that one connection can be opened, so a bad address fails at start-up.
pub async fn connect_pool(conninfo: &str, settings: &PoolSettings) -> Result<Pool, StoreError> {
    let pg = driver_config(conninfo, settings)?;
    let (_, tls_params) = split_tls_params(conninfo)?;
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&tls_params)?);
    let manager = Manager::from_config(
        pg,
        tls,
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
    // Fail fast on an unreachable server (or a refused certificate) instead of at the first
    // request, naming the cause.
    let client = pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) if e.as_db_error().is_none() => {
            StoreError::Unavailable(error_chain(&e))
        }
        other => StoreError::from(other),
    })?;
    client.simple_query("SELECT 1").await?;
    Ok(pool)
}

/// The driver's configuration: the connection string without the TLS parameters, the
/// driver's TLS mode, and the timeouts and plan cache mode as startup options (after any
/// `options` the string has).
fn driver_config(
    conninfo: &str,
    settings: &PoolSettings,
) -> Result<tokio_postgres::Config, StoreError> {
    let (rest, tls) = split_tls_params(conninfo)?;
    let mut pg = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| StoreError::Config(format!("invalid database address: {e}")))?;
    pg.ssl_mode(tls.mode.for_driver());
    let mut options = pg.get_options().unwrap_or_default().to_owned();
    let statement_timeout = settings.statement_timeout_ms.to_string();
    let lock_timeout = settings.lock_timeout_ms.to_string();
    for (name, value) in [
        ("statement_timeout", statement_timeout.as_str()),
        ("lock_timeout", lock_timeout.as_str()),
        ("plan_cache_mode", "force_custom_plan"),
    ] {
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!("-c {name}={value}"));
    }
    pg.options(&options);
    Ok(pg)
}

/// An error and its causes, `: `-separated (the TLS reason sits in the source chain).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_become_startup_options_after_the_callers_own() {
        let settings = PoolSettings::default();
        let pg = driver_config("host=/tmp dbname=x options='-c search_path=app'", &settings)
            .expect("config");
        assert_eq!(
            pg.get_options(),
            Some(
                "-c search_path=app -c statement_timeout=30000 -c lock_timeout=10000 \
                 -c plan_cache_mode=force_custom_plan"
            )
        );
        let pg = driver_config("postgres://u@h/db?sslmode=verify-full", &settings).expect("config");
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(
            pg.get_options(),
            Some("-c statement_timeout=30000 -c lock_timeout=10000 -c plan_cache_mode=force_custom_plan")
        );
    }
}

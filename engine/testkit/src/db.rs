//! `TestDb`: one fresh database per test, cloned from the migrated template.

use std::time::Duration;

use msgengine_storage::{connect_pool, PoolSettings};
use tokio_postgres::error::SqlState;

use crate::{server, template};

/// Pool size per test database: enough for concurrent repository calls, small enough that
/// many parallel tests fit in the test cluster's `max_connections`.
const POOL_MAX_SIZE: usize = 4;
/// How often a clone is retried while the template is briefly in use (SQLSTATE 55006).
const CLONE_ATTEMPTS: u32 = 10;

/// A fresh, migrated database for one test.
pub struct TestDb {
    /// Database name, `test_<unixsecs>_<random>`.
    pub name: String,
    /// key=value or URL connection string for this database.
    pub conninfo: String,
    /// A small pool (max 4) on this database.
    pub pool: deadpool_postgres::Pool,
}

impl TestDb {
    /// Creates `test_<unixsecs>_<random>` from the template and returns a small pool (max 4) on it.
    /// Panics with a clear message if no server is reachable and none can be started.
    pub async fn new() -> TestDb {
        let (name, conninfo) = Self::create().await;
        let settings = PoolSettings {
            max_size: POOL_MAX_SIZE,
            ..PoolSettings::default()
        };
        let pool = match connect_pool(&conninfo, &settings).await {
            Ok(pool) => pool,
            Err(e) => panic!(
                "test database {name}: cannot open a pool: {}",
                server::chain(&e)
            ),
        };
        TestDb {
            name,
            conninfo,
            pool,
        }
    }

    /// Same, but returns only the name and conninfo (for tests that start the whole server
    /// with its own pool).
    pub async fn create() -> (String, String) {
        let server = server::get().await;
        server.touch();
        let template = template::ensure(server).await;
        let admin = server::connect_admin(server).await;
        let name = unique_name();
        clone_template(&admin, &template, &name).await;
        (name.clone(), server.conninfo(&name))
    }
}

/// `test_<unixsecs>_<8 hex>`: the seconds let the sweep find old leftovers.
fn unique_name() -> String {
    let secs = server::unix_secs();
    format!("test_{secs}_{:08x}", rand::random::<u32>())
}

async fn clone_template(admin: &tokio_postgres::Client, template: &str, name: &str) {
    let sql = format!("CREATE DATABASE {name} TEMPLATE {template}");
    for attempt in 1..=CLONE_ATTEMPTS {
        match admin.batch_execute(&sql).await {
            Ok(()) => return,
            // Someone is still connected to the template (e.g. its builder is disconnecting).
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < CLONE_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(e) => panic!(
                "cannot create test database {name} from {template}: {}",
                server::chain(&e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_carry_seconds_and_differ() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        let secs: u64 = a
            .split('_')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("seconds in the name");
        assert!(secs > 1_700_000_000);
    }
}

//! The migrated template database `tpl_<migration fingerprint>`, built once per server under a
//! PostgreSQL advisory lock (test processes run in parallel), plus the sweep of leftovers.
//!
//! A template is built as `tplbuild_<fp>_<random>` and renamed only once migrated, so a
//! `tpl_*` database is always complete; a `tplbuild_*` seen while holding the lock belongs to a
//! builder that died and is dropped.

use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::server::{self, Server};

/// Advisory lock key (on the `postgres` database) serialising template builds.
const TEMPLATE_LOCK: i64 = 0x6d73_6774_706c_0001;
/// Test databases older than this are leftovers of earlier runs.
const STALE_AFTER_SECS: u64 = 2 * 60 * 60;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The template's name, building it and sweeping leftovers on first use in this process.
pub(crate) async fn ensure(server: &Server) -> String {
    let name = TEMPLATE
        .get_or_try_init(|| async {
            let admin = server::connect_admin(server).await;
            sweep_tests(&admin, server.fresh_since_secs()).await;
            build_once(server, &admin).await
        })
        .await;
    match name {
        Ok(name) => name.clone(),
        Err(message) => panic!("cannot prepare the migrated template database: {message}"),
    }
}

async fn build_once(server: &Server, admin: &Client) -> Result<String, String> {
    let fingerprint = msgengine_storage::migrate::fingerprint();
    let template = format!("tpl_{fingerprint}");
    if database_exists(admin, &template).await? {
        return Ok(template);
    }
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await
        .map_err(|e| server::chain(&e))?;
    let built = async {
        if database_exists(admin, &template).await? {
            return Ok(());
        }
        sweep_builds(admin).await;
        build(server, admin, &fingerprint).await
    }
    .await;
    let _ = admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
        .await;
    built.map(|()| template)
}

async fn build(server: &Server, admin: &Client, fingerprint: &str) -> Result<(), String> {
    let template = format!("tpl_{fingerprint}");
    let staging = format!("tplbuild_{fingerprint}_{:08x}", rand::random::<u32>());
    execute(admin, &format!("CREATE DATABASE {staging}")).await?;
    let migrated = migrate(&server.conninfo(&staging)).await;
    if let Err(e) = migrated {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE {staging}"))
            .await;
        return Err(format!("migrations failed: {e}"));
    }
    let rename = format!("ALTER DATABASE {staging} RENAME TO {template}");
    for attempt in 1..=10u64 {
        match admin.batch_execute(&rename).await {
            // The migration connection's backend may still be exiting.
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < 10 => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => return other.map_err(|e| server::chain(&e)),
        }
    }
    Ok(())
}

/// Runs the migrations and closes the connection before returning.
async fn migrate(conninfo: &str) -> Result<(), String> {
    let (mut client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .map_err(|e| server::chain(&e))?;
    let driver = tokio::spawn(connection);
    let outcome = msgengine_storage::migrate::run(&mut client)
        .await
        .map_err(|e| server::chain(&e));
    drop(client);
    let _ = driver.await;
    outcome
}

/// Drops test databases from earlier runs: those older than two hours, and when this process
/// started the throwaway cluster, every one created before that start (nobody can use them).
async fn sweep_tests(admin: &Client, fresh_since_secs: Option<u64>) {
    let stale = server::unix_secs().saturating_sub(STALE_AFTER_SECS);
    let cutoff = fresh_since_secs.map_or(stale, |start| start.max(stale));
    for name in databases_like(admin, r"test\_%").await {
        if created_secs(&name).is_some_and(|secs| secs < cutoff) {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .await;
        }
    }
}

/// Drops half-built templates; only called under the advisory lock, so their builders died.
async fn sweep_builds(admin: &Client) {
    for name in databases_like(admin, r"tplbuild\_%").await {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await;
    }
}

/// `test_<secs>_<random>` -> secs.
fn created_secs(name: &str) -> Option<u64> {
    let mut parts = name.strip_prefix("test_")?.splitn(2, '_');
    let secs = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(secs)
}

/// Names matching a LIKE pattern; only names that are plain identifiers, so they can be
/// spliced into DROP statements.
async fn databases_like(admin: &Client, pattern: &str) -> Vec<String> {
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            &[&pattern],
        )
        .await
        .unwrap_or_default();
    rows.iter()
        .filter_map(|row| row.try_get::<_, String>(0).ok())
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

async fn database_exists(admin: &Client, name: &str) -> Result<bool, String> {
    admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map(|row| row.is_some())
        .map_err(|e| server::chain(&e))
}

async fn execute(admin: &Client, sql: &str) -> Result<(), String> {
    admin
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{sql}: {}", server::chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_secs_reads_only_test_names() {
        assert_eq!(
            created_secs("test_1700000000_abcd1234"),
            Some(1_700_000_000)
        );
        assert_eq!(created_secs("test_1700000000"), None);
        assert_eq!(created_secs("test_x_abcd"), None);
        assert_eq!(created_secs("tpl_1700000000_abcd"), None);
    }
}

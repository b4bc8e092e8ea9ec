//! Which PostgreSQL server the tests use: `DATABASE_URL` when set, else a throwaway cluster in
//! `/tmp/msgengine-test-pg-<uid>-<hash of the workspace path>`, started once per process (or
//! adopted from another test process) and stopped by the watchdog once idle.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use msgengine_storage::embedded::{Cluster, ClusterOptions};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// Connections the test cluster accepts: parallel tests each hold a pool of up to 4.
const TEST_MAX_CONNECTIONS: &str = "300";

/// The server for this process. Holds only paths and strings (see the crate docs).
#[derive(Debug)]
pub(crate) enum Server {
    /// The server in `DATABASE_URL` (URL or key=value form).
    External { conninfo: String },
    /// The throwaway cluster; `marker` is touched on every use to keep the watchdog away;
    /// `started_at_secs` is set when this process started it.
    Embedded {
        cluster: Cluster,
        marker: PathBuf,
        started_at_secs: Option<u64>,
    },
}

static SERVER: OnceCell<Result<Server, String>> = OnceCell::const_new();

/// The server for this process, set up on first use. Panics when there is none.
pub(crate) async fn get() -> &'static Server {
    match SERVER.get_or_init(resolve).await {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

impl Server {
    /// Connection string for `dbname` on this server.
    pub(crate) fn conninfo(&self, dbname: &str) -> String {
        match self {
            Server::External { conninfo } => with_dbname(conninfo, dbname),
            Server::Embedded { cluster, .. } => cluster.conninfo(dbname),
        }
    }

    /// Which server this is, for messages (never the address itself: it may hold a password).
    pub(crate) fn describe(&self) -> String {
        match self {
            Server::External { .. } => "the PostgreSQL server in DATABASE_URL".to_owned(),
            Server::Embedded { cluster, .. } => {
                format!(
                    "the throwaway test PostgreSQL in {}",
                    cluster.dir().display()
                )
            }
        }
    }

    /// Marks the throwaway cluster as in use (the watchdog stops it after a quiet minute).
    pub(crate) fn touch(&self) {
        if let Server::Embedded { marker, .. } = self {
            touch(marker);
        }
    }

    /// When this process started the throwaway cluster, the unix seconds just before the
    /// start: test databases created earlier belong to a finished run.
    pub(crate) fn fresh_since_secs(&self) -> Option<u64> {
        match self {
            Server::Embedded {
                started_at_secs, ..
            } => *started_at_secs,
            Server::External { .. } => None,
        }
    }
}

async fn resolve() -> Result<Server, String> {
    if let Some(url) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        let maintenance = with_dbname(&url, "postgres");
        tokio_postgres::Config::from_str(&maintenance)
            .map_err(|e| format!("DATABASE_URL is not a valid PostgreSQL address: {e}"))?;
        return Ok(Server::External { conninfo: url });
    }
    let dir = test_cluster_dir();
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| {
            format!(
                "cannot create the test cluster directory {}: {e}",
                dir.display()
            )
        })?;
    let marker = dir.join("last-used");
    // Touch before start: a watchdog deciding to stop an idle cluster re-checks the marker
    // under the cluster lock, so it cannot stop the cluster we are about to adopt.
    touch(&marker);
    let before_start = unix_secs();
    let cluster = start_cluster(&dir, &marker).await?;
    let started_at_secs = cluster.started_here().then_some(before_start);
    Ok(Server::Embedded {
        cluster,
        marker,
        started_at_secs,
    })
}

/// Starts (or adopts) the throwaway cluster and, when this call started it, its watchdog.
async fn start_cluster(dir: &Path, marker: &Path) -> Result<Cluster, String> {
    let options = ClusterOptions {
        dir: dir.to_path_buf(),
        unsafe_fast: true,
        extra_settings: vec![(
            "max_connections".to_owned(),
            TEST_MAX_CONNECTIONS.to_owned(),
        )],
        tcp: None,
    };
    let cluster = Cluster::start(options).await.map_err(|e| {
        format!(
            "no test PostgreSQL: DATABASE_URL is unset and the throwaway cluster in {} could not be started: {}",
            dir.display(),
            chain(&e)
        )
    })?;
    if cluster.started_here() {
        if let Err(e) = crate::watchdog::spawn(&cluster, marker) {
            eprintln!(
                "warning: the test PostgreSQL in {} has no watchdog and will keep running ({e}); stop it with pg_ctl -D {} stop",
                dir.display(),
                cluster.pgdata().display()
            );
        }
    }
    Ok(cluster)
}

/// `/tmp/msgengine-test-pg-<uid>-<8 hex>`: one cluster per user and workspace checkout.
fn test_cluster_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // engine/testkit -> the workspace root.
    let workspace = manifest.ancestors().nth(2).unwrap_or(manifest);
    let digest = Sha256::digest(workspace.to_string_lossy().as_bytes());
    let uid = nix::unistd::Uid::effective();
    PathBuf::from(format!(
        "/tmp/msgengine-test-pg-{uid}-{}",
        hex::encode(&digest[..4])
    ))
}

pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn touch(path: &Path) {
    let touched = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        eprintln!("warning: cannot touch {}: {e}", path.display());
    }
}

/// `conninfo` pointing at `dbname`: a URL gets a `dbname` query parameter, a key=value string
/// a trailing `dbname=` (in both forms libpq and tokio-postgres let the later value win).
pub(crate) fn with_dbname(conninfo: &str, dbname: &str) -> String {
    let conninfo = conninfo.trim();
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        let separator = if conninfo.contains('?') { '&' } else { '?' };
        format!("{conninfo}{separator}dbname={dbname}")
    } else {
        format!("{conninfo} dbname={dbname}")
    }
}

/// Opens a connection to the maintenance database `postgres` inside the current test's
/// runtime, or panics saying which server could not be reached.
pub(crate) async fn connect_admin(server: &Server) -> tokio_postgres::Client {
    let conninfo = server.conninfo("postgres");
    let mut connected = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await;
    if let (
        Err(_),
        Server::Embedded {
            cluster, marker, ..
        },
    ) = (&connected, server)
    {
        // The watchdog stops the cluster after a quiet minute, which can fall between two
        // tests of one long-lived process: start it again (same paths) and retry once.
        if let Err(message) = start_cluster(cluster.dir(), marker).await {
            panic!("{message}");
        }
        connected = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await;
    }
    match connected {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) => panic!(
            "cannot connect to {} (it must allow CREATE DATABASE): {}",
            server.describe(),
            chain(&e)
        ),
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
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
    fn dbname_is_appended_to_both_conninfo_forms() {
        assert_eq!(
            with_dbname("postgres://u:p@h:5432/app", "postgres"),
            "postgres://u:p@h:5432/app?dbname=postgres"
        );
        assert_eq!(
            with_dbname("postgresql://h/app?sslmode=disable", "t1"),
            "postgresql://h/app?sslmode=disable&dbname=t1"
        );
        assert_eq!(
            with_dbname("host=/run port=5432 dbname=app", "t1"),
            "host=/run port=5432 dbname=app dbname=t1"
        );
    }

    #[test]
    fn the_later_dbname_wins_in_tokio_postgres() {
        for base in ["postgres://u@h/app", "host=h user=u dbname=app"] {
            let config =
                tokio_postgres::Config::from_str(&with_dbname(base, "t1")).expect("valid conninfo");
            assert_eq!(config.get_dbname(), Some("t1"));
        }
    }

    #[test]
    fn the_test_cluster_dir_is_stable_and_short() {
        let dir = test_cluster_dir();
        assert_eq!(dir, test_cluster_dir());
        assert!(dir.to_string_lossy().starts_with("/tmp/msgengine-test-pg-"));
    }
}

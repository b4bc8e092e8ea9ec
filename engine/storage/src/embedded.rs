//! The private PostgreSQL cluster: what `msgengine serve` runs in its data directory when no
//! `DATABASE_URL` is given, and what the test kit reuses for a throwaway test cluster.
//!
//! Invariants:
//! - The server listens on a unix socket only (`listen_addresses=''`) in a 0700 directory, so
//!   trust authentication reaches nobody but this OS user (and root). Only tests add a
//!   loopback TCP address (`ClusterOptions::tcp`, for TLS tests).
//! - Where the cluster directory is (inside the data directory or, for root with a data
//!   directory the server's user cannot reach, under /var/lib/msgengine) is decided by
//!   `placement`.
//! - PostgreSQL refuses to run as root: when we are root, initdb and pg_ctl run as `postgres`
//!   (or `nobody`), which owns the data directory, the socket directory and the server log.
//! - `start` is serialised per directory across processes by a `flock` on `dir/cluster.lock`,
//!   and adopts a server already running on the same data directory (e.g. one left behind by
//!   a killed engine) instead of failing.

mod binaries;
mod host;
mod options;
mod placement;

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Uid;
use tokio_postgres::error::SqlState;

pub use binaries::find_binaries;
use host::{
    check_reachable, io_err, lock_dir, prepare_dir, read_postmaster_pid, socket_dir_for,
    unprivileged_user, RunAs,
};
use options::{postgres_options, quote_conninfo, server_settings, tail_lines};
pub use placement::{
    cluster_dir_for, decide_placement, relocated_dir, Placement, PlacementInputs, LOCATION_FILE,
    RELOCATED_BASE,
};

/// Port in the socket file name (`.s.PGSQL.<port>`); no TCP listener is ever opened.
pub const DEFAULT_PORT: u16 = 5432;
/// The database created for the engine inside the cluster.
pub const DATABASE: &str = "msgengine";
/// The superuser initdb creates; reachable only through the private socket.
pub const SUPERUSER: &str = "msgengine";
/// How long to wait for an adopted server to accept connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run a private cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Directory that holds the cluster: PGDATA is `dir/pgdata`, the server log `dir/postgresql.log`.
    pub dir: PathBuf,
    /// Test clusters: fsync=off, synchronous_commit=off, full_page_writes=off. Never for serve.
    pub unsafe_fast: bool,
    /// Server settings appended as `-c name=value` (e.g. max_connections).
    pub extra_settings: Vec<(String, String)>,
    /// Also listen on this TCP address (tests of TLS connections); its port names the
    /// socket too. `None` (every real use): the unix socket only, on [`DEFAULT_PORT`].
    pub tcp: Option<std::net::SocketAddr>,
}

/// Why the private cluster could not be started, stopped or reached.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No initdb/pg_ctl/postgres found.
    #[error("PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or under /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to an existing server")]
    BinariesNotFound,
    /// We are root and there is no unprivileged user to run PostgreSQL as.
    #[error("running as root, but neither the `postgres` nor the `nobody` OS user exists to run PostgreSQL as (it refuses to run as root); create a `postgres` user or set DATABASE_URL")]
    NoUnprivilegedUser,
    /// The unprivileged user cannot traverse to the cluster directory.
    #[error("PostgreSQL must run as the OS user `{user}` (it refuses root), but `{user}` cannot enter {blocker} (mode {mode:o}), so it cannot reach {dir}; make {blocker} searchable for `{user}`, choose a --data-dir that `{user}` can reach (e.g. under /var/lib or /srv) or set DATABASE_URL")]
    Unreachable {
        user: String,
        dir: PathBuf,
        blocker: PathBuf,
        mode: u32,
    },
    /// `<data dir>/cluster-location` does not name an absolute directory.
    #[error("{file} must hold the absolute path of the private PostgreSQL cluster's directory; fix or remove it")]
    BadLocation { file: PathBuf },
    /// The socket directory exists but belongs to someone else.
    #[error("the PostgreSQL socket directory {0} is not a directory owned by us; remove it or choose another --data-dir")]
    ForeignSocketDir(PathBuf),
    /// A file system operation failed.
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL program could not be run at all.
    #[error("cannot run {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// initdb exited with an error.
    #[error("initdb failed for {pgdata}: {tail}")]
    Initdb { pgdata: PathBuf, tail: String },
    /// The server did not start; `tail` is the end of its log.
    #[error("PostgreSQL failed to start in {pgdata} (log {log}): {tail}")]
    Start {
        pgdata: PathBuf,
        log: PathBuf,
        tail: String,
    },
    /// `pg_ctl stop` failed.
    #[error("PostgreSQL in {pgdata} did not stop: {tail}")]
    Stop { pgdata: PathBuf, tail: String },
    /// The server runs but does not accept our connection.
    #[error("cannot connect to the private PostgreSQL through {socket_dir}")]
    Connect {
        socket_dir: PathBuf,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Creating the engine database failed.
    #[error("cannot create database `{DATABASE}` in the private PostgreSQL")]
    CreateDatabase(#[source] tokio_postgres::Error),
}

/// A running private cluster (started here or adopted).
#[derive(Debug)]
pub struct Cluster {
    bin_dir: PathBuf,
    dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    started_here: bool,
    run_as: Option<RunAs>,
}

impl Cluster {
    /// Finds the binaries, runs initdb if `dir/pgdata/PG_VERSION` is missing, starts the server
    /// (or adopts one already running on that pgdata, e.g. left behind by a killed engine), waits
    /// until it accepts connections, and creates the database `msgengine` if missing.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, EmbeddedError> {
        let bin_dir = find_binaries()?;
        let run_as = unprivileged_user()?;
        if let Some(user) = &run_as {
            // Before creating anything, so a refused directory is left untouched.
            check_reachable(&opts.dir, user)?;
        }
        let dir = prepare_dir(&opts.dir)?;
        if let Some(user) = &run_as {
            check_reachable(&dir, user)?;
        }
        let _lock = lock_dir(&dir).await?;
        let port = opts.tcp.map_or(DEFAULT_PORT, |addr| addr.port());
        let mut cluster = Cluster {
            bin_dir,
            pgdata: dir.join("pgdata"),
            socket_dir: socket_dir_for(&dir, port),
            dir,
            port,
            started_here: false,
            run_as,
        };
        if cluster.is_running().await? {
            if let Some((port, socket_dir)) = read_postmaster_pid(&cluster.pgdata) {
                cluster.port = port;
                cluster.socket_dir = socket_dir;
            }
            tracing::warn!(dir = %cluster.dir.display(), "adopting a private PostgreSQL that was already running");
        } else {
            cluster.prepare_socket_dir()?;
            if !cluster.pgdata.join("PG_VERSION").exists() {
                cluster.initdb(opts.unsafe_fast).await?;
            }
            cluster.launch(&opts).await?;
            cluster.started_here = true;
            tracing::info!("started private PostgreSQL in {}", cluster.dir.display());
        }
        if let Err(err) = cluster.ensure_database().await {
            if cluster.started_here {
                let _ = cluster.stop().await;
            }
            return Err(err);
        }
        Ok(cluster)
    }

    /// Connection string (key=value form accepted by `tokio_postgres::Config::from_str`).
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={}",
            quote_conninfo(&self.socket_dir.to_string_lossy()),
            self.port,
            quote_conninfo(dbname)
        )
    }

    /// True when this call started the server (so the caller should stop it); false when adopted.
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Directory holding initdb, pg_ctl, postgres (and usually psql).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The cluster directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PostgreSQL data directory, `dir/pgdata`.
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The lock file that serialises `start` (and the test watchdog's stop) across processes.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(host::LOCK_FILE)
    }

    /// Port in the socket name (no TCP listener).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A command that runs `program` as the OS user that owns the cluster (the unprivileged
    /// user when we are root), from the cluster directory, with stdin closed.
    pub fn os_command(&self, program: impl AsRef<OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    /// `pg_ctl stop -m fast -w`.
    pub async fn stop(&self) -> Result<(), EmbeddedError> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w"]);
        let out = run(cmd, self.bin_dir.join("pg_ctl")).await?;
        if !out.status.success() {
            let tail = tail_lines(&String::from_utf8_lossy(&out.stderr), 10);
            return Err(EmbeddedError::Stop {
                pgdata: self.pgdata.clone(),
                tail,
            });
        }
        tracing::info!("stopped private PostgreSQL in {}", self.dir.display());
        Ok(())
    }

    fn pg_command(&self, binary: &str) -> tokio::process::Command {
        tokio::process::Command::from(self.os_command(self.bin_dir.join(binary)))
    }

    async fn is_running(&self) -> Result<bool, EmbeddedError> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("status").arg("-D").arg(&self.pgdata);
        Ok(run(cmd, self.bin_dir.join("pg_ctl"))
            .await?
            .status
            .success())
    }

    /// Creates the socket directory 0700, owned by the server's OS user.
    fn prepare_socket_dir(&self) -> Result<(), EmbeddedError> {
        let path = &self.socket_dir;
        std::fs::create_dir_all(path).map_err(io_err("create", path))?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
        let owners = [
            Uid::effective().as_raw(),
            self.run_as.as_ref().map_or(u32::MAX, |u| u.uid),
        ];
        if !meta.is_dir() || !owners.contains(&meta.uid()) {
            return Err(EmbeddedError::ForeignSocketDir(path.clone()));
        }
        self.give_to_server_user(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("set permissions on", path))
    }

    fn give_to_server_user(&self, path: &Path) -> Result<(), EmbeddedError> {
        match &self.run_as {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(io_err("change the owner of", path)),
            None => Ok(()),
        }
    }

    async fn initdb(&self, unsafe_fast: bool) -> Result<(), EmbeddedError> {
        if self.run_as.is_some() {
            std::fs::create_dir_all(&self.pgdata).map_err(io_err("create", &self.pgdata))?;
            std::fs::set_permissions(&self.pgdata, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("set permissions on", &self.pgdata))?;
            self.give_to_server_user(&self.pgdata)?;
        }
        let mut cmd = self.pg_command("initdb");
        cmd.arg("-D").arg(&self.pgdata);
        cmd.args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C"]);
        if unsafe_fast {
            cmd.arg("--no-sync");
        }
        let out = run(cmd, self.bin_dir.join("initdb")).await?;
        if !out.status.success() {
            let tail = tail_lines(&String::from_utf8_lossy(&out.stderr), 10);
            return Err(EmbeddedError::Initdb {
                pgdata: self.pgdata.clone(),
                tail,
            });
        }
        tracing::info!(
            "initialised a PostgreSQL cluster in {}",
            self.pgdata.display()
        );
        Ok(())
    }

    async fn launch(&self, opts: &ClusterOptions) -> Result<(), EmbeddedError> {
        let log = self.dir.join("postgresql.log");
        let log_start = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|file| file.metadata())
            .map_err(io_err("create", &log))?
            .len();
        self.give_to_server_user(&log)?;
        let settings = server_settings(&self.socket_dir, self.port, opts);
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D").arg(&self.pgdata).arg("-l").arg(&log);
        cmd.args([
            "-w",
            "-t",
            "60",
            "-o",
            &postgres_options(&settings),
            "start",
        ]);
        let out = run(cmd, self.bin_dir.join("pg_ctl")).await?;
        if !out.status.success() {
            // Only what this start wrote: the log is appended to across restarts.
            let text = std::fs::read(&log)
                .ok()
                .and_then(|bytes| {
                    bytes
                        .get(usize::try_from(log_start).ok()?..)
                        .map(<[u8]>::to_vec)
                })
                .filter(|bytes| !bytes.is_empty())
                .unwrap_or_else(|| [out.stdout.as_slice(), &out.stderr].concat());
            let tail = tail_lines(&String::from_utf8_lossy(&text), 10);
            return Err(EmbeddedError::Start {
                pgdata: self.pgdata.clone(),
                log,
                tail,
            });
        }
        Ok(())
    }

    /// Connects to `dbname`, retrying while an adopted server is still starting up.
    async fn connect(&self, dbname: &str) -> Result<tokio_postgres::Client, EmbeddedError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            match tokio_postgres::connect(&self.conninfo(dbname), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    return Ok(client);
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(source) => {
                    let socket_dir = self.socket_dir.clone();
                    return Err(EmbeddedError::Connect { socket_dir, source });
                }
            }
        }
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let client = self.connect("postgres").await?;
        let found = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await
            .map_err(EmbeddedError::CreateDatabase)?;
        if found.is_none() {
            match client
                .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
                .await
            {
                Ok(()) => tracing::info!("created database {DATABASE}"),
                // Another process won the race: the database exists, which is all we need.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(EmbeddedError::CreateDatabase(e)),
            }
        }
        Ok(())
    }
}

async fn run(mut cmd: tokio::process::Command, program: PathBuf) -> Result<Output, EmbeddedError> {
    cmd.output()
        .await
        .map_err(|source| EmbeddedError::Spawn { program, source })
}

//! Start-up resources: the database (an external server or the private
//! cluster in the data directory), the credential key ring and the admin token.
//! In development, a missing key ring or admin token is generated into the
//! data directory (mode 0600) and the log says where; their values are never logged.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use msgengine_domain::Secret;
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::embedded::{cluster_dir_for, Cluster, ClusterOptions};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::settings::{Environment, Settings};

/// Where the database is.
pub struct Database {
    /// Connection string for the pool.
    pub conninfo: Secret,
    /// The private cluster, when this process runs one.
    pub cluster: Option<Cluster>,
    /// Held while this process owns the data directory's cluster.
    owner: Option<Flock<File>>,
}

/// Who may start and stop the private cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterUse {
    /// `serve`: owns the data directory for its lifetime; a second server on
    /// the same directory is refused.
    Own,
    /// A short command (`keys rotate`): owns the cluster if no server does,
    /// otherwise uses the running server's cluster and leaves it running.
    Share,
}

/// Server settings of the private cluster, sized for a write-heavy queue.
///
/// PostgreSQL's defaults (128 MB of shared buffers, a checkpoint for every
/// 1 GB of WAL) made the cluster checkpoint every 7-25 s at 15,000 msg/s,
/// and each checkpoint's writes and full-page images showed up as 100-300 ms
/// stalls in accept latency. Durability is unchanged: fsync, full-page
/// writes and synchronous commit stay on. A server given by `DATABASE_URL`
/// is tuned by its operator (docs/operations.md lists these).
pub fn private_cluster_settings() -> Vec<(String, String)> {
    [
        ("shared_buffers", "512MB"),
        ("wal_buffers", "64MB"),
        ("max_wal_size", "8GB"),
        ("min_wal_size", "1GB"),
        ("checkpoint_timeout", "15min"),
        ("checkpoint_completion_target", "0.9"),
        ("log_checkpoints", "on"),
        ("log_autovacuum_min_duration", "1s"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

impl Database {
    /// Uses `DATABASE_URL` when set, otherwise starts (or adopts) the private
    /// cluster of `data_dir` (in `data_dir/postgres` unless placed elsewhere:
    /// `storage::embedded::cluster_dir_for`).
    pub async fn resolve(settings: &Settings, usage: ClusterUse) -> anyhow::Result<Database> {
        if let Some(url) = &settings.database.url {
            return Ok(Database {
                conninfo: url.clone(),
                cluster: None,
                owner: None,
            });
        }
        let owner = lock_data_dir(&settings.data_dir)?;
        if owner.is_none() && usage == ClusterUse::Own {
            bail!(
                "another msgengine server is already running with data directory {}; \
                 stop it or choose another --data-dir",
                settings.data_dir.display()
            );
        }
        // `data_dir/postgres`, or (as root, when the PostgreSQL user cannot reach the data
        // directory) the place recorded in `data_dir/cluster-location`.
        let dir = cluster_dir_for(&settings.data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let cluster = Cluster::start(ClusterOptions {
            dir: dir.clone(),
            unsafe_fast: false,
            extra_settings: private_cluster_settings(),
            tcp: None,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(dir = %dir.display(), "using the private PostgreSQL cluster (set DATABASE_URL to use another server)");
        Ok(Database {
            conninfo: Secret::new(cluster.conninfo("msgengine")),
            cluster: Some(cluster),
            owner,
        })
    }

    /// Stops the private cluster if this process owns the data directory (a
    /// cluster left running by a killed server is adopted and owned too).
    pub async fn shutdown(self) {
        if let Some(cluster) = self.cluster {
            if self.owner.is_some() {
                match cluster.stop().await {
                    Ok(()) => tracing::info!("stopped the private PostgreSQL cluster"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not stop the private PostgreSQL cluster")
                    }
                }
            }
        }
    }
}

/// Takes the data directory's owner lock without waiting; `None` when another
/// process holds it. Released when the process exits, even on SIGKILL.
fn lock_data_dir(dir: &Path) -> anyhow::Result<Option<Flock<File>>> {
    let path = dir.join("msgengine.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(anyhow::anyhow!("cannot lock {}: {errno}", path.display())),
    }
}

/// Creates the data directory if needed (readable by the cluster's OS user).
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// The credential key ring: from settings, else (development only) the
/// generated `data_dir/master.keys`.
pub fn load_key_ring(settings: &Settings) -> anyhow::Result<KeyRing> {
    if let Some(keys) = &settings.security.master_keys {
        return KeyRing::parse(keys.expose()).context("MSGENGINE_MASTER_KEYS");
    }
    if let Some(file) = &settings.security.master_keys_file {
        let text = Secret::new(read_secret_file(file)?);
        return KeyRing::parse(text.expose())
            .with_context(|| format!("key ring file {}", file.display()));
    }
    if settings.environment == Environment::Production {
        bail!("production mode needs MSGENGINE_MASTER_KEYS or MSGENGINE_MASTER_KEYS_FILE");
    }
    let path = settings.data_dir.join("master.keys");
    if !path.exists() {
        let id = format!("dev-{}", chrono_like_stamp());
        write_secret_file(&path, &format!("{}\n", KeyRing::generate_entry(&id)))?;
        tracing::warn!(
            path = %path.display(),
            "no credential key configured: generated a development master key; \
             set MSGENGINE_MASTER_KEYS (or MSGENGINE_MASTER_KEYS_FILE) in production"
        );
    }
    let text = Secret::new(read_secret_file(&path)?);
    KeyRing::parse(text.expose()).with_context(|| format!("key ring file {}", path.display()))
}

/// The admin token: from settings, else (development only) the generated
/// `data_dir/admin-token`.
pub fn load_admin_token(settings: &Settings) -> anyhow::Result<Secret> {
    if let Some(token) = &settings.security.admin_token {
        return Ok(token.clone());
    }
    if settings.environment == Environment::Production {
        bail!("production mode needs MSGENGINE_ADMIN_TOKEN");
    }
    let path = settings.data_dir.join("admin-token");
    if !path.exists() {
        // A fixed prefix, so the token never starts with '-' (command lines
        // would take it for a flag) and is recognisable in a secret scanner.
        let token = msgengine_storage::crypto::random_token(32);
        write_secret_file(&path, &format!("msa_{}\n", token.expose()))?;
        tracing::warn!(
            path = %path.display(),
            "no MSGENGINE_ADMIN_TOKEN set: generated a development admin token into this file"
        );
    }
    let token = read_secret_file(&path)?.trim().to_owned();
    if token.len() < 32 {
        bail!(
            "{} must hold a token of at least 32 characters",
            path.display()
        );
    }
    Ok(Secret::new(token))
}

fn read_secret_file(path: &PathBuf) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Seconds since the epoch, for naming generated keys.
fn chrono_like_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

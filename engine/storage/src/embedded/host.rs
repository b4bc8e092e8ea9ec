//! The operating-system side of the private cluster: directories, ownership, the start lock,
//! the unprivileged user PostgreSQL runs as when we are root, and postmaster.pid.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User};
use sha2::{Digest, Sha256};

use super::EmbeddedError;

/// Longest socket path we use; the kernel limit (`sun_path`) is 107 bytes.
const MAX_SOCKET_PATH_BYTES: usize = 100;

/// Name of the lock file inside the cluster directory.
pub(super) const LOCK_FILE: &str = "cluster.lock";

/// The unprivileged OS user PostgreSQL runs as when we are root.
#[derive(Debug, Clone)]
pub(super) struct RunAs {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// `dir/run`, unless the socket path would be too long for the kernel: then a directory in
/// /tmp named by a hash of `dir`, stable so a restarted engine finds the same socket.
pub(super) fn socket_dir_for(dir: &Path, port: u16) -> PathBuf {
    let local = dir.join("run");
    let socket = local.join(format!(".s.PGSQL.{port}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH_BYTES {
        return local;
    }
    let digest = Sha256::digest(dir.as_os_str().as_bytes());
    PathBuf::from(format!("/tmp/msgengine-pg-{}", hex::encode(&digest[..8])))
}

/// Creates `dir` (0755 when new, so the server user can traverse it) and canonicalizes it.
pub(super) fn prepare_dir(dir: &Path) -> Result<PathBuf, EmbeddedError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err("set permissions on", dir))?;
    }
    std::fs::canonicalize(dir).map_err(io_err("resolve", dir))
}

/// Exclusive lock on `dir/cluster.lock`, held by the returned guard.
pub(super) async fn lock_dir(dir: &Path) -> Result<Flock<std::fs::File>, EmbeddedError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    // Readable by the server user too, so its tooling (the test watchdog) can take the lock.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .map_err(io_err("set permissions on", &path))?;
    let locked = tokio::task::spawn_blocking(move || Flock::lock(file, FlockArg::LockExclusive))
        .await
        .map_err(|e| io_err("lock", &path)(std::io::Error::other(e)))?;
    locked.map_err(|(_, errno)| io_err("lock", &path)(std::io::Error::from(errno)))
}

/// `postgres`, else `nobody`, when we are root; nobody to switch to otherwise.
pub(super) fn unprivileged_user() -> Result<Option<RunAs>, EmbeddedError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| {
            User::from_name(name)
                .ok()
                .flatten()
                .filter(|u| !u.uid.is_root())
        })
        .map(|u| {
            Some(RunAs {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            })
        })
        .ok_or(EmbeddedError::NoUnprivilegedUser)
}

/// Fails naming the first directory on the way to `dir` that `user` cannot enter. Only the
/// part of the path that exists is checked; what is missing will be created 0755.
pub(super) fn check_reachable(dir: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    let groups: Vec<u32> = CString::new(user.name.as_str())
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, Gid::from_raw(user.gid)).ok())
        .map(|gids| gids.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_else(|| vec![user.gid]);
    let absolute = std::path::absolute(dir).map_err(io_err("resolve", dir))?;
    let existing = absolute
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let existing = std::fs::canonicalize(existing).map_err(io_err("resolve", existing))?;
    let mut ancestors: Vec<&Path> = existing.ancestors().collect();
    ancestors.reverse();
    for step in ancestors {
        let meta = std::fs::metadata(step).map_err(io_err("inspect", step))?;
        if !can_enter(meta.mode(), meta.uid(), meta.gid(), user.uid, &groups) {
            return Err(EmbeddedError::Unreachable {
                user: user.name.clone(),
                dir: dir.to_path_buf(),
                blocker: step.to_path_buf(),
                mode: meta.mode() & 0o7777,
            });
        }
    }
    Ok(())
}

/// Unix search permission on a directory for a user with `uid` in `groups`.
fn can_enter(mode: u32, owner: u32, group: u32, uid: u32, groups: &[u32]) -> bool {
    if uid == owner {
        mode & 0o100 != 0
    } else if groups.contains(&group) {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Port and first socket directory of a running server, from lines 4 and 5 of postmaster.pid.
pub(super) fn read_postmaster_pid(pgdata: &Path) -> Option<(u16, PathBuf)> {
    parse_postmaster_pid(&std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?)
}

fn parse_postmaster_pid(text: &str) -> Option<(u16, PathBuf)> {
    let mut lines = text.lines().skip(3);
    let port = lines.next()?.trim().parse().ok()?;
    let socket_dir = lines.next()?.trim();
    (!socket_dir.is_empty()).then(|| (port, PathBuf::from(socket_dir)))
}

pub(super) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_dir_is_local_when_short_and_a_stable_tmp_dir_when_long() {
        let short = Path::new("/var/lib/msgengine");
        assert_eq!(socket_dir_for(short, 5432), short.join("run"));
        let long = PathBuf::from(format!("/srv/{}", "x".repeat(90)));
        let fallback = socket_dir_for(&long, 5432);
        assert!(fallback.starts_with("/tmp"));
        assert_eq!(fallback, socket_dir_for(&long, 5432));
        assert_ne!(fallback, socket_dir_for(&long.join("other"), 5432));
        assert!(fallback.join(".s.PGSQL.5432").as_os_str().len() <= MAX_SOCKET_PATH_BYTES);
    }

    #[test]
    fn postmaster_pid_gives_port_and_socket_dir() {
        let text = "4242\n/data/pgdata\n1700000000\n5433\n/data/run\n\n  1234     5678\nready   \n";
        assert_eq!(
            parse_postmaster_pid(text),
            Some((5433, PathBuf::from("/data/run")))
        );
        assert_eq!(parse_postmaster_pid("4242\n/data\n"), None);
    }

    #[test]
    fn search_permission_follows_owner_group_other() {
        assert!(can_enter(0o700, 5, 5, 5, &[5]));
        assert!(!can_enter(0o700, 0, 0, 5, &[5]));
        assert!(can_enter(0o750, 0, 7, 5, &[5, 7]));
        assert!(can_enter(0o711, 0, 0, 5, &[5]));
    }
}

//! Where the private cluster of a data directory lives.
//!
//! Normally in `<data dir>/postgres`. When we are root, PostgreSQL runs as an unprivileged user
//! (`postgres`), which must be able to walk to its files; a data directory inside a private home
//! (`/root` is 0700) is out of its reach. Then the cluster goes to
//! `/var/lib/msgengine/<16 hex of the SHA-256 of the canonical data dir>` (0700, owned by that
//! user), and `<data dir>/cluster-location` records the choice, so restarts, `keys rotate` and a
//! server adopting a running cluster find it again. Everything else of the data directory
//! (admin token, key ring, the server's lock) stays where it is.
//!
//! Invariants:
//! - A recorded location always wins, so a placement never changes under an existing cluster.
//! - A cluster already initialised in `<data dir>/postgres` is never silently replaced by an
//!   empty one elsewhere: if it became unreachable, that is the error.
//! - The decision ([`decide_placement`]) is pure; [`cluster_dir_for`] gathers its inputs and
//!   carries it out.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::host::{check_reachable, io_err, unprivileged_user, RunAs};
use super::EmbeddedError;

/// Where relocated clusters go (one directory per data directory).
pub const RELOCATED_BASE: &str = "/var/lib/msgengine";
/// The file in the data directory that records a relocated cluster's directory.
pub const LOCATION_FILE: &str = "cluster-location";
/// The cluster's directory inside the data directory, when it stays there.
const LOCAL_DIR: &str = "postgres";

/// Where a data directory's cluster is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `<data dir>/cluster-location` names it.
    Recorded(PathBuf),
    /// `<data dir>/postgres`.
    Local(PathBuf),
    /// Not reachable in the data directory: place it here and record it.
    Relocate(PathBuf),
}

impl Placement {
    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        match self {
            Placement::Recorded(dir) | Placement::Local(dir) | Placement::Relocate(dir) => dir,
        }
    }
}

/// What [`decide_placement`] decides from.
#[derive(Debug)]
pub struct PlacementInputs {
    /// The content of `<data dir>/cluster-location`, if the file exists.
    pub recorded: Option<PathBuf>,
    /// `<data dir>/postgres`.
    pub local: PathBuf,
    /// Whether `<data dir>/postgres/pgdata` already holds a cluster.
    pub local_initialised: bool,
    /// Whether the server's OS user can reach `local`: `Ok` when we are not root.
    pub local_reachable: Result<(), EmbeddedError>,
    /// The relocated directory for this data directory.
    pub relocated: PathBuf,
}

/// The placement rule (see the module docs).
pub fn decide_placement(inputs: PlacementInputs) -> Result<Placement, EmbeddedError> {
    if let Some(recorded) = inputs.recorded {
        return Ok(Placement::Recorded(recorded));
    }
    match inputs.local_reachable {
        Ok(()) => Ok(Placement::Local(inputs.local)),
        Err(unreachable) if inputs.local_initialised => Err(unreachable),
        Err(_) => Ok(Placement::Relocate(inputs.relocated)),
    }
}

/// `/var/lib/msgengine/<16 hex>` for a canonical data directory: stable, so the same data
/// directory always maps to the same place.
pub fn relocated_dir(base: &Path, canonical_data_dir: &Path) -> PathBuf {
    let digest = Sha256::digest(canonical_data_dir.as_os_str().as_bytes());
    base.join(hex::encode(&digest[..8]))
}

/// The cluster directory for `data_dir` (which must exist), relocating and recording it when
/// the server's OS user cannot reach the data directory.
pub fn cluster_dir_for(data_dir: &Path) -> Result<PathBuf, EmbeddedError> {
    let data_dir = std::fs::canonicalize(data_dir).map_err(io_err("resolve", data_dir))?;
    let local = data_dir.join(LOCAL_DIR);
    let run_as = unprivileged_user()?;
    let inputs = PlacementInputs {
        recorded: read_location(&data_dir)?,
        local_initialised: local.join("pgdata").join("PG_VERSION").exists(),
        local_reachable: match &run_as {
            Some(user) => check_reachable(&local, user),
            None => Ok(()),
        },
        local,
        relocated: relocated_dir(Path::new(RELOCATED_BASE), &data_dir),
    };
    let placement = decide_placement(inputs)?;
    if let (Placement::Relocate(dir), Some(user)) = (&placement, &run_as) {
        create_relocated(dir, user)?;
        write_location(&data_dir, dir)?;
        tracing::warn!(
            data_dir = %data_dir.display(),
            cluster = %dir.display(),
            user = %user.name,
            "the data directory is out of reach of the PostgreSQL user; the private cluster \
             lives in {} (recorded in {})",
            dir.display(),
            data_dir.join(LOCATION_FILE).display()
        );
    }
    Ok(placement.dir().to_path_buf())
}

/// The recorded location, if any; a file that names no absolute path is an error.
fn read_location(data_dir: &Path) -> Result<Option<PathBuf>, EmbeddedError> {
    let path = data_dir.join(LOCATION_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let recorded = PathBuf::from(text.trim());
    if !recorded.is_absolute() {
        return Err(EmbeddedError::BadLocation { file: path });
    }
    Ok(Some(recorded))
}

/// Writes the location file (through a temporary file and a rename: never half written).
fn write_location(data_dir: &Path, dir: &Path) -> Result<(), EmbeddedError> {
    let path = data_dir.join(LOCATION_FILE);
    let temp = data_dir.join(format!("{LOCATION_FILE}.tmp"));
    let mut text = dir.as_os_str().as_bytes().to_vec();
    text.push(b'\n');
    std::fs::write(&temp, text).map_err(io_err("write", &temp))?;
    std::fs::rename(&temp, &path).map_err(io_err("write", &path))
}

/// `base` 0755 (root's, so the server user can pass through), the cluster directory 0700 and
/// owned by the server user.
fn create_relocated(dir: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    if let Some(base) = dir.parent() {
        if !base.exists() {
            std::fs::create_dir_all(base).map_err(io_err("create", base))?;
            std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err("set permissions on", base))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
        .map_err(io_err("change the owner of", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("set permissions on", dir))?;
    check_reachable(dir, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Result<(), EmbeddedError> {
        Err(EmbeddedError::Unreachable {
            user: "postgres".into(),
            dir: PathBuf::from("/root/repo/data/postgres"),
            blocker: PathBuf::from("/root"),
            mode: 0o700,
        })
    }

    fn inputs(
        recorded: Option<&str>,
        initialised: bool,
        reachable: Result<(), EmbeddedError>,
    ) -> PlacementInputs {
        PlacementInputs {
            recorded: recorded.map(PathBuf::from),
            local: PathBuf::from("/root/repo/data/postgres"),
            local_initialised: initialised,
            local_reachable: reachable,
            relocated: PathBuf::from("/var/lib/msgengine/0123456789abcdef"),
        }
    }

    #[test]
    fn a_reachable_data_dir_keeps_its_cluster() {
        let placement = decide_placement(inputs(None, false, Ok(()))).expect("placed");
        assert_eq!(
            placement,
            Placement::Local("/root/repo/data/postgres".into())
        );
    }

    #[test]
    fn an_unreachable_data_dir_relocates_a_new_cluster() {
        let placement = decide_placement(inputs(None, false, unreachable())).expect("placed");
        assert_eq!(
            placement,
            Placement::Relocate("/var/lib/msgengine/0123456789abcdef".into())
        );
    }

    #[test]
    fn a_recorded_location_wins() {
        let placement =
            decide_placement(inputs(Some("/srv/pg"), true, unreachable())).expect("placed");
        assert_eq!(placement, Placement::Recorded("/srv/pg".into()));
    }

    #[test]
    fn an_existing_cluster_that_became_unreachable_is_an_error_not_a_fresh_cluster() {
        let outcome = decide_placement(inputs(None, true, unreachable()));
        assert!(matches!(outcome, Err(EmbeddedError::Unreachable { .. })));
    }

    #[test]
    fn relocated_dirs_are_stable_per_data_dir() {
        let base = Path::new(RELOCATED_BASE);
        let a = relocated_dir(base, Path::new("/root/repo/data"));
        assert_eq!(a, relocated_dir(base, Path::new("/root/repo/data")));
        assert_ne!(a, relocated_dir(base, Path::new("/root/other/data")));
        assert!(a.starts_with(base));
        assert_eq!(a.file_name().map(|n| n.len()), Some(16));
    }
}

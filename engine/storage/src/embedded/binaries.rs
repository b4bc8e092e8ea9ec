//! Locating the PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::EmbeddedError;

/// The binaries a usable bin dir must hold side by side.
const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Locate the bin dir: `initdb` on PATH (symlinks resolved; pg_ctl and postgres must be
/// siblings), else the highest version under /usr/lib/postgresql/*/bin, else /usr/pgsql-*/bin.
pub fn find_binaries() -> Result<PathBuf, EmbeddedError> {
    let on_path = which::which("initdb")
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let candidates = on_path
        .into_iter()
        .chain(versioned_bin_dirs(Path::new("/usr/lib/postgresql"), ""))
        .chain(versioned_bin_dirs(Path::new("/usr"), "pgsql-"));
    pick_bin_dir(candidates).ok_or(EmbeddedError::BinariesNotFound)
}

/// The first candidate that holds all server binaries.
fn pick_bin_dir(candidates: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    candidates.into_iter().find(|dir| {
        SERVER_BINARIES.iter().all(|name| {
            std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

/// `parent/<prefix><version>/bin` for every entry whose suffix is a version, highest first.
fn versioned_bin_dirs(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = parse_version(name.strip_prefix(prefix)?)?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// "9.6" -> [9, 6]; anything not purely dotted numbers -> None.
fn parse_version(text: &str) -> Option<Vec<u32>> {
    text.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("msgengine-embedded-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    fn fake_bin_dir(dir: &Path, binaries: &[&str]) {
        std::fs::create_dir_all(dir).expect("create bin dir");
        for name in binaries {
            let path = dir.join(name);
            std::fs::write(&path, "#!/bin/sh\n").expect("write fake binary");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod fake binary");
        }
    }

    #[test]
    fn versioned_dirs_are_ordered_numerically_and_incomplete_ones_are_skipped() {
        let root = scratch_dir();
        fake_bin_dir(&root.join("9.6/bin"), &SERVER_BINARIES);
        fake_bin_dir(&root.join("10/bin"), &SERVER_BINARIES);
        fake_bin_dir(&root.join("15/bin"), &SERVER_BINARIES);
        fake_bin_dir(&root.join("16/bin"), &["initdb", "pg_ctl"]);
        fake_bin_dir(&root.join("latest/bin"), &SERVER_BINARIES);
        let dirs = versioned_bin_dirs(&root, "");
        let names: Vec<_> = dirs
            .iter()
            .map(|d| d.strip_prefix(&root).expect("under root").to_owned())
            .collect();
        let expected: Vec<PathBuf> = ["16/bin", "15/bin", "10/bin", "9.6/bin"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(names, expected);
        assert_eq!(pick_bin_dir(dirs), Some(root.join("15/bin")));
        std::fs::remove_dir_all(root).expect("remove scratch dir");
    }

    #[test]
    fn prefixed_versions_are_found() {
        let root = scratch_dir();
        fake_bin_dir(&root.join("pgsql-13/bin"), &SERVER_BINARIES);
        fake_bin_dir(&root.join("pgsql-14/bin"), &SERVER_BINARIES);
        fake_bin_dir(&root.join("lib/bin"), &SERVER_BINARIES);
        assert_eq!(
            pick_bin_dir(versioned_bin_dirs(&root, "pgsql-")),
            Some(root.join("pgsql-14/bin"))
        );
        assert_eq!(
            pick_bin_dir(versioned_bin_dirs(&root.join("missing"), "")),
            None
        );
        std::fs::remove_dir_all(root).expect("remove scratch dir");
    }

    #[test]
    fn parse_version_accepts_only_dotted_numbers() {
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("16"), Some(vec![16]));
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("16beta"), None);
    }
}

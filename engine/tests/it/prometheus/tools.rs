//! `prometheus` and `promtool` for the tests, brought by the harness itself when the machine
//! lacks them, so `cargo test --workspace` needs nothing installed beyond Rust and PostgreSQL.
//!
//! Found on PATH or in /usr/bin; otherwise the Debian package `prometheus` is downloaded
//! without root (`apt-get download`: with the machine's package lists, else with fresh lists
//! in a private directory) and unpacked with `dpkg-deb -x` into `<target>/tools/prometheus`,
//! where later runs find it. Test processes run in parallel: a `flock` on the cache's lock file
//! makes one of them fetch while the others wait. Nothing works: a panic naming what to
//! install, never a skipped test.
//!
//! `MSGENGINE_TEST_TOOLS=fetch` ignores PATH and /usr/bin (to prove the fetch path on a
//! machine that has the binaries).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};

/// The Debian package holding both binaries.
const PACKAGE: &str = "prometheus";
/// The binaries the tests use.
const TOOLS: [&str; 2] = ["prometheus", "promtool"];

/// A tool on PATH or in /usr/bin, else from the fetched package. Panics with instructions
/// when it can be had neither way.
pub fn tool(name: &str) -> PathBuf {
    static FETCHED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let use_system = std::env::var("MSGENGINE_TEST_TOOLS").as_deref() != Ok("fetch");
    if use_system {
        if let Some(found) = on_system(name) {
            return found;
        }
    }
    match FETCHED.get_or_init(|| fetch(&cache_dir())) {
        Ok(bin) => bin.join(name),
        Err(why) => panic!(
            "`{name}` is not on PATH or in /usr/bin and could not be fetched: {why}\n\
             Install the Debian package `{PACKAGE}` (apt-get install {PACKAGE}), or put \
             `prometheus` and `promtool` on PATH, then run the tests again."
        ),
    }
}

fn on_system(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `<target>/tools/prometheus` (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn cache_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("tools").join(PACKAGE)
}

/// The directory holding both binaries, fetching the package into `cache` unless an earlier
/// run (or a parallel test process) already did.
fn fetch(cache: &Path) -> Result<PathBuf, String> {
    let bin = cache.join("root/usr/bin");
    let ready = || TOOLS.iter().all(|t| bin.join(t).is_file());
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let _lock = lock(&cache.join("fetch.lock"))?;
    if ready() {
        return Ok(bin);
    }
    let work = cache.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let deb = download(&work)?;
    let unpacked = work.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    if !TOOLS
        .iter()
        .all(|t| unpacked.join("usr/bin").join(t).is_file())
    {
        return Err(format!(
            "{} holds no usr/bin/prometheus and usr/bin/promtool",
            deb.display()
        ));
    }
    // Into place in one rename: a reader sees the whole tree or none.
    let _ = std::fs::remove_dir_all(cache.join("root"));
    std::fs::rename(&unpacked, cache.join("root"))
        .map_err(|e| format!("cannot move the unpacked package into place: {e}"))?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "fetched the Debian package `{PACKAGE}` into {}",
        cache.display()
    );
    Ok(bin)
}

/// Downloads the package's .deb into `work`: with the machine's package lists, else (lists
/// empty or stale) after fetching fresh lists into a private directory.
fn download(work: &Path) -> Result<PathBuf, String> {
    let with_system_lists = run(Command::new("apt-get")
        .args(["-q", "download", PACKAGE])
        .current_dir(work));
    if let Err(first) = with_system_lists {
        let lists = work.join("lists");
        let cache = work.join("apt-cache");
        for dir in [lists.join("partial"), cache.join("archives/partial")] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let private = |cmd: &mut Command| {
            cmd.arg("-q")
                .arg("-o")
                .arg(format!("Dir::State::Lists={}", lists.display()))
                .arg("-o")
                .arg(format!("Dir::Cache={}", cache.display()))
                .args(["-o", "Debug::NoLocking=1"])
                .current_dir(work);
        };
        let mut update = Command::new("apt-get");
        private(&mut update);
        let mut get = Command::new("apt-get");
        private(&mut get);
        run(update.arg("update"))
            .and_then(|()| run(get.args(["download", PACKAGE])))
            .map_err(|second| {
                format!(
                    "apt-get download failed ({first}), and with fresh package lists ({second})"
                )
            })?;
    }
    let deb = std::fs::read_dir(work)
        .map_err(|e| format!("cannot list {}: {e}", work.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"));
    deb.ok_or_else(|| format!("apt-get download left no .deb in {}", work.display()))
}

fn lock(path: &Path) -> Result<Flock<File>, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| format!("cannot lock {}: {errno}", path.display()))
}

/// Runs a command; a failure carries the last lines it printed.
fn run(cmd: &mut Command) -> Result<(), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    Err(format!(
        "{program} exited with {}: {}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

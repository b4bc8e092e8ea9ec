//! The watchdog that stops the throwaway test cluster once the tests are done.
//!
//! A detached `sh` loop (own process group, stdio closed, reparented to init) runs as the
//! cluster's OS user. Every 5 s it exits if the server is gone; once the `last-used` marker
//! (touched by every `TestDb`) is older than the idle window and `psql` sees no client backend
//! but its own, it takes the cluster lock (so a test process cannot adopt the server while it
//! stops), checks again, runs `pg_ctl stop -m fast` and exits. Without psql the window is 300 s.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use msgengine_storage::embedded::Cluster;

/// Idle window with the psql client-backend check, seconds.
const IDLE_SECS: u32 = 60;
/// Idle window when psql is missing (or keeps failing), seconds.
const IDLE_SECS_WITHOUT_PSQL: u32 = 300;

/// Arguments: pg_ctl, pgdata, marker, lock file, psql (may be empty), socket dir, port,
/// idle window, fallback window. The loop runs in a background subshell so `sh` itself exits
/// at once and we can reap it.
const SCRIPT: &str = r#"
pg_ctl=$1 pgdata=$2 marker=$3 lock=$4 psql=$5 sock=$6 port=$7 idle=$8 fallback=$9
idle_secs() {
    used=$(stat -c %Y "$marker" 2>/dev/null || echo 0)
    echo $(( $(date +%s) - used ))
}
has_clients() {
    [ -n "$psql" ] || return 1
    n=$("$psql" -X -q -A -t -h "$sock" -p "$port" -U msgengine -d postgres -c \
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" \
        2>/dev/null) || { [ "$(idle_secs)" -lt "$fallback" ]; return; }
    [ "$n" != 0 ]
}
is_idle() {
    [ "$(idle_secs)" -ge "$idle" ] && ! has_clients
}
(
    if [ -r "$lock" ]; then exec 9<"$lock"; else exec 9</dev/null; fi
    while sleep 5; do
        "$pg_ctl" status -D "$pgdata" >/dev/null 2>&1 || exit 0
        is_idle || continue
        flock 9 2>/dev/null
        if is_idle; then
            "$pg_ctl" stop -D "$pgdata" -m fast -w >/dev/null 2>&1
            exit 0
        fi
        flock -u 9 2>/dev/null
    done
) </dev/null >/dev/null 2>&1 &
"#;

/// Starts the watchdog for `cluster`; `marker` is the `last-used` file.
pub(crate) fn spawn(cluster: &Cluster, marker: &Path) -> std::io::Result<()> {
    let psql = cluster.bin_dir().join("psql");
    let (psql, idle) = if psql.is_file() {
        (psql.into_os_string(), IDLE_SECS)
    } else {
        (Default::default(), IDLE_SECS_WITHOUT_PSQL)
    };
    let mut cmd = cluster.os_command("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("msgengine-test-pg-watchdog")
        .arg(cluster.bin_dir().join("pg_ctl"))
        .arg(cluster.pgdata())
        .arg(marker)
        .arg(cluster.lock_path())
        .arg(psql)
        .arg(cluster.socket_dir())
        .arg(cluster.port().to_string())
        .arg(idle.to_string())
        .arg(IDLE_SECS_WITHOUT_PSQL.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of the test runner's process group: Ctrl-C on the tests must not kill it.
        .process_group(0);
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "watchdog shell exited with {status}"
        )))
    }
}

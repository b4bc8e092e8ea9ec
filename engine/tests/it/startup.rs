//! Start-up as an operator meets it: the real binary, its private PostgreSQL,
//! generated development secrets, production refusals.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A fresh data directory under /tmp (reachable by the unprivileged user
/// PostgreSQL runs as when the tests run as root), removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("msgengine-serve-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create data dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self(dir)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn serve(data: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_msgengine"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .env_remove("DATABASE_URL")
    .env_remove("MSGENGINE_ADMIN_TOKEN")
    .env_remove("MSGENGINE_MASTER_KEYS")
    .env_remove("MSGENGINE_MASTER_KEYS_FILE")
    .env_remove("MSGENGINE_ENV")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawns msgengine")
}

async fn wait_ready(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("http://127.0.0.1:{port}/readyz");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("msgengine exited early: {status}");
        }
        if let Ok(res) = reqwest::get(&url).await {
            if res.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("msgengine did not become ready within 60 s");
}

async fn stop(child: &mut Child) -> std::process::ExitStatus {
    let pid = Pid::from_raw(child.id().expect("running").try_into().expect("pid"));
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits within 60 s")
        .expect("exit status")
}

#[tokio::test]
async fn serve_without_database_url_runs_its_own_postgres_and_stops_it_on_exit() {
    let data = DataDir::new();
    let port = free_port();
    let mut server = serve(&data.0, port, &[]);
    wait_ready(port, &mut server).await;

    // Development secrets were generated, private to their owner.
    for file in ["admin-token", "master.keys"] {
        let mode = std::fs::metadata(data.0.join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let token = std::fs::read_to_string(data.0.join("admin-token")).expect("token");
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/admin/organizations"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({"name": "first"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    assert!(data.0.join("postgres/pgdata/PG_VERSION").exists());

    // A second server on the same data directory is refused in words.
    let second = serve(&data.0, free_port(), &[])
        .wait_with_output()
        .await
        .expect("runs");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running with data directory"));

    let status = stop(&mut server).await;
    assert!(status.success(), "{status}");
    assert!(
        !data.0.join("postgres/pgdata/postmaster.pid").exists(),
        "the private PostgreSQL stopped with the server"
    );

    // A restart reuses the cluster and the secrets: the organization is still there.
    let port = free_port();
    let mut server = serve(&data.0, port, &[]);
    wait_ready(port, &mut server).await;
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/admin/organizations"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("request");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["organizations"][0]["name"], "first");
    assert!(stop(&mut server).await.success());
}

#[tokio::test]
async fn production_mode_refuses_to_start_without_a_key_ring() {
    let data = DataDir::new();
    let out = serve(
        &data.0,
        free_port(),
        &[
            ("MSGENGINE_ENV", "production"),
            (
                "MSGENGINE_ADMIN_TOKEN",
                "prod-admin-token-0123456789abcdef01234",
            ),
        ],
    )
    .wait_with_output()
    .await
    .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MSGENGINE_MASTER_KEYS"), "{stderr}");
    assert!(
        !data.0.join("master.keys").exists(),
        "nothing generated in production"
    );
}

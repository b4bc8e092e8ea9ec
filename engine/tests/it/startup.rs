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

/// A private home like root's own `/root` (0700), with the repository inside:
/// `<tmp>/home` 0700 / `repo/data`. Removed on drop, with the relocated cluster.
struct PrivateHome {
    root: PathBuf,
    data: PathBuf,
}

impl PrivateHome {
    fn new() -> Self {
        let root =
            std::env::temp_dir().join(format!("msgengine-home-{}", uuid::Uuid::new_v4().simple()));
        let home = root.join("home");
        let data = home.join("repo").join("data");
        std::fs::create_dir_all(&data).expect("create home");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        Self { root, data }
    }

    fn recorded_cluster(&self) -> Option<PathBuf> {
        std::fs::read_to_string(self.data.join(msgengine_storage::embedded::LOCATION_FILE))
            .ok()
            .map(|text| PathBuf::from(text.trim()))
    }
}

impl Drop for PrivateHome {
    fn drop(&mut self) {
        if let Some(cluster) = self.recorded_cluster() {
            // A server left running by a failed assertion: stop it as its owner.
            let owner =
                std::fs::metadata(&cluster).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
            if let (Ok(bin), Ok(uid)) = (msgengine_storage::embedded::find_binaries(), owner) {
                let _ = std::os::unix::process::CommandExt::uid(
                    std::process::Command::new(bin.join("pg_ctl"))
                        .arg("stop")
                        .arg("-D")
                        .arg(cluster.join("pgdata"))
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                    uid,
                )
                .status();
            }
            let _ = std::fs::remove_dir_all(cluster);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn organization_names(port: u16, token: &str) -> Vec<String> {
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/admin/organizations"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let body: serde_json::Value = res.json().await.expect("json");
    body["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .map(|o| o["name"].as_str().expect("name").to_owned())
        .collect()
}

/// The README's first command, run as root from a repository in a 0700 home: PostgreSQL runs
/// as `postgres`, which cannot enter the home, so the cluster goes to /var/lib/msgengine and the
/// data directory records where; restarts and `keys rotate` find it there. Not root (a
/// developer's machine): the placement rule itself is checked for the same directories.
#[tokio::test]
async fn serve_as_root_from_a_private_home_places_its_cluster_where_postgres_can_reach_it() {
    use msgengine_storage::embedded::{self, Placement};
    let home = PrivateHome::new();
    if !nix::unistd::Uid::effective().is_root() {
        let relocated = embedded::relocated_dir(Path::new(embedded::RELOCATED_BASE), &home.data);
        let unreachable = msgengine_storage::embedded::EmbeddedError::Unreachable {
            user: "postgres".into(),
            dir: home.data.join("postgres"),
            blocker: home.root.join("home"),
            mode: 0o700,
        };
        let placement = embedded::decide_placement(embedded::PlacementInputs {
            recorded: None,
            local: home.data.join("postgres"),
            local_initialised: false,
            local_reachable: Err(unreachable),
            relocated: relocated.clone(),
        })
        .expect("placed");
        assert_eq!(placement, Placement::Relocate(relocated));
        // Without root nothing is relocated: the cluster stays in the data directory.
        let dir = embedded::cluster_dir_for(&home.data).expect("placed");
        assert_eq!(
            dir,
            home.data
                .canonicalize()
                .expect("canonical")
                .join("postgres")
        );
        return;
    }

    let port = free_port();
    let mut server = serve(&home.data, port, &[]);
    wait_ready(port, &mut server).await;
    let cluster = home
        .recorded_cluster()
        .expect("data/cluster-location names the cluster");
    assert!(cluster.starts_with(embedded::RELOCATED_BASE), "{cluster:?}");
    assert!(cluster.join("pgdata/PG_VERSION").exists());
    let meta = std::fs::metadata(&cluster).expect("cluster dir");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let postgres = nix::unistd::User::from_name("postgres")
        .expect("user lookup")
        .expect("a postgres user");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        postgres.uid.as_raw()
    );
    // The other contents of the data directory stay in it.
    for file in ["admin-token", "master.keys", "msgengine.lock"] {
        assert!(home.data.join(file).exists(), "{file}");
    }
    assert!(!home.data.join("postgres").exists());

    let token = std::fs::read_to_string(home.data.join("admin-token")).expect("token");
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/admin/organizations"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({"name": "in-private-home"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);

    // `keys rotate` next to the running server uses the same cluster.
    let rotate = Command::new(env!("CARGO_BIN_EXE_msgengine"))
        .args(["keys", "rotate", "--data-dir"])
        .arg(&home.data)
        .env_remove("DATABASE_URL")
        .env_remove("MSGENGINE_MASTER_KEYS")
        .env_remove("MSGENGINE_MASTER_KEYS_FILE")
        .env_remove("MSGENGINE_ENV")
        .output()
        .await
        .expect("keys rotate runs");
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(stop(&mut server).await.success());
    assert!(!cluster.join("pgdata/postmaster.pid").exists());

    // A restart finds the recorded cluster, with its data.
    let port = free_port();
    let mut server = serve(&home.data, port, &[]);
    wait_ready(port, &mut server).await;
    assert_eq!(home.recorded_cluster(), Some(cluster));
    assert_eq!(
        organization_names(port, token.trim()).await,
        vec!["in-private-home".to_owned()]
    );
    assert!(stop(&mut server).await.success());
}

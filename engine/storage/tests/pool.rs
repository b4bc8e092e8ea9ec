//! The pool against real PostgreSQL servers: TLS as `sslmode` asks (a throwaway cluster with
//! `ssl=on` on loopback TCP and certificates made here), and the statement and lock timeouts
//! every pooled connection carries.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use msgengine_storage::embedded::{Cluster, ClusterOptions};
use msgengine_storage::{connect_pool, PoolSettings, StoreError};
use msgengine_testkit::TestDb;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A certificate authority made for the test.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { cert, key }
    }

    /// A server certificate for `names`, and its private key (both PEM).
    fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A throwaway cluster with TLS on 127.0.0.1, removed on drop (after `stop`).
struct TlsServer {
    cluster: Option<Cluster>,
    dir: PathBuf,
    port: u16,
}

impl TlsServer {
    /// Starts a cluster whose certificate (issued by `authority`) names only `localhost`.
    async fn start(authority: &Authority) -> TlsServer {
        let dir = std::env::temp_dir().join(format!("msgengine-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let (cert, key) = authority.issue(&["localhost"]);
        let cert_file = write_owned_by_server(&dir, "server.crt", &cert);
        let key_file = write_owned_by_server(&dir, "server.key", &key);
        let port = free_port();
        let cluster = Cluster::start(ClusterOptions {
            dir: dir.join("cluster"),
            unsafe_fast: true,
            extra_settings: vec![
                ("ssl".to_owned(), "on".to_owned()),
                ("ssl_cert_file".to_owned(), path_text(&cert_file)),
                ("ssl_key_file".to_owned(), path_text(&key_file)),
            ],
            tcp: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        })
        .await
        .expect("a TLS cluster starts");
        TlsServer {
            cluster: Some(cluster),
            dir,
            port,
        }
    }

    fn conninfo(&self, host: &str, tls: &str) -> String {
        format!(
            "host={host} port={} user=msgengine dbname=msgengine {tls}",
            self.port
        )
    }

    async fn stop(mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.stop().await.expect("stops");
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A 0600 file the server's OS user owns (PostgreSQL refuses a key others can read; as root
/// the server runs as `postgres`).
fn write_owned_by_server(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if nix::unistd::Uid::effective().is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .or_else(|| nix::unistd::User::from_name("nobody").ok().flatten())
            .expect("the server's OS user");
        std::os::unix::fs::chown(&path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .expect("chown");
    }
    path
}

fn write_pem(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write");
    path_text(&path)
}

/// Whether the pool's connection is encrypted, as the server sees it.
async fn encrypted(conninfo: &str) -> Result<bool, StoreError> {
    let pool = connect_pool(conninfo, &PoolSettings::default()).await?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_encrypts_and_verifies_as_libpq_does() {
    let authority = Authority::new("msgengine test CA");
    let stranger = Authority::new("someone else's CA");
    let server = TlsServer::start(&authority).await;
    let root = write_pem(&server.dir, "root.crt", &authority.cert.pem());
    let wrong_root = write_pem(&server.dir, "wrong.crt", &stranger.cert.pem());

    // Encrypted without verification, or not at all.
    let require = server.conninfo("127.0.0.1", "sslmode=require");
    assert!(encrypted(&require).await.expect("require connects"));
    let disable = server.conninfo("127.0.0.1", "sslmode=disable");
    assert!(!encrypted(&disable).await.expect("disable connects"));

    // verify-full: the chain to the given root and the host name.
    let full = server.conninfo(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={root}"),
    );
    assert!(encrypted(&full).await.expect("verify-full connects"));
    let url = format!(
        "postgresql://msgengine@localhost:{}/msgengine?sslmode=verify-full&sslrootcert={root}",
        server.port
    );
    assert!(encrypted(&url).await.expect("the URL form connects"));

    // The wrong root: refused, saying why.
    let wrong = server.conninfo(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={wrong_root}"),
    );
    let err = encrypted(&wrong)
        .await
        .expect_err("an untrusted server is refused");
    assert!(
        matches!(&err, StoreError::Unavailable(why) if why.contains("UnknownIssuer")),
        "{err}"
    );
    // A name the certificate does not carry: verify-full refuses, verify-ca accepts.
    let by_ip = server.conninfo(
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={root}"),
    );
    let err = encrypted(&by_ip)
        .await
        .expect_err("a wrong host name is refused");
    assert!(
        matches!(&err, StoreError::Unavailable(why) if why.contains("not valid for name")),
        "{err}"
    );
    let ca_only = server.conninfo(
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={root}"),
    );
    assert!(encrypted(&ca_only).await.expect("verify-ca connects"));
    let ca_wrong = server.conninfo(
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={wrong_root}"),
    );
    assert!(encrypted(&ca_wrong).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_statement_past_the_timeout_fails_as_unavailable() {
    let db = TestDb::new().await;
    let settings = PoolSettings {
        max_size: 2,
        statement_timeout_ms: 200,
        ..PoolSettings::default()
    };
    let pool = connect_pool(&db.conninfo, &settings).await.expect("pool");
    let client = pool.get().await.expect("connection");
    let err = client
        .simple_query("SELECT pg_sleep(30)")
        .await
        .map(|_| ())
        .map_err(StoreError::from)
        .expect_err("cancelled by statement_timeout");
    assert!(
        matches!(&err, StoreError::Unavailable(why) if why.contains("57014")),
        "{err}"
    );
    // The connection stays usable.
    client.simple_query("SELECT 1").await.expect("still usable");
}

#[tokio::test]
async fn a_lock_wait_past_the_timeout_fails_as_unavailable() {
    let db = TestDb::new().await;
    let settings = PoolSettings {
        max_size: 2,
        lock_timeout_ms: 200,
        ..PoolSettings::default()
    };
    let pool = connect_pool(&db.conninfo, &settings).await.expect("pool");
    let mut holder = pool.get().await.expect("connection");
    holder
        .batch_execute("CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held VALUES (1)")
        .await
        .expect("table");
    let tx = holder.transaction().await.expect("tx");
    tx.execute("SELECT id FROM held WHERE id = 1 FOR UPDATE", &[])
        .await
        .expect("lock");
    let waiter = pool.get().await.expect("connection");
    let err = waiter
        .execute("UPDATE held SET id = 2 WHERE id = 1", &[])
        .await
        .map_err(StoreError::from)
        .expect_err("gives up after lock_timeout");
    assert!(
        matches!(&err, StoreError::Unavailable(why) if why.contains("55P03")),
        "{err}"
    );
    tx.rollback().await.expect("rollback");
}

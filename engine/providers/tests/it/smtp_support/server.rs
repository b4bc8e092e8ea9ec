//! A real SMTP server for the SMTP adapter's tests: `smtp_server.py`
//! (aiosmtpd) started on 127.0.0.1 on a free port, with AUTH PLAIN/LOGIN for
//! one fixed user, optionally STARTTLS or implicit TLS with a certificate
//! from a throwaway CA made here (rcgen), writing every accepted message as
//! JSON into a private directory the test reads.
//!
//! Needs a python3 that can `import aiosmtpd` (Debian: python3-aiosmtpd,
//! installed by .ci/run; or `pip install aiosmtpd`). Without one the test
//! fails with that instruction; it is never skipped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::smtp::SmtpOptions;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde::Deserialize;
use serde_json::json;

use crate::helpers;

/// The one user the server accepts.
pub const USER: &str = "relay-user";
/// Its password (a test value; it must never show in an error).
pub const PASSWORD: &str = "pw-Zq8t-Xv42-test-only";

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/smtp_support/smtp_server.py"
);
/// How long the server may take to say READY.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The server stops by itself after this long, whatever happens to the test.
const SERVER_LIFETIME_SECS: u32 = 120;

/// How the server secures connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain text (the adapter allows it on loopback only).
    Plain,
    /// STARTTLS offered and required before AUTH.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

impl Mode {
    /// The `smtpConfig.tls` value for this mode, also the server's `--tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "none",
            Mode::Starttls => "starttls",
            Mode::Implicit => "implicit",
        }
    }
}

/// A running server; stopped (and its directory removed) on drop.
pub struct SmtpServer {
    pub port: u16,
    pub mode: Mode,
    /// The test CA's certificate (PEM), for TLS modes.
    pub ca_pem: Option<Vec<u8>>,
    dir: PathBuf,
    child: Child,
    /// Held open: the server exits when it closes.
    stdin: Option<ChildStdin>,
}

/// One received message, as the server described it.
#[derive(Debug, Deserialize)]
pub struct Received {
    pub queue_id: String,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub auth_login: Option<String>,
    pub auth_mechanism: Option<String>,
    pub tls: bool,
    pub peer_port: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
    pub raw: String,
}

/// One MIME leaf part.
#[derive(Debug, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub filename: Option<String>,
    pub disposition: Option<String>,
    pub content_base64: String,
}

impl Part {
    pub fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.content_base64)
            .expect("server writes valid base64")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.bytes()).expect("utf-8 part")
    }
}

impl Received {
    /// Every value of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`.
    pub fn header(&self, name: &str) -> &str {
        match self.header_values(name).as_slice() {
            [one] => one,
            other => panic!("expected one {name} header, found {other:?}"),
        }
    }
}

impl SmtpServer {
    /// Starts a server offering AUTH PLAIN and LOGIN.
    pub fn start(mode: Mode) -> Self {
        Self::start_with(mode, "PLAIN,LOGIN")
    }

    /// Starts a server offering only the AUTH `mechanisms` given (comma-separated).
    pub fn start_with(mode: Mode, mechanisms: &str) -> Self {
        let python = python();
        let dir = std::env::temp_dir().join(format!("msgengine-smtp-{}", uuid::Uuid::new_v4()));
        let maildir = dir.join("mail");
        std::fs::create_dir_all(&maildir).expect("create the server's directory");
        let mut command = Command::new(python);
        command
            .arg(SCRIPT)
            .args(["--tls", mode.as_str()])
            .arg("--maildir")
            .arg(&maildir)
            .args(["--user", USER, "--password", PASSWORD])
            .args(["--auth-mechanisms", mechanisms])
            .args(["--slow-seconds", "3"])
            .args(["--max-seconds", &SERVER_LIFETIME_SECS.to_string()]);
        let ca_pem = (mode != Mode::Plain).then(|| {
            let (ca, cert, key) = certificates(&dir);
            command.arg("--cert").arg(cert).arg("--key").arg(key);
            ca
        });
        let log = std::fs::File::create(dir.join("server.log")).expect("create the server log");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn the SMTP test server");
        let stdin = child.stdin.take();
        let port = match read_ready(&mut child) {
            Ok(port) => port,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&dir);
                panic!("the SMTP test server did not start: {why}\n{log}");
            }
        };
        Self {
            port,
            mode,
            ca_pem,
            dir,
            child,
            stdin,
        }
    }

    /// Options trusting the test CA, with a short bound on each attempt.
    pub fn options(&self) -> SmtpOptions {
        SmtpOptions {
            send_timeout: Duration::from_secs(5),
            extra_root_certificates_pem: self.ca_pem.iter().cloned().collect(),
            ..SmtpOptions::default()
        }
    }

    /// An SMTP spec for this server (host `localhost`, the certificate's
    /// name) with the given credentials.
    pub fn spec(&self, user: &str, password: &str) -> AnyProviderSpec {
        self.spec_as(self.mode, user, password)
    }

    /// A spec pointing at this server but claiming TLS mode `mode`.
    pub fn spec_as(&self, mode: Mode, user: &str, password: &str) -> AnyProviderSpec {
        helpers::spec(
            Channel::Email,
            json!({"providerType": "SMTP", "name": "relay",
                   "fromEmail": "ops@example.com", "fromName": "Acme Ops",
                   "smtpConfig": {"host": "localhost", "port": self.port,
                                  "tls": mode.as_str(),
                                  "username": user, "password": password}}),
        )
    }

    /// The first `count` messages received, waiting up to 5 s for them.
    pub async fn received(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let files = self.message_files();
            if files.len() >= count {
                return files.iter().take(count).map(|p| read_message(p)).collect();
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} messages, the server has {}",
                files.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many messages the server has accepted so far.
    pub fn received_count(&self) -> usize {
        self.message_files().len()
    }

    fn message_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("mail"))
            .expect("read the server's mail directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_message(path: &Path) -> Received {
    let text = std::fs::read_to_string(path).expect("read a received message");
    serde_json::from_str(&text).expect("the server writes the documented JSON")
}

/// Waits for `READY <port>` on the server's stdout.
fn read_ready(child: &mut Child) -> Result<u16, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| format!("no READY line within {START_TIMEOUT:?}"))?;
    line.trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected first line {line:?}"))
}

/// The python3 that can import aiosmtpd: `MSGENGINE_TEST_PYTHON` if set,
/// else `python3` on PATH, else Debian's `/usr/bin/python3`.
fn python() -> &'static str {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let mut candidates: Vec<String> = std::env::var("MSGENGINE_TEST_PYTHON")
            .ok()
            .into_iter()
            .collect();
        candidates.extend(["python3".to_owned(), "/usr/bin/python3".to_owned()]);
        candidates
            .iter()
            .find(|python| {
                Command::new(python.as_str())
                    .args(["-c", "import aiosmtpd"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .cloned()
            .ok_or_else(|| candidates.join(", "))
    });
    match found {
        Ok(python) => python,
        Err(tried) => panic!(
            "the SMTP tests need a python3 with aiosmtpd (tried {tried}): install it with \
             `apt-get install python3-aiosmtpd` (Debian; .ci/run does this) or \
             `pip install aiosmtpd`, or point MSGENGINE_TEST_PYTHON at such an interpreter"
        ),
    }
}

/// A throwaway CA and a server certificate it signed for `localhost` and
/// 127.0.0.1; returns the CA's PEM and the server's cert and key paths.
fn certificates(dir: &Path) -> (Vec<u8>, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "msgengine SMTP test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("self-sign the CA");

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("sign the server certificate");

    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    std::fs::write(&cert_path, cert.pem()).expect("write the server certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write the server key");
    (ca.pem().into_bytes(), cert_path, key_path)
}

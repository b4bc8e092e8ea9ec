//! A real SMTP server for the SMTP adapter's tests, in the test process: the
//! SMTP server engine of the `mailin` crate (its command parser and session
//! state machine: EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL/RCPT/DATA with dot
//! un-stuffing, RSET, QUIT) on a Tokio listener on 127.0.0.1 on a free port,
//! with TLS by tokio-rustls (ring) and a certificate from a throwaway CA made
//! here (rcgen). Nothing outside the Rust toolchain is needed.
//!
//! `mailin-embedded` (the same project's ready-made server) is not used: its
//! session options are fixed, so it cannot allow AUTH on the plain loopback
//! port or know about implicit TLS, and its rustls brings in aws-lc-rs.
//!
//! AUTH PLAIN and LOGIN against one fixed user ([`USER`], [`PASSWORD`]), and
//! required: MAIL before a successful AUTH is answered
//! `530 5.7.0 Authentication required` (mailin itself would say 503).
//! STARTTLS mode offers AUTH only once the connection is upgraded.
//!
//! Scripted answers, chosen by the recipient's local part so one server covers
//! every classification test:
//!   defer451-... -> 451 4.3.0 at RCPT      defer421-... -> 421 4.7.0 at RCPT
//!   full452-...  -> 452 4.2.2 at RCPT      reject550-... -> 550 5.1.1 at RCPT
//!   toobig552-...-> 552 5.3.4 after DATA   policy554-... -> 554 5.7.1 after DATA
//!   slow-...     -> DATA answered only after [`SLOW_REPLY`]
//! Everything else is accepted with `250 2.0.0 Ok: queued as <QUEUEID>` and
//! recorded: the envelope, the authenticated login and mechanism, whether the
//! connection was TLS, the client's port (equal ports: one pooled connection
//! carried both), the raw message as received, its decoded headers, and every
//! MIME leaf part (parsed with `mailparse`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mailin::{Action, AuthMechanism, Handler, Response, Session, SessionBuilder};
use mailparse::{DispositionType, MailAddr, MailHeader, MailHeaderMap, ParsedMail, SingleInfo};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::smtp::SmtpOptions;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::helpers;

/// The one user the server accepts.
pub const USER: &str = "relay-user";
/// Its password (a test value; it must never show in an error).
pub const PASSWORD: &str = "pw-Zq8t-Xv42-test-only";

/// How long the server waits before answering DATA for `slow-…` recipients.
const SLOW_REPLY: Duration = Duration::from_secs(3);
/// The server stops by itself after this long, whatever happens to the test.
const SERVER_LIFETIME: Duration = Duration::from_secs(120);

const SCRIPTED_RCPT: &[(&str, u16, &str)] = &[
    (
        "defer451",
        451,
        "4.3.0 Temporary lookup failure, try again later",
    ),
    (
        "defer421",
        421,
        "4.7.0 Service not available, closing transmission channel",
    ),
    ("full452", 452, "4.2.2 Mailbox full"),
    (
        "reject550",
        550,
        "5.1.1 Recipient address rejected: User unknown",
    ),
];
const SCRIPTED_DATA: &[(&str, u16, &str)] = &[
    ("toobig552", 552, "5.3.4 Message size exceeds fixed limit"),
    ("policy554", 554, "5.7.1 Message rejected: content policy"),
];

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
    /// The `smtpConfig.tls` value for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "none",
            Mode::Starttls => "starttls",
            Mode::Implicit => "implicit",
        }
    }
}

/// A running server; stopped (its port closed, its connections dropped) on
/// drop.
pub struct SmtpServer {
    pub port: u16,
    pub mode: Mode,
    /// The test CA's certificate (PEM), for TLS modes.
    pub ca_pem: Option<Vec<u8>>,
    inbox: Arc<Mutex<Vec<Received>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// One received message, as the server saw it.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
pub struct Part {
    pub content_type: String,
    pub filename: Option<String>,
    pub disposition: Option<String>,
    /// The part's content with its transfer encoding undone.
    content: Vec<u8>,
}

impl Part {
    pub fn bytes(&self) -> Vec<u8> {
        self.content.clone()
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
        let mechanisms = mechanisms
            .split(',')
            .map(|m| match m.trim() {
                "PLAIN" => AuthMechanism::Plain,
                "LOGIN" => AuthMechanism::Login,
                other => panic!("the test server knows AUTH PLAIN and LOGIN, not {other}"),
            })
            .collect();
        let (ca_pem, tls) = match mode {
            Mode::Plain => (None, None),
            Mode::Starttls | Mode::Implicit => {
                let (ca_pem, acceptor) = certificates();
                (Some(ca_pem), Some(acceptor))
            }
        };
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the SMTP test server");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener
            .local_addr()
            .expect("the listener's address")
            .port();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let config = Arc::new(Config {
            mode,
            mechanisms,
            tls,
            inbox: Arc::clone(&inbox),
            queued: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        // Its own thread and runtime: independent of the test's (paused
        // clocks, blocking), and all of it gone once the thread is joined.
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the SMTP test server's runtime");
            // mailin's sessions are not Send: connections run on a LocalSet.
            tokio::task::LocalSet::new().block_on(&runtime, async move {
                let listener = TcpListener::from_std(listener).expect("a Tokio listener");
                tokio::select! {
                    _ = stopped => {}
                    _ = tokio::time::sleep(SERVER_LIFETIME) => {}
                    () = serve(listener, config) => {}
                }
            });
        });
        Self {
            port,
            mode,
            ca_pem,
            inbox,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Options trusting the test CA, with a short bound on each attempt.
    pub fn options(&self) -> SmtpOptions {
        SmtpOptions {
            send_timeout: Duration::from_secs(5),
            extra_root_certificates_pem: self.ca_pem.iter().cloned().collect(),
            address_policy: msgengine_providers::AddressPolicy::Loopback,
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
            {
                let inbox = self.inbox.lock().expect("the inbox lock");
                if inbox.len() >= count {
                    return inbox.iter().take(count).cloned().collect();
                }
                assert!(
                    Instant::now() < deadline,
                    "expected {count} messages, the server has {}",
                    inbox.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many messages the server has accepted so far.
    pub fn received_count(&self) -> usize {
        self.inbox.lock().expect("the inbox lock").len()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Joined, so the port is closed when drop returns.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every connection shares.
struct Config {
    mode: Mode,
    mechanisms: Vec<AuthMechanism>,
    tls: Option<TlsAcceptor>,
    inbox: Arc<Mutex<Vec<Received>>>,
    queued: AtomicU64,
}

async fn serve(listener: TcpListener, config: Arc<Config>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let config = Arc::clone(&config);
        tokio::task::spawn_local(async move {
            // A client that goes away mid-session is no error here.
            let _ = connection(stream, peer, config).await;
        });
    }
}

/// One SMTP session; the connection closes when this returns.
async fn connection(stream: TcpStream, peer: SocketAddr, config: Arc<Config>) -> io::Result<()> {
    let state = Arc::new(Mutex::new(ConnState::default()));
    let mut builder = SessionBuilder::new("smtp.test");
    for mechanism in &config.mechanisms {
        builder.enable_auth(mechanism.clone());
    }
    match config.mode {
        // Loopback plain text: AUTH without TLS is the point of this mode.
        Mode::Plain => builder.insecure_enable_plaintext_auth(),
        Mode::Starttls => builder.enable_start_tls(),
        Mode::Implicit => &mut builder,
    };
    let handler = Conn {
        config: Arc::clone(&config),
        state: Arc::clone(&state),
        peer_port: peer.port(),
    };
    let mut session = builder.build(peer.ip(), handler);

    let stream = match (config.mode, &config.tls) {
        (Mode::Implicit, Some(acceptor)) => {
            let tls = acceptor.accept(stream).await?;
            tls_active(&mut session, &state);
            return converse(&mut session, &mut BufStream::new(tls), &state, &config)
                .await
                .map(drop);
        }
        _ => stream,
    };
    let mut plain = BufStream::new(stream);
    if converse(&mut session, &mut plain, &state, &config).await? == End::UpgradeTls {
        let Some(acceptor) = &config.tls else {
            return Ok(());
        };
        // The client waits for our 220 before its handshake: nothing is
        // left in the read buffer.
        let tls = acceptor.accept(plain.into_inner()).await?;
        tls_active(&mut session, &state);
        converse(&mut session, &mut BufStream::new(tls), &state, &config).await?;
    }
    Ok(())
}

fn tls_active(session: &mut Session<Conn>, state: &Mutex<ConnState>) {
    state.lock().expect("the connection's lock").tls = true;
    session.tls_active();
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    UpgradeTls,
}

/// Feeds the client's lines to the session and writes its answers; the
/// greeting first unless the session is already past it (after STARTTLS).
async fn converse<S>(
    session: &mut Session<Conn>,
    io: &mut S,
    state: &Mutex<ConnState>,
    config: &Config,
) -> io::Result<End>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let greeted = std::mem::replace(&mut state.lock().expect("the lock").greeted, true);
    if !greeted {
        write(io, &session.greeting()).await?;
    }
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Ok(End::Closed);
        }
        let needs_auth = {
            let s = state.lock().expect("the lock");
            !s.in_data && s.auth.is_none() && starts_with_ignore_case(&line, b"MAIL ")
        };
        let response = if needs_auth {
            Response::custom(530, "5.7.0 Authentication required".to_owned())
        } else {
            session.process(&line)
        };
        let (slow, delivered, reply) = {
            let mut s = state.lock().expect("the lock");
            (
                std::mem::take(&mut s.slow),
                s.delivered.take(),
                s.reply.take(),
            )
        };
        let response = reply.unwrap_or(response);
        if slow {
            tokio::time::sleep(SLOW_REPLY).await;
        }
        // Visible to the test before the client reads our 250.
        if let Some(message) = delivered {
            config.inbox.lock().expect("the inbox lock").push(message);
        }
        match response.action {
            Action::NoReply => {}
            Action::Reply => write(io, &response).await?,
            Action::Close => {
                write(io, &response).await?;
                return Ok(End::Closed);
            }
            Action::UpgradeTls => {
                write(io, &response).await?;
                return Ok(End::UpgradeTls);
            }
        }
    }
}

async fn write<S: AsyncWrite + Unpin>(io: &mut S, response: &Response) -> io::Result<()> {
    let mut bytes = Vec::new();
    response.write_to(&mut bytes)?;
    io.write_all(&bytes).await?;
    io.flush().await
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// One connection's state, shared by its [`Conn`] handler (owned by the
/// mailin session) and the loop driving it.
#[derive(Default)]
struct ConnState {
    greeted: bool,
    tls: bool,
    /// The authenticated login and mechanism.
    auth: Option<(String, &'static str)>,
    in_data: bool,
    mail_from: String,
    rcpt_tos: Vec<String>,
    data: Vec<u8>,
    /// Answer the current command only after [`SLOW_REPLY`].
    slow: bool,
    /// A message accepted by the current command.
    delivered: Option<Received>,
    /// The answer to the end of DATA, when it is not the 250 the handler
    /// gave mailin: mailin stays in its DATA state after an error from
    /// `data_end` (reading the next command as message text), whereas RFC
    /// 5321 ends the transaction with the reply either way.
    reply: Option<Response>,
}

/// The mailin handler: the server's decisions for one connection.
struct Conn {
    config: Arc<Config>,
    state: Arc<Mutex<ConnState>>,
    peer_port: u16,
}

impl Conn {
    fn state(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().expect("the connection's lock")
    }

    fn authenticate(&mut self, login: &str, password: &str, mechanism: &'static str) -> Response {
        if login == USER && password == PASSWORD {
            self.state().auth = Some((login.to_owned(), mechanism));
            mailin::response::AUTH_OK
        } else {
            Response::custom(535, "5.7.8 Authentication credentials invalid".to_owned())
        }
    }
}

impl Handler for Conn {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, from: &str) -> Response {
        let mut s = self.state();
        s.mail_from = from.to_owned();
        s.rcpt_tos.clear();
        s.data.clear();
        Response::custom(250, "2.1.0 Ok".to_owned())
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let tag = local_tag(to);
        if let Some((_, code, text)) = SCRIPTED_RCPT.iter().find(|(t, _, _)| *t == tag) {
            return Response::custom(*code, (*text).to_owned());
        }
        self.state().rcpt_tos.push(to.to_owned());
        Response::custom(250, "2.1.5 Ok".to_owned())
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.state().in_data = true;
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.state().data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let peer_port = self.peer_port;
        let queued = self.config.queued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = self.state();
        s.in_data = false;
        let tags: Vec<String> = s.rcpt_tos.iter().map(|a| local_tag(a)).collect();
        s.slow = tags.iter().any(|t| t == "slow");
        if let Some((_, code, text)) = SCRIPTED_DATA
            .iter()
            .find(|(t, _, _)| tags.iter().any(|tag| tag == t))
        {
            s.reply = Some(Response::custom(*code, (*text).to_owned()));
            return mailin::response::OK;
        }
        let queue_id = format!("Q{}N{queued}", std::process::id());
        match describe(&s, &queue_id, peer_port) {
            Ok(message) => {
                s.delivered = Some(message);
                Response::custom(250, format!("2.0.0 Ok: queued as {queue_id}"))
            }
            Err(e) => {
                s.reply = Some(Response::custom(
                    554,
                    format!("5.6.0 unparseable message: {e}"),
                ));
                mailin::response::OK
            }
        }
    }

    fn auth_plain(&mut self, _authorization_id: &str, login: &str, password: &str) -> Response {
        self.authenticate(login, password, "PLAIN")
    }

    fn auth_login(&mut self, login: &str, password: &str) -> Response {
        self.authenticate(login, password, "LOGIN")
    }
}

/// The recipient's local part up to its first `-`, lower-cased.
fn local_tag(address: &str) -> String {
    let local = address.split('@').next().unwrap_or_default().to_lowercase();
    local.split('-').next().unwrap_or_default().to_owned()
}

fn describe(
    s: &ConnState,
    queue_id: &str,
    peer_port: u16,
) -> Result<Received, mailparse::MailParseError> {
    let message = mailparse::parse_mail(&s.data)?;
    let mut parts = Vec::new();
    leaves(&message, &mut parts)?;
    let (auth_login, auth_mechanism) = match &s.auth {
        Some((login, mechanism)) => (Some(login.clone()), Some((*mechanism).to_owned())),
        None => (None, None),
    };
    Ok(Received {
        queue_id: queue_id.to_owned(),
        mail_from: s.mail_from.clone(),
        rcpt_tos: s.rcpt_tos.clone(),
        auth_login,
        auth_mechanism,
        tls: s.tls,
        peer_port,
        content_type: message.ctype.mimetype.to_lowercase(),
        headers: message
            .headers
            .iter()
            .map(|h| (h.get_key(), header_value(h)))
            .collect(),
        parts,
        raw: String::from_utf8_lossy(&s.data).into_owned(),
    })
}

/// A header's value as a mail reader shows it: encoded words decoded, lines
/// unfolded, and address lists written `Name <addr>, …` (quotes only where
/// the name needs them).
fn header_value(header: &MailHeader<'_>) -> String {
    const ADDRESS_HEADERS: &[&str] = &["from", "to", "cc", "bcc", "reply-to", "sender"];
    let key = header.get_key().to_lowercase();
    if !ADDRESS_HEADERS.contains(&key.as_str()) {
        return header.get_value();
    }
    let Ok(list) = mailparse::addrparse_header(header) else {
        return header.get_value();
    };
    let single = |a: &SingleInfo| match &a.display_name {
        Some(name) if name.contains(|c| "()<>@,;:\\\".[]".contains(c)) => {
            format!(
                "\"{}\" <{}>",
                name.replace('\\', "\\\\").replace('"', "\\\""),
                a.addr
            )
        }
        Some(name) => format!("{name} <{}>", a.addr),
        None => a.addr.clone(),
    };
    list.iter()
        .map(|a| match a {
            MailAddr::Single(one) => single(one),
            MailAddr::Group(group) => format!(
                "{}: {};",
                group.group_name,
                group
                    .addrs
                    .iter()
                    .map(single)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every non-multipart part, depth first, in order.
fn leaves(part: &ParsedMail<'_>, out: &mut Vec<Part>) -> Result<(), mailparse::MailParseError> {
    if !part.subparts.is_empty() {
        for sub in &part.subparts {
            leaves(sub, out)?;
        }
        return Ok(());
    }
    let disposition = part.get_content_disposition();
    let filename = disposition
        .params
        .get("filename")
        .or_else(|| part.ctype.params.get("name"))
        .cloned();
    let disposition =
        part.headers
            .get_first_value("Content-Disposition")
            .map(|_| match disposition.disposition {
                DispositionType::Inline => "inline".to_owned(),
                DispositionType::Attachment => "attachment".to_owned(),
                DispositionType::FormData => "form-data".to_owned(),
                DispositionType::Extension(other) => other.to_lowercase(),
            });
    out.push(Part {
        content_type: part.ctype.mimetype.to_lowercase(),
        filename,
        disposition,
        content: part.get_body_raw()?,
    });
    Ok(())
}

/// A throwaway CA and a server certificate it signed for `localhost` and
/// 127.0.0.1; returns the CA's PEM and a TLS acceptor serving the certificate.
fn certificates() -> (Vec<u8>, TlsAcceptor) {
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

    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key = PrivatePkcs8KeyDer::from(key.serialize_der());
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key.into())
            .expect("the server certificate and key");
    (ca.pem().into_bytes(), TlsAcceptor::from(Arc::new(config)))
}

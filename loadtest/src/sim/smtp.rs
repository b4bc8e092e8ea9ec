//! SMTP submission (providers.md §4): a listener on loopback per `smtp`
//! account, plain text (the engine's SMTP adapter allows `tls: none` on
//! loopback only; STARTTLS and implicit TLS are not simulated).
//!
//! The protocol is `mailin`'s state machine (sans-I/O), driven here from
//! tokio: EHLO/HELO, AUTH PLAIN and LOGIN (RFC 4954, required when the
//! account has `username`/`password`, checked in constant time; a wrong
//! pair is `535 Invalid credentials`), MAIL, RCPT, DATA, RSET, NOOP, QUIT.
//!
//! One mail transaction is one send: counted in `requests`, its recipients
//! are the `RCPT TO` addresses and its idempotency key the mail's
//! `X-Msgengine-Idempotency-Key` header (the adapter writes one, beside its
//! `Message-ID`). The account's behaviour applies at the end of DATA:
//! `latencyMs` before the reply; `rateLimitRate` answers `450 4.7.1` and
//! `errorRate` `451 4.3.0` (SMTP has no rate-limit reply: both are
//! transient to a client); otherwise `250 2.0.0 Ok: queued as <id>`, the
//! Postfix wording the adapter reads its queue id from. SMTP has no status
//! webhooks: `outcomes` has no effect.

use std::io;
use std::net::SocketAddr;

use actix_web::web;
use mailin::{response, Action, AuthMechanism, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::config::ProviderKind;
use super::{random_hex, same_secret, Fate, Shared, IDEMPOTENCY_HEADER};

/// Longest line read (a DATA line longer than this ends the session).
const MAX_LINE_BYTES: u64 = 1024 * 1024;
/// Header bytes kept per mail to find the idempotency key in.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Accepts connections for the account at `index` until aborted; its
/// sessions run in a set owned by this task, so aborting it (the handle's
/// `stop`) cuts them too.
pub(crate) async fn serve(listener: TcpListener, shared: web::Data<Shared>, index: usize) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    sessions.spawn(session(stream, peer, shared.clone(), index));
                }
                // Out of descriptors and the like: wait rather than spin.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            },
            // Reaps finished sessions so the set does not grow.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// One client connection, until QUIT, a closing reply or EOF.
async fn session(stream: TcpStream, peer: SocketAddr, shared: web::Data<Shared>, index: usize) {
    let Some(account) = shared.accounts.get(index) else {
        return;
    };
    let ProviderKind::Smtp {
        username, password, ..
    } = account.kind()
    else {
        return;
    };
    let credentials = username.clone().zip(password.clone());
    let mut builder = SessionBuilder::new("msgengine-sim");
    if credentials.is_some() {
        builder
            .enable_auth(AuthMechanism::Plain)
            .enable_auth(AuthMechanism::Login)
            .insecure_enable_plaintext_auth();
    }
    let handler = Mail {
        shared: shared.clone(),
        index,
        credentials,
        recipients: Vec::new(),
        headers: Vec::new(),
        in_headers: true,
        reset_pending: false,
    };
    let mut smtp = builder.build(peer.ip(), handler);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if reply(&mut write, &smtp.greeting()).await.is_err() {
        return;
    }
    let mut in_data = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = smtp.process(&line);
        if in_data && answer.action != Action::NoReply {
            // The reply to the end of DATA: the account's latency first.
            in_data = false;
            account.latency().await;
            if answer.is_error {
                // mailin keeps a refused mail in its DATA state; a second
                // end of data, which the handler accepts silently, takes it
                // back to the ready state a real server would be in.
                let _ = smtp.process(b".\r\n");
            }
        }
        if answer.code == 354 {
            in_data = true;
        }
        if answer.action == Action::NoReply {
            continue;
        }
        if reply(&mut write, &answer).await.is_err() || answer.action == Action::Close {
            return;
        }
    }
}

async fn reply(write: &mut tokio::net::tcp::OwnedWriteHalf, answer: &Response) -> io::Result<()> {
    let bytes = answer.buffer()?;
    write.write_all(&bytes).await?;
    write.flush().await
}

/// The handler of one connection: checks credentials, collects one mail.
struct Mail {
    shared: web::Data<Shared>,
    index: usize,
    /// (user, password) when AUTH is required.
    credentials: Option<(String, String)>,
    recipients: Vec<String>,
    /// The mail's header block (bounded), for the idempotency key.
    headers: Vec<u8>,
    in_headers: bool,
    /// See [`session`]: the next end of data only resets the state.
    reset_pending: bool,
}

impl Mail {
    fn check(&self, user: &str, password: &str) -> Response {
        let ok = self
            .credentials
            .as_ref()
            .is_some_and(|(u, p)| same_secret(user, u) && same_secret(password, p));
        if ok {
            response::AUTH_OK
        } else {
            if let Some(account) = self.shared.accounts.get(self.index) {
                account.count(|c| &c.auth_failed);
            }
            Response::custom(535, "5.7.8 Authentication credentials invalid".into())
        }
    }

    /// The mail's `X-Msgengine-Idempotency-Key`, if its header has one.
    fn key(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.headers);
        let prefix = format!("{}:", IDEMPOTENCY_HEADER.to_ascii_lowercase());
        text.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
            .filter(|k| !k.is_empty())
    }
}

impl Handler for Mail {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        self.recipients.clear();
        self.headers.clear();
        self.in_headers = true;
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let address = to.trim().trim_start_matches('<').trim_end_matches('>');
        if !address.contains('@') {
            return response::BAD_MAILBOX;
        }
        self.recipients.push(address.to_owned());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.in_headers {
            if buf == b"\r\n" || buf == b"\n" {
                self.in_headers = false;
            } else if self.headers.len() + buf.len() <= MAX_HEADER_BYTES {
                self.headers.extend_from_slice(buf);
            }
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if std::mem::take(&mut self.reset_pending) {
            return response::OK;
        }
        let Some(account) = self.shared.accounts.get(self.index) else {
            return response::INTERNAL_ERROR;
        };
        account.count(|c| &c.requests);
        let key = self.key();
        let stats = &self.shared.stats;
        let answer = match account.fate() {
            Fate::RateLimited => {
                stats.record_send(&self.recipients, key.as_deref(), false);
                Response::custom(450, "4.7.1 Rate limit exceeded, try again later".into())
            }
            Fate::ServerError => {
                stats.record_send(&self.recipients, key.as_deref(), false);
                Response::custom(451, "4.3.0 Temporary server error, try again later".into())
            }
            Fate::Accept => {
                account.count(|c| &c.accepted);
                stats.record_send(&self.recipients, key.as_deref(), true);
                Response::custom(
                    250,
                    format!("2.0.0 Ok: queued as {}", random_hex(5).to_uppercase()),
                )
            }
        };
        self.reset_pending = answer.is_error;
        answer
    }

    fn auth_plain(&mut self, _authorization: &str, user: &str, password: &str) -> Response {
        self.check(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check(user, password)
    }
}

//! SMTP submission (email), speaking RFC 5321/6409 through lettre's async
//! Tokio transport (providers.md §4): `smtpConfig` names the host, port, TLS
//! mode (STARTTLS required before AUTH, implicit TLS, or none on loopback
//! only) and optional username/password (AUTH PLAIN or LOGIN, RFC 4954).
//!
//! Invariants:
//! - One pooled transport per connection, built once and reused across
//!   sends; replaced (never reused) after a timeout, because a connection cut
//!   off mid-transaction is in an unknown protocol state.
//! - Every attempt is bounded by [`SmtpOptions::send_timeout`].
//! - The host is resolved and checked against [`SmtpOptions::address_policy`]
//!   before the pool is built, and again every [`RECHECK_ADDRESS_AFTER`]; the
//!   pool connects to the checked address (a new pool when it changes), TLS
//!   still verifies the certificate against the host name.
//! - The password never appears in an error, `Debug` output or a message.
//! - SMTP has no delivery receipts: a `250` after DATA means "accepted for
//!   relay", so the receipt's state is `Sent` (providers.md §4.1). Later
//!   failures arrive as bounce emails, matched by Message-ID or by our
//!   `X-Msgengine-Message-Id` header.
//! - The receipt's `provider_message_id` is the Message-ID we set, without
//!   angle brackets (`<message id>@<sender domain>`), followed by
//!   ` queue-id=<id>` when the server's `250` names its queue id (Postfix,
//!   SendGrid, Exim). A Message-ID holds no space, so the first word is it.
//! - SMTP has no idempotency key (providers.md §13); the Message-ID is
//!   derived from our message id, so a duplicate after a timed-out attempt
//!   carries the same Message-ID and the same `X-Msgengine-Idempotency-Key`.

mod classify;
mod compose;
mod connect;
mod descriptor;
mod probe;

pub(crate) use descriptor::DESCRIPTOR;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lettre::message::Mailbox;
use lettre::AsyncTransport as _;
use msgengine_domain::message::{MessageState, OutboundMessage};
use msgengine_domain::provider::EmailProviderSpec;

use classify::queue_id;
pub use compose::MESSAGE_ID_HEADER;
pub use probe::SmtpProbe;

use crate::address::AddressPolicy;
use crate::send::{FailureKind, ProviderError, SendReceipt, Sender};
use connect::{Target, Transport};

/// How an SMTP sender or probe behaves beyond the connection's spec.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    /// Bound on one attempt: connect, TLS, EHLO, AUTH and the whole mail
    /// transaction (or the whole probe). Default 30 s.
    pub send_timeout: Duration,
    /// PEM root certificates trusted beside the compiled-in Mozilla roots
    /// (`webpki-roots`): a private CA, or a test CA. Default none.
    pub extra_root_certificates_pem: Vec<Vec<u8>>,
    /// Most idle connections the pool keeps open to the server. Default 4.
    pub pool_max_size: u32,
    /// An idle pooled connection is closed after this long. Default 60 s.
    pub pool_idle_timeout: Duration,
    /// Which addresses the SMTP host may resolve to. Default
    /// [`AddressPolicy::Public`]; the engine passes its provider policy.
    pub address_policy: AddressPolicy,
}

/// How long a resolved and checked SMTP address is used before the host is
/// resolved (and checked) again.
pub const RECHECK_ADDRESS_AFTER: Duration = Duration::from_secs(60);

/// Bound on each TCP connect tried when a host has several addresses.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Default for SmtpOptions {
    fn default() -> Self {
        Self {
            send_timeout: Duration::from_secs(30),
            extra_root_certificates_pem: Vec::new(),
            pool_max_size: 4,
            pool_idle_timeout: Duration::from_secs(60),
            address_policy: AddressPolicy::Public,
        }
    }
}

/// A pool to one checked address.
struct Pooled {
    to: IpAddr,
    checked_at: Instant,
    transport: Transport,
}

/// An SMTP connection.
pub struct SmtpSender {
    /// The checked configuration, or why it cannot send.
    target: Result<Arc<Target>, ProviderError>,
    /// The pooled transport and the checked address it connects to: built
    /// at the first send (resolving is async), rebuilt when the host's
    /// address changes, emptied after a timeout so the next attempt starts a
    /// fresh pool.
    transport: Mutex<Option<Pooled>>,
    /// `fromName <fromEmail>`, or why it is missing.
    default_from: Result<Mailbox, ProviderError>,
    options: SmtpOptions,
    /// The password and its AUTH PLAIN/LOGIN encodings, scrubbed from errors.
    secrets: Vec<String>,
}

impl SmtpSender {
    /// A sender for `spec` with the default options.
    pub fn new(spec: &EmailProviderSpec) -> Self {
        Self::with_options(spec, SmtpOptions::default())
    }

    /// A sender for `spec` with `options` (tests trust their own CA here).
    pub fn with_options(spec: &EmailProviderSpec, options: SmtpOptions) -> Self {
        let target = match &spec.smtp_config {
            Some(config) => Target::prepare(config, &options).map(Arc::new),
            None => Err(ProviderError::misconfigured("SMTP needs smtpConfig")),
        };
        Self {
            secrets: spec
                .smtp_config
                .as_ref()
                .map(secret_forms)
                .unwrap_or_default(),
            target,
            transport: Mutex::new(None),
            default_from: default_from(spec),
            options,
        }
    }

    /// The pool to send through: the current one while its address was
    /// checked less than [`RECHECK_ADDRESS_AFTER`] ago; otherwise the host is
    /// resolved and checked again, and a new pool is built if it moved.
    async fn transport(&self, target: &Target) -> Result<Transport, ProviderError> {
        if let Some(pooled) = self.slot().as_ref() {
            if pooled.checked_at.elapsed() < RECHECK_ADDRESS_AFTER {
                return Ok(pooled.transport.clone());
            }
        }
        let found = target.resolve(self.options.address_policy).await?;
        let current = self.slot().as_ref().map(|pooled| pooled.to);
        // Still one of the host's (checked) addresses: keep the pool.
        let to = match current.filter(|ip| found.iter().any(|a| a.ip() == *ip)) {
            Some(ip) => ip,
            None => connect::first_reachable(&found, CONNECT_PROBE_TIMEOUT)
                .await
                .map(|a| a.ip())
                .ok_or_else(|| {
                    ProviderError::new(
                        FailureKind::Transient,
                        format!("{} has no address", target.host),
                    )
                })?,
        };
        let mut slot = self.slot();
        match slot.as_mut() {
            Some(pooled) if pooled.to == to => {
                pooled.checked_at = Instant::now();
                Ok(pooled.transport.clone())
            }
            _ => {
                let transport = target.transport_to(to, &self.options);
                *slot = Some(Pooled {
                    to,
                    checked_at: Instant::now(),
                    transport: transport.clone(),
                });
                Ok(transport)
            }
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Pooled>> {
        self.transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the pool after a timeout: its connection may be mid-transaction.
    /// Sends already holding it finish on it; the next one builds a new pool.
    fn discard_transport(&self) {
        let old = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(old);
    }

    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }
}

impl Drop for SmtpSender {
    /// lettre's pool spawns a cleanup task when dropped, and `tokio::spawn`
    /// panics outside a runtime. A sender dropped outside one (a runtime
    /// already gone at process exit) leaks its pool instead: the idle sockets
    /// close with the process.
    fn drop(&mut self) {
        let pool = self
            .transport
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if tokio::runtime::Handle::try_current().is_err() {
            std::mem::forget(pool);
        }
    }
}

#[async_trait::async_trait]
impl Sender for SmtpSender {
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<SendReceipt, ProviderError> {
        let target = self.target.as_ref().map_err(Clone::clone)?;
        let from = match &message.from {
            Some(from) => compose::parse_mailbox("from", from)?,
            None => self.default_from.clone()?,
        };
        let composed = compose::compose(message, from, idempotency_key)?;
        let (email, message_id) = (composed.email, composed.message_id);
        // Resolving and checking the host counts against the attempt's bound too.
        let attempt = async {
            let transport = self.transport(target).await?;
            transport
                .send(email)
                .await
                .map_err(|e| classify::classify_error(&e, target, &self.secrets()))
        };
        match tokio::time::timeout(self.options.send_timeout, attempt).await {
            Ok(Ok(response)) => {
                let provider_message_id = match queue_id(&response) {
                    Some(queue) => format!("{message_id} queue-id={queue}"),
                    None => message_id,
                };
                Ok(SendReceipt {
                    provider_message_id,
                    state: MessageState::Sent,
                    segments: None,
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.discard_transport();
                Err(ProviderError::new(
                    FailureKind::Timeout,
                    format!(
                        "{} did not finish the SMTP exchange within {} ms; the server may \
                         have accepted the message",
                        target.address(),
                        self.options.send_timeout.as_millis()
                    ),
                ))
            }
        }
    }
}

/// The connection's sender: `fromName <fromEmail>`.
fn default_from(spec: &EmailProviderSpec) -> Result<Mailbox, ProviderError> {
    let Some(email) = spec.from_email.as_deref() else {
        return Err(ProviderError::misconfigured("SMTP needs fromEmail"));
    };
    let address = email.trim().parse().map_err(|e| {
        ProviderError::misconfigured(format!("fromEmail {email:?} is not an email address: {e}"))
    })?;
    let name = spec
        .from_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    Ok(Mailbox::new(name, address))
}

/// The password as typed and as it travels in AUTH PLAIN (`\0user\0pass`)
/// and AUTH LOGIN (`pass`) base64, in case a server echoes any of them.
fn secret_forms(config: &msgengine_domain::provider::email::SmtpConfig) -> Vec<String> {
    let Some(password) = &config.password else {
        return Vec::new();
    };
    let password = password.expose();
    let user = config.username.as_deref().unwrap_or("");
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        password.to_owned(),
        b64.encode(format!("\0{user}\0{password}")),
        b64.encode(password),
    ]
}

#[cfg(test)]
mod tests;

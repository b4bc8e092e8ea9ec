//! From a connection's `smtpConfig` to what lettre needs to reach the server:
//! the TLS mode (STARTTLS required, implicit TLS, or none on loopback only),
//! the certificates trusted, the credentials, and the pooled transport.
//!
//! Everything that can be wrong with the configuration is found here, once,
//! when the sender or probe is built, and reported in words naming the field.
//!
//! The host is resolved here too ([`Target::resolve`]) and lettre is given
//! the checked address, never the name: what was checked is what is
//! connected to (no second lookup a rebinding DNS server could answer
//! differently), while TLS still verifies the certificate against the name.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use msgengine_domain::provider::email::{SmtpConfig, SmtpTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::SmtpOptions;
use crate::address::{AddressPolicy, Refused};
use crate::send::{FailureKind, ProviderError};

/// The pooled async transport of one SMTP connection.
pub(crate) type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The AUTH mechanisms offered to the server, in order of preference
/// (RFC 4954; what submission servers and ESP relays accept, providers.md §4.1).
pub(crate) const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

/// A checked SMTP configuration, ready to connect.
#[derive(Clone)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub mode: SmtpTls,
    /// `None` when `smtpConfig.tls` is NONE.
    pub tls: Option<TlsParameters>,
    pub credentials: Option<Credentials>,
    /// The username, for messages (never the password).
    pub username: Option<String>,
    /// What the client calls itself in EHLO (this machine's host name).
    pub hello: ClientId,
}

impl Target {
    /// Checks `config` and prepares its TLS parameters.
    pub fn prepare(config: &SmtpConfig, options: &SmtpOptions) -> Result<Self, ProviderError> {
        let host = config.host.trim().to_owned();
        let tls = match config.tls {
            SmtpTls::None if !is_loopback(&host) => {
                return Err(ProviderError::misconfigured(format!(
                    "smtpConfig.tls NONE sends the password and the mail in clear text, so it \
                     is only allowed for a loopback host (localhost, 127.0.0.0/8, ::1) and \
                     {host} is not one: use STARTTLS (usually port 587) or IMPLICIT (usually \
                     port 465)"
                )))
            }
            SmtpTls::None => None,
            SmtpTls::Starttls | SmtpTls::Implicit => Some(tls_parameters(&host, options)?),
        };
        let (credentials, username) = match (&config.username, &config.password) {
            (Some(user), Some(password)) => (
                Some(Credentials::new(user.clone(), password.expose().to_owned())),
                Some(user.clone()),
            ),
            (None, None) => (None, None),
            _ => {
                return Err(ProviderError::misconfigured(
                    "smtpConfig.username and smtpConfig.password must be set together",
                ))
            }
        };
        Ok(Self {
            host,
            port: config.port,
            mode: config.tls,
            tls,
            credentials,
            username,
            hello: ClientId::default(),
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }

    /// lettre's TLS setting for this target.
    pub fn lettre_tls(&self) -> Tls {
        match (&self.tls, self.mode) {
            (Some(params), SmtpTls::Implicit) => Tls::Wrapper(params.clone()),
            // STARTTLS is required, never opportunistic: a server (or a man in
            // the middle) that does not offer it gets no password (RFC 3207
            // downgrade, providers.md §4.1).
            (Some(params), _) => Tls::Required(params.clone()),
            (None, _) => Tls::None,
        }
    }

    /// The addresses to connect to: the host resolved now, refused unless
    /// the policy allows every address it has (a permanent
    /// misconfiguration); a name that does not resolve is a transient failure.
    pub async fn resolve(&self, policy: AddressPolicy) -> Result<Vec<SocketAddr>, ProviderError> {
        match policy.resolve(&self.host, self.port).await {
            Ok(found) => Ok(found),
            Err(refused @ Refused::Address { .. }) => Err(ProviderError::misconfigured(format!(
                "smtpConfig.host {refused}"
            ))),
            Err(unresolved) => Err(ProviderError::new(
                FailureKind::Transient,
                unresolved.to_string(),
            )),
        }
    }

    /// The pooled transport to the checked address `ip` (TLS verified
    /// against the host name). lettre's pool spawns its idle-connection
    /// reaper on the current Tokio runtime, so this must run inside one.
    pub fn transport_to(&self, ip: IpAddr, options: &SmtpOptions) -> Transport {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
            .port(self.port)
            .tls(self.lettre_tls())
            .hello_name(self.hello.clone())
            // Bounds the TCP connect; the whole attempt is bounded by the caller.
            .timeout(Some(options.send_timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(options.pool_max_size.max(1))
                    .idle_timeout(options.pool_idle_timeout),
            );
        if let Some(credentials) = &self.credentials {
            builder = builder
                .credentials(credentials.clone())
                .authentication(MECHANISMS.to_vec());
        }
        builder.build()
    }
}

/// Of several checked addresses (`localhost` is often `::1` and
/// `127.0.0.1`), the first that accepts a TCP connection within `timeout`,
/// as a connector trying each in turn would pick; the first when none does
/// (the send then fails on it with the real error). The pool is built for
/// one address: lettre takes a single server.
pub(crate) async fn first_reachable(found: &[SocketAddr], timeout: Duration) -> Option<SocketAddr> {
    if found.len() > 1 {
        for address in found {
            let connected = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address));
            if matches!(connected.await, Ok(Ok(_))) {
                return Some(*address);
            }
        }
    }
    found.first().copied()
}

/// TLS parameters for `host`: the certificate must be valid for it and chain
/// to the compiled-in Mozilla roots or to one of `options`' extra roots.
fn tls_parameters(host: &str, options: &SmtpOptions) -> Result<TlsParameters, ProviderError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    for (i, pem) in options.extra_root_certificates_pem.iter().enumerate() {
        // lettre accepts PEM without any certificate in it; we do not.
        let found = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>();
        let certificate = match found {
            Ok(found) if !found.is_empty() => Certificate::from_pem(pem).ok(),
            _ => None,
        };
        let Some(certificate) = certificate else {
            return Err(ProviderError::misconfigured(format!(
                "extra root certificate {} is not a PEM certificate",
                i + 1
            )));
        };
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|e| ProviderError::misconfigured(format!("cannot set up TLS for {host}: {e}")))
}

/// `localhost` or a loopback address: the only hosts where plain text is allowed.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: 2525,
            tls,
            username: None,
            password: None,
        }
    }

    #[test]
    fn plain_text_is_allowed_only_on_loopback() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1"] {
            assert!(is_loopback(host), "{host}");
            let target = Target::prepare(&config(host, SmtpTls::None), &SmtpOptions::default());
            assert!(target.is_ok(), "{host}");
        }
        for host in [
            "smtp.example.com",
            "10.0.0.1",
            "localhost.example.com",
            "::2",
        ] {
            assert!(!is_loopback(host), "{host}");
            let Err(e) = Target::prepare(&config(host, SmtpTls::None), &SmtpOptions::default())
            else {
                panic!("{host} accepted without TLS");
            };
            assert!(
                e.message.contains("only allowed for a loopback host"),
                "{e}"
            );
            assert!(e.message.contains(host), "{e}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn tls_modes_map_to_required_starttls_and_wrapper() {
        let options = SmtpOptions::default();
        let starttls =
            Target::prepare(&config("smtp.example.com", SmtpTls::Starttls), &options).ok();
        assert!(matches!(
            starttls.map(|t| t.lettre_tls()),
            Some(Tls::Required(_))
        ));
        let implicit =
            Target::prepare(&config("smtp.example.com", SmtpTls::Implicit), &options).ok();
        assert!(matches!(
            implicit.map(|t| t.lettre_tls()),
            Some(Tls::Wrapper(_))
        ));
    }

    #[test]
    fn a_bad_extra_root_is_a_configuration_error() {
        let options = SmtpOptions {
            extra_root_certificates_pem: vec![b"not a certificate".to_vec()],
            ..SmtpOptions::default()
        };
        let e = Target::prepare(&config("smtp.example.com", SmtpTls::Starttls), &options)
            .err()
            .map(|e| e.message);
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("extra root certificate 1")),
            "{e:?}"
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed_in_messages() {
        let target = Target::prepare(&config("::1", SmtpTls::None), &SmtpOptions::default());
        assert_eq!(
            target.map(|t| t.address()).ok().as_deref(),
            Some("[::1]:2525")
        );
    }
}

//! The SMTP connection test: the steps a send takes before `MAIL FROM`,
//! one by one so a failure names its step: connect (and the TLS handshake
//! for implicit TLS), the greeting and EHLO, STARTTLS and EHLO again, AUTH
//! with the configured credentials, NOOP, QUIT. No message is sent.

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use msgengine_domain::provider::email::SmtpTls;
use msgengine_domain::provider::AnyProviderSpec;

use super::classify::classify_error;
use super::connect::{Target, MECHANISMS};
use super::{secret_forms, SmtpOptions};
use crate::address::AddressPolicy;
use crate::probe::{Check, CheckStatus, ConnectionProbe};

/// Tests an SMTP connection's server, TLS and credentials.
#[derive(Debug, Clone, Default)]
pub struct SmtpProbe {
    options: SmtpOptions,
}

impl SmtpProbe {
    /// A probe with the default options (30 s bound, Mozilla roots).
    pub fn new() -> Self {
        Self::default()
    }

    /// A probe with `options` (tests trust their own CA here).
    pub fn with_options(options: SmtpOptions) -> Self {
        Self { options }
    }
}

#[async_trait]
impl ConnectionProbe for SmtpProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let config = match spec {
            AnyProviderSpec::Email(email) => email.smtp_config.as_ref(),
            _ => None,
        };
        let Some(config) = config else {
            return failed("SMTP needs smtpConfig".into());
        };
        let target = match Target::prepare(config, &self.options) {
            Ok(target) => target,
            Err(e) => return failed(e.message),
        };
        let secrets = secret_forms(config);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let timeout = self.options.send_timeout;
        let policy = self.options.address_policy;
        let walked = tokio::time::timeout(timeout, walk(&target, timeout, policy)).await;
        match walked {
            Ok(Ok(steps)) => Check {
                name: "connection",
                status: CheckStatus::Passed,
                message: steps,
            },
            Ok(Err(Failure::Smtp(e))) => failed(classify_error(&e, &target, &secrets).message),
            Ok(Err(Failure::Words(words))) => failed(words),
            Err(_) => failed(format!(
                "{} did not complete connect, TLS, EHLO and AUTH within {} ms",
                target.address(),
                self.options.send_timeout.as_millis()
            )),
        }
    }
}

/// Why the walk stopped: an SMTP failure (classified like a send's), or a
/// finding lettre has no error for.
enum Failure {
    Smtp(lettre::transport::smtp::Error),
    Words(String),
}

impl From<lettre::transport::smtp::Error> for Failure {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Failure::Smtp(e)
    }
}

/// Connect, TLS, EHLO, AUTH, NOOP, QUIT; what was done, in words.
async fn walk(
    target: &Target,
    connect_timeout: Duration,
    policy: AddressPolicy,
) -> Result<String, Failure> {
    let implicit = match target.mode {
        SmtpTls::Implicit => target.tls.clone(),
        _ => None,
    };
    // The checked address, never the name again (see connect.rs).
    let addresses = target
        .resolve(policy)
        .await
        .map_err(|e| Failure::Words(e.message))?;
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        addresses.as_slice(),
        Some(connect_timeout),
        &target.hello,
        implicit,
        None,
    )
    .await?;
    let mut steps = vec![format!("connected to {}", target.address())];
    match (target.mode, &target.tls) {
        (SmtpTls::Implicit, _) => steps.push("TLS from the first byte".into()),
        (SmtpTls::Starttls, Some(tls)) => {
            conn.starttls(tls.clone(), &target.hello).await?;
            steps.push("STARTTLS negotiated".into());
        }
        _ => steps.push("no TLS (loopback)".into()),
    }
    steps.push("EHLO accepted".into());
    match (&target.credentials, &target.username) {
        (Some(credentials), Some(user)) => {
            let mechanism = conn.server_info().get_auth_mechanism(&MECHANISMS);
            conn.auth(&MECHANISMS, credentials).await?;
            let with = mechanism
                .map(|m| format!(" with AUTH {m}"))
                .unwrap_or_default();
            steps.push(format!("authenticated as {user:?}{with}"));
        }
        _ => steps.push(
            "no username configured, so AUTH was not tried (the server may still refuse mail \
             with 530)"
                .into(),
        ),
    }
    if !conn.test_connected().await {
        return Err(Failure::Words(format!(
            "{} stopped answering after {}",
            target.address(),
            steps.join(", ")
        )));
    }
    // Best effort: the check already passed; a server that drops the line
    // instead of answering QUIT changes nothing.
    let _ = conn.quit().await;
    Ok(format!("{}; no message sent", steps.join(", ")))
}

fn failed(message: String) -> Check {
    Check {
        name: "connection",
        status: CheckStatus::Failed,
        message,
    }
}

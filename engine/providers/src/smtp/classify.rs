//! What an SMTP failure means (providers.md §4.1): the reply code decides
//! (4xx transient, 5xx permanent, RFC 5321 §4.2.1), a connection that could
//! not be made is transient, one that did not answer in time is a timeout,
//! and a TLS failure is permanent (a certificate or a port/TLS-mode mismatch
//! does not fix itself). Every error is in words, with the server's reply
//! (enhanced status code included) and never the password.

use std::error::Error as _;

use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error as SmtpError;

use super::connect::Target;
use crate::http;
use crate::send::{FailureKind, ProviderError};

/// Classifies a failed SMTP exchange with `target`; `secrets` are scrubbed
/// from whatever the server or the TLS library said.
pub(crate) fn classify_error(
    error: &SmtpError,
    target: &Target,
    secrets: &[&str],
) -> ProviderError {
    let classified = match error.status() {
        Some(code) => from_reply(u16::from(code), &reply_text(error), target),
        None => from_transport(error, target),
    };
    http::scrub(classified, secrets)
}

/// A negative reply: its code, and what it means in words.
pub(crate) fn from_reply(code: u16, text: &str, target: &Target) -> ProviderError {
    let reply = if text.is_empty() {
        code.to_string()
    } else {
        format!("{code} {text}")
    };
    let user = target.username.as_deref().unwrap_or("");
    let (kind, message) = match code {
        530 => (
            FailureKind::Permanent,
            // 530 is also what some servers (Gmail) answer when STARTTLS
            // was expected first.
            format!(
                "authentication failed: the server requires AUTH (or STARTTLS) before mail; \
                 set smtpConfig.username and password, or check smtpConfig.tls ({reply})"
            ),
        ),
        534 | 535 => (
            FailureKind::Permanent,
            format!(
                "authentication failed: the server refused the username {user:?} or its \
                 password ({reply})"
            ),
        ),
        538 => (
            FailureKind::Permanent,
            format!("the server requires TLS before AUTH: use STARTTLS or IMPLICIT ({reply})"),
        ),
        550 | 551 | 553 => (
            FailureKind::Permanent,
            format!("the server rejected the sender or recipient ({reply})"),
        ),
        552 => (
            FailureKind::Permanent,
            format!("the server refused the message size ({reply})"),
        ),
        500..=599 => (
            FailureKind::Permanent,
            format!("the server refused the message ({reply})"),
        ),
        421 => (
            FailureKind::Transient,
            format!("the server is not available now and closed the connection ({reply})"),
        ),
        _ => (
            FailureKind::Transient,
            format!("the server deferred the message, try again later ({reply})"),
        ),
    };
    let mut e = ProviderError::new(kind, http::bound(&message));
    e.code = Some(code.to_string());
    e
}

/// A failure with no reply code: connect, TLS, timeout, or a client-side refusal.
fn from_transport(error: &SmtpError, target: &Target) -> ProviderError {
    let address = target.address();
    if let Some(tls) = tls_error(error) {
        return ProviderError::new(
            FailureKind::Permanent,
            http::bound(&format!(
                "TLS with {address} failed: {tls}{}",
                tls_hint(tls, target)
            )),
        );
    }
    if error.is_timeout() {
        return ProviderError::new(
            FailureKind::Timeout,
            format!("connecting to {address} timed out"),
        );
    }
    let detail = error.source().map(|s| s.to_string()).unwrap_or_default();
    if error.is_client() {
        return ProviderError::new(
            FailureKind::Permanent,
            http::bound(&client_refusal(&detail, target)),
        );
    }
    let why = if detail.is_empty() {
        error.to_string()
    } else {
        detail
    };
    ProviderError::new(
        FailureKind::Transient,
        http::bound(&format!("SMTP connection to {address} failed: {why}")),
    )
}

/// lettre's own refusals, in words: each is a configuration or content
/// problem another attempt would meet again.
fn client_refusal(detail: &str, target: &Target) -> String {
    let address = target.address();
    if detail.contains("STARTTLS is not supported") {
        format!(
            "{address} does not offer STARTTLS, so nothing was sent (not the password, not \
             the mail): use IMPLICIT if the port speaks TLS from the start (usually 465)"
        )
    } else if detail.contains("authentication mechanism") {
        format!(
            "{address} offers neither AUTH PLAIN nor AUTH LOGIN, the mechanisms msgengine speaks"
        )
    } else {
        format!("the message cannot be sent through {address}: {detail}")
    }
}

/// The rustls error inside lettre's connection error, if the TLS handshake
/// is what failed (lettre reports it as a connection error; tokio-rustls
/// wraps it in an `io::Error`, whose `source()` skips it, hence `get_ref`).
fn tls_error(error: &SmtpError) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
        }
        next = current.source();
    }
    None
}

fn tls_hint(error: &rustls::Error, target: &Target) -> String {
    match error {
        rustls::Error::InvalidCertificate(_) => format!(
            ": the server's certificate is not trusted for {} (it must chain to a public root \
             and name that host)",
            target.host
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            ": the server did not answer in TLS; check that smtpConfig.tls matches the port \
             (IMPLICIT for 465, STARTTLS for 587)"
                .to_owned()
        }
        _ => String::new(),
    }
}

/// The server's words in a negative reply (lettre keeps them as the source).
fn reply_text(error: &SmtpError) -> String {
    error
        .source()
        .map(|s| s.to_string().trim().to_owned())
        .unwrap_or_default()
}

/// The server's queue id from a `250` reply to DATA, when it names one:
/// Postfix and SendGrid `… queued as 4Z1abc`, Exim `OK id=1r2s3t-000abc-XY`.
pub(crate) fn queue_id(response: &Response) -> Option<String> {
    let text = response.message().collect::<Vec<_>>().join(" ");
    let after = text
        .find("queued as ")
        .map(|i| &text[i + "queued as ".len()..])
        .or_else(|| {
            text.split_whitespace()
                .find_map(|word| word.strip_prefix("id="))
        })?;
    let id: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        .take(100)
        .collect();
    let id = id.trim_end_matches('.').to_owned();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use lettre::transport::smtp::response::{Category, Code, Detail, Severity};
    use msgengine_domain::provider::email::{SmtpConfig, SmtpTls};
    use msgengine_domain::Secret;

    use super::*;
    use crate::smtp::SmtpOptions;

    fn target() -> Target {
        let config = SmtpConfig {
            host: "smtp.example.com".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: Some("ops".into()),
            password: Some(Secret::new("hunter2-hunter2")),
        };
        Target::prepare(&config, &SmtpOptions::default()).expect("valid config")
    }

    fn ok(text: &str) -> Response {
        let code = Code::new(
            Severity::PositiveCompletion,
            Category::MailSystem,
            Detail::Zero,
        );
        Response::new(code, vec![text.to_owned()])
    }

    #[test]
    fn four_hundreds_are_transient_five_hundreds_permanent() {
        for code in [421, 450, 451, 452] {
            let e = from_reply(code, "4.3.0 try later", &target());
            assert_eq!(e.kind, FailureKind::Transient, "{code}");
            assert_eq!(e.code, Some(code.to_string()));
        }
        for code in [530, 535, 550, 552, 554] {
            let e = from_reply(code, "5.0.0 no", &target());
            assert_eq!(e.kind, FailureKind::Permanent, "{code}");
            assert!(e.message.contains(&format!("{code} 5.0.0 no")), "{e}");
        }
    }

    #[test]
    fn bad_credentials_say_authentication_failed_without_the_password() {
        let e = from_reply(535, "5.7.8 Authentication credentials invalid", &target());
        assert!(e.message.starts_with("authentication failed"), "{e}");
        assert!(e.message.contains("\"ops\""), "{e}");
        assert!(!format!("{e} {e:?}").contains("hunter2"));
        let e = from_reply(530, "5.7.0 Authentication required", &target());
        assert!(e.message.starts_with("authentication failed"), "{e}");
    }

    #[test]
    fn queue_ids_are_read_from_postfix_and_exim_replies() {
        assert_eq!(
            queue_id(&ok("2.0.0 Ok: queued as 4Z1abcD2")).as_deref(),
            Some("4Z1abcD2")
        );
        assert_eq!(
            queue_id(&ok("OK id=1r2s3t-000abc-XY")).as_deref(),
            Some("1r2s3t-000abc-XY")
        );
        assert_eq!(queue_id(&ok("2.0.0 Great success")), None);
        assert_eq!(queue_id(&ok("queued as ")), None);
    }
}

//! SMTP: sends, failures and connection tests against a real SMTP server
//! (the `mailin` crate's SMTP engine, run in the test process by
//! smtp_support/) on 127.0.0.1, in plain text, STARTTLS and implicit TLS,
//! with AUTH PLAIN and LOGIN. Every test is bounded in time.

#[path = "smtp_support/server.rs"]
mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use msgengine_domain::message::{Attachment, MessageExtras, MessageState, OutboundMessage};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::smtp::{SmtpOptions, SmtpProbe, SmtpSender};
use msgengine_providers::{
    sender_for, CheckStatus, FailureKind, ProviderError, ProviderRegistry, SendReceipt, Sender,
};

use crate::helpers::{self, assert_no_secret};
use server::{Mode, SmtpServer, PASSWORD, USER};

/// Longest any one test may take.
const TEST_BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, test)
        .await
        .expect("the test finished within its bound")
}

fn sender(server: &SmtpServer, spec: &AnyProviderSpec) -> SmtpSender {
    sender_with(spec, server.options())
}

/// The default options (Mozilla roots only), allowed to reach loopback.
fn loopback_defaults() -> SmtpOptions {
    SmtpOptions {
        address_policy: msgengine_providers::AddressPolicy::Loopback,
        ..SmtpOptions::default()
    }
}

fn sender_with(spec: &AnyProviderSpec, options: SmtpOptions) -> SmtpSender {
    let AnyProviderSpec::Email(email) = spec else {
        panic!("SMTP specs are email specs");
    };
    SmtpSender::with_options(email, options)
}

fn message(to: &str) -> OutboundMessage {
    let mut m = helpers::message(Channel::Email, to, "Hello Ada");
    m.subject = Some("Welcome".into());
    m
}

fn assert_sent(receipt: &Result<SendReceipt, ProviderError>, message: &OutboundMessage) -> String {
    let receipt = match receipt {
        Ok(receipt) => receipt,
        Err(e) => panic!("send failed: {e}"),
    };
    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.segments, None);
    let (message_id, queue) = receipt
        .provider_message_id
        .split_once(" queue-id=")
        .expect("the server's queue id follows the Message-ID");
    assert_eq!(message_id, format!("{}@example.com", message.id));
    queue.to_owned()
}

fn refused(e: &Result<SendReceipt, ProviderError>) -> &ProviderError {
    match e {
        Ok(receipt) => panic!("expected a failure, got {receipt:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn plain_loopback_send_authenticates_and_delivers_the_exact_message() {
    bounded(async {
        let server = SmtpServer::start(Mode::Plain);
        // Through the registry the engine uses: plain text is allowed on
        // loopback, so the default options (Mozilla roots only) suffice.
        let sender = sender_for(&server.spec(USER, PASSWORD), &helpers::client())
            .expect("SMTP is supported");
        let message = message("ada@example.org");

        let receipt = sender.send(&message, "idem-42").await;

        let queue = assert_sent(&receipt, &message);
        let [got] = <[_; 1]>::try_from(server.received(1).await).expect("one message");
        assert_eq!(got.queue_id, queue);
        assert_eq!(got.mail_from, "ops@example.com");
        assert_eq!(got.rcpt_tos, ["ada@example.org"]);
        assert_eq!(got.auth_login.as_deref(), Some(USER));
        assert_eq!(got.auth_mechanism.as_deref(), Some("PLAIN"));
        assert!(!got.tls);
        assert_eq!(got.header("From"), "Acme Ops <ops@example.com>");
        assert_eq!(got.header("To"), "ada@example.org");
        assert_eq!(got.header("Subject"), "Welcome");
        assert_eq!(
            got.header("Message-ID"),
            format!("<{}@example.com>", message.id)
        );
        assert_eq!(got.header("X-Msgengine-Message-Id"), message.id.to_string());
        assert_eq!(got.header("X-Msgengine-Idempotency-Key"), "idem-42");
        assert!(got.header_values("Reply-To").is_empty());
        assert_eq!(got.content_type, "text/plain");
        assert_eq!(got.parts.len(), 1);
        assert_eq!(got.parts[0].text().trim_end(), "Hello Ada");
    })
    .await;
}

#[tokio::test]
async fn starttls_send_upgrades_before_auth() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let sender = sender(&server, &server.spec(USER, PASSWORD));
        let message = message("ada@example.org");

        let receipt = sender.send(&message, "k").await;

        assert_sent(&receipt, &message);
        let got = server.received(1).await;
        assert!(got[0].tls, "the message travelled over TLS");
        assert_eq!(got[0].auth_login.as_deref(), Some(USER));
    })
    .await;
}

#[tokio::test]
async fn implicit_tls_send_speaks_tls_from_the_first_byte() {
    bounded(async {
        let server = SmtpServer::start(Mode::Implicit);
        let sender = sender(&server, &server.spec(USER, PASSWORD));
        let message = message("ada@example.org");

        let receipt = sender.send(&message, "k").await;

        assert_sent(&receipt, &message);
        let got = server.received(1).await;
        assert!(got[0].tls);
        assert_eq!(got[0].auth_login.as_deref(), Some(USER));
    })
    .await;
}

#[tokio::test]
async fn auth_login_is_used_when_the_server_offers_only_login() {
    bounded(async {
        let server = SmtpServer::start_with(Mode::Starttls, "LOGIN");
        let sender = sender(&server, &server.spec(USER, PASSWORD));
        let message = message("ada@example.org");

        assert_sent(&sender.send(&message, "k").await, &message);
        let got = server.received(1).await;
        assert_eq!(got[0].auth_mechanism.as_deref(), Some("LOGIN"));
    })
    .await;
}

#[tokio::test]
async fn html_reply_to_headers_and_attachments_arrive_as_sent() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let sender = sender(&server, &server.spec(USER, PASSWORD));
        let pdf: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut message = message("Ada Lovelace <ada@example.org>");
        message.from = Some("Billing <billing@example.com>".into());
        message.subject = Some("Facture n° 7 — merci".into());
        message.text = "Your invoice is attached.".into();
        message.html = Some("<p>Your invoice is <b>attached</b>.</p>".into());
        message.extras = Some(Box::new(MessageExtras {
            reply_to: Some("Support <support@example.com>".into()),
            headers: vec![
                ("X-Campaign".into(), "spring-2025".into()),
                ("X-Note".into(), "café au lait".into()),
            ],
            attachments: vec![
                Attachment {
                    filename: "invoice-7.pdf".into(),
                    content_type: "application/pdf".into(),
                    content_base64: b64.encode(&pdf),
                },
                Attachment {
                    filename: "notes.txt".into(),
                    content_type: "text/plain".into(),
                    content_base64: b64.encode("line one\nline two\n"),
                },
            ],
            ..MessageExtras::default()
        }));

        assert_sent(&sender.send(&message, "k").await, &message);

        let got = server.received(1).await.remove(0);
        assert_eq!(got.mail_from, "billing@example.com");
        assert_eq!(got.header("From"), "Billing <billing@example.com>");
        assert_eq!(got.header("To"), "Ada Lovelace <ada@example.org>");
        assert_eq!(got.header("Subject"), "Facture n° 7 — merci");
        assert_eq!(got.header("Reply-To"), "Support <support@example.com>");
        assert_eq!(got.header("X-Campaign"), "spring-2025");
        assert_eq!(got.header("X-Note"), "café au lait");
        assert_eq!(got.content_type, "multipart/mixed");
        assert!(got.raw.contains("multipart/alternative"), "{}", got.raw);
        let kinds: Vec<(&str, Option<&str>)> = got
            .parts
            .iter()
            .map(|p| (p.content_type.as_str(), p.filename.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("text/plain", None),
                ("text/html", None),
                ("application/pdf", Some("invoice-7.pdf")),
                ("text/plain", Some("notes.txt")),
            ]
        );
        assert_eq!(got.parts[0].text().trim_end(), "Your invoice is attached.");
        assert_eq!(
            got.parts[1].text().trim_end(),
            "<p>Your invoice is <b>attached</b>.</p>"
        );
        assert_eq!(got.parts[2].bytes(), pdf);
        assert_eq!(got.parts[2].disposition.as_deref(), Some("attachment"));
        assert_eq!(got.parts[3].text(), "line one\nline two\n");
    })
    .await;
}

#[tokio::test]
async fn wrong_password_is_permanent_with_words_and_no_password() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let wrong = "wrong-Pa55word-kept-secret";
        let sender = sender(&server, &server.spec(USER, wrong));

        let result = sender.send(&message("ada@example.org"), "k").await;

        let e = refused(&result);
        assert_eq!(e.kind, FailureKind::Permanent);
        assert_eq!(e.code.as_deref(), Some("535"));
        assert!(e.message.starts_with("authentication failed"), "{e}");
        assert!(e.message.contains("5.7.8"), "{e}");
        assert_no_secret(e, &[wrong, PASSWORD]);
        assert_eq!(server.received_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn without_credentials_the_servers_530_is_permanent_and_the_probe_says_so() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let spec = helpers::spec(
            Channel::Email,
            serde_json::json!({"providerType": "SMTP", "name": "relay",
                "fromEmail": "ops@example.com",
                "smtpConfig": {"host": "localhost", "port": server.port, "tls": "starttls"}}),
        );

        let result = sender(&server, &spec)
            .send(&message("ada@example.org"), "k")
            .await;

        let e = refused(&result);
        assert_eq!(e.kind, FailureKind::Permanent, "{e}");
        assert_eq!(e.code.as_deref(), Some("530"));
        assert!(e.message.starts_with("authentication failed"), "{e}");
        let probe = SmtpProbe::with_options(server.options());
        let registry = ProviderRegistry::new().with_probe(Channel::Email, "SMTP", Arc::new(probe));
        let report = registry.test(&spec).await;
        assert!(report.ok, "{report:?}");
        assert!(
            report.checks[1].message.contains("no username configured"),
            "{report:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn deferrals_are_transient_with_the_servers_reply() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let sender = sender(&server, &server.spec(USER, PASSWORD));
        for (to, code, words) in [
            (
                "defer451-ada@example.org",
                "451",
                "4.3.0 Temporary lookup failure",
            ),
            (
                "defer421-ada@example.org",
                "421",
                "4.7.0 Service not available",
            ),
            ("full452-ada@example.org", "452", "4.2.2 Mailbox full"),
        ] {
            let result = sender.send(&message(to), "k").await;
            let e = refused(&result);
            assert_eq!(e.kind, FailureKind::Transient, "{to}: {e}");
            assert_eq!(e.code.as_deref(), Some(code), "{to}: {e}");
            assert!(e.message.contains(words), "{to}: {e}");
            assert_no_secret(e, &[PASSWORD]);
        }
        assert_eq!(server.received_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn rejections_are_permanent_with_the_servers_reply() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let sender = sender(&server, &server.spec(USER, PASSWORD));
        for (to, code, words) in [
            (
                "reject550-ada@example.org",
                "550",
                "5.1.1 Recipient address rejected",
            ),
            (
                "toobig552-ada@example.org",
                "552",
                "5.3.4 Message size exceeds",
            ),
            ("policy554-ada@example.org", "554", "5.7.1 Message rejected"),
        ] {
            let result = sender.send(&message(to), "k").await;
            let e = refused(&result);
            assert_eq!(e.kind, FailureKind::Permanent, "{to}: {e}");
            assert_eq!(e.code.as_deref(), Some(code), "{to}: {e}");
            assert!(e.message.contains(words), "{to}: {e}");
        }
        // A rejection does not poison the pool: the next message goes through.
        let ok = message("ada@example.org");
        assert_sent(&sender.send(&ok, "k").await, &ok);
    })
    .await;
}

#[tokio::test]
async fn consecutive_sends_reuse_one_pooled_connection() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let sender = sender(&server, &server.spec(USER, PASSWORD));
        for i in 0..3 {
            let m = message(&format!("ada{i}@example.org"));
            assert_sent(&sender.send(&m, "k").await, &m);
            // lettre hands the connection back to its pool on a spawned task
            // after the send returns; give that task a moment to run.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = server.received(3).await;
        assert!(
            got.iter().all(|m| m.peer_port == got[0].peer_port),
            "one connection carried every message: {:?}",
            got.iter().map(|m| m.peer_port).collect::<Vec<_>>()
        );
    })
    .await;
}

#[tokio::test]
async fn a_server_slower_than_the_bound_is_a_timeout_and_the_pool_is_replaced() {
    bounded(async {
        let server = SmtpServer::start(Mode::Plain);
        let options = SmtpOptions {
            send_timeout: Duration::from_millis(1500),
            ..server.options()
        };
        let sender = sender_with(&server.spec(USER, PASSWORD), options);

        // The server answers DATA for slow-… recipients after 3 s.
        let result = sender.send(&message("slow-ada@example.org"), "k").await;

        let e = refused(&result);
        assert_eq!(e.kind, FailureKind::Timeout, "{e}");
        assert!(e.message.contains("may have accepted"), "{e}");
        // The cut-off connection is not reused: a fresh one carries the next.
        let next = message("ada@example.org");
        assert_sent(&sender.send(&next, "k").await, &next);
    })
    .await;
}

#[tokio::test]
async fn nobody_listening_is_transient() {
    bounded(async {
        let server = SmtpServer::start(Mode::Plain);
        let port = server.port;
        drop(server);
        let spec = helpers::spec(
            Channel::Email,
            serde_json::json!({"providerType": "SMTP", "name": "relay",
                "fromEmail": "ops@example.com",
                "smtpConfig": {"host": "127.0.0.1", "port": port, "tls": "none",
                               "username": USER, "password": PASSWORD}}),
        );
        let sender = sender_with(&spec, loopback_defaults());

        let result = sender.send(&message("ada@example.org"), "k").await;

        let e = refused(&result);
        assert_eq!(e.kind, FailureKind::Transient, "{e}");
        assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert_no_secret(e, &[PASSWORD]);
    })
    .await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_permanent_with_words() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        // Default options: the Mozilla roots only, not the test CA.
        let sender = sender_with(&server.spec(USER, PASSWORD), loopback_defaults());

        let result = sender.send(&message("ada@example.org"), "k").await;

        let e = refused(&result);
        assert_eq!(e.kind, FailureKind::Permanent, "{e}");
        assert!(e.message.contains("TLS with localhost:"), "{e}");
        assert!(e.message.contains("not trusted"), "{e}");
        assert_eq!(server.received_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn tls_mode_mismatches_are_permanent_and_send_nothing_in_clear() {
    bounded(async {
        let server = SmtpServer::start(Mode::Plain);
        let options = SmtpOptions {
            extra_root_certificates_pem: Vec::new(),
            ..server.options()
        };

        // STARTTLS configured, the server does not offer it: no AUTH, no mail.
        let starttls = sender_with(
            &server.spec_as(Mode::Starttls, USER, PASSWORD),
            options.clone(),
        );
        let result = starttls.send(&message("ada@example.org"), "k").await;
        let e = refused(&result);
        assert_eq!(e.kind, FailureKind::Permanent, "{e}");
        assert!(e.message.contains("does not offer STARTTLS"), "{e}");

        // Implicit TLS configured on a plain-text port.
        let implicit = sender_with(&server.spec_as(Mode::Implicit, USER, PASSWORD), options);
        let result = implicit.send(&message("ada@example.org"), "k").await;
        let e = refused(&result);
        assert_eq!(e.kind, FailureKind::Permanent, "{e}");
        assert!(e.message.contains("did not answer in TLS"), "{e}");
        assert_eq!(server.received_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn probe_passes_through_connect_tls_ehlo_and_auth_without_sending() {
    bounded(async {
        let plain = SmtpServer::start(Mode::Plain);
        let live = ProviderRegistry::live(&helpers::client());
        let report = live.test(&plain.spec(USER, PASSWORD)).await;
        assert!(report.ok, "{report:?}");
        assert_eq!(report.checks[1].status, CheckStatus::Passed);
        assert!(
            report.checks[1]
                .message
                .contains("authenticated as \"relay-user\" with AUTH PLAIN"),
            "{report:?}"
        );

        for mode in [Mode::Starttls, Mode::Implicit] {
            let server = SmtpServer::start(mode);
            let registry = ProviderRegistry::new().with_probe(
                Channel::Email,
                "SMTP",
                Arc::new(SmtpProbe::with_options(server.options())),
            );
            let report = registry.test(&server.spec(USER, PASSWORD)).await;
            assert!(report.ok, "{mode:?}: {report:?}");
            let words = &report.checks[1].message;
            let tls = match mode {
                Mode::Starttls => "STARTTLS negotiated",
                _ => "TLS from the first byte",
            };
            assert!(words.contains(tls), "{words}");
            assert!(words.ends_with("no message sent"), "{words}");
            assert_eq!(server.received_count(), 0);
        }
        assert_eq!(plain.received_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn probe_fails_in_words_for_bad_password_bad_certificate_and_no_server() {
    bounded(async {
        let server = SmtpServer::start(Mode::Starttls);
        let trusting = ProviderRegistry::new().with_probe(
            Channel::Email,
            "SMTP",
            Arc::new(SmtpProbe::with_options(server.options())),
        );
        let wrong = "not-the-Pa55word";
        let report = trusting.test(&server.spec(USER, wrong)).await;
        assert!(!report.ok);
        let words = &report.checks[1].message;
        assert_eq!(report.checks[1].status, CheckStatus::Failed);
        assert!(words.starts_with("authentication failed"), "{words}");
        assert!(
            !words.contains(wrong) && !words.contains(PASSWORD),
            "{words}"
        );

        let live = ProviderRegistry::live(&helpers::client());
        let report = live.test(&server.spec(USER, PASSWORD)).await;
        assert!(!report.ok);
        assert!(
            report.checks[1].message.contains("not trusted"),
            "{report:?}"
        );

        let port = server.port;
        drop(server);
        let report = trusting
            .test(&helpers::spec(
                Channel::Email,
                serde_json::json!({"providerType": "SMTP", "name": "relay",
                    "fromEmail": "ops@example.com",
                    "smtpConfig": {"host": "localhost", "port": port, "tls": "starttls"}}),
            ))
            .await;
        assert!(!report.ok);
        let words = &report.checks[1].message;
        assert!(
            words.contains(&format!("SMTP connection to localhost:{port} failed")),
            "{words}"
        );
    })
    .await;
}

#[tokio::test]
async fn clear_text_to_a_remote_host_fails_the_probe_and_the_send_in_words() {
    bounded(async {
        let spec = helpers::spec(
            Channel::Email,
            serde_json::json!({"providerType": "SMTP", "name": "relay",
                "fromEmail": "ops@example.com",
                "smtpConfig": {"host": "smtp.example.com", "port": 25, "tls": "none"}}),
        );
        let report = ProviderRegistry::live(&helpers::client()).test(&spec).await;
        assert!(!report.ok);
        assert!(
            report.checks[1]
                .message
                .contains("only allowed for a loopback host"),
            "{report:?}"
        );
        let sender = sender_with(&spec, loopback_defaults());
        let result = sender.send(&message("ada@example.org"), "k").await;
        assert_eq!(refused(&result).kind, FailureKind::Permanent);
    })
    .await;
}

//! The SMTP sender's own unit tests (moved out of `mod.rs` to keep it short).

use msgengine_domain::provider::email::{SmtpConfig, SmtpTls};
use msgengine_domain::Secret;

use super::*;

fn spec(tls: SmtpTls, host: &str) -> EmailProviderSpec {
    let json = serde_json::json!({"providerType": "SMTP", "name": "relay",
        "fromEmail": "ops@example.com", "fromName": "Acme Ops",
        "smtpConfig": {"host": host, "port": 1, "tls": tls}});
    serde_json::from_value(json).expect("valid spec")
}

fn message() -> OutboundMessage {
    OutboundMessage {
        id: msgengine_domain::MessageId::new(),
        organization_id: msgengine_domain::OrganizationId::new(),
        channel: msgengine_domain::Channel::Email,
        to: "ada@example.org".into(),
        from: None,
        subject: None,
        text: "hi".into(),
        html: None,
        metadata: None,
        extras: None,
        routing: None,
    }
}

fn with_policy(spec: &EmailProviderSpec, address_policy: AddressPolicy) -> SmtpSender {
    SmtpSender::with_options(
        spec,
        SmtpOptions {
            address_policy,
            ..SmtpOptions::default()
        },
    )
}

#[test]
fn the_pool_waits_for_the_first_send() {
    let sender = SmtpSender::new(&spec(SmtpTls::None, "127.0.0.1"));
    assert!(sender.target.is_ok());
    assert!(sender.slot().is_none());
}

#[tokio::test]
async fn internal_hosts_are_refused_before_any_connection_under_the_public_policy() {
    // None of these is ever connected to: the refusal comes from the
    // address check, before lettre is given an address.
    for (host, tls) in [
        ("localhost", SmtpTls::Starttls),
        ("127.0.0.1", SmtpTls::None),
        ("10.0.0.1", SmtpTls::Starttls),
        ("169.254.169.254", SmtpTls::Implicit),
        ("::ffff:192.168.0.1", SmtpTls::Starttls),
    ] {
        let sender = with_policy(&spec(tls, host), AddressPolicy::Public);
        let e = sender.send(&message(), "k").await.err();
        assert!(
            e.as_ref().is_some_and(|e| e.kind == FailureKind::Permanent
                && e.message.contains("engine.providers_allow_private")),
            "{host}: {e:?}"
        );
        assert!(sender.slot().is_none(), "{host}: no pool was built");
    }
}

#[test]
fn dropped_after_its_runtime_is_gone_it_does_not_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sender = runtime.block_on(async {
        let sender = with_policy(&spec(SmtpTls::None, "::1"), AddressPolicy::Loopback);
        // Port 1 on loopback refuses the connection; the pool exists by then.
        let _ = sender.send(&message(), "k").await;
        sender
    });
    assert!(sender.slot().is_some());
    drop(runtime);
    drop(sender);
}

#[tokio::test]
async fn clear_text_to_a_remote_host_is_refused_before_any_connection() {
    let sender = SmtpSender::new(&spec(SmtpTls::None, "smtp.example.com"));
    let e = sender.send(&message(), "k").await.err();
    assert!(
        e.as_ref().is_some_and(|e| e.kind == FailureKind::Permanent
            && e.message.contains("only allowed for a loopback host")),
        "{e:?}"
    );
}

#[test]
fn default_from_uses_the_display_name() {
    let from = default_from(&spec(SmtpTls::Starttls, "smtp.example.com"));
    assert_eq!(
        from.map(|m| m.to_string()).ok().as_deref(),
        Some("Acme Ops <ops@example.com>")
    );
}

#[test]
fn secret_forms_cover_plain_and_login_encodings() {
    let config = SmtpConfig {
        host: "h".into(),
        port: 1,
        tls: SmtpTls::Starttls,
        username: Some("u".into()),
        password: Some(Secret::new("pw")),
    };
    assert_eq!(secret_forms(&config), ["pw", "AHUAcHc=", "cHc="]);
}

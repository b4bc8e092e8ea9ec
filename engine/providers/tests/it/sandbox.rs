//! The sandbox through `sender_for`, and the types `sender_for` refuses.

use std::time::Duration;

use msgengine_domain::message::MessageState;
use msgengine_domain::Channel;
use msgengine_providers::{sender_for, FailureKind, Sender};
use serde_json::json;

use crate::helpers;

fn sandbox(channel: Channel, config: serde_json::Value) -> std::sync::Arc<dyn Sender> {
    let spec = helpers::spec(
        channel,
        json!({"providerType": "SANDBOX", "name": "sbx", "sandboxConfig": config}),
    );
    sender_for(&spec, &helpers::client()).expect("sandbox is supported on every channel")
}

fn to(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "ada@example.org",
        Channel::Sms | Channel::Whatsapp => "+2348031234567",
    }
}

#[tokio::test]
async fn sandbox_without_failures_delivers_on_every_channel() {
    for channel in Channel::ALL {
        let sender = sandbox(channel, json!({}));
        for _ in 0..100 {
            let message = helpers::message(channel, to(channel), &"é".repeat(71));
            let receipt = sender.send(&message, "k").await.expect("delivered");
            assert_eq!(receipt.state, MessageState::Delivered);
            assert!(receipt.provider_message_id.starts_with("sbx-"));
            let segments = (channel == Channel::Sms).then_some(2);
            assert_eq!(receipt.segments, segments, "{channel}");
        }
    }
}

#[tokio::test]
async fn sandbox_with_a_full_transient_rate_always_fails_transiently() {
    let sender = sandbox(Channel::Sms, json!({"transientFailureRate": 1.0}));
    let message = helpers::message(Channel::Sms, "+2348031234567", "Hi");
    for _ in 0..200 {
        let error = sender.send(&message, "k").await.expect_err("fails");
        assert_eq!(error.kind, FailureKind::Transient);
        assert_eq!(error.http_status, Some(503));
        assert_eq!(error.message, "sandbox: simulated transient failure");
    }
}

#[tokio::test]
async fn sandbox_failure_rates_roughly_match_over_a_thousand_sends() {
    let sender = sandbox(
        Channel::Email,
        json!({"transientFailureRate": 0.3, "permanentFailureRate": 0.1}),
    );
    let message = helpers::message(Channel::Email, "ada@example.org", "Hi");
    let (mut transient, mut permanent, mut delivered) = (0, 0, 0);
    for _ in 0..1000 {
        match sender.send(&message, "k").await {
            Ok(_) => delivered += 1,
            Err(e) if e.kind == FailureKind::Transient => transient += 1,
            Err(e) if e.kind == FailureKind::Permanent => permanent += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // Binomial(1000, p): these bounds are many standard deviations wide.
    assert!((200..400).contains(&transient), "transient {transient}");
    assert!((40..180).contains(&permanent), "permanent {permanent}");
    assert!((480..720).contains(&delivered), "delivered {delivered}");
}

#[tokio::test(start_paused = true)]
async fn sandbox_waits_its_latency_before_answering() {
    let sender = sandbox(Channel::Whatsapp, json!({"latencyMs": 250}));
    let message = helpers::message(Channel::Whatsapp, "+2348031234567", "Hi");
    let started = tokio::time::Instant::now();
    let receipt = sender.send(&message, "k").await;
    assert!(receipt.is_ok());
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

#[test]
fn every_provider_type_of_every_channel_has_an_adapter() {
    let sid = "AC0123456789abcdef0123456789abcdef";
    let cases = [
        (
            Channel::Email,
            json!({"providerType": "MAILGUN", "name": "mg", "apiKey": "key-x", "domain": "mg.example.com", "fromEmail": "a@example.com"}),
        ),
        (
            Channel::Email,
            json!({"providerType": "MAILJET", "name": "mj", "apiKey": "public:private", "fromEmail": "a@example.com"}),
        ),
        (
            Channel::Email,
            json!({"providerType": "SENDGRID", "name": "sg", "apiKey": "SG.abc", "fromEmail": "a@example.com"}),
        ),
        (
            Channel::Email,
            json!({"providerType": "SMTP", "name": "relay", "fromEmail": "ops@example.com",
                                "smtpConfig": {"host": "smtp.example.com", "port": 587, "tls": "starttls"}}),
        ),
        (
            Channel::Sms,
            json!({"providerType": "TWILIO", "name": "tw", "senderId": "+14155238886", "credentials": {"accountSid": sid, "authToken": "t"}}),
        ),
        (
            Channel::Sms,
            json!({"providerType": "AFRICASTALKING", "name": "at", "credentials": {"username": "sandbox", "apiKey": "k"}}),
        ),
        (
            Channel::Sms,
            json!({"providerType": "TERMII", "name": "tm", "senderId": "Example", "credentials": {"apiKey": "k"}}),
        ),
        (
            Channel::Whatsapp,
            json!({"providerType": "META_CLOUD", "name": "meta", "accessToken": "EAAG", "phoneNumberId": "1234567890"}),
        ),
        (
            Channel::Whatsapp,
            json!({"providerType": "TWILIO", "name": "tw", "accessToken": "tok", "businessAccountId": sid, "phoneNumber": "+14155238886"}),
        ),
        (
            Channel::Whatsapp,
            json!({"providerType": "GUPSHUP", "name": "gs", "accessToken": "k", "phoneNumber": "+14155238886", "appName": "app"}),
        ),
        (
            Channel::Whatsapp,
            json!({"providerType": "AISENSY", "name": "ai", "accessToken": "k"}),
        ),
        (
            Channel::Whatsapp,
            json!({"providerType": "INTERAKT", "name": "in", "accessToken": "k"}),
        ),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The SMTP sender builds its pool on a runtime.
    let _guard = runtime.enter();
    for (channel, body) in cases {
        let spec = helpers::spec(channel, body.clone());
        assert!(
            sender_for(&spec, &helpers::client()).is_ok(),
            "no adapter for {body}"
        );
    }
}

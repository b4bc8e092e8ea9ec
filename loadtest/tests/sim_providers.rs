//! The simulator's SendGrid, Mailjet, SMTP, Africa's Talking, Termii,
//! Gupshup, AiSensy and Interakt accounts against the engine's own adapters
//! (`sender_for`, `SmtpSender`) and webhook handlers (`webhook_handler_for`):
//! what the adapters send is accepted and recorded, bad credentials and 429s
//! are classified as the adapters classify them, and the status webhooks the
//! simulator posts verify, map to the expected states, and are refused when
//! tampered with.
//!
//! The simulator runs in-process on 127.0.0.1:0; the engine's webhook
//! endpoint is a wiremock server that only records what it is posted.

mod common;

use common::{client, engine, spec};
use std::time::{Duration, Instant};

use chrono::Utc;
use msgengine_domain::message::{MessageExtras, MessageState, OutboundMessage, WhatsappTemplate};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::{Channel, MessageId, OrganizationId};
use msgengine_loadtest::sim::{self, config::SimConfig, SimHandle, StartOptions};
use msgengine_providers::registry::webhook_handler_for;
use msgengine_providers::webhook::{InboundWebhook, SuppressionReason};
use msgengine_providers::{sender_for, FailureKind};
use serde_json::{json, Value};
use wiremock::{MockServer, Request};

const SENDGRID_KEY: &str = "SG.sim-sendgrid-key";
const MAILJET_PUBLIC: &str = "mj-public-key";
const MAILJET_SECRET: &str = "mj-secret-key";
const AT_USER: &str = "acme";
const AT_KEY: &str = "atsk_sim_key";
const TERMII_KEY: &str = "TLsimtermiikey";
const TERMII_SECRET: &str = "termii-secret-key";
const GUPSHUP_KEY: &str = "gupshup-api-key";
const AISENSY_KEY: &str = "aisensy-api-key";
const INTERAKT_KEY: &str = "aW50ZXJha3Q6";
const INTERAKT_SECRET: &str = "interakt-webhook-secret";
const SMTP_USER: &str = "relay-user";
const SMTP_PASSWORD: &str = "relay-password";
/// The `token` query parameter of the providers that do not sign.
const TOKEN: &str = "hook-token-0123456789";

/// One HTTP provider under test.
struct Case {
    /// The simulator account's name (its type).
    name: &'static str,
    /// Where the engine receives its webhooks.
    hook_path: &'static str,
    channel: Channel,
    to: &'static str,
    /// The provider signs (a tampered body must be refused); otherwise the
    /// `token` query parameter is checked (a wrong token must be refused).
    signed: bool,
}

const CASES: [Case; 7] = [
    Case {
        name: "sendgrid",
        hook_path: "/api/webhooks/email/p-sendgrid",
        channel: Channel::Email,
        to: "ada@example.com",
        signed: true,
    },
    Case {
        name: "mailjet",
        hook_path: "/api/webhooks/email/p-mailjet",
        channel: Channel::Email,
        to: "bob@example.com",
        signed: false,
    },
    Case {
        name: "africasTalking",
        hook_path: "/api/webhooks/sms/p-at",
        channel: Channel::Sms,
        to: "+254711000111",
        signed: false,
    },
    Case {
        name: "termii",
        hook_path: "/api/webhooks/sms/p-termii",
        channel: Channel::Sms,
        to: "+2348031234567",
        signed: true,
    },
    Case {
        name: "gupshup",
        hook_path: "/api/webhooks/whatsapp/p-gupshup",
        channel: Channel::Whatsapp,
        to: "+2348031230001",
        signed: false,
    },
    Case {
        name: "aisensy",
        hook_path: "/api/webhooks/whatsapp/p-aisensy",
        channel: Channel::Whatsapp,
        to: "+919876543210",
        signed: false,
    },
    Case {
        name: "interakt",
        hook_path: "/api/webhooks/whatsapp/p-interakt",
        channel: Channel::Whatsapp,
        to: "+2348031230002",
        signed: true,
    },
];

/// The engine's connection for `case` against `sim`, with good or bad
/// credentials.
fn engine_spec(case: &Case, sim: &SimHandle, good: bool) -> AnyProviderSpec {
    let base = sim.base_url();
    let bad = |k: &'static str| if good { k } else { "wrong-credential" };
    let public_key = sim.public_key("sendgrid").expect("a SendGrid key");
    let json = match case.name {
        "sendgrid" => json!({"providerType": "SENDGRID", "name": "sg",
            "apiKey": bad(SENDGRID_KEY), "fromEmail": "ops@example.com",
            "webhookSecret": public_key, "baseUrl": base}),
        "mailjet" => json!({"providerType": "MAILJET", "name": "mj",
            "apiKey": format!("{MAILJET_PUBLIC}:{}", bad(MAILJET_SECRET)),
            "fromEmail": "ops@example.com", "domain": "example.com",
            "webhookSecret": TOKEN, "baseUrl": base}),
        "africasTalking" => json!({"providerType": "AFRICASTALKING", "name": "at",
            "credentials": {"username": AT_USER, "apiKey": bad(AT_KEY), "webhookToken": TOKEN},
            "baseUrl": base}),
        "termii" => json!({"providerType": "TERMII", "name": "t", "senderId": "Acme",
            "credentials": {"apiKey": bad(TERMII_KEY), "webhookSecret": TERMII_SECRET},
            "baseUrl": base}),
        "gupshup" => json!({"providerType": "GUPSHUP", "name": "gs",
            "accessToken": bad(GUPSHUP_KEY), "phoneNumber": "+2348030000000",
            "appName": "acmeapp", "webhookSecret": TOKEN, "baseUrl": base}),
        "aisensy" => json!({"providerType": "AISENSY", "name": "ais",
            "accessToken": bad(AISENSY_KEY), "webhookSecret": TOKEN, "baseUrl": base}),
        "interakt" => json!({"providerType": "INTERAKT", "name": "ik",
            "accessToken": bad(INTERAKT_KEY), "webhookSecret": INTERAKT_SECRET,
            "baseUrl": base}),
        other => panic!("no spec for {other}"),
    };
    spec(case.channel, json)
}

fn message(case: &Case) -> OutboundMessage {
    // AiSensy sends only templates (campaigns).
    let extras = (case.name == "aisensy").then(|| {
        Box::new(MessageExtras {
            template: Some(WhatsappTemplate {
                name: "order_update".into(),
                language: "en".into(),
                variables: vec!["Ada".into()],
                header_media: None,
            }),
            ..MessageExtras::default()
        })
    });
    OutboundMessage {
        id: MessageId::new(),
        organization_id: OrganizationId::new(),
        channel: case.channel,
        to: case.to.into(),
        from: None,
        subject: Some("Hello".into()),
        text: "Your code is 1234".into(),
        html: None,
        metadata: None,
        extras,
        routing: None,
    }
}

/// The simulator with every new provider, webhooks to `engine` (no
/// delay), `behaviour` on every account.
async fn simulator(engine: Option<&MockServer>, behaviour: Value) -> SimHandle {
    let hook = |case: &Case| {
        engine.map(|e| {
            let query = if case.signed {
                String::new()
            } else {
                format!("?token={TOKEN}")
            };
            format!("{}{}{query}", e.uri(), case.hook_path)
        })
    };
    let account = |case: &Case| -> Value {
        match case.name {
            "sendgrid" => json!({"type": "sendgrid", "apiKey": SENDGRID_KEY}),
            "mailjet" => json!({"type": "mailjet", "apiKey": MAILJET_PUBLIC,
                                "secretKey": MAILJET_SECRET, "domain": "example.com"}),
            "africasTalking" => json!({"type": "africasTalking", "username": AT_USER,
                                       "apiKey": AT_KEY}),
            "termii" => json!({"type": "termii", "apiKey": TERMII_KEY,
                               "secretKey": TERMII_SECRET}),
            "gupshup" => json!({"type": "gupshup", "apiKey": GUPSHUP_KEY,
                                "appName": "acmeapp"}),
            "aisensy" => json!({"type": "aisensy", "apiKey": AISENSY_KEY,
                                "campaigns": ["order_update"]}),
            "interakt" => json!({"type": "interakt", "apiKey": INTERAKT_KEY,
                                 "webhookSecret": INTERAKT_SECRET}),
            other => panic!("no account for {other}"),
        }
    };
    let mut providers = Vec::new();
    for case in &CASES {
        let mut entry = account(case);
        for (k, v) in behaviour.as_object().expect("behaviour object") {
            entry[k] = v.clone();
        }
        entry["webhookUrl"] = json!(hook(case));
        entry["webhookDelayMs"] = json!(0);
        entry["webhookRetryDelayMs"] = json!(10);
        providers.push(entry);
    }
    let mut smtp = json!({"type": "smtp", "username": SMTP_USER, "password": SMTP_PASSWORD});
    for (k, v) in behaviour.as_object().expect("behaviour object") {
        if k != "outcomes" {
            smtp[k] = v.clone();
        }
    }
    providers.push(smtp);
    let config = json!({ "providers": providers });
    let config = SimConfig::from_json(&config.to_string()).expect("valid config");
    sim::start(config, StartOptions::loopback())
        .await
        .expect("simulator starts")
}

/// Waits until the engine has received `n` webhooks on `path`.
async fn webhooks(engine: &MockServer, path: &str, n: usize) -> Vec<Request> {
    let started = Instant::now();
    loop {
        let received: Vec<Request> = engine
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == path)
            .collect();
        if received.len() >= n || started.elapsed() > Duration::from_secs(5) {
            assert_eq!(received.len(), n, "webhooks received on {path}");
            return received;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Verifies and parses one webhook with the engine's own handler, and
/// checks that a tampered copy is refused.
fn verify_and_parse(
    case: &Case,
    spec: &AnyProviderSpec,
    request: &Request,
) -> Vec<msgengine_providers::webhook::WebhookEvent> {
    let handler = webhook_handler_for(spec).expect("handler");
    let query = request.url.query().unwrap_or("");
    let url = format!("http://127.0.0.1{}", request.url.path());
    let inbound = InboundWebhook {
        method: "POST",
        url: &url,
        headers: &request.headers,
        query,
        body: &request.body,
    };
    handler
        .verify(&inbound, Utc::now())
        .unwrap_or_else(|e| panic!("{}: the engine refused the webhook: {e:?}", case.name));
    if case.signed {
        let mut tampered = request.body.clone();
        tampered.push(b' ');
        let bad = InboundWebhook {
            body: &tampered,
            ..inbound
        };
        assert!(
            handler.verify(&bad, Utc::now()).is_err(),
            "{}: tampered body accepted",
            case.name
        );
    } else {
        assert!(query.contains(TOKEN), "{}: no token in {query}", case.name);
        let wrong = query.replace(TOKEN, "not-the-token");
        let bad = InboundWebhook {
            query: &wrong,
            ..inbound
        };
        assert!(
            handler.verify(&bad, Utc::now()).is_err(),
            "{}: wrong token accepted",
            case.name
        );
    }
    handler.parse(&inbound, Utc::now()).expect("parsed")
}

/// Sends one message of `case`, waits for its `n` webhooks and returns
/// their events (each verified), with the receipt's provider id.
async fn send_and_collect(
    case: &Case,
    sim: &SimHandle,
    engine: &MockServer,
    n: usize,
) -> (
    OutboundMessage,
    String,
    Vec<msgengine_providers::webhook::WebhookEvent>,
) {
    let spec = engine_spec(case, sim, true);
    let sender = sender_for(&spec, &client()).expect("sender");
    let msg = message(case);
    let key = format!("idem-{}", case.name);
    let receipt = sender
        .send(&msg, &key)
        .await
        .unwrap_or_else(|e| panic!("{}: refused: {e:?}", case.name));
    assert_eq!(receipt.state, MessageState::Sent, "{}", case.name);
    let stats = sim.stats();
    assert_eq!(stats.key(&key).accepted, 1, "{}: key recorded", case.name);
    assert_eq!(stats.recipient(case.to).accepted, 1, "{}", case.name);
    assert_eq!(sim.snapshot().providers[case.name].accepted, 1);
    let mut events = Vec::new();
    for request in webhooks(engine, case.hook_path, n).await {
        events.extend(verify_and_parse(case, &spec, &request));
    }
    for e in &events {
        // SendGrid and Africa's Talking ids are the receipt's (SendGrid's
        // with a suffix the handler cuts); Gupshup's `gsId`; the others'.
        assert_eq!(
            e.provider_message_id.as_deref(),
            Some(receipt.provider_message_id.as_str()),
            "{}: {e:?}",
            case.name
        );
        assert_eq!(e.recipient.as_deref(), Some(case.to), "{}", case.name);
    }
    (msg, receipt.provider_message_id, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_sends_and_its_delivered_webhooks_verify() {
    let engine = engine().await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"delivered": 1}})).await;
    // Webhooks per delivered message, in CASES order.
    let counts = [2, 1, 2, 2, 3, 2, 2];
    for (case, n) in CASES.iter().zip(counts) {
        let (msg, _, events) = send_and_collect(case, &sim, &engine, n).await;
        let states: Vec<_> = events.iter().filter_map(|e| e.state).collect();
        assert!(
            states.contains(&MessageState::Delivered),
            "{}: {states:?}",
            case.name
        );
        if matches!(case.name, "sendgrid" | "mailjet" | "interakt") {
            // These carry our message id back.
            for e in &events {
                assert_eq!(
                    e.message_id.as_deref(),
                    Some(msg.id.to_string().as_str()),
                    "{}",
                    case.name
                );
            }
        }
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_bounce_and_failure_outcomes_map_to_the_engine_states() {
    let engine = engine().await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"bounced": 1}})).await;
    // Email bounces (bounce suppression); SMS and WhatsApp fail.
    let counts = [2, 1, 1, 1, 2, 1, 1];
    for (case, n) in CASES.iter().zip(counts) {
        let (_, _, events) = send_and_collect(case, &sim, &engine, n).await;
        let last = events.last().expect("an event");
        if case.channel == Channel::Email {
            assert_eq!(last.state, Some(MessageState::Bounced), "{}", case.name);
            assert_eq!(
                last.suppress,
                Some(SuppressionReason::Bounce),
                "{}",
                case.name
            );
        } else {
            assert_eq!(last.state, Some(MessageState::Failed), "{}", case.name);
        }
    }
    sim.stop().await;

    let engine = self::engine().await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"read": 1}})).await;
    for case in CASES.iter().filter(|c| c.channel == Channel::Whatsapp) {
        let n = if case.name == "gupshup" { 4 } else { 3 };
        let (_, _, events) = send_and_collect(case, &sim, &engine, n).await;
        let states: Vec<_> = events.iter().filter_map(|e| e.state).collect();
        assert!(
            states.contains(&MessageState::Read),
            "{}: {states:?}",
            case.name
        );
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_and_permanent() {
    let sim = simulator(None, json!({})).await;
    for case in &CASES {
        let sender = sender_for(&engine_spec(case, &sim, false), &client()).expect("sender");
        let e = sender.send(&message(case), "k").await.expect_err("refused");
        assert_eq!(e.kind, FailureKind::Permanent, "{}: {e:?}", case.name);
        assert_eq!(e.http_status, Some(401), "{}: {e:?}", case.name);
        assert_eq!(
            sim.snapshot().providers[case.name].auth_failed,
            1,
            "{}",
            case.name
        );
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_classified_with_their_retry_after() {
    let sim = simulator(None, json!({"rateLimitRate": 1.0, "retryAfterSecs": 2})).await;
    for case in &CASES {
        let sender = sender_for(&engine_spec(case, &sim, true), &client()).expect("sender");
        let e = sender
            .send(&message(case), "k")
            .await
            .expect_err("rate limited");
        assert_eq!(e.kind, FailureKind::RateLimited, "{}: {e:?}", case.name);
        assert_eq!(e.http_status, Some(429), "{}", case.name);
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)), "{}", case.name);
        assert_eq!(sim.snapshot().providers[case.name].rate_limited, 1);
    }
    sim.stop().await;

    let sim = simulator(None, json!({"errorRate": 1.0})).await;
    for case in &CASES {
        let sender = sender_for(&engine_spec(case, &sim, true), &client()).expect("sender");
        let e = sender.send(&message(case), "k").await.expect_err("failed");
        assert_eq!(e.kind, FailureKind::Transient, "{}: {e:?}", case.name);
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sendgrid_verification_key_is_served_on_sendgrid_and_admin_paths() {
    let sim = simulator(None, json!({})).await;
    let key = sim.public_key("sendgrid").expect("key");
    let http = reqwest::Client::new();
    let admin: Value = http
        .get(format!(
            "{}/_sim/accounts/sendgrid/public-key",
            sim.base_url()
        ))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(admin["publicKey"], key.as_str());
    let settings = http
        .get(format!(
            "{}/v3/user/webhooks/event/settings/signed",
            sim.base_url()
        ))
        .bearer_auth(SENDGRID_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(settings.status(), 200);
    let settings: Value = settings.json().await.expect("json");
    assert_eq!(settings["public_key"], key.as_str());
    let refused = http
        .get(format!(
            "{}/v3/user/webhooks/event/settings/signed",
            sim.base_url()
        ))
        .bearer_auth("nope")
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 401);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_probes_pass_against_the_simulator_and_fail_on_bad_credentials() {
    use msgengine_providers::{CheckStatus, ProviderRegistry};
    let sim = simulator(None, json!({})).await;
    let registry = ProviderRegistry::live(&client());
    // AiSensy has no read-only call (its probe cannot pass for sure).
    for case in CASES.iter().filter(|c| c.name != "aisensy") {
        for good in [true, false] {
            let spec = engine_spec(case, &sim, good);
            let report = registry.test(&spec).await;
            let passed = report.ok
                && report
                    .checks
                    .iter()
                    .all(|c| c.status != CheckStatus::Failed);
            assert_eq!(passed, good, "{} ({good}): {report:?}", case.name);
        }
    }
    sim.stop().await;
}

fn smtp_spec(sim: &SimHandle, password: &str) -> AnyProviderSpec {
    let addr = sim.smtp_addr("smtp").expect("an SMTP listener");
    spec(
        Channel::Email,
        json!({"providerType": "SMTP", "name": "relay", "fromEmail": "ops@example.com",
               "smtpConfig": {"host": addr.ip().to_string(), "port": addr.port(), "tls": "none",
                              "username": SMTP_USER, "password": password}}),
    )
}

fn smtp_sender(spec: &AnyProviderSpec) -> msgengine_providers::smtp::SmtpSender {
    let AnyProviderSpec::Email(email) = spec else {
        panic!("an email spec");
    };
    msgengine_providers::smtp::SmtpSender::with_options(
        email,
        msgengine_providers::smtp::SmtpOptions {
            send_timeout: Duration::from_secs(5),
            address_policy: msgengine_providers::AddressPolicy::Loopback,
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_delivers_to_the_listener_and_refuses_a_wrong_password() {
    use msgengine_providers::Sender as _;
    let sim = simulator(None, json!({})).await;
    let sender = smtp_sender(&smtp_spec(&sim, SMTP_PASSWORD));
    let case = Case {
        name: "smtp",
        hook_path: "",
        channel: Channel::Email,
        to: "carol@example.com",
        signed: false,
    };
    let msg = message(&case);
    for key in ["smtp-1", "smtp-2"] {
        let receipt = sender.send(&msg, key).await.expect("accepted");
        assert!(
            receipt.provider_message_id.contains(" queue-id="),
            "{receipt:?}"
        );
    }
    assert_eq!(sim.stats().recipient("carol@example.com").accepted, 2);
    assert_eq!(sim.stats().key("smtp-1").accepted, 1);
    assert_eq!(sim.snapshot().providers["smtp"].accepted, 2);

    // Concurrent sends over the adapter's pooled connections: each once.
    let sender = std::sync::Arc::new(sender);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (sender, msg) = (sender.clone(), msg.clone());
        tasks.push(tokio::spawn(async move {
            sender.send(&msg, &format!("smtp-many-{i}")).await
        }));
    }
    for task in tasks {
        task.await.expect("joined").expect("accepted");
    }
    let s = sim.snapshot();
    assert_eq!(s.providers["smtp"].accepted, 42);
    assert_eq!(s.idempotency_keys.distinct, 42);
    assert_eq!(s.idempotency_keys.accepted_more_than_once, 0);

    let wrong = smtp_sender(&smtp_spec(&sim, "wrong-password"));
    let e = wrong.send(&msg, "smtp-3").await.expect_err("refused");
    assert_eq!(e.kind, FailureKind::Permanent, "{e:?}");
    assert_eq!(e.code.as_deref(), Some("535"), "{e:?}");
    assert_eq!(sim.snapshot().providers["smtp"].auth_failed, 1);
    assert_eq!(sim.stats().key("smtp-3").attempts, 0);
    sim.stop().await;
    // Stopped means stopped: the pooled connections were cut too.
    let e = sender.send(&msg, "smtp-after-stop").await.expect_err("cut");
    assert_eq!(e.kind, FailureKind::Transient, "{e:?}");

    // A refused mail (4xx) is transient, recorded, and the session goes on.
    let sim = simulator(None, json!({"errorRate": 1.0})).await;
    let sender = smtp_sender(&smtp_spec(&sim, SMTP_PASSWORD));
    for _ in 0..2 {
        let e = sender.send(&msg, "smtp-4").await.expect_err("refused");
        assert_eq!(e.kind, FailureKind::Transient, "{e:?}");
        assert_eq!(e.code.as_deref(), Some("451"), "{e:?}");
    }
    assert_eq!(sim.stats().key("smtp-4").attempts, 2);
    assert_eq!(sim.stats().key("smtp-4").accepted, 0);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendgrid_429_without_retry_after_is_timed_by_its_rate_limit_reset() {
    let sim = simulator(None, json!({"rateLimitRate": 1.0, "retryAfterSecs": null})).await;
    let case = &CASES[0];
    let sender = sender_for(&engine_spec(case, &sim, true), &client()).expect("sender");
    let e = sender
        .send(&message(case), "k")
        .await
        .expect_err("rate limited");
    assert_eq!(e.kind, FailureKind::RateLimited, "{e:?}");
    // X-RateLimit-Reset is one second ahead (whole seconds, so 0..=1 s).
    let wait = e.retry_after.expect("a wait from X-RateLimit-Reset");
    assert!(wait <= Duration::from_secs(1), "{wait:?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_of_one_type_are_told_apart_by_their_keys() {
    let config = json!({"providers": [
        {"type": "termii", "name": "termii-a", "apiKey": "key-a", "secretKey": "s"},
        {"type": "termii", "name": "termii-b", "apiKey": "key-b", "secretKey": "s"},
    ]});
    let config = SimConfig::from_json(&config.to_string()).expect("valid config");
    let sim = sim::start(config, StartOptions::loopback())
        .await
        .expect("simulator starts");
    let case = &CASES[3];
    let spec_b = spec(
        Channel::Sms,
        json!({"providerType": "TERMII", "name": "t", "senderId": "Acme",
               "credentials": {"apiKey": "key-b"}, "baseUrl": sim.base_url()}),
    );
    let sender = sender_for(&spec_b, &client()).expect("sender");
    sender.send(&message(case), "k-b").await.expect("accepted");
    let s = sim.snapshot();
    assert_eq!(s.providers["termii-b"].accepted, 1);
    assert_eq!(s.providers["termii-a"].requests, 0);
    sim.stop().await;
}

//! The provider simulator against the engine's own adapters and webhook
//! handlers: what the adapters send is what the simulator accepts, what the
//! simulator signs is what the handlers verify.
//!
//! The simulator runs in-process on 127.0.0.1:0; the engine's webhook
//! endpoint is a wiremock server that only records what it is posted.

mod common;

use common::{client, engine, spec};
use std::time::{Duration, Instant};

use chrono::Utc;
use msgengine_domain::message::{MessageState, OutboundMessage};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::{Channel, MessageId, OrganizationId};
use msgengine_loadtest::sim::{self, config::SimConfig, SimHandle, StartOptions};
use msgengine_providers::registry::webhook_handler_for;
use msgengine_providers::webhook::{InboundWebhook, SuppressionReason};
use msgengine_providers::{sender_for, FailureKind, Sender};
use serde_json::{json, Value};
use url::Url;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-token-0123456789";
const META_TOKEN: &str = "EAAG-meta-access-token";
const APP_SECRET: &str = "meta-app-secret";
const PHONE_NUMBER_ID: &str = "1234567890";
const MAILGUN_KEY: &str = "key-mailgun-0123456789";
const SIGNING_KEY: &str = "mailgun-signing-key";

fn twilio_spec(base: &str, token: &str) -> AnyProviderSpec {
    spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "credentials": {"accountSid": ACCOUNT_SID, "authToken": token},
               "baseUrl": base}),
    )
}

fn meta_spec(base: &str, token: &str) -> AnyProviderSpec {
    spec(
        Channel::Whatsapp,
        json!({"providerType": "META_CLOUD", "name": "meta", "accessToken": token,
               "phoneNumberId": PHONE_NUMBER_ID, "businessAccountId": "98765",
               "webhookVerifyToken": "verify", "webhookSecret": APP_SECRET,
               "baseUrl": base}),
    )
}

fn mailgun_spec(base: &str, key: &str) -> AnyProviderSpec {
    spec(
        Channel::Email,
        json!({"providerType": "MAILGUN", "name": "mg", "apiKey": key,
               "domain": "mg.example.com", "fromEmail": "ops@example.com",
               "webhookSecret": SIGNING_KEY, "baseUrl": base}),
    )
}

fn message(channel: Channel, to: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        organization_id: OrganizationId::new(),
        channel,
        to: to.into(),
        from: None,
        subject: Some("Hello".into()),
        text: "Your code is 1234".into(),
        html: None,
        metadata: None,
        extras: None,
        routing: None,
    }
}

/// The simulator with every provider, webhooks to `engine` (no delay).
async fn simulator(engine: Option<&MockServer>, behaviour: Value) -> SimHandle {
    let hook = |path: &str| engine.map(|e| format!("{}{path}", e.uri()));
    let with = |mut entry: Value, path: &str| {
        for (k, v) in behaviour.as_object().expect("behaviour object") {
            // Twilio's own field only on the Twilio entry.
            if k != "whatsappWebhookUrl" || entry["type"] == "twilio" {
                entry[k] = v.clone();
            }
        }
        entry["webhookUrl"] = json!(hook(path));
        entry["webhookDelayMs"] = json!(0);
        entry["webhookRetryDelayMs"] = json!(10);
        entry
    };
    let config = json!({"providers": [
        with(json!({"type": "twilio", "accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN}),
             "/api/webhooks/sms/p-twilio"),
        with(json!({"type": "metaCloud", "accessToken": META_TOKEN, "appSecret": APP_SECRET,
                    "phoneNumberId": PHONE_NUMBER_ID, "businessAccountId": "98765"}),
             "/api/webhooks/whatsapp/p-meta"),
        with(json!({"type": "mailgun", "apiKey": MAILGUN_KEY, "signingKey": SIGNING_KEY,
                    "domain": "mg.example.com"}),
             "/api/webhooks/email/p-mailgun"),
    ]});
    let config = SimConfig::from_json(&config.to_string()).expect("valid config");
    sim::start(config, StartOptions::loopback())
        .await
        .expect("simulator starts")
}

/// Waits until the engine has received `n` webhooks.
async fn webhooks(engine: &MockServer, n: usize) -> Vec<Request> {
    let started = Instant::now();
    loop {
        let received = engine.received_requests().await.unwrap_or_default();
        if received.len() >= n || started.elapsed() > Duration::from_secs(5) {
            assert_eq!(received.len(), n, "webhooks received");
            return received;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `http://{Host header}`: where the simulator posted.
fn engine_base(request: &Request) -> String {
    let host = request
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .expect("a Host header");
    format!("http://{host}")
}

/// Verifies and parses one webhook with the engine's own handler.
fn verify_and_parse(
    spec: &AnyProviderSpec,
    request: &Request,
) -> Vec<msgengine_providers::webhook::WebhookEvent> {
    let handler = webhook_handler_for(spec).expect("handler");
    // The URL as the engine knows it (its public base, the path and query
    // called): wiremock's own `request.url` does not keep the port.
    let mut url = format!("{}{}", engine_base(request), request.url.path());
    if let Some(query) = request.url.query() {
        url.push('?');
        url.push_str(query);
    }
    let inbound = InboundWebhook {
        method: "POST",
        url: &url,
        headers: &request.headers,
        query: request.url.query().unwrap_or(""),
        body: &request.body,
    };
    handler
        .verify(&inbound, Utc::now())
        .expect("the engine verifies the simulator's signature");
    // A tampered body is refused: the signature really covers it.
    let mut tampered = request.body.clone();
    tampered.push(b' ');
    let bad = InboundWebhook {
        body: &tampered,
        ..inbound
    };
    if spec.provider_type() != "MAILGUN" {
        assert!(handler.verify(&bad, Utc::now()).is_err(), "tampered body");
    }
    handler.parse(&inbound, Utc::now()).expect("parsed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_send_answers_201_and_signed_callbacks_verify() {
    let engine = engine().await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"delivered": 1}})).await;
    let spec = twilio_spec(&sim.base_url(), AUTH_TOKEN);
    let AnyProviderSpec::Sms(sms) = &spec else {
        panic!("sms spec");
    };
    // The StatusCallback carries our message id in its query.
    let callback = Url::parse(&format!("{}/api/webhooks/sms/p-twilio", engine.uri())).expect("url");
    let sender = msgengine_providers::twilio_sms::TwilioSmsSender::new(sms, client())
        .with_status_callback(callback);
    let msg = message(Channel::Sms, "+2348031234567");
    let receipt = sender.send(&msg, "idem-1").await.expect("accepted");
    assert!(receipt.provider_message_id.starts_with("SM"));
    assert_eq!(receipt.provider_message_id.len(), 34);
    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.segments, Some(1));

    let received = webhooks(&engine, 2).await;
    let mut states = Vec::new();
    for request in &received {
        assert!(request.headers.contains_key("x-twilio-signature"));
        let events = verify_and_parse(&spec, request);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            e.provider_message_id.as_deref(),
            Some(receipt.provider_message_id.as_str())
        );
        assert_eq!(e.message_id.as_deref(), Some(msg.id.to_string().as_str()));
        assert_eq!(e.recipient.as_deref(), Some("+2348031234567"));
        states.push(e.state);
    }
    states.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        states,
        [Some(MessageState::Delivered), Some(MessageState::Sent)]
    );
    assert_eq!(sim.stats().key("idem-1").accepted, 1);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_exact_answers_and_failed_callback_with_error_code() {
    let engine = engine().await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"failed": 1}})).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        sim.base_url()
    );
    let form = [
        ("To", "+2348031234567"),
        ("From", "+15005550006"),
        ("Body", "hi"),
    ];
    let answer = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&form)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 201);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["num_segments"], "1");
    assert_eq!(body["account_sid"], ACCOUNT_SID);
    assert_eq!(body["to"], "+2348031234567");
    assert_eq!(body["direction"], "outbound-api");

    // Wrong token: 401 with Twilio's error body.
    let answer = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some("wrong"))
        .form(&form)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        body,
        json!({"code": 20003, "message": "Authenticate",
               "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
    );

    // No To: 400 21604.
    let answer = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[("From", "+15005550006"), ("Body", "hi")])
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["code"], 21604);

    // The failed callback goes to the configured webhookUrl, signed.
    let spec = twilio_spec(&sim.base_url(), AUTH_TOKEN);
    let received = webhooks(&engine, 1).await;
    let events = verify_and_parse(&spec, &received[0]);
    assert_eq!(events[0].state, Some(MessageState::Failed));
    assert_eq!(events[0].error_code.as_deref(), Some("30008"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_adapter_classifies_auth_refusal_and_429() {
    let sim = simulator(None, json!({})).await;
    let sender =
        sender_for(&twilio_spec(&sim.base_url(), "wrong-token"), &client()).expect("sender");
    let e = sender
        .send(&message(Channel::Sms, "+2348031234567"), "k")
        .await
        .expect_err("refused");
    assert_eq!(e.kind, FailureKind::Permanent);
    assert_eq!(e.http_status, Some(401));
    assert_eq!(e.code.as_deref(), Some("20003"));
    assert_eq!(sim.snapshot().providers["twilio"].auth_failed, 1);
    sim.stop().await;

    let sim = simulator(None, json!({"rateLimitRate": 1.0, "retryAfterSecs": 2})).await;
    let sender = sender_for(&twilio_spec(&sim.base_url(), AUTH_TOKEN), &client()).expect("sender");
    let e = sender
        .send(&message(Channel::Sms, "+2348031234567"), "k")
        .await
        .expect_err("rate limited");
    assert_eq!(e.kind, FailureKind::RateLimited);
    assert_eq!(e.http_status, Some(429));
    assert_eq!(e.code.as_deref(), Some("20429"));
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    sim.stop().await;

    let sim = simulator(None, json!({"errorRate": 1.0})).await;
    let sender = sender_for(&twilio_spec(&sim.base_url(), AUTH_TOKEN), &client()).expect("sender");
    let e = sender
        .send(&message(Channel::Sms, "+2348031234567"), "k")
        .await
        .expect_err("server error");
    assert_eq!(e.kind, FailureKind::Transient);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_send_and_read_statuses_echo_our_message_id() {
    let engine = engine().await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"read": 1}})).await;
    let spec = meta_spec(&sim.base_url(), META_TOKEN);
    let sender = sender_for(&spec, &client()).expect("sender");
    let msg = message(Channel::Whatsapp, "+2348031234567");
    let receipt = sender.send(&msg, "idem-meta").await.expect("accepted");
    assert!(receipt.provider_message_id.starts_with("wamid."));

    let received = webhooks(&engine, 3).await;
    let mut states = Vec::new();
    for request in &received {
        assert_eq!(request.url.path(), "/api/webhooks/whatsapp/p-meta");
        let events = verify_and_parse(&spec, request);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].message_id.as_deref(),
            Some(msg.id.to_string().as_str())
        );
        assert_eq!(
            events[0].provider_message_id.as_deref(),
            Some(receipt.provider_message_id.as_str())
        );
        assert_eq!(events[0].recipient.as_deref(), Some("+2348031234567"));
        states.push(events[0].state);
    }
    for state in [
        MessageState::Sent,
        MessageState::Delivered,
        MessageState::Read,
    ] {
        assert!(states.contains(&Some(state)), "{state:?} in {states:?}");
    }
    assert_eq!(sim.stats().recipient("+2348031234567").accepted, 1);

    // Wrong token: 401 with the Graph envelope, code 190.
    let bad = sender_for(&meta_spec(&sim.base_url(), "nope"), &client()).expect("sender");
    let e = bad.send(&msg, "k").await.expect_err("refused");
    assert_eq!(e.kind, FailureKind::Permanent);
    assert_eq!((e.http_status, e.code.as_deref()), (Some(401), Some("190")));
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/v21.0/{PHONE_NUMBER_ID}/messages",
            sim.base_url()
        ))
        .bearer_auth("nope")
        .json(&json!({}))
        .send()
        .await
        .expect("answer");
    assert_eq!(raw.status(), 401);
    let body: Value = raw.json().await.expect("json");
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["type"], "OAuthException");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_and_mailgun_429_carry_retry_after() {
    let sim = simulator(None, json!({"rateLimitRate": 1.0, "retryAfterSecs": 3})).await;
    for spec in [
        meta_spec(&sim.base_url(), META_TOKEN),
        mailgun_spec(&sim.base_url(), MAILGUN_KEY),
    ] {
        let sender = sender_for(&spec, &client()).expect("sender");
        let channel = spec.channel();
        let to = if channel == Channel::Email {
            "ada@example.com"
        } else {
            "+2348031234567"
        };
        let e = sender
            .send(&message(channel, to), "k")
            .await
            .expect_err("rate limited");
        assert_eq!(e.kind, FailureKind::RateLimited, "{channel:?}");
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)), "{channel:?}");
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailgun_send_and_bounce_event_verify_and_suppress() {
    let engine = engine().await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"bounced": 1}})).await;
    let spec = mailgun_spec(&sim.base_url(), MAILGUN_KEY);
    let sender = sender_for(&spec, &client()).expect("sender");
    let msg = message(Channel::Email, "ada@example.com");
    let receipt = sender.send(&msg, "idem-mg").await.expect("accepted");
    assert!(receipt.provider_message_id.ends_with("@mg.example.com"));
    assert!(!receipt.provider_message_id.starts_with('<'));

    let received = webhooks(&engine, 1).await;
    let events = verify_and_parse(&spec, &received[0]);
    let e = &events[0];
    assert_eq!(e.state, Some(MessageState::Bounced));
    assert_eq!(e.suppress, Some(SuppressionReason::Bounce));
    assert_eq!(e.message_id.as_deref(), Some(msg.id.to_string().as_str()));
    assert_eq!(
        e.provider_message_id.as_deref(),
        Some(receipt.provider_message_id.as_str())
    );
    assert_eq!(e.recipient.as_deref(), Some("ada@example.com"));

    // The exact answers: success, Forbidden, a missing parameter.
    let http = reqwest::Client::new();
    let url = format!("{}/v3/mg.example.com/messages", sim.base_url());
    let answer = http
        .post(&url)
        .basic_auth("api", Some(MAILGUN_KEY))
        .form(&[
            ("from", "ops@example.com"),
            ("to", "bob@example.com"),
            ("text", "hi"),
        ])
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["message"], "Queued. Thank you.");
    let id = body["id"].as_str().expect("id");
    assert!(
        id.starts_with('<') && id.ends_with("@mg.example.com>"),
        "{id}"
    );
    let answer = http
        .post(&url)
        .basic_auth("api", Some("wrong"))
        .form(&[("from", "ops@example.com")])
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.text().await.expect("text"), "Forbidden");
    let answer = http
        .post(&url)
        .basic_auth("api", Some(MAILGUN_KEY))
        .form(&[("to", "bob@example.com"), ("text", "hi")])
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body, json!({"message": "from parameter is missing"}));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_recorded_per_recipient_and_idempotency_key() {
    let sim = simulator(None, json!({})).await;
    let sender = sender_for(&twilio_spec(&sim.base_url(), AUTH_TOKEN), &client()).expect("sender");
    let ada = message(Channel::Sms, "+2348031234567");
    let bob = message(Channel::Sms, "+2348039999999");
    sender.send(&ada, "key-ada").await.expect("sent");
    // A retry of the same message under the same key: a duplicate.
    sender.send(&ada, "key-ada").await.expect("sent");
    sender.send(&bob, "key-bob").await.expect("sent");

    assert_eq!(sim.stats().recipient("+2348031234567").accepted, 2);
    assert_eq!(sim.stats().recipient("+2348039999999").accepted, 1);
    assert_eq!(sim.stats().key("key-ada").attempts, 2);
    assert_eq!(sim.stats().key("key-bob").accepted, 1);

    let stats: Value = reqwest::get(format!("{}/_sim/stats", sim.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["providers"]["twilio"]["requests"], 3);
    assert_eq!(stats["providers"]["twilio"]["accepted"], 3);
    assert_eq!(stats["recipients"]["distinct"], 2);
    assert_eq!(stats["idempotencyKeys"]["acceptedMoreThanOnce"], 1);
    assert_eq!(
        stats["idempotencyKeys"]["duplicates"]["key-ada"]["accepted"],
        2
    );
    let one: Value = reqwest::get(format!("{}/_sim/stats/keys/key-bob", sim.base_url()))
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    assert_eq!(one, json!({"attempts": 1, "accepted": 1}));

    let reset = reqwest::Client::new()
        .post(format!("{}/_sim/reset", sim.base_url()))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), 204);
    assert_eq!(sim.stats().key("key-ada").attempts, 0);
    assert_eq!(sim.snapshot().providers["twilio"].requests, 0);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_retried_when_the_engine_fails() {
    let engine = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&engine)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&engine)
        .await;
    let sim = simulator(Some(&engine), json!({"outcomes": {"delivered": 1}})).await;
    let sender =
        sender_for(&mailgun_spec(&sim.base_url(), MAILGUN_KEY), &client()).expect("sender");
    sender
        .send(&message(Channel::Email, "ada@example.com"), "k")
        .await
        .expect("sent");
    webhooks(&engine, 2).await;
    let started = Instant::now();
    while sim.snapshot().providers["mailgun"].webhooks_delivered < 1
        && started.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counters = &sim.snapshot().providers["mailgun"];
    assert_eq!(counters.webhook_retries, 1);
    assert_eq!(counters.webhooks_delivered, 1);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_are_each_recorded_once() {
    let sim = simulator(None, json!({"latencyMs": 5})).await;
    let sender = std::sync::Arc::new(
        sender_for(&twilio_spec(&sim.base_url(), AUTH_TOKEN), &client()).expect("sender"),
    );
    let mut tasks = Vec::new();
    for i in 0..400 {
        let sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let to = format!("+23480300{:05}", i % 100);
            sender
                .send(&message(Channel::Sms, &to), &format!("key-{i}"))
                .await
        }));
    }
    for task in tasks {
        task.await.expect("joined").expect("sent");
    }
    let s = sim.snapshot();
    assert_eq!(s.providers["twilio"].accepted, 400);
    assert_eq!(s.idempotency_keys.distinct, 400);
    assert_eq!(s.idempotency_keys.accepted_more_than_once, 0);
    assert_eq!(s.recipients.distinct, 100);
    assert_eq!(s.recipients.accepted, 400);
    assert_eq!(sim.stats().recipient("+2348030000007").accepted, 4);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_probes_pass_against_the_simulator_and_fail_on_bad_credentials() {
    use msgengine_providers::{CheckStatus, ProviderRegistry};
    let sim = simulator(None, json!({})).await;
    let registry = ProviderRegistry::live(&client());
    let base = sim.base_url();
    for (spec, good) in [
        (twilio_spec(&base, AUTH_TOKEN), true),
        (twilio_spec(&base, "wrong"), false),
        (meta_spec(&base, META_TOKEN), true),
        (meta_spec(&base, "wrong"), false),
        (mailgun_spec(&base, MAILGUN_KEY), true),
        (mailgun_spec(&base, "wrong"), false),
    ] {
        let report = registry.test(&spec).await;
        let passed = report.ok
            && report
                .checks
                .iter()
                .all(|c| c.status != CheckStatus::Failed);
        assert_eq!(passed, good, "{}: {report:?}", spec.provider_type());
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_whatsapp_sends_and_read_callbacks_go_to_the_whatsapp_url() {
    let engine = engine().await;
    let whatsapp_hook = format!("{}/api/webhooks/whatsapp/p-twilio-wa", engine.uri());
    let sim = simulator(
        Some(&engine),
        json!({"outcomes": {"read": 1}, "whatsappWebhookUrl": whatsapp_hook}),
    )
    .await;
    let spec = spec(
        Channel::Whatsapp,
        json!({"providerType": "TWILIO", "name": "tw-wa", "businessAccountId": ACCOUNT_SID,
               "accessToken": AUTH_TOKEN, "phoneNumber": "+15005550006",
               "baseUrl": sim.base_url()}),
    );
    let sender = sender_for(&spec, &client()).expect("sender");
    let receipt = sender
        .send(&message(Channel::Whatsapp, "+2348031234567"), "idem-wa")
        .await
        .expect("accepted");
    let received = webhooks(&engine, 3).await;
    let mut states = Vec::new();
    for request in &received {
        assert_eq!(request.url.path(), "/api/webhooks/whatsapp/p-twilio-wa");
        let events = verify_and_parse(&spec, request);
        assert_eq!(
            events[0].provider_message_id.as_deref(),
            Some(receipt.provider_message_id.as_str())
        );
        assert_eq!(events[0].recipient.as_deref(), Some("+2348031234567"));
        states.push(events[0].state);
    }
    assert!(states.contains(&Some(MessageState::Read)), "{states:?}");
    // Recorded without the `whatsapp:` prefix.
    assert_eq!(sim.stats().recipient("+2348031234567").accepted, 1);
    sim.stop().await;
}

/// An HTTP endpoint that holds every request 100 ms and records the most
/// requests it held at once.
async fn slow_endpoint() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (now, most, total) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (most_out, total_out) = (most.clone(), total.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (now, most, total) = (now.clone(), most.clone(), total.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..end + 4 + length);
                    let held = now.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(held, SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    now.fetch_sub(1, SeqCst);
                    total.fetch_add(1, SeqCst);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                    if socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/hook"), most_out, total_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_posted_at_most_webhook_concurrency_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let (hook, most, total) = slow_endpoint().await;
    let config = json!({"providers": [
        {"type": "twilio", "accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN,
         "webhookUrl": hook, "webhookDelayMs": 0, "outcomes": {"delivered": 1}}
    ]});
    let config = SimConfig::from_json(&config.to_string()).expect("valid config");
    let sim = sim::start(
        config,
        StartOptions {
            webhook_concurrency: 3,
            ..StartOptions::loopback()
        },
    )
    .await
    .expect("simulator starts");
    let spec = twilio_spec(&sim.base_url(), AUTH_TOKEN);
    let AnyProviderSpec::Sms(sms) = &spec else {
        panic!("sms spec");
    };
    let sender = msgengine_providers::twilio_sms::TwilioSmsSender::new(sms, client());
    for i in 0..12 {
        let msg = message(Channel::Sms, "+2348031234567");
        sender
            .send(&msg, &format!("idem-{i}"))
            .await
            .expect("accepted");
    }
    // 12 messages, a "sent" and a "delivered" webhook each, 100 ms apiece.
    let started = Instant::now();
    while total.load(SeqCst) < 24 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(total.load(SeqCst), 24, "every webhook posted");
    assert_eq!(
        most.load(SeqCst),
        3,
        "at most 3 at once, and the 3 were used"
    );
    sim.stop().await;
}

//! End to end, one test per channel: the engine sends through its real
//! adapter to the provider simulator (`msgengine-sim`, in-process on
//! loopback), the simulator posts the provider's own signed status
//! webhooks back to the engine, and the message reaches `delivered`.
//! Forged webhooks are refused; a bounce suppresses the address.

use std::time::{Duration, Instant};

use msgengine_loadtest::sim::{self, config::SimConfig, SimHandle, StartOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Org, TestApp};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-token-e2e-0123456789";
const META_TOKEN: &str = "EAAG-meta-access-token-e2e";
const APP_SECRET: &str = "meta-app-secret-e2e";
const PHONE_NUMBER_ID: &str = "1234567890";
const MAILGUN_KEY: &str = "key-mailgun-e2e-0123456789";
const SIGNING_KEY: &str = "mailgun-signing-key-e2e";

/// A simulator with one account of `entry` (named `name`), delivering
/// everything (or per `outcomes`), webhooks quickly.
async fn simulator(mut entry: Value, outcomes: Value) -> SimHandle {
    entry["outcomes"] = outcomes;
    entry["webhookDelayMs"] = json!(20);
    entry["webhookRetryDelayMs"] = json!(50);
    let config = SimConfig::from_json(&json!({"providers": [entry]}).to_string())
        .expect("valid simulator config");
    sim::start(config, StartOptions::loopback())
        .await
        .expect("simulator starts")
}

/// Points the simulator's account at the engine's webhook URL for a provider.
async fn point_webhooks(sim: &SimHandle, account: &str, url: &str, field: &str) {
    let res = reqwest::Client::new()
        .put(format!(
            "{}/_sim/accounts/{account}/webhook",
            sim.base_url()
        ))
        .json(&json!({ field: url }))
        .send()
        .await
        .expect("simulator answers");
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// Sends one message, returns its id.
async fn send(app: &TestApp, org: &Org, body: Value) -> String {
    let (status, answer) = app.send(org, &body).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().expect("message id").to_owned()
}

/// The states of a status document's event history, in order.
fn states(status: &Value) -> Vec<String> {
    status["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["state"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the simulator has counted `n` delivered webhooks for
/// `account` (bounded: 20 s).
async fn webhooks_delivered(sim: &SimHandle, account: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot = serde_json::to_value(sim.snapshot()).expect("stats serialise");
        let got = snapshot["providers"][account]["webhooksDelivered"]
            .as_u64()
            .unwrap_or(0);
        if got >= n {
            return;
        }
        assert!(Instant::now() < deadline, "webhooks: {snapshot}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator received exactly one accepted send for `recipient`.
fn sent_once(sim: &SimHandle, recipient: &str) {
    let snapshot = serde_json::to_value(sim.stats().recipient(recipient)).expect("serialise");
    assert_eq!(snapshot["accepted"], 1, "{recipient}: {snapshot}");
}

#[tokio::test]
async fn sms_through_the_simulated_twilio_is_delivered_by_its_signed_callback() {
    let app = TestApp::spawn().await;
    let org = app.org("e2e-sms").await;
    let sim = simulator(
        json!({"type": "twilio", "name": "tw", "accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN}),
        json!({"delivered": 1}),
    )
    .await;
    let provider = app
        .provider(
            &org,
            "sms",
            json!({"providerType": "TWILIO", "name": "twilio-sim", "senderId": "+15005550006",
                   "credentials": {"accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN},
                   "baseUrl": sim.base_url()}),
        )
        .await;
    let pid = provider["id"].as_str().expect("provider id");
    let hook = format!("{}/api/webhooks/sms/{pid}", app.base);
    point_webhooks(&sim, "tw", &hook, "webhookUrl").await;

    let to = "+2348031110001";
    let id = send(
        &app,
        &org,
        json!({"channel": "sms", "to": to, "text": "hello"}),
    )
    .await;
    let status = app.wait_for(&org, &id, &["delivered"]).await;
    assert_eq!(status["providerId"], pid, "{status}");
    assert!(
        status["providerMessageId"]
            .as_str()
            .is_some_and(|s| s.starts_with("SM")),
        "{status}"
    );
    let history = states(&status);
    assert!(
        history.ends_with(&["sent".into(), "delivered".into()]),
        "{history:?}"
    );
    sent_once(&sim, to);
    webhooks_delivered(&sim, "tw", 2).await;

    // A forged callback (no valid X-Twilio-Signature) is refused and changes nothing.
    let forged = reqwest::Client::new()
        .post(&hook)
        .header("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .form(&[
            (
                "MessageSid",
                status["providerMessageId"].as_str().unwrap_or(""),
            ),
            ("MessageStatus", "failed"),
            ("AccountSid", ACCOUNT_SID),
        ])
        .send()
        .await
        .expect("engine answers");
    assert_eq!(forged.status(), 401);
    let (_, after) = app.status(&org, &id).await;
    assert_eq!(after["status"], "delivered", "{after}");
    sim.stop().await;
}

#[tokio::test]
async fn whatsapp_through_the_simulated_meta_cloud_api_is_delivered_and_read() {
    let app = TestApp::spawn().await;
    let org = app.org("e2e-whatsapp").await;
    let sim = simulator(
        json!({"type": "metaCloud", "name": "meta", "accessToken": META_TOKEN,
               "appSecret": APP_SECRET, "phoneNumberId": PHONE_NUMBER_ID,
               "businessAccountId": "98765"}),
        json!({"read": 1}),
    )
    .await;
    let provider = app
        .provider(
            &org,
            "whatsapp",
            json!({"providerType": "META_CLOUD", "name": "meta-sim", "accessToken": META_TOKEN,
                   "phoneNumberId": PHONE_NUMBER_ID, "businessAccountId": "98765",
                   "webhookVerifyToken": "verify-token-e2e-0123", "webhookSecret": APP_SECRET,
                   "baseUrl": sim.base_url()}),
        )
        .await;
    let pid = provider["id"].as_str().expect("provider id");
    let hook = format!("{}/api/webhooks/whatsapp/{pid}", app.base);
    point_webhooks(&sim, "meta", &hook, "webhookUrl").await;

    let to = "+2348031110002";
    let id = send(
        &app,
        &org,
        json!({"channel": "whatsapp", "to": to, "text": "hello on WhatsApp"}),
    )
    .await;
    let status = app.wait_for(&org, &id, &["read"]).await;
    let history = states(&status);
    assert!(history.contains(&"delivered".to_owned()), "{history:?}");
    assert!(
        status["providerMessageId"]
            .as_str()
            .is_some_and(|s| s.starts_with("wamid.")),
        "{status}"
    );
    sent_once(&sim, to);

    // Meta's verify-token handshake answers the challenge; a wrong token is refused.
    let ok = app
        .call(
            Method::GET,
            &format!(
                "/api/webhooks/whatsapp/{pid}?hub.mode=subscribe&hub.verify_token=verify-token-e2e-0123&hub.challenge=42"
            ),
            None,
            None,
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "42");
    let bad = app
        .call(
            Method::GET,
            &format!("/api/webhooks/whatsapp/{pid}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=42"),
            None,
            None,
        )
        .await;
    assert!(bad.status().is_client_error(), "{}", bad.status());

    // A body signed with the wrong app secret is refused.
    let forged = reqwest::Client::new()
        .post(&hook)
        .header("Content-Type", "application/json")
        .header(
            "X-Hub-Signature-256",
            "sha256=0000000000000000000000000000000000000000000000000000000000000000",
        )
        .body(r#"{"object":"whatsapp_business_account","entry":[]}"#)
        .send()
        .await
        .expect("engine answers");
    assert_eq!(forged.status(), 401);
    sim.stop().await;
}

#[tokio::test]
async fn email_through_the_simulated_mailgun_is_delivered_and_a_bounce_suppresses() {
    let app = TestApp::spawn().await;
    let org = app.org("e2e-email").await;
    let sim = simulator(
        json!({"type": "mailgun", "name": "mg", "apiKey": MAILGUN_KEY,
               "signingKey": SIGNING_KEY, "domain": "mg.example.com"}),
        json!({"delivered": 1}),
    )
    .await;
    let provider = app
        .provider(
            &org,
            "email",
            json!({"providerType": "MAILGUN", "name": "mailgun-sim", "apiKey": MAILGUN_KEY,
                   "domain": "mg.example.com", "fromEmail": "hello@example.com",
                   "webhookSecret": SIGNING_KEY, "baseUrl": sim.base_url()}),
        )
        .await;
    let pid = provider["id"].as_str().expect("provider id");
    let hook = format!("{}/api/webhooks/email/{pid}", app.base);
    point_webhooks(&sim, "mg", &hook, "webhookUrl").await;

    let to = "ada@example.org";
    let id = send(
        &app,
        &org,
        json!({"channel": "email", "to": to, "subject": "Hi", "text": "hello",
               "metadata": {"campaign": "e2e"}}),
    )
    .await;
    let status = app.wait_for(&org, &id, &["delivered"]).await;
    assert_eq!(status["providerId"], pid, "{status}");
    sent_once(&sim, to);

    // The next message bounces: the address lands on the suppression list
    // and a later send to it is refused with the reason.
    sim.stop().await;
    let sim = simulator(
        json!({"type": "mailgun", "name": "mg", "apiKey": MAILGUN_KEY,
               "signingKey": SIGNING_KEY, "domain": "mg.example.com"}),
        json!({"bounced": 1}),
    )
    .await;
    point_webhooks(&sim, "mg", &hook, "webhookUrl").await;
    let res = app
        .call(
            Method::PUT,
            &format!("/api/email/providers/{pid}"),
            Some(&org.key),
            // A new host needs the key again in the same request.
            Some(&json!({"baseUrl": sim.base_url(), "apiKey": MAILGUN_KEY})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let bouncer = "grace@example.org";
    let id = send(
        &app,
        &org,
        json!({"channel": "email", "to": bouncer, "subject": "Hi", "text": "hello"}),
    )
    .await;
    let status = app.wait_for(&org, &id, &["bounced"]).await;
    assert_eq!(status["status"], "bounced", "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = app
            .call(
                Method::GET,
                &format!("/api/suppressions/{bouncer}"),
                Some(&org.key),
                None,
            )
            .await;
        if res.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never suppressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, refused) = app
        .send(
            &org,
            &json!({"channel": "email", "to": bouncer, "subject": "Again", "text": "hello"}),
        )
        .await;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(
        refused["error"]["code"], "recipient_suppressed",
        "{refused}"
    );

    // A tampered webhook (valid shape, wrong signature) is refused.
    let forged = reqwest::Client::new()
        .post(&hook)
        .json(&json!({
            "signature": {"timestamp": chrono::Utc::now().timestamp().to_string(),
                          "token": "0123456789abcdef0123456789abcdef0123456789abcdef00",
                          "signature": "00".repeat(32)},
            "event-data": {"event": "delivered", "id": "forged-1",
                           "message": {"headers": {"message-id": "x@mg.example.com"}}}
        }))
        .send()
        .await
        .expect("engine answers");
    assert_eq!(forged.status(), 401);
    sim.stop().await;
}

/// One provider type of the Done-when walk: the simulator account, the
/// engine connection (without `baseUrl`), the channel, the message, and
/// the state its status must reach.
struct Walk {
    account: &'static str,
    channel: &'static str,
    connection: Value,
    message: Value,
    /// Where the simulator's webhooks go: `webhookUrl` or `whatsappWebhookUrl`;
    /// `None`: no webhooks (SMTP: the relay's acceptance is the last word).
    webhook_field: Option<&'static str>,
    /// Appended to the webhook URL (unsigned providers: `?token=…`).
    webhook_query: &'static str,
    reaches: &'static str,
}

const TOKEN: &str = "walk-webhook-token-0123456789";

fn walk_sim_config() -> Value {
    let delivered = json!({"delivered": 1});
    let fast = |mut entry: Value| {
        entry["webhookDelayMs"] = json!(20);
        entry["webhookRetryDelayMs"] = json!(50);
        entry
    };
    json!({"providers": [
        fast(json!({"type": "twilio", "name": "twilio", "accountSid": ACCOUNT_SID,
                    "authToken": AUTH_TOKEN, "outcomes": delivered})),
        fast(json!({"type": "metaCloud", "name": "meta", "accessToken": META_TOKEN,
                    "appSecret": APP_SECRET, "phoneNumberId": PHONE_NUMBER_ID,
                    "outcomes": delivered})),
        fast(json!({"type": "mailgun", "name": "mailgun", "apiKey": MAILGUN_KEY,
                    "signingKey": SIGNING_KEY, "domain": "mg.example.com",
                    "outcomes": delivered})),
        fast(json!({"type": "sendgrid", "name": "sendgrid", "apiKey": "SG.walk-sendgrid-key",
                    "outcomes": delivered})),
        fast(json!({"type": "mailjet", "name": "mailjet", "apiKey": "mj-public",
                    "secretKey": "mj-secret", "domain": "example.com", "outcomes": delivered})),
        json!({"type": "smtp", "name": "smtp", "username": "relay-user",
               "password": "relay-password-walk"}),
        fast(json!({"type": "africasTalking", "name": "africastalking", "username": "acme",
                    "apiKey": "atsk-walk-key", "outcomes": delivered})),
        fast(json!({"type": "termii", "name": "termii", "apiKey": "TLwalktermiikey",
                    "secretKey": "termii-walk-secret", "outcomes": delivered})),
        fast(json!({"type": "gupshup", "name": "gupshup", "apiKey": "gupshup-walk-key",
                    "appName": "acmeapp", "outcomes": delivered})),
        fast(json!({"type": "aisensy", "name": "aisensy", "apiKey": "aisensy-walk-key",
                    "campaigns": ["order_update"], "outcomes": delivered})),
        fast(json!({"type": "interakt", "name": "interakt", "apiKey": "aW50ZXJha3Qtd2Fsazo=",
                    "webhookSecret": "interakt-walk-secret", "outcomes": delivered})),
    ]})
}

fn walks(sendgrid_public_key: &str, smtp: std::net::SocketAddr) -> Vec<Walk> {
    let sms = |to: &str| json!({"channel": "sms", "to": to, "text": "Your code is 4821"});
    let wa = |to: &str| json!({"channel": "whatsapp", "to": to, "text": "Your order shipped"});
    let email =
        |to: &str| json!({"channel": "email", "to": to, "subject": "Hello", "text": "Hi there"});
    vec![
        Walk {
            account: "twilio",
            channel: "sms",
            connection: json!({"providerType": "TWILIO", "name": "twilio-sms", "senderId": "+15005550006",
                               "credentials": {"accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN}}),
            message: sms("+2348032220001"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "",
            reaches: "delivered",
        },
        Walk {
            account: "africastalking",
            channel: "sms",
            connection: json!({"providerType": "AFRICASTALKING", "name": "at",
                               "credentials": {"username": "acme", "apiKey": "atsk-walk-key",
                                               "webhookToken": TOKEN}}),
            message: sms("+254712220002"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "?token=walk-webhook-token-0123456789",
            reaches: "delivered",
        },
        Walk {
            account: "termii",
            channel: "sms",
            connection: json!({"providerType": "TERMII", "name": "termii", "senderId": "Acme",
                               "credentials": {"apiKey": "TLwalktermiikey",
                                               "webhookSecret": "termii-walk-secret"}}),
            message: sms("+2348032220003"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "",
            reaches: "delivered",
        },
        Walk {
            account: "meta",
            channel: "whatsapp",
            connection: json!({"providerType": "META_CLOUD", "name": "meta", "accessToken": META_TOKEN,
                               "phoneNumberId": PHONE_NUMBER_ID, "businessAccountId": "98765",
                               "webhookVerifyToken": "verify-token-walk-0123",
                               "webhookSecret": APP_SECRET}),
            message: wa("+2348032220004"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "",
            reaches: "delivered",
        },
        Walk {
            account: "twilio",
            channel: "whatsapp",
            connection: json!({"providerType": "TWILIO", "name": "twilio-wa",
                               "businessAccountId": ACCOUNT_SID, "accessToken": AUTH_TOKEN,
                               "phoneNumber": "+14155238886"}),
            message: wa("+2348032220005"),
            webhook_field: Some("whatsappWebhookUrl"),
            webhook_query: "",
            reaches: "delivered",
        },
        Walk {
            account: "gupshup",
            channel: "whatsapp",
            connection: json!({"providerType": "GUPSHUP", "name": "gupshup",
                               "accessToken": "gupshup-walk-key", "phoneNumber": "+2348030000000",
                               "appName": "acmeapp", "webhookSecret": TOKEN}),
            message: wa("+2348032220006"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "?token=walk-webhook-token-0123456789",
            reaches: "delivered",
        },
        Walk {
            account: "aisensy",
            channel: "whatsapp",
            connection: json!({"providerType": "AISENSY", "name": "aisensy",
                               "accessToken": "aisensy-walk-key", "webhookSecret": TOKEN}),
            message: json!({"channel": "whatsapp", "to": "+2348032220007", "text": "t",
                            "template": {"name": "order_update", "language": "en",
                                         "variables": ["A1"]}}),
            webhook_field: Some("webhookUrl"),
            webhook_query: "?token=walk-webhook-token-0123456789",
            reaches: "delivered",
        },
        Walk {
            account: "interakt",
            channel: "whatsapp",
            connection: json!({"providerType": "INTERAKT", "name": "interakt",
                               "accessToken": "aW50ZXJha3Qtd2Fsazo=",
                               "webhookSecret": "interakt-walk-secret"}),
            message: wa("+2348032220008"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "",
            reaches: "delivered",
        },
        Walk {
            account: "mailgun",
            channel: "email",
            connection: json!({"providerType": "MAILGUN", "name": "mailgun", "apiKey": MAILGUN_KEY,
                               "domain": "mg.example.com", "fromEmail": "hello@example.com",
                               "webhookSecret": SIGNING_KEY}),
            message: email("walk-mailgun@example.org"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "",
            reaches: "delivered",
        },
        Walk {
            account: "sendgrid",
            channel: "email",
            connection: json!({"providerType": "SENDGRID", "name": "sendgrid",
                               "apiKey": "SG.walk-sendgrid-key", "fromEmail": "hello@example.com",
                               "webhookSecret": sendgrid_public_key}),
            message: email("walk-sendgrid@example.org"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "",
            reaches: "delivered",
        },
        Walk {
            account: "mailjet",
            channel: "email",
            connection: json!({"providerType": "MAILJET", "name": "mailjet",
                               "apiKey": "mj-public:mj-secret", "fromEmail": "hello@example.com",
                               "domain": "example.com", "webhookSecret": TOKEN}),
            message: email("walk-mailjet@example.org"),
            webhook_field: Some("webhookUrl"),
            webhook_query: "?token=walk-webhook-token-0123456789",
            reaches: "delivered",
        },
        Walk {
            account: "smtp",
            channel: "email",
            connection: json!({"providerType": "SMTP", "name": "smtp", "fromEmail": "hello@example.com",
                               "smtpConfig": {"host": smtp.ip().to_string(), "port": smtp.port(),
                                              "tls": "none", "username": "relay-user",
                                              "password": "relay-password-walk"}}),
            message: email("walk-smtp@example.org"),
            webhook_field: None,
            webhook_query: "",
            reaches: "sent",
        },
    ]
}

/// The issue's Done-when, automated: one connection of every provider type
/// across the three channels (each in its own organization, since a channel
/// routes to its first active connection), a message through each, and the
/// provider's signed webhooks bringing it to delivered. SMTP has no status
/// webhooks: it ends `sent` when the relay accepts it.
#[tokio::test]
async fn every_provider_type_delivers_through_the_simulator() {
    let app = TestApp::spawn().await;
    let config = SimConfig::from_json(&walk_sim_config().to_string()).expect("valid config");
    let sim = sim::start(config, StartOptions::loopback())
        .await
        .expect("simulator starts");
    let public_key = sim.public_key("sendgrid").expect("SendGrid key");
    let smtp = sim.smtp_addr("smtp").expect("SMTP listener");
    let mut pending = Vec::new();
    for (i, walk) in walks(&public_key, smtp).into_iter().enumerate() {
        let org = app.org(&format!("walk-{i}-{}", walk.account)).await;
        let mut connection = walk.connection.clone();
        if walk.account != "smtp" {
            connection["baseUrl"] = json!(sim.base_url());
        }
        let provider = app.provider(&org, walk.channel, connection).await;
        let pid = provider["id"].as_str().expect("provider id").to_owned();
        if let Some(field) = walk.webhook_field {
            let hook = format!(
                "{}/api/webhooks/{}/{pid}{}",
                app.base, walk.channel, walk.webhook_query
            );
            point_webhooks(&sim, walk.account, &hook, field).await;
        }
        let id = send(&app, &org, walk.message.clone()).await;
        // Wait here: two walks share the Twilio account's webhook targets.
        let status = app.wait_for(&org, &id, &[walk.reaches]).await;
        assert_eq!(
            status["providerId"], pid,
            "{} {}: {status}",
            walk.account, walk.channel
        );
        assert!(
            status["providerMessageId"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{}: {status}",
            walk.account
        );
        if walk.webhook_field.is_some() {
            let from_provider = status["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["state"] == walk.reaches && e.get("providerAt").is_some());
            assert!(
                from_provider,
                "{}: no webhook event: {status}",
                walk.account
            );
        }
        pending.push(walk.message["to"].as_str().expect("recipient").to_owned());
    }
    // Exactly once at the provider, every one of them.
    for to in &pending {
        sent_once(&sim, to);
    }
    sim.stop().await;
}

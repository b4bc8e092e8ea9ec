//! What the live test drives through the engine so that every series the dashboards and
//! rules read exists: two organizations, SANDBOX providers with failures on every channel,
//! failover and an open breaker, an actor restart, a Twilio connection on a loopback mock
//! with signed and forged status callbacks, refusals and 429s, outbound webhooks.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{sandbox, status_json, Org, TestApp};

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "f00dfacef00dfacef00dfacef00dface";

/// X-Twilio-Signature of a callback to this test's connection.
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    crate::helpers::twilio_signature(TWILIO_TOKEN, url, params)
}

/// Organization "acme": a SANDBOX provider per channel with failures configured, sms behind
/// an always-failing one (failovers, an open breaker), its own webhook endpoint, an actor
/// restart. Returns the receiver of its webhooks (kept alive for the test).
pub async fn set_up_acme(app: &TestApp, acme: &Org) -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let res = app
        .call(
            Method::PUT,
            "/api/webhook-endpoint",
            Some(&acme.key),
            Some(&json!({"url": format!("{}/hook", receiver.uri())})),
        )
        .await;
    assert_eq!(res.status(), 201);
    app.provider(acme, "email", sandbox("email-sbx", 5, 0.2, 0.05))
        .await;
    app.provider(acme, "sms", sandbox("sms-down", 0, 1.0, 0.0))
        .await;
    let backup = app
        .provider(acme, "sms", sandbox("sms-backup", 0, 0.0, 0.05))
        .await;
    app.provider(acme, "whatsapp", sandbox("wa-sbx", 20, 0.1, 0.05))
        .await;
    // A supervised restart: a provider actor that panics once.
    let (_, warm) = app
        .send(
            acme,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "warm"}),
        )
        .await;
    app.wait_for(
        acme,
        warm["id"].as_str().expect("id"),
        &["delivered", "failed"],
    )
    .await;
    let backup_id = serde_json::from_value(backup["id"].clone()).expect("provider id");
    assert!(app.engine.inject_provider_panic(backup_id));
    receiver
}

/// A few hundred messages over a few seconds across the channels, plus refusals.
pub async fn drive_load(app: &TestApp, acme: &Org) {
    for round in 0..10 {
        let messages: Vec<Value> = (0..30)
            .map(|i| match i % 3 {
                0 => json!({"channel": "email", "to": format!("user{round}-{i}@example.com"),
                            "subject": "hi", "text": "load"}),
                1 => json!({"channel": "sms", "to": "+2348031234567", "text": "load"}),
                _ => json!({"channel": "whatsapp", "to": "+2348031234567", "text": "load"}),
            })
            .collect();
        let (status, body) = app.send(acme, &json!({"messages": messages})).await;
        assert_eq!(status, 202, "{body}");
        let (status, _) = app
            .send(
                acme,
                &json!({"channel": "sms", "to": "not a number", "text": "x"}),
            )
            .await;
        assert_eq!(status, 422);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Organization "beta": a Twilio SMS provider on a loopback mock, one message it delivers
/// through a signed status callback, a forged callback, then 429s over a tiny rate limit.
pub async fn drive_beta(app: &TestApp, beta: &Org) -> MockServer {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json$",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "queued", "num_segments": "1"
        })))
        .mount(&twilio)
        .await;
    let provider = app
        .provider(
            beta,
            "sms",
            json!({"providerType": "TWILIO", "name": "tw",
            "senderId": "+15005550006", "baseUrl": twilio.uri(),
            "credentials": {"accountSid": TWILIO_SID, "authToken": TWILIO_TOKEN}}),
        )
        .await;
    let (status, body) = app
        .send(
            beta,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.wait_for(beta, body["id"].as_str().expect("id"), &["sent"])
        .await;
    let path = format!("/api/webhooks/sms/{}", provider["id"].as_str().expect("id"));
    let url = format!("{}{path}", app.base);
    let params = [
        ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("MessageStatus", "delivered"),
        ("To", "+2348031234567"),
        ("AccountSid", TWILIO_SID),
    ];
    let callbacks = [
        (twilio_signature(&url, &params), 200),
        ("forged".to_owned(), 401),
    ];
    for (signature, expected) in callbacks {
        let res = app
            .http
            .post(&url)
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
            .expect("webhook");
        assert_eq!(res.status().as_u16(), expected, "status callback");
    }
    let res = app
        .admin(
            Method::PUT,
            &format!("/api/admin/organizations/{}/rate-limit", beta.id),
            Some(&json!({"messagesPerSecond": 1, "burst": 2})),
        )
        .await;
    assert_eq!(res.status(), 200);
    // The running tenant actor reloads its limits on its own time, and a busy
    // machine can space sequential requests a second apart: send in bursts of
    // four until one is limited (at most 20 bursts).
    let again = json!({"channel": "sms", "to": "+2348031234567", "text": "again"});
    let send = || {
        app.call(
            Method::POST,
            "/api/messaging/send",
            Some(&beta.key),
            Some(&again),
        )
    };
    let mut limited = 0;
    for _ in 0..20 {
        let (a, b, c, d) = tokio::join!(send(), send(), send(), send());
        for res in [a, b, c, d] {
            limited += u32::from(status_json(res).await.0 == 429);
        }
        if limited > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(limited > 0, "beta was never rate limited");
    twilio
}

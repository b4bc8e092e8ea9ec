//! Replayed and forged webhooks at the HTTP route: a Mailgun signature is
//! honoured for one body only (it signs the timestamp and token, not the
//! events), and Meta's handshake answers a wrong verify token with 403.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{status_json, TestApp};

const SIGNING_KEY: &str = "mailgun-signing-key-0123456789abcdef";

fn signed(timestamp: i64, token: &str, event_data: Value) -> Value {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    json!({"signature": {"timestamp": timestamp.to_string(), "token": token, "signature": signature},
           "event-data": event_data})
}

fn delivered(id: &str) -> Value {
    json!({"event": "delivered", "id": id, "timestamp": 1_700_000_000.5,
           "recipient": "ada@example.org",
           "message": {"headers": {"message-id": "20240101.abc@mg.example.com"}}})
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}{path}", app.base))
        .json(body)
        .send()
        .await
        .expect("request reaches the server");
    status_json(res).await
}

#[tokio::test]
async fn a_mailgun_signature_is_honoured_for_one_body_only() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let created = app
        .provider(
            &org,
            "email",
            json!({"providerType": "MAILGUN", "name": "mg", "apiKey": "key-0123456789abcdef",
                   "domain": "mg.example.com", "fromEmail": "ops@example.com",
                   "webhookSecret": SIGNING_KEY, "baseUrl": "http://127.0.0.1:9"}),
        )
        .await;
    let path = format!(
        "/api/webhooks/email/{}",
        created["id"].as_str().expect("id")
    );
    let now = chrono::Utc::now().timestamp();
    let token = "a8ce0edb2dd8301dce6fa1c2a1d7d5c2bfd8a8b4d1f3c5c6a7";
    let first = signed(now, token, delivered("ev-1"));

    let (status, body) = post(&app, &path, &first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["received"], 1);

    // The provider retrying the very same request: harmless, its event is a duplicate.
    let (status, body) = post(&app, &path, &first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicates"], 1, "{body}");

    // The captured signature with other events: refused, nothing recorded.
    let mut forged = first.clone();
    forged["event-data"] = json!({"event": "complained", "id": "ev-forged",
                                  "recipient": "victim@example.org"});
    let (status, body) = post(&app, &path, &forged).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "replayed_webhook", "{body}");
    assert_eq!(
        app.query_count("SELECT count(*) FROM webhook_events WHERE event_id = 'ev-forged'")
            .await,
        0
    );
    assert_eq!(
        app.query_count("SELECT count(*) FROM suppressions WHERE recipient = 'victim@example.org'")
            .await,
        0
    );

    // A fresh token (a new request from Mailgun) is accepted.
    let (status, body) = post(
        &app,
        &path,
        &signed(now, "another-token-0123456789", delivered("ev-2")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.query_count("SELECT count(*) FROM webhook_nonces").await,
        2
    );
}

#[tokio::test]
async fn a_forged_mailgun_signature_is_refused_and_claims_no_nonce() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let created = app
        .provider(
            &org,
            "email",
            json!({"providerType": "MAILGUN", "name": "mg", "apiKey": "key-0123456789abcdef",
                   "domain": "mg.example.com", "fromEmail": "ops@example.com",
                   "webhookSecret": SIGNING_KEY}),
        )
        .await;
    let path = format!(
        "/api/webhooks/email/{}",
        created["id"].as_str().expect("id")
    );
    let now = chrono::Utc::now().timestamp();
    let mut forged = signed(now, "token-0123456789abcdef", delivered("ev-1"));
    forged["signature"]["signature"] = json!("00".repeat(32));
    let (status, body) = post(&app, &path, &forged).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_signature", "{body}");
    assert_eq!(
        app.query_count("SELECT count(*) FROM webhook_nonces").await,
        0
    );
}

#[tokio::test]
async fn meta_handshake_with_a_wrong_verify_token_is_403() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let created = app
        .provider(
            &org,
            "whatsapp",
            json!({"providerType": "META_CLOUD", "name": "meta", "accessToken": "EAAG-0123456789abcdef",
                   "phoneNumberId": "1234567890", "webhookVerifyToken": "verify-0123456789abcdef"}),
        )
        .await;
    let id = created["id"].as_str().expect("id");
    let handshake = |token: &str| {
        format!(
            "/api/webhooks/whatsapp/{id}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        )
    };
    let res = app
        .call(Method::GET, &handshake("wrong-token"), None, None)
        .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "verify_token_mismatch", "{body}");

    let res = app
        .call(
            Method::GET,
            &handshake("verify-0123456789abcdef"),
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "1158201444");
}

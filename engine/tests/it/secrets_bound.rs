//! Secrets stay bound to where they were entered: an update that moves a
//! connection (its `baseUrl`, SMTP host, account ids) must carry its secrets,
//! or the stored ones would be presented to a host of the key holder's
//! choosing. And webhook tokens of providers that do not sign must be long.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{status_json, Org, TestApp};

const OLD_KEY: &str = "key-old-0123456789abcdef0123456789";
const NEW_KEY: &str = "key-new-0123456789abcdef0123456789";

/// The `Authorization` header Mailgun's adapter sends for `key`.
fn mailgun_auth(key: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"));
    format!("Basic {b64}")
}

async fn any_answer() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"domain": {"state": "active"}})),
        )
        .mount(&server)
        .await;
    server
}

async fn put(app: &TestApp, org: &Org, path: &str, body: Value) -> (u16, Value) {
    status_json(
        app.call(Method::PUT, path, Some(&org.key), Some(&body))
            .await,
    )
    .await
}

/// Every Authorization header `server` has received.
async fn authorizations(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.headers.get("authorization"))
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn moving_a_connection_needs_its_secret_and_the_old_key_never_reaches_the_new_host() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let old_host = any_answer().await;
    let new_host = any_answer().await;
    let created = app
        .provider(
            &org,
            "email",
            json!({"providerType": "MAILGUN", "name": "mg", "apiKey": OLD_KEY,
                   "domain": "mg.example.com", "fromEmail": "ops@example.com",
                   "baseUrl": old_host.uri()}),
        )
        .await;
    let path = format!(
        "/api/email/providers/{}",
        created["id"].as_str().expect("id")
    );

    // The repro: a new baseUrl without the key is refused, naming the key...
    let (status, body) = put(&app, &org, &path, json!({"baseUrl": new_host.uri()})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "apiKey", "{body}");
    assert_eq!(body["error"]["code"], "secret_required", "{body}");
    // ...and nothing was written: the connection still points at the old host.
    let (_, shown) = status_json(app.call(Method::GET, &path, Some(&org.key), None).await).await;
    assert_eq!(shown["baseUrl"], json!(old_host.uri()));
    let (status, _) = status_json(
        app.call(Method::POST, &format!("{path}/test"), Some(&org.key), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(authorizations(&old_host)
        .await
        .contains(&mailgun_auth(OLD_KEY)));

    // A change that moves nothing still needs no secret.
    let (status, body) = put(&app, &org, &path, json!({"fromName": "Ops"})).await;
    assert_eq!(status, 200, "{body}");

    // With the key in the same request the move is accepted.
    let (status, body) = put(
        &app,
        &org,
        &path,
        json!({"baseUrl": new_host.uri(), "apiKey": NEW_KEY}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["baseUrl"], json!(new_host.uri()));
    let (status, _) = status_json(
        app.call(Method::POST, &format!("{path}/test"), Some(&org.key), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);

    // The new host saw the new key and never the old one.
    let seen = authorizations(&new_host).await;
    assert!(seen.contains(&mailgun_auth(NEW_KEY)), "{seen:?}");
    assert!(!seen.contains(&mailgun_auth(OLD_KEY)), "{seen:?}");
    let bodies = new_host.received_requests().await.unwrap_or_default();
    assert!(bodies
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.body).contains(OLD_KEY)
            && !r.url.as_str().contains(OLD_KEY)));
}

#[tokio::test]
async fn smtp_hosts_and_account_ids_are_destinations_too() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let smtp = app
        .provider(
            &org,
            "email",
            json!({"providerType": "SMTP", "name": "relay", "fromEmail": "ops@example.com",
                   "smtpConfig": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
                                  "username": "ops", "password": "hunter2-hunter2-hunter2"}}),
        )
        .await;
    let smtp_path = format!("/api/email/providers/{}", smtp["id"].as_str().expect("id"));
    let twilio = app
        .provider(
            &org,
            "sms",
            json!({"providerType": "TWILIO", "name": "tw", "senderId": "Acme",
                   "credentials": {"accountSid": "AC0123456789abcdef0123456789abcdef",
                                   "authToken": "0123456789abcdef0123456789abcdef"}}),
        )
        .await;
    let twilio_path = format!("/api/sms/providers/{}", twilio["id"].as_str().expect("id"));
    let meta = app
        .provider(
            &org,
            "whatsapp",
            json!({"providerType": "META_CLOUD", "name": "meta",
                   "accessToken": "EAAG-0123456789abcdef", "phoneNumberId": "1234567890"}),
        )
        .await;
    let meta_path = format!(
        "/api/whatsapp/providers/{}",
        meta["id"].as_str().expect("id")
    );

    for (path, patch, field) in [
        (
            &smtp_path,
            json!({"smtpConfig": {"host": "mx.example.net"}}),
            "smtpConfig.password",
        ),
        (
            &smtp_path,
            json!({"smtpConfig": {"port": 465, "tls": "implicit"}}),
            "smtpConfig.password",
        ),
        (
            &twilio_path,
            json!({"credentials": {"accountSid": "ACfedcba9876543210fedcba9876543210"}}),
            "credentials.authToken",
        ),
        (
            &twilio_path,
            json!({"baseUrl": "https://api.example.net"}),
            "credentials.authToken",
        ),
        (
            &meta_path,
            json!({"phoneNumberId": "5550001"}),
            "accessToken",
        ),
    ] {
        let (status, body) = put(&app, &org, path, patch.clone()).await;
        assert_eq!(status, 422, "{patch}: {body}");
        assert_eq!(body["error"]["field"], field, "{patch}: {body}");
    }
    let (status, body) = put(
        &app,
        &org,
        &smtp_path,
        json!({"smtpConfig": {"host": "mx.example.net", "password": "hunter2-hunter2-hunter2"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["smtpConfig"]["host"], "mx.example.net");
}

#[tokio::test]
async fn short_tokens_of_unsigned_webhook_schemes_are_refused() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let short = "fifteen-chars-x";
    let cases = [
        (
            "email",
            json!({"providerType": "MAILJET", "name": "mj", "apiKey": "public:private",
                   "fromEmail": "a@example.com", "webhookSecret": short}),
            "webhookSecret",
        ),
        (
            "sms",
            json!({"providerType": "AFRICASTALKING", "name": "at",
                   "credentials": {"username": "acme", "apiKey": "atsk_0123456789abcdef",
                                   "webhookToken": short}}),
            "credentials.webhookToken",
        ),
        (
            "whatsapp",
            json!({"providerType": "GUPSHUP", "name": "g", "accessToken": "gs-0123456789abcdef",
                   "phoneNumber": "+2348031234567", "appName": "acme", "webhookSecret": short}),
            "webhookSecret",
        ),
        (
            "whatsapp",
            json!({"providerType": "AISENSY", "name": "a", "accessToken": "as-0123456789abcdef",
                   "webhookSecret": short}),
            "webhookSecret",
        ),
    ];
    for (channel, mut spec, field) in cases {
        let path = format!("/api/{channel}/providers");
        let (status, body) = status_json(
            app.call(Method::POST, &path, Some(&org.key), Some(&spec))
                .await,
        )
        .await;
        assert_eq!(status, 422, "{spec}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert_eq!(body["error"]["code"], "token_too_short", "{body}");
        // Sixteen characters are enough; and an update to a short one is refused too.
        let long = "sixteen-chars-xy";
        match field {
            "credentials.webhookToken" => spec["credentials"]["webhookToken"] = json!(long),
            _ => spec["webhookSecret"] = json!(long),
        }
        let created = app.provider(&org, channel, spec).await;
        let id = created["id"].as_str().expect("id");
        let patch = match field {
            "credentials.webhookToken" => json!({"credentials": {"webhookToken": short}}),
            _ => json!({"webhookSecret": short}),
        };
        let (status, body) = put(&app, &org, &format!("{path}/{id}"), patch).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

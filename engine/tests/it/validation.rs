//! Bad input: always a 4xx with the JSON error body, never a write, never a panic.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_error, mailgun, smtp, status_json, TestApp};

async fn post_raw(
    app: &TestApp,
    path: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(key)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    status_json(res).await
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let long = "x".repeat(101);
    let mut bad_port = smtp();
    bad_port["smtpConfig"]["port"] = json!(70000);
    let mut bad_tls = smtp();
    bad_tls["smtpConfig"]["tls"] = json!("ssl");
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "email",
            json!({"providerType": "POSTMARK", "name": "x"}),
            422,
            "unknown_value",
            "providerType",
        ),
        (
            "email",
            json!({"name": "x"}),
            422,
            "required",
            "providerType",
        ),
        (
            "email",
            json!({"providerType": "MAILGUN", "name": long}),
            422,
            "too_long",
            "name",
        ),
        (
            "email",
            json!({"providerType": "SENDGRID", "name": "s", "apiKey": "SG.x", "fromEmail": "not-an-email"}),
            422,
            "invalid_email",
            "fromEmail",
        ),
        (
            "email",
            {
                let mut m = mailgun();
                m["apiKey"] = json!(" key-with-space ");
                m
            },
            422,
            "invalid_secret",
            "apiKey",
        ),
        (
            "email",
            {
                let mut m = mailgun();
                m["surprise"] = json!(1);
                m
            },
            422,
            "unknown_field",
            "surprise",
        ),
        ("email", bad_port, 422, "invalid_type", "smtpConfig.port"),
        ("email", bad_tls, 422, "unknown_value", "smtpConfig.tls"),
        (
            "email",
            {
                let mut m = mailgun();
                m["brandingConfig"] = json!({"logo": "y".repeat(20_000)});
                m
            },
            422,
            "too_large",
            "brandingConfig",
        ),
        (
            "whatsapp",
            json!({"providerType": "AISENSY", "name": "a", "accessToken": "k", "phoneNumber": "0803 123 4567"}),
            422,
            "invalid_phone",
            "phoneNumber",
        ),
        (
            "whatsapp",
            json!({"providerType": "META_CLOUD", "name": "m", "accessToken": "k"}),
            422,
            "required",
            "phoneNumberId",
        ),
        (
            "sms",
            json!({"providerType": "TERMII", "name": "t", "senderId": "Acme"}),
            422,
            "required",
            "credentials.apiKey",
        ),
        (
            "sms",
            json!({"providerType": "TWILIO", "name": "t", "senderId": "+1", "credentials": {"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "t"}}),
            422,
            "invalid_phone",
            "senderId",
        ),
        ("sms", json!([1, 2, 3]), 422, "invalid_type", ""),
    ];
    for (channel, body, status, code, field) in cases {
        let res = app
            .call(
                Method::POST,
                &format!("/api/{channel}/providers"),
                Some(&org.key),
                Some(&body),
            )
            .await;
        let (got, json) = status_json(res).await;
        assert_eq!(got, status, "{body}: {json}");
        assert_error(&json, code);
        let expected_field = if field.is_empty() {
            Value::Null
        } else {
            json!(field)
        };
        assert_eq!(json["error"]["field"], expected_field, "{body}: {json}");
    }
    assert_eq!(
        app.query_count("SELECT count(*) FROM providers").await,
        0,
        "nothing written"
    );
    assert_eq!(
        app.query_count("SELECT count(*) FROM audit_log WHERE target_type = 'provider'")
            .await,
        0,
        "nothing audited"
    );
}

#[tokio::test]
async fn syntax_errors_wrong_content_types_and_oversized_bodies_are_4xx() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let path = "/api/email/providers";
    let (status, body) = post_raw(
        &app,
        path,
        &org.key,
        "application/json",
        b"{\"name\": ".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_json");
    let (status, body) = post_raw(&app, path, &org.key, "application/json", b"".to_vec()).await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_json");
    let (status, body) = post_raw(
        &app,
        path,
        &org.key,
        "application/json",
        b"{} trailing".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_json");
    let (status, body) = post_raw(&app, path, &org.key, "text/plain", b"{}".to_vec()).await;
    assert_eq!(status, 415);
    assert_error(&body, "unsupported_media_type");
    let (status, body) = post_raw(
        &app,
        path,
        &org.key,
        "application/json",
        vec![b' '; 200 * 1024],
    )
    .await;
    assert_eq!(status, 413);
    assert_error(&body, "payload_too_large");
    let (status, _) = post_raw(
        &app,
        path,
        &org.key,
        "application/json",
        vec![0xff, 0xfe, 0x00],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(app.query_count("SELECT count(*) FROM providers").await, 0);
}

#[tokio::test]
async fn arbitrary_junk_never_panics_the_server() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let junk: Vec<Value> = vec![
        json!(null),
        json!(true),
        json!(1e308),
        json!("string"),
        json!({"providerType": null}),
        json!({"providerType": "SMTP", "name": "s", "fromEmail": "a@b.co", "smtpConfig": null}),
        json!({"providerType": "SMTP", "name": "s", "fromEmail": "a@b.co", "smtpConfig": []}),
        json!({"providerType": "TERMII", "name": "t", "senderId": "Acme", "credentials": {"apiKey": 5}}),
        json!({"providerType": "TERMII", "name": "\u{0000}", "senderId": "Acme", "credentials": {"apiKey": "k"}}),
        json!({"providerType": "GUPSHUP", "name": "g", "accessToken": "k", "phoneNumber": "+".repeat(5000), "appName": "a"}),
    ];
    for channel in ["email", "sms", "whatsapp"] {
        for body in &junk {
            let res = app
                .call(
                    Method::POST,
                    &format!("/api/{channel}/providers"),
                    Some(&org.key),
                    Some(body),
                )
                .await;
            let status = res.status().as_u16();
            assert!((400..500).contains(&status), "{channel} {body}: {status}");
            let (_, json) = status_json(res).await;
            assert!(json["error"]["code"].is_string());
        }
    }
    let (status, _) = status_json(app.call(Method::GET, "/healthz", None, None).await).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn organization_names_are_validated() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(201)}),
        json!({}),
        json!({"name": 5}),
    ] {
        let (status, json) = status_json(
            app.admin(Method::POST, "/api/admin/organizations", Some(&body))
                .await,
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(json["error"]["field"], "name");
    }
    assert_eq!(
        app.query_count("SELECT count(*) FROM organizations").await,
        0
    );
}

//! The suppression list: its API, isolation between organizations, and the
//! refusal of sends to a suppressed recipient.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_error, sandbox, Org, TestApp};

async fn call(
    app: &TestApp,
    org: &Org,
    m: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let res = app.call(m, path, Some(&org.key), body).await;
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn suppressions_are_added_listed_looked_up_and_removed_per_organization() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let (s, body) = call(
        &app,
        &a,
        Method::POST,
        "/api/suppressions",
        Some(&json!({"recipient": "Bounced.User@Example.com", "reason": "bounce"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["recipient"], "bounced.user@example.com");
    assert_eq!(body["reason"], "bounce");
    // Again: 200, the first reason stays.
    let (s, body) = call(
        &app,
        &a,
        Method::POST,
        "/api/suppressions",
        Some(&json!({"recipient": "bounced.user@example.com", "reason": "complaint"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["reason"], "bounce");
    let (s, _) = call(
        &app,
        &a,
        Method::POST,
        "/api/suppressions",
        Some(&json!({"recipient": "+2348031234567"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, list) = call(&app, &a, Method::GET, "/api/suppressions", None).await;
    assert_eq!(s, 200);
    let recipients: Vec<&str> = list["suppressions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|x| x["recipient"].as_str())
        .collect();
    assert_eq!(recipients, ["+2348031234567", "bounced.user@example.com"]);
    assert_eq!(list["suppressions"][0]["reason"], "manual");
    // B sees none of A's.
    let (_, list_b) = call(&app, &b, Method::GET, "/api/suppressions", None).await;
    assert_eq!(list_b["suppressions"], json!([]));
    let (s, _) = call(
        &app,
        &b,
        Method::GET,
        "/api/suppressions/bounced.user@example.com",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        &b,
        Method::DELETE,
        "/api/suppressions/bounced.user@example.com",
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, one) = call(
        &app,
        &a,
        Method::GET,
        "/api/suppressions/BOUNCED.user@example.com",
        None,
    )
    .await;
    assert_eq!(s, 200, "{one}");
    let (s, _) = call(
        &app,
        &a,
        Method::DELETE,
        "/api/suppressions/%2B2348031234567",
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &app,
        &a,
        Method::GET,
        "/api/suppressions/%2B2348031234567",
        None,
    )
    .await;
    assert_eq!(s, 404);
    // Bad input: 422 naming the field, nothing written.
    let (s, body) = call(
        &app,
        &a,
        Method::POST,
        "/api/suppressions",
        Some(&json!({"recipient": "not an address"})),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "recipient");
    let (s, body) = call(
        &app,
        &a,
        Method::POST,
        "/api/suppressions",
        Some(&json!({"recipient": "x@example.com", "reason": "because"})),
    )
    .await;
    assert_eq!(s, 422);
    assert_error(&body, "invalid_reason");
    assert_eq!(
        app.query_count("SELECT count(*) FROM suppressions").await,
        1
    );
    assert_eq!(
        app.query_count("SELECT count(*) FROM audit_log WHERE action LIKE 'suppression.%'")
            .await,
        3
    );
}

#[tokio::test]
async fn a_send_to_a_suppressed_recipient_is_refused_and_a_batch_sends_the_rest() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    // Loaded into the engine's cache before the suppression is added: the
    // API updates the cache too.
    let (s, _) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        )
        .await;
    assert_eq!(s, 202);
    let (s, _) = call(
        &app,
        &org,
        Method::POST,
        "/api/suppressions",
        Some(&json!({"recipient": "+2348031234567", "reason": "unsubscribe"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_error(&body, "recipient_suppressed");
    assert_eq!(body["error"]["field"], "to");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("unsubscribe"));
    let (s, body) = app
        .send(
            &org,
            &json!({"messages": [
                {"channel": "sms", "to": "+2348031234568", "text": "one"},
                {"channel": "sms", "to": "+2348031234567", "text": "two"}
            ]}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["messages"][0]["status"], "queued");
    assert_eq!(body["messages"][1]["status"], "rejected");
    assert!(body["messages"][1]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("recipient_suppressed"));
    let ok = body["messages"][0]["id"].as_str().expect("id");
    let refused = body["messages"][1]["id"].as_str().expect("id");
    app.wait_for(&org, ok, &["delivered"]).await;
    let (s, status) = app.status(&org, refused).await;
    assert_eq!(s, 200);
    assert_eq!(status["status"], "rejected");
    assert_eq!(status["attemptCount"], 0);
    // Removed: sends go through again.
    let (s, _) = call(
        &app,
        &org,
        Method::DELETE,
        "/api/suppressions/%2B2348031234567",
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        )
        .await;
    assert_eq!(s, 202);
}

#[tokio::test]
async fn extras_are_validated_per_channel_and_stored() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "email", sandbox("sbx", 0, 0.0, 0.0))
        .await;
    app.provider(&org, "whatsapp", sandbox("sbx", 0, 0.0, 0.0))
        .await;
    let (s, body) = app.send(&org, &json!({"channel": "email", "to": "a@example.com", "subject": "s",
        "text": "t", "replyTo": "help@example.com", "headers": {"X-Campaign": "nov"},
        "tags": ["welcome"], "attachments": [{"filename": "a.txt", "contentType": "text/plain", "content": "aGVsbG8="}]})).await;
    assert_eq!(s, 202, "{body}");
    let id = body["id"].as_str().expect("id");
    app.wait_for(&org, id, &["delivered"]).await;
    assert_eq!(
        app.query_count(&format!(
            "SELECT count(*) FROM messages WHERE id = '{id}' AND extras->>'replyTo' = 'help@example.com'
               AND extras->'attachments'->0->>'filename' = 'a.txt'"
        )).await,
        1
    );
    // A WhatsApp template needs no text.
    let (s, body) = app
        .send(
            &org,
            &json!({"channel": "whatsapp", "to": "+2348031234567",
        "template": {"name": "order_update", "language": "en", "variables": ["A1", "today"]}}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    for (bad, field, code) in [
        (
            json!({"channel": "sms", "to": "+2348031234567", "text": "t", "replyTo": "a@b.co"}),
            "replyTo",
            "not_allowed",
        ),
        (
            json!({"channel": "email", "to": "a@example.com", "text": "t", "template": {"name": "x", "language": "en"}}),
            "template",
            "not_allowed",
        ),
        (
            json!({"channel": "email", "to": "a@example.com", "text": "t", "headers": {"Subject": "x"}}),
            "headers.Subject",
            "reserved_header",
        ),
        (
            json!({"channel": "email", "to": "a@example.com", "text": "t", "attachments": [{"filename": "a", "contentType": "text/plain", "content": "%%%"}]}),
            "attachments[0].content",
            "invalid_base64",
        ),
        (
            json!({"channel": "whatsapp", "to": "+2348031234567", "media": {"kind": "image"}}),
            "media",
            "invalid_media",
        ),
        (
            json!({"channel": "whatsapp", "to": "+2348031234567", "text": "t", "template": {"name": "x", "language": "english!"}}),
            "template.language",
            "invalid_language",
        ),
    ] {
        let (s, body) = app.send(&org, &bad).await;
        assert_eq!(s, 422, "{bad} -> {body}");
        assert_error(&body, code);
        assert_eq!(body["error"]["field"], field, "{bad}");
    }
}

//! Outbound webhooks: an organization's own endpoint receives its messages'
//! status events, signed with its secret, retried on failure; the secret is
//! never read back and other organizations cannot see or change it.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{assert_error, sandbox, status_json, Org, TestApp};

async fn put_endpoint(app: &TestApp, org: &Org, body: Value) -> (u16, Value) {
    app.put_webhook_endpoint(org, body).await
}

/// Checks the request's signature independently of the engine's code and
/// returns its JSON body.
fn verified(request: &Request, secret: &str) -> Value {
    let header = request
        .headers
        .get("msgengine-signature")
        .and_then(|v| v.to_str().ok())
        .expect("signature header");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .expect("t=<unix>,v1=<hex>");
    let t: i64 = t.parse().expect("unix time");
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 120,
        "fresh timestamp"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()), "signature");
    assert_eq!(
        request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = serde_json::from_slice(&request.body).expect("json body");
    assert_eq!(
        request
            .headers
            .get("msgengine-event-id")
            .and_then(|v| v.to_str().ok()),
        body["id"].as_str(),
        "event id header matches the payload"
    );
    body
}

/// Waits (bounded) until the receiver holds requests satisfying `done`.
async fn received_until(server: &MockServer, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = server.received_requests().await.unwrap_or_default();
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "receiver got {} requests",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn status_events_reach_the_endpoint_signed_with_its_generated_secret() {
    let app = TestApp::spawn().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let org = app.org("acme").await;
    let (status, created) =
        put_endpoint(&app, &org, json!({"url": format!("{}/hook", server.uri())})).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["signingSecret"]
        .as_str()
        .expect("secret shown once");
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    assert_eq!(created["secret"]["last4"], secret[secret.len() - 4..]);

    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let (status, sent) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi",
                            "metadata": {"orderId": "A-17"}}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["id"].as_str().expect("id").to_owned();
    app.wait_for(&org, &id, &["delivered"]).await;

    let got = received_until(&server, |r| {
        r.iter().any(|q| {
            serde_json::from_slice::<Value>(&q.body).is_ok_and(|b| b["status"] == "delivered")
        })
    })
    .await;
    let events: Vec<Value> = got.iter().map(|r| verified(r, secret)).collect();
    let statuses: Vec<&str> = events.iter().filter_map(|e| e["status"].as_str()).collect();
    assert!(statuses.contains(&"sent"), "{statuses:?}");
    assert!(statuses.contains(&"delivered"), "{statuses:?}");
    let delivered = events
        .iter()
        .find(|e| e["status"] == "delivered")
        .expect("delivered event");
    assert_eq!(delivered["type"], "message.status");
    assert_eq!(delivered["messageId"], id);
    assert_eq!(delivered["metadata"], json!({"orderId": "A-17"}));
    assert!(delivered["providerId"].is_string());
    assert!(delivered["providerMessageId"]
        .as_str()
        .is_some_and(|p| p.starts_with("sbx-")));
    assert!(delivered["occurredAt"].is_string());
    let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "one event id per event");
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_backoff_and_the_same_event_id() {
    let app = TestApp::spawn().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let org = app.org("acme").await;
    let secret = "my-own-secret-0123456789abcdef";
    let (status, created) = put_endpoint(
        &app,
        &org,
        json!({"url": format!("{}/in", server.uri()), "secret": secret}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created.get("signingSecret").is_none(),
        "a given secret is not echoed"
    );
    let (status, queued) = status_json(
        app.call(
            Method::POST,
            "/api/webhook-endpoint/test",
            Some(&org.key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    let event_id = queued["eventId"].as_str().expect("event id").to_owned();

    received_until(&server, |r| !r.is_empty()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let check = format!(
        "SELECT count(*) FROM org_webhook_deliveries WHERE id = '{event_id}' AND attempts = 1
            AND last_status = 500 AND delivered_at IS NULL AND failed_at IS NULL
            AND next_attempt_at > now() + interval '5 seconds'"
    );
    while app.query_count(&check).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the failure is recorded with a backoff"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Skip the backoff wait.
    let client = app.db.pool.get().await.expect("connection");
    client
        .execute(
            "UPDATE org_webhook_deliveries SET next_attempt_at = now()",
            &[],
        )
        .await
        .expect("update");
    let got = received_until(&server, |r| r.len() >= 2).await;
    let bodies: Vec<Value> = got.iter().map(|r| verified(r, secret)).collect();
    assert_eq!(bodies[0]["id"], event_id);
    assert_eq!(
        bodies[1]["id"], event_id,
        "a retry carries the same event id"
    );
    assert_eq!(bodies[1]["type"], "test");
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = format!(
        "SELECT count(*) FROM org_webhook_deliveries WHERE id = '{event_id}'
            AND delivered_at IS NOT NULL AND attempts = 2"
    );
    while app.query_count(&done).await == 0 {
        assert!(Instant::now() < deadline, "recorded as delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_secret_is_never_read_back_and_other_organizations_cannot_touch_the_endpoint() {
    let app = TestApp::spawn().await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    let secret = "acme-webhook-secret-ABCDEFGH1234";
    let (status, _) = put_endpoint(
        &app,
        &acme,
        json!({"url": "http://127.0.0.1:9/hook", "secret": secret, "events": ["delivered"]}),
    )
    .await;
    assert_eq!(status, 201);
    let res = app
        .call(Method::GET, "/api/webhook-endpoint", Some(&acme.key), None)
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("body");
    assert!(!text.contains(secret), "secret leaked: {text}");
    let shown: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(shown["secret"], json!({"isSet": true, "last4": "1234"}));
    assert_eq!(shown["events"], json!(["delivered"]));
    let stored = app
        .query_count(&format!(
            "SELECT count(*) FROM org_webhook_endpoints WHERE position('{secret}'::bytea in secret) > 0"
        ))
        .await;
    assert_eq!(stored, 0, "sealed at rest");

    // A PUT without a secret keeps it.
    let (status, updated) =
        put_endpoint(&app, &acme, json!({"url": "https://hooks.example.com/x"})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["secret"]["last4"], "1234");
    assert!(updated.get("signingSecret").is_none());

    // Another organization sees nothing and cannot delete or test it.
    for (m, p) in [
        (Method::GET, "/api/webhook-endpoint"),
        (Method::DELETE, "/api/webhook-endpoint"),
        (Method::POST, "/api/webhook-endpoint/test"),
    ] {
        let (status, body) = status_json(app.call(m, p, Some(&other.key), None).await).await;
        assert_eq!(status, 404, "{p}: {body}");
        assert_error(&body, "not_found");
    }
    // Its own PUT creates its own endpoint, leaving acme's alone.
    let (status, _) = put_endpoint(&app, &other, json!({"url": "http://127.0.0.1:9/other"})).await;
    assert_eq!(status, 201);
    let (_, still) = status_json(
        app.call(Method::GET, "/api/webhook-endpoint", Some(&acme.key), None)
            .await,
    )
    .await;
    assert_eq!(still["url"], "https://hooks.example.com/x");

    let (status, body) = put_endpoint(&app, &acme, json!({"url": "ftp://example.com/x"})).await;
    assert_eq!(status, 422);
    assert_error(&body, "invalid_url");
    assert_eq!(body["error"]["field"], "url");
    // The SSRF guard: an address inside the engine's network is refused
    // (tests run with loopback-only outbound, so only loopback passes).
    for internal in [
        "http://10.0.0.7/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]/x",
    ] {
        let (status, body) = put_endpoint(&app, &acme, json!({ "url": internal })).await;
        assert_eq!(status, 422, "{internal}: {body}");
        assert_error(&body, "private_address");
        assert_eq!(body["error"]["field"], "url");
    }
    let (status, body) = put_endpoint(
        &app,
        &acme,
        json!({"url": "https://x.example", "events": ["nope"]}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["field"], "events[0]");

    let res = app
        .call(
            Method::DELETE,
            "/api/webhook-endpoint",
            Some(&acme.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .call(Method::GET, "/api/webhook-endpoint", Some(&acme.key), None)
        .await;
    assert_eq!(res.status(), 404);
}

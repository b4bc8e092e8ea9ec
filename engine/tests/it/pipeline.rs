//! The send pipeline end to end: accept, group commit, route, deliver,
//! status history; idempotency; rate limits; retries and failover.

use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{assert_error, sandbox, status_json, TestApp};

fn states(status: &Value) -> Vec<String> {
    status["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["state"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_message_through_a_sandbox_ends_delivered_with_its_history_in_order() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let (status, body) = app
        .send(&org, &json!({"channel": "sms", "to": "+2348031234567", "text": "hello", "metadata": {"ref": "A1"}}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().expect("id");
    let done = app.wait_for(&org, id, &["delivered"]).await;
    assert_eq!(
        states(&done),
        ["accepted", "queued", "sending", "sent", "delivered"]
    );
    assert_eq!(done["attemptCount"], 1);
    assert_eq!(done["attempts"][0]["outcome"], "delivered");
    assert!(done["providerMessageId"]
        .as_str()
        .is_some_and(|p| p.starts_with("sbx-")));
    assert_eq!(done["metadata"], json!({"ref": "A1"}));
    assert_eq!(done["to"], "+2348031234567");
}

#[tokio::test]
async fn a_batch_is_answered_in_request_order_and_every_message_is_delivered_once() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "email", sandbox("sbx-mail", 0, 0.0, 0.0))
        .await;
    app.provider(&org, "whatsapp", sandbox("sbx-wa", 0, 0.0, 0.0))
        .await;
    let messages: Vec<Value> = (0..300)
        .map(|i| {
            if i % 2 == 0 {
                json!({"channel": "email", "to": format!("user{i}@example.com"), "subject": "hi", "text": format!("n{i}")})
            } else {
                json!({"channel": "whatsapp", "to": "+2348031234567", "text": format!("n{i}")})
            }
        })
        .collect();
    let (status, body) = app.send(&org, &json!({"messages": messages})).await;
    assert_eq!(status, 202, "{body}");
    let ids: Vec<String> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 300);
    app.drain().await;
    assert_eq!(
        app.query_count(
            "SELECT count(*) FROM messages WHERE state = 'delivered' AND attempt_count = 1"
        )
        .await,
        300
    );
    // Request order: the nth answer is the nth message.
    let client = app.db.pool.get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT body_text FROM messages WHERE id = $1::text::uuid",
            &[&ids[7]],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "n7");
}

#[tokio::test]
async fn idempotency_key_replays_the_original_answer_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let body = json!({"channel": "sms", "to": "+2348031234567", "text": "once"});
    let send = |b: Value| {
        let app = &app;
        let key = org.key.clone();
        async move {
            let res = app
                .http
                .post(format!("{}/api/messaging/send", app.base))
                .bearer_auth(key)
                .header("Idempotency-Key", "order-42")
                .json(&b)
                .send()
                .await
                .expect("sent");
            status_json(res).await
        }
    };
    let (s1, first) = send(body.clone()).await;
    let (s2, again) = send(body.clone()).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first, again);
    assert_eq!(app.query_count("SELECT count(*) FROM messages").await, 1);
    let (s3, conflict) =
        send(json!({"channel": "sms", "to": "+2348031234567", "text": "different"})).await;
    assert_eq!(s3, 409);
    assert_error(&conflict, "idempotency_key_reused");
    assert_eq!(app.query_count("SELECT count(*) FROM messages").await, 1);
}

#[tokio::test]
async fn bad_sends_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"channel": "sms", "to": "+2348031234567", "text": "x"}))
        .collect();
    let cases = [
        (
            json!({"channel": "fax", "to": "+2348031234567", "text": "x"}),
            "channel",
        ),
        (
            json!({"channel": "sms", "to": "08031234567", "text": "x"}),
            "to",
        ),
        (
            json!({"channel": "email", "to": "not-an-email", "text": "x"}),
            "to",
        ),
        (
            json!({"channel": "sms", "to": "+2348031234567", "text": ""}),
            "text",
        ),
        (json!({"messages": too_many}), "messages"),
        (json!({"messages": []}), "messages"),
        (
            json!({"channel": "sms", "to": "+2348031234567", "text": "x", "sendAt": "tomorrow"}),
            "sendAt",
        ),
        (
            json!({"channel": "sms", "to": "+2348031234567", "text": "x", "sendAt": "2020-01-01T00:00:00Z"}),
            "sendAt",
        ),
        (
            json!({"messages": [{"channel": "sms", "to": "+2348031234567", "text": "ok"},
                             {"channel": "sms", "to": "nope", "text": "bad"}]}),
            "messages[1].to",
        ),
    ];
    for (body, field) in cases {
        let (status, json) = app.send(&org, &body).await;
        assert!((400..500).contains(&status), "{body}: {status} {json}");
        assert_eq!(json["error"]["field"], field, "{json}");
    }
    // No provider for the channel: refused at accept time, not queued forever.
    let (status, json) = app
        .send(
            &org,
            &json!({"channel": "whatsapp", "to": "+2348031234567", "text": "x"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_error(&json, "no_provider");
    assert_eq!(app.query_count("SELECT count(*) FROM messages").await, 0);
}

#[tokio::test]
async fn an_organization_over_its_rate_gets_429_while_another_is_unaffected() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    for org in [&a, &b] {
        app.provider(org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    }
    let res = app
        .admin(
            Method::PUT,
            &format!("/api/admin/organizations/{}/rate-limit", a.id),
            Some(&json!({"messagesPerSecond": 1, "burst": 2})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let msg = json!({"channel": "sms", "to": "+2348031234567", "text": "x"});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.send(&a, &msg).await.0);
    }
    assert_eq!(&statuses[..2], [202, 202]);
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");
    let res = app
        .call(
            Method::POST,
            "/api/messaging/send",
            Some(&a.key),
            Some(&msg),
        )
        .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    for _ in 0..20 {
        assert_eq!(app.send(&b, &msg).await.0, 202, "B is not slowed by A");
    }
}

async fn twilio_mock(responses: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    let n = responses.len();
    for (i, response) in responses.into_iter().enumerate() {
        let mock = Mock::given(method("POST")).and(path_regex(
            r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json$",
        ));
        let mock = mock.respond_with(response);
        if i + 1 < n {
            mock.up_to_n_times(1).with_priority(1).mount(&server).await;
        } else {
            mock.with_priority(2).mount(&server).await;
        }
    }
    server
}

fn twilio(name: &str, base: &str) -> Value {
    json!({"providerType": "TWILIO", "name": name, "senderId": "+14155238886", "baseUrl": base,
           "credentials": {"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "token-0123456789abcdef"}})
}

fn twilio_ok() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "num_segments": "1"}))
}

#[tokio::test]
async fn transient_errors_retry_honouring_retry_after_then_succeed() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let server = twilio_mock(vec![
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
        ResponseTemplate::new(503),
        twilio_ok(),
    ])
    .await;
    app.provider(&org, "sms", twilio("tw", &server.uri())).await;
    let (_, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "retry me"}),
        )
        .await;
    let id = body["id"].as_str().expect("id");
    let started = std::time::Instant::now();
    let done = app
        .wait_for(&org, id, &["sent", "delivered", "failed"])
        .await;
    assert_eq!(done["status"], "sent", "{done}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After honoured"
    );
    let outcomes: Vec<&str> = done["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["rate_limited", "transient_error", "sent"]);
    assert_eq!(
        done["providerMessageId"],
        "SM0123456789abcdef0123456789abcdef"
    );
}

#[tokio::test]
async fn a_failing_provider_fails_over_to_the_next_and_permanent_errors_fail_at_once() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let broken = twilio_mock(vec![ResponseTemplate::new(500)]).await;
    app.provider(&org, "sms", twilio("primary", &broken.uri()))
        .await;
    app.provider(&org, "sms", sandbox("backup", 0, 0.0, 0.0))
        .await;
    let (_, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "fail over"}),
        )
        .await;
    let done = app
        .wait_for(
            &org,
            body["id"].as_str().expect("id"),
            &["delivered", "failed"],
        )
        .await;
    assert_eq!(done["status"], "delivered", "{done}");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 2);
    assert_eq!(
        attempts.last().map(|a| a["outcome"].clone()),
        Some(json!("delivered"))
    );
    assert!(attempts[..attempts.len() - 1]
        .iter()
        .all(|a| a["outcome"] == "transient_error"));

    let org2 = app.org("other").await;
    let rejecting = twilio_mock(vec![ResponseTemplate::new(400).set_body_json(
        json!({"code": 21211, "message": "The 'To' number +2348031234567 is not a valid phone number.", "status": 400}),
    )])
    .await;
    app.provider(&org2, "sms", twilio("strict", &rejecting.uri()))
        .await;
    app.provider(&org2, "sms", sandbox("backup", 0, 0.0, 0.0))
        .await;
    let (_, body) = app
        .send(
            &org2,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "x"}),
        )
        .await;
    let done = app
        .wait_for(
            &org2,
            body["id"].as_str().expect("id"),
            &["delivered", "failed"],
        )
        .await;
    assert_eq!(
        done["status"], "failed",
        "a permanent error does not fail over: {done}"
    );
    assert_eq!(done["attemptCount"], 1);
    let reason = done["events"]
        .as_array()
        .and_then(|e| e.last())
        .map(|e| e["reason"].to_string())
        .unwrap_or_default();
    assert!(reason.contains("not a valid phone number"), "{reason}");
}

#[tokio::test]
async fn a_scheduled_message_waits_for_its_time() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (status, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "later", "sendAt": at}),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (202, Some("scheduled")));
    let id = body["id"].as_str().expect("id");
    let (_, now) = app.status(&org, id).await;
    assert_eq!(now["status"], "scheduled");
    let done = app.wait_for(&org, id, &["delivered"]).await;
    assert_eq!(
        states(&done),
        [
            "accepted",
            "scheduled",
            "queued",
            "sending",
            "sent",
            "delivered"
        ]
    );
}

#[tokio::test]
async fn a_panicking_provider_actor_is_restarted_and_its_message_still_delivered() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let provider = app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let provider_id: msgengine_domain::ProviderId =
        serde_json::from_value(provider["id"].clone()).expect("provider id");
    // Warm the route so the actor exists, then arm the panic.
    let (_, first) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "warm"}),
        )
        .await;
    app.wait_for(&org, first["id"].as_str().expect("id"), &["delivered"])
        .await;
    assert!(app.engine.inject_provider_panic(provider_id));
    let (_, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "boom"}),
        )
        .await;
    app.wait_for(&org, body["id"].as_str().expect("id"), &["delivered"])
        .await;
    let (_, after) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "after"}),
        )
        .await;
    app.wait_for(&org, after["id"].as_str().expect("id"), &["delivered"])
        .await;
}

#[tokio::test]
async fn status_of_another_organizations_message_is_not_found() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    app.provider(&a, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let (_, body) = app
        .send(
            &a,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "x"}),
        )
        .await;
    let id = body["id"].as_str().expect("id");
    let (status, json) = app.status(&b, id).await;
    assert_eq!(status, 404);
    assert_error(&json, "not_found");
}

//! Input that cannot be stored is refused at the edge, and provider text is
//! cleaned before it is stored: NUL anywhere in a JSON body, invalid UTF-8,
//! deep nesting, header injection, crafted dates, and a provider answering
//! garbage. Always a 4xx naming the field (or a cleaned reason), never a
//! 5xx, never a write, never another organization's failure.

use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{assert_error, mailgun, sandbox, status_json, TestApp};

fn email() -> Value {
    json!({"channel": "email", "to": "ada@example.com", "subject": "Hi", "text": "Hello"})
}

fn whatsapp() -> Value {
    json!({"channel": "whatsapp", "to": "+2348031234567", "text": "Hello"})
}

/// Posts raw bytes as JSON to the send route.
async fn send_raw(app: &TestApp, key: &str, body: Vec<u8>) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}/api/messaging/send", app.base))
        .bearer_auth(key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    status_json(res).await
}

/// Every place a NUL can hide in a send body, with the field it must be named by.
fn nul_cases() -> Vec<(Value, &'static str)> {
    let nul = "x\u{0}y";
    let set = |mut body: Value, key: &str, value: Value| {
        body[key] = value;
        body
    };
    let batch = |message: Value| json!({"messages": [email(), email(), email(), message]});
    vec![
        (set(email(), "to", json!(nul)), "to"),
        (set(email(), "from", json!(nul)), "from"),
        (set(email(), "subject", json!(nul)), "subject"),
        (set(email(), "text", json!(nul)), "text"),
        (set(email(), "html", json!(nul)), "html"),
        (set(email(), "sendAt", json!(nul)), "sendAt"),
        (set(email(), "replyTo", json!(nul)), "replyTo"),
        (set(email(), "metadata", json!({"a": nul})), "metadata.a"),
        (
            set(
                email(),
                "metadata",
                json!({"deep": {"list": [1, {"b": nul}]}}),
            ),
            "metadata.deep.list[1].b",
        ),
        (
            set(email(), "headers", json!({"X-Ref": nul})),
            "headers.X-Ref",
        ),
        (set(email(), "tags", json!(["ok", nul])), "tags[1]"),
        (
            set(
                email(),
                "attachments",
                json!([{"filename": nul, "contentType": "text/plain", "content": "aGk="}]),
            ),
            "attachments[0].filename",
        ),
        (
            set(
                whatsapp(),
                "template",
                json!({"name": "t", "language": "en", "variables": ["a", nul]}),
            ),
            "template.variables[1]",
        ),
        (
            set(
                whatsapp(),
                "media",
                json!({"kind": "image", "mediaId": nul}),
            ),
            "media.mediaId",
        ),
        (set(email(), "channel", json!(nul)), "channel"),
        (
            batch(set(email(), "metadata", json!({"a": nul}))),
            "messages[3].metadata.a",
        ),
        (
            batch(set(email(), "subject", json!(nul))),
            "messages[3].subject",
        ),
    ]
}

#[tokio::test]
async fn nul_in_any_field_of_a_send_is_a_422_naming_it_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "email", sandbox("sbx-mail", 0, 0.0, 0.0))
        .await;
    app.provider(&org, "whatsapp", sandbox("sbx-wa", 0, 0.0, 0.0))
        .await;
    for (body, field) in nul_cases() {
        let (status, answer) = app.send(&org, &body).await;
        assert_eq!(status, 422, "{field}: {answer}");
        assert_error(&answer, "invalid_characters");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // A NUL in a key too.
    let mut body = email();
    body["metadata"] = json!({"a\u{0}": "v"});
    let (status, answer) = app.send(&org, &body).await;
    assert_eq!(status, 422, "{answer}");
    assert_error(&answer, "invalid_characters");
    assert_eq!(app.query_count("SELECT count(*) FROM messages").await, 0);
}

#[tokio::test]
async fn a_tenant_sending_unstorable_data_never_fails_another_tenants_sends() {
    let app = TestApp::spawn().await;
    let (hostile, steady) = (app.org("hostile").await, app.org("steady").await);
    for org in [&hostile, &steady] {
        app.provider(org, "email", sandbox("sbx", 0, 0.0, 0.0))
            .await;
    }
    let mut bad = email();
    bad["metadata"] = json!({"a": "x\u{0}y"});
    let good = email();
    let (bad_answers, good_answers) = tokio::join!(
        send_many(&app, &hostile, &bad, 20),
        send_many(&app, &steady, &good, 20),
    );
    assert!(
        bad_answers.iter().all(|(s, _)| *s == 422),
        "{bad_answers:?}"
    );
    assert!(
        good_answers.iter().all(|(s, _)| *s == 202),
        "{good_answers:?}"
    );
    assert_eq!(
        app.query_count("SELECT count(*) FROM messages").await,
        20,
        "every steady send stored, no hostile one"
    );
}

/// `n` sends of `body` for `org`, concurrently (spawned on the test runtime).
async fn send_many(
    app: &TestApp,
    org: &crate::helpers::Org,
    body: &Value,
    n: usize,
) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, url, key, body) = (
                app.http.clone(),
                format!("{}/api/messaging/send", app.base),
                org.key.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .expect("sent");
                status_json(res).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

#[tokio::test]
async fn invalid_utf8_lone_surrogates_and_deep_nesting_are_4xx() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "email", sandbox("sbx", 0, 0.0, 0.0))
        .await;

    let mut invalid = br#"{"channel": "email", "to": "ada@example.com", "text": ""#.to_vec();
    invalid.extend_from_slice(b"\xff\xfe\xc3");
    invalid.extend_from_slice(br#""}"#);
    let (status, answer) = send_raw(&app, &org.key, invalid).await;
    assert_eq!(status, 400, "{answer}");
    assert_error(&answer, "invalid_json");

    let surrogate = br#"{"channel": "email", "to": "ada@example.com", "text": "\ud800"}"#.to_vec();
    let (status, answer) = send_raw(&app, &org.key, surrogate).await;
    assert_eq!(status, 400, "{answer}");
    assert_error(&answer, "invalid_json");

    let deep = format!(
        r#"{{"channel": "email", "to": "ada@example.com", "text": "x", "metadata": {{"a": {}1{}}}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let (status, answer) = send_raw(&app, &org.key, deep.into_bytes()).await;
    assert_eq!(status, 422, "{answer}");
    assert_error(&answer, "too_deep");

    // Past serde_json's own recursion limit as well: still a 4xx.
    let deeper = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let (status, _) = send_raw(&app, &org.key, deeper.into_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(app.query_count("SELECT count(*) FROM messages").await, 0);
}

#[tokio::test]
async fn line_breaks_in_header_fields_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "email", sandbox("sbx", 0, 0.0, 0.0))
        .await;
    let inject = "Hi\r\nBcc: victim@example.com";
    let mut subject = email();
    subject["subject"] = json!(inject);
    let mut header = email();
    header["headers"] = json!({"X-Campaign": inject});
    let mut from = email();
    from["from"] = json!(format!("a@example.com\r\nBcc: victim@example.com"));
    for (body, field) in [
        (subject, "subject"),
        (header, "headers.X-Campaign"),
        (from, "from"),
    ] {
        let (status, answer) = app.send(&org, &body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // And in a provider's sender identity.
    let mut spec = mailgun();
    spec["fromName"] = json!(inject);
    let res = app
        .call(
            Method::POST,
            "/api/email/providers",
            Some(&org.key),
            Some(&spec),
        )
        .await;
    let (status, answer) = status_json(res).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "fromName", "{answer}");
    let mut spec = mailgun();
    spec["fromEmail"] = json!("hello@example.com\r\nBcc: victim@example.com");
    let res = app
        .call(
            Method::POST,
            "/api/email/providers",
            Some(&org.key),
            Some(&spec),
        )
        .await;
    let (status, answer) = status_json(res).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "fromEmail", "{answer}");
}

#[tokio::test]
async fn crafted_stats_dates_are_a_422_never_a_dropped_connection() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let provider = app.provider(&org, "email", mailgun()).await;
    let id = provider["id"].as_str().expect("id");
    for (query, field) in [
        ("to=-262143-01-01", "to"),
        ("to=%2B262142-12-31", "to"),
        ("from=-262143-01-01&to=2026-01-01", "from"),
        ("from=1999-12-31&to=2000-01-02", "from"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2020-01-01&to=2026-01-01", "from"),
    ] {
        let res = app
            .call(
                Method::GET,
                &format!("/api/email/providers/{id}/stats?{query}"),
                Some(&org.key),
                None,
            )
            .await;
        let (status, answer) = status_json(res).await;
        assert_eq!(status, 422, "{query}: {answer}");
        assert_error(&answer, "invalid_range");
        assert_eq!(answer["error"]["field"], field, "{query}: {answer}");
    }
}

#[tokio::test]
async fn query_parameters_with_nul_or_absurd_length_are_4xx() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let long = "a".repeat(2000);
    for path in [
        "/api/suppressions?after=a%00b".to_owned(),
        format!("/api/suppressions?after={long}"),
        "/api/suppressions/a%00b%40example.com".to_owned(),
        format!("/api/suppressions/{long}%40example.com"),
        "/api/audit?before=99999999999999999999999".to_owned(),
        "/api/audit?limit=-1".to_owned(),
    ] {
        let res = app.call(Method::GET, &path, Some(&org.key), None).await;
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status}");
    }
}

#[tokio::test]
async fn a_provider_answering_nul_and_ten_kilobytes_leaves_a_cleaned_capped_reason() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let server = MockServer::start().await;
    let garbage = format!("bad\u{0}thing\r\n{}", "z".repeat(10 * 1024));
    Mock::given(method("POST"))
        .and(path_regex(r"^/v3/.+/messages$"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": garbage})))
        .mount(&server)
        .await;
    let mut spec = mailgun();
    spec["baseUrl"] = json!(server.uri());
    app.provider(&org, "email", spec).await;

    let (status, body) = app.send(&org, &email()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id");
    let done = app.wait_for(&org, id, &["failed"]).await;
    let text = done.to_string();
    assert!(!text.contains("\\u0000"), "no NUL stored: {text}");
    let reason = done["events"]
        .as_array()
        .and_then(|events| events.iter().rev().find(|e| e["state"] == "failed"))
        .and_then(|e| e["reason"].as_str())
        .expect("a failure reason");
    assert!(reason.contains("bad\\u{0}thing"), "{reason}");
    assert!(!reason.contains(char::is_control), "{reason}");
    assert!(reason.chars().count() <= 501, "capped: {}", reason.len());
    assert!(reason.ends_with('…'), "{reason}");
    let attempt_error = done["attempts"][0]["error"].as_str().expect("error");
    assert!(!attempt_error.contains(char::is_control), "{attempt_error}");
}

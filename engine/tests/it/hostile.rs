//! The hostile-tenant suite (issue 10; the attack table is docs/security.md).
//!
//! Two organizations share one engine. The hostile one tries every attack we
//! know of — input the database cannot store, header injection, oversized and
//! deeply nested JSON, invalid UTF-8, providers answering garbage or slowly,
//! a disabled and a slow webhook endpoint with a backlog, forged and replayed
//! provider webhooks, credential redirection, crafted dates and path ids —
//! while the victim sends steadily. The victim's requests never see a 5xx,
//! every message it was answered 202 for reaches `delivered` within a bound,
//! each after exactly one attempt, and its own endpoint hears of every one.
//! Every hostile request is answered below 500.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{sandbox, Org, TestApp};

/// Victim batches sent while the hostile tenant works, and their size.
const VICTIM_BATCHES: usize = 40;
const VICTIM_BATCH_SIZE: usize = 5;
/// Messages the hostile tenant pushes through its garbage provider.
const HOSTILE_MESSAGES: usize = 200;
/// How long the victim's messages may take to be delivered after its last send.
const VICTIM_BOUND: Duration = Duration::from_secs(60);

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "hostile-twilio-auth-token-0123456789";
const MAILGUN_KEY: &str = "key-hostile-mailgun-0123456789abcdef";
const MAILGUN_SIGNING: &str = "hostile-mailgun-signing-key-0123456789";
const META_SECRET: &str = "hostile-meta-app-secret-0123456789";
const META_VERIFY: &str = "hostile-meta-verify-token-0123456789";
const LONG_TOKEN: &str = "hostile-webhook-token-0123456789abcdef";

/// What one hostile request got.
struct Tried {
    attack: String,
    status: u16,
}

/// Records an attack's answer; the suite fails on any 5xx at the end (so
/// the whole table prints first).
struct Log(Vec<Tried>);

impl Log {
    fn record(&mut self, attack: impl Into<String>, status: u16) {
        self.0.push(Tried {
            attack: attack.into(),
            status,
        });
    }

    fn expect(&mut self, attack: impl Into<String>, status: u16, allowed: &[u16]) {
        let attack = attack.into();
        assert!(
            allowed.contains(&status),
            "{attack}: answered {status}, expected one of {allowed:?}"
        );
        self.record(attack, status);
    }
}

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req
        .body(body)
        .send()
        .await
        .expect("request reaches the server");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

async fn json_call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let res = app.call(method, path, Some(token), Some(body)).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The victim: batches of SANDBOX SMS, each answered 202 (anything else is
/// returned as a failure), and the ids it was given.
async fn victim_sends(app: Arc<TestApp>, victim: Arc<Org>) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for b in 0..VICTIM_BATCHES {
        let messages: Vec<Value> = (0..VICTIM_BATCH_SIZE)
            .map(|i| {
                json!({"channel": "sms", "to": format!("+2348031{:06}", b * 100 + i),
                       "text": format!("victim {b}/{i}"), "metadata": {"batch": b}})
            })
            .collect();
        let (status, body) = app.send(&victim, &json!({"messages": messages})).await;
        if status != 202 {
            failures.push(format!("batch {b}: {status} {body}"));
        } else {
            for m in body["messages"].as_array().into_iter().flatten() {
                ids.push(m["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (ids, failures)
}

fn mailgun_signature(timestamp: &str, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(MAILGUN_SIGNING.as_bytes()).expect("key");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A provider API that answers every request with `response`.
async fn provider_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(".*"))
        .respond_with(response.clone())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(".*"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_tenant_never_fails_slows_or_duplicates_another_tenants_work() {
    let app = Arc::new(TestApp::spawn().await);
    let victim = Arc::new(app.org("victim").await);
    let hostile = app.org("hostile").await;

    // The victim: a SANDBOX SMS connection and its own webhook endpoint.
    app.provider(&victim, "sms", sandbox("victim-sandbox", 5, 0.0, 0.0))
        .await;
    let victim_hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&victim_hook)
        .await;
    let (s, body) = json_call(
        &app,
        Method::PUT,
        "/api/webhook-endpoint",
        &victim.key,
        &json!({"url": format!("{}/hook", victim_hook.uri()),
                "secret": "victim-endpoint-secret-0123456789", "events": ["delivered"]}),
    )
    .await;
    assert!(s == 200 || s == 201, "{body}");

    // The hostile tenant's connections: providers that answer garbage.
    let nul_answer = provider_answering(ResponseTemplate::new(400).set_body_raw(
        br#"{"message": "bad\u0000thing", "code": 21211}"#.to_vec(),
        "application/json",
    ))
    .await;
    let garbage_answer = provider_answering(
        ResponseTemplate::new(200).set_body_raw(vec![0xff_u8; 64 * 1024], "application/json"),
    )
    .await;
    let slow_answer = provider_answering(
        ResponseTemplate::new(503)
            .set_delay(Duration::from_secs(3))
            .set_body_string("x".repeat(100_000)),
    )
    .await;
    let twilio = app
        .provider(
            &hostile,
            "sms",
            json!({"providerType": "TWILIO", "name": "tw-nul",
            "senderId": "+15005550006", "baseUrl": nul_answer.uri(),
            "credentials": {"accountSid": TWILIO_SID, "authToken": TWILIO_TOKEN}}),
        )
        .await;
    let twilio_id = twilio["id"].as_str().expect("id").to_owned();
    let mailgun = app
        .provider(
            &hostile,
            "email",
            json!({"providerType": "MAILGUN", "name": "mg-slow",
            "apiKey": MAILGUN_KEY, "domain": "mg.example.com", "fromEmail": "a@example.com",
            "webhookSecret": MAILGUN_SIGNING, "baseUrl": slow_answer.uri()}),
        )
        .await;
    let mailgun_id = mailgun["id"].as_str().expect("id").to_owned();
    let meta = app
        .provider(
            &hostile,
            "whatsapp",
            json!({"providerType": "META_CLOUD", "name": "meta-garbage",
            "accessToken": "EAAG-hostile-meta-token-0123456789", "phoneNumberId": "1234567890",
            "businessAccountId": "98765", "webhookVerifyToken": META_VERIFY,
            "webhookSecret": META_SECRET, "baseUrl": garbage_answer.uri()}),
        )
        .await;
    let meta_id = meta["id"].as_str().expect("id").to_owned();

    let steady = tokio::spawn(victim_sends(app.clone(), victim.clone()));
    let started = Instant::now();
    let mut log = Log(Vec::new());

    attack_sends(&app, &hostile, &mut log).await;
    attack_storable_oddities(&app, &hostile, &mut log).await;
    attack_bodies(&app, &hostile, &mut log).await;
    attack_paths(&app, &hostile, &mailgun_id, &mut log).await;
    attack_credentials(&app, &hostile, &mailgun_id, &mut log).await;
    attack_webhooks(&app, &hostile, &twilio_id, &mailgun_id, &meta_id, &mut log).await;
    attack_endpoint_backlog(&app, &hostile, &mut log).await;
    let hostile_ids = attack_volume(&app, &hostile, &mut log).await;

    let (victim_ids, failures) = steady.await.expect("victim task");
    let last_send = Instant::now();
    for t in &log.0 {
        eprintln!("{:>3}  {}", t.status, t.attack);
    }
    assert!(failures.is_empty(), "the victim was refused: {failures:#?}");
    assert!(
        log.0.iter().all(|t| t.status < 500),
        "a hostile request got a 5xx"
    );
    assert_eq!(victim_ids.len(), VICTIM_BATCHES * VICTIM_BATCH_SIZE);

    // Every victim message delivered within the bound, after exactly one attempt.
    let victim_org = &victim.id;
    let delivered_sql = format!(
        "SELECT count(*) FROM messages WHERE organization_id = '{victim_org}'
           AND state = 'delivered' AND attempt_count = 1"
    );
    loop {
        let delivered = app.query_count(&delivered_sql).await;
        if delivered as usize == victim_ids.len() {
            break;
        }
        assert!(
            last_send.elapsed() < VICTIM_BOUND,
            "only {delivered} of {} victim messages delivered {:?} after the last send",
            victim_ids.len(),
            last_send.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = app
        .query_count(&format!(
            "SELECT count(*) FROM messages WHERE organization_id = '{victim_org}'"
        ))
        .await;
    assert_eq!(
        stored as usize,
        victim_ids.len(),
        "nothing lost, nothing extra"
    );
    eprintln!(
        "victim: {} delivered, {:?} from the first send",
        victim_ids.len(),
        started.elapsed()
    );

    // The victim's endpoint heard of each delivery exactly once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = victim_hook.received_requests().await.unwrap_or_default();
        let mut ids: Vec<String> = got
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter_map(|v| v["messageId"].as_str().map(str::to_owned))
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        if ids.len() == victim_ids.len() {
            assert_eq!(n, ids.len(), "a delivery event was posted twice");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the victim's endpoint heard of {} of {} deliveries",
            ids.len(),
            victim_ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The hostile tenant's own messages all finished, with clean reasons.
    let deadline = Instant::now() + Duration::from_secs(60);
    let hostile_org = &hostile.id;
    loop {
        let open = app
            .query_count(&format!(
                "SELECT count(*) FROM messages WHERE organization_id = '{hostile_org}'
                   AND channel = 'sms' AND state IN ('accepted','queued','sending')"
            ))
            .await;
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} hostile messages never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in hostile_ids.iter().take(5) {
        let (_, status) = app.status(&hostile, id).await;
        let text = status.to_string();
        assert!(!text.contains("\\u0000"), "NUL stored: {text}");
        assert_eq!(status["status"], "failed", "{text}");
        for e in status["events"].as_array().into_iter().flatten() {
            let reason = e["reason"].as_str().unwrap_or_default();
            assert!(reason.chars().count() <= 1024, "uncapped reason: {reason}");
        }
    }
}

/// NUL, CR/LF and other unstorable values in every field of a send.
async fn attack_sends(app: &TestApp, hostile: &Org, log: &mut Log) {
    let sms = json!({"channel": "sms", "to": "+2348031234567", "text": "hi"});
    let email = json!({"channel": "email", "to": "a@example.org", "subject": "s", "text": "t",
                       "html": "<p>t</p>"});
    let cases: Vec<(&str, Value)> = vec![
        (
            "to",
            json!({"channel": "sms", "to": "+234803\u{0}1234567", "text": "hi"}),
        ),
        (
            "text",
            json!({"channel": "sms", "to": "+2348031234567", "text": "a\u{0}b"}),
        ),
        (
            "from",
            json!({"channel": "sms", "to": "+2348031234567", "text": "hi", "from": "Ac\u{0}me"}),
        ),
        (
            "metadata value",
            json!({"channel": "sms", "to": "+2348031234567", "text": "hi",
                                  "metadata": {"a": "x\u{0}y"}}),
        ),
        (
            "metadata key",
            json!({"channel": "sms", "to": "+2348031234567", "text": "hi",
                                "metadata": {"a\u{0}": "x"}}),
        ),
        (
            "metadata nested",
            json!({"channel": "sms", "to": "+2348031234567", "text": "hi",
                                   "metadata": {"a": [{"b": {"c": "\u{0}"}}]}}),
        ),
        (
            "subject",
            json!({"channel": "email", "to": "a@example.org", "subject": "s\u{0}", "text": "t"}),
        ),
        (
            "html",
            json!({"channel": "email", "to": "a@example.org", "subject": "s", "html": "<p>\u{0}</p>"}),
        ),
        (
            "subject CRLF",
            json!({"channel": "email", "to": "a@example.org",
                                "subject": "hi\r\nBcc: victim@example.org", "text": "t"}),
        ),
        (
            "replyTo CRLF",
            json!({"channel": "email", "to": "a@example.org", "subject": "s", "text": "t",
                                "replyTo": "a@example.org\r\nBcc: b@example.org"}),
        ),
        (
            "header value CRLF",
            json!({"channel": "email", "to": "a@example.org", "subject": "s",
                                     "text": "t", "headers": {"X-A": "1\r\nBcc: b@example.org"}}),
        ),
        (
            "header name NUL",
            json!({"channel": "email", "to": "a@example.org", "subject": "s",
                                   "text": "t", "headers": {"X-\u{0}": "1"}}),
        ),
        (
            "tag NUL",
            json!({"channel": "email", "to": "a@example.org", "subject": "s", "text": "t",
                           "tags": ["a\u{0}"]}),
        ),
        (
            "attachment filename CRLF",
            json!({"channel": "email", "to": "a@example.org",
            "subject": "s", "text": "t", "attachments": [{"filename": "a\r\n.txt",
            "contentType": "text/plain", "content": "aGk="}]}),
        ),
        (
            "template variable NUL",
            json!({"channel": "whatsapp", "to": "+2348031234567", "text": "t",
            "template": {"name": "order", "language": "en", "variables": ["\u{0}"]}}),
        ),
        (
            "sendAt far past",
            json!({"channel": "sms", "to": "+2348031234567", "text": "hi",
                                   "sendAt": "-262143-01-01T00:00:00Z"}),
        ),
        (
            "sendAt far future",
            json!({"channel": "sms", "to": "+2348031234567", "text": "hi",
                                     "sendAt": "+262142-12-31T23:59:59Z"}),
        ),
    ];
    for (field, message) in cases {
        let (s, _) = app.send(hostile, &message).await;
        log.expect(
            format!("send: NUL/CRLF/range in {field}"),
            s,
            &[400, 413, 422],
        );
        let batch = json!({"messages": [sms.clone(), message, email.clone()]});
        let (s, _) = app.send(hostile, &batch).await;
        log.expect(
            format!("batch send: one member with bad {field}"),
            s,
            &[400, 413, 422],
        );
    }
}

/// Values that are odd but storable are accepted (and stored exactly).
async fn attack_storable_oddities(app: &TestApp, hostile: &Org, log: &mut Log) {
    let huge = json!({"channel": "sms", "to": "+2348031234567", "text": "hi",
                      "metadata": {"n": 1e308, "m": -1e308, "u": "\u{202e}\u{feff}\u{1f600}"}});
    let (s, body) = app.send(hostile, &huge).await;
    log.expect(
        "send: extreme numbers and bidi/BOM/emoji in metadata",
        s,
        &[202],
    );
    let id = body["id"].as_str().unwrap_or_default();
    let (_, status) = app.status(hostile, id).await;
    assert_eq!(
        status["metadata"]["u"], "\u{202e}\u{feff}\u{1f600}",
        "{status}"
    );
}

/// Bodies that are not what they claim: invalid UTF-8, deep nesting, too
/// large, wrong content types.
async fn attack_bodies(app: &TestApp, hostile: &Org, log: &mut Log) {
    let send = "/api/messaging/send";
    let key = Some(hostile.key.as_str());
    let json_ct = Some("application/json");
    let mut invalid = br#"{"channel": "sms", "to": "+2348031234567", "text": ""#.to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    invalid.extend_from_slice(br#""}"#);
    let (s, _) = raw(app, Method::POST, send, key, json_ct, invalid).await;
    log.expect("send: invalid UTF-8 in a string", s, &[400, 422]);
    let deep = format!(
        r#"{{"channel": "sms", "to": "+2348031234567", "text": "x", "metadata": {}"x"{}}}"#,
        r#"{"a":"#.repeat(5000),
        "}".repeat(5000)
    );
    let (s, _) = raw(app, Method::POST, send, key, json_ct, deep.into_bytes()).await;
    log.expect("send: metadata nested 5,000 deep", s, &[400, 413, 422]);
    let big = format!(
        r#"{{"channel": "sms", "to": "+2348031234567", "text": "{}"}}"#,
        "x".repeat(20 * 1024 * 1024)
    );
    let (s, _) = raw(app, Method::POST, send, key, json_ct, big.into_bytes()).await;
    log.expect("send: 20 MiB body", s, &[413]);
    let (s, _) = raw(
        app,
        Method::POST,
        send,
        key,
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    log.expect("send: text/plain body", s, &[415]);
    let (s, _) = raw(app, Method::POST, send, key, json_ct, b"[1,2,3]".to_vec()).await;
    log.expect("send: an array body", s, &[400, 422]);
    let (s, _) = raw(app, Method::POST, send, key, json_ct, b"\0\0\0".to_vec()).await;
    log.expect("send: binary zeros", s, &[400, 422]);
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"channel": "sms", "to": "+2348031234567", "text": "x"}))
        .collect();
    let (s, _) = app.send(hostile, &json!({"messages": many})).await;
    log.expect("send: a batch of 1,001", s, &[400, 413, 422]);
    let res = app
        .http
        .post(format!("{}{send}", app.base))
        .bearer_auth(&hostile.key)
        .header("Idempotency-Key", "k".repeat(10_000))
        .json(&json!({"channel": "sms", "to": "+2348031234567", "text": "x"}))
        .send()
        .await
        .expect("request");
    log.expect(
        "send: a 10 KB Idempotency-Key",
        res.status().as_u16(),
        &[400, 413, 422, 431],
    );
    let (s, _) = json_call(
        app,
        Method::POST,
        "/api/suppressions",
        &hostile.key,
        &json!({"recipient": "a\u{0}@example.org", "reason": "x"}),
    )
    .await;
    log.expect("suppressions: NUL in a recipient", s, &[400, 422]);
}

/// Crafted path ids, dates and paging values.
async fn attack_paths(app: &TestApp, hostile: &Org, mailgun_id: &str, log: &mut Log) {
    let long = "a".repeat(10_000);
    let paths = [
        (
            "status: a %00 id".to_owned(),
            "/api/messaging/status/%00".to_owned(),
        ),
        (
            "status: a 10 KB id".to_owned(),
            format!("/api/messaging/status/{long}"),
        ),
        (
            "suppression: a %00 recipient".to_owned(),
            "/api/suppressions/a%00b".to_owned(),
        ),
        (
            "suppression: a 10 KB recipient".to_owned(),
            format!("/api/suppressions/{long}"),
        ),
        (
            "stats: to = -262143-01-01".to_owned(),
            format!("/api/email/providers/{mailgun_id}/stats?to=-262143-01-01"),
        ),
        (
            "stats: from = +262142-12-31".to_owned(),
            format!("/api/email/providers/{mailgun_id}/stats?from=%2B262142-12-31&to=2026-01-01"),
        ),
        (
            "stats: a 100-year span".to_owned(),
            format!("/api/email/providers/{mailgun_id}/stats?from=1950-01-01&to=2050-01-01"),
        ),
        (
            "audit: limit -1".to_owned(),
            "/api/audit?limit=-1".to_owned(),
        ),
        (
            "audit: limit 2^63".to_owned(),
            "/api/audit?limit=9223372036854775808".to_owned(),
        ),
        (
            "suppressions: a %00 cursor".to_owned(),
            "/api/suppressions?after=%00".to_owned(),
        ),
    ];
    for (attack, path) in paths {
        let res = app.call(Method::GET, &path, Some(&hostile.key), None).await;
        log.expect(
            attack,
            res.status().as_u16(),
            &[400, 404, 414, 422, 431, 502],
        );
    }
    let res = app
        .call(
            Method::DELETE,
            "/api/suppressions/%00",
            Some(&hostile.key),
            None,
        )
        .await;
    log.expect(
        "suppression delete: a %00 recipient",
        res.status().as_u16(),
        &[400, 404, 422],
    );
}

/// Pointing a stored credential somewhere else without re-entering it.
async fn attack_credentials(app: &TestApp, hostile: &Org, mailgun_id: &str, log: &mut Log) {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&elsewhere)
        .await;
    let path = format!("/api/email/providers/{mailgun_id}");
    let (s, body) = json_call(
        app,
        Method::PUT,
        &path,
        &hostile.key,
        &json!({"baseUrl": elsewhere.uri()}),
    )
    .await;
    log.expect(
        "provider PUT: baseUrl changed without the API key",
        s,
        &[422],
    );
    assert_eq!(body["error"]["field"], "apiKey", "{body}");
    let res = app
        .call(
            Method::POST,
            &format!("{path}/test"),
            Some(&hostile.key),
            None,
        )
        .await;
    log.record(
        "provider test after the refused baseUrl change",
        res.status().as_u16(),
    );
    let seen = elsewhere.received_requests().await.unwrap_or_default();
    assert!(seen.is_empty(), "the stored key was sent to the new host");
}

/// Forged, replayed and malformed provider webhooks, for the hostile
/// tenant's connections and the victim's.
async fn attack_webhooks(
    app: &TestApp,
    hostile: &Org,
    twilio_id: &str,
    mailgun_id: &str,
    meta_id: &str,
    log: &mut Log,
) {
    // Token-only schemes, with and without the right token.
    for (channel, body) in [
        (
            "email",
            json!({"providerType": "MAILJET", "name": "mj", "apiKey": "mj-public:mj-secret",
                         "fromEmail": "a@example.com", "domain": "example.com",
                         "webhookSecret": LONG_TOKEN}),
        ),
        (
            "sms",
            json!({"providerType": "AFRICASTALKING", "name": "at",
                       "credentials": {"username": "acme", "apiKey": "atsk-hostile-key",
                                       "webhookToken": LONG_TOKEN}}),
        ),
        (
            "whatsapp",
            json!({"providerType": "GUPSHUP", "name": "gs", "accessToken": "gupshup-hostile-key",
                            "phoneNumber": "+2348030000000", "appName": "acmeapp",
                            "webhookSecret": LONG_TOKEN}),
        ),
    ] {
        let p = app.provider(hostile, channel, body).await;
        let id = p["id"].as_str().expect("id");
        for token in [
            "",
            "?token=wrong",
            "?token=hostile-webhook-token-0123456789abcdeX",
        ] {
            let (s, _) = raw(
                app,
                Method::POST,
                &format!("/api/webhooks/{channel}/{id}{token}"),
                None,
                Some("application/json"),
                br#"{"event": "delivered"}"#.to_vec(),
            )
            .await;
            log.expect(format!("webhook {channel}: token {token:?}"), s, &[401]);
        }
    }
    // Short webhook tokens are refused when the connection is made.
    let (s, _) = json_call(
        app,
        Method::POST,
        "/api/sms/providers",
        &hostile.key,
        &json!({"providerType": "AFRICASTALKING", "name": "at-short",
                "credentials": {"username": "acme", "apiKey": "atsk-hostile-key",
                                "webhookToken": "short"}}),
    )
    .await;
    log.expect("provider create: a 5-character webhook token", s, &[422]);

    // Twilio: unsigned and garbage bodies.
    let twilio_path = format!("/api/webhooks/sms/{twilio_id}");
    let (s, _) = raw(
        app,
        Method::POST,
        &twilio_path,
        None,
        Some("application/x-www-form-urlencoded"),
        b"MessageSid=SM1&MessageStatus=delivered".to_vec(),
    )
    .await;
    log.expect("webhook Twilio: unsigned", s, &[401]);
    let (s, _) = raw(
        app,
        Method::POST,
        &twilio_path,
        None,
        Some("application/x-www-form-urlencoded"),
        vec![0xff; 4096],
    )
    .await;
    log.expect("webhook Twilio: binary garbage", s, &[400, 401]);

    // Mailgun: a valid signature replayed with other event data.
    let mailgun_path = format!("/api/webhooks/email/{mailgun_id}");
    let ts = chrono::Utc::now().timestamp().to_string();
    let token = "replayed-token-0123456789abcdef0123456789abcdef01";
    let signature =
        json!({"timestamp": ts, "token": token, "signature": mailgun_signature(&ts, token)});
    let first = json!({"signature": signature, "event-data": {"id": "ev-1", "event": "delivered",
        "timestamp": 1.7e9, "recipient": "a@example.org",
        "message": {"headers": {"message-id": "unknown@mg.example.com"}}}});
    let second = json!({"signature": signature, "event-data": {"id": "ev-2", "event": "failed",
        "severity": "permanent", "timestamp": 1.7e9, "recipient": "b@example.org",
        "message": {"headers": {"message-id": "unknown@mg.example.com"}}}});
    let post = |body: &Value| serde_json::to_vec(body).expect("json");
    let ct = Some("application/json");
    let (s, text) = raw(app, Method::POST, &mailgun_path, None, ct, post(&first)).await;
    assert_eq!(s, 200, "{text}");
    log.expect("webhook Mailgun: first use of a signature", s, &[200]);
    let (s, _) = raw(app, Method::POST, &mailgun_path, None, ct, post(&second)).await;
    log.expect(
        "webhook Mailgun: the same signature with other event-data",
        s,
        &[401],
    );
    let forged = json!({"signature": {"timestamp": ts, "token": "t", "signature": "00"},
                        "event-data": {"id": "ev-3", "event": "delivered"}});
    let (s, _) = raw(app, Method::POST, &mailgun_path, None, ct, post(&forged)).await;
    log.expect("webhook Mailgun: forged signature", s, &[401]);

    // Meta: a wrong handshake token, an unsigned event.
    let meta_path = format!("/api/webhooks/whatsapp/{meta_id}");
    let res = app
        .call(
            Method::GET,
            &format!("{meta_path}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=42"),
            None,
            None,
        )
        .await;
    log.expect(
        "webhook Meta: handshake with a wrong verify token",
        res.status().as_u16(),
        &[403],
    );
    let (s, _) = raw(
        app,
        Method::POST,
        &meta_path,
        None,
        Some("application/json"),
        br#"{"object": "whatsapp_business_account", "entry": []}"#.to_vec(),
    )
    .await;
    log.expect("webhook Meta: unsigned", s, &[401]);

    // Unknown and malformed connection ids.
    for path in [
        "/api/webhooks/sms/00000000-0000-0000-0000-000000000000",
        "/api/webhooks/sms/not-a-uuid",
        "/api/webhooks/fax/00000000-0000-0000-0000-000000000000",
    ] {
        let (s, _) = raw(
            app,
            Method::POST,
            path,
            None,
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
        log.expect(format!("webhook: {path}"), s, &[401, 404]);
    }
}

/// A disabled endpoint with a backlog of test events, then a slow one.
async fn attack_endpoint_backlog(app: &TestApp, hostile: &Org, log: &mut Log) {
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_delay(Duration::from_secs(5)))
        .mount(&slow)
        .await;
    let url = format!("{}/slow", slow.uri());
    let (s, _) = json_call(
        app,
        Method::PUT,
        "/api/webhook-endpoint",
        &hostile.key,
        &json!({"url": url, "secret": "hostile-endpoint-secret-0123456789", "enabled": false}),
    )
    .await;
    log.expect("endpoint: PUT disabled", s, &[200, 201]);
    for _ in 0..40 {
        let res = app
            .call(
                Method::POST,
                "/api/webhook-endpoint/test",
                Some(&hostile.key),
                None,
            )
            .await;
        log.record(
            "endpoint: a test event for a disabled endpoint",
            res.status().as_u16(),
        );
    }
    let (s, _) = json_call(
        app,
        Method::PUT,
        "/api/webhook-endpoint",
        &hostile.key,
        &json!({"url": url, "enabled": true}),
    )
    .await;
    log.expect("endpoint: re-enabled, slow and failing", s, &[200]);
    for _ in 0..40 {
        let res = app
            .call(
                Method::POST,
                "/api/webhook-endpoint/test",
                Some(&hostile.key),
                None,
            )
            .await;
        log.record(
            "endpoint: a test event for a slow endpoint",
            res.status().as_u16(),
        );
    }
}

/// Volume through the providers that answer garbage, NUL or slowly.
async fn attack_volume(app: &TestApp, hostile: &Org, log: &mut Log) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in 0..(HOSTILE_MESSAGES / 50) {
        let messages: Vec<Value> = (0..50)
            .map(|i| {
                json!({"channel": "sms", "to": format!("+2348035{:06}", chunk * 100 + i),
                            "text": "hostile"})
            })
            .collect();
        let (s, body) = app.send(hostile, &json!({"messages": messages})).await;
        log.expect(
            "send: 50 messages to a provider answering 400 with NUL",
            s,
            &[202],
        );
        for m in body["messages"].as_array().into_iter().flatten() {
            ids.push(m["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    for (channel, to) in [("email", "x@example.org"), ("whatsapp", "+2348031234567")] {
        let mut body = json!({"channel": channel, "to": to, "text": "hostile"});
        if channel == "email" {
            body["subject"] = json!("s");
        }
        let (s, _) = app.send(hostile, &body).await;
        log.expect(
            format!("send: {channel} to a slow or garbage provider"),
            s,
            &[202],
        );
    }
    ids
}

//! `GET /metrics` against its contract, `docs/metrics.md`.
//!
//! Its own test binary (own process): the Prometheus recorder is global to a
//! process, so only here are the counters this test's alone and their values
//! exact. The metric names, types, labels and buckets are parsed out of
//! `docs/metrics.md`, so the document and the engine cannot drift apart.

#[path = "it/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha1::Sha1;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use helpers::{sandbox, TestApp};

/// One documented metric.
#[derive(Debug)]
struct Documented {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
}

/// The metric tables and the bucket lists of docs/metrics.md.
fn read_contract() -> (Vec<Documented>, Vec<(String, Vec<f64>)>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let text = std::fs::read_to_string(path).expect("docs/metrics.md");
    let mut metrics = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | labels | meaning |
        if cells.len() < 5 || !cells[1].starts_with("`msgengine_") {
            continue;
        }
        let labels = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        metrics.push(Documented {
            name: cells[1].trim_matches('`').to_owned(),
            kind: cells[2].to_owned(),
            labels,
        });
    }
    let buckets_section = text.split("## Buckets").nth(1).expect("a Buckets section");
    let mut buckets = Vec::new();
    for item in buckets_section.split("\n- ").skip(1) {
        let (names, values) = item.split_once(':').expect("names: buckets");
        let values: Vec<f64> = values
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|v| v.trim_end_matches('.'))
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().expect("a bucket bound"))
            .collect();
        for name in names.split(',') {
            buckets.push((name.trim().trim_matches('`').to_owned(), values.clone()));
        }
    }
    (metrics, buckets)
}

/// One sample line of the exposition format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_exposition(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
            None => (head, BTreeMap::new()),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value: value.parse().expect("a sample value"),
        });
    }
    (samples, types)
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let end = after.find('"').expect("closing quote");
        out.insert(
            key.trim_start_matches(',').to_owned(),
            after[..end].to_owned(),
        );
        rest = &after[end + 1..];
    }
    out
}

/// The base metric a sample belongs to (histogram series end in _bucket, _sum, _count).
fn base_name<'a>(sample: &'a str, kind_of: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if kind_of.get(base).is_some_and(|k| k == "histogram") {
                return base;
            }
        }
    }
    sample
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "f00dfacef00dfacef00dfacef00dface";

/// X-Twilio-Signature, computed independently of the adapter.
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut text = url.to_owned();
    for (k, v) in sorted {
        text.push_str(k);
        text.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).expect("key");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn post_form(app: &TestApp, path: &str, params: &[(&str, &str)], sig: &str) -> u16 {
    app.http
        .post(format!("{}{path}", app.base))
        .form(params)
        .header("X-Twilio-Signature", sig)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// What the traffic below did, to compare with the counters.
#[derive(Default)]
struct Traffic {
    accepted_sms: u64,
    rate_limited_requests: u64,
    message_ids: Vec<String>,
    recipients: Vec<String>,
}

async fn send_ok(app: &TestApp, org: &helpers::Org, body: Value, t: &mut Traffic) -> String {
    let (status, answer) = app.send(org, &body).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().expect("id").to_owned();
    t.message_ids.push(id.clone());
    t.recipients
        .push(body["to"].as_str().expect("to").to_owned());
    id
}

/// Sandbox sends on three channels (ok, permanent failure, transient
/// failures), a signed Twilio delivery callback, forged and unknown
/// webhooks, an invalid send and 429s.
async fn make_traffic(app: &TestApp) -> (helpers::Org, Traffic) {
    let mut t = Traffic::default();
    let org = app.org("metrics").await;
    let sms = app
        .provider(&org, "sms", sandbox("sbx-sms", 0, 0.0, 0.0))
        .await;
    app.provider(&org, "email", sandbox("sbx-mail", 0, 0.0, 1.0))
        .await;
    app.provider(&org, "whatsapp", sandbox("sbx-wa", 0, 1.0, 0.0))
        .await;
    // The first send panics inside the provider actor, which is restarted.
    let sms_id = sms["id"].as_str().expect("id").parse().expect("uuid");
    for i in 0..5 {
        if i == 1 {
            assert!(app
                .engine
                .inject_provider_panic(msgengine_domain::ProviderId(sms_id)));
        }
        let to = format!("+23480312345{i:02}");
        send_ok(
            app,
            &org,
            json!({"channel": "sms", "to": to, "text": "hi"}),
            &mut t,
        )
        .await;
        t.accepted_sms += 1;
    }
    let mail = send_ok(
        app,
        &org,
        json!({"channel": "email", "to": "metrics-bounce@example.com",
        "subject": "s", "text": "t"}),
        &mut t,
    )
    .await;
    let wa = send_ok(
        app,
        &org,
        json!({"channel": "whatsapp", "to": "+2348031239999", "text": "hi"}),
        &mut t,
    )
    .await;
    app.wait_for(&org, &mail, &["failed"]).await;
    app.wait_for(&org, &wa, &["failed"]).await;

    // A refused (invalid) send.
    let (status, _) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "not-a-number", "text": "hi"}),
        )
        .await;
    assert_eq!(status, 422);

    // 429s from another organization with a tiny rate.
    let slow = app.org("slow").await;
    app.provider(&slow, "sms", sandbox("sbx", 0, 0.0, 0.0))
        .await;
    let res = app
        .admin(
            Method::PUT,
            &format!("/api/admin/organizations/{}/rate-limit", slow.id),
            Some(&json!({"messagesPerSecond": 1, "burst": 1})),
        )
        .await;
    assert_eq!(res.status(), 200);
    for _ in 0..4 {
        let to = "+2348031230001";
        let (status, answer) = app
            .send(&slow, &json!({"channel": "sms", "to": to, "text": "x"}))
            .await;
        match status {
            202 => {
                t.accepted_sms += 1;
                t.message_ids
                    .push(answer["id"].as_str().expect("id").to_owned());
            }
            429 => t.rate_limited_requests += 1,
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert!(t.rate_limited_requests >= 1);
    twilio_traffic(app, &org, &mut t).await;
    (org, t)
}

/// A Twilio SMS connection over wiremock: one message, a forged and a
/// signed delivery callback, the signed one replayed, and a callback to an
/// unknown connection.
async fn twilio_traffic(app: &TestApp, org: &helpers::Org, t: &mut Traffic) {
    let provider_api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json$",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "queued", "num_segments": "1"
        })))
        .mount(&provider_api)
        .await;
    // A second organization: its SMS goes through Twilio only.
    let tw_org = app.org("twilio").await;
    let p = app
        .provider(
            &tw_org,
            "sms",
            json!({"providerType": "TWILIO", "name": "tw",
            "senderId": "+15005550006", "baseUrl": provider_api.uri(),
            "credentials": {"accountSid": TWILIO_SID, "authToken": TWILIO_TOKEN}}),
        )
        .await;
    let pid = p["id"].as_str().expect("id");
    let id = send_ok(
        app,
        &tw_org,
        json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        t,
    )
    .await;
    t.accepted_sms += 1;
    app.wait_for(&tw_org, &id, &["sent"]).await;
    let path = format!("/api/webhooks/sms/{pid}");
    let url = format!("{}{path}", app.base);
    let params = [
        ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("MessageStatus", "delivered"),
        ("To", "+2348031234567"),
        ("AccountSid", TWILIO_SID),
    ];
    assert_eq!(post_form(app, &path, &params, "forged").await, 401);
    let good = twilio_signature(&url, &params);
    assert_eq!(post_form(app, &path, &params, &good).await, 200);
    assert_eq!(post_form(app, &path, &params, &good).await, 200);
    app.wait_for(&tw_org, &id, &["delivered"]).await;
    let unknown = format!("/api/webhooks/sms/{}", uuid::Uuid::new_v4());
    assert_eq!(post_form(app, &unknown, &params, &good).await, 404);
    let _ = org;
}

async fn scrape(app: &TestApp) -> String {
    let res = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(res.status(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    res.text().await.expect("body")
}

#[tokio::test]
async fn metrics_export_every_documented_series_with_its_labels_buckets_and_exact_counts() {
    let app = TestApp::spawn().await;
    let (org, traffic) = make_traffic(&app).await;
    app.drain().await;
    let text = scrape(&app).await;
    let (samples, types) = parse_exposition(&text);
    let (documented, buckets) = read_contract();
    assert!(
        documented.len() >= 30,
        "the tables of docs/metrics.md parse"
    );

    // Every documented metric is exported with its type and exactly its labels.
    for doc in &documented {
        assert_eq!(
            types.get(&doc.name),
            Some(&doc.kind),
            "{} is exported as a {}",
            doc.name,
            doc.kind
        );
        let series: Vec<&Sample> = samples
            .iter()
            .filter(|s| base_name(&s.name, &types) == doc.name)
            .collect();
        assert!(!series.is_empty(), "{} has samples", doc.name);
        for s in series {
            let keys: BTreeSet<String> = s.labels.keys().filter(|k| *k != "le").cloned().collect();
            assert_eq!(keys, doc.labels, "labels of {} ({s:?})", doc.name);
        }
    }
    // Nothing exported that the contract does not list.
    let names: BTreeSet<&str> = documented.iter().map(|d| d.name.as_str()).collect();
    for s in &samples {
        let base = base_name(&s.name, &types);
        assert!(names.contains(base), "{base} is not in docs/metrics.md");
    }

    // Histograms have exactly the documented buckets.
    for doc in documented.iter().filter(|d| d.kind == "histogram") {
        let expected = buckets
            .iter()
            .find(|(pattern, _)| match pattern.strip_prefix('*') {
                Some(suffix) => doc.name.ends_with(suffix),
                None => *pattern == doc.name,
            })
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("{} has documented buckets", doc.name));
        let bucket_name = format!("{}_bucket", doc.name);
        let first = samples
            .iter()
            .find(|s| s.name == bucket_name)
            .expect("bucket samples");
        let mut les: Vec<String> = samples
            .iter()
            .filter(|s| s.name == bucket_name)
            .filter(|s| {
                s.labels
                    .iter()
                    .filter(|(k, _)| *k != "le")
                    .eq(first.labels.iter().filter(|(k, _)| *k != "le"))
            })
            .map(|s| s.labels["le"].clone())
            .collect();
        assert_eq!(les.pop().as_deref(), Some("+Inf"), "{}", doc.name);
        let les: Vec<f64> = les.iter().map(|l| l.parse().expect("le")).collect();
        assert_eq!(les, expected, "buckets of {}", doc.name);
    }

    // Counters where the traffic makes them exact.
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(
        v("msgengine_messages_accepted_total", &[("channel", "sms")]),
        traffic.accepted_sms as f64
    );
    assert_eq!(
        v("msgengine_messages_accepted_total", &[("channel", "email")]),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_tenant_messages_accepted_total",
            &[("org", &org.id), ("channel", "sms")]
        ),
        5.0
    );
    assert_eq!(
        v(
            "msgengine_messages_sent_total",
            &[("channel", "sms"), ("provider", "sandbox")]
        ),
        traffic.accepted_sms as f64 - 1.0
    );
    assert_eq!(
        v(
            "msgengine_messages_delivered_total",
            &[("channel", "sms"), ("provider", "sandbox")]
        ),
        traffic.accepted_sms as f64 - 1.0
    );
    assert_eq!(
        v(
            "msgengine_messages_sent_total",
            &[("channel", "sms"), ("provider", "twilio_sms")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_messages_delivered_total",
            &[("channel", "sms"), ("provider", "twilio_sms")]
        ),
        1.0,
        "a delivery reported by webhook counts once, its replay not again"
    );
    assert_eq!(
        v(
            "msgengine_messages_failed_total",
            &[("channel", "email"), ("reason", "permanent")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_messages_failed_total",
            &[("channel", "whatsapp"), ("reason", "exhausted")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_provider_errors_total",
            &[("channel", "whatsapp"), ("class", "transient")]
        ),
        3.0
    );
    assert_eq!(
        v(
            "msgengine_retries_total",
            &[("channel", "whatsapp"), ("class", "transient")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "msgengine_messages_refused_total",
            &[("channel", "sms"), ("reason", "invalid")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_messages_refused_total",
            &[("channel", "sms"), ("reason", "rate_limited")]
        ),
        traffic.rate_limited_requests as f64
    );
    assert_eq!(
        v("msgengine_rate_limited_total", &[("scope", "tenant")]),
        traffic.rate_limited_requests as f64
    );
    assert_eq!(
        v(
            "msgengine_http_requests_total",
            &[("route", "/api/messaging/send"), ("status", "429")]
        ),
        traffic.rate_limited_requests as f64
    );
    assert_eq!(
        v(
            "msgengine_http_requests_total",
            &[("route", "/api/messaging/send"), ("status", "202")]
        ),
        traffic.message_ids.len() as f64
    );
    assert_eq!(
        v(
            "msgengine_webhooks_rejected_total",
            &[("channel", "sms"), ("reason", "signature")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_webhooks_rejected_total",
            &[("channel", "sms"), ("reason", "unknown_provider")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_webhooks_received_total",
            &[("provider", "twilio_sms")]
        ),
        2.0
    );
    assert_eq!(
        v("msgengine_webhook_events_total", &[("result", "applied")]),
        1.0
    );
    assert_eq!(
        v("msgengine_webhook_events_total", &[("result", "duplicate")]),
        1.0
    );
    assert_eq!(
        v(
            "msgengine_provider_request_duration_seconds_count",
            &[("channel", "sms"), ("outcome", "ok")]
        ),
        traffic.accepted_sms as f64
    );
    assert_eq!(
        v(
            "msgengine_message_send_latency_seconds_count",
            &[("channel", "sms")]
        ),
        traffic.accepted_sms as f64
    );
    assert_eq!(v("msgengine_build_info", &[]), 1.0);
    assert_eq!(
        v("msgengine_actor_restarts_total", &[("actor", "provider")]),
        1.0
    );
    assert_eq!(
        v("msgengine_actor_restarts_total", &[("actor", "router")]),
        0.0
    );
    assert!(v("msgengine_db_batch_rows_count", &[("writer", "accept")]) >= 1.0);
    assert!(v("msgengine_db_batch_rows_count", &[("writer", "status")]) >= 1.0);
    assert_eq!(
        v("msgengine_db_batch_rows_sum", &[("writer", "webhook")]),
        2.0
    );
    assert!(v("msgengine_db_pool_connections", &[("state", "max")]) >= 1.0);
    // Nothing was refused by the database, and no writer is failing.
    assert_eq!(v("msgengine_storage_rejected_total", &[]), 0.0);
    for writer in ["status", "webhook", "outbound"] {
        assert_eq!(v("msgengine_writer_failing", &[("writer", writer)]), 0.0);
    }

    // No label carries a message id or a recipient.
    for s in &samples {
        for value in s.labels.values() {
            assert!(
                !traffic.message_ids.contains(value) && !traffic.recipients.contains(value),
                "per-message label value in {s:?}"
            );
        }
    }
}

#[tokio::test]
async fn readyz_reports_the_database_and_the_actor_system() {
    let app = TestApp::spawn().await;
    let res = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let ok = json!({"state": "ok"});
    assert_eq!(
        body["checks"],
        json!({"database": "ok", "actors": "ok",
               "writers": {"status": ok, "webhook": ok, "outbound": ok}})
    );
    app.engine.shutdown(std::time::Duration::from_secs(1)).await;
    let res = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["checks"]["actors"], "stopped");
}

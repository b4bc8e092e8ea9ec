//! The harness end to end against a fake engine on loopback (wiremock):
//! open-model load, closed loop with 429 retries, completion check and
//! verdict.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use msgengine_loadtest::closed_loop::{self, ClosedLoopConfig};
use msgengine_loadtest::completion::{self, CompletionConfig};
use msgengine_loadtest::http::{Api, ClientOptions};
use msgengine_loadtest::open_loop::{self, OpenLoopConfig};
use msgengine_loadtest::payload::Channel;
use msgengine_loadtest::report::Report;
use msgengine_loadtest::schedule::OpenSchedule;
use msgengine_loadtest::target::Target;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Accepts sends with fresh ids, after answering the first `rate_limited`
/// requests with 429 `Retry-After: 0`.
struct FakeSend {
    next_id: AtomicU64,
    rate_limited: AtomicU64,
}

impl Respond for FakeSend {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let limited = self
            .rate_limited
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if limited {
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "0")
                .set_body_json(json!({"error": {"code": "rate_limited"}}));
        }
        let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
        let id = || format!("m-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let answer = match body.get("messages").and_then(Value::as_array) {
            Some(messages) => {
                let items: Vec<Value> = messages
                    .iter()
                    .map(|m| {
                        assert!(m["to"].as_str().is_some_and(|t| t.starts_with("+234803")));
                        json!({"id": id(), "status": "queued"})
                    })
                    .collect();
                json!({"messages": items})
            }
            None => json!({"id": id(), "status": "queued"}),
        };
        ResponseTemplate::new(202).set_body_json(answer)
    }
}

fn status_doc(state: &str, path: &[&str]) -> Value {
    let events: Vec<Value> = path
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"state": s, "at": format!("2030-01-01T00:00:0{i}Z"), "reason": null}))
        .collect();
    json!({"id": "x", "status": state, "attemptCount": 1, "attempts": [], "events": events})
}

async fn fake_engine(rate_limited: u64, status: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/messaging/send"))
        .respond_with(FakeSend {
            next_id: AtomicU64::new(0),
            rate_limited: AtomicU64::new(rate_limited),
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/messaging/status/m-[0-9]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(status))
        .mount(&server)
        .await;
    server
}

fn api(server: &MockServer) -> Arc<Api> {
    let target = Target::parse(&server.uri()).expect("loopback");
    let options = ClientOptions {
        pool_size: 64,
        request_timeout: Duration::from_secs(5),
    };
    Arc::new(Api::new(target, &options).expect("client"))
}

fn completion_config(drain_timeout: Duration) -> CompletionConfig {
    CompletionConfig {
        drain_timeout,
        poll_interval: Duration::from_millis(50),
        concurrency: 8,
        history_sample: 1000,
    }
}

#[tokio::test]
async fn open_model_run_passes_against_a_delivering_engine() {
    let delivered = status_doc(
        "delivered",
        &["accepted", "queued", "sending", "sent", "delivered"],
    );
    let server = fake_engine(0, delivered).await;
    let api = api(&server);
    let auth = Api::bearer("key").expect("header");
    let schedule = OpenSchedule::new(400.0, Duration::from_millis(500), 5).expect("schedule");
    let load = open_loop::run(
        Arc::clone(&api),
        auth.clone(),
        OpenLoopConfig {
            schedule,
            channel: Channel::Sms,
            max_in_flight: 64,
        },
    )
    .await;
    assert_eq!(load.summary.requests_sent, 40);
    assert_eq!(load.summary.messages_accepted, 200);
    assert_eq!(load.ids.len(), 200);
    assert!(load.summary.errors_by_kind.is_empty());
    assert_eq!(load.summary.accept_latency.count, 40);
    let accepted_in_series: u64 = load
        .summary
        .series
        .iter()
        .map(|s| s.accepted_messages)
        .sum();
    assert_eq!(accepted_in_series, 200);

    let summary = completion::drain(
        Arc::clone(&api),
        auth,
        Arc::new(load.ids),
        load.started_at,
        &completion_config(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(summary.delivered, 200);
    assert_eq!(summary.not_terminal, 0);
    assert_eq!(summary.duplicate_ids, 0);
    assert_eq!(summary.history_check.checked, 200);
    assert_eq!(summary.history_check.failed, 0);
    let report = Report::new(
        "run",
        json!({}),
        Some(400.0),
        load.summary,
        summary,
        true,
        Vec::new(),
    );
    assert_eq!(report.correctness.line, "CORRECTNESS: PASS");
    assert!(report.human().ends_with("CORRECTNESS: PASS\n"));
    let written = serde_json::to_value(&report).expect("serializes");
    assert_eq!(written["headline"]["acceptedMessages"], 200);
    assert_eq!(written["completion"]["terminalByState"]["delivered"], 200);
}

#[tokio::test]
async fn send_many_retries_429_and_counts_it() {
    let server = fake_engine(
        3,
        status_doc(
            "delivered",
            &["accepted", "queued", "sending", "sent", "delivered"],
        ),
    )
    .await;
    let api = api(&server);
    let load = closed_loop::run(
        Arc::clone(&api),
        Api::bearer("key").expect("header"),
        ClosedLoopConfig {
            count: 25,
            batch_size: 10,
            concurrency: 2,
            channel: Channel::Whatsapp,
            max_retries: 10,
        },
    )
    .await;
    assert_eq!(load.summary.messages_accepted, 25);
    assert_eq!(load.summary.messages_sent, 25);
    assert_eq!(load.summary.requests_sent, 3);
    assert_eq!(load.summary.messages_failed, 0);
    assert_eq!(load.summary.errors_by_kind["http_429_rate_limited"], 3);
    let mut ids = load.ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25);
}

#[tokio::test]
async fn messages_that_never_finish_fail_the_run_after_the_drain_timeout() {
    let server = fake_engine(0, status_doc("queued", &["accepted", "queued"])).await;
    let api = api(&server);
    let auth = Api::bearer("key").expect("header");
    let schedule = OpenSchedule::new(100.0, Duration::from_millis(100), 1).expect("schedule");
    let load = open_loop::run(
        Arc::clone(&api),
        auth.clone(),
        OpenLoopConfig {
            schedule,
            channel: Channel::Email,
            max_in_flight: 16,
        },
    )
    .await;
    assert_eq!(load.summary.messages_accepted, 10);
    let summary = completion::drain(
        Arc::clone(&api),
        auth,
        Arc::new(load.ids),
        load.started_at,
        &completion_config(Duration::from_millis(300)),
    )
    .await;
    assert!(summary.timed_out);
    assert_eq!(summary.not_terminal, 10);
    assert_eq!(summary.not_terminal_by_last_state["queued"], 10);
    let report = Report::new(
        "run",
        json!({}),
        Some(100.0),
        load.summary,
        summary,
        true,
        Vec::new(),
    );
    assert!(!report.correctness.pass);
    assert!(
        report
            .correctness
            .line
            .starts_with("CORRECTNESS: FAIL (10 of 10 accepted messages not terminal"),
        "{}",
        report.correctness.line
    );
}

#[tokio::test]
async fn a_dead_engine_is_reported_not_panicked_on() {
    // Bind and drop a listener: the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let target = Target::parse(&format!("http://127.0.0.1:{port}")).expect("loopback");
    let api = Arc::new(
        Api::new(
            target,
            &ClientOptions {
                pool_size: 4,
                request_timeout: Duration::from_secs(2),
            },
        )
        .expect("client"),
    );
    let load = open_loop::run(
        api,
        Api::bearer("key").expect("header"),
        OpenLoopConfig {
            schedule: OpenSchedule::new(50.0, Duration::from_millis(100), 1).expect("schedule"),
            channel: Channel::Sms,
            max_in_flight: 8,
        },
    )
    .await;
    assert_eq!(load.summary.messages_accepted, 0);
    assert_eq!(load.summary.errors_by_kind.get("connect"), Some(&5));
}

//! The harness end to end against a fake engine on loopback (wiremock):
//! open-model load, closed loop with 429, 5xx and transport retries under
//! idempotency keys (engine restart), completion check and verdict.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
            retry_deadline: Duration::from_secs(120),
        },
    )
    .await;
    assert_eq!(load.summary.messages_accepted, 25);
    assert_eq!(load.summary.messages_sent, 25);
    assert_eq!(load.summary.requests_sent, 3);
    assert_eq!(load.summary.messages_failed, 0);
    assert_eq!(load.summary.errors_by_kind["http_429_rate_limited"], 3);
    assert_eq!(load.summary.retries.total, 3);
    assert_eq!(load.summary.retries.http_429, 3);
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

/// An engine honouring `Idempotency-Key` like the real one: a repeated key
/// with the same body gets the first 202 again with `Idempotent-Replayed:
/// true` and creates nothing. The first attempt of batch `i` fails by
/// `i % 3`: 0 answers 503 (nothing created), 1 creates the messages but
/// answers too late for the client (a lost answer), 2 succeeds.
/// What the fake engine created for a key: the request body and the ids.
type Created = HashMap<String, (Vec<u8>, Vec<String>)>;

#[derive(Default)]
struct IdempotentSend {
    next_id: AtomicU64,
    /// Key -> (body, ids) of what was created.
    created: Mutex<Created>,
    /// Every attempt: (key, body).
    attempts: Mutex<Vec<(String, Vec<u8>)>>,
    late_answer: Duration,
}

impl IdempotentSend {
    fn answer(ids: &[String]) -> Value {
        json!({"messages": ids.iter().map(|id| json!({"id": id, "status": "queued"})).collect::<Vec<_>>()})
    }
}

/// The responder mounted on the fake engine, sharing its state with the test.
struct Shared(Arc<IdempotentSend>);

impl Respond for Shared {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Some(key) = request
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return ResponseTemplate::new(400);
        };
        let body = request.body.clone();
        let first = {
            let mut attempts = self.0.attempts.lock().expect("lock");
            let first = !attempts.iter().any(|(k, _)| *k == key);
            attempts.push((key.clone(), body.clone()));
            first
        };
        let mut created = self.0.created.lock().expect("lock");
        if let Some((original, ids)) = created.get(&key) {
            if *original != body {
                return ResponseTemplate::new(422);
            }
            return ResponseTemplate::new(202)
                .insert_header("Idempotent-Replayed", "true")
                .set_body_json(IdempotentSend::answer(ids));
        }
        let batch: u64 = key
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("key ends in the batch index");
        if first && batch % 3 == 0 {
            return ResponseTemplate::new(503)
                .set_body_json(json!({"error": {"code": "unavailable"}}));
        }
        let parsed: Value = serde_json::from_slice(&body).expect("JSON body");
        let n = parsed["messages"].as_array().expect("a batch").len();
        let ids: Vec<String> = (0..n)
            .map(|_| format!("m-{}", self.0.next_id.fetch_add(1, Ordering::SeqCst)))
            .collect();
        created.insert(key, (body, ids.clone()));
        let answer = ResponseTemplate::new(202).set_body_json(IdempotentSend::answer(&ids));
        if first && batch % 3 == 1 {
            answer.set_delay(self.0.late_answer)
        } else {
            answer
        }
    }
}

async fn mount_idempotent_engine(server: &MockServer, send: &Arc<IdempotentSend>) {
    Mock::given(method("POST"))
        .and(path("/api/messaging/send"))
        .respond_with(Shared(Arc::clone(send)))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/messaging/status/m-[0-9]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(status_doc(
            "delivered",
            &["accepted", "queued", "sending", "sent", "delivered"],
        )))
        .mount(server)
        .await;
}

fn api_with_timeout(uri: &str, request_timeout: Duration) -> Arc<Api> {
    let target = Target::parse(uri).expect("loopback");
    let options = ClientOptions {
        pool_size: 16,
        request_timeout,
    };
    Arc::new(Api::new(target, &options).expect("client"))
}

#[tokio::test]
async fn send_many_retries_5xx_and_lost_answers_under_the_same_key_and_body() {
    let server = MockServer::start().await;
    let send = Arc::new(IdempotentSend {
        late_answer: Duration::from_millis(1500),
        ..IdempotentSend::default()
    });
    mount_idempotent_engine(&server, &send).await;
    let api = api_with_timeout(&server.uri(), Duration::from_millis(500));
    let auth = Api::bearer("key").expect("header");
    // 7 batches: 0, 3, 6 answer 503 first; 1, 4 lose their first answer.
    let load = closed_loop::run_with_id(
        Arc::clone(&api),
        auth.clone(),
        ClosedLoopConfig {
            count: 65,
            batch_size: 10,
            concurrency: 3,
            channel: Channel::Sms,
            max_retries: 5,
            retry_deadline: Duration::from_secs(30),
        },
        "test",
    )
    .await;

    let attempts = send.attempts.lock().expect("lock").clone();
    for batch in 0..7u64 {
        let key = format!("load-test-{batch}");
        let mine: Vec<&Vec<u8>> = attempts
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, b)| b)
            .collect();
        let expected = if batch % 3 == 2 { 1 } else { 2 };
        assert_eq!(mine.len(), expected, "attempts of {key}");
        assert!(
            mine.iter().all(|b| *b == mine[0]),
            "{key} retried with another body"
        );
    }
    assert_eq!(attempts.len(), 12);
    assert_eq!(send.created.lock().expect("lock").len(), 7);
    assert_eq!(
        send.next_id.load(Ordering::SeqCst),
        65,
        "nothing created twice"
    );

    let s = &load.summary;
    assert_eq!(s.messages_sent, 65);
    assert_eq!(s.messages_accepted, 65);
    assert_eq!(s.messages_failed, 0);
    assert_eq!((s.requests_sent, s.requests_accepted), (7, 7));
    assert_eq!(s.retries.total, 5);
    assert_eq!(s.retries.http_5xx, 3);
    assert_eq!(s.retries.transport, 2);
    assert_eq!(s.errors_by_kind["http_503"], 3);
    assert_eq!(s.errors_by_kind["timeout"], 2);
    assert_eq!(s.idempotent_replays, 2);
    assert_eq!(s.replayed_ids_already_recorded, 0);
    let mut ids = load.ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!((load.ids.len(), ids.len()), (65, 65));

    let completion = completion::drain(
        Arc::clone(&api),
        auth,
        Arc::new(load.ids),
        load.started_at,
        &completion_config(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(completion.duplicate_ids, 0);
    assert_eq!(completion.delivered, 65);
    let report = Report::new(
        "send-many",
        json!({}),
        None,
        load.summary,
        completion,
        true,
        Vec::new(),
    );
    assert_eq!(report.correctness.line, "CORRECTNESS: PASS");
    assert!(
        report
            .human()
            .contains("retries           5 (transport 2, 5xx 3, 429 0); idempotent replays 2\n"),
        "{}",
        report.human()
    );
}

#[tokio::test]
async fn send_many_survives_an_engine_that_is_down_then_restarts() {
    // The engine's port, closed for now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let uri = format!("http://127.0.0.1:{port}");
    let send = Arc::new(IdempotentSend {
        late_answer: Duration::from_millis(1500),
        ..IdempotentSend::default()
    });
    let api = api_with_timeout(&uri, Duration::from_millis(500));
    let load = tokio::spawn(closed_loop::run_with_id(
        Arc::clone(&api),
        Api::bearer("key").expect("header"),
        ClosedLoopConfig {
            count: 30,
            batch_size: 10,
            concurrency: 3,
            channel: Channel::Email,
            max_retries: 100,
            retry_deadline: Duration::from_secs(30),
        },
        "restart",
    ));
    // Down for a while: every batch's first attempts fail to connect.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port again");
    let server = MockServer::builder().listener(listener).start().await;
    mount_idempotent_engine(&server, &send).await;
    let load = load.await.expect("the run");

    let s = &load.summary;
    assert_eq!(s.messages_accepted, 30);
    assert_eq!(s.messages_failed, 0);
    assert!(s.errors_by_kind["connect"] >= 3, "{:?}", s.errors_by_kind);
    assert!(s.retries.transport >= 3, "{:?}", s.retries);
    // Once up: batch 0 gets a 503, batch 1 a lost answer then a replay.
    assert_eq!(s.retries.http_5xx, 1);
    assert_eq!(s.idempotent_replays, 1);
    assert_eq!(
        send.next_id.load(Ordering::SeqCst),
        30,
        "nothing created twice"
    );
    let mut ids = load.ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!((load.ids.len(), ids.len()), (30, 30));
}

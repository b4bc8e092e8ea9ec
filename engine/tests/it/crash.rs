//! Crash safety with the real binary over a database that outlives it:
//! SIGKILL in the middle of a load, restart, and every accepted message still
//! reaches a terminal state; SIGTERM drains and gives the leases back.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use msgengine_storage::crypto::KeyRing;
use msgengine_testkit::TestDb;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "crash-admin-token-0123456789abcdef0123456789";

struct Engine {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start(db: &TestDb, keys: &str) -> Engine {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_msgengine"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &db.conninfo)
        .env("MSGENGINE_ADMIN_TOKEN", ADMIN)
        .env("MSGENGINE_MASTER_KEYS", keys)
        // Renewals run every lease/3 and an attempt starts only with a third of its lease
        // left. With 5 s leases a renewal that lags ~3 s behind on a loaded 2-core
        // machine lets the node's own scheduler re-claim (and re-send, fenced) work it
        // still holds: seen once in a full-suite run (docs/security.md, "not
        // guaranteed"). 10 s leaves that slack while the restart still waits briefly.
        .env("MSGENGINE__ENGINE__LEASE_SECS", "10")
        .env("MSGENGINE__ENGINE__DRAIN_SECS", "10")
        // The provider is a wiremock on 127.0.0.1, which the default
        // public-only address policy refuses.
        .env("MSGENGINE__ENGINE__OUTBOUND_LOOPBACK_ONLY", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawns msgengine");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(res) = reqwest::get(format!("{base}/readyz")).await {
            if res.status() == 200 {
                return Engine { child, base };
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("engine not ready");
}

fn signal(engine: &Engine, sig: Signal) {
    let pid = Pid::from_raw(engine.child.id().expect("running").try_into().expect("pid"));
    kill(pid, sig).expect("signal");
}

/// A Twilio-shaped provider on loopback that answers after `delay`.
async fn provider(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_delay(delay)
                .set_body_json(json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "num_segments": "1"})),
        )
        .mount(&server)
        .await;
    server
}

async fn setup(base: &str, provider_uri: &str) -> String {
    let http = reqwest::Client::new();
    let org: Value = http
        .post(format!("{base}/api/admin/organizations"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "crash"}))
        .send()
        .await
        .expect("org")
        .json()
        .await
        .expect("json");
    let id = org["id"].as_str().expect("id");
    let key: Value = http
        .post(format!("{base}/api/admin/organizations/{id}/api-keys"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let key = key["key"].as_str().expect("key").to_owned();
    let res = http
        .post(format!("{base}/api/sms/providers"))
        .bearer_auth(&key)
        .json(&json!({"providerType": "TWILIO", "name": "tw", "senderId": "+14155238886", "baseUrl": provider_uri,
                      "credentials": {"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "token-0123456789abcdef"}}))
        .send()
        .await
        .expect("provider");
    assert_eq!(res.status(), 201);
    key
}

/// Sends batches of 50 from `workers` concurrent loops until stopped; returns accepted ids.
async fn load(base: String, key: String, workers: usize, stop_after: Duration) -> Vec<String> {
    let http = reqwest::Client::new();
    let until = Instant::now() + stop_after;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut n = 0u32;
            while Instant::now() < until {
                let messages: Vec<Value> = (0..50)
                    .map(|i| json!({"channel": "sms", "to": "+2348031234567", "text": format!("w{w} n{n} i{i}")}))
                    .collect();
                n += 1;
                let Ok(res) = http
                    .post(format!("{base}/api/messaging/send"))
                    .bearer_auth(&key)
                    .json(&json!({"messages": messages}))
                    .send()
                    .await
                else {
                    break; // the engine died: what was not answered 202 was not accepted
                };
                if res.status() != 202 {
                    break;
                }
                let Ok(body) = res.json::<Value>().await else { break };
                for m in body["messages"].as_array().into_iter().flatten() {
                    if let Some(id) = m["id"].as_str() {
                        ids.push(id.to_owned());
                    }
                }
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

async fn wait_all_terminal(db: &TestDb, ids: &[String]) -> HashMap<String, String> {
    let client = db.pool.get().await.expect("connection");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = client
            .query(
                "SELECT id::text, state FROM messages WHERE id::text = ANY($1)",
                &[&ids],
            )
            .await
            .expect("query");
        let states: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let open = states
            .values()
            .filter(|s| matches!(s.as_str(), "scheduled" | "accepted" | "queued" | "sending"))
            .count();
        if states.len() == ids.len() && open == 0 {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {} accepted messages unfinished",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Receipts per idempotency token (our message id) at the provider.
async fn receipts(server: &MockServer) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for req in server.received_requests().await.unwrap_or_default() {
        if let Some(token) = req
            .headers
            .get("I-Twilio-Idempotency-Token")
            .and_then(|v| v.to_str().ok())
        {
            *counts.entry(token.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn sigkill_mid_load_then_restart_loses_no_accepted_message() {
    let db = TestDb::new().await;
    let keys = KeyRing::generate_entry("crash1");
    let server = provider(Duration::from_millis(20)).await;
    let engine = start(&db, &keys).await;
    let key = setup(&engine.base, &server.uri()).await;

    let loaded_at = Instant::now();
    let loader = tokio::spawn(load(
        engine.base.clone(),
        key.clone(),
        4,
        Duration::from_secs(30),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&engine, Signal::SIGKILL);
    let accepted = loader.await.expect("loader");
    assert!(
        accepted.len() >= 100,
        "enough load before the kill: {}",
        accepted.len()
    );
    let before_restart = receipts(&server).await.len();
    let load_secs = loaded_at.elapsed().as_secs_f64();

    let _engine = start(&db, &keys).await;
    let states = wait_all_terminal(&db, &accepted).await;
    let not_sent: Vec<_> = states
        .iter()
        .filter(|(_, s)| s.as_str() != "sent")
        .collect();
    assert!(
        not_sent.is_empty(),
        "every accepted message was sent: {not_sent:?}"
    );

    let counts = receipts(&server).await;
    let missing = accepted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .count();
    assert_eq!(missing, 0, "every accepted message reached the provider");
    // A message in flight at the kill may be sent again after the restart; it
    // carries the same idempotency token, so the provider delivers it once.
    let resent = counts.values().filter(|n| **n > 1).count();
    eprintln!(
        "accepted {}, provider saw {} before restart, {} distinct after; {} re-sent with the same token",
        accepted.len(),
        before_restart,
        counts.len(),
        resent
    );
    // What can be sent but not yet recorded at the kill: the calls in flight
    // (provider_concurrency, 256) and the outcomes of finished calls still in
    // the status writer, which gathers for up to writer_linger (10 ms) and
    // then commits: at the measured send rate, 50 ms of outcomes (at least
    // 64). A restart that re-sent everything would be thousands.
    let rate = before_restart as f64 / load_secs.max(0.1);
    let recorded_late = ((rate * 0.05) as usize).max(64);
    assert!(
        resent <= 256 + recorded_late,
        "re-sends bounded by what can be in flight: {resent} > 256 + {recorded_late} \
         (send rate {rate:.0}/s)"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_sends_and_releases_leases() {
    let db = TestDb::new().await;
    let keys = KeyRing::generate_entry("drain1");
    let server = provider(Duration::from_millis(50)).await;
    let mut engine = start(&db, &keys).await;
    let key = setup(&engine.base, &server.uri()).await;
    let accepted = load(
        engine.base.clone(),
        key.clone(),
        2,
        Duration::from_millis(800),
    )
    .await;
    signal(&engine, Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(40), engine.child.wait())
        .await
        .expect("exits within the drain deadline")
        .expect("status");
    assert!(status.success(), "{status}");
    let client = db.pool.get().await.expect("connection");
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM messages WHERE lease_owner IS NOT NULL AND state IN ('queued','sending','scheduled','accepted')",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(held, 0, "no lease left behind");
    drop(client);
    // Whatever was not finished before the stop is finished by the next start.
    let _engine = start(&db, &keys).await;
    let states = wait_all_terminal(&db, &accepted).await;
    assert!(states.values().all(|s| s == "sent"));
}

//! One tenant cannot hurt another through the shared background writers:
//! a status batch holding a row the database refuses, a provider answering
//! text that cannot be stored, an outbound endpoint that is disabled or slow,
//! a pile of unmatched provider events, and a writer that cannot reach the
//! database (reported by `/readyz`, nothing dropped).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use msgengine_actors::writer::{OutcomeWriter, WriterSettings};
use msgengine_domain::lifecycle::{self, Outcome};
use msgengine_domain::message::{Attempt, AttemptOutcome, MessageEvent, MessageState};
use msgengine_domain::{MessageId, OrganizationId, ProviderId};

use msgengine_storage::crypto::KeyRing;
use msgengine_storage::repo::messages::OutcomeRow;
use msgengine_storage::repo::org_webhooks::{self, ClaimLimits, EndpointChange};
use msgengine_storage::repo::organizations;
use msgengine_storage::repo::webhook_events::{self, EventRow, LateLimits};
use msgengine_testkit::TestDb;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{sandbox, status_json, Org, TestApp};

type Client = msgengine_storage::driver::deadpool_postgres::Object;

/// Polls `check` every 50 ms until it holds (bounded: 30 s, then fails with `what`).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` messages of `org` in flight (`sending`, leased for an hour to a node
/// that does not exist, so no scheduler touches them).
async fn insert_sending(client: &Client, org: Uuid, n: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    client
        .execute(
            "INSERT INTO messages (id, organization_id, channel, state, recipient, next_attempt_at,
                                   lease_owner, lease_until)
             SELECT id, $2, 'sms', 'sending', '+2348031234567', now(), $3, now() + interval '1 hour'
               FROM unnest($1::uuid[]) AS id",
            &[&ids, &org, &Uuid::new_v4()],
        )
        .await
        .expect("insert messages");
    ids
}

/// A final outcome for message `id` whose event carries `reason`.
fn outcome(id: Uuid, state: MessageState, reason: &str) -> OutcomeRow {
    let event = MessageEvent::new(state, Utc::now()).with_reason(reason);
    let attempt = Attempt {
        number: 1,
        provider_id: ProviderId(Uuid::nil()),
        started_at: Utc::now(),
        finished_at: Utc::now(),
        outcome: AttemptOutcome::PermanentError,
        provider_message_id: None,
        error: Some(reason.to_owned()),
        error_class: None,
    };
    OutcomeRow {
        id: MessageId(id),
        outcome: Outcome {
            state,
            events: vec![event],
            attempts: vec![attempt],
            attempt_delta: 1,
            provider_id: None,
            provider_message_id: Some(format!("pm-{id}")),
            next_attempt_at: None,
            release_lease: true,
        },
        fence: None,
    }
}

/// `(state, events, attempts, lease_owner is set, provider_message_id)` of a message.
async fn message_row(client: &Client, id: Uuid) -> (String, Value, Value, bool, Option<String>) {
    let row = client
        .query_one(
            "SELECT state, events, attempts, lease_owner IS NOT NULL, provider_message_id
               FROM messages WHERE id = $1",
            &[&id],
        )
        .await
        .expect("message");
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

async fn new_org(client: &Client, name: &str) -> Uuid {
    let id = OrganizationId(Uuid::new_v4());
    organizations::insert(client, id, name)
        .await
        .expect("organization");
    id.0
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("count").get(0)
}

/// One status batch holds good outcomes of one organization, one of another
/// organization the database refuses (a NUL in its provider text), one that
/// even its `storage_rejected` replacement cannot be written for, and one
/// whose outbound notification the database refuses. The good ones are
/// written, the refused one ends `failed` with `storage_rejected` and no
/// provider text, the hopeless one is left to its lease, the statuses whose
/// notifications failed are written anyway, and the writer goes on with
/// later batches.
#[tokio::test]
async fn a_refused_outcome_fails_alone_and_the_writer_keeps_writing() {
    let db = TestDb::new().await;
    let client = db.pool.get().await.expect("connection");
    let good_org = new_org(&client, "good").await;
    let hostile_org = new_org(&client, "hostile").await;
    let ring = KeyRing::parse(&KeyRing::generate_entry("k1")).expect("ring");
    org_webhooks::put(
        &client,
        &ring,
        OrganizationId(good_org),
        &EndpointChange {
            url: "http://127.0.0.1:9/hook",
            secret: Some("whsec_test_0123456789abcdef"),
            enabled: true,
            events: None,
        },
    )
    .await
    .expect("endpoint");
    let good = insert_sending(&client, good_org, 20).await;
    let hostile = insert_sending(&client, hostile_org, 2).await;
    let (refused, hopeless) = (hostile[0], hostile[1]);
    client
        .batch_execute(&format!(
            "ALTER TABLE messages ADD CONSTRAINT test_refuses CHECK (id <> '{hopeless}' OR state <> 'failed');
             ALTER TABLE org_webhook_deliveries ADD CONSTRAINT test_refuses
                 CHECK (payload->>'reason' IS DISTINCT FROM 'refuse-notification')"
        ))
        .await
        .expect("constraints");

    let writer = OutcomeWriter::start(
        &tokio::runtime::Handle::current(),
        db.pool.clone(),
        WriterSettings {
            shards: 1,
            max_batch: 5000,
            linger: std::time::Duration::ZERO,
            leases: std::sync::Arc::new(msgengine_actors::lease::HeldLeases::new(
                Uuid::new_v4(),
                std::time::Duration::from_secs(60),
            )),
        },
    );
    let mut rows: Vec<OutcomeRow> = good
        .iter()
        .map(|id| outcome(*id, MessageState::Delivered, "delivered"))
        .collect();
    rows[7] = outcome(good[7], MessageState::Delivered, "refuse-notification");
    for id in [refused, hopeless] {
        let mut bad = outcome(id, MessageState::Failed, "provider said bad\u{0}thing");
        bad.outcome.provider_message_id = Some("pm\u{0}x".into());
        rows.insert(10, bad);
    }
    for row in rows {
        writer.submit(row).await;
    }
    assert!(writer.flush(Duration::from_secs(60)).await, "batch written");
    assert_eq!(writer.health().failing_for(), None);

    for id in &good {
        let (state, events, attempts, leased, _) = message_row(&client, *id).await;
        assert_eq!(state, "delivered", "{id}");
        assert_eq!(events.as_array().map(Vec::len), Some(1));
        assert_eq!(attempts.as_array().map(Vec::len), Some(1));
        assert!(!leased);
    }
    let (state, events, attempts, leased, pmid) = message_row(&client, refused).await;
    assert_eq!(state, "failed");
    let reason = events[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("storage_rejected"), "{reason}");
    assert!(!reason.contains("bad"), "no provider text: {reason}");
    assert_eq!((attempts, leased, pmid), (json!([]), false, None));
    let (state, _, _, leased, _) = message_row(&client, hopeless).await;
    assert_eq!(
        (state.as_str(), leased),
        ("sending", true),
        "left to its lease"
    );
    // The notifications of the range holding the refused one were dropped
    // with it; the statuses were not.
    let notified = count(
        &client,
        "SELECT count(*) FROM org_webhook_deliveries WHERE payload->>'reason' = 'refuse-notification'",
    )
    .await;
    assert_eq!(notified, 0);

    // Later batches are written as usual, notifications included.
    let later = insert_sending(&client, good_org, 1).await[0];
    writer
        .submit(outcome(later, MessageState::Delivered, "later"))
        .await;
    assert!(writer.flush(Duration::from_secs(30)).await);
    assert_eq!(message_row(&client, later).await.0, "delivered");
    let later_notified = count(
        &client,
        &format!(
            "SELECT count(*) FROM org_webhook_deliveries WHERE payload->>'messageId' = '{later}'"
        ),
    )
    .await;
    assert_eq!(later_notified, 1);
}

/// The reported case: a provider connection whose API answers text the
/// database cannot store. Another organization's messages are all
/// delivered; the hostile one's message ends failed.
#[tokio::test]
async fn a_provider_answering_unstorable_text_does_not_stall_another_organizations_messages() {
    let provider_api = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            r#"{"code": 21211, "message": "bad\u0000thing", "status": 400}"#,
            "application/json",
        ))
        .mount(&provider_api)
        .await;
    let app = TestApp::spawn().await;
    let hostile = app.org("hostile").await;
    app.provider(
        &hostile,
        "sms",
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "baseUrl": provider_api.uri(),
               "credentials": {"accountSid": TWILIO_SID, "authToken": TWILIO_TOKEN}}),
    )
    .await;
    let steady = app.org("steady").await;
    app.provider(&steady, "sms", sandbox("sbx", 0, 0.0, 0.0))
        .await;
    let (status, body) = app
        .send(
            &hostile,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "x"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let poisoned = body["id"].as_str().expect("id").to_owned();
    let mut ids = Vec::new();
    for i in 0..100 {
        let to = format!("+234803123{i:04}");
        let (status, body) = app
            .send(&steady, &json!({"channel": "sms", "to": to, "text": "hi"}))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        app.wait_for(&steady, id, &["delivered"]).await;
    }
    app.wait_for(&hostile, &poisoned, &["failed"]).await;
}

async fn put_endpoint(app: &TestApp, org: &Org, body: Value) -> (u16, Value) {
    app.put_webhook_endpoint(org, body).await
}

async fn queue_test_event(app: &TestApp, org: &Org) {
    let res = app
        .call(
            Method::POST,
            "/api/webhook-endpoint/test",
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 202);
}

/// The reported case: an organization disables its endpoint and queues 40
/// test events. Another organization's event still goes out; the disabled
/// endpoint's deliveries stay queued, never claimed, and go out once it is
/// enabled again.
#[tokio::test]
async fn a_disabled_endpoints_backlog_does_not_hold_back_another_organizations_deliveries() {
    let app = TestApp::spawn().await;
    let (hostile_server, steady_server) = (MockServer::start().await, MockServer::start().await);
    for server in [&hostile_server, &steady_server] {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(server)
            .await;
    }
    let hostile = app.org("hostile").await;
    let hook = format!("{}/hook", hostile_server.uri());
    let (status, body) = put_endpoint(&app, &hostile, json!({"url": hook, "enabled": false})).await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..40 {
        queue_test_event(&app, &hostile).await;
    }
    let steady = app.org("steady").await;
    let (status, _) = put_endpoint(
        &app,
        &steady,
        json!({"url": format!("{}/hook", steady_server.uri())}),
    )
    .await;
    assert_eq!(status, 201);
    queue_test_event(&app, &steady).await;
    eventually("the steady organization's event is delivered", || async {
        !steady_server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    let untouched = app
        .query_count(&format!(
            "SELECT count(*) FROM org_webhook_deliveries WHERE organization_id = '{}'
                AND attempts = 0 AND delivered_at IS NULL AND failed_at IS NULL",
            hostile.id
        ))
        .await;
    assert_eq!(untouched, 40, "kept, never claimed");
    assert!(hostile_server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());

    let (status, _) = put_endpoint(&app, &hostile, json!({"url": hook, "enabled": true})).await;
    assert_eq!(status, 200);
    eventually("the re-enabled endpoint gets its backlog", || async {
        hostile_server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
            >= 40
    })
    .await;
}

/// An HTTP/1.1 server on loopback that counts the requests it holds and
/// answers each (with `status` and `body`) only once released.
struct HeldServer {
    url: String,
    held: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    max_held: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

impl HeldServer {
    async fn start(status: u16, body: &'static str) -> HeldServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (release, go) = watch::channel(false);
        let server = HeldServer {
            url,
            held: Arc::default(),
            received: Arc::default(),
            max_held: Arc::default(),
            release,
        };
        let (held, received, max_held) = (
            server.held.clone(),
            server.received.clone(),
            server.max_held.clone(),
        );
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let counters = (held.clone(), received.clone(), max_held.clone());
                tokio::spawn(serve(conn, go.clone(), counters, status, body));
            }
        });
        server
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    fn release(&self) {
        self.release.send_replace(true);
    }
}

type Counters = (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>);

async fn serve(
    mut conn: TcpStream,
    mut go: watch::Receiver<bool>,
    (held, received, max_held): Counters,
    status: u16,
    body: &'static str,
) {
    let mut buf = Vec::new();
    while read_request(&mut conn, &mut buf).await {
        received.fetch_add(1, Ordering::SeqCst);
        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
        max_held.fetch_max(now, Ordering::SeqCst);
        let mut probe = [0u8; 1];
        let released = tokio::select! {
            _ = go.wait_for(|released| *released) => true,
            // The client gave up (timeout) and closed the connection.
            _ = conn.read(&mut probe) => false,
        };
        held.fetch_sub(1, Ordering::SeqCst);
        if !released {
            return;
        }
        let response = format!(
            "HTTP/1.1 {status} Held\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request (headers and a `content-length` body) off `conn`.
async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return true;
            }
        }
        let mut chunk = [0u8; 8192];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An organization's endpoint that never answers holds its own few delivery
/// slots and no more; another organization's events go out meanwhile.
#[tokio::test]
async fn a_slow_endpoint_holds_only_its_own_slots() {
    let app = TestApp::spawn().await;
    let slow = HeldServer::start(200, "").await;
    let hostile = app.org("hostile").await;
    let (status, _) =
        put_endpoint(&app, &hostile, json!({"url": format!("{}/hook", slow.url)})).await;
    assert_eq!(status, 201);
    for _ in 0..40 {
        queue_test_event(&app, &hostile).await;
    }
    eventually("the slow endpoint holds its deliveries", || async {
        slow.received() >= msgengine_actors::outbound::PER_ENDPOINT
    })
    .await;

    let steady_server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&steady_server)
        .await;
    let steady = app.org("steady").await;
    let (status, _) = put_endpoint(
        &app,
        &steady,
        json!({"url": format!("{}/hook", steady_server.uri())}),
    )
    .await;
    assert_eq!(status, 201);
    for _ in 0..5 {
        queue_test_event(&app, &steady).await;
    }
    eventually("the steady organization's events are delivered", || async {
        steady_server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
            >= 5
    })
    .await;
    assert_eq!(
        slow.max_held.load(Ordering::SeqCst),
        msgengine_actors::outbound::PER_ENDPOINT,
        "the slow endpoint never had more than its own slots"
    );
    slow.release();
}

/// The claim itself: a quota per endpoint, endpoints at their cap on this
/// node skipped, disabled endpoints and inactive organizations left alone.
#[tokio::test]
async fn a_claim_takes_a_quota_per_endpoint_and_only_enabled_endpoints_of_active_organizations() {
    let db = TestDb::new().await;
    let client = db.pool.get().await.expect("connection");
    let ring = KeyRing::parse(&KeyRing::generate_entry("k1")).expect("ring");
    let mut endpoints = Vec::new();
    for (name, enabled) in [
        ("big", true),
        ("small", true),
        ("off", false),
        ("gone", true),
        ("full", true),
    ] {
        let org = new_org(&client, name).await;
        let (endpoint, _) = org_webhooks::put(
            &client,
            &ring,
            OrganizationId(org),
            &EndpointChange {
                url: "http://127.0.0.1:9/hook",
                secret: Some("whsec_test_0123456789abcdef"),
                enabled,
                events: None,
            },
        )
        .await
        .expect("endpoint");
        let n = if name == "big" { 100 } else { 3 };
        for _ in 0..n {
            org_webhooks::enqueue(&client, OrganizationId(org), Uuid::new_v4(), &json!({}))
                .await
                .expect("enqueue");
        }
        endpoints.push((name, org, endpoint.id));
    }
    let (_, gone_org, _) = endpoints[3];
    organizations::disable(&client, OrganizationId(gone_org))
        .await
        .expect("disable");
    let (_, _, full_endpoint) = endpoints[4];
    let claimed = org_webhooks::claim_due(
        &client,
        &ring,
        ClaimLimits {
            total: 32,
            per_endpoint: 4,
            endpoint_room: &[(full_endpoint, 0)],
        },
        60.0,
    )
    .await
    .expect("claim");
    let per = |i: usize| {
        claimed
            .iter()
            .filter(|d| d.endpoint_id == endpoints[i].2)
            .count()
    };
    assert_eq!(
        (per(0), per(1), per(2), per(3), per(4)),
        (4, 3, 0, 0, 0),
        "a quota each; disabled, inactive and full endpoints skipped"
    );
}

/// One organization's 1,500 unmatched events do not keep another's late
/// event from matching; events unmatched past the window are closed; an
/// opt-out naming no message is closed as it is recorded.
#[tokio::test]
async fn late_matching_is_per_organization_bounded_and_closes_old_events() {
    let db = TestDb::new().await;
    let mut client = db.pool.get().await.expect("connection");
    let hostile = new_org(&client, "hostile").await;
    let steady = new_org(&client, "steady").await;
    let provider = ProviderId(Uuid::new_v4());
    let junk: Vec<EventRow> = (0..1500)
        .map(|i| late_event(&format!("junk-{i}"), Some(&format!("nobody-{i}"))))
        .collect();
    let tx = client.transaction().await.expect("tx");
    let got = webhook_events::ingest(
        &tx,
        OrganizationId(hostile),
        provider,
        &junk,
        lifecycle::merge_reports,
    )
    .await
    .expect("ingest");
    assert_eq!(got.unmatched, 1500);
    let got = webhook_events::ingest(
        &tx,
        OrganizationId(steady),
        provider,
        &[late_event("late", Some("pm-late"))],
        lifecycle::merge_reports,
    )
    .await
    .expect("ingest");
    assert_eq!(got.unmatched, 1);
    let mut opt_out = late_event("stop", None);
    opt_out.suppress = Some("unsubscribe".into());
    webhook_events::ingest(
        &tx,
        OrganizationId(steady),
        provider,
        &[opt_out],
        lifecycle::merge_reports,
    )
    .await
    .expect("ingest");
    tx.commit().await.expect("commit");
    // The hostile organization's events are all older than the steady one's.
    client
        .execute(
            "UPDATE webhook_events SET received_at = received_at - interval '10 minutes'
              WHERE organization_id = $1",
            &[&hostile],
        )
        .await
        .expect("age");
    let closed_at_once = count(
        &client,
        "SELECT count(*) FROM webhook_events WHERE event_id = 'stop' AND closed_at IS NOT NULL",
    )
    .await;
    assert_eq!(closed_at_once, 1, "an event naming no message is closed");

    // The steady organization's message becomes known.
    let message = insert_sending(&client, steady, 1).await[0];
    client
        .execute(
            "UPDATE messages SET provider_id = $2, provider_message_id = 'pm-late' WHERE id = $1",
            &[&message, &provider.0],
        )
        .await
        .expect("known");
    let limits = LateLimits {
        window: chrono::Duration::hours(1),
        per_org: 100,
        total: 1000,
    };
    let round = run_round(&mut client, limits).await;
    assert_eq!((round.applied, round.closed), (1, 0));
    assert_eq!(message_row(&client, message).await.0, "delivered");

    // Past the window, the hostile organization's events are closed, a
    // bounded number per round.
    client
        .execute(
            "UPDATE webhook_events SET received_at = now() - interval '2 hours'
              WHERE organization_id = $1",
            &[&hostile],
        )
        .await
        .expect("age");
    let first = run_round(&mut client, limits).await;
    let second = run_round(&mut client, limits).await;
    assert_eq!((first.closed, second.closed), (1000, 500));
    let open = count(
        &client,
        "SELECT count(*) FROM webhook_events WHERE applied_at IS NULL AND closed_at IS NULL",
    )
    .await;
    assert_eq!(open, 0);
}

fn late_event(id: &str, pmid: Option<&str>) -> EventRow {
    EventRow {
        event_id: id.into(),
        provider_message_id: pmid.map(str::to_owned),
        message_id: None,
        state: Some(MessageState::Delivered),
        engagement: None,
        raw_status: "delivered".into(),
        recipient: Some("+2348031234567".into()),
        error_code: None,
        reason: None,
        suppress: None,
        occurred_at: Utc::now(),
    }
}

async fn run_round(client: &mut Client, limits: LateLimits) -> webhook_events::LateRound {
    let tx = client.transaction().await.expect("tx");
    let round = webhook_events::retry_unmatched(&tx, limits, lifecycle::merge_reports)
        .await
        .expect("round");
    tx.commit().await.expect("commit");
    round
}

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "f00dfacef00dfacef00dfacef00dface";

/// X-Twilio-Signature of a callback to this test's connection.
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    crate::helpers::twilio_signature(TWILIO_TOKEN, url, params)
}

/// A signed Twilio callback to `path`; its status and response.
async fn post_twilio(app: &TestApp, path: &str, params: &[(&str, &str)]) -> reqwest::Response {
    let url = format!("{}{path}", app.base);
    app.http
        .post(&url)
        .form(params)
        .header("X-Twilio-Signature", twilio_signature(&url, params))
        .send()
        .await
        .expect("request")
}

/// A Twilio connection of a new organization whose API is `base_url`.
async fn twilio_org(app: &TestApp, base_url: &str) -> (Org, String) {
    let org = app.org("twilio").await;
    let p = app
        .provider(
            &org,
            "sms",
            json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
                   "baseUrl": base_url,
                   "credentials": {"accountSid": TWILIO_SID, "authToken": TWILIO_TOKEN}}),
        )
        .await;
    let path = format!("/api/webhooks/sms/{}", p["id"].as_str().expect("id"));
    (org, path)
}

/// A STOP reply (no message of ours at all) puts the sender on the
/// suppression list and leaves no event in the late-matching scan; a
/// webhook carrying a value the database cannot store is a 4xx, never a 5xx
/// that would have the provider retry it, and a good one beside it is written.
#[tokio::test]
async fn address_level_events_suppress_without_a_message_and_unstorable_webhooks_are_4xx() {
    let app = TestApp::spawn().await;
    let (org, path) = twilio_org(&app, "http://127.0.0.1:9").await;
    let stop = [
        ("MessageSid", "SMcccccccccccccccccccccccccccccccc"),
        ("SmsStatus", "received"),
        ("From", "+2348031230077"),
        ("Body", "STOP"),
        ("AccountSid", TWILIO_SID),
    ];
    let res = post_twilio(&app, &path, &stop).await;
    assert_eq!(res.status(), 200);
    let res = app
        .call(
            Method::GET,
            "/api/suppressions/%2B2348031230077",
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(res.status(), 200, "suppressed without a matching message");
    let open = app
        .query_count(
            "SELECT count(*) FROM webhook_events WHERE closed_at IS NULL AND applied_at IS NULL",
        )
        .await;
    assert_eq!(open, 0, "nothing left for the late-matching scan");

    let bad = [
        ("MessageSid", "SMdd\u{0}dd"),
        ("MessageStatus", "delivered"),
        ("To", "+2348031234567"),
        ("AccountSid", TWILIO_SID),
    ];
    let good = [
        ("MessageSid", "SMeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
        ("MessageStatus", "delivered"),
        ("To", "+2348031234567"),
        ("AccountSid", TWILIO_SID),
    ];
    let (bad_res, good_res) = tokio::join!(
        post_twilio(&app, &path, &bad),
        post_twilio(&app, &path, &good)
    );
    // The edge cleans provider text before it becomes a row (the NUL is
    // escaped), so this webhook is stored; what matters is that it never
    // costs the good one its answer, and that no NUL reaches the table.
    let status = bad_res.status().as_u16();
    assert!(status < 500, "{status}");
    assert_eq!(good_res.status(), 200);
    let nul = app
        .query_count(
            "SELECT count(*) FROM webhook_events WHERE provider_message_id = 'SMdd\\u{0}dd'",
        )
        .await;
    assert!(status != 200 || nul == 1, "the NUL was escaped, not stored");
}

/// While the database refuses connections, the status writer holds its
/// outcome and `/readyz` names it failing; once the database is back the
/// outcome is written (not replaced) and the node is ready again.
#[tokio::test]
async fn readyz_reports_a_failing_writer_and_its_outcome_is_written_once_the_database_is_back() {
    let app = TestApp::spawn().await;
    let provider_api = HeldServer::start(
        201,
        r#"{"sid": "SMffffffffffffffffffffffffffffffff", "status": "queued", "num_segments": "1"}"#,
    )
    .await;
    let (org, _) = twilio_org(&app, &provider_api.url).await;
    let (status, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    eventually("the provider call is under way", || async {
        provider_api.received() == 1
    })
    .await;

    // Refuse connections and end the engine's, then let the provider answer.
    let admin = maintenance_connection(&app.db.conninfo).await;
    set_allow_connections(&admin, &app.db.name, false).await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&app.db.name],
        )
        .await
        .expect("terminate");
    provider_api.release();
    eventually("readyz names the status writer failing", || async {
        let (status, body) = status_json(app.call(Method::GET, "/readyz", None, None).await).await;
        status == 503 && body["checks"]["writers"]["status"]["state"] == "failing"
    })
    .await;
    set_allow_connections(&admin, &app.db.name, true).await;
    eventually("ready again", || async {
        app.call(Method::GET, "/readyz", None, None).await.status() == 200
    })
    .await;
    let done = app.wait_for(&org, &id, &["sent", "delivered"]).await;
    assert_eq!(
        done["providerMessageId"], "SMffffffffffffffffffffffffffffffff",
        "the outcome was kept, not replaced: {done}"
    );
}

/// A connection to the server's `postgres` database (a database cannot
/// refuse connections to itself from inside).
async fn maintenance_connection(conninfo: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = conninfo.parse().expect("conninfo");
    config.dbname("postgres");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("maintenance connection");
    tokio::spawn(connection);
    client
}

async fn set_allow_connections(client: &tokio_postgres::Client, database: &str, allow: bool) {
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS {allow}"
        ))
        .await
        .expect("alter database");
}

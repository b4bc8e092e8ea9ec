//! Exact ownership of in-flight work: fenced leases with two engines on one
//! database, jobs held in memory surviving an actor's retirement, route-load
//! failures, lifetimes counted from `sendAt`, and the checks dispatch makes
//! again (suppressions, disabled organizations); the scheduler's claim by
//! bytes and its fencing at the storage level.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use msgengine_domain::lifecycle::Claim;
use msgengine_domain::MessageId;
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::repo::messages::{self, LeaseFence, OutcomeRow};
use msgengine_testkit::TestDb;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{sandbox, status_json, Org, TestApp};

const TWILIO_PATH: &str = r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json$";

fn twilio(name: &str, base: &str) -> Value {
    json!({"providerType": "TWILIO", "name": name, "senderId": "+14155238886", "baseUrl": base,
           "credentials": {"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "token-0123456789abcdef"}})
}

fn twilio_ok() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "num_segments": "1"}))
}

/// A Twilio-shaped provider answering every send with `response`.
async fn provider_mock(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(TWILIO_PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// Requests per idempotency token (our message id) the provider received.
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

/// Another handle on the same test database (for a second engine).
fn same_db(db: &TestDb) -> TestDb {
    TestDb {
        name: db.name.clone(),
        conninfo: db.conninfo.clone(),
        pool: db.pool.clone(),
    }
}

/// Polls `check` until it holds (bounded: 60 s; no timed assert).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Messages of `ids` by state, read from the database.
async fn states(db: &TestDb, ids: &[String]) -> HashMap<String, String> {
    let client = db.pool.get().await.expect("connection");
    client
        .query(
            "SELECT id::text, state FROM messages WHERE id::text = ANY($1)",
            &[&ids],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn all_in(db: &TestDb, ids: &[String], wanted: &[&str]) -> bool {
    let now = states(db, ids).await;
    now.len() == ids.len() && now.values().all(|s| wanted.contains(&s.as_str()))
}

/// Every message of `ids` reached the provider exactly once and has one
/// recorded attempt.
async fn assert_each_sent_once(server: &MockServer, db: &TestDb, ids: &[String]) {
    let counts = receipts(server).await;
    for id in ids {
        assert_eq!(counts.get(id), Some(&1), "{id} reached the provider once");
    }
    assert_eq!(counts.len(), ids.len());
    let client = db.pool.get().await.expect("connection");
    let attempts: i64 = client
        .query_one(
            "SELECT count(*) FROM messages, jsonb_array_elements(attempts)
              WHERE id::text = ANY($1)",
            &[&ids],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(attempts, ids.len() as i64, "one recorded attempt each");
}

fn batch(n: usize, text: &str) -> Value {
    let messages: Vec<Value> = (0..n)
        .map(|i| json!({"channel": "sms", "to": "+2348031234567", "text": format!("{text} {i}")}))
        .collect();
    json!({"messages": messages})
}

fn ids_of(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_node_whose_renewals_lapse_stops_sending_and_every_message_is_sent_once() {
    let db = TestDb::new().await;
    let ring = KeyRing::generate_entry("lease1");
    // A sends 2 a second, so most of its batch is still queued when its
    // lease (6 s, never renewed) runs out; B claims what A gave up.
    let a = TestApp::spawn_configured(same_db(&db), ring.clone(), |s| {
        s.engine.lease_secs = 6;
        s.engine.provider_rate_per_second = 2;
    })
    .await;
    let b = TestApp::spawn_configured(db, ring, |s| s.engine.lease_secs = 6).await;
    let server = provider_mock(twilio_ok()).await;
    let org = a.org("acme").await;
    a.provider(&org, "sms", twilio("tw", &server.uri())).await;
    a.engine.pause_lease_renewal(true);

    let (status, body) = a.send(&org, &batch(24, "once")).await;
    assert_eq!(status, 202, "{body}");
    let ids = ids_of(&body);
    until("every message sent", || all_in(&b.db, &ids, &["sent"])).await;

    assert_each_sent_once(&server, &b.db, &ids).await;
    assert!(
        a.engine.leases_lost() >= 1,
        "A dropped the jobs whose lease it could no longer use"
    );
    assert_eq!(b.engine.leases_lost(), 0);
}

#[tokio::test]
async fn a_node_that_claims_its_own_lapsed_leases_does_not_send_twice() {
    // Renewals stop; every attempt is still in flight (the provider answers
    // after 8 s) when its 5 s lease runs out, and this node's own scheduler
    // claims the messages again. The jobs in flight go on under the new
    // leases: nothing is dispatched a second time, every outcome is written.
    let app = TestApp::spawn_with(|s| s.engine.lease_secs = 5).await;
    let server = provider_mock(twilio_ok().set_delay(Duration::from_secs(8))).await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", twilio("tw", &server.uri())).await;
    app.engine.pause_lease_renewal(true);

    let (status, body) = app.send(&org, &batch(6, "self")).await;
    assert_eq!(status, 202, "{body}");
    let ids = ids_of(&body);
    until("every message sent", || all_in(&app.db, &ids, &["sent"])).await;

    assert_each_sent_once(&server, &app.db, &ids).await;
    assert_eq!(
        app.engine.leases_lost(),
        0,
        "no outcome was dropped as stale"
    );
    let client = app.db.pool.get().await.expect("connection");
    let leased: i64 = client
        .query_one(
            "SELECT count(*) FROM messages WHERE id::text = ANY($1) AND lease_owner IS NOT NULL",
            &[&ids],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(leased, 0, "every lease released with its outcome");
}

#[tokio::test]
async fn a_stale_nodes_outcome_is_dropped_and_counted() {
    let db = TestDb::new().await;
    let ring = KeyRing::generate_entry("lease2");
    let a =
        TestApp::spawn_configured(same_db(&db), ring.clone(), |s| s.engine.lease_secs = 5).await;
    let b = TestApp::spawn_configured(db, ring, |s| s.engine.lease_secs = 5).await;
    // Slower than the lease: A's attempt is still under way when it expires.
    let server = provider_mock(twilio_ok().set_delay(Duration::from_secs(7))).await;
    let org = a.org("acme").await;
    a.provider(&org, "sms", twilio("tw", &server.uri())).await;
    // The organization's own webhook endpoint: only applied outcomes notify it.
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let endpoint = json!({"url": format!("{}/hook", receiver.uri())});
    let (status, created) = a.put_webhook_endpoint(&org, endpoint).await;
    assert_eq!(status, 201, "{created}");
    a.engine.pause_lease_renewal(true);
    // B claims the expired lease (A's own claim would adopt it instead: see
    // a_node_that_claims_its_own_lapsed_leases_does_not_send_twice).
    a.engine.pause_claims(true);

    let (status, body) = a
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "slow"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let client = b.db.pool.get().await.expect("connection");
    until("the expired lease is claimed again", || async {
        let row = client
            .query_one(
                "SELECT lease_token, lease_owner FROM messages WHERE id::text = $1",
                &[&id],
            )
            .await
            .expect("query");
        let (token, owner): (Option<i64>, Option<Uuid>) = (row.get(0), row.get(1));
        token.is_some_and(|t| t > messages::INSERT_LEASE_TOKEN) && owner == Some(b.engine.node_id())
    })
    .await;
    // Whoever holds the new claim renews it (A too, should it be A's).
    a.engine.pause_lease_renewal(false);
    until("the message is sent", || async {
        all_in(&b.db, std::slice::from_ref(&id), &["sent"]).await
    })
    .await;
    until("A's stale outcome is counted", || async {
        a.engine.leases_lost() >= 1
    })
    .await;

    let row = client
        .query_one(
            "SELECT jsonb_array_length(attempts), attempt_count, lease_owner IS NULL
               FROM messages WHERE id::text = $1",
            &[&id],
        )
        .await
        .expect("query");
    let (attempts, count, released): (i32, i32, bool) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (attempts, count),
        (1, 1),
        "only the current holder's outcome applied"
    );
    assert!(released, "the lease is released once, by its holder");
    assert_eq!(a.engine.leases_lost(), 1);
    // The provider saw the message twice, with one idempotency key.
    assert_eq!(receipts(&server).await.get(&id), Some(&2));
    // Only the holder's `sent` reached the organization's webhook queue.
    let notified: i64 = client
        .query_one(
            "SELECT count(*) FROM org_webhook_deliveries
              WHERE payload->>'messageId' = $1 AND payload->>'status' = 'sent'",
            &[&id],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(notified, 1, "the stale outcome queued no notification");
}

#[tokio::test]
async fn a_retired_provider_hands_its_waiting_retries_to_the_next_provider() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let limited = provider_mock(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "2")
            .set_body_json(json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
    )
    .await;
    let backup = provider_mock(twilio_ok()).await;
    let primary = app
        .provider(&org, "sms", twilio("primary", &limited.uri()))
        .await;
    app.provider(&org, "sms", twilio("backup", &backup.uri()))
        .await;
    let (_, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "x"}),
        )
        .await;
    let id = body["id"].as_str().expect("id").to_owned();
    until("the primary refused once", || async {
        !receipts(&limited).await.is_empty()
    })
    .await;
    // The retry now waits 2 s inside the primary's actor: retire it.
    let path = format!(
        "/api/sms/providers/{}",
        primary["id"].as_str().expect("provider id")
    );
    let (status, json) = status_json(
        app.call(
            Method::PUT,
            &path,
            Some(&org.key),
            Some(&json!({"isActive": false})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    let done = app.wait_for(&org, &id, &["sent", "failed"]).await;
    assert_eq!(done["status"], "sent", "{done}");
    let primary_saw = receipts(&limited).await;
    let backup_saw = receipts(&backup).await;
    assert_eq!(
        backup_saw.get(&id),
        Some(&1),
        "{done} primary {primary_saw:?} backup {backup_saw:?}"
    );
}

#[tokio::test]
async fn a_retry_waiting_in_a_provider_actor_survives_its_restart() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(TWILIO_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(
                    json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(TWILIO_PATH))
        .respond_with(twilio_ok())
        .with_priority(2)
        .mount(&server)
        .await;
    let provider = app.provider(&org, "sms", twilio("tw", &server.uri())).await;
    let provider_id: msgengine_domain::ProviderId =
        serde_json::from_value(provider["id"].clone()).expect("provider id");
    let (_, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "retry"}),
        )
        .await;
    let waiting = body["id"].as_str().expect("id").to_owned();
    until("the first attempt was refused", || async {
        !receipts(&server).await.is_empty()
    })
    .await;
    // Its retry now waits 2 s in the actor; the next send panics the actor.
    assert!(app.engine.inject_provider_panic(provider_id));
    let (_, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "boom"}),
        )
        .await;
    let boom = body["id"].as_str().expect("id").to_owned();
    for id in [&waiting, &boom] {
        let done = app.wait_for(&org, id, &["sent", "failed"]).await;
        assert_eq!(done["status"], "sent", "{done}");
    }
    let counts = receipts(&server).await;
    assert_eq!(counts.get(&waiting), Some(&2), "refused once, then sent");
}

/// A message row written straight to the database (unleased, due at
/// `next_attempt_at`).
async fn insert_message(
    db: &TestDb,
    org: &str,
    state: &str,
    created_at: DateTime<Utc>,
    send_at: Option<DateTime<Utc>>,
    body: &str,
) -> String {
    let id = MessageId::new().0;
    let org: Uuid = org.parse().expect("org id");
    let due = send_at.unwrap_or(created_at);
    let events =
        json!([{"state": "accepted", "at": created_at}, {"state": state, "at": created_at}]);
    let client = db.pool.get().await.expect("connection");
    client
        .execute(
            "INSERT INTO messages (id, organization_id, channel, state, recipient, body_text,
                                   send_at, next_attempt_at, events, created_at, updated_at)
             VALUES ($1, $2, 'sms', $3, '+2348031234567', $4, $5, $6, $7, $8, $8)",
            &[
                &id,
                &org,
                &state,
                &body,
                &send_at,
                &due,
                &events,
                &created_at,
            ],
        )
        .await
        .expect("insert message");
    id.to_string()
}

#[tokio::test]
async fn a_failed_route_load_leaves_messages_queued_for_a_later_try() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    app.engine.fail_route_loads(true);
    let id = insert_message(&app.db, &org.id, "queued", Utc::now(), None, "later").await;
    let client = app.db.pool.get().await.expect("connection");
    until("the message was claimed and put back", || async {
        client
            .query_one(
                "SELECT next_attempt_at > created_at + interval '2 seconds' AND lease_owner IS NULL
                   FROM messages WHERE id::text = $1",
                &[&id],
            )
            .await
            .expect("query")
            .get::<_, bool>(0)
    })
    .await;
    let (_, status) = app.status(&org, &id).await;
    assert_eq!(status["status"], "queued", "never failed: {status}");
    app.engine.fail_route_loads(false);
    let done = app.wait_for(&org, &id, &["delivered", "failed"]).await;
    assert_eq!(done["status"], "delivered", "{done}");
}

#[tokio::test]
async fn a_message_lives_from_its_send_at_not_from_its_creation() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let two_days_ago = Utc::now() - chrono::Duration::days(2);
    let due_now = Some(Utc::now() - chrono::Duration::minutes(1));
    // Accepted two days ago with sendAt two days ahead: due now, not expired.
    let scheduled = insert_message(&app.db, &org.id, "scheduled", two_days_ago, due_now, "s").await;
    // Accepted two days ago for at once and never sent: expired.
    let stale = insert_message(&app.db, &org.id, "queued", two_days_ago, None, "q").await;
    let done = app
        .wait_for(&org, &scheduled, &["delivered", "expired"])
        .await;
    assert_eq!(done["status"], "delivered", "{done}");
    let done = app.wait_for(&org, &stale, &["delivered", "expired"]).await;
    assert_eq!(done["status"], "expired", "{done}");
}

#[tokio::test]
async fn a_recipient_suppressed_after_scheduling_is_not_sent() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let server = provider_mock(twilio_ok()).await;
    app.provider(&org, "sms", twilio("tw", &server.uri())).await;
    let at = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (status, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "later", "sendAt": at}),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (202, Some("scheduled")));
    let id = body["id"].as_str().expect("id").to_owned();
    let res = app
        .call(
            Method::POST,
            "/api/suppressions",
            Some(&org.key),
            Some(&json!({"recipient": "+2348031234567", "reason": "unsubscribe"})),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    let done = app
        .wait_for(&org, &id, &["rejected", "sent", "failed"])
        .await;
    assert_eq!(done["status"], "rejected", "{done}");
    let reason = done["events"]
        .as_array()
        .and_then(|e| e.last())
        .map(|e| e["reason"].to_string())
        .unwrap_or_default();
    assert!(reason.contains("recipient_suppressed"), "{reason}");
    assert!(
        receipts(&server).await.is_empty(),
        "nothing reached the provider"
    );
}

async fn set_active(app: &TestApp, org: &Org, active: bool) {
    let verb = if active { "enable" } else { "disable" };
    let (status, body) = status_json(
        app.admin(
            Method::POST,
            &format!("/api/admin/organizations/{}/{verb}", org.id),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["isActive"], active);
}

#[tokio::test]
async fn a_disabled_organization_sends_nothing_until_it_is_enabled() {
    let app =
        TestApp::spawn_configured(TestDb::new().await, KeyRing::generate_entry("dis1"), |s| {
            s.engine.provider_rate_per_second = 2;
        })
        .await;
    let x = app.org("disabled").await;
    let y = app.org("neighbour").await;
    let server = provider_mock(twilio_ok()).await;
    app.provider(&x, "sms", twilio("tw", &server.uri())).await;
    app.provider(&y, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;

    // Queued in X's provider actor (2 a second) and scheduled for later.
    let (_, body) = app.send(&x, &batch(12, "queued")).await;
    let mut ids = ids_of(&body);
    let at = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (_, body) = app
        .send(
            &x,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "s", "sendAt": at}),
        )
        .await;
    ids.push(body["id"].as_str().expect("id").to_owned());
    set_active(&app, &x, false).await;

    let client = app.db.pool.get().await.expect("connection");
    until("X's waiting jobs are handed back", || async {
        client
            .query_one(
                "SELECT count(*) FROM messages WHERE id::text = ANY($1) AND lease_owner IS NOT NULL",
                &[&ids],
            )
            .await
            .expect("query")
            .get::<_, i64>(0)
            == 0
    })
    .await;
    let sent_before = receipts(&server).await.len();
    assert!(
        sent_before < 12,
        "the disable stopped the queue: {sent_before}"
    );
    // Y's message scheduled after X's is delivered: the scheduler has been
    // past X's sendAt, and X's messages were not claimed.
    let later = (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (_, body) = app
        .send(
            &y,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "y", "sendAt": later}),
        )
        .await;
    let y_id = body["id"].as_str().expect("id").to_owned();
    app.wait_for(&y, &y_id, &["delivered"]).await;
    assert_eq!(
        receipts(&server).await.len(),
        sent_before,
        "nothing sent while disabled"
    );
    let waiting = states(&app.db, &ids).await;
    assert!(
        waiting
            .values()
            .all(|s| ["queued", "scheduled", "sent"].contains(&s.as_str())),
        "{waiting:?}"
    );

    set_active(&app, &x, true).await;
    until("X's messages are all sent after the enable", || {
        all_in(&app.db, &ids, &["sent"])
    })
    .await;
    let counts = receipts(&server).await;
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "{id} sent once");
    }
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE organization_id::text = $1
                AND action IN ('organization.disable', 'organization.enable')",
            &[&x.id],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(audited, 2, "both changes are audited");
}

#[tokio::test]
async fn a_full_provider_queue_defers_to_the_database_and_loses_nothing() {
    let app =
        TestApp::spawn_configured(TestDb::new().await, KeyRing::generate_entry("cap1"), |s| {
            s.engine.provider_queue_cap = 4;
            s.engine.provider_rate_per_second = 10;
        })
        .await;
    let org = app.org("acme").await;
    app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let (status, body) = app.send(&org, &batch(30, "cap")).await;
    assert_eq!(status, 202, "{body}");
    let ids = ids_of(&body);
    // At most 4 stay in memory: the rest are given back, unleased.
    until("the overflow is back in the database", || async {
        app.query_count(
            "SELECT count(*) FROM messages WHERE state = 'queued' AND lease_owner IS NULL",
        )
        .await
            >= 20
    })
    .await;
    until("every message delivered", || {
        all_in(&app.db, &ids, &["delivered"])
    })
    .await;
}

#[tokio::test]
async fn past_its_memory_budget_a_node_stores_accepts_for_the_scheduler_and_loses_nothing() {
    // The node may hold 5 messages; a second organization's sends keep
    // moving while the first one's backlog fills that budget.
    let app = TestApp::spawn_with(|s| {
        s.engine.max_held_jobs = 5;
        s.engine.provider_rate_per_second = 20;
    })
    .await;
    let server = provider_mock(twilio_ok()).await;
    let (busy, quiet) = (app.org("busy").await, app.org("quiet").await);
    app.provider(&busy, "sms", twilio("tw", &server.uri()))
        .await;
    app.provider(&quiet, "sms", twilio("tw", &server.uri()))
        .await;
    let (status, body) = app.send(&busy, &batch(40, "bulk")).await;
    assert_eq!(status, 202, "{body}");
    let mut ids = ids_of(&body);
    // Past the budget the next accepts are stored unleased, for the claim.
    let (status, body) = app.send(&quiet, &batch(5, "quiet")).await;
    assert_eq!(status, 202, "{body}");
    let quiet_ids = ids_of(&body);
    let (status, body) = app.send(&busy, &batch(10, "more")).await;
    assert_eq!(status, 202, "{body}");
    ids.extend(ids_of(&body));
    let res = app.call(Method::GET, "/metrics", None, None).await;
    let metrics = res.text().await.expect("metrics page");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("msgengine_accept_spilled_total ") && !l.ends_with(" 0")),
        "spilled accepts are counted"
    );
    until("the quiet organization's messages sent", || {
        all_in(&app.db, &quiet_ids, &["sent"])
    })
    .await;
    ids.extend(quiet_ids);
    until("every message sent", || all_in(&app.db, &ids, &["sent"])).await;
    assert_each_sent_once(&server, &app.db, &ids).await;
}

// ---- the claim and the fences, at the storage level -------------------

async fn org_row(db: &TestDb, active: bool) -> Uuid {
    let client = db.pool.get().await.expect("connection");
    let org = msgengine_storage::repo::organizations::insert(
        &client,
        msgengine_domain::OrganizationId::new(),
        "claims",
    )
    .await
    .expect("org");
    if !active {
        msgengine_storage::repo::organizations::disable(&client, org.id)
            .await
            .expect("disable");
    }
    org.id.0
}

#[tokio::test]
async fn a_claim_stops_at_its_byte_budget_but_always_takes_one_message() {
    let db = TestDb::new().await;
    let org = org_row(&db, true).await.to_string();
    let mib = "x".repeat(1024 * 1024);
    let past = Utc::now() - chrono::Duration::seconds(10);
    let mut ids = Vec::new();
    for i in 0..5 {
        let at = past + chrono::Duration::milliseconds(i);
        ids.push(insert_message(&db, &org, "queued", at, None, &mib).await);
    }
    let disabled = org_row(&db, false).await.to_string();
    insert_message(&db, &disabled, "queued", past, None, "small").await;
    let client = db.pool.get().await.expect("connection");
    let owner = Uuid::new_v4();
    let until = Utc::now() + chrono::Duration::seconds(60);
    let client = &client;
    let claim = |max_bytes: i64| async move {
        let limits = messages::ClaimLimits {
            total: 100,
            per_org: 100,
            max_bytes,
        };
        messages::claim_due(client, owner, until, limits, &Claim::due(Utc::now()))
            .await
            .map(|c| c.messages)
    };

    let first = claim(5 * 1024 * 1024 / 2).await.expect("claim");
    assert_eq!(first.len(), 2, "two 1 MiB messages fit in 2.5 MiB");
    let mut claimed: Vec<String> = first.iter().map(|m| m.message.id.to_string()).collect();
    claimed.sort();
    let mut oldest = ids[..2].to_vec();
    oldest.sort();
    assert_eq!(claimed, oldest, "in next_attempt_at order");
    let second = claim(10).await.expect("claim");
    assert_eq!(second.len(), 1, "one message even over the budget");
    assert_ne!(
        first[0].lease_token, second[0].lease_token,
        "a new token per claim"
    );
    let rest = claim(i64::MAX).await.expect("claim");
    assert_eq!(rest.len(), 2, "the disabled organization's message stays");
    assert!(claim(i64::MAX).await.expect("claim").is_empty());
}

#[tokio::test]
async fn outcomes_and_renewals_apply_only_under_the_current_lease() {
    let db = TestDb::new().await;
    let org = org_row(&db, true).await.to_string();
    let past = Utc::now() - chrono::Duration::seconds(10);
    let id: Uuid = insert_message(&db, &org, "queued", past, None, "x")
        .await
        .parse()
        .expect("id");
    let client = db.pool.get().await.expect("connection");
    let owner = Uuid::new_v4();
    let expired = Utc::now() - chrono::Duration::seconds(1);
    // First claim, whose lease is already over; then a second claim.
    let limits = messages::ClaimLimits {
        total: 10,
        per_org: 10,
        max_bytes: i64::MAX,
    };
    let old = messages::claim_due(&client, owner, expired, limits, &Claim::due(Utc::now()))
        .await
        .expect("claim")
        .messages[0]
        .lease_token;
    let until = Utc::now() + chrono::Duration::seconds(60);
    let new = messages::claim_due(&client, owner, until, limits, &Claim::due(Utc::now()))
        .await
        .expect("claim")
        .messages[0]
        .lease_token;
    assert!(new > old);
    let sent = |token| OutcomeRow {
        id: msgengine_domain::MessageId(id),
        outcome: msgengine_domain::lifecycle::Outcome {
            state: msgengine_domain::message::MessageState::Sent,
            events: vec![msgengine_domain::message::MessageEvent::new(
                msgengine_domain::message::MessageState::Sent,
                Utc::now(),
            )],
            attempts: Vec::new(),
            attempt_delta: 0,
            provider_id: None,
            provider_message_id: None,
            next_attempt_at: None,
            release_lease: true,
        },
        fence: Some(LeaseFence { owner, token }),
    };
    let renewed = messages::renew_held(&client, owner, &[(id, old)], until)
        .await
        .expect("renew");
    assert!(renewed.is_empty(), "a lost lease is not renewed");
    let written = messages::apply_outcomes(&client, &[sent(old)])
        .await
        .expect("apply");
    assert_eq!(written, 0, "the stale outcome changes nothing");
    let other = OutcomeRow {
        fence: Some(LeaseFence {
            owner: Uuid::new_v4(),
            token: new,
        }),
        ..sent(new)
    };
    assert_eq!(
        messages::apply_outcomes(&client, &[other])
            .await
            .expect("apply"),
        0
    );
    let state: String = client
        .query_one("SELECT state FROM messages WHERE id = $1", &[&id])
        .await
        .expect("query")
        .get(0);
    assert_eq!(state, "queued");
    let renewed = messages::renew_held(&client, owner, &[(id, new)], until)
        .await
        .expect("renew");
    assert_eq!(renewed, [id]);
    let written = messages::apply_outcomes(&client, &[sent(new)])
        .await
        .expect("apply");
    assert_eq!(written, 1);
    let row = client
        .query_one(
            "SELECT state, lease_owner IS NULL AND lease_token IS NULL FROM messages WHERE id = $1",
            &[&id],
        )
        .await
        .expect("query");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        ("sent".to_owned(), true)
    );
}

#[tokio::test]
async fn one_tenants_due_backlog_cannot_hold_back_anothers_due_messages() {
    let db = TestDb::new().await;
    let hostile = org_row(&db, true).await;
    let victim = org_row(&db, true).await;
    let client = db.pool.get().await.expect("connection");
    // The hostile tenant's 5,000 retries have all been due for an hour; the
    // victim's 10 came due a second ago, so in due order they are last.
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    client
        .execute(
            "INSERT INTO messages (id, organization_id, channel, state, recipient, body_text,
                                   next_attempt_at, events)
             SELECT gen_random_uuid(), $1, 'sms', 'queued', '+2348031234567', 'retry',
                    $2::timestamptz + g * interval '1 ms', '[]'
               FROM generate_series(1, 5000) g",
            &[&hostile, &hour_ago],
        )
        .await
        .expect("hostile backlog");
    let mut victims = Vec::new();
    for _ in 0..10 {
        let due = Utc::now() - chrono::Duration::seconds(1);
        victims.push(insert_message(&db, &victim.to_string(), "queued", due, None, "hi").await);
    }
    let owner = Uuid::new_v4();
    let until = Utc::now() + chrono::Duration::seconds(60);
    let limits = messages::ClaimLimits {
        total: 2_000,
        per_org: 500,
        max_bytes: i64::MAX,
    };
    let claimed = messages::claim_due(&client, owner, until, limits, &Claim::due(Utc::now()))
        .await
        .expect("claim");
    let of = |org: Uuid| {
        claimed
            .messages
            .iter()
            .filter(|m| m.message.organization_id.0 == org)
            .count()
    };
    assert_eq!(
        of(victim),
        10,
        "every due message of the quiet tenant, at once"
    );
    assert_eq!(of(hostile), 500, "the backlog gets its quota, no more");
    assert!(claimed.saturated, "the backlog has more due: claim again");
    // Claimed again at once, the backlog keeps moving a quota per claim,
    // oldest first, and the claim says when nothing is left to hurry for.
    let mut taken = of(hostile);
    loop {
        let next = messages::claim_due(&client, owner, until, limits, &Claim::due(Utc::now()))
            .await
            .expect("claim");
        assert!(next
            .messages
            .iter()
            .all(|m| m.message.organization_id.0 == hostile));
        taken += next.messages.len();
        if !next.saturated {
            break;
        }
    }
    assert_eq!(taken, 5_000, "all of the backlog, none twice");
}

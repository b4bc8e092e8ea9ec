//! Provider events recorded through the webhook store: applied once, never
//! backwards, kept until their message is known. (Each provider's signature
//! scheme is tested in the providers crate; the HTTP route with a real
//! provider's signature is tested per provider type here as adapters land.)

use chrono::{Duration, Utc};
use msgengine_domain::lifecycle;
use msgengine_domain::message::MessageState;
use msgengine_domain::{OrganizationId, ProviderId};
use msgengine_storage::repo::webhook_events::{self, EventRow};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{sandbox, TestApp};

fn event(id: &str, pmid: &str, state: Option<MessageState>, secs: i64) -> EventRow {
    EventRow {
        event_id: id.into(),
        provider_message_id: Some(pmid.into()),
        message_id: None,
        state,
        engagement: None,
        raw_status: state.map_or("opened", MessageState::as_str).into(),
        recipient: Some("+2348031234567".into()),
        error_code: None,
        reason: None,
        suppress: None,
        occurred_at: Utc::now() + Duration::seconds(secs),
    }
}

#[tokio::test]
async fn events_apply_once_never_backwards_and_late_ones_wait_for_their_message() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let provider = app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let provider_id =
        ProviderId(Uuid::parse_str(provider["id"].as_str().expect("id")).expect("uuid"));
    let org_id = OrganizationId(Uuid::parse_str(&org.id).expect("uuid"));
    let (s, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
        )
        .await;
    assert_eq!(s, 202);
    let id = body["id"].as_str().expect("id").to_owned();
    let done = app.wait_for(&org, &id, &["delivered"]).await;
    let pmid = done["providerMessageId"]
        .as_str()
        .expect("provider message id")
        .to_owned();

    let mut client = app.db.pool.get().await.expect("connection");
    // "read" after delivered moves forward; a late "sent" does not move back.
    let tx = client.transaction().await.expect("tx");
    let got = webhook_events::ingest(
        &tx,
        org_id,
        provider_id,
        &[
            event("e1", &pmid, Some(MessageState::Read), 2),
            event("e2", &pmid, Some(MessageState::Sent), 1),
        ],
        lifecycle::merge_reports,
    )
    .await
    .expect("ingest");
    tx.commit().await.expect("commit");
    assert_eq!(
        (got.recorded, got.applied, got.duplicates, got.unmatched),
        (2, 2, 0, 0)
    );
    let (_, status) = app.status(&org, &id).await;
    assert_eq!(status["status"], "read");
    let events = status["events"].as_array().expect("events").len();

    // A replay changes nothing.
    let tx = client.transaction().await.expect("tx");
    let got = webhook_events::ingest(
        &tx,
        org_id,
        provider_id,
        &[event("e1", &pmid, Some(MessageState::Read), 2)],
        lifecycle::merge_reports,
    )
    .await
    .expect("ingest");
    tx.commit().await.expect("commit");
    assert_eq!((got.recorded, got.duplicates), (0, 1));
    let (_, again) = app.status(&org, &id).await;
    assert_eq!(again["events"].as_array().expect("events").len(), events);

    // Another organization cannot touch this message even with its ids.
    let other = app.org("other").await;
    let other_id = OrganizationId(Uuid::parse_str(&other.id).expect("uuid"));
    let tx = client.transaction().await.expect("tx");
    let mut foreign = event("x1", &pmid, Some(MessageState::Failed), 3);
    foreign.message_id = Some(Uuid::parse_str(&id).expect("uuid"));
    let got = webhook_events::ingest(
        &tx,
        other_id,
        provider_id,
        &[foreign],
        lifecycle::merge_reports,
    )
    .await
    .expect("ingest");
    tx.commit().await.expect("commit");
    assert_eq!(got.applied, 0);
    let (_, still) = app.status(&org, &id).await;
    assert_eq!(still["status"], "read");

    // An event for a provider id nobody knows yet is kept, then applied once
    // the id appears.
    let tx = client.transaction().await.expect("tx");
    let got = webhook_events::ingest(
        &tx,
        org_id,
        provider_id,
        &[event(
            "late",
            "sbx-not-yet",
            Some(MessageState::Delivered),
            0,
        )],
        lifecycle::merge_reports,
    )
    .await
    .expect("ingest");
    tx.commit().await.expect("commit");
    assert_eq!(got.unmatched, 1);
    let (s, body) = app
        .send(
            &org,
            &json!({"channel": "sms", "to": "+2348031234569", "text": "hi"}),
        )
        .await;
    assert_eq!(s, 202);
    let second = body["id"].as_str().expect("id").to_owned();
    app.wait_for(&org, &second, &["delivered"]).await;
    client
        .execute(
            "UPDATE messages SET provider_message_id = 'sbx-not-yet', state = 'sent' WHERE id = $1",
            &[&Uuid::parse_str(&second).expect("uuid")],
        )
        .await
        .expect("update");
    let tx = client.transaction().await.expect("tx");
    let limits = webhook_events::LateLimits {
        window: Duration::days(1),
        per_org: 100,
        total: 100,
    };
    let round = webhook_events::retry_unmatched(&tx, limits, lifecycle::merge_reports)
        .await
        .expect("retry");
    tx.commit().await.expect("commit");
    assert_eq!(round.applied, 1);
    let (_, late) = app.status(&org, &second).await;
    assert_eq!(late["status"], "delivered");
}

#[tokio::test]
async fn a_group_of_webhooks_is_written_at_once_and_each_answered_for_its_own_events() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let provider = app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let provider_id =
        ProviderId(Uuid::parse_str(provider["id"].as_str().expect("id")).expect("uuid"));
    let org_id = OrganizationId(Uuid::parse_str(&org.id).expect("uuid"));
    let other = app.org("other").await;
    let other_id = OrganizationId(Uuid::parse_str(&other.id).expect("uuid"));
    let mut sent = Vec::new();
    for to in ["+2348031234561", "+2348031234562", "+2348031234563"] {
        let (s, body) = app
            .send(&org, &json!({"channel": "sms", "to": to, "text": "hi"}))
            .await;
        assert_eq!(s, 202);
        let id = body["id"].as_str().expect("id").to_owned();
        let done = app.wait_for(&org, &id, &["delivered"]).await;
        let pmid = done["providerMessageId"].as_str().expect("pmid").to_owned();
        sent.push((id, pmid));
    }
    let uuid = |i: usize| Uuid::parse_str(&sent[i].0).expect("uuid");
    let mut by_our_id = event("g2", "ignored", Some(MessageState::Read), 1);
    by_our_id.provider_message_id = None;
    by_our_id.message_id = Some(uuid(1));
    let mut foreign = event("g5", "ignored", Some(MessageState::Failed), 1);
    foreign.provider_message_id = None;
    foreign.message_id = Some(uuid(0));
    let first = [
        event("g1", &sent[0].1, Some(MessageState::Read), 1),
        by_our_id,
    ];
    let second = [
        event("g1", &sent[0].1, Some(MessageState::Read), 1),
        event("g3", &sent[2].1, Some(MessageState::Read), 1),
        event(
            "g4",
            "nobody-knows-this-id",
            Some(MessageState::Delivered),
            1,
        ),
    ];
    let third = [foreign];
    let jobs = [
        webhook_events::IngestJob {
            org: org_id,
            provider: provider_id,
            events: &first,
        },
        webhook_events::IngestJob {
            org: org_id,
            provider: provider_id,
            events: &second,
        },
        webhook_events::IngestJob {
            org: other_id,
            provider: provider_id,
            events: &third,
        },
    ];
    let mut client = app.db.pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("tx");
    let got = webhook_events::ingest_many(&tx, &jobs, lifecycle::merge_reports)
        .await
        .expect("ingest");
    tx.commit().await.expect("commit");
    let counts: Vec<(usize, usize, usize, usize, usize)> = got
        .iter()
        .map(|g| {
            (
                g.recorded,
                g.duplicates,
                g.applied,
                g.unmatched,
                g.transitions.len(),
            )
        })
        .collect();
    // The event both webhooks carry is new for the first and a duplicate for
    // the second; another organization's event never reaches this message.
    assert_eq!(
        counts,
        vec![(2, 0, 2, 0, 2), (2, 1, 1, 1, 1), (1, 0, 0, 1, 0)]
    );
    for (id, _) in &sent {
        let (_, status) = app.status(&org, id).await;
        assert_eq!(status["status"], "read", "{status}");
        let reads = status["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["state"] == "read")
            .count();
        assert_eq!(reads, 1, "one read entry for {id}: {status}");
    }
    let applied = app
        .query_count(&format!(
            "SELECT count(*) FROM webhook_events WHERE applied_at IS NOT NULL
               AND event_id IN ('g1', 'g2', 'g3') AND provider_id = '{}'",
            provider_id.0
        ))
        .await;
    assert_eq!(applied, 3);
    let waiting = app
        .query_count(&format!(
            "SELECT count(*) FROM webhook_events WHERE applied_at IS NULL
               AND event_id IN ('g4', 'g5') AND provider_id = '{}'",
            provider_id.0
        ))
        .await;
    assert_eq!(waiting, 2);
    let matched = app
        .query_count(&format!(
            "SELECT count(*) FROM webhook_events WHERE event_id = 'g1' AND message_id = '{}'",
            sent[0].0
        ))
        .await;
    assert_eq!(matched, 1);
}

#[tokio::test]
async fn a_webhook_for_an_unknown_connection_or_a_type_without_webhooks_is_404() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let provider = app.provider(&org, "sms", sandbox("sbx", 0, 0.0, 0.0)).await;
    let id = provider["id"].as_str().expect("id");
    let res = app
        .call(
            Method::POST,
            &format!("/api/webhooks/sms/{}", Uuid::new_v4()),
            None,
            Some(&json!({})),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .call(
            Method::POST,
            &format!("/api/webhooks/email/{id}"),
            None,
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        res.status(),
        404,
        "an SMS connection is not an email webhook"
    );
    let res = app
        .call(
            Method::POST,
            &format!("/api/webhooks/sms/{id}"),
            None,
            Some(&json!({})),
        )
        .await;
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "webhooks_unsupported");
    let res = app
        .call(Method::POST, "/api/webhooks/fax/x", None, Some(&json!({})))
        .await;
    assert_eq!(res.status(), 404);
}

mod twilio {
    use reqwest::Method;
    use serde_json::{json, Value};
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::helpers::TestApp;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "f00dfacef00dfacef00dfacef00dface";

    /// X-Twilio-Signature computed here, independently of the adapter.
    fn signature(url: &str, params: &[(&str, &str)]) -> String {
        signature_with(TOKEN, url, params)
    }

    fn signature_with(token: &str, url: &str, params: &[(&str, &str)]) -> String {
        crate::helpers::twilio_signature(token, url, params)
    }

    async fn post(
        app: &TestApp,
        path: &str,
        params: &[(&str, &str)],
        sig: Option<&str>,
    ) -> (u16, Value) {
        let mut req = app.http.post(format!("{}{path}", app.base)).form(params);
        if let Some(sig) = sig {
            req = req.header("X-Twilio-Signature", sig);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn a_signed_twilio_callback_moves_the_message_forged_ones_are_refused_replays_ignored() {
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
        let app = TestApp::spawn().await;
        let org = app.org("acme").await;
        let p = app
            .provider(&org, "sms", json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
                "credentials": {"accountSid": SID, "authToken": TOKEN}, "baseUrl": provider_api.uri()}))
            .await;
        let pid = p["id"].as_str().expect("id");
        let (s, body) = app
            .send(
                &org,
                &json!({"channel": "sms", "to": "+2348031234567", "text": "hi"}),
            )
            .await;
        assert_eq!(s, 202, "{body}");
        let id = body["id"].as_str().expect("id");
        app.wait_for(&org, id, &["sent"]).await;

        let path = format!("/api/webhooks/sms/{pid}");
        let url = format!("{}{path}", app.base);
        let params = [
            ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("MessageStatus", "delivered"),
            ("To", "+2348031234567"),
            ("AccountSid", SID),
        ];
        // Forged: no signature, a signature over other params, a wrong key.
        let (s, body) = post(&app, &path, &params, None).await;
        assert_eq!(s, 401, "{body}");
        let tampered = signature(&url, &[("MessageStatus", "failed")]);
        let (s, _) = post(&app, &path, &params, Some(&tampered)).await;
        assert_eq!(s, 401);
        assert_eq!(
            app.query_count("SELECT count(*) FROM webhook_events").await,
            0
        );
        let (_, still) = app.status(&org, id).await;
        assert_eq!(still["status"], "sent");

        let good = signature(&url, &params);
        let (s, body) = post(&app, &path, &params, Some(&good)).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["applied"], 1);
        let (_, done) = app.status(&org, id).await;
        assert_eq!(done["status"], "delivered");
        // The same callback again: nothing changes.
        let (s, body) = post(&app, &path, &params, Some(&good)).await;
        assert_eq!(s, 200);
        assert_eq!(body["duplicates"], 1);
        let (_, again) = app.status(&org, id).await;
        assert_eq!(again["events"], done["events"]);

        // STOP (error 21610) on another message puts the number on the list.
        let stop = [
            ("MessageSid", "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            ("MessageStatus", "failed"),
            ("ErrorCode", "21610"),
            ("To", "+2348031234599"),
            ("AccountSid", SID),
        ];
        let (s, body) = post(&app, &path, &stop, Some(&signature(&url, &stop))).await;
        assert_eq!(s, 200, "{body}");
        let res = app
            .call(
                Method::GET,
                "/api/suppressions/%2B2348031234599",
                Some(&org.key),
                None,
            )
            .await;
        assert_eq!(res.status(), 200);
        let (s, body) = app
            .send(
                &org,
                &json!({"channel": "sms", "to": "+2348031234599", "text": "hi"}),
            )
            .await;
        assert_eq!(s, 422, "{body}");

        // The connection is cached for webhooks; a new auth token through the
        // API takes effect on the next callback, and so does a deletion.
        let read = [
            ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("MessageStatus", "read"),
            ("To", "+2348031234567"),
            ("AccountSid", SID),
        ];
        let new_token = "0123456789abcdef0123456789abcdef";
        let provider_path = format!("/api/sms/providers/{pid}");
        let res = app
            .call(
                Method::PUT,
                &provider_path,
                Some(&org.key),
                Some(&json!({"credentials": {"authToken": new_token}})),
            )
            .await;
        assert_eq!(res.status(), 200);
        let (s, _) = post(&app, &path, &read, Some(&signature(&url, &read))).await;
        assert_eq!(s, 401, "the old token no longer signs");
        let fresh = signature_with(new_token, &url, &read);
        let (s, body) = post(&app, &path, &read, Some(&fresh)).await;
        assert_eq!(s, 200, "{body}");
        let res = app
            .call(Method::DELETE, &provider_path, Some(&org.key), None)
            .await;
        assert_eq!(res.status(), 204);
        let (s, _) = post(&app, &path, &read, Some(&fresh)).await;
        assert_eq!(s, 404, "a deleted connection has no webhook");
    }
}

mod writer {
    use std::time::Duration;

    use msgengine_actors::inbound::{IngestError, WebhookWriter, WebhookWriterSettings};
    use msgengine_domain::{OrganizationId, ProviderId};
    use msgengine_storage::{connect_pool, PoolSettings};
    use uuid::Uuid;

    use super::event;
    use crate::helpers::TestApp;

    /// An organization, and a webhook writer with one worker whose one
    /// connection is held by the caller (the returned object) until dropped.
    async fn held_writer(
        app: &TestApp,
        settings: WebhookWriterSettings,
    ) -> (
        OrganizationId,
        WebhookWriter,
        msgengine_storage::driver::deadpool_postgres::Object,
    ) {
        let org = app.org("acme").await;
        let org_id = OrganizationId(Uuid::parse_str(&org.id).expect("uuid"));
        let pool = connect_pool(
            &app.db.conninfo,
            &PoolSettings {
                max_size: 1,
                wait_timeout_ms: 30_000,
                ..PoolSettings::default()
            },
        )
        .await
        .expect("pool");
        let held = pool.get().await.expect("connection");
        let writer = WebhookWriter::start(
            &tokio::runtime::Handle::current(),
            pool,
            WebhookWriterSettings {
                workers: 1,
                ..settings
            },
        );
        (org_id, writer, held)
    }

    /// Concurrent webhooks are written together; one the database refuses
    /// fails alone and the others are written.
    #[tokio::test]
    async fn concurrent_webhooks_share_a_transaction_and_a_bad_one_fails_alone() {
        let app = TestApp::spawn().await;
        let provider = ProviderId(Uuid::new_v4());
        // The writer's one connection is held here until all 40 are queued,
        // so the worker takes the first alone and the other 39 as one group.
        let (org_id, writer, held) = held_writer(&app, WebhookWriterSettings::default()).await;
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let mut e = event(&format!("w{i}"), &format!("pm{i}"), None, 0);
                    if i == 17 {
                        // The table's CHECK refuses this reason.
                        e.suppress = Some("not-a-reason".into());
                    }
                    writer
                        .ingest(
                            org_id,
                            provider,
                            vec![e],
                            Vec::new(),
                            Duration::from_secs(5),
                        )
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await.expect("task"));
        }
        for (i, r) in results.iter().enumerate() {
            match (i, r) {
                (17, Err(IngestError::Rejected(e))) => {
                    // Logged with the server's message and SQLSTATE, never
                    // the row's values.
                    let text = e.to_string();
                    assert!(
                        text.contains("check constraint") && text.contains("(23514)"),
                        "{text}"
                    );
                    assert!(!text.contains("not-a-reason"), "{text}");
                }
                (17, other) => panic!("the bad webhook was not refused: {other:?}"),
                (_, Ok(done)) => assert_eq!((done.recorded, done.unmatched), (1, 1)),
                (_, Err(e)) => panic!("webhook {i} failed with the bad one: {e}"),
            }
        }
        let stored = app
            .query_count(&format!(
                "SELECT count(*) FROM webhook_events WHERE provider_id = '{}'",
                provider.0
            ))
            .await;
        assert_eq!(stored, 39);
    }

    /// When the queue stays full for the whole wait, the caller hears Busy
    /// (the route answers 503 with Retry-After) instead of waiting on.
    #[tokio::test]
    async fn a_full_queue_answers_busy_after_the_wait() {
        let app = TestApp::spawn().await;
        let provider = ProviderId(Uuid::new_v4());
        // One connection, held here: the worker takes the first webhook and
        // waits for it; the second fills the queue of one.
        let (org_id, writer, held) = held_writer(
            &app,
            WebhookWriterSettings {
                workers: 1,
                max_events: 1,
                queue: 1,
            },
        )
        .await;
        let send = |n: usize| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .ingest(
                        org_id,
                        provider,
                        vec![event(&format!("b{n}"), "pm", None, 0)],
                        Vec::new(),
                        Duration::from_secs(30),
                    )
                    .await
            })
        };
        let first = send(1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = send(2);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let third = writer
            .ingest(
                org_id,
                provider,
                vec![event("b3", "pm", None, 0)],
                Vec::new(),
                Duration::from_millis(200),
            )
            .await;
        assert!(matches!(third, Err(IngestError::Busy)), "{third:?}");
        drop(held);
        for waiting in [first, second] {
            let done = waiting.await.expect("task").expect("written");
            assert_eq!(done.recorded, 1);
        }
    }
}

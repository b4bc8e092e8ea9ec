//! Provider events recorded through the webhook store: applied once, never
//! backwards, kept until their message is known. (Each provider's signature
//! scheme is tested in the providers crate; the HTTP route with a real
//! provider's signature is tested per provider type here as adapters land.)

use chrono::{Duration, Utc};
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
    let got = webhook_events::ingest(&tx, other_id, provider_id, &[foreign])
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
    let n = webhook_events::retry_unmatched(&tx, Duration::days(1), 100)
        .await
        .expect("retry");
    tx.commit().await.expect("commit");
    assert_eq!(n, 1);
    let (_, late) = app.status(&org, &second).await;
    assert_eq!(late["status"], "delivered");
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

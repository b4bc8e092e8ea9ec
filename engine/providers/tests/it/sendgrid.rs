//! SendGrid: the exact request with every extra, the receipt, failure
//! classification, the signed event webhook and its mapping, domain
//! authentication, stats, webhook setup and the connection test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use msgengine_domain::message::{Attachment, MessageExtras, MessageState};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::manage::DnsPurpose;
use msgengine_providers::registry::{email_admin_for, webhook_handler_for};
use msgengine_providers::reqwest::header::{HeaderMap, HeaderValue};
use msgengine_providers::webhook::{
    Engagement, InboundWebhook, SuppressionReason, WebhookError, WebhookEvent,
};
use msgengine_providers::{
    sender_for, Check, CheckStatus, FailureKind, ProviderError, ProviderRegistry, SendReceipt,
};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, header, only_request};

pub const API_KEY: &str = "SG.0123456789abcdef.0123456789abcdef0123456789abcdef";
pub const PATH: &str = "/v3/mail/send";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    spec_with(base_url, json!({}))
}

fn spec_with(base_url: &str, extra: Value) -> AnyProviderSpec {
    let mut object = json!({"providerType": "SENDGRID", "name": "sg", "apiKey": API_KEY,
                            "fromEmail": "ops@example.com", "fromName": "Acme Ops",
                            "baseUrl": base_url});
    if let (Some(o), Value::Object(extra)) = (object.as_object_mut(), extra) {
        o.extend(extra);
    }
    helpers::spec(Channel::Email, object)
}

fn accepted(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(202).insert_header("X-Message-Id", id)
}

#[tokio::test]
async fn sendgrid_send_posts_the_exact_json_and_returns_x_message_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(accepted("14c5d75ce93"))
        .expect(1)
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Email, "ada@example.org", "Hello Ada");
    message.subject = Some("Welcome".into());
    message.html = Some("<p>Hello Ada</p>".into());
    message.metadata = json!({"campaign": "spring", "order id": 42})
        .as_object()
        .cloned();

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-42").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "14c5d75ce93".into(),
            state: MessageState::Sent,
            segments: None,
        })
    );
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        format!("Bearer {API_KEY}")
    );
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-42");
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(
        body,
        json!({
            "personalizations": [{"to": [{"email": "ada@example.org"}]}],
            "from": {"email": "ops@example.com", "name": "Acme Ops"},
            "subject": "Welcome",
            "content": [{"type": "text/plain", "value": "Hello Ada"},
                        {"type": "text/html", "value": "<p>Hello Ada</p>"}],
            "headers": {"X-Msgengine-Idempotency-Key": "idem-42"},
            "custom_args": {"msgengine-id": message.id.to_string(), "campaign": "spring", "order_id": "42"}
        })
    );
}

#[tokio::test]
async fn sendgrid_sends_reply_to_headers_categories_and_attachments() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(accepted("x1"))
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Email, "ada@example.org", "Hi");
    message.from = Some("Billing <billing@example.com>".into());
    message.extras = Some(Box::new(MessageExtras {
        reply_to: Some("help@example.com".into()),
        headers: vec![("X-Campaign".into(), "spring".into())],
        tags: vec!["welcome".into(), "onboarding".into()],
        attachments: vec![Attachment {
            filename: "invoice.pdf".into(),
            content_type: "application/pdf".into(),
            content_base64: "JVBERi0xLjQK".into(),
        }],
        ..MessageExtras::default()
    }));

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    sender.send(&message, "k").await.expect("sent");

    let body: Value = serde_json::from_slice(&only_request(&server).await.body).expect("JSON");
    assert_eq!(
        body["from"],
        json!({"email": "billing@example.com", "name": "Billing"})
    );
    assert_eq!(body["reply_to"], json!({"email": "help@example.com"}));
    assert_eq!(
        body["headers"],
        json!({"X-Campaign": "spring", "X-Msgengine-Idempotency-Key": "k"})
    );
    assert_eq!(body["categories"], json!(["welcome", "onboarding"]));
    assert_eq!(
        body["attachments"],
        json!([{"content": "JVBERi0xLjQK", "type": "application/pdf",
                "filename": "invoice.pdf", "disposition": "attachment"}])
    );
}

// ---- failure classification ----

async fn refused_with(response: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    attempt(&server.uri()).await
}

async fn attempt(base_url: &str) -> ProviderError {
    let sender = sender_for(&spec(base_url), &helpers::client()).expect("supported");
    let message = helpers::message(Channel::Email, "ada@example.org", "Hi");
    let error = sender.send(&message, "k").await.expect_err("refused");
    assert_no_secret(&error, &[API_KEY]);
    error
}

#[tokio::test]
async fn sendgrid_failures_are_classified() {
    let error = refused_with(ResponseTemplate::new(400).set_body_json(json!({"errors": [
        {"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email", "help": "x"}]})))
    .await;
    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(
        error.message,
        "Does not contain a valid address. (field personalizations.0.to.0.email)"
    );

    let error = refused_with(ResponseTemplate::new(401).set_body_json(json!({"errors": [
        {"field": null, "message": "The provided authorization grant is invalid, expired, or revoked"}]})))
    .await;
    assert_eq!(
        (error.kind, error.http_status),
        (FailureKind::Permanent, Some(401))
    );

    let error = refused_with(ResponseTemplate::new(429).insert_header("Retry-After", "9")).await;
    assert_eq!(
        (error.kind, error.retry_after),
        (FailureKind::RateLimited, Some(Duration::from_secs(9)))
    );

    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 30;
    let error = refused_with(
        ResponseTemplate::new(429)
            .insert_header("X-RateLimit-Reset", reset.to_string().as_str())
            .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]})),
    )
    .await;
    assert_eq!(error.kind, FailureKind::RateLimited);
    let wait = error.retry_after.unwrap_or_default();
    assert!(
        (Duration::from_secs(25)..=Duration::from_secs(30)).contains(&wait),
        "{wait:?}"
    );

    for status in [500, 503] {
        assert_eq!(
            refused_with(ResponseTemplate::new(status)).await.kind,
            FailureKind::Transient
        );
    }
    // A 202 without X-Message-Id cannot be matched later: retried as transient.
    assert_eq!(
        refused_with(ResponseTemplate::new(202)).await.kind,
        FailureKind::Transient
    );
    let slow = ResponseTemplate::new(202).set_delay(Duration::from_secs(2));
    assert_eq!(refused_with(slow).await.kind, FailureKind::Timeout);
    let error = attempt(&helpers::refused_base_url()).await;
    assert_eq!(
        (error.kind, error.http_status),
        (FailureKind::Transient, None)
    );
    let echoed = format!("key {API_KEY} is not allowed");
    let error = refused_with(
        ResponseTemplate::new(403).set_body_json(json!({"errors": [{"message": echoed}]})),
    )
    .await;
    assert_eq!(error.message, "key *** is not allowed");
}

// ---- webhook ----

const NOW: i64 = 1_700_000_000;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).expect("valid time")
}

fn signing_key() -> SigningKey {
    SigningKey::random(&mut rand::rngs::OsRng)
}

/// The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo.
fn public_key_base64(key: &SigningKey) -> String {
    let der = p256::PublicKey::from(key.verifying_key())
        .to_public_key_der()
        .expect("encodable key");
    base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
}

/// Signs `timestamp || body` here, as SendGrid does.
fn signed_headers(key: &SigningKey, timestamp: i64, body: &[u8]) -> HeaderMap {
    let mut signed = timestamp.to_string().into_bytes();
    signed.extend_from_slice(body);
    let signature: Signature = key.sign(&signed);
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    let mut headers = HeaderMap::new();
    headers.insert(
        "X-Twilio-Email-Event-Webhook-Signature",
        HeaderValue::from_str(&encoded).expect("base64 is a header value"),
    );
    headers.insert(
        "X-Twilio-Email-Event-Webhook-Timestamp",
        HeaderValue::from_str(&timestamp.to_string()).expect("digits"),
    );
    headers
}

fn inbound<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "POST",
        url: "https://hooks.example.com/api/webhooks/email/p1",
        headers,
        query: "",
        body,
    }
}

fn events_body() -> Vec<u8> {
    json!([
        {"email": "ada@example.org", "timestamp": 1_699_999_990, "event": "delivered",
         "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "sg_event_id": "sg-ev-1",
         "sg_message_id": "14c5d75ce93.filterdrecv-p3las1-2.4.5.0", "msgengine-id": "msg-42",
         "response": "250 OK"},
        {"email": "gone@example.org", "timestamp": 1_699_999_991, "event": "bounce", "type": "bounce",
         "status": "5.1.1", "reason": "550 5.1.1 unknown user", "sg_event_id": "sg-ev-2",
         "sg_message_id": "14c5d75ce94.filter"}
    ])
    .to_string()
    .into_bytes()
}

#[test]
fn sendgrid_webhook_verifies_the_ecdsa_signature_and_parses_the_batch() {
    let key = signing_key();
    let spec = spec_with(
        "http://127.0.0.1:9",
        json!({"webhookSecret": public_key_base64(&key)}),
    );
    let handler = webhook_handler_for(&spec).expect("supported");
    let body = events_body();
    let headers = signed_headers(&key, NOW, &body);
    let request = inbound(&headers, &body);

    assert_eq!(handler.verify(&request, now()), Ok(()));
    let events = handler.parse(&request, now()).expect("parsed");
    assert_eq!(events.len(), 2);
    let delivered = &events[0];
    assert_eq!(delivered.event_id, "sg-ev-1");
    assert_eq!(delivered.state, Some(MessageState::Delivered));
    assert_eq!(
        delivered.provider_message_id.as_deref(),
        Some("14c5d75ce93")
    );
    assert_eq!(delivered.message_id.as_deref(), Some("msg-42"));
    assert_eq!(delivered.recipient.as_deref(), Some("ada@example.org"));
    assert_eq!(delivered.occurred_at.timestamp(), 1_699_999_990);
    let bounce = &events[1];
    assert_eq!(
        (bounce.state, bounce.suppress),
        (Some(MessageState::Bounced), Some(SuppressionReason::Bounce))
    );
    assert_eq!(bounce.error_code.as_deref(), Some("5.1.1"));
    assert_eq!(handler.parse(&request, now()).expect("replay"), events);
}

#[test]
fn sendgrid_webhook_refuses_tampering_wrong_keys_missing_signatures_and_stale_timestamps() {
    let key = signing_key();
    let spec = spec_with(
        "http://127.0.0.1:9",
        json!({"webhookSecret": public_key_base64(&key)}),
    );
    let handler = webhook_handler_for(&spec).expect("supported");
    let body = events_body();
    let unauthorized =
        |verdict: Result<(), WebhookError>| matches!(verdict, Err(WebhookError::Unauthorized(_)));

    let headers = signed_headers(&key, NOW, &body);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(unauthorized(
        handler.verify(&inbound(&headers, &tampered), now())
    ));

    let other = signed_headers(&signing_key(), NOW, &body);
    assert!(unauthorized(handler.verify(&inbound(&other, &body), now())));

    let mut moved = signed_headers(&key, NOW, &body);
    moved.insert(
        "X-Twilio-Email-Event-Webhook-Timestamp",
        HeaderValue::from_static("1700000001"),
    );
    assert!(unauthorized(handler.verify(&inbound(&moved, &body), now())));

    let none = HeaderMap::new();
    assert!(unauthorized(handler.verify(&inbound(&none, &body), now())));

    let stale = signed_headers(&key, NOW - 301, &body);
    assert!(matches!(
        handler.verify(&inbound(&stale, &body), now()),
        Err(WebhookError::Stale(_))
    ));

    let unconfigured =
        webhook_handler_for(&spec_with("http://127.0.0.1:9", json!({}))).expect("supported");
    assert!(unauthorized(
        unconfigured.verify(&inbound(&headers, &body), now())
    ));
    let garbage = spec_with(
        "http://127.0.0.1:9",
        json!({"webhookSecret": "not-a-public-key-at-all"}),
    );
    let garbage = webhook_handler_for(&garbage).expect("supported");
    assert!(unauthorized(
        garbage.verify(&inbound(&headers, &body), now())
    ));
}

fn parse_one(event: Value) -> WebhookEvent {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("supported");
    let body = json!([event]).to_string().into_bytes();
    let headers = HeaderMap::new();
    let mut events = handler
        .parse(&inbound(&headers, &body), now())
        .expect("parsed");
    events.remove(0)
}

#[test]
fn sendgrid_events_map_to_states_engagement_and_suppressions() {
    let blocked = parse_one(
        json!({"event": "bounce", "type": "blocked", "sg_event_id": "1", "reason": "spam block"}),
    );
    assert_eq!(
        (blocked.state, blocked.suppress),
        (Some(MessageState::Failed), None)
    );
    let dropped =
        parse_one(json!({"event": "dropped", "sg_event_id": "2", "reason": "Bounced Address"}));
    assert_eq!(
        (dropped.state, dropped.error_code.as_deref()),
        (Some(MessageState::Failed), Some("suppressed"))
    );
    let invalid = parse_one(json!({"event": "dropped", "sg_event_id": "3", "reason": "Invalid"}));
    assert_eq!(
        (invalid.state, invalid.error_code),
        (Some(MessageState::Failed), None)
    );
    let deferred = parse_one(
        json!({"event": "deferred", "sg_event_id": "4", "response": "400 try later", "attempt": "1"}),
    );
    assert_eq!(
        (deferred.state, deferred.engagement),
        (None, Some(Engagement::Deferred))
    );
    assert_eq!(deferred.reason.as_deref(), Some("400 try later"));
    assert_eq!(
        parse_one(json!({"event": "processed", "sg_event_id": "5"})).state,
        Some(MessageState::Sent)
    );
    for (raw, engagement, state, suppress) in [
        (
            "open",
            Engagement::Opened,
            Some(MessageState::Delivered),
            None,
        ),
        (
            "click",
            Engagement::Clicked,
            Some(MessageState::Delivered),
            None,
        ),
        (
            "spamreport",
            Engagement::Complained,
            None,
            Some(SuppressionReason::Complaint),
        ),
        (
            "unsubscribe",
            Engagement::Unsubscribed,
            None,
            Some(SuppressionReason::Unsubscribe),
        ),
        (
            "group_unsubscribe",
            Engagement::Unsubscribed,
            None,
            Some(SuppressionReason::Unsubscribe),
        ),
    ] {
        let event = parse_one(json!({"event": raw, "sg_event_id": raw}));
        assert_eq!(
            (event.engagement, event.state, event.suppress),
            (Some(engagement), state, suppress),
            "{raw}"
        );
    }
    // Without sg_event_id the id is derived, and stable.
    let a = parse_one(
        json!({"event": "delivered", "sg_message_id": "m.1", "timestamp": 5, "email": "a@b.c"}),
    );
    let b = parse_one(
        json!({"event": "delivered", "sg_message_id": "m.1", "timestamp": 5, "email": "a@b.c"}),
    );
    assert_eq!(a.event_id, b.event_id);
}

// ---- management ----

#[tokio::test]
async fn sendgrid_verify_domain_finds_the_authenticated_domain_and_validates_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/whitelabel/domains"))
        .and(query_param("domain", "example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "id": 302183, "domain": "example.com", "subdomain": "em1234", "valid": false,
            "dns": {
                "mail_cname": {"valid": false, "type": "cname", "host": "em1234.example.com", "data": "u1234.wl.sendgrid.net"},
                "dkim1": {"valid": false, "type": "cname", "host": "s1._domainkey.example.com", "data": "s1.domainkey.u1234.wl.sendgrid.net"},
                "dkim2": {"valid": false, "type": "cname", "host": "s2._domainkey.example.com", "data": "s2.domainkey.u1234.wl.sendgrid.net"}
            }}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/whitelabel/domains/302183/validate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 302183, "valid": false, "validation_results": {
                "mail_cname": {"valid": true, "reason": null},
                "dkim1": {"valid": true, "reason": null},
                "dkim2": {"valid": false, "reason": "Expected CNAME to match \"s2.domainkey.u1234.wl.sendgrid.net.\" but found none."}}})))
        .expect(1)
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let found = admin.verify_domain().await.expect("verified");

    assert_eq!(
        (found.domain.as_str(), found.verified),
        ("example.com", false)
    );
    let mut records: Vec<_> = found
        .records
        .iter()
        .map(|r| (r.name.as_str(), r.purpose, r.valid))
        .collect();
    records.sort_by_key(|r| r.0);
    assert_eq!(
        records,
        [
            ("em1234.example.com", DnsPurpose::ReturnPath, Some(true)),
            ("s1._domainkey.example.com", DnsPurpose::Dkim, Some(true)),
            ("s2._domainkey.example.com", DnsPurpose::Dkim, Some(false)),
        ]
    );
    let requests = server.received_requests().await.expect("recording");
    assert!(requests
        .iter()
        .all(|r| header(r, "authorization") == format!("Bearer {API_KEY}")));
}

#[tokio::test]
async fn sendgrid_verify_domain_says_when_the_domain_is_not_authenticated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/whitelabel/domains"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let error = admin.verify_domain().await.expect_err("not found");
    assert_eq!(error.code.as_deref(), Some("msgengine_not_found"));
    assert!(error.message.contains("example.com"), "{error}");
}

#[tokio::test]
async fn sendgrid_stats_are_global_stats_by_day() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/stats"))
        .and(query_param("start_date", "2024-01-01"))
        .and(query_param("end_date", "2024-01-07"))
        .and(query_param("aggregated_by", "day"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"date": "2024-01-01", "stats": [{"metrics": {"requests": 4, "delivered": 3, "bounces": 1, "opens": 2}}]}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let from = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
    let to = NaiveDate::from_ymd_opt(2024, 1, 7).expect("date");

    let stats = admin.stats(from, to).await.expect("stats");

    assert_eq!(
        (stats.accepted, stats.delivered, stats.bounced, stats.opened),
        (4, 3, 1, 2)
    );
    assert_eq!(stats.days.len(), 1);
}

async fn mount_webhook_settings(server: &MockServer, signed_key: &str) {
    Mock::given(method("PATCH"))
        .and(path("/v3/user/webhooks/event/settings"))
        .and(body_json(json!({
            "enabled": true, "url": "https://msgengine.example/hook",
            "processed": true, "delivered": true, "deferred": true, "dropped": true,
            "bounce": true, "open": true, "click": true, "spam_report": true,
            "unsubscribe": true, "group_unsubscribe": true, "group_resubscribe": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"enabled": true})))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/user/webhooks/event/settings/signed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"public_key": signed_key})))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn sendgrid_setup_webhooks_turns_every_event_on_and_checks_the_signing_key() {
    let key = public_key_base64(&signing_key());
    let server = MockServer::start().await;
    mount_webhook_settings(&server, &key).await;
    let configured = spec_with(&server.uri(), json!({"webhookSecret": key}));
    let admin = email_admin_for(&configured, &helpers::client()).expect("supported");
    admin
        .setup_webhooks("https://msgengine.example/hook")
        .await
        .expect("set up");

    let server = MockServer::start().await;
    mount_webhook_settings(&server, &key).await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let error = admin
        .setup_webhooks("https://msgengine.example/hook")
        .await
        .expect_err("no key");
    assert_eq!(
        error.code.as_deref(),
        Some("msgengine_webhook_key_mismatch")
    );
    assert!(
        error.message.contains(&key),
        "the public key to store is named: {error}"
    );
}

#[tokio::test]
async fn sendgrid_setup_webhooks_enables_signing_when_it_is_off() {
    let server = MockServer::start().await;
    mount_webhook_settings(&server, "").await;
    Mock::given(method("PATCH"))
        .and(path("/v3/user/webhooks/event/settings/signed"))
        .and(body_json(json!({"enabled": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"public_key": "MFkwNEW"})))
        .expect(1)
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let error = admin
        .setup_webhooks("https://msgengine.example/hook")
        .await
        .expect_err("new key");
    assert!(error.message.contains("MFkwNEW"), "{error}");
}

// ---- connection test ----

async fn probe(server: &MockServer, response: ResponseTemplate) -> Check {
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .respond_with(response)
        .mount(server)
        .await;
    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec(&server.uri()))
        .await;
    assert_eq!(report.checks[0].status, CheckStatus::Passed, "{report:?}");
    report.checks[1].clone()
}

#[tokio::test]
async fn sendgrid_probe_passes_when_the_key_may_send() {
    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"scopes": ["mail.send", "stats.read"]})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Passed, "{check:?}");
    assert_eq!(
        header(&only_request(&server).await, "authorization"),
        format!("Bearer {API_KEY}")
    );
}

#[tokio::test]
async fn sendgrid_probe_explains_missing_scopes_bad_keys_and_wrong_hosts() {
    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"scopes": ["stats.read"]})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Failed);
    assert!(check.message.contains("mail.send"), "{check:?}");

    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"errors": [{"field": null,
            "message": "The provided authorization grant is invalid, expired, or revoked"}]})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Failed);
    assert!(
        check.message.contains("refused the credentials"),
        "{check:?}"
    );
    assert!(
        check.message.contains("invalid, expired, or revoked"),
        "{check:?}"
    );

    let server = MockServer::start().await;
    let check = probe(&server, ResponseTemplate::new(404)).await;
    assert_eq!(check.status, CheckStatus::Failed);
    assert!(check.message.contains("check baseUrl"), "{check:?}");
}

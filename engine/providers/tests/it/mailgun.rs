//! Mailgun: the exact request with every extra, the receipt, the signed
//! webhook and its mapping, domain verification, stats, webhook setup and
//! the connection test.

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::{Attachment, MessageExtras, MessageState, OutboundMessage};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::manage::DnsPurpose;
use msgengine_providers::registry::{email_admin_for, webhook_handler_for};
use msgengine_providers::reqwest::header::HeaderMap;
use msgengine_providers::webhook::{
    Engagement, InboundWebhook, SuppressionReason, WebhookError, WebhookEvent,
};
use msgengine_providers::{
    sender_for, Check, CheckStatus, FailureKind, ProviderRegistry, SendReceipt,
};
use serde_json::json;
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, basic, form, header, only_request, pairs};

pub const API_KEY: &str = "key-0123456789abcdef0123456789abcdef";
pub const PATH: &str = "/v3/mg.example.com/messages";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Email,
        json!({"providerType": "MAILGUN", "name": "mg", "apiKey": API_KEY,
               "domain": "mg.example.com", "fromEmail": "ops@example.com",
               "fromName": "Acme Ops", "baseUrl": base_url}),
    )
}

#[tokio::test]
async fn mailgun_send_posts_the_exact_form_and_returns_the_bare_message_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(
            {"id": "<20240101120000.1.ABCDEF@mg.example.com>", "message": "Queued. Thank you."}
        )))
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
            provider_message_id: "20240101120000.1.ABCDEF@mg.example.com".into(),
            state: MessageState::Sent,
            segments: None,
        })
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), PATH);
    assert_eq!(header(&request, "authorization"), basic("api", API_KEY));
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-42");
    assert_eq!(header(&request, "user-agent"), "msgengine/0.1");
    let id = message.id.to_string();
    assert_eq!(
        form(&request),
        pairs(&[
            ("from", "Acme Ops <ops@example.com>"),
            ("to", "ada@example.org"),
            ("subject", "Welcome"),
            ("text", "Hello Ada"),
            ("html", "<p>Hello Ada</p>"),
            ("v:msgengine-id", &id),
            ("v:campaign", "spring"),
            ("v:order_id", "42"),
            ("h:X-Msgengine-Idempotency-Key", "idem-42"),
        ])
    );
}

#[tokio::test]
async fn mailgun_uses_the_message_sender_and_an_empty_subject_when_none() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "<x@y>"})))
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Email, "ada@example.org", "Hi");
    message.from = Some("Billing <billing@example.com>".into());

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "k").await.expect("sent");

    assert_eq!(receipt.provider_message_id, "x@y");
    let fields = form(&only_request(&server).await);
    assert_eq!(
        fields[0],
        ("from".into(), "Billing <billing@example.com>".into())
    );
    assert_eq!(fields[2], ("subject".into(), String::new()));
}

// ---- extras and attachments ----

/// One part of a multipart/form-data body: name, file name, content type, bytes.
type Part = (String, Option<String>, Option<String>, Vec<u8>);

/// The parts of a `multipart/form-data` request, parsed independently of
/// the adapter's writer.
fn multipart_parts(request: &wiremock::Request) -> Vec<Part> {
    let content_type = header(request, "content-type");
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a multipart boundary");
    let delimiter = format!("--{boundary}");
    let body = &request.body;
    let mut parts = Vec::new();
    let positions: Vec<usize> = body
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delimiter.len() + 2..pair[1] - 2];
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers end");
        let head = String::from_utf8(part[..split].to_vec()).expect("ascii headers");
        let value = |key: &str| {
            head.split(&format!("{key}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        };
        let part_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .map(str::to_owned);
        parts.push((
            value(" name").expect("a part name"),
            value("filename"),
            part_type,
            part[split + 4..].to_vec(),
        ));
    }
    assert!(body.ends_with(format!("{delimiter}--\r\n").as_bytes()));
    parts
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"id": "<m1@mg.example.com>", "message": "Queued. Thank you."}))
}

fn with_extras(extras: MessageExtras) -> OutboundMessage {
    let mut message = helpers::message(Channel::Email, "ada@example.org", "Hi");
    message.subject = Some("S".into());
    message.extras = Some(Box::new(extras));
    message
}

#[tokio::test]
async fn mailgun_sends_reply_to_headers_and_at_most_three_tags() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(accepted())
        .mount(&server)
        .await;
    let message = with_extras(MessageExtras {
        reply_to: Some("Support <help@example.com>".into()),
        headers: vec![("X-Campaign".into(), "spring".into())],
        tags: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        ..MessageExtras::default()
    });

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    sender.send(&message, "k").await.expect("sent");

    let id = message.id.to_string();
    assert_eq!(
        form(&only_request(&server).await),
        pairs(&[
            ("from", "Acme Ops <ops@example.com>"),
            ("to", "ada@example.org"),
            ("subject", "S"),
            ("text", "Hi"),
            ("h:Reply-To", "Support <help@example.com>"),
            ("h:X-Campaign", "spring"),
            ("o:tag", "a"),
            ("o:tag", "b"),
            ("o:tag", "c"),
            ("v:msgengine-id", &id),
            ("h:X-Msgengine-Idempotency-Key", "k"),
        ])
    );
}

#[tokio::test]
async fn mailgun_sends_attachments_as_multipart_file_parts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(accepted())
        .mount(&server)
        .await;
    let message = with_extras(MessageExtras {
        attachments: vec![Attachment {
            filename: "invoice.pdf".into(),
            content_type: "application/pdf".into(),
            content_base64: "JVBERi0xLjQK".into(),
        }],
        ..MessageExtras::default()
    });

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "k").await.expect("sent");

    assert_eq!(receipt.provider_message_id, "m1@mg.example.com");
    let request = only_request(&server).await;
    assert!(header(&request, "content-type").starts_with("multipart/form-data; boundary="));
    assert_eq!(header(&request, "authorization"), basic("api", API_KEY));
    let parts = multipart_parts(&request);
    let fields: Vec<(&str, &[u8])> = parts
        .iter()
        .filter(|p| p.1.is_none())
        .map(|p| (p.0.as_str(), p.3.as_slice()))
        .collect();
    assert_eq!(
        fields[0],
        ("from", b"Acme Ops <ops@example.com>".as_slice())
    );
    assert_eq!(fields[1], ("to", b"ada@example.org".as_slice()));
    assert!(fields.contains(&("v:msgengine-id", message.id.to_string().as_bytes())));
    let files: Vec<&Part> = parts.iter().filter(|p| p.1.is_some()).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "attachment");
    assert_eq!(files[0].1.as_deref(), Some("invoice.pdf"));
    assert_eq!(files[0].2.as_deref(), Some("application/pdf"));
    assert_eq!(files[0].3, b"%PDF-1.4\n");
}

#[tokio::test]
async fn mailgun_refuses_a_header_injection_without_calling_mailgun() {
    let server = MockServer::start().await;
    let message = with_extras(MessageExtras {
        headers: vec![("X-A".into(), "x\r\nBcc: victim@example.org".into())],
        ..MessageExtras::default()
    });
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let error = sender.send(&message, "k").await.expect_err("refused");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.code.as_deref(), Some("msgengine_invalid_message"));
    let received = server.received_requests().await.expect("recording");
    assert!(received.is_empty());
}

// ---- webhook ----

pub const SIGNING_KEY: &str = "whsk-0123456789abcdef0123456789abcdef";

fn signed_spec() -> AnyProviderSpec {
    helpers::spec(
        Channel::Email,
        json!({"providerType": "MAILGUN", "name": "mg", "apiKey": API_KEY,
               "domain": "mg.example.com", "fromEmail": "ops@example.com",
               "webhookSecret": SIGNING_KEY}),
    )
}

/// HMAC-SHA256(key, timestamp || token), lowercase hex, computed here.
fn sign(key: &str, timestamp: &str, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

const NOW: i64 = 1_700_000_000;
const TOKEN: &str = "a8ce0edb2dd8301dce6fa1c2a1d7d5c2bfd8a8b4d1f3c5c6a7";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).expect("valid time")
}

fn payload(timestamp: i64, signature: &str, event_data: serde_json::Value) -> Vec<u8> {
    json!({"signature": {"timestamp": timestamp.to_string(), "token": TOKEN, "signature": signature},
           "event-data": event_data})
    .to_string()
    .into_bytes()
}

fn delivered(message_id: &str) -> serde_json::Value {
    json!({"event": "delivered", "id": "CPgfbmQMTCKtHW6uIWtuVe", "timestamp": 1_699_999_990.5,
           "log-level": "info", "recipient": "ada@example.org", "tags": [],
           "user-variables": {"msgengine-id": message_id},
           "message": {"headers": {"message-id": "20240101120000.1.ABCDEF@mg.example.com"}},
           "delivery-status": {"code": 250, "message": "OK"}})
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

#[test]
fn mailgun_webhook_with_a_valid_signature_is_parsed_with_our_message_id() {
    let handler = webhook_handler_for(&signed_spec()).expect("supported");
    let signature = sign(SIGNING_KEY, &NOW.to_string(), TOKEN);
    let body = payload(NOW, &signature, delivered("msg-42"));
    let headers = HeaderMap::new();
    let request = inbound(&headers, &body);

    assert_eq!(handler.verify(&request, now()), Ok(()));
    let events = handler.parse(&request, now()).expect("parsed");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_id, "CPgfbmQMTCKtHW6uIWtuVe");
    assert_eq!(event.state, Some(MessageState::Delivered));
    assert_eq!(event.message_id.as_deref(), Some("msg-42"));
    assert_eq!(
        event.provider_message_id.as_deref(),
        Some("20240101120000.1.ABCDEF@mg.example.com")
    );
    assert_eq!(event.recipient.as_deref(), Some("ada@example.org"));
    assert_eq!(event.occurred_at.timestamp(), 1_699_999_990);
    // A replay is the same event.
    assert_eq!(handler.parse(&request, now()).expect("parsed"), events);
}

#[test]
fn mailgun_webhook_refuses_bad_signatures_and_stale_timestamps() {
    let handler = webhook_handler_for(&signed_spec()).expect("supported");
    let headers = HeaderMap::new();
    let good = sign(SIGNING_KEY, &NOW.to_string(), TOKEN);
    // Mailgun signs timestamp and token, not event-data: tampering shows as
    // a changed timestamp or token.
    let tampered = payload(NOW + 1, &good, delivered("m"));
    let wrong_key = payload(
        NOW,
        &sign("another-signing-key-000000", &NOW.to_string(), TOKEN),
        delivered("m"),
    );
    let missing = json!({"event-data": delivered("m")})
        .to_string()
        .into_bytes();
    let stale_at = NOW - 301;
    let stale = payload(
        stale_at,
        &sign(SIGNING_KEY, &stale_at.to_string(), TOKEN),
        delivered("m"),
    );
    for (name, body) in [
        ("tampered", &tampered),
        ("wrong key", &wrong_key),
        ("missing", &missing),
    ] {
        let verdict = handler.verify(&inbound(&headers, body), now());
        assert!(
            matches!(verdict, Err(WebhookError::Unauthorized(_))),
            "{name}: {verdict:?}"
        );
    }
    let verdict = handler.verify(&inbound(&headers, &stale), now());
    assert!(
        matches!(verdict, Err(WebhookError::Stale(_))),
        "{verdict:?}"
    );

    let unconfigured = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("supported");
    let good_body = payload(NOW, &good, delivered("m"));
    let verdict = unconfigured.verify(&inbound(&headers, &good_body), now());
    assert!(
        matches!(verdict, Err(WebhookError::Unauthorized(_))),
        "{verdict:?}"
    );
}

#[test]
fn mailgun_verification_reads_only_the_signature_and_names_the_token_as_nonce() {
    let handler = webhook_handler_for(&signed_spec()).expect("supported");
    let headers = HeaderMap::new();
    let good = sign(SIGNING_KEY, &NOW.to_string(), TOKEN);
    // event-data that no parse would accept: verification never reads it.
    let body = payload(NOW, &good, json!("not an object"));
    let request = inbound(&headers, &body);
    assert_eq!(handler.verify(&request, now()), Ok(()));
    assert!(matches!(
        handler.parse(&request, now()),
        Err(WebhookError::Malformed(_))
    ));
    // The token is single-use for as long as its timestamp can pass.
    let nonce = handler.nonce(&request).expect("a nonce");
    assert_eq!(nonce.value, TOKEN);
    assert_eq!(nonce.expires_at.timestamp(), NOW + 600);
    // Schemes that sign the whole request name none.
    let twilio = helpers::spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "Acme",
               "credentials": {"accountSid": "AC0123456789abcdef0123456789abcdef",
                               "authToken": "0123456789abcdef0123456789abcdef"}}),
    );
    let twilio = webhook_handler_for(&twilio).expect("supported");
    assert!(twilio.nonce(&request).is_none());
}

fn parse_one(event_data: serde_json::Value) -> WebhookEvent {
    let handler = webhook_handler_for(&signed_spec()).expect("supported");
    let body = payload(NOW, "00", event_data);
    let headers = HeaderMap::new();
    let mut events = handler
        .parse(&inbound(&headers, &body), now())
        .expect("parsed");
    events.remove(0)
}

#[test]
fn mailgun_events_map_to_states_engagement_and_suppressions() {
    let hard = parse_one(
        json!({"event": "failed", "id": "e1", "severity": "permanent", "reason": "bounce",
        "recipient": "gone@example.org", "delivery-status": {"code": 550, "description": "No such user"}}),
    );
    assert_eq!(
        (hard.state, hard.suppress),
        (Some(MessageState::Bounced), Some(SuppressionReason::Bounce))
    );
    assert_eq!(
        (hard.error_code.as_deref(), hard.reason.as_deref()),
        (Some("550"), Some("No such user"))
    );

    let soft = parse_one(
        json!({"event": "failed", "id": "e2", "severity": "temporary", "reason": "generic"}),
    );
    assert_eq!(
        (soft.state, soft.engagement),
        (None, Some(Engagement::Deferred))
    );

    let suppressed = parse_one(
        json!({"event": "failed", "id": "e3", "severity": "permanent", "reason": "suppress-bounce"}),
    );
    assert_eq!(suppressed.state, Some(MessageState::Failed));
    assert_eq!(suppressed.error_code.as_deref(), Some("suppressed"));
    assert_eq!(suppressed.suppress, None);

    let given_up =
        parse_one(json!({"event": "failed", "id": "e4", "severity": "permanent", "reason": "old"}));
    assert_eq!(given_up.state, Some(MessageState::Failed));

    for (raw, engagement, state, suppress) in [
        (
            "opened",
            Engagement::Opened,
            Some(MessageState::Delivered),
            None,
        ),
        (
            "clicked",
            Engagement::Clicked,
            Some(MessageState::Delivered),
            None,
        ),
        (
            "complained",
            Engagement::Complained,
            None,
            Some(SuppressionReason::Complaint),
        ),
        (
            "unsubscribed",
            Engagement::Unsubscribed,
            None,
            Some(SuppressionReason::Unsubscribe),
        ),
    ] {
        let event = parse_one(json!({"event": raw, "id": raw, "url": "https://x.example"}));
        assert_eq!(
            (event.engagement, event.state, event.suppress),
            (Some(engagement), state, suppress),
            "{raw}"
        );
    }
    assert_eq!(
        parse_one(json!({"event": "accepted", "id": "a"})).state,
        Some(MessageState::Sent)
    );
    assert_eq!(
        parse_one(json!({"event": "rejected", "id": "r"})).state,
        Some(MessageState::Failed)
    );
}

// ---- management ----

#[tokio::test]
async fn mailgun_verify_domain_rechecks_and_reports_records_with_validity() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v4/domains/mg.example.com/verify"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "domain": {"name": "mg.example.com", "state": "unverified", "type": "custom"},
            "receiving_dns_records": [{"record_type": "MX", "name": "mg.example.com", "priority": "10",
                                       "value": "mxa.mailgun.org", "valid": "unknown"}],
            "sending_dns_records": [
                {"record_type": "TXT", "name": "mg.example.com", "value": "v=spf1 include:mailgun.org ~all", "valid": "valid"},
                {"record_type": "TXT", "name": "pic._domainkey.mg.example.com", "value": "k=rsa; p=MIGf", "valid": "unknown"},
                {"record_type": "CNAME", "name": "email.mg.example.com", "value": "mailgun.org", "valid": "valid"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let found = admin.verify_domain().await.expect("verified");

    assert_eq!(
        header(&only_request(&server).await, "authorization"),
        basic("api", API_KEY)
    );
    assert!(!found.verified);
    assert_eq!(found.provider_state, "unverified");
    let records: Vec<_> = found
        .records
        .iter()
        .map(|r| (r.purpose, r.record_type.as_str(), r.valid))
        .collect();
    assert_eq!(
        records,
        [
            (DnsPurpose::Spf, "TXT", Some(true)),
            (DnsPurpose::Dkim, "TXT", Some(false)),
            (DnsPurpose::Tracking, "CNAME", Some(true)),
            (DnsPurpose::Mx, "MX", Some(false)),
        ]
    );
}

#[tokio::test]
async fn mailgun_stats_ask_for_every_event_by_day_over_the_range() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/mg.example.com/stats/total"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "start": "Mon, 01 Jan 2024 00:00:00 UTC", "resolution": "day",
            "stats": [{"time": "Mon, 01 Jan 2024 00:00:00 UTC", "accepted": {"total": 3},
                       "delivered": {"total": 2}, "failed": {"permanent": {"bounce": 1, "total": 1}}}]
        })))
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let from = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");

    let stats = admin.stats(from, from).await.expect("stats");

    assert_eq!(
        (stats.accepted, stats.delivered, stats.bounced, stats.failed),
        (3, 2, 1, 0)
    );
    let request = only_request(&server).await;
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let events: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "event")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        events,
        [
            "accepted",
            "delivered",
            "failed",
            "opened",
            "clicked",
            "unsubscribed",
            "complained"
        ]
    );
    assert!(query.contains(&("start".into(), "1704067200".into())));
    assert!(query.contains(&("end".into(), "1704153599".into())));
    assert!(query.contains(&("resolution".into(), "day".into())));
}

#[tokio::test]
async fn mailgun_setup_webhooks_creates_missing_and_extends_existing_events() {
    let server = MockServer::start().await;
    let hooks = "/v3/domains/mg.example.com/webhooks";
    Mock::given(method("GET"))
        .and(path(hooks))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"webhooks": {
                "delivered": {"urls": ["https://old.example/hook"]},
                "opened": {"urls": ["https://msgengine.example/hook"]}
            }})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(hooks))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"message": "Webhook has been created"})),
        )
        .expect(5)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{hooks}/delivered")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"message": "Webhook has been updated"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    admin
        .setup_webhooks("https://msgengine.example/hook")
        .await
        .expect("set up");

    let requests = server.received_requests().await.expect("recording");
    let put = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .expect("a PUT");
    assert_eq!(
        form(put),
        pairs(&[
            ("url", "https://old.example/hook"),
            ("url", "https://msgengine.example/hook")
        ])
    );
    let created: Vec<Vec<(String, String)>> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(form)
        .collect();
    let ids: Vec<&str> = created.iter().map(|f| f[0].1.as_str()).collect();
    assert_eq!(
        ids,
        [
            "permanent_fail",
            "temporary_fail",
            "clicked",
            "unsubscribed",
            "complained"
        ]
    );
    assert!(created
        .iter()
        .all(|f| f[1] == ("url".into(), "https://msgengine.example/hook".into())));
}

// ---- connection test ----

async fn probe(server: &MockServer, response: ResponseTemplate) -> Check {
    Mock::given(method("GET"))
        .and(path("/v4/domains/mg.example.com"))
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
async fn mailgun_probe_passes_on_a_known_active_domain() {
    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"domain": {"name": "mg.example.com", "state": "active"}})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Passed, "{check:?}");
    assert!(
        check.message.contains("mg.example.com is active"),
        "{check:?}"
    );
    assert_eq!(
        header(&only_request(&server).await, "authorization"),
        basic("api", API_KEY)
    );
}

#[tokio::test]
async fn mailgun_probe_explains_bad_keys_unknown_domains_and_unreachable_hosts() {
    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(401).set_body_string("Forbidden"),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Failed);
    assert!(
        check.message.contains("refused the credentials"),
        "{check:?}"
    );
    assert!(check.message.contains("private API key"), "{check:?}");

    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(404).set_body_json(json!({"message": "Domain not found"})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Failed);
    assert!(
        check.message.contains("does not know this domain"),
        "{check:?}"
    );

    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec(&helpers::refused_base_url()))
        .await;
    assert_eq!(report.checks[1].status, CheckStatus::Failed);
    assert!(
        report.checks[1]
            .message
            .starts_with("could not reach Mailgun"),
        "{report:?}"
    );
    assert!(!report.checks[1].message.contains(API_KEY));
}

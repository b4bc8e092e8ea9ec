//! Mailjet: the exact request with every extra, the receipt, failure
//! classification, the token-checked (unsigned) event callback and its
//! mapping, sender domain DNS, stats, callback setup and the connection test.

use std::time::Duration;

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
use serde_json::{json, Value};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, basic, header, only_request};

pub const PUBLIC_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const SECRET_KEY: &str = "fedcba9876543210fedcba9876543210";
pub const PATH: &str = "/v3.1/send";
const TOKEN: &str = "mj-hook-token-0123456789abcdef";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    spec_with(base_url, json!({"webhookSecret": TOKEN}))
}

fn spec_with(base_url: &str, extra: Value) -> AnyProviderSpec {
    let mut object = json!({"providerType": "MAILJET", "name": "mj",
                            "apiKey": format!("{PUBLIC_KEY}:{SECRET_KEY}"),
                            "fromEmail": "ops@example.com", "fromName": "Acme Ops",
                            "baseUrl": base_url});
    if let (Some(o), Value::Object(extra)) = (object.as_object_mut(), extra) {
        o.extend(extra);
    }
    helpers::spec(Channel::Email, object)
}

fn success(message_id: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"Messages": [{
        "Status": "success", "CustomID": "x",
        "To": [{"Email": "ada@example.org", "MessageUUID": "1ab23cd4-5e6f", "MessageID": message_id,
                "MessageHref": format!("https://api.mailjet.com/v3/REST/message/{message_id}")}],
        "Cc": [], "Bcc": []}]}))
}

#[tokio::test]
async fn mailjet_send_posts_the_exact_json_and_returns_the_message_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(success(1_152_921_504_606_846_977))
        .expect(1)
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Email, "ada@example.org", "Hello Ada");
    message.subject = Some("Welcome".into());
    message.html = Some("<p>Hello Ada</p>".into());
    message.metadata = json!({"campaign": "spring"}).as_object().cloned();

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-42").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "1152921504606846977".into(),
            state: MessageState::Sent,
            segments: None,
        })
    );
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(PUBLIC_KEY, SECRET_KEY)
    );
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-42");
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"Messages": [{
            "From": {"Email": "ops@example.com", "Name": "Acme Ops"},
            "To": [{"Email": "ada@example.org"}],
            "Subject": "Welcome",
            "TextPart": "Hello Ada",
            "HTMLPart": "<p>Hello Ada</p>",
            "Headers": {"X-Msgengine-Idempotency-Key": "idem-42"},
            "CustomID": message.id.to_string(),
            "EventPayload": "{\"campaign\":\"spring\"}"
        }]})
    );
}

#[tokio::test]
async fn mailjet_sends_reply_to_headers_campaign_and_attachments() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(success(1))
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Email, "Ada <ada@example.org>", "Hi");
    message.from = Some("billing@example.com".into());
    message.extras = Some(Box::new(MessageExtras {
        reply_to: Some("Support <help@example.com>".into()),
        headers: vec![("X-Campaign".into(), "spring".into())],
        tags: vec!["welcome".into(), "ignored".into()],
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
    let m = &body["Messages"][0];
    assert_eq!(m["From"], json!({"Email": "billing@example.com"}));
    assert_eq!(
        m["To"],
        json!([{"Email": "ada@example.org", "Name": "Ada"}])
    );
    assert_eq!(
        m["ReplyTo"],
        json!({"Email": "help@example.com", "Name": "Support"})
    );
    assert_eq!(
        m["Headers"],
        json!({"X-Campaign": "spring", "X-Msgengine-Idempotency-Key": "k"})
    );
    assert_eq!(m["CustomCampaign"], "welcome");
    assert_eq!(
        m["Attachments"],
        json!([{"ContentType": "application/pdf", "Filename": "invoice.pdf", "Base64Content": "JVBERi0xLjQK"}])
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
    assert_no_secret(&error, &[SECRET_KEY]);
    error
}

#[tokio::test]
async fn mailjet_failures_are_classified() {
    let error = refused_with(ResponseTemplate::new(400).set_body_json(json!({"Messages": [{
        "Status": "error", "Errors": [{"ErrorIdentifier": "f987", "ErrorCode": "mj-0013", "StatusCode": 400,
        "ErrorMessage": "\"ada@\" is an invalid email address.", "ErrorRelatedTo": ["To[0].Email"]}]}]})))
    .await;
    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.code.as_deref(), Some("mj-0013"));
    assert_eq!(
        error.message,
        "\"ada@\" is an invalid email address. (To[0].Email)"
    );

    let error = refused_with(ResponseTemplate::new(401).set_body_json(json!({"ErrorIdentifier": "x",
        "StatusCode": 401, "ErrorMessage": "API key authentication/authorization failure. You may be unauthorized to access the API or your API key may be expired. Visit API keys management section to check your keys."})))
    .await;
    assert_eq!(
        (error.kind, error.http_status),
        (FailureKind::Permanent, Some(401))
    );

    let error = refused_with(ResponseTemplate::new(429).insert_header("Retry-After", "3")).await;
    assert_eq!(
        (error.kind, error.retry_after),
        (FailureKind::RateLimited, Some(Duration::from_secs(3)))
    );
    for status in [500, 503] {
        assert_eq!(
            refused_with(ResponseTemplate::new(status)).await.kind,
            FailureKind::Transient
        );
    }
    // HTTP 200 with a per-message error is no success.
    let error = refused_with(
        ResponseTemplate::new(200).set_body_json(json!({"Messages": [{
        "Status": "error", "Errors": [{"ErrorCode": "send-0003", "StatusCode": 400,
        "ErrorMessage": "sender not validated"}]}]})),
    )
    .await;
    assert_eq!(
        (error.kind, error.code.as_deref()),
        (FailureKind::Permanent, Some("send-0003"))
    );
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(2));
    assert_eq!(refused_with(slow).await.kind, FailureKind::Timeout);
    let error = attempt(&helpers::refused_base_url()).await;
    assert_eq!(
        (error.kind, error.http_status),
        (FailureKind::Transient, None)
    );
    let echoed =
        json!({"StatusCode": 403, "ErrorMessage": format!("secret {SECRET_KEY} is disabled")});
    let error = refused_with(ResponseTemplate::new(403).set_body_json(echoed)).await;
    assert_eq!(error.message, "secret *** is disabled");
}

#[tokio::test]
async fn mailjet_without_the_secret_half_of_the_key_is_misconfigured() {
    let server = MockServer::start().await;
    let mut spec = spec(&server.uri());
    if let AnyProviderSpec::Email(s) = &mut spec {
        s.api_key = Some(msgengine_domain::Secret::new(PUBLIC_KEY));
    }
    let sender = sender_for(&spec, &helpers::client()).expect("supported");
    let message = helpers::message(Channel::Email, "ada@example.org", "Hi");
    let error = sender.send(&message, "k").await.expect_err("misconfigured");
    assert_eq!(error.code.as_deref(), Some("msgengine_misconfigured"));
    assert!(server
        .received_requests()
        .await
        .expect("recording")
        .is_empty());
}

// ---- webhook ----

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
}

fn inbound<'a>(headers: &'a HeaderMap, query: &'a str, body: &'a [u8]) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "POST",
        url: "https://hooks.example.com/api/webhooks/email/p1",
        headers,
        query,
        body,
    }
}

fn sent_event() -> Value {
    json!({"event": "sent", "time": 1_433_333_949, "MessageID": 19_421_777_835_146_490_u64,
           "Message_GUID": "1ab23cd4-e567-8901-2345-6789f0gh1i2j", "email": "ada@example.org",
           "mj_campaign_id": 7257, "mj_contact_id": 4, "customcampaign": "", "mj_message_id": "19421777835146490",
           "smtp_reply": "250 OK queued as 1234", "CustomID": "msg-42", "Payload": ""})
}

#[test]
fn mailjet_webhook_with_the_token_is_parsed_with_our_message_id() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("supported");
    let body = sent_event().to_string().into_bytes();
    let headers = HeaderMap::new();
    let query = format!("a=1&token={TOKEN}");
    let request = inbound(&headers, &query, &body);

    assert_eq!(handler.verify(&request, now()), Ok(()));
    let events = handler.parse(&request, now()).expect("parsed");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    // Mailjet's `sent` means accepted by the recipient's server (§12).
    assert_eq!(event.state, Some(MessageState::Delivered));
    assert_eq!(
        event.provider_message_id.as_deref(),
        Some("19421777835146490")
    );
    assert_eq!(event.message_id.as_deref(), Some("msg-42"));
    assert_eq!(event.recipient.as_deref(), Some("ada@example.org"));
    assert_eq!(event.occurred_at.timestamp(), 1_433_333_949);
    assert!(event.event_id.starts_with("mailjet-"));
    assert_eq!(handler.parse(&request, now()).expect("replay"), events);
}

#[test]
fn mailjet_webhook_accepts_the_secret_as_basic_credentials_too() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("supported");
    let mut headers = HeaderMap::new();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("mailjet:{TOKEN}"));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Basic {credentials}")).expect("header"),
    );
    assert_eq!(handler.verify(&inbound(&headers, "", b"{}"), now()), Ok(()));
}

#[test]
fn mailjet_webhook_refuses_missing_or_wrong_tokens_and_unconfigured_connections() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("supported");
    let body = sent_event().to_string().into_bytes();
    let none = HeaderMap::new();
    let unauthorized =
        |verdict: Result<(), WebhookError>| matches!(verdict, Err(WebhookError::Unauthorized(_)));
    assert!(unauthorized(
        handler.verify(&inbound(&none, "", &body), now())
    ));
    assert!(unauthorized(
        handler.verify(&inbound(&none, "token=wrong", &body), now())
    ));
    let almost = format!("token={}", &TOKEN[..TOKEN.len() - 1]);
    assert!(unauthorized(
        handler.verify(&inbound(&none, &almost, &body), now())
    ));
    let mut basic_wrong = HeaderMap::new();
    basic_wrong.insert(
        "authorization",
        HeaderValue::from_static("Basic bWFpbGpldDp3cm9uZw=="),
    );
    assert!(unauthorized(
        handler.verify(&inbound(&basic_wrong, "", &body), now())
    ));

    let unconfigured =
        webhook_handler_for(&spec_with("http://127.0.0.1:9", json!({}))).expect("supported");
    let query = format!("token={TOKEN}");
    assert!(unauthorized(
        unconfigured.verify(&inbound(&none, &query, &body), now())
    ));
}

fn parse_all(body: Value) -> Vec<WebhookEvent> {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("supported");
    let body = body.to_string().into_bytes();
    let headers = HeaderMap::new();
    handler
        .parse(&inbound(&headers, "", &body), now())
        .expect("parsed")
}

#[test]
fn mailjet_version_2_batches_map_to_states_engagement_and_suppressions() {
    let base = |event: &str, extra: Value| {
        let mut e = json!({"event": event, "time": 1_433_334_000, "MessageID": 1, "email": "a@example.org"});
        if let (Some(o), Value::Object(extra)) = (e.as_object_mut(), extra) {
            o.extend(extra);
        }
        e
    };
    let events = parse_all(json!([
        base(
            "bounce",
            json!({"hard_bounce": true, "blocked": false, "error_related_to": "recipient", "error": "user unknown"})
        ),
        base(
            "bounce",
            json!({"hard_bounce": false, "error_related_to": "recipient", "error": "quota exceeded"})
        ),
        base(
            "blocked",
            json!({"error_related_to": "recipient", "error": "preblocked"})
        ),
        base("open", json!({"ip": "127.0.0.1", "agent": "x"})),
        base("click", json!({"url": "https://example.org/a"})),
        base("spam", json!({"source": "JMRPP"})),
        base("unsub", json!({"mj_list_id": 1})),
    ]));
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.state, e.engagement, e.suppress))
        .collect();
    assert_eq!(
        got,
        [
            (
                Some(MessageState::Bounced),
                None,
                Some(SuppressionReason::Bounce)
            ),
            (Some(MessageState::Failed), None, None),
            (Some(MessageState::Failed), None, None),
            (
                Some(MessageState::Delivered),
                Some(Engagement::Opened),
                None
            ),
            (
                Some(MessageState::Delivered),
                Some(Engagement::Clicked),
                None
            ),
            (
                None,
                Some(Engagement::Complained),
                Some(SuppressionReason::Complaint)
            ),
            (
                None,
                Some(Engagement::Unsubscribed),
                Some(SuppressionReason::Unsubscribe)
            ),
        ]
    );
    assert_eq!(
        events[0].reason.as_deref(),
        Some("user unknown (recipient)")
    );
    assert_eq!(events[2].error_code.as_deref(), Some("suppressed"));
    let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "distinct events get distinct ids");
}

// ---- management ----

#[tokio::test]
async fn mailjet_verify_domain_reads_and_rechecks_the_sender_domain() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/REST/dns/example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Count": 1, "Total": 1, "Data": [{
            "DKIMRecordName": "mailjet._domainkey.example.com.", "DKIMRecordValue": "k=rsa; p=MIGf",
            "DKIMStatus": "Not checked", "Domain": "example.com", "ID": 1, "IsCheckInProgress": false,
            "OwnerShipToken": "0123456789abcdef", "OwnerShipTokenRecordName": "mailjet._0123.example.com.",
            "SPFRecordValue": "v=spf1 include:spf.mailjet.com ?all", "SPFStatus": "Not checked"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/REST/dns/example.com/check"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Count": 1, "Total": 1, "Data": [{
            "DKIMErrors": [], "DKIMRecordCurrentValue": "k=rsa; p=MIGf", "DKIMStatus": "OK",
            "SPFErrors": [], "SPFRecordsCurrentValues": ["v=spf1 include:spf.mailjet.com -all"], "SPFStatus": "OK"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let found = admin.verify_domain().await.expect("verified");

    assert!(found.verified);
    assert_eq!(found.provider_state, "SPF OK, DKIM OK");
    let records: Vec<_> = found
        .records
        .iter()
        .map(|r| (r.purpose, r.name.as_str(), r.valid))
        .collect();
    assert_eq!(
        records,
        [
            (DnsPurpose::Spf, "example.com", Some(true)),
            (
                DnsPurpose::Dkim,
                "mailjet._domainkey.example.com",
                Some(true)
            ),
            (DnsPurpose::Ownership, "mailjet._0123.example.com", None),
        ]
    );
    let requests = server.received_requests().await.expect("recording");
    assert!(requests
        .iter()
        .all(|r| header(r, "authorization") == basic(PUBLIC_KEY, SECRET_KEY)));
}

#[tokio::test]
async fn mailjet_stats_are_statcounters_for_the_key_by_day() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/REST/statcounters"))
        .and(query_param("CounterSource", "APIKey"))
        .and(query_param("CounterTiming", "Message"))
        .and(query_param("CounterResolution", "Day"))
        .and(query_param("FromTS", "1704067200"))
        .and(query_param("ToTS", "1704153599"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"Count": 1, "Total": 1, "Data": [{
            "Timeslice": "2024-01-01T00:00:00Z", "Total": 5, "MessageSentCount": 4,
            "MessageHardBouncedCount": 1, "MessageOpenedCount": 2}]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let day = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");

    let stats = admin.stats(day, day).await.expect("stats");

    assert_eq!(
        (stats.accepted, stats.delivered, stats.bounced, stats.opened),
        (5, 4, 1, 2)
    );
    assert_eq!(stats.days[0].date, Some(day));
}

#[tokio::test]
async fn mailjet_setup_webhooks_points_every_event_type_at_the_tokened_url() {
    let server = MockServer::start().await;
    let target = format!("https://msgengine.example/hook?token={TOKEN}");
    Mock::given(method("GET"))
        .and(path("/v3/REST/eventcallbackurl"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Count": 3, "Total": 3, "Data": [
            {"ID": 11, "EventType": "sent", "Url": "https://old.example/hook", "Status": "alive", "IsBackup": false, "Version": 1},
            {"ID": 12, "EventType": "open", "Url": target, "Status": "alive", "IsBackup": false, "Version": 2},
            {"ID": 13, "EventType": "bounce", "Url": "https://backup.example", "Status": "alive", "IsBackup": true, "Version": 1}
        ]})))
        .mount(&server)
        .await;
    let expected = |event: &str| json!({"EventType": event, "Url": target, "Version": 2, "Status": "alive", "IsBackup": false});
    Mock::given(method("PUT"))
        .and(path("/v3/REST/eventcallbackurl/11"))
        .and(body_json(expected("sent")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Count": 1, "Data": []})))
        .expect(1)
        .mount(&server)
        .await;
    for event in ["click", "bounce", "spam", "blocked", "unsub"] {
        Mock::given(method("POST"))
            .and(path("/v3/REST/eventcallbackurl"))
            .and(body_json(expected(event)))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"Count": 1, "Data": []})))
            .expect(1)
            .mount(&server)
            .await;
    }
    let admin = email_admin_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    admin
        .setup_webhooks("https://msgengine.example/hook")
        .await
        .expect("set up");

    let unconfigured = spec_with(&server.uri(), json!({}));
    let admin = email_admin_for(&unconfigured, &helpers::client()).expect("supported");
    let error = admin
        .setup_webhooks("https://msgengine.example/hook")
        .await
        .expect_err("no token");
    assert_eq!(error.code.as_deref(), Some("msgengine_misconfigured"));
}

// ---- connection test ----

async fn probe(server: &MockServer, response: ResponseTemplate) -> Check {
    Mock::given(method("GET"))
        .and(path("/v3/REST/dns/example.com"))
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
async fn mailjet_probe_passes_on_a_known_sending_domain() {
    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"Count": 1, "Total": 1, "Data": [
            {"Domain": "example.com", "SPFStatus": "OK", "DKIMStatus": "Error"}]})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Passed, "{check:?}");
    assert!(check.message.contains("SPF OK and DKIM Error"), "{check:?}");
    assert_eq!(
        header(&only_request(&server).await, "authorization"),
        basic(PUBLIC_KEY, SECRET_KEY)
    );
}

#[tokio::test]
async fn mailjet_probe_explains_bad_keys_and_unknown_domains() {
    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"ErrorInfo": "", "StatusCode": 401,
            "ErrorMessage": "API key authentication/authorization failure."})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Failed);
    assert!(check.message.contains("API_KEY:SECRET_KEY"), "{check:?}");
    assert!(!check.message.contains(SECRET_KEY));

    let server = MockServer::start().await;
    let check = probe(
        &server,
        ResponseTemplate::new(404).set_body_json(json!({"ErrorInfo": "", "StatusCode": 404,
            "ErrorMessage": "Object not found"})),
    )
    .await;
    assert_eq!(check.status, CheckStatus::Failed);
    assert!(
        check.message.contains("does not know the sending domain"),
        "{check:?}"
    );
}

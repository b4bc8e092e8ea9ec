//! Africa's Talking SMS: the exact request, per-recipient and batch
//! failures, classification, token-protected delivery reports, the probe.

use std::time::{Duration, SystemTime};

use chrono::Utc;
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::registry::{sms_admin_for, webhook_handler_for};
use msgengine_providers::reqwest::header::HeaderMap;
use msgengine_providers::webhook::{InboundWebhook, SuppressionReason, WebhookError, WebhookEvent};
use msgengine_providers::{
    sender_for, CheckStatus, FailureKind, ProviderError, ProviderRegistry, SendReceipt,
};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, form, header, only_request, pairs};

const USERNAME: &str = "acme-sms";
const API_KEY: &str = "atsk_0123456789abcdef0123456789abcdef";
const WEBHOOK_TOKEN: &str = "tok-4b1d0c2e9f8a7b6c";
const PATH: &str = "/version1/messaging";

fn spec_with(base_url: &str, sender_id: Option<&str>) -> AnyProviderSpec {
    let mut object = json!({"providerType": "AFRICASTALKING", "name": "at",
        "credentials": {"username": USERNAME, "apiKey": API_KEY, "webhookToken": WEBHOOK_TOKEN},
        "baseUrl": base_url});
    if let Some(sender) = sender_id {
        object["senderId"] = json!(sender);
    }
    helpers::spec(Channel::Sms, object)
}

fn spec(base_url: &str) -> AnyProviderSpec {
    spec_with(base_url, Some("ACME"))
}

fn recipients(code: u32, status: &str, id: &str, parts: u32) -> Value {
    json!({"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
        "Recipients": [{"statusCode": code, "number": "+254711000111", "status": status,
                        "cost": "KES 0.8000", "messageId": id, "messageParts": parts}]}})
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn africastalking_send_posts_the_exact_form_with_the_api_key() {
    let server = server_answering(ResponseTemplate::new(201).set_body_json(recipients(
        101,
        "Success",
        "ATXid_3d3a1c",
        2,
    )))
    .await;
    let text = "Habari Wanjiru! Nambari yako ni 4821 — asante 🙏";
    let message = helpers::message(Channel::Sms, "+254711000111", text);

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-at").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "ATXid_3d3a1c".into(),
            state: MessageState::Sent,
            segments: Some(2),
        })
    );
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), PATH);
    assert_eq!(header(&request, "apikey"), API_KEY);
    assert_eq!(header(&request, "accept"), "application/json");
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-at");
    assert_eq!(header(&request, "authorization"), "");
    assert_eq!(
        form(&request),
        pairs(&[
            ("username", USERNAME),
            ("to", "+254711000111"),
            ("message", text),
            ("from", "ACME"),
        ])
    );
}

// providers.md §13: whether a successful send answers 201 or 200 is
// unconfirmed; both are accepted (201 above, 200 here).
#[tokio::test]
async fn africastalking_without_a_sender_id_sends_no_from_and_takes_a_full_base_url() {
    let server = server_answering(
        ResponseTemplate::new(200).set_body_json(recipients(102, "Queued", "ATXid_2", 1)),
    )
    .await;
    let base = format!("{}/version1/messaging", server.uri());
    let sender = sender_for(&spec_with(&base, None), &helpers::client()).expect("supported");
    let receipt = sender
        .send(&helpers::message(Channel::Sms, "+254711000111", "Hi"), "k")
        .await
        .expect("queued");
    assert_eq!(receipt.provider_message_id, "ATXid_2");
    let request = only_request(&server).await;
    assert_eq!(
        form(&request),
        pairs(&[
            ("username", USERNAME),
            ("to", "+254711000111"),
            ("message", "Hi")
        ])
    );
}

async fn attempt(base_url: &str) -> ProviderError {
    let sender = sender_for(&spec(base_url), &helpers::client()).expect("supported");
    let message = helpers::message(Channel::Sms, "+254711000111", "Hello");
    let error = sender.send(&message, "k").await.expect_err("refused");
    assert_no_secret(&error, &[API_KEY, USERNAME, WEBHOOK_TOKEN]);
    error
}

async fn answered(response: ResponseTemplate) -> ProviderError {
    let server = server_answering(response).await;
    attempt(&server.uri()).await
}

#[tokio::test]
async fn africastalking_recipient_failure_is_the_attempts_failure() {
    let e = answered(ResponseTemplate::new(201).set_body_json(recipients(
        403,
        "InvalidPhoneNumber",
        "None",
        0,
    )))
    .await;
    assert_eq!(e.kind, FailureKind::Permanent);
    assert_eq!(e.code.as_deref(), Some("403"));
    assert_eq!(e.message, "InvalidPhoneNumber");

    let e = answered(ResponseTemplate::new(201).set_body_json(recipients(
        405,
        "InsufficientBalance",
        "None",
        0,
    )))
    .await;
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (FailureKind::Transient, Some("405"))
    );

    let e = answered(ResponseTemplate::new(201).set_body_json(
        json!({"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}),
    ))
    .await;
    assert_eq!(
        (e.kind, e.message.as_str()),
        (FailureKind::Permanent, "InvalidSenderId")
    );
}

#[tokio::test]
async fn africastalking_http_errors_are_classified() {
    let e = answered(
        ResponseTemplate::new(400).set_body_string("Request is missing required form field 'to'"),
    )
    .await;
    assert_eq!(
        (e.kind, e.http_status, e.message.as_str()),
        (
            FailureKind::Permanent,
            Some(400),
            "Request is missing required form field 'to'"
        )
    );

    let e = answered(
        ResponseTemplate::new(401).set_body_string("The supplied authentication is invalid"),
    )
    .await;
    assert_eq!(e.kind, FailureKind::Permanent);
    assert_eq!(e.message, "The supplied authentication is invalid");

    // Africa's Talking documents no rate-limit answer (§13): a 429 is assumed.
    let e = answered(ResponseTemplate::new(429).insert_header("Retry-After", "11")).await;
    assert_eq!(
        (e.kind, e.retry_after),
        (FailureKind::RateLimited, Some(Duration::from_secs(11)))
    );
    let at = SystemTime::now() + Duration::from_secs(90);
    let e = answered(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", httpdate::fmt_http_date(at).as_str()),
    )
    .await;
    let wait = e.retry_after.unwrap_or_default();
    assert!(
        (Duration::from_secs(70)..=Duration::from_secs(90)).contains(&wait),
        "{wait:?}"
    );

    for status in [500, 503] {
        let e = answered(ResponseTemplate::new(status).insert_header("Retry-After", "4")).await;
        assert_eq!(e.kind, FailureKind::Transient, "{status}");
        assert_eq!(e.retry_after, Some(Duration::from_secs(4)));
    }

    let e = answered(ResponseTemplate::new(201).set_delay(Duration::from_secs(2))).await;
    assert_eq!((e.kind, e.http_status), (FailureKind::Timeout, None));

    let e = attempt(&helpers::refused_base_url()).await;
    assert_eq!((e.kind, e.http_status), (FailureKind::Transient, None));
    assert!(e.message.contains("could not connect"), "{e}");

    let e = answered(
        ResponseTemplate::new(401)
            .set_body_string(format!("Invalid apiKey {API_KEY} for user {USERNAME}")),
    )
    .await;
    assert_eq!(e.message, "Invalid apiKey *** for user ***");
}

// ---- Delivery reports --------------------------------------------------

const REPORT_URL: &str = "https://hooks.example.com/api/webhooks/sms/9e1a";

fn report(query: &str, params: &[(&str, &str)]) -> Result<Vec<WebhookEvent>, WebhookError> {
    report_to(&spec("http://127.0.0.1:9"), query, params)
}

fn report_to(
    spec: &AnyProviderSpec,
    query: &str,
    params: &[(&str, &str)],
) -> Result<Vec<WebhookEvent>, WebhookError> {
    let handler = webhook_handler_for(spec).expect("AFRICASTALKING has a webhook handler");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let url = format!("{REPORT_URL}?{query}");
    let headers = HeaderMap::new();
    let request = InboundWebhook {
        method: "POST",
        url: &url,
        headers: &headers,
        query,
        body: body.as_bytes(),
    };
    let now = Utc::now();
    handler.verify(&request, now)?;
    handler.parse(&request, now)
}

fn success() -> [(&'static str, &'static str); 5] {
    [
        ("id", "ATXid_3d3a1c"),
        ("status", "Success"),
        ("phoneNumber", "+254711000111"),
        ("networkCode", "63902"),
        ("retryCount", "0"),
    ]
}

#[test]
fn africastalking_report_with_the_token_becomes_a_delivered_event() {
    let query = format!("token={WEBHOOK_TOKEN}");
    let events = report(&query, &success()).expect("accepted");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.state, Some(MessageState::Delivered));
    assert_eq!(e.raw_status, "Success");
    assert_eq!(e.provider_message_id.as_deref(), Some("ATXid_3d3a1c"));
    assert_eq!(e.recipient.as_deref(), Some("+254711000111"));
    assert_eq!(e.event_id, "africastalking:ATXid_3d3a1c:Success");
    let again = report(&query, &success()).expect("accepted");
    assert_eq!(again[0].event_id, e.event_id);
}

#[test]
fn africastalking_report_without_or_with_a_wrong_token_is_refused() {
    let unauthorized = |r: Result<Vec<WebhookEvent>, WebhookError>| {
        matches!(r, Err(WebhookError::Unauthorized(_)))
    };
    assert!(unauthorized(report("", &success())));
    assert!(unauthorized(report(
        "token=tok-4b1d0c2e9f8a7b6d",
        &success()
    )));
    assert!(unauthorized(report("other=1", &success())));

    let unconfigured = helpers::spec(
        Channel::Sms,
        json!({"providerType": "AFRICASTALKING", "name": "at",
               "credentials": {"username": USERNAME, "apiKey": API_KEY}}),
    );
    match report_to(&unconfigured, "token=anything", &success()) {
        Err(WebhookError::Unauthorized(why)) => {
            assert!(why.contains("webhookToken"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn africastalking_blacklisted_recipient_is_a_failure_and_an_unsubscribe() {
    let query = format!("token={WEBHOOK_TOKEN}");
    let events = report(
        &query,
        &[
            ("id", "ATXid_9"),
            ("status", "Failed"),
            ("phoneNumber", "+254711000111"),
            ("failureReason", "UserInBlackList"),
            ("retryCount", "0"),
        ],
    )
    .expect("accepted");
    let e = &events[0];
    assert_eq!(e.state, Some(MessageState::Failed));
    assert_eq!(e.error_code.as_deref(), Some("UserInBlackList"));
    assert_eq!(e.suppress, Some(SuppressionReason::Unsubscribe));

    let events = report(
        &query,
        &[
            ("id", "ATXid_8"),
            ("status", "Rejected"),
            ("failureReason", "DeliveryFailure"),
        ],
    )
    .expect("accepted");
    assert_eq!(events[0].state, Some(MessageState::Failed));
    assert_eq!(events[0].suppress, None);
    assert_eq!(
        events[0].reason.as_deref(),
        Some("the carrier could not deliver the message")
    );

    let events = report(&query, &[("id", "ATXid_7"), ("status", "Buffered")]).expect("accepted");
    assert_eq!(events[0].state, Some(MessageState::Sent));

    assert!(matches!(
        report(&query, &[("status", "Success")]),
        Err(WebhookError::Malformed(_))
    ));
}

// ---- Management and probe ---------------------------------------------

#[tokio::test]
async fn africastalking_has_no_status_lookup_and_says_so() {
    let admin = sms_admin_for(&spec("http://127.0.0.1:9"), &helpers::client()).expect("supported");
    let error = admin
        .message_status("ATXid_1")
        .await
        .expect_err("unsupported");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
    assert!(error.message.contains("Delivery Reports"), "{error}");
}

/// The user lookup `GET /version1/user?username=` and its `UserData.balance`
/// answer are not in providers.md §10 (Africa's Talking's user-data API):
/// unconfirmed here.
async fn probe(response: ResponseTemplate) -> (CheckStatus, String) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/version1/user"))
        .and(query_param("username", USERNAME))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec(&server.uri()))
        .await;
    let request = only_request(&server).await;
    assert_eq!(header(&request, "apikey"), API_KEY);
    assert_eq!(header(&request, "accept"), "application/json");
    let check = &report.checks[1];
    assert!(!check.message.contains(API_KEY), "{}", check.message);
    (check.status, check.message.clone())
}

#[tokio::test]
async fn africastalking_probe_passes_with_the_balance() {
    let (status, message) = probe(
        ResponseTemplate::new(200).set_body_json(json!({"UserData": {"balance": "KES 1785.50"}})),
    )
    .await;
    assert_eq!(status, CheckStatus::Passed, "{message}");
    assert!(message.contains("KES 1785.50"), "{message}");
}

#[tokio::test]
async fn africastalking_probe_fails_with_words_on_401_and_404() {
    let (status, message) =
        probe(ResponseTemplate::new(401).set_body_string("The supplied authentication is invalid"))
            .await;
    assert_eq!(status, CheckStatus::Failed);
    assert!(
        message.starts_with("the username or apiKey is wrong"),
        "{message}"
    );
    let (status, message) = probe(ResponseTemplate::new(404)).await;
    assert_eq!(status, CheckStatus::Failed);
    assert!(message.contains("knows no such user"), "{message}");
}

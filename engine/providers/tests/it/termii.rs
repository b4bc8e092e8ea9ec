//! Termii SMS (providers.md §11): the exact request, the receipt,
//! classification, the signed delivery webhook (HMAC-SHA512 hex over the
//! raw body: encoding and signed bytes unconfirmed, §13, assumed as §11
//! says), management and the balance probe.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::MessageState;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::registry::{sms_admin_for, webhook_handler_for};
use msgengine_providers::reqwest::header::{HeaderMap, HeaderValue};
use msgengine_providers::webhook::{InboundWebhook, WebhookError};
use msgengine_providers::{
    sender_for, CheckStatus, FailureKind, ProviderError, ProviderRegistry, SendReceipt,
};
use serde_json::{json, Value};
use sha2::Sha512;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, header, only_request};

const API_KEY: &str = "TLa0123456789abcdef0123456789abcdef";
const WEBHOOK_SECRET: &str = "termii-secret-0123456789abcdef";
const PATH: &str = "/api/sms/send";

fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Sms,
        json!({"providerType": "TERMII", "name": "t", "senderId": "Acme", "baseUrl": base_url,
               "credentials": {"apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET}}),
    )
}

fn sent() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"code": "ok",
        "message_id": "9122821270554876574", "message_id_str": "9122821270554876574",
        "message": "Successfully Sent", "balance": 9, "user": "Peter Mcleish"}))
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn termii_send_posts_the_exact_json_and_returns_termiis_id() {
    let server = server_answering(sent()).await;
    let message = helpers::message(Channel::Sms, "+2348031234567", "Your code is 1234");

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-t").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "9122821270554876574".into(),
            state: MessageState::Sent,
            // Termii reports no segment count.
            segments: None,
        })
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), PATH);
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(header(&request, "authorization"), "");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-t");
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"api_key": API_KEY, "to": "2348031234567", "from": "Acme",
               "sms": "Your code is 1234", "type": "plain", "channel": "generic"})
    );
}

#[tokio::test]
async fn termii_sends_non_gsm_text_as_unicode_from_the_messages_sender() {
    let server = server_answering(sent()).await;
    let mut message = helpers::message(Channel::Sms, "+2348031234567", "Ẹ kú àárọ̀ 🙂");
    message.from = Some("AcmeNG".into());

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    sender.send(&message, "k").await.expect("sent");

    let body: Value = serde_json::from_slice(&only_request(&server).await.body).expect("JSON");
    assert_eq!(body["type"], "unicode");
    assert_eq!(body["from"], "AcmeNG");
    assert_eq!(body["sms"], "Ẹ kú àárọ̀ 🙂");
}

async fn refusal(response: ResponseTemplate) -> ProviderError {
    let server = server_answering(response).await;
    attempt(&server.uri()).await
}

async fn attempt(base_url: &str) -> ProviderError {
    let sender = sender_for(&spec(base_url), &helpers::client()).expect("supported");
    let message = helpers::message(Channel::Sms, "+2348031234567", "Hi");
    let error = sender.send(&message, "k").await.expect_err("refused");
    assert_no_secret(&error, &[API_KEY, WEBHOOK_SECRET]);
    error
}

#[tokio::test]
async fn termii_failures_are_classified() {
    // §13: Termii's error shape and codes are unconfirmed; a JSON `message` is assumed.
    let e = refusal(ResponseTemplate::new(400).set_body_json(
        json!({"message": "ApplicationSenderId not found for applicationId: 17 and senderName: Acme"}),
    ))
    .await;
    assert_eq!((e.kind, e.http_status), (FailureKind::Permanent, Some(400)));
    assert!(
        e.message.starts_with("ApplicationSenderId not found"),
        "{e}"
    );
    let e =
        refusal(ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid API key"})))
            .await;
    assert_eq!(
        (e.kind, e.message.as_str()),
        (FailureKind::Permanent, "Invalid API key")
    );
    let e = refusal(ResponseTemplate::new(429).insert_header("Retry-After", "11")).await;
    assert_eq!(
        (e.kind, e.retry_after),
        (FailureKind::RateLimited, Some(Duration::from_secs(11)))
    );
    for status in [500, 503] {
        assert_eq!(
            refusal(ResponseTemplate::new(status)).await.kind,
            FailureKind::Transient
        );
    }
    let e = refusal(ResponseTemplate::new(200).set_delay(Duration::from_secs(2))).await;
    assert_eq!(e.kind, FailureKind::Timeout);
    let e = attempt(&helpers::refused_base_url()).await;
    assert_eq!((e.kind, e.http_status), (FailureKind::Transient, None));
    assert!(!e.message.contains("127.0.0.1"), "{e}");
    let e = refusal(
        ResponseTemplate::new(400)
            .set_body_json(json!({"message": format!("api_key {API_KEY} is not active")})),
    )
    .await;
    assert_eq!(e.message, "api_key *** is not active");
}

// ---- delivery webhook ----

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_103_200, 0).expect("time")
}

/// HMAC-SHA512 of `body` with `secret`, lower-case hex: computed here,
/// independently of the code under test.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn signed(signature: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(signature) = signature {
        headers.insert(
            "x-termii-signature",
            HeaderValue::from_str(signature).expect("header value"),
        );
    }
    headers
}

fn hook<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "POST",
        url: "https://hooks.example.org/api/webhooks/sms/p3",
        headers,
        query: "",
        body,
    }
}

fn report(status: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"type": "outbound", "id": "3a5f0e", "message_id": "9122821270554876574",
        "receiver": "2348031234567", "sender": "Acme", "message": "Your code is 1234",
        "sent_at": "2024-01-01 10:00:00", "cost": "2.50", "status": status, "channel": "generic"}),
    )
    .expect("JSON")
}

#[test]
fn termii_webhook_signature_is_hmac_sha512_hex_of_the_raw_body() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let body = report("Delivered");
    let signature = sign(WEBHOOK_SECRET, &body);

    let valid = signed(Some(&signature));
    assert_eq!(handler.verify(&hook(&valid, &body), at()), Ok(()));
    let upper = signed(Some(&signature.to_uppercase()));
    assert_eq!(handler.verify(&hook(&upper, &body), at()), Ok(()));

    let tampered = report("Message Failed");
    let wrong_secret = signed(Some(&sign("another-secret", &body)));
    let missing = signed(None);
    let not_hex = signed(Some("sha512=zz"));
    for (headers, body) in [
        (&valid, tampered.as_slice()),
        (&wrong_secret, body.as_slice()),
        (&missing, body.as_slice()),
        (&not_hex, body.as_slice()),
    ] {
        assert!(matches!(
            handler.verify(&hook(headers, body), at()),
            Err(WebhookError::Unauthorized(_))
        ));
    }
    // Nothing Termii signs carries a time (§11.2), so there is no stale
    // timestamp to refuse: a replay verifies and is absorbed by its event id.
}

#[test]
fn termii_webhook_without_a_configured_secret_is_refused() {
    let spec = helpers::spec(
        Channel::Sms,
        json!({"providerType": "TERMII", "name": "t", "senderId": "Acme",
               "credentials": {"apiKey": API_KEY}}),
    );
    let handler = webhook_handler_for(&spec).expect("registered");
    let body = report("Delivered");
    let headers = signed(Some(&sign(WEBHOOK_SECRET, &body)));
    let refused = handler.verify(&hook(&headers, &body), at());
    assert!(
        matches!(&refused, Err(WebhookError::Unauthorized(m)) if m.contains("webhookSecret")),
        "{refused:?}"
    );
}

#[test]
fn termii_statuses_map_case_insensitively_and_replays_keep_their_id() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    for (raw, state) in [
        ("Delivered", Some(MessageState::Delivered)),
        ("DELIVERED", Some(MessageState::Delivered)),
        ("Message Sent", Some(MessageState::Sent)),
        ("Message Failed", Some(MessageState::Failed)),
        ("Rejected", Some(MessageState::Failed)),
        ("Expired", Some(MessageState::Failed)),
        ("DND Active on Phone Number", Some(MessageState::Failed)),
        ("Something New", None),
    ] {
        let body = report(raw);
        let first = handler.parse(&hook(&headers, &body), at()).expect("parsed");
        let replay = handler.parse(&hook(&headers, &body), at()).expect("parsed");
        assert_eq!(first.len(), 1, "{raw}");
        let event = &first[0];
        assert_eq!(event.state, state, "{raw}");
        assert_eq!(event.event_id, replay[0].event_id);
        assert_eq!(event.raw_status, raw);
        assert_eq!(
            event.provider_message_id.as_deref(),
            Some("9122821270554876574")
        );
        assert_eq!(event.recipient.as_deref(), Some("+2348031234567"));
        assert_eq!(event.message_id, None);
        if state == Some(MessageState::Failed) {
            assert_eq!(event.reason.as_deref(), Some(raw));
        }
    }
    let upper = handler
        .parse(&hook(&headers, &report("DELIVERED")), at())
        .expect("parsed");
    let title = handler
        .parse(&hook(&headers, &report("Delivered")), at())
        .expect("parsed");
    assert_eq!(upper[0].event_id, title[0].event_id);

    let inbound = serde_json::to_vec(&json!({"type": "inbound", "id": "1", "message_id": "2",
        "sender": "2348031234567", "receiver": "Acme", "message": "STOP", "status": "Received"}))
    .expect("JSON");
    assert!(handler
        .parse(&hook(&headers, &inbound), at())
        .expect("parsed")
        .is_empty());
    assert!(matches!(
        handler.parse(&hook(&headers, b"status=Delivered"), at()),
        Err(WebhookError::Malformed(_))
    ));
}

// ---- management and probe ----

#[tokio::test]
async fn termii_message_status_is_refused_in_words() {
    let admin = sms_admin_for(&spec("http://127.0.0.1:9"), &helpers::client()).expect("registered");
    let error = admin
        .message_status("9122821270554876574")
        .await
        .expect_err("unsupported");
    assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
    assert!(
        error.message.starts_with("TERMII does not offer "),
        "{error}"
    );
}

#[tokio::test]
async fn termii_probe_reads_the_balance_and_fails_in_words() {
    let registry = ProviderRegistry::live(&helpers::client());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/get-balance"))
        .and(query_param("api_key", API_KEY))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"user": "Peter Mcleish", "balance": 7.85, "currency": "NGN"}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let report = registry.test(&spec(&server.uri())).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checks[1].status, CheckStatus::Passed);
    assert!(
        report.checks[1]
            .message
            .contains("Peter Mcleish holds 7.85 NGN"),
        "{:?}",
        report.checks[1]
    );
    assert!(!report.checks[1].message.contains(API_KEY));

    for (status, words) in [
        (401, "refused the API key"),
        (404, "no Termii API at baseUrl"),
        (500, "unavailable"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({"message": "nope"})))
            .mount(&server)
            .await;
        let report = registry.test(&spec(&server.uri())).await;
        assert!(!report.ok, "{status}");
        assert!(
            report.checks[1].message.contains(words),
            "{:?}",
            report.checks[1]
        );
        assert!(!report.checks[1].message.contains(API_KEY));
    }
    for (body, words) in [
        (json!({"message": "Invalid API key"}), "Invalid API key"),
        (json!({}), "is baseUrl your account's Termii API host?"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        let report = registry.test(&spec(&server.uri())).await;
        assert_eq!(report.checks[1].status, CheckStatus::Failed);
        assert!(
            report.checks[1].message.contains(words),
            "{:?}",
            report.checks[1]
        );
    }
    let report = registry.test(&spec(&helpers::refused_base_url())).await;
    assert!(report.checks[1]
        .message
        .starts_with("could not reach Termii"));
    assert!(!report.checks[1].message.contains(API_KEY));
}

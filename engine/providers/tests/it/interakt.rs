//! Interakt: the exact request against wiremock, error classification, the
//! webhook (Interakt-Signature: an UNCONFIRMED scheme, providers.md §13,
//! tested as §9 describes it), the API-key probe and the management
//! operations Interakt does not offer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::{
    Media, MediaKind, MessageExtras, MessageState, OutboundMessage, WhatsappTemplate,
};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::registry::{webhook_handler_for, whatsapp_admin_for};
use msgengine_providers::webhook::{Engagement, InboundWebhook, WebhookError, WebhookHandler};
use msgengine_providers::{
    sender_for, CheckStatus, FailureKind, ProviderError, ProviderRegistry, SendReceipt,
};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, header, only_request};

/// The dashboard's key: already base64 of `<secret>:`, sent as-is.
pub const API_KEY: &str = "TVZPai1Sb3VRbE9fN3ltYWxNOTlRTWxFd0kwckt2NmFBak4zSUNEQnRaczo=";
pub const WEBHOOK_SECRET: &str = "interakt-webhook-secret-0123";
pub const PATH: &str = "/v1/public/message/";
const INTERAKT_ID: &str = "9e4f2c1a-5b7d-4c3e-8f21-0a1b2c3d4e5f";

fn spec_json(base_url: &str) -> Value {
    json!({"providerType": "INTERAKT", "name": "ik", "accessToken": API_KEY,
           "webhookSecret": WEBHOOK_SECRET, "baseUrl": base_url})
}

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(Channel::Whatsapp, spec_json(base_url))
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(
        json!({"result": true, "message": "Message created successfully", "id": INTERAKT_ID}),
    )
}

async fn send_to(
    message: &OutboundMessage,
    response: ResponseTemplate,
) -> (Result<SendReceipt, ProviderError>, wiremock::Request) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let result = sender.send(message, "idem-3").await;
    (result, only_request(&server).await)
}

fn body(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

fn with_extras(extras: MessageExtras) -> OutboundMessage {
    let mut message = helpers::message(Channel::Whatsapp, "+919876543210", "Your invoice");
    message.extras = Some(Box::new(extras));
    message
}

#[tokio::test]
async fn interakt_text_send_posts_json_with_the_key_as_basic_credential() {
    let message = helpers::message(Channel::Whatsapp, "+919876543210", "Hello Ada");
    let (receipt, request) = send_to(&message, accepted()).await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: INTERAKT_ID.into(),
            state: MessageState::Sent,
            segments: None,
        })
    );
    assert_eq!(request.url.path(), PATH);
    // The key is sent as shown in the dashboard, not base64-encoded again.
    assert_eq!(
        header(&request, "authorization"),
        format!("Basic {API_KEY}")
    );
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-3");
    assert_eq!(
        body(&request),
        json!({"fullPhoneNumber": "919876543210", "callbackData": message.id.to_string(),
               "type": "Text", "data": {"message": "Hello Ada"}})
    );
}

#[tokio::test]
async fn interakt_template_send_carries_body_values_header_media_and_file_name() {
    let message = with_extras(MessageExtras {
        template: Some(WhatsappTemplate {
            name: "order_update".into(),
            language: "en".into(),
            variables: vec!["Ada".into(), "42".into()],
            header_media: Some(Media {
                kind: MediaKind::Document,
                link: Some("https://cdn.example.org/invoice.pdf".into()),
                media_id: None,
                filename: Some("invoice.pdf".into()),
            }),
        }),
        ..MessageExtras::default()
    });
    let (receipt, request) = send_to(&message, accepted()).await;

    assert!(receipt.is_ok());
    assert_eq!(
        body(&request),
        json!({"fullPhoneNumber": "919876543210", "callbackData": message.id.to_string(),
               "type": "Template",
               "template": {"name": "order_update", "languageCode": "en",
                            "headerValues": ["https://cdn.example.org/invoice.pdf"],
                            "fileName": "invoice.pdf", "bodyValues": ["Ada", "42"]}})
    );
}

#[tokio::test]
async fn interakt_media_send_uses_the_media_url_and_the_text_as_caption() {
    // Media session messages: field names from public integrations (§9 only
    // says "and media types"), unconfirmed.
    let message = with_extras(MessageExtras {
        media: Some(Media {
            kind: MediaKind::Image,
            link: Some("https://cdn.example.org/a.jpg".into()),
            media_id: None,
            filename: None,
        }),
        ..MessageExtras::default()
    });
    let (receipt, request) = send_to(&message, accepted()).await;

    assert!(receipt.is_ok());
    assert_eq!(
        body(&request),
        json!({"fullPhoneNumber": "919876543210", "callbackData": message.id.to_string(),
               "type": "Image",
               "data": {"message": "Your invoice", "mediaUrl": "https://cdn.example.org/a.jpg"}})
    );
}

#[tokio::test]
async fn interakt_refuses_media_by_id_before_calling() {
    let message = with_extras(MessageExtras {
        media: Some(Media {
            kind: MediaKind::Video,
            link: None,
            media_id: Some("1013859600285441".into()),
            filename: None,
        }),
        ..MessageExtras::default()
    });
    let server = MockServer::start().await;
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let error = sender.send(&message, "k").await.expect_err("refused");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert!(error.message.contains("by link only"), "{error}");
    assert!(server
        .received_requests()
        .await
        .expect("recorded")
        .is_empty());
}

async fn refused_with(response: ResponseTemplate) -> ProviderError {
    let message = helpers::message(Channel::Whatsapp, "+919876543210", "Hi");
    let (result, _) = send_to(&message, response).await;
    let error = result.expect_err("Interakt refuses");
    assert_no_secret(&error, &[API_KEY, WEBHOOK_SECRET]);
    error
}

#[tokio::test]
async fn interakt_errors_are_classified_with_the_providers_reason() {
    let error = refused_with(
        ResponseTemplate::new(401)
            .set_body_json(json!({"result": false, "message": "Invalid token provided"})),
    )
    .await;
    assert_eq!(
        (error.kind, error.http_status, error.message.as_str()),
        (FailureKind::Permanent, Some(401), "Invalid token provided")
    );
    let error = refused_with(
        ResponseTemplate::new(400)
            .set_body_json(json!({"result": false, "message": "Template order_update not found"})),
    )
    .await;
    assert_eq!(error.kind, FailureKind::Permanent);
    let error = refused_with(
        ResponseTemplate::new(200)
            .set_body_json(json!({"result": false, "message": "Invalid phone number"})),
    )
    .await;
    assert_eq!(error.kind, FailureKind::Permanent);

    let error = refused_with(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "60")
            .set_body_json(json!({"message": "Rate limit exceeded for this resource"})),
    )
    .await;
    assert_eq!(error.kind, FailureKind::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(60)));

    let error = refused_with(ResponseTemplate::new(502).set_body_string("<html/>")).await;
    assert_eq!(
        (error.kind, error.message.as_str()),
        (FailureKind::Transient, "HTTP 502 Bad Gateway")
    );
    let error = refused_with(accepted().set_delay(Duration::from_secs(2))).await;
    assert_eq!(error.kind, FailureKind::Timeout);
    let error = refused_with(
        ResponseTemplate::new(400)
            .set_body_json(json!({"result": false, "message": format!("Bad key {API_KEY}")})),
    )
    .await;
    assert_eq!(error.message, "Bad key ***");
}

#[tokio::test]
async fn interakt_refused_connection_is_transient() {
    let sender =
        sender_for(&spec(&helpers::refused_base_url()), &helpers::client()).expect("supported");
    let message = helpers::message(Channel::Whatsapp, "+919876543210", "Hi");
    let error = sender.send(&message, "k").await.expect_err("no server");
    assert_eq!(error.kind, FailureKind::Transient);
    assert!(error.message.contains("could not connect"), "{error}");
}

// ---- webhook ---------------------------------------------------------------

/// `sha256=<hex>` of HMAC-SHA256(key, body), computed here independently.
fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn handler() -> Box<dyn WebhookHandler> {
    webhook_handler_for(&spec("http://127.0.0.1:9")).expect("INTERAKT has a webhook handler")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_100, 0).expect("valid time")
}

fn headers(signature: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(s) = signature {
        headers.insert(
            "interakt-signature",
            HeaderValue::from_str(s).expect("ascii"),
        );
    }
    headers
}

fn post<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "POST",
        url: "https://hooks.example.org/api/webhooks/whatsapp/p2",
        headers,
        query: "",
        body,
    }
}

fn payload(kind: &str, extra: Value) -> Vec<u8> {
    let mut message = json!({"id": INTERAKT_ID, "chat_message_type": "PublicApi",
        "message_status": "Delivered", "callback_data": "0190f0e1-aaaa-7bbb-8ccc-123456789abc",
        "received_at_utc": "2023-11-14T22:13:20.000000",
        "delivered_at_utc": "2023-11-14T22:13:25.000000",
        "seen_at_utc": "2023-11-14T22:13:29.000000", "meta_data": {}});
    if let (Some(m), Value::Object(extra)) = (message.as_object_mut(), extra) {
        m.extend(extra);
    }
    serde_json::to_vec(
        &json!({"timestamp": "2023-11-14T22:13:30.123456Z", "type": kind,
        "data": {"customer": {"id": "c1", "channel_phone_number": "919999999999",
                              "phone_number": "9876543210", "country_code": "+91", "traits": {}},
                 "message": message}}),
    )
    .expect("serialisable")
}

#[test]
fn interakt_webhook_accepts_the_documented_signature() {
    let body = payload("message_api_delivered", json!({}));
    let headers = headers(Some(&signature(WEBHOOK_SECRET, &body)));
    assert_eq!(handler().verify(&post(&headers, &body), now()), Ok(()));
}

#[test]
fn interakt_webhook_refuses_tampered_bodies_wrong_secrets_and_missing_signatures() {
    let body = payload("message_api_delivered", json!({}));
    let good = signature(WEBHOOK_SECRET, &body);
    let tampered = payload("message_api_read", json!({}));
    for (headers, body, case) in [
        (headers(Some(&good)), tampered.as_slice(), "tampered body"),
        (
            headers(Some(&signature("another-secret", &body))),
            body.as_slice(),
            "wrong secret",
        ),
        (headers(None), body.as_slice(), "no signature"),
        (
            headers(Some(&good[7..])),
            body.as_slice(),
            "no sha256= prefix",
        ),
    ] {
        let result = handler().verify(&post(&headers, body), now());
        assert!(
            matches!(result, Err(WebhookError::Unauthorized(_))),
            "{case}: {result:?}"
        );
    }
    let mut json = spec_json("http://127.0.0.1:9");
    json.as_object_mut().map(|o| o.remove("webhookSecret"));
    let unconfigured =
        webhook_handler_for(&helpers::spec(Channel::Whatsapp, json)).expect("handler");
    let headers = headers(Some(&good));
    assert!(matches!(
        unconfigured.verify(&post(&headers, &body), now()),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn interakt_webhook_has_no_signed_timestamp_so_an_old_delivery_still_verifies() {
    // §9's scheme signs only the body; replays are deduplicated by event id.
    let body = payload("message_api_sent", json!({}));
    let headers = headers(Some(&signature(WEBHOOK_SECRET, &body)));
    let much_later = now() + chrono::Duration::days(30);
    assert_eq!(handler().verify(&post(&headers, &body), much_later), Ok(()));
}

fn parse(body: &[u8]) -> Vec<msgengine_providers::webhook::WebhookEvent> {
    let headers = headers(Some(&signature(WEBHOOK_SECRET, body)));
    handler()
        .parse(&post(&headers, body), now())
        .expect("parsed")
}

#[test]
fn interakt_webhook_events_map_onto_engine_states() {
    for (kind, state, at) in [
        ("message_api_sent", MessageState::Sent, 1_700_000_010),
        (
            "message_api_delivered",
            MessageState::Delivered,
            1_700_000_005,
        ),
        ("message_api_read", MessageState::Read, 1_700_000_009),
        ("message_api_failed", MessageState::Failed, 1_700_000_010),
        (
            "message_campaign_delivered",
            MessageState::Delivered,
            1_700_000_005,
        ),
    ] {
        let events = parse(&payload(kind, json!({})));
        assert_eq!(events.len(), 1, "{kind}");
        let event = &events[0];
        assert_eq!(event.state, Some(state), "{kind}");
        assert_eq!(event.raw_status, kind);
        assert_eq!(event.occurred_at.timestamp(), at, "{kind}");
        assert_eq!(event.provider_message_id.as_deref(), Some(INTERAKT_ID));
        assert_eq!(
            event.message_id.as_deref(),
            Some("0190f0e1-aaaa-7bbb-8ccc-123456789abc")
        );
        assert_eq!(event.recipient.as_deref(), Some("+919876543210"));
        assert_eq!(event.suppress, None);
    }
    let failed = parse(&payload(
        "message_api_failed",
        json!({"message_status": "Failed",
               "channel_failure_reason": "Message undeliverable (131026)"}),
    ));
    assert_eq!(
        failed[0].reason.as_deref(),
        Some("Message undeliverable (131026)")
    );
    let clicked = parse(&payload("message_api_clicked", json!({})));
    assert_eq!(
        (clicked[0].state, clicked[0].engagement),
        (Some(MessageState::Delivered), Some(Engagement::Clicked))
    );
}

#[test]
fn interakt_webhook_skips_inbound_and_other_events_and_refuses_garbage() {
    assert!(parse(&payload("message_received", json!({}))).is_empty());
    assert!(parse(&payload("workflow_response_update", json!({}))).is_empty());
    let headers = headers(None);
    assert!(matches!(
        handler().parse(&post(&headers, b"[1, 2"), now()),
        Err(WebhookError::Malformed(_))
    ));
}

#[test]
fn interakt_webhook_replay_gives_the_same_event_id() {
    let body = payload("message_api_read", json!({}));
    let first = parse(&body);
    let headers = headers(Some(&signature(WEBHOOK_SECRET, &body)));
    let again = handler()
        .parse(&post(&headers, &body), now() + chrono::Duration::hours(3))
        .expect("parsed");
    assert_eq!(first[0].event_id, again[0].event_id);
    assert_eq!(
        first[0].event_id,
        format!("{INTERAKT_ID}:message_api_read:2023-11-14T22:13:30.123456Z")
    );
    let delivered = parse(&payload("message_api_delivered", json!({})));
    assert_ne!(first[0].event_id, delivered[0].event_id);
}

// ---- probe ------------------------------------------------------------------

async fn probe_answered(response: ResponseTemplate) -> (msgengine_providers::Check, MockServer) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec(&server.uri()))
        .await;
    (report.checks[1].clone(), server)
}

#[tokio::test]
async fn interakt_probe_posts_an_empty_request_and_passes_when_only_the_content_is_refused() {
    let (check, server) = probe_answered(ResponseTemplate::new(400).set_body_json(
        json!({"result": false, "message": "phoneNumber or fullPhoneNumber is required"}),
    ))
    .await;
    assert_eq!(check.status, CheckStatus::Passed, "{}", check.message);
    assert!(
        check.message.contains("no read-only API"),
        "{}",
        check.message
    );
    assert!(check.message.contains("nothing can be sent"));
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        format!("Basic {API_KEY}")
    );
    assert_eq!(body(&request), json!({}));
}

#[tokio::test]
async fn interakt_probe_fails_with_words_on_a_refused_key_or_a_wrong_base_url() {
    for (status, body, words) in [
        (
            401,
            json!({"result": false, "message": "Invalid token provided"}),
            "Interakt refused the API key",
        ),
        (
            403,
            json!({"result": false, "message": "Invalid token provided"}),
            "Interakt refused the API key",
        ),
        (
            400,
            json!({"result": false, "message": "Invalid token provided"}),
            "Interakt refused the API key",
        ),
        (
            404,
            json!({"detail": "Not found."}),
            "does not serve Interakt",
        ),
        (
            429,
            json!({"message": "Rate limit exceeded for this resource"}),
            "rate limiting",
        ),
    ] {
        let (check, _server) =
            probe_answered(ResponseTemplate::new(status).set_body_json(body)).await;
        assert_eq!(check.status, CheckStatus::Failed, "{status}");
        assert!(check.message.contains(words), "{status}: {}", check.message);
        assert!(!check.message.contains(API_KEY));
    }
    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec(&helpers::refused_base_url()))
        .await;
    assert_eq!(report.checks[1].status, CheckStatus::Failed);
    assert!(report.checks[1]
        .message
        .starts_with("could not reach Interakt"));
}

// ---- management ---------------------------------------------------------------

#[tokio::test]
async fn interakt_management_is_unsupported_in_words() {
    let admin = whatsapp_admin_for(&spec("http://127.0.0.1:9"), &helpers::client())
        .expect("INTERAKT answers management");
    let errors = [
        admin.list_templates().await.err(),
        admin
            .upload_media(vec![1], "image/png", "a.png")
            .await
            .err(),
        admin.message_status(INTERAKT_ID).await.err(),
        admin
            .setup_webhook("https://hooks.example.org/x")
            .await
            .err(),
    ];
    for error in errors {
        let error = error.expect("unsupported");
        assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
        assert!(error
            .message
            .starts_with("Interakt's public API does not offer"));
    }
}

//! Meta WhatsApp Cloud API: the exact Graph requests (send, templates, media,
//! probe) against wiremock, error classification by Meta's error codes, and
//! the webhook (handshake, X-Hub-Signature-256, statuses).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use msgengine_domain::message::{
    Media, MediaKind, MessageExtras, MessageState, OutboundMessage, WhatsappTemplate,
};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::manage::{TemplateDraft, WhatsappAdmin};
use msgengine_providers::registry::{webhook_handler_for, whatsapp_admin_for};
use msgengine_providers::webhook::{InboundWebhook, WebhookError, WebhookHandler, WebhookReply};
use msgengine_providers::{
    sender_for, CheckStatus, FailureKind, ProviderError, ProviderRegistry, SendReceipt,
};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, header, only_request};

pub const TOKEN: &str = "EAAGm0PX4ZCpsBAKZBZCtoken0123456789";
pub const APP_SECRET: &str = "app-secret-0123456789abcdef";
pub const VERIFY_TOKEN: &str = "verify-token-42-abcdef";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const WABA_ID: &str = "102290129340398";
pub const PATH: &str = "/v21.0/106540352242922/messages";
const WAMID: &str = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";

fn spec_json(base_url: &str) -> Value {
    json!({"providerType": "META_CLOUD", "name": "meta", "accessToken": TOKEN,
           "phoneNumberId": PHONE_NUMBER_ID, "businessAccountId": WABA_ID,
           "webhookVerifyToken": VERIFY_TOKEN, "webhookSecret": APP_SECRET,
           "baseUrl": base_url})
}

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(Channel::Whatsapp, spec_json(base_url))
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "2348031234567", "wa_id": "2348031234567"}],
        "messages": [{"id": WAMID, "message_status": "accepted"}]
    }))
}

/// Sends `message` to a server answering `response`; the request it got too.
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
    let result = sender.send(message, "idem-9").await;
    (result, only_request(&server).await)
}

fn body(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

fn with_extras(extras: MessageExtras) -> OutboundMessage {
    let mut message = helpers::message(Channel::Whatsapp, "+2348031234567", "Your invoice");
    message.extras = Some(Box::new(extras));
    message
}

#[tokio::test]
async fn meta_text_send_posts_the_documented_body_with_a_bearer_token() {
    let message = helpers::message(Channel::Whatsapp, "+2348031234567", "Hello Ada");
    let (receipt, request) = send_to(&message, accepted()).await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: WAMID.into(),
            state: MessageState::Sent,
            segments: None,
        })
    );
    assert_eq!(request.url.path(), PATH);
    assert_eq!(header(&request, "authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-9");
    assert_eq!(
        body(&request),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "2348031234567", "type": "text",
               "text": {"body": "Hello Ada", "preview_url": false},
               "biz_opaque_callback_data": message.id.to_string()})
    );
}

#[tokio::test]
async fn meta_template_send_carries_language_header_media_and_body_variables() {
    let message = with_extras(MessageExtras {
        template: Some(WhatsappTemplate {
            name: "order_update".into(),
            language: "en_US".into(),
            variables: vec!["Ada".into(), "42".into()],
            header_media: Some(Media {
                kind: MediaKind::Document,
                link: None,
                media_id: Some("1013859600285441".into()),
                filename: Some("invoice.pdf".into()),
            }),
        }),
        ..MessageExtras::default()
    });
    let (receipt, request) = send_to(&message, accepted()).await;

    assert!(receipt.is_ok());
    assert_eq!(
        body(&request),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "2348031234567", "type": "template",
               "template": {"name": "order_update", "language": {"code": "en_US"},
                 "components": [
                   {"type": "header", "parameters": [{"type": "document",
                       "document": {"id": "1013859600285441", "filename": "invoice.pdf"}}]},
                   {"type": "body", "parameters": [{"type": "text", "text": "Ada"},
                                                   {"type": "text", "text": "42"}]}]},
               "biz_opaque_callback_data": message.id.to_string()})
    );
}

#[tokio::test]
async fn meta_media_send_uses_the_link_and_the_text_as_caption() {
    for (kind, media, expected) in [
        (
            "image",
            Media {
                kind: MediaKind::Image,
                link: Some("https://cdn.example.org/a.jpg".into()),
                media_id: None,
                filename: None,
            },
            json!({"link": "https://cdn.example.org/a.jpg", "caption": "Your invoice"}),
        ),
        (
            "document",
            Media {
                kind: MediaKind::Document,
                link: Some("https://cdn.example.org/i.pdf".into()),
                media_id: None,
                filename: Some("invoice.pdf".into()),
            },
            json!({"link": "https://cdn.example.org/i.pdf", "caption": "Your invoice",
                   "filename": "invoice.pdf"}),
        ),
        (
            "audio",
            Media {
                kind: MediaKind::Audio,
                link: None,
                media_id: Some("555".into()),
                filename: None,
            },
            json!({"id": "555"}),
        ),
        (
            "video",
            Media {
                kind: MediaKind::Video,
                link: None,
                media_id: Some("556".into()),
                filename: None,
            },
            json!({"id": "556", "caption": "Your invoice"}),
        ),
    ] {
        let message = with_extras(MessageExtras {
            media: Some(media),
            ..MessageExtras::default()
        });
        let (receipt, request) = send_to(&message, accepted()).await;
        assert!(receipt.is_ok(), "{kind}");
        let sent = body(&request);
        assert_eq!(sent["type"], json!(kind));
        assert_eq!(sent[kind], expected, "{kind}");
        assert_eq!(sent["messaging_product"], json!("whatsapp"));
    }
}

fn graph_error(code: i64, message: &str) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code,
                     "error_data": {"messaging_product": "whatsapp", "details": "see docs"},
                     "fbtrace_id": "AbCdEf"}})
}

async fn refused(status: u16, body: Value) -> ProviderError {
    refused_with(ResponseTemplate::new(status).set_body_json(body)).await
}

async fn refused_with(response: ResponseTemplate) -> ProviderError {
    let message = helpers::message(Channel::Whatsapp, "+2348031234567", "Hi");
    let (result, _) = send_to(&message, response).await;
    let error = result.expect_err("Meta refuses");
    assert_no_secret(&error, &[TOKEN, APP_SECRET, VERIFY_TOKEN]);
    error
}

#[tokio::test]
async fn meta_rate_limit_codes_are_rate_limited_with_retry_after_when_given() {
    for code in [80007, 130429, 131048, 131056] {
        let error = refused(400, graph_error(code, "(#130429) Rate limit hit")).await;
        assert_eq!(error.kind, FailureKind::RateLimited, "{code}");
        assert_eq!(error.code, Some(code.to_string()));
        assert_eq!(error.retry_after, None);
    }
    let error = refused_with(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "30")
            .set_body_json(graph_error(4, "(#4) Application request limit reached")),
    )
    .await;
    assert_eq!(error.kind, FailureKind::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn meta_auth_and_recipient_errors_are_permanent_with_code_and_reason() {
    let error = refused(
        401,
        graph_error(190, "Error validating access token: Session has expired"),
    )
    .await;
    assert_eq!(
        (error.kind, error.http_status, error.code.as_deref()),
        (FailureKind::Permanent, Some(401), Some("190"))
    );
    for code in [131026, 131047, 132001] {
        let error = refused(400, graph_error(code, "(#131026) Message undeliverable")).await;
        assert_eq!(error.kind, FailureKind::Permanent, "{code}");
        assert_eq!(
            error.message,
            "(#131026) Message undeliverable: see docs (fbtrace_id AbCdEf)"
        );
    }
}

#[tokio::test]
async fn meta_server_failures_timeouts_and_refused_connections_are_retryable() {
    let error = refused(500, graph_error(2, "Service temporarily unavailable")).await;
    assert_eq!(error.kind, FailureKind::Transient);
    let error = refused(400, graph_error(131000, "Something went wrong")).await;
    assert_eq!(error.kind, FailureKind::Transient);
    let error = refused_with(ResponseTemplate::new(503).set_body_string("<html/>")).await;
    assert_eq!(
        (error.kind, error.message.as_str()),
        (FailureKind::Transient, "HTTP 503 Service Unavailable")
    );
    let error = refused_with(accepted().set_delay(Duration::from_secs(2))).await;
    assert_eq!(error.kind, FailureKind::Timeout);

    let sender =
        sender_for(&spec(&helpers::refused_base_url()), &helpers::client()).expect("supported");
    let message = helpers::message(Channel::Whatsapp, "+2348031234567", "Hi");
    let error = sender.send(&message, "k").await.expect_err("no server");
    assert_eq!(error.kind, FailureKind::Transient);
    assert!(!error.message.contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn meta_text_that_echoes_a_secret_is_scrubbed() {
    let echoed = format!("Invalid OAuth access token {TOKEN} for app secret {APP_SECRET}");
    let error = refused(400, graph_error(100, &echoed)).await;
    assert_eq!(error.kind, FailureKind::Permanent);
    assert!(
        error.message.contains("token *** for app secret ***"),
        "{error}"
    );
}

// ---- webhook ---------------------------------------------------------------

/// `sha256=<hex>` of HMAC-SHA256(key, body), computed here independently.
fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn handler() -> Box<dyn WebhookHandler> {
    webhook_handler_for(&spec("http://127.0.0.1:9")).expect("META_CLOUD has a webhook handler")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_100, 0).expect("valid time")
}

fn headers(signature: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(s) = signature {
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(s).expect("ascii"),
        );
    }
    headers
}

fn post<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "POST",
        url: "https://hooks.example.org/api/webhooks/whatsapp/p1",
        headers,
        query: "",
        body,
    }
}

/// A notification with every status kind, an inbound message and a template update.
fn notification() -> Vec<u8> {
    let statuses = json!([
        {"id": WAMID, "status": "sent", "timestamp": "1700000000", "recipient_id": "2348031234567",
         "biz_opaque_callback_data": "0190f0e1-aaaa-7bbb-8ccc-123456789abc",
         "conversation": {"id": "c1", "expiration_timestamp": "1700086400", "origin": {"type": "utility"}},
         "pricing": {"billable": true, "pricing_model": "CBP", "category": "utility"}},
        {"id": WAMID, "status": "delivered", "timestamp": "1700000005", "recipient_id": "2348031234567"},
        {"id": WAMID, "status": "read", "timestamp": "1700000009", "recipient_id": "2348031234567"},
        {"id": "wamid.failed", "status": "failed", "timestamp": "1700000010",
         "recipient_id": "2348039999999",
         "errors": [{"code": 131026, "title": "Message undeliverable",
                     "message": "Message undeliverable",
                     "error_data": {"details": "The recipient is not on WhatsApp"},
                     "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}
    ]);
    // Meta escapes non-ASCII as \uXXXX; the signature covers these exact bytes.
    let body = json!({"object": "whatsapp_business_account", "entry": [
        {"id": WABA_ID, "changes": [
            {"field": "messages", "value": {"messaging_product": "whatsapp",
              "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
              "statuses": statuses}},
            {"field": "messages", "value": {"messaging_product": "whatsapp",
              "contacts": [{"profile": {"name": "Ada"}, "wa_id": "2348031234567"}],
              "messages": [{"from": "2348031234567", "id": "wamid.in", "timestamp": "1700000011",
                            "type": "text", "text": {"body": "thanks"}}]}},
            {"field": "message_template_status_update", "value": {"event": "APPROVED",
              "message_template_id": 1, "message_template_name": "order_update",
              "message_template_language": "en_US", "reason": "NONE"}}]}]});
    let text = serde_json::to_string(&body).expect("serialisable");
    text.replace("thanks", r"merci, caf\u00e9").into_bytes()
}

#[test]
fn meta_webhook_accepts_the_app_secret_signature_of_the_raw_body() {
    let body = notification();
    let headers = headers(Some(&signature(APP_SECRET, &body)));
    assert_eq!(handler().verify(&post(&headers, &body), now()), Ok(()));
    // Uppercase hex is the same signature.
    let upper = format!(
        "sha256={}",
        signature(APP_SECRET, &body)[7..].to_uppercase()
    );
    let headers = self::headers(Some(&upper));
    assert_eq!(handler().verify(&post(&headers, &body), now()), Ok(()));
}

#[test]
fn meta_webhook_refuses_tampered_bodies_wrong_secrets_and_missing_signatures() {
    let body = notification();
    let good = signature(APP_SECRET, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
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
        (headers(Some("sha256=")), body.as_slice(), "empty signature"),
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
fn meta_webhook_has_no_signed_timestamp_so_an_old_delivery_still_verifies() {
    // Meta signs only the body (providers.md §5.2): there is no timestamp to
    // refuse as stale. Replays are made harmless by stable event ids instead.
    let body = notification();
    let headers = headers(Some(&signature(APP_SECRET, &body)));
    let much_later = now() + chrono::Duration::days(30);
    assert_eq!(handler().verify(&post(&headers, &body), much_later), Ok(()));
}

#[test]
fn meta_webhook_statuses_become_events_and_inbound_messages_are_skipped() {
    let body = notification();
    let headers = headers(Some(&signature(APP_SECRET, &body)));
    let events = handler()
        .parse(&post(&headers, &body), now())
        .expect("parsed");

    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.raw_status.as_str(), e.state, e.occurred_at.timestamp()))
        .collect();
    assert_eq!(
        summary,
        [
            ("sent", Some(MessageState::Sent), 1_700_000_000),
            ("delivered", Some(MessageState::Delivered), 1_700_000_005),
            ("read", Some(MessageState::Read), 1_700_000_009),
            ("failed", Some(MessageState::Failed), 1_700_000_010),
        ]
    );
    let sent = &events[0];
    assert_eq!(sent.provider_message_id.as_deref(), Some(WAMID));
    assert_eq!(
        sent.message_id.as_deref(),
        Some("0190f0e1-aaaa-7bbb-8ccc-123456789abc")
    );
    assert_eq!(sent.recipient.as_deref(), Some("+2348031234567"));
    assert_eq!(sent.event_id, format!("{WAMID}:sent:1700000000"));
    let failed = &events[3];
    assert_eq!(failed.error_code.as_deref(), Some("131026"));
    assert_eq!(
        failed.reason.as_deref(),
        Some("Message undeliverable: The recipient is not on WhatsApp")
    );
    assert_eq!(failed.suppress, None);
    assert!(events.iter().all(|e| e.engagement.is_none()));
}

#[test]
fn meta_webhook_replay_gives_the_same_event_ids() {
    let body = notification();
    let headers = headers(Some(&signature(APP_SECRET, &body)));
    let first = handler()
        .parse(&post(&headers, &body), now())
        .expect("parsed");
    let later = now() + chrono::Duration::hours(5);
    let again = handler()
        .parse(&post(&headers, &body), later)
        .expect("parsed");
    let ids = |events: &[msgengine_providers::webhook::WebhookEvent]| -> Vec<String> {
        events.iter().map(|e| e.event_id.clone()).collect()
    };
    assert_eq!(ids(&first), ids(&again));
    let mut unique = ids(&first);
    unique.dedup();
    assert_eq!(unique.len(), 4);
}

#[test]
fn meta_webhook_refuses_bodies_that_are_not_notifications() {
    let handler = handler();
    for body in [&b"not json"[..], br#"{"object": "page", "entry": []}"#] {
        let headers = headers(Some(&signature(APP_SECRET, body)));
        assert!(matches!(
            handler.parse(&post(&headers, body), now()),
            Err(WebhookError::Malformed(_))
        ));
    }
    let only_inbound = br#"{"object": "whatsapp_business_account", "entry": [{"id": "1",
        "changes": [{"field": "messages", "value": {"messages": [{"id": "wamid.in"}]}}]}]}"#;
    let headers = headers(None);
    assert_eq!(
        handler.parse(&post(&headers, only_inbound), now()),
        Ok(vec![])
    );
}

fn get<'a>(headers: &'a HeaderMap, query: &'a str) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "GET",
        url: "https://hooks.example.org/api/webhooks/whatsapp/p1",
        headers,
        query,
        body: b"",
    }
}

#[test]
fn meta_handshake_echoes_the_challenge_only_for_the_verify_token() {
    let headers = HeaderMap::new();
    let ok = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444");
    assert_eq!(
        handler().handshake(&get(&headers, &ok)),
        Some(Ok(WebhookReply::Challenge("1158201444".into())))
    );
    for query in [
        "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444".to_owned(),
        "hub.mode=subscribe&hub.challenge=1158201444".to_owned(),
        format!("hub.mode=other&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"),
    ] {
        let answer = handler().handshake(&get(&headers, &query));
        assert!(matches!(answer, Some(Err(_))), "{query}: {answer:?}");
    }
}

// ---- probe ------------------------------------------------------------------

async fn probe_against(server: &MockServer) -> msgengine_providers::TestReport {
    ProviderRegistry::live(&helpers::client())
        .test(&spec(&server.uri()))
        .await
}

#[tokio::test]
async fn meta_probe_looks_up_the_phone_number_and_the_business_account() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{PHONE_NUMBER_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "display_phone_number": "+1 555-000-1111", "verified_name": "Acme",
            "id": PHONE_NUMBER_ID})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{WABA_ID}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": WABA_ID, "name": "Acme"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let report = probe_against(&server).await;

    assert!(report.ok, "{report:?}");
    assert_eq!(report.checks[1].status, CheckStatus::Passed);
    assert!(
        report.checks[1].message.contains("+1 555-000-1111 (Acme)"),
        "{}",
        report.checks[1].message
    );
    let requests = server.received_requests().await.expect("recorded");
    let phone = &requests[0];
    assert_eq!(header(phone, "authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(
        phone.url.query(),
        Some("fields=display_phone_number%2Cverified_name")
    );
}

#[tokio::test]
async fn meta_probe_explains_a_refused_token_and_an_unknown_number() {
    for (status, body, words) in [
        (
            401,
            graph_error(190, "Error validating access token: Session has expired"),
            "Meta refused the access token",
        ),
        (
            404,
            json!({"error": {"message": "Unknown path components", "code": 2500}}),
            "does not know 106540352242922",
        ),
        (
            400,
            json!({"error": {"message": "Unsupported get request. Object with ID '106540352242922' does not exist",
                             "code": 100, "error_subcode": 33}}),
            "does not know 106540352242922",
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/v21.0/{PHONE_NUMBER_ID}")))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let report = probe_against(&server).await;
        assert!(!report.ok);
        let check = &report.checks[1];
        assert_eq!(check.status, CheckStatus::Failed);
        assert!(check.message.contains(words), "{status}: {}", check.message);
        assert!(!check.message.contains(TOKEN));
    }
}

#[tokio::test]
async fn meta_probe_reports_an_unreachable_graph_in_words() {
    let report = ProviderRegistry::live(&helpers::client())
        .test(&spec(&helpers::refused_base_url()))
        .await;
    assert_eq!(report.checks[1].status, CheckStatus::Failed);
    assert!(report.checks[1]
        .message
        .starts_with("could not reach Meta's Graph API"));
}

// ---- management ---------------------------------------------------------------

fn admin(base_url: &str) -> std::sync::Arc<dyn WhatsappAdmin> {
    whatsapp_admin_for(&spec(base_url), &helpers::client()).expect("META_CLOUD has management")
}

#[tokio::test]
async fn meta_lists_templates_page_by_page_with_the_after_cursor() {
    let server = MockServer::start().await;
    let templates_path = format!("/v21.0/{WABA_ID}/message_templates");
    let template = |name: &str, id: &str| {
        json!({"name": name, "language": "en_US", "status": "APPROVED", "category": "UTILITY",
               "id": id, "components": [{"type": "HEADER", "format": "TEXT", "text": "Order"},
                                        {"type": "BODY", "text": "Hi {{1}}"}]})
    };
    Mock::given(method("GET"))
        .and(path(templates_path.clone()))
        .and(wiremock::matchers::query_param("after", "CURSOR2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [template("second", "2")],
            "paging": {"cursors": {"before": "B", "after": "END"}}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(templates_path))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [template("first", "1")],
            "paging": {"cursors": {"before": "A", "after": "CURSOR2"},
                       "next": format!("https://graph.facebook.com/v21.0/{WABA_ID}/message_templates?access_token={TOKEN}&after=CURSOR2")}})))
        .mount(&server)
        .await;

    let templates = admin(&server.uri()).list_templates().await.expect("listed");

    let names: Vec<_> = templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(templates[0].id.as_deref(), Some("1"));
    assert_eq!(templates[0].body.as_deref(), Some("Hi {{1}}"));
    assert_eq!(templates[0].status, "APPROVED");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].url.query(), Some("limit=100"));
    assert_eq!(requests[1].url.query(), Some("limit=100&after=CURSOR2"));
    assert_eq!(
        header(&requests[1], "authorization"),
        format!("Bearer {TOKEN}")
    );
}

#[tokio::test]
async fn meta_creates_a_template_with_components_and_examples() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{WABA_ID}/message_templates")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "594425479261596", "status": "PENDING", "category": "UTILITY"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let draft = TemplateDraft {
        name: "order_update".into(),
        language: "en_US".into(),
        category: "utility".into(),
        body: "Hi {{1}}, order {{2}} has shipped.".into(),
        examples: vec!["Ada".into(), "42".into()],
        header_text: Some("Your order".into()),
        footer_text: Some("Reply STOP to opt out".into()),
    };

    let created = admin(&server.uri())
        .create_template(&draft)
        .await
        .expect("created");

    assert_eq!(created.id.as_deref(), Some("594425479261596"));
    assert_eq!(
        (created.status.as_str(), created.category.as_str()),
        ("PENDING", "UTILITY")
    );
    let request = only_request(&server).await;
    assert_eq!(header(&request, "authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(
        body(&request),
        json!({"name": "order_update", "category": "UTILITY", "language": "en_US",
               "components": [
                 {"type": "HEADER", "format": "TEXT", "text": "Your order"},
                 {"type": "BODY", "text": "Hi {{1}}, order {{2}} has shipped.",
                  "example": {"body_text": [["Ada", "42"]]}},
                 {"type": "FOOTER", "text": "Reply STOP to opt out"}]})
    );
}

#[tokio::test]
async fn meta_uploads_media_as_multipart_and_returns_the_media_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PHONE_NUMBER_ID}/media")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1013859600285441"})))
        .expect(1)
        .mount(&server)
        .await;
    let bytes = vec![0xff, 0xd8, 0xff, 0x00, 0x0d, 0x0a];

    let id = admin(&server.uri())
        .upload_media(bytes.clone(), "image/jpeg", "photo.jpg")
        .await
        .expect("uploaded");

    assert_eq!(id, "1013859600285441");
    let request = only_request(&server).await;
    assert_eq!(header(&request, "authorization"), format!("Bearer {TOKEN}"));
    let content_type = header(&request, "content-type");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart content type");
    let mut expected = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/jpeg\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    expected.extend_from_slice(&bytes);
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(request.body, expected);
}

#[tokio::test]
async fn meta_management_errors_are_classified_and_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{WABA_ID}/message_templates")))
        .respond_with(ResponseTemplate::new(401).set_body_json(graph_error(
            190,
            &format!("Invalid OAuth access token {TOKEN}"),
        )))
        .mount(&server)
        .await;
    let error = admin(&server.uri())
        .list_templates()
        .await
        .expect_err("refused");
    assert_eq!(
        (error.kind, error.code.as_deref()),
        (FailureKind::Permanent, Some("190"))
    );
    assert_no_secret(&error, &[TOKEN]);

    let mut json = spec_json(&server.uri());
    json.as_object_mut().map(|o| o.remove("businessAccountId"));
    let no_waba = whatsapp_admin_for(&helpers::spec(Channel::Whatsapp, json), &helpers::client())
        .expect("management");
    let error = no_waba.list_templates().await.expect_err("misconfigured");
    assert_eq!(error.code.as_deref(), Some("msgengine_misconfigured"));
    assert!(error.message.contains("businessAccountId"));
}

#[tokio::test]
async fn meta_has_no_status_lookup_or_webhook_setup_and_says_why() {
    let admin = admin("http://127.0.0.1:9");
    let error = admin.message_status(WAMID).await.expect_err("unsupported");
    assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
    assert!(error
        .message
        .contains("statuses arrive only through the webhook"));
    let error = admin
        .setup_webhook("https://hooks.example.org/api/webhooks/whatsapp/p1")
        .await
        .expect_err("unsupported");
    assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
    assert!(error.message.contains("Meta app dashboard"), "{error}");
}

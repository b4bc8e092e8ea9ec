//! Gupshup WhatsApp: the exact requests (session text and media, template,
//! template list), the receipt, the token-protected callbacks (Gupshup does
//! not sign them, providers.md §7.3/§13), management and the probe.
//! Classification of the session endpoint is in `classification.rs`.

use chrono::{DateTime, Utc};
use msgengine_domain::message::{Media, MediaKind, MessageExtras, MessageState, WhatsappTemplate};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::manage::{TemplateDraft, TemplateInfo};
use msgengine_providers::registry::{webhook_handler_for, whatsapp_admin_for};
use msgengine_providers::reqwest::header::HeaderMap;
use msgengine_providers::webhook::{Engagement, InboundWebhook, SuppressionReason, WebhookError};
use msgengine_providers::{sender_for, CheckStatus, FailureKind, ProviderRegistry, SendReceipt};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, form, header, only_request, pairs};

pub const API_KEY: &str = "gs-0123456789abcdef0123456789abcdef";
pub const PATH: &str = "/wa/api/v1/msg";
pub const TEMPLATE_PATH: &str = "/wa/api/v1/template/msg";
pub const LIST_PATH: &str = "/sm/api/v1/template/list/acmeapp";
/// The callback token (our `webhookSecret`).
const TOKEN: &str = "cb-token-0123456789abcdef";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Whatsapp,
        json!({"providerType": "GUPSHUP", "name": "gs", "accessToken": API_KEY,
               "phoneNumber": "+2348031234567", "appName": "acmeapp", "baseUrl": base_url,
               "webhookSecret": TOKEN}),
    )
}

fn submitted() -> ResponseTemplate {
    ResponseTemplate::new(202).set_body_json(
        json!({"status": "submitted", "messageId": "ee4a68a0-1203-4c85-8dc3-49d0b3226a35"}),
    )
}

fn image(link: &str) -> Media {
    Media {
        kind: MediaKind::Image,
        link: Some(link.into()),
        media_id: None,
        filename: None,
    }
}

fn json_field(fields: &[(String, String)], name: &str) -> Value {
    let value = fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} field"));
    serde_json::from_str(value).expect("a JSON field")
}

#[tokio::test]
async fn gupshup_send_posts_the_exact_form_and_returns_the_gupshup_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!(
            {"status": "submitted", "messageId": "ee4a68a0-1203-4c85-8dc3-49d0b3226a35"}
        )))
        .expect(1)
        .mount(&server)
        .await;
    let message = helpers::message(Channel::Whatsapp, "+2348059876543", "Hello \"Ada\" ✓");

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-9").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "ee4a68a0-1203-4c85-8dc3-49d0b3226a35".into(),
            state: MessageState::Sent,
            segments: None,
        })
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), PATH);
    assert_eq!(header(&request, "apikey"), API_KEY);
    assert_eq!(header(&request, "authorization"), "");
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-9");
    let fields = form(&request);
    assert_eq!(
        fields,
        pairs(&[
            ("channel", "whatsapp"),
            ("source", "2348031234567"),
            ("destination", "2348059876543"),
            ("src.name", "acmeapp"),
            ("message", r#"{"type":"text","text":"Hello \"Ada\" ✓"}"#),
        ])
    );
    let payload: serde_json::Value = serde_json::from_str(&fields[4].1).expect("JSON message");
    assert_eq!(payload, json!({"type": "text", "text": "Hello \"Ada\" ✓"}));
}

#[tokio::test]
async fn gupshup_accepts_http_200_and_refuses_an_error_body_sent_with_200() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "error", "message": "Invalid Destination"})),
        )
        .mount(&server)
        .await;
    let message = helpers::message(Channel::Whatsapp, "+2348059876543", "Hi");
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let error = sender.send(&message, "k").await.expect_err("refused");

    assert_eq!(error.kind_str(), "permanent");
    assert_eq!(error.message, "Invalid Destination");
}

#[tokio::test]
async fn gupshup_template_send_posts_the_template_id_params_and_media_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(submitted())
        .expect(1)
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Whatsapp, "+2348059876543", "");
    message.extras = Some(Box::new(MessageExtras {
        template: Some(WhatsappTemplate {
            name: "5f2449fd-e4d6-4d02-9647-e46a1b4635a4".into(),
            language: "en".into(),
            variables: vec!["Ada".into(), "12345".into()],
            header_media: Some(image("https://cdn.example.org/order.png")),
        }),
        ..MessageExtras::default()
    }));

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-t").await.expect("sent");

    assert_eq!(
        receipt.provider_message_id,
        "ee4a68a0-1203-4c85-8dc3-49d0b3226a35"
    );
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), TEMPLATE_PATH);
    assert_eq!(header(&request, "apikey"), API_KEY);
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let fields = form(&request);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "channel",
            "source",
            "destination",
            "src.name",
            "template",
            "message"
        ]
    );
    assert_eq!(
        fields[..4],
        pairs(&[
            ("channel", "whatsapp"),
            ("source", "2348031234567"),
            ("destination", "2348059876543"),
            ("src.name", "acmeapp"),
        ])
    );
    assert_eq!(
        json_field(&fields, "template"),
        json!({"id": "5f2449fd-e4d6-4d02-9647-e46a1b4635a4", "params": ["Ada", "12345"]})
    );
    assert_eq!(
        json_field(&fields, "message"),
        json!({"type": "image", "image": {"link": "https://cdn.example.org/order.png"}})
    );
}

#[tokio::test]
async fn gupshup_media_send_uses_the_session_endpoint_with_the_text_as_caption() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(submitted())
        .expect(1)
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Whatsapp, "+2348059876543", "Your invoice");
    message.extras = Some(Box::new(MessageExtras {
        media: Some(Media {
            kind: MediaKind::Document,
            link: Some("https://cdn.example.org/inv-42.pdf".into()),
            media_id: None,
            filename: Some("Invoice 42.pdf".into()),
        }),
        ..MessageExtras::default()
    }));

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    sender.send(&message, "idem-m").await.expect("sent");

    let fields = form(&only_request(&server).await);
    assert_eq!(
        json_field(&fields, "message"),
        json!({"type": "file", "url": "https://cdn.example.org/inv-42.pdf",
               "filename": "Invoice 42.pdf", "caption": "Your invoice"})
    );
}

#[tokio::test]
async fn gupshup_refuses_uploaded_media_ids_without_calling_out() {
    let server = MockServer::start().await;
    let mut message = helpers::message(Channel::Whatsapp, "+2348059876543", "");
    message.extras = Some(Box::new(MessageExtras {
        media: Some(Media {
            kind: MediaKind::Video,
            link: None,
            media_id: Some("1234".into()),
            filename: None,
        }),
        ..MessageExtras::default()
    }));
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let error = sender.send(&message, "k").await.expect_err("refused");

    assert_eq!(error.kind, FailureKind::Permanent);
    assert!(error.message.contains("public link"), "{error}");
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn gupshup_template_errors_are_classified_and_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"status": "error", "message": format!("Template Not Found for key {API_KEY}")}),
        ))
        .mount(&server)
        .await;
    let mut message = helpers::message(Channel::Whatsapp, "+2348059876543", "");
    message.extras = Some(Box::new(MessageExtras {
        template: Some(WhatsappTemplate {
            name: "nope".into(),
            language: "en".into(),
            variables: vec![],
            header_media: None,
        }),
        ..MessageExtras::default()
    }));
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let error = sender.send(&message, "k").await.expect_err("refused");

    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.message, "Template Not Found for key ***");
    assert_no_secret(&error, &[API_KEY]);
}

// ---- callbacks ----

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_100, 0).expect("time")
}

fn callback<'a>(query: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "POST",
        url: "https://hooks.example.org/api/webhooks/whatsapp/p1",
        headers,
        query,
        body,
    }
}

fn delivered_body() -> Vec<u8> {
    serde_json::to_vec(
        &json!({"app": "acmeapp", "timestamp": 1_700_000_000_123_i64, "version": 2,
        "type": "message-event",
        "payload": {"id": "wamid.HBgM", "gsId": "ee4a68a0-1203-4c85-8dc3-49d0b3226a35",
                    "type": "delivered", "destination": "2348059876543",
                    "payload": {"ts": 1_700_000_000}}}),
    )
    .expect("JSON")
}

#[test]
fn gupshup_callbacks_need_the_configured_token_in_the_query() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    let body = delivered_body();
    let query = format!("token={TOKEN}");
    assert_eq!(
        handler.verify(&callback(&query, &headers, &body), at()),
        Ok(())
    );
    // Among other parameters, percent-encoding decoded.
    let query = format!("a=1&token={}", TOKEN.replace('-', "%2D"));
    assert_eq!(
        handler.verify(&callback(&query, &headers, &body), at()),
        Ok(())
    );
    for query in [
        "",
        "token=",
        "token=cb-token-0123456789abcdeX",
        "tok=cb-token-0123456789abcdef",
    ] {
        assert!(
            matches!(
                handler.verify(&callback(query, &headers, &body), at()),
                Err(WebhookError::Unauthorized(_))
            ),
            "{query}"
        );
    }
    // Unsigned: a changed body with the right token passes verification (the
    // token proves only that the caller knows the URL). No timestamp is
    // signed either, so there is no staleness to refuse.
}

#[test]
fn gupshup_callbacks_are_refused_when_no_token_is_configured() {
    let spec = helpers::spec(
        Channel::Whatsapp,
        json!({"providerType": "GUPSHUP", "name": "gs", "accessToken": API_KEY,
               "phoneNumber": "+2348031234567", "appName": "acmeapp"}),
    );
    let handler = webhook_handler_for(&spec).expect("registered");
    let headers = HeaderMap::new();
    let body = delivered_body();
    let refused = handler.verify(&callback("token=anything", &headers, &body), at());
    assert!(
        matches!(&refused, Err(WebhookError::Unauthorized(m)) if m.contains("webhookSecret")),
        "{refused:?}"
    );
}

#[test]
fn gupshup_message_events_map_to_states_and_replays_keep_their_id() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    let body = delivered_body();
    let events = handler
        .parse(&callback("", &headers, &body), at())
        .expect("parsed");
    let again = handler
        .parse(&callback("", &headers, &body), at())
        .expect("parsed");

    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_id, again[0].event_id);
    assert_eq!(event.state, Some(MessageState::Delivered));
    assert_eq!(
        event.provider_message_id.as_deref(),
        Some("ee4a68a0-1203-4c85-8dc3-49d0b3226a35")
    );
    assert_eq!(event.message_id, None);
    assert_eq!(event.recipient.as_deref(), Some("+2348059876543"));
    assert_eq!(event.raw_status, "delivered");
    assert_eq!(event.occurred_at.timestamp(), 1_700_000_000);

    for (kind, state) in [
        ("enqueued", Some(MessageState::Queued)),
        ("sent", Some(MessageState::Sent)),
        ("read", Some(MessageState::Read)),
        ("deleted", None),
    ] {
        let body = serde_json::to_vec(&json!({"type": "message-event", "timestamp": 1,
            "payload": {"id": "gs-1", "type": kind, "destination": "2348059876543"}}))
        .expect("JSON");
        let events = handler
            .parse(&callback("", &headers, &body), at())
            .expect("parsed");
        assert_eq!(events[0].state, state, "{kind}");
        assert_eq!(events[0].provider_message_id.as_deref(), Some("gs-1"));
    }
}

#[test]
fn gupshup_failed_events_carry_code_and_reason() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    let body = serde_json::to_vec(
        &json!({"app": "acmeapp", "timestamp": 1_700_000_000_000_i64,
        "type": "message-event",
        "payload": {"id": "gs-2", "type": "failed", "destination": "2348059876543",
                    "payload": {"code": 1002, "reason": "Number Does Not Exists On WhatsApp"}}}),
    )
    .expect("JSON");
    let events = handler
        .parse(&callback("", &headers, &body), at())
        .expect("parsed");
    let event = &events[0];
    assert_eq!(event.state, Some(MessageState::Failed));
    assert_eq!(event.error_code.as_deref(), Some("1002"));
    assert_eq!(
        event.reason.as_deref(),
        Some("Number Does Not Exists On WhatsApp")
    );
    assert_eq!(event.suppress, None);
}

#[test]
fn gupshup_opt_out_suppresses_the_number_and_other_callbacks_yield_nothing() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    let opted_out = serde_json::to_vec(
        &json!({"app": "acmeapp", "timestamp": 1_700_000_000_000_i64,
        "version": 2, "type": "user-event",
        "payload": {"phone": "2348059876543", "type": "opted-out"}}),
    )
    .expect("JSON");
    let events = handler
        .parse(&callback("", &headers, &opted_out), at())
        .expect("parsed");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].suppress, Some(SuppressionReason::Unsubscribe));
    assert_eq!(events[0].engagement, Some(Engagement::Unsubscribed));
    assert_eq!(events[0].state, None);
    assert_eq!(events[0].recipient.as_deref(), Some("+2348059876543"));

    for body in [
        json!({"type": "user-event", "payload": {"phone": "2348059876543", "type": "opted-in"}}),
        json!({"type": "message", "payload": {"id": "in-1", "type": "text",
               "sender": {"phone": "2348059876543", "name": "Ada"}}}),
        json!({"type": "billing-event", "payload": {}}),
    ] {
        let body = serde_json::to_vec(&body).expect("JSON");
        let events = handler
            .parse(&callback("", &headers, &body), at())
            .expect("parsed");
        assert!(events.is_empty());
    }
    let garbage = handler.parse(&callback("", &headers, b"not json"), at());
    assert!(matches!(garbage, Err(WebhookError::Malformed(_))));
}

#[test]
fn gupshup_meta_format_callbacks_correlate_on_gs_id() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account",
        "entry": [{"id": "waba", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "statuses": [{"id": "wamid.X", "gs_id": "gs-3", "gs_app_id": "app-1",
                          "status": "failed", "timestamp": "1700000000",
                          "recipient_id": "2348059876543",
                          "errors": [{"code": 131047, "title": "Re-engagement message",
                                      "message": "More than 24 hours have passed"}]}]}}]}]}))
    .expect("JSON");
    let events = handler
        .parse(&callback("", &headers, &body), at())
        .expect("parsed");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].provider_message_id.as_deref(), Some("gs-3"));
    assert_eq!(events[0].state, Some(MessageState::Failed));
    assert_eq!(events[0].error_code.as_deref(), Some("131047"));
    assert_eq!(events[0].event_id, "gupshup:gs-3:failed:1700000000");
}

// ---- management and probe ----

fn template_list() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"status": "success", "templates": [
        {"appId": "app-1", "category": "UTILITY", "createdOn": 1_700_000_000_000_i64,
         "data": "Hi {{1}}, order {{2}} shipped", "elementName": "order_shipped",
         "id": "5f2449fd-e4d6-4d02-9647-e46a1b4635a4", "languageCode": "en",
         "status": "APPROVED", "templateType": "TEXT"}]}))
}

#[tokio::test]
async fn gupshup_lists_the_apps_templates_with_the_api_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LIST_PATH))
        .respond_with(template_list())
        .expect(1)
        .mount(&server)
        .await;
    let admin = whatsapp_admin_for(&spec(&server.uri()), &helpers::client()).expect("registered");

    let templates = admin.list_templates().await.expect("listed");

    assert_eq!(
        templates,
        [TemplateInfo {
            id: Some("5f2449fd-e4d6-4d02-9647-e46a1b4635a4".into()),
            name: "order_shipped".into(),
            language: "en".into(),
            category: "UTILITY".into(),
            status: "APPROVED".into(),
            body: Some("Hi {{1}}, order {{2}} shipped".into()),
        }]
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(header(&request, "apikey"), API_KEY);
}

#[tokio::test]
async fn gupshup_admin_refuses_what_it_lacks_in_words() {
    let admin =
        whatsapp_admin_for(&spec("http://127.0.0.1:9"), &helpers::client()).expect("registered");
    let draft = TemplateDraft {
        name: "x".into(),
        language: "en".into(),
        category: "UTILITY".into(),
        body: "Hi".into(),
        examples: vec![],
        header_text: None,
        footer_text: None,
    };
    let errors = [
        admin.create_template(&draft).await.err(),
        admin
            .upload_media(vec![1], "image/png", "a.png")
            .await
            .err(),
        admin.message_status("gs-1").await.err(),
        admin.setup_webhook("https://x.test/hook").await.err(),
    ];
    for error in errors {
        let error = error.expect("unsupported");
        assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
        assert!(
            error.message.starts_with("GUPSHUP does not offer "),
            "{error}"
        );
    }
}

#[tokio::test]
async fn gupshup_probe_passes_on_the_template_list_and_fails_in_words() {
    let registry = ProviderRegistry::live(&helpers::client());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LIST_PATH))
        .respond_with(template_list())
        .mount(&server)
        .await;
    let report = registry.test(&spec(&server.uri())).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checks[1].status, CheckStatus::Passed);
    assert!(report.checks[1].message.contains("1 template(s)"));

    for (status, body, words) in [
        (
            401,
            json!({"status": "error", "message": "Authentication Failed"}),
            "refused the API key",
        ),
        (
            404,
            json!({"status": "error", "message": "Invalid App Details"}),
            "does not know the app 'acmeapp'",
        ),
        (503, json!({}), "unavailable"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let report = registry.test(&spec(&server.uri())).await;
        assert!(!report.ok, "{status}");
        assert_eq!(report.checks[1].status, CheckStatus::Failed);
        assert!(
            report.checks[1].message.contains(words),
            "{:?}",
            report.checks[1]
        );
        assert!(!report.checks[1].message.contains(API_KEY));
    }
    let report = registry.test(&spec(&helpers::refused_base_url())).await;
    assert!(report.checks[1]
        .message
        .starts_with("could not reach Gupshup"));
}

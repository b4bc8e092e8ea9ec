//! AiSensy WhatsApp (campaign API, providers.md §8): the exact request, the
//! receipt, classification, the token-protected webhooks (AiSensy's webhook
//! format and any signature are unconfirmed, §13), management and the probe.

use std::time::Duration;

use chrono::{DateTime, Utc};
use msgengine_domain::message::{Media, MediaKind, MessageExtras, MessageState, WhatsappTemplate};
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::manage::TemplateDraft;
use msgengine_providers::registry::{webhook_handler_for, whatsapp_admin_for};
use msgengine_providers::reqwest::header::HeaderMap;
use msgengine_providers::webhook::{InboundWebhook, WebhookError};
use msgengine_providers::{
    sender_for, CheckStatus, FailureKind, ProviderError, ProviderRegistry, SendReceipt,
};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret, header, only_request};

const API_KEY: &str = "eyJhbGciOiJIUzI1NiJ9.aisensy-key-0123456789";
const PATH: &str = "/campaign/t1/api/v2";
const TOKEN: &str = "ais-hook-0123456789abcdef";

fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Whatsapp,
        json!({"providerType": "AISENSY", "name": "ais", "accessToken": API_KEY,
               "baseUrl": base_url, "webhookSecret": TOKEN}),
    )
}

fn campaign_message(to: &str) -> msgengine_domain::message::OutboundMessage {
    let mut message = helpers::message(Channel::Whatsapp, to, "");
    message.extras = Some(Box::new(MessageExtras {
        template: Some(WhatsappTemplate {
            name: "order_update_api".into(),
            language: "en".into(),
            variables: vec!["Ada".into(), "42".into()],
            header_media: Some(Media {
                kind: MediaKind::Document,
                link: Some("https://cdn.example.org/inv-42.pdf".into()),
                media_id: None,
                filename: Some("invoice.pdf".into()),
            }),
        }),
        ..MessageExtras::default()
    }));
    message
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
async fn aisensy_send_posts_the_campaign_json_with_the_key_in_the_body() {
    let server = server_answering(
        ResponseTemplate::new(200)
            .set_body_json(json!({"success": "true", "submitted_message_id": "6f1c-42"})),
    )
    .await;
    let mut message = campaign_message("+919876543210");
    message.metadata = json!({"userName": "Ada Lovelace"}).as_object().cloned();

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-a").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "6f1c-42".into(),
            state: MessageState::Sent,
            segments: None,
        })
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), PATH);
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(header(&request, "authorization"), "");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-a");
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"apiKey": API_KEY, "campaignName": "order_update_api",
               "destination": "+919876543210", "userName": "Ada Lovelace",
               "templateParams": ["Ada", "42"],
               "media": {"url": "https://cdn.example.org/inv-42.pdf", "filename": "invoice.pdf"}})
    );
}

#[tokio::test]
async fn aisensy_without_an_id_in_the_answer_the_receipt_carries_our_id() {
    // §8/§13: AiSensy's success body is undocumented; a 2xx is an acceptance.
    let server = server_answering(ResponseTemplate::new(200).set_body_string("OK")).await;
    let message = campaign_message("+919876543210");
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let receipt = sender.send(&message, "k").await.expect("sent");

    assert_eq!(receipt.provider_message_id, message.id.to_string());
    let request = only_request(&server).await;
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    // No userName in the metadata: the number stands in for the contact name.
    assert_eq!(body["userName"], "+919876543210");
}

#[tokio::test]
async fn aisensy_refuses_free_text_without_calling_out() {
    let server = MockServer::start().await;
    let message = helpers::message(Channel::Whatsapp, "+919876543210", "Hello");
    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");

    let error = sender.send(&message, "k").await.expect_err("refused");

    assert_eq!(error.kind, FailureKind::Permanent);
    assert!(error.message.contains("campaign"), "{error}");
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

async fn refusal(response: ResponseTemplate) -> ProviderError {
    let server = server_answering(response).await;
    attempt(&server.uri()).await
}

async fn attempt(base_url: &str) -> ProviderError {
    let sender = sender_for(&spec(base_url), &helpers::client()).expect("supported");
    let error = sender
        .send(&campaign_message("+919876543210"), "k")
        .await
        .expect_err("refused");
    assert_no_secret(&error, &[API_KEY]);
    error
}

#[tokio::test]
async fn aisensy_failures_are_classified() {
    let e = refusal(
        ResponseTemplate::new(400).set_body_json(json!({"message": "Campaign does not exist."})),
    )
    .await;
    assert_eq!(
        (e.kind, e.http_status, e.message.as_str()),
        (
            FailureKind::Permanent,
            Some(400),
            "Campaign does not exist."
        )
    );
    let e =
        refusal(ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid API Key"})))
            .await;
    assert_eq!(e.kind, FailureKind::Permanent);
    let e = refusal(
        ResponseTemplate::new(200)
            .set_body_json(json!({"success": false, "message": "Campaign is not live"})),
    )
    .await;
    assert_eq!(
        (e.kind, e.message.as_str()),
        (FailureKind::Permanent, "Campaign is not live")
    );
    // §13: AiSensy's rate limiting is undocumented; 429 and Retry-After are honoured.
    let e = refusal(ResponseTemplate::new(429).insert_header("Retry-After", "9")).await;
    assert_eq!(
        (e.kind, e.retry_after),
        (FailureKind::RateLimited, Some(Duration::from_secs(9)))
    );
    for status in [500, 503] {
        let e = refusal(ResponseTemplate::new(status)).await;
        assert_eq!(e.kind, FailureKind::Transient, "{status}");
    }
    let e = refusal(ResponseTemplate::new(200).set_delay(Duration::from_secs(2))).await;
    assert_eq!(e.kind, FailureKind::Timeout);
    let e = attempt(&helpers::refused_base_url()).await;
    assert_eq!((e.kind, e.http_status), (FailureKind::Transient, None));
    let e = refusal(
        ResponseTemplate::new(400)
            .set_body_json(json!({"message": format!("bad apiKey {API_KEY}")})),
    )
    .await;
    assert_eq!(e.message, "bad apiKey ***");
}

// ---- webhooks ----

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("time")
}

fn hook<'a>(query: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> InboundWebhook<'a> {
    InboundWebhook {
        method: "POST",
        url: "https://hooks.example.org/api/webhooks/whatsapp/p2",
        headers,
        query,
        body,
    }
}

fn status_body(status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"topic": "message.status.updated",
        "data": {"message": {"id": "6f1c-42", "status": status, "phone_number": "919876543210",
                             "failureResponse": {"code": 131026, "reason": "Message undeliverable"}}}}))
    .expect("JSON")
}

#[test]
fn aisensy_webhooks_need_the_configured_token_in_the_query() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    let body = status_body("delivered");
    let good = format!("token={TOKEN}");
    assert_eq!(handler.verify(&hook(&good, &headers, &body), at()), Ok(()));
    for query in ["", "token=wrong", "token=ais-hook-0123456789abcde"] {
        assert!(
            matches!(
                handler.verify(&hook(query, &headers, &body), at()),
                Err(WebhookError::Unauthorized(_))
            ),
            "{query}"
        );
    }
    let unconfigured = helpers::spec(
        Channel::Whatsapp,
        json!({"providerType": "AISENSY", "name": "ais", "accessToken": API_KEY}),
    );
    let handler = webhook_handler_for(&unconfigured).expect("registered");
    assert!(matches!(
        handler.verify(&hook(&good, &headers, &body), at()),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn aisensy_statuses_map_and_replays_keep_their_id() {
    let handler = webhook_handler_for(&spec("http://127.0.0.1:9")).expect("registered");
    let headers = HeaderMap::new();
    for (raw, state) in [
        ("sent", Some(MessageState::Sent)),
        ("DELIVERED", Some(MessageState::Delivered)),
        ("read", Some(MessageState::Read)),
        ("failed", Some(MessageState::Failed)),
        ("queued", Some(MessageState::Queued)),
        ("clicked", None),
    ] {
        let body = status_body(raw);
        let first = handler
            .parse(&hook("", &headers, &body), at())
            .expect("parsed");
        let replay = handler
            .parse(&hook("", &headers, &body), at())
            .expect("parsed");
        assert_eq!(first.len(), 1, "{raw}");
        assert_eq!(first[0].state, state, "{raw}");
        assert_eq!(first[0].event_id, replay[0].event_id, "{raw}");
        assert_eq!(first[0].provider_message_id.as_deref(), Some("6f1c-42"));
        assert_eq!(first[0].recipient.as_deref(), Some("+919876543210"));
    }
    let failed = handler
        .parse(&hook("", &headers, &status_body("failed")), at())
        .expect("parsed");
    assert_eq!(failed[0].error_code.as_deref(), Some("131026"));
    assert_eq!(failed[0].reason.as_deref(), Some("Message undeliverable"));
    let inbound = serde_json::to_vec(&json!({"topic": "message.sender.user",
        "data": {"message": {"text": "hi", "phone_number": "919876543210"}}}))
    .expect("JSON");
    assert!(handler
        .parse(&hook("", &headers, &inbound), at())
        .expect("parsed")
        .is_empty());
    assert!(matches!(
        handler.parse(&hook("", &headers, b"<xml/>"), at()),
        Err(WebhookError::Malformed(_))
    ));
}

// ---- management and probe ----

#[tokio::test]
async fn aisensy_admin_refuses_everything_in_words() {
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
        admin.list_templates().await.err(),
        admin.create_template(&draft).await.err(),
        admin
            .upload_media(vec![1], "image/png", "a.png")
            .await
            .err(),
        admin.message_status("m").await.err(),
        admin.setup_webhook("https://x.test/hook").await.err(),
    ];
    for error in errors {
        let error = error.expect("unsupported");
        assert_eq!(error.code.as_deref(), Some("msgengine_unsupported"));
        assert!(
            error.message.starts_with("AISENSY does not offer "),
            "{error}"
        );
    }
}

#[tokio::test]
async fn aisensy_probe_names_no_recipient_and_reads_the_refusal() {
    let registry = ProviderRegistry::live(&helpers::client());
    let server = server_answering(
        ResponseTemplate::new(400).set_body_json(json!({"message": "Campaign does not exist."})),
    )
    .await;
    let report = registry.test(&spec(&server.uri())).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checks[1].status, CheckStatus::Passed);
    let request = only_request(&server).await;
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"apiKey": API_KEY, "campaignName": "__msgengine_connection_test__"})
    );

    for (status, answer, verdict, words) in [
        (
            401,
            json!({"message": "Invalid API Key"}),
            CheckStatus::Failed,
            "refused the API key",
        ),
        (
            404,
            json!(null),
            CheckStatus::Failed,
            "no AiSensy campaign API",
        ),
        (
            400,
            json!({"message": "destination is required"}),
            CheckStatus::Skipped,
            "without saying",
        ),
        (502, json!(null), CheckStatus::Failed, "unavailable"),
    ] {
        let response = match answer {
            Value::Null => ResponseTemplate::new(status).set_body_string("<html>nope</html>"),
            body => ResponseTemplate::new(status).set_body_json(body),
        };
        let server = server_answering(response).await;
        let report = registry.test(&spec(&server.uri())).await;
        assert_eq!(
            report.checks[1].status, verdict,
            "{status}: {:?}",
            report.checks[1]
        );
        assert!(
            report.checks[1].message.contains(words),
            "{:?}",
            report.checks[1]
        );
        assert!(!report.checks[1].message.contains(API_KEY));
    }
}

//! Gupshup WhatsApp: the exact request, and the receipt.

use msgengine_domain::message::MessageState;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::{sender_for, SendReceipt};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, form, header, only_request, pairs};

pub const API_KEY: &str = "gs-0123456789abcdef0123456789abcdef";
pub const PATH: &str = "/wa/api/v1/msg";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Whatsapp,
        json!({"providerType": "GUPSHUP", "name": "gs", "accessToken": API_KEY,
               "phoneNumber": "+2348031234567", "appName": "acmeapp", "baseUrl": base_url}),
    )
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

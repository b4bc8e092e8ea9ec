//! Mailgun: the exact request, and the receipt.

use msgengine_domain::message::MessageState;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::{sender_for, SendReceipt};
use serde_json::json;
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

//! Twilio SMS: the exact request, and the receipt.

use msgengine_domain::message::MessageState;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::{sender_for, SendReceipt};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, basic, form, header, only_request, pairs};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "f00dfacef00dfacef00dfacef00dface";
pub const PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

pub fn spec(base_url: &str) -> AnyProviderSpec {
    helpers::spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "credentials": {"accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN},
               "baseUrl": base_url}),
    )
}

fn created(status: &str, segments: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": "SM0123456789abcdef0123456789abcdef", "account_sid": ACCOUNT_SID,
        "to": "+2348031234567", "from": "+15005550006", "body": "Hello",
        "status": status, "num_segments": segments, "num_media": "0",
        "error_code": null, "error_message": null
    }))
}

#[tokio::test]
async fn twilio_send_posts_the_exact_form_with_the_idempotency_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created("queued", "2"))
        .expect(1)
        .mount(&server)
        .await;
    let message = helpers::message(Channel::Sms, "+2348031234567", "Hello Ada");

    let sender = sender_for(&spec(&server.uri()), &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "idem-7").await;

    assert_eq!(
        receipt.ok(),
        Some(SendReceipt {
            provider_message_id: "SM0123456789abcdef0123456789abcdef".into(),
            state: MessageState::Sent,
            segments: Some(2),
        })
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), PATH);
    assert_eq!(
        header(&request, "authorization"),
        basic(ACCOUNT_SID, AUTH_TOKEN)
    );
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(header(&request, "i-twilio-idempotency-token"), "idem-7");
    assert_eq!(header(&request, "x-msgengine-idempotency-key"), "idem-7");
    assert_eq!(
        form(&request),
        pairs(&[
            ("To", "+2348031234567"),
            ("From", "+15005550006"),
            ("Body", "Hello Ada"),
        ])
    );
}

#[tokio::test]
async fn twilio_uses_api_key_auth_and_a_messaging_service_sender() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created("delivered", "1"))
        .mount(&server)
        .await;
    let key_sid = "SK0123456789abcdef0123456789abcdef";
    let spec = helpers::spec(
        Channel::Sms,
        json!({"providerType": "TWILIO", "name": "tw", "senderId": "+15005550006",
               "credentials": {"accountSid": ACCOUNT_SID, "apiKeySid": key_sid,
                               "apiKeySecret": "s3cr3t-s3cr3t-s3cr3t"},
               "baseUrl": format!("{}/2010-04-01", server.uri())}),
    );
    let mut message = helpers::message(Channel::Sms, "+2348031234567", "Hi");
    message.from = Some("MG0123456789abcdef0123456789abcdef".into());

    let sender = sender_for(&spec, &helpers::client()).expect("supported");
    let receipt = sender.send(&message, "k").await.expect("sent");

    assert_eq!(receipt.state, MessageState::Delivered);
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        basic(key_sid, "s3cr3t-s3cr3t-s3cr3t")
    );
    assert_eq!(
        form(&request),
        pairs(&[
            ("To", "+2348031234567"),
            ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
            ("Body", "Hi"),
        ])
    );
}

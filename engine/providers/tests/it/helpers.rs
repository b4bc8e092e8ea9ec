//! Shared fixtures: specs from JSON, messages, request inspection.

use std::net::TcpListener;
use std::time::Duration;

use base64::Engine as _;
use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::{
    from_object, AnyProviderSpec, EmailProviderSpec, ProviderSpec, SmsProviderSpec,
    WhatsappProviderSpec,
};
use msgengine_domain::{Channel, MessageId, OrganizationId};
use msgengine_providers::ProviderError;
use serde_json::Value;
use wiremock::Request;

/// A validated spec of `channel` from its API-shaped JSON.
pub fn spec(channel: Channel, json: Value) -> AnyProviderSpec {
    let Value::Object(object) = json else {
        panic!("spec JSON must be an object");
    };
    match channel {
        Channel::Email => from_object::<EmailProviderSpec>(object).map(ProviderSpec::into_any),
        Channel::Sms => from_object::<SmsProviderSpec>(object).map(ProviderSpec::into_any),
        Channel::Whatsapp => {
            from_object::<WhatsappProviderSpec>(object).map(ProviderSpec::into_any)
        }
    }
    .unwrap_or_else(|e| panic!("invalid test spec: {e:?}"))
}

/// A plain text message on `channel` to `to`.
pub fn message(channel: Channel, to: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        organization_id: OrganizationId::new(),
        channel,
        to: to.into(),
        from: None,
        subject: None,
        text: text.into(),
        html: None,
        metadata: None,
        extras: None,
        routing: None,
    }
}

/// The client the adapters get in tests: a short timeout so the timeout
/// tests stay quick, loopback only (wiremock listens on 127.0.0.1).
pub fn client() -> msgengine_providers::ProviderClient {
    msgengine_providers::ProviderClient::new(
        Duration::from_millis(200),
        msgengine_providers::AddressPolicy::Loopback,
    )
}

/// The value of an HTTP Basic `Authorization` header.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A request header as text ("" when absent).
pub fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The request's form-urlencoded body, in order.
pub fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// Owned (name, value) pairs from literals.
pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The one request the server received.
pub async fn only_request(server: &wiremock::MockServer) -> Request {
    let mut requests = server
        .received_requests()
        .await
        .expect("request recording is on");
    assert_eq!(requests.len(), 1, "expected exactly one request");
    requests.remove(0)
}

/// A loopback base URL nobody listens on (bound, then released).
pub fn refused_base_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Fails when any secret shows in the error's Display or Debug text.
pub fn assert_no_secret(error: &ProviderError, secrets: &[&str]) {
    let shown = format!("{error} {error:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "secret leaked into {shown}");
    }
}

//! Helpers shared by the simulator's test files (`sim.rs`, `sim_providers.rs`).

use std::time::Duration;

use msgengine_domain::provider::{
    from_object, AnyProviderSpec, EmailProviderSpec, ProviderSpec, SmsProviderSpec,
    WhatsappProviderSpec,
};
use msgengine_domain::Channel;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A connection spec of `channel` from its API JSON.
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

/// The providers crate's HTTP client, as the engine builds it with
/// `engine.outbound_loopback_only` (the simulator listens on loopback).
pub fn client() -> msgengine_providers::ProviderClient {
    msgengine_providers::ProviderClient::new(
        Duration::from_secs(5),
        msgengine_providers::AddressPolicy::Loopback,
    )
}

/// Stands in for the engine's webhook endpoint: answers every POST 200 and
/// records it.
pub async fn engine() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    server
}

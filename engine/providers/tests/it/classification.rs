//! Failure classification of every HTTP adapter, end to end over loopback:
//! 400 / 401 / 429 (Retry-After in seconds and as an HTTP-date) / 500 / 503,
//! a timeout and a refused connection, and no secret in any error.

use std::time::{Duration, SystemTime};

use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Channel;
use msgengine_providers::{sender_for, FailureKind, ProviderError};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{self, assert_no_secret};
use crate::{gupshup, mailgun, twilio_sms};

struct Adapter {
    name: &'static str,
    spec: fn(&str) -> AnyProviderSpec,
    path: &'static str,
    channel: Channel,
    to: &'static str,
    secrets: &'static [&'static str],
    /// A 400 answer in the provider's error shape, the reason and code in it.
    bad_request: fn() -> Value,
    reason: &'static str,
    code: Option<&'static str>,
}

fn adapters() -> [Adapter; 3] {
    [
        Adapter {
            name: "mailgun",
            spec: mailgun::spec,
            path: mailgun::PATH,
            channel: Channel::Email,
            to: "ada@example.org",
            secrets: &[mailgun::API_KEY],
            bad_request: || json!({"message": "from parameter is missing"}),
            reason: "from parameter is missing",
            code: None,
        },
        Adapter {
            name: "twilio",
            spec: twilio_sms::spec,
            path: twilio_sms::PATH,
            channel: Channel::Sms,
            to: "+2348031234567",
            secrets: &[twilio_sms::ACCOUNT_SID, twilio_sms::AUTH_TOKEN],
            bad_request: || {
                json!({"code": 21211, "message": "The 'To' number +123 is not a valid phone number.",
                       "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
            },
            reason: "The 'To' number +123 is not a valid phone number.",
            code: Some("21211"),
        },
        Adapter {
            name: "gupshup",
            spec: gupshup::spec,
            path: gupshup::PATH,
            channel: Channel::Whatsapp,
            to: "+2348059876543",
            secrets: &[gupshup::API_KEY],
            bad_request: || json!({"status": "error", "message": "Invalid Destination"}),
            reason: "Invalid Destination",
            code: None,
        },
    ]
}

/// One send through `adapter` against `base_url`.
async fn attempt(adapter: &Adapter, base_url: &str) -> ProviderError {
    let sender = sender_for(&(adapter.spec)(base_url), &helpers::client()).expect("supported");
    let message = helpers::message(adapter.channel, adapter.to, "Hello");
    let error = sender
        .send(&message, "idem-1")
        .await
        .expect_err("the provider refuses");
    assert_no_secret(&error, adapter.secrets);
    error
}

/// One send through `adapter` to a server answering `response`.
async fn answered(adapter: &Adapter, response: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(adapter.path))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    attempt(adapter, &server.uri()).await
}

#[tokio::test]
async fn bad_request_is_permanent_with_the_providers_reason_and_code() {
    for adapter in adapters() {
        let error = answered(
            &adapter,
            ResponseTemplate::new(400).set_body_json((adapter.bad_request)()),
        )
        .await;
        assert_eq!(error.kind, FailureKind::Permanent, "{}", adapter.name);
        assert_eq!(error.http_status, Some(400), "{}", adapter.name);
        assert_eq!(error.message, adapter.reason, "{}", adapter.name);
        assert_eq!(error.code.as_deref(), adapter.code, "{}", adapter.name);
        assert_eq!(error.retry_after, None, "{}", adapter.name);
    }
}

#[tokio::test]
async fn bad_credentials_are_permanent() {
    for adapter in adapters() {
        let error = answered(
            &adapter,
            ResponseTemplate::new(401).set_body_string("Forbidden"),
        )
        .await;
        assert_eq!(error.kind, FailureKind::Permanent, "{}", adapter.name);
        assert_eq!(error.http_status, Some(401), "{}", adapter.name);
    }
}

#[tokio::test]
async fn too_many_requests_is_rate_limited_with_retry_after_in_seconds() {
    for adapter in adapters() {
        let response = ResponseTemplate::new(429)
            .insert_header("Retry-After", "17")
            .set_body_json(json!({"code": 20429, "message": "Too Many Requests", "status": 429}));
        let error = answered(&adapter, response).await;
        assert_eq!(error.kind, FailureKind::RateLimited, "{}", adapter.name);
        assert_eq!(
            error.retry_after,
            Some(Duration::from_secs(17)),
            "{}",
            adapter.name
        );
        assert_eq!(error.kind_str(), "rate_limited");
    }
}

#[tokio::test]
async fn too_many_requests_is_rate_limited_with_retry_after_as_an_http_date() {
    for adapter in adapters() {
        let at = SystemTime::now() + Duration::from_secs(120);
        let response = ResponseTemplate::new(429)
            .insert_header("Retry-After", httpdate::fmt_http_date(at).as_str());
        let error = answered(&adapter, response).await;
        assert_eq!(error.kind, FailureKind::RateLimited, "{}", adapter.name);
        // The date has one-second resolution and time passes during the call.
        let wait = error.retry_after.unwrap_or_default();
        assert!(
            (Duration::from_secs(100)..=Duration::from_secs(120)).contains(&wait),
            "{}: {wait:?}",
            adapter.name
        );
    }
}

#[tokio::test]
async fn server_errors_are_transient() {
    for adapter in adapters() {
        for status in [500, 503] {
            let error = answered(&adapter, ResponseTemplate::new(status)).await;
            assert_eq!(
                error.kind,
                FailureKind::Transient,
                "{} {status}",
                adapter.name
            );
            assert_eq!(error.http_status, Some(status), "{}", adapter.name);
        }
        let unavailable = ResponseTemplate::new(503).insert_header("Retry-After", "4");
        let error = answered(&adapter, unavailable).await;
        assert_eq!(
            error.retry_after,
            Some(Duration::from_secs(4)),
            "{}",
            adapter.name
        );
    }
}

#[tokio::test]
async fn a_provider_slower_than_the_client_timeout_is_a_timeout() {
    for adapter in adapters() {
        let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(2));
        let error = answered(&adapter, slow).await;
        assert_eq!(error.kind, FailureKind::Timeout, "{}", adapter.name);
        assert_eq!(error.http_status, None, "{}", adapter.name);
    }
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    for adapter in adapters() {
        let error = attempt(&adapter, &helpers::refused_base_url()).await;
        assert_eq!(error.kind, FailureKind::Transient, "{}", adapter.name);
        assert_eq!(error.http_status, None, "{}", adapter.name);
        assert!(error.message.contains("could not connect"), "{error}");
        // The URL is never shown: for Twilio it holds the Account SID.
        assert!(!error.message.contains("127.0.0.1"), "{error}");
    }
}

#[tokio::test]
async fn provider_text_that_echoes_a_secret_is_scrubbed() {
    for adapter in adapters() {
        let echoed = format!(
            "The requested resource /2010-04-01/Accounts/{}/Messages.json was not found (key {})",
            adapter.secrets[0],
            adapter.secrets[adapter.secrets.len() - 1]
        );
        let body = json!({"status": "error", "code": 20404, "message": echoed});
        let error = answered(&adapter, ResponseTemplate::new(404).set_body_json(body)).await;
        assert_eq!(error.kind, FailureKind::Permanent, "{}", adapter.name);
        assert!(error.message.contains("/Accounts/***/"), "{error}");
    }
}

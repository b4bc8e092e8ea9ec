//! Testing an INTERAKT connection.
//!
//! Interakt offers no read-only call (providers.md §9 documents only the
//! message endpoint), so the probe makes the least side-effect call there
//! is: `POST /v1/public/message/` with an empty JSON object. It names no
//! recipient, so nothing can be sent; it checks only that Interakt accepts
//! the API key. A 401/403 means the key is refused; a 400/422 means the key
//! was accepted and the empty request refused for its content. That reading
//! assumes Interakt authenticates before validating the body, as APIs
//! commonly do (unconfirmed, like the rest of §9's envelope, §13).

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use msgengine_domain::Secret;
use reqwest::header::AUTHORIZATION;
use serde_json::json;

use super::{message_url, secrets_of, Envelope};
use crate::http;
use crate::probe::{Check, CheckStatus, ConnectionProbe};

/// The live check of INTERAKT connections.
pub struct InteraktProbe {
    http: crate::http::ProviderClient,
}

impl InteraktProbe {
    /// A probe calling out through the shared `http` client.
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

const WHAT: &str = "Interakt has no read-only API, so msgengine posted an empty message \
                    request (no recipient: nothing can be sent) to check the API key";

#[async_trait]
impl ConnectionProbe for InteraktProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Whatsapp(spec) = spec else {
            return check(CheckStatus::Failed, "not a WhatsApp connection".into());
        };
        let Some(url) = message_url(spec.base_url.as_deref()) else {
            return check(CheckStatus::Failed, "baseUrl must be an http(s) URL".into());
        };
        let Some(key) = &spec.access_token else {
            return check(
                CheckStatus::Failed,
                "accessToken (the Interakt API key) is missing".into(),
            );
        };
        let secrets = secrets_of(spec);
        let scrub = |text: String| -> String {
            secrets
                .iter()
                .map(Secret::expose)
                .filter(|s| !s.is_empty())
                .fold(text, |t, s| t.replace(s, "***"))
        };
        let request = self
            .http
            .post(url)
            .header(AUTHORIZATION, format!("Basic {}", key.expose()))
            .json(&json!({}));
        let answer = match self.http.execute(request).await {
            Ok(answer) => answer,
            Err(e) => {
                return check(
                    CheckStatus::Failed,
                    scrub(format!("could not reach Interakt: {}", e.message)),
                )
            }
        };
        let said = serde_json::from_slice::<Envelope>(&answer.body)
            .ok()
            .and_then(|e| e.reason())
            .unwrap_or_else(|| http::plain_reason(answer.status, &answer.body));
        let detail = format!("HTTP {}: {said}", answer.status);
        let lower = said.to_ascii_lowercase();
        let key_refused = lower.contains("invalid token") || lower.contains("unauthori");
        let (status, message) = match answer.status {
            200..=299 | 400 | 422 if !key_refused => (
                CheckStatus::Passed,
                format!("Interakt accepted the API key. {WHAT}; it answered {detail}"),
            ),
            200..=299 | 400 | 401 | 403 | 422 => (
                CheckStatus::Failed,
                format!(
                    "Interakt refused the API key: copy it again from the Interakt dashboard \
                     (Developer Settings), as shown, without encoding it ({detail})"
                ),
            ),
            404 => (
                CheckStatus::Failed,
                format!("baseUrl does not serve Interakt's public API ({detail})"),
            ),
            429 => (
                CheckStatus::Failed,
                format!("Interakt is rate limiting this key; try again later ({detail})"),
            ),
            _ => (
                CheckStatus::Failed,
                format!("Interakt did not give a usable answer; try again later ({detail})"),
            ),
        };
        check(status, scrub(http::bound(&message)))
    }
}

fn check(status: CheckStatus, message: String) -> Check {
    Check {
        name: "connection",
        status,
        message,
    }
}

//! AiSensy management and connection test.
//!
//! AiSensy documents one API call, the campaign send (providers.md §8):
//! templates, campaigns, media and webhooks live in its dashboard, so every
//! [`WhatsappAdmin`] operation is refused in words.
//!
//! There is no read-only call to test a key with. The probe makes the least
//! side-effect call §8 allows: the campaign API with the API key and a
//! campaign name that cannot exist, and **no `destination`**, so nothing can
//! be sent and no contact created. An answer refusing the key (401/403, or a
//! reason naming the key) fails the test; "campaign does not exist" passes it
//! (AiSensy looked the campaign up, so it took the key); any other refusal
//! leaves the key unconfirmed and the check is reported as skipped, never as
//! passed. That AiSensy checks the key before the missing fields is assumed
//! (its error catalogue is unconfirmed, §13).

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde_json::json;

use super::{campaign_endpoint, classify_response};
use crate::http;
use crate::manage::{unsupported, ProviderStatus, TemplateDraft, TemplateInfo, WhatsappAdmin};
use crate::probe::{Check, CheckStatus, ConnectionProbe};
use crate::send::{FailureKind, ProviderError};

const PROVIDER: &str = "AISENSY";

/// The campaign name the probe asks for: not a valid AiSensy campaign name
/// anyone would create.
pub const PROBE_CAMPAIGN: &str = "__msgengine_connection_test__";

/// AiSensy management: nothing beyond sending is offered by its API.
pub struct AisensyAdmin;

#[async_trait]
impl WhatsappAdmin for AisensyAdmin {
    async fn list_templates(&self) -> Result<Vec<TemplateInfo>, ProviderError> {
        Err(unsupported(
            PROVIDER,
            "template listing through its API: templates and the API campaigns bound to them \
             are managed in the AiSensy dashboard",
        ))
    }

    async fn create_template(&self, _draft: &TemplateDraft) -> Result<TemplateInfo, ProviderError> {
        Err(unsupported(
            PROVIDER,
            "template creation through its API: submit templates in the AiSensy dashboard \
             and set an API campaign live for each",
        ))
    }

    async fn upload_media(
        &self,
        _bytes: Vec<u8>,
        _mime_type: &str,
        _filename: &str,
    ) -> Result<String, ProviderError> {
        Err(unsupported(
            PROVIDER,
            "media upload: campaign sends take media by public URL",
        ))
    }

    async fn message_status(
        &self,
        _provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        Err(unsupported(
            PROVIDER,
            "a message status lookup: statuses arrive only through its dashboard-configured webhooks",
        ))
    }

    async fn setup_webhook(&self, _url: &str) -> Result<(), ProviderError> {
        Err(unsupported(
            PROVIDER,
            "webhook setup through its API: add the URL in the AiSensy dashboard, \
             with ?token=<webhookSecret> appended",
        ))
    }
}

/// The live connection test (see the module docs).
pub struct AisensyProbe {
    http: crate::http::ProviderClient,
}

impl AisensyProbe {
    /// A probe calling out through the shared `http` client.
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

fn check(status: CheckStatus, message: String) -> Check {
    Check {
        name: "connection",
        status,
        message,
    }
}

#[async_trait]
impl ConnectionProbe for AisensyProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Whatsapp(spec) = spec else {
            return check(
                CheckStatus::Failed,
                "the AiSensy check only tests WhatsApp connections".into(),
            );
        };
        let (Some(endpoint), Some(api_key)) = (campaign_endpoint(spec), &spec.access_token) else {
            return check(
                CheckStatus::Failed,
                "AISENSY needs accessToken, and baseUrl (when set) must be an http(s) URL".into(),
            );
        };
        let secrets = [api_key.expose()];
        // No destination and no userName: nothing can be sent, no contact made.
        let body = json!({"apiKey": api_key.expose(), "campaignName": PROBE_CAMPAIGN});
        let request = self.http.post(endpoint).json(&body);
        let answer = match self.http.execute(request).await {
            Ok(answer) => answer,
            Err(e) => {
                return check(
                    CheckStatus::Failed,
                    unreachable_words(&http::scrub(e, &secrets)),
                )
            }
        };
        if (200..300).contains(&answer.status) && super::accepted(&answer.body).is_some() {
            return check(
                CheckStatus::Passed,
                "AiSensy accepted the API key (the test request names no recipient, so nothing was sent)"
                    .into(),
            );
        }
        let error = http::scrub(
            classify_response(answer.status, &answer.headers, &answer.body),
            &secrets,
        );
        verdict(&error)
    }
}

/// Reads AiSensy's refusal of the probe (see the module docs).
fn verdict(e: &ProviderError) -> Check {
    let reason = &e.message;
    let lower = reason.to_ascii_lowercase();
    let status = e.http_status.unwrap_or(0);
    let names_key = [
        "api key",
        "apikey",
        "api_key",
        "unauthori",
        "authenticat",
        "token",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if matches!(status, 401 | 403) || names_key {
        return check(
            CheckStatus::Failed,
            format!("AiSensy refused the API key (HTTP {status}: {reason})"),
        );
    }
    if lower.contains("campaign") {
        return check(
            CheckStatus::Passed,
            format!(
                "AiSensy accepted the API key: asked for the campaign '{PROBE_CAMPAIGN}', which \
                 does not exist, it answered \"{reason}\" (no recipient was named, nothing was sent)"
            ),
        );
    }
    match e.kind {
        FailureKind::RateLimited => check(
            CheckStatus::Failed,
            format!("AiSensy is rate limiting this API key; try again later ({reason})"),
        ),
        FailureKind::Transient | FailureKind::Timeout => {
            check(CheckStatus::Failed, unreachable_words(e))
        }
        FailureKind::Permanent if status == 404 => check(
            CheckStatus::Failed,
            format!("no AiSensy campaign API at baseUrl (HTTP 404: {reason})"),
        ),
        FailureKind::Permanent => check(
            CheckStatus::Skipped,
            format!(
                "AiSensy answered HTTP {status} \"{reason}\" without saying whether the API key is \
                 valid (AiSensy has no read-only call; only a real campaign send can confirm it)"
            ),
        ),
    }
}

fn unreachable_words(e: &ProviderError) -> String {
    match (e.kind, e.http_status) {
        (FailureKind::Timeout, _) => "AiSensy did not answer within the request timeout".into(),
        (_, Some(status)) => format!(
            "AiSensy is unavailable (HTTP {status}: {}); try again later",
            e.message
        ),
        (_, None) => format!("could not reach AiSensy: {}", e.message),
    }
}

//! Gupshup management and connection test: the app's template list,
//! `GET {baseUrl}/sm/api/v1/template/list/{appName}` with the `apikey`
//! header, answering `{"status": "success", "templates": [{"id",
//! "elementName", "languageCode", "category", "status", "data", …}]}`.
//!
//! providers.md §7 documents no management endpoint: this one is the
//! template list of Gupshup's self-serve API as its client libraries call
//! it (unconfirmed in providers.md). It is read-only and checks both the
//! API key and the app name, so it is also the connection probe.
//!
//! What §7 does not document is refused in words: template creation (done
//! in the Gupshup console), media upload (sends take public links), status
//! lookups (statuses arrive as callbacks only) and setting the callback URL
//! (a per-app console setting).

use async_trait::async_trait;
use msgengine_domain::provider::{AnyProviderSpec, WhatsappProviderSpec};
use msgengine_domain::Secret;
use serde::Deserialize;
use url::Url;

use super::{classify_response, DEFAULT_BASE_URL};
use crate::http;
use crate::manage::{unsupported, ProviderStatus, TemplateDraft, TemplateInfo, WhatsappAdmin};
use crate::probe::{Check, CheckStatus, ConnectionProbe};
use crate::send::{FailureKind, ProviderError};

const PROVIDER: &str = "GUPSHUP";

/// Template management of one Gupshup connection.
pub struct GupshupAdmin {
    http: crate::http::ProviderClient,
    /// `None` when `appName` is missing or `baseUrl` is not an http(s) URL.
    templates_endpoint: Option<Url>,
    api_key: Option<Secret>,
}

impl GupshupAdmin {
    /// The admin for `spec`; calls go through the shared `http` client.
    pub fn new(spec: &WhatsappProviderSpec, http: crate::http::ProviderClient) -> Self {
        let templates_endpoint = spec.app_name.as_deref().and_then(|app| {
            http::endpoint(
                spec.base_url.as_deref(),
                DEFAULT_BASE_URL,
                &["sm", "api", "v1", "template", "list", app],
            )
        });
        Self {
            http,
            templates_endpoint,
            api_key: spec.access_token.clone(),
        }
    }

    async fn fetch_templates(&self) -> Result<Vec<TemplateInfo>, ProviderError> {
        let Some(endpoint) = &self.templates_endpoint else {
            return Err(ProviderError::misconfigured(
                "GUPSHUP needs appName, and baseUrl (when set) must be an http(s) URL",
            ));
        };
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured("GUPSHUP needs accessToken"));
        };
        let secrets = [api_key.expose()];
        let request = self
            .http
            .get(endpoint.clone())
            .header("apikey", api_key.expose());
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| http::scrub(e, &secrets))?;
        if (200..300).contains(&answer.status) {
            if let Ok(list) = serde_json::from_slice::<TemplateList>(&answer.body) {
                if list.status == "success" {
                    return Ok(list.templates.into_iter().map(Into::into).collect());
                }
            }
        }
        let mut error = classify_response(answer.status, &answer.headers, &answer.body);
        if (200..300).contains(&answer.status) && error.message == super::NO_ID_REASON {
            error.message = "Gupshup answered without a template list".into();
        }
        Err(http::scrub(error, &secrets))
    }
}

#[derive(Deserialize)]
struct TemplateList {
    status: String,
    #[serde(default)]
    templates: Vec<GupshupTemplate>,
}

#[derive(Deserialize)]
struct GupshupTemplate {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "elementName")]
    element_name: String,
    #[serde(default, rename = "languageCode")]
    language_code: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    status: String,
    /// The body text with its `{{n}}` placeholders.
    #[serde(default)]
    data: Option<String>,
}

impl From<GupshupTemplate> for TemplateInfo {
    fn from(t: GupshupTemplate) -> Self {
        TemplateInfo {
            id: t.id.filter(|id| !id.is_empty()),
            name: t.element_name,
            language: t.language_code,
            category: t.category,
            status: t.status,
            body: t.data,
        }
    }
}

#[async_trait]
impl WhatsappAdmin for GupshupAdmin {
    async fn list_templates(&self) -> Result<Vec<TemplateInfo>, ProviderError> {
        self.fetch_templates().await
    }

    async fn create_template(&self, _draft: &TemplateDraft) -> Result<TemplateInfo, ProviderError> {
        Err(unsupported(
            PROVIDER,
            "template creation through its self-serve API (providers.md §7 documents none): \
             submit templates in the Gupshup console, then send them by their id",
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
            "media upload through its self-serve API: its sends take media by public link \
             (extras.media.link)",
        ))
    }

    async fn message_status(
        &self,
        _provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        Err(unsupported(
            PROVIDER,
            "a message status lookup: statuses arrive only through its callbacks",
        ))
    }

    async fn setup_webhook(&self, _url: &str) -> Result<(), ProviderError> {
        Err(unsupported(
            PROVIDER,
            "setting the callback URL by API: set it per app in the Gupshup console, \
             with ?token=<webhookSecret> appended",
        ))
    }
}

/// The live connection test: the app's template list (see the module docs).
pub struct GupshupProbe {
    http: crate::http::ProviderClient,
}

impl GupshupProbe {
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
impl ConnectionProbe for GupshupProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Whatsapp(spec) = spec else {
            return check(
                CheckStatus::Failed,
                "the Gupshup check only tests WhatsApp connections".into(),
            );
        };
        let app = spec.app_name.as_deref().unwrap_or("");
        match GupshupAdmin::new(spec, self.http.clone())
            .fetch_templates()
            .await
        {
            Ok(templates) => check(
                CheckStatus::Passed,
                format!(
                    "Gupshup accepted the API key and listed {} template(s) of the app '{app}' \
                     (read-only template list)",
                    templates.len()
                ),
            ),
            Err(e) => check(CheckStatus::Failed, failure_words(&e, app)),
        }
    }
}

/// What a failed template list says about the connection, in words.
fn failure_words(e: &ProviderError, app: &str) -> String {
    let reason = &e.message;
    match (e.kind, e.http_status) {
        (_, None) if e.code.as_deref() == Some("msgengine_misconfigured") => reason.clone(),
        (FailureKind::Timeout, _) => "Gupshup did not answer within the request timeout".into(),
        (FailureKind::Transient, None) => format!("could not reach Gupshup: {reason}"),
        (_, Some(s @ (401 | 403))) => {
            format!("Gupshup refused the API key (HTTP {s}: {reason})")
        }
        (_, Some(s @ (400 | 404))) => format!(
            "Gupshup does not know the app '{app}' for this API key, or baseUrl is not \
             Gupshup's API (HTTP {s}: {reason})"
        ),
        (FailureKind::RateLimited, _) => {
            format!("Gupshup is rate limiting this API key; try again later ({reason})")
        }
        (FailureKind::Transient, Some(s)) => {
            format!("Gupshup is unavailable (HTTP {s}: {reason}); try again later")
        }
        (_, Some(s)) => {
            format!("Gupshup refused the template list of the app '{app}' (HTTP {s}: {reason})")
        }
        (_, None) => format!("Gupshup refused: {reason}"),
    }
}

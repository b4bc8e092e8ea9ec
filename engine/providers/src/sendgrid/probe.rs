//! SendGrid's connection test: `GET /v3/scopes`, authenticated and
//! read-only. It proves the API key works and tells whether it may send
//! (`mail.send` among its scopes).

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde::Deserialize;

use super::admin::endpoint;
use super::classify_response;
use crate::esp::{self, probe_refused as failed, ProbeHints};
use crate::probe::{Check, ConnectionProbe};

const HINTS: ProbeHints<'static> = ProbeHints {
    provider: "SendGrid",
    unauthorized: "check apiKey (an SG.… API key that has not been deleted or revoked)",
    forbidden:
        "the API key lacks the permission to read its scopes; give it at least Mail Send access",
    not_found:
        "check baseUrl (https://api.sendgrid.com, or https://api.eu.sendgrid.com for EU subusers)",
};

/// Tests SendGrid connections through the shared client.
pub struct SendgridProbe {
    http: crate::http::ProviderClient,
}

impl SendgridProbe {
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

#[derive(Deserialize)]
struct Scopes {
    #[serde(default)]
    scopes: Vec<String>,
}

#[async_trait]
impl ConnectionProbe for SendgridProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Email(spec) = spec else {
            return failed("not an email connection".into());
        };
        let Some(api_key) = spec.api_key.as_ref() else {
            return failed("SENDGRID needs apiKey".into());
        };
        let url = match endpoint(spec.base_url.as_deref(), &["v3", "scopes"]) {
            Ok(url) => url,
            Err(e) => return failed(e.message),
        };
        let request = self.http.get(url).bearer_auth(api_key.expose());
        let answer =
            match esp::call(&self.http, request, &[api_key.expose()], classify_response).await {
                Ok(answer) => answer,
                Err(e) => return esp::probe_failed(&e, &HINTS),
            };
        let scopes: Scopes = match esp::json_body(&answer, "SendGrid", "the key's scopes") {
            Ok(scopes) => scopes,
            Err(e) => return failed(e.message),
        };
        if scopes.scopes.iter().any(|s| s == "mail.send") {
            esp::probe_passed(format!(
                "SendGrid accepted the API key; it may send mail ({} scopes)",
                scopes.scopes.len()
            ))
        } else {
            failed("SendGrid accepted the API key, but it lacks the mail.send scope: give it Mail Send access".into())
        }
    }
}

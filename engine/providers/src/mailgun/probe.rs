//! Mailgun's connection test: `GET /v4/domains/{domain}` (providers.md §1.2),
//! authenticated and read-only. It proves the private API key works in the
//! domain's region and that the account owns the domain.

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde::Deserialize;

use super::admin::{endpoint, DomainInfo};
use super::classify_response;
use crate::esp::{self, probe_refused as failed, ProbeHints};
use crate::probe::{Check, ConnectionProbe};

const HINTS: ProbeHints<'static> = ProbeHints {
    provider: "Mailgun",
    unauthorized: "check apiKey (the private API key, not a domain sending key or the public key) and the region: EU domains need baseUrl https://api.eu.mailgun.net",
    forbidden: "the key may be a domain sending key, which can only send; use the account's private API key",
    not_found: "Mailgun does not know this domain in this account and region: check domain, and baseUrl for EU domains",
};

/// Tests Mailgun connections through the shared client.
pub struct MailgunProbe {
    http: crate::http::ProviderClient,
}

impl MailgunProbe {
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

#[derive(Deserialize)]
struct Found {
    domain: DomainInfo,
}

#[async_trait]
impl ConnectionProbe for MailgunProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Email(spec) = spec else {
            return failed("not an email connection".into());
        };
        let (Some(domain), Some(api_key)) = (spec.domain.as_deref(), spec.api_key.as_ref()) else {
            return failed("MAILGUN needs apiKey and domain".into());
        };
        let url = match endpoint(spec.base_url.as_deref(), &["v4", "domains", domain]) {
            Ok(url) => url,
            Err(e) => return failed(e.message),
        };
        let request = self.http.get(url).basic_auth("api", Some(api_key.expose()));
        let answer =
            match esp::call(&self.http, request, &[api_key.expose()], classify_response).await {
                Ok(answer) => answer,
                Err(e) => return esp::probe_failed(&e, &HINTS),
            };
        let found: Found = match esp::json_body(&answer, "Mailgun", "the domain") {
            Ok(found) => found,
            Err(e) => return failed(e.message),
        };
        match found.domain.state.as_str() {
            "active" => esp::probe_passed(format!(
                "Mailgun accepted the API key; domain {domain} is active"
            )),
            "disabled" => failed(format!(
                "Mailgun accepted the API key, but domain {domain} is disabled: Mailgun will not send for it"
            )),
            state => esp::probe_passed(format!(
                "Mailgun accepted the API key; domain {domain} is {state}: publish its DNS records and verify it, until then Mailgun sends only to authorised recipients"
            )),
        }
    }
}

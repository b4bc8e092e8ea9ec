//! Mailjet's connection test: `GET /v3/REST/dns/{domain}`, authenticated
//! and read-only (the domain is the connection's `domain`, else the
//! `fromEmail` domain). It proves the key pair works and that Mailjet knows
//! the sending domain (Mailjet creates it when a sender of it is added).

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde_json::Value;

use super::admin::{endpoint, sending_domain};
use super::{classify_response, credentials, NEEDS_KEYS};
use crate::esp::{self, probe_refused as failed, ProbeHints};
use crate::probe::{Check, ConnectionProbe};

const HINTS: ProbeHints<'static> = ProbeHints {
    provider: "Mailjet",
    unauthorized: "check apiKey: it must be API_KEY:SECRET_KEY, both from Mailjet's API key management page, and the key must be active",
    forbidden: "this key may not read sender domains; use the account's main API key or a subaccount key with API access",
    not_found: "Mailjet does not know the sending domain: add fromEmail (or the domain) as a sender in Mailjet",
};

/// Tests Mailjet connections through the shared client.
pub struct MailjetProbe {
    http: crate::http::ProviderClient,
}

impl MailjetProbe {
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

#[async_trait]
impl ConnectionProbe for MailjetProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Email(spec) = spec else {
            return failed("not an email connection".into());
        };
        let Some((public, private)) = credentials(spec.api_key.as_ref()) else {
            return failed(NEEDS_KEYS.into());
        };
        let Some(domain) = sending_domain(spec) else {
            return failed("MAILJET needs domain or fromEmail".into());
        };
        let url = match endpoint(spec.base_url.as_deref(), &["v3", "REST", "dns", &domain]) {
            Ok(url) => url,
            Err(e) => return failed(e.message),
        };
        let request = self.http.get(url).basic_auth(public, Some(private));
        let answer =
            match esp::call(&self.http, request, &[private, public], classify_response).await {
                Ok(answer) => answer,
                Err(e) => return esp::probe_failed(&e, &HINTS),
            };
        let body: Value = match esp::json_body(&answer, "Mailjet", "the sender domain") {
            Ok(body) => body,
            Err(e) => return failed(e.message),
        };
        let Some(dns) = body.pointer("/Data/0") else {
            return failed(format!("Mailjet accepted the keys but does not know the sending domain {domain}: add fromEmail as a sender in Mailjet"));
        };
        let status = |name: &str| {
            dns.get(name)
                .and_then(Value::as_str)
                .unwrap_or("Not checked")
                .to_owned()
        };
        esp::probe_passed(format!(
            "Mailjet accepted the API key and secret; sending domain {domain} has SPF {} and DKIM {}",
            status("SPFStatus"),
            status("DKIMStatus")
        ))
    }
}

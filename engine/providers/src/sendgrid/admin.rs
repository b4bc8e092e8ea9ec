//! SendGrid management:
//!
//! - verify_domain (providers.md §2.3): `GET /v3/whitelabel/domains?domain=`
//!   finds the authenticated domain (the connection's `domain`, else the
//!   `fromEmail` domain), `POST /v3/whitelabel/domains/{id}/validate`
//!   re-checks it; records come from its `dns` object (`mail_cname` is the
//!   return path, `dkim1`/`dkim2`/`dkim` DKIM, `*spf` SPF, `mail_server`
//!   MX), validity from `validation_results` (else the record's own
//!   `valid`). Link branding (tracking CNAMEs) is a separate SendGrid
//!   resource and not reported here.
//! - stats: `GET /v3/stats?start_date&end_date&aggregated_by=day` (global
//!   stats; from SendGrid's API reference, not providers.md): accepted =
//!   `requests`, failed = blocks and drops, bounced = `bounces`.
//! - setup_webhooks: `PATCH /v3/user/webhooks/event/settings` (the
//!   account's event webhook: every event on, the URL, enabled; from
//!   SendGrid's SDK examples, not providers.md), then makes sure signing is
//!   on (`GET`, and `PATCH {"enabled": true}` when off, on
//!   `/v3/user/webhooks/event/settings/signed`). If the connection's
//!   `webhookSecret` is not the signing public key SendGrid reports, the
//!   webhook cannot be verified: that is returned as an error naming the
//!   (public) key to store.

use async_trait::async_trait;
use chrono::NaiveDate;
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::webhook::key_base64;
use super::{classify_response, DEFAULT_BASE_URL};
use crate::esp;
use crate::http::{self, Answer};
use crate::manage::{DayStats, DnsPurpose, DnsRecord, DomainVerification, EmailAdmin, EmailStats};
use crate::send::{FailureKind, ProviderError};

/// SendGrid management for one connection.
pub struct SendgridAdmin {
    http: crate::http::ProviderClient,
    base_url: Option<String>,
    domain: Option<String>,
    api_key: Option<Secret>,
    webhook_key: Option<Secret>,
}

impl SendgridAdmin {
    pub fn new(spec: &EmailProviderSpec, http: crate::http::ProviderClient) -> Self {
        let domain = spec.domain.clone().or_else(|| {
            spec.from_email
                .as_deref()
                .and_then(esp::domain_of)
                .map(str::to_owned)
        });
        Self {
            http,
            base_url: spec.base_url.clone(),
            domain,
            api_key: spec.api_key.clone(),
            webhook_key: spec.webhook_secret.clone(),
        }
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured("SENDGRID needs apiKey"));
        };
        let url = endpoint(self.base_url.as_deref(), segments)?;
        let request = self.http.request(method, url).bearer_auth(api_key.expose());
        esp::call(
            &self.http,
            build(request),
            &[api_key.expose()],
            classify_response,
        )
        .await
    }
}

pub(super) fn endpoint(
    base_url: Option<&str>,
    segments: &[&str],
) -> Result<url::Url, ProviderError> {
    http::endpoint(base_url, DEFAULT_BASE_URL, segments).ok_or_else(|| {
        ProviderError::misconfigured("SENDGRID baseUrl (when set) must be an http(s) URL")
    })
}

#[derive(Deserialize)]
struct AuthenticatedDomain {
    id: Value,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    valid: bool,
    #[serde(default)]
    dns: Map<String, Value>,
}

#[derive(Deserialize)]
struct Validation {
    #[serde(default)]
    valid: bool,
    #[serde(default)]
    validation_results: Map<String, Value>,
}

/// What a record of the `dns` object is for, by its key.
fn purpose(key: &str, record_type: &str) -> DnsPurpose {
    match key {
        "mail_cname" => DnsPurpose::ReturnPath,
        "mail_server" => DnsPurpose::Mx,
        k if k.starts_with("dkim") => DnsPurpose::Dkim,
        k if k.ends_with("spf") => DnsPurpose::Spf,
        _ if record_type.eq_ignore_ascii_case("mx") => DnsPurpose::Mx,
        _ => DnsPurpose::Ownership,
    }
}

fn records(dns: &Map<String, Value>, results: &Map<String, Value>) -> Vec<DnsRecord> {
    dns.iter()
        .filter_map(|(key, record)| {
            let field = |name: &str| record.get(name).and_then(Value::as_str).unwrap_or("");
            let record_type = field("type").to_ascii_uppercase();
            let valid = results
                .get(key)
                .and_then(|r| r.get("valid"))
                .or(record.get("valid"))
                .and_then(Value::as_bool);
            (!field("host").is_empty()).then(|| DnsRecord {
                purpose: purpose(key, &record_type),
                record_type: record_type.clone(),
                name: field("host").to_owned(),
                value: field("data").to_owned(),
                valid,
            })
        })
        .collect()
}

fn count(metrics: &Value, name: &str) -> u64 {
    metrics.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// Sums the per-day metrics of a `/v3/stats` answer.
fn stats_of(days: &[Value], from: NaiveDate, to: NaiveDate) -> EmailStats {
    let mut total = EmailStats {
        from: Some(from),
        to: Some(to),
        ..EmailStats::default()
    };
    for day in days {
        let metrics = day.pointer("/stats/0/metrics").unwrap_or(&Value::Null);
        let failed = [
            "blocks",
            "bounce_drops",
            "invalid_emails",
            "spam_report_drops",
            "unsubscribe_drops",
        ]
        .iter()
        .map(|m| count(metrics, m))
        .sum();
        let entry = DayStats {
            date: day
                .get("date")
                .and_then(Value::as_str)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
            accepted: count(metrics, "requests"),
            delivered: count(metrics, "delivered"),
            failed,
            bounced: count(metrics, "bounces"),
            opened: count(metrics, "opens"),
            clicked: count(metrics, "clicks"),
            complained: count(metrics, "spam_reports"),
            unsubscribed: count(metrics, "unsubscribes"),
        };
        total.accepted += entry.accepted;
        total.delivered += entry.delivered;
        total.failed += entry.failed;
        total.bounced += entry.bounced;
        total.opened += entry.opened;
        total.clicked += entry.clicked;
        total.complained += entry.complained;
        total.unsubscribed += entry.unsubscribed;
        total.days.push(entry);
    }
    total
}

#[async_trait]
impl EmailAdmin for SendgridAdmin {
    async fn verify_domain(&self) -> Result<DomainVerification, ProviderError> {
        let Some(domain) = self.domain.as_deref() else {
            return Err(ProviderError::misconfigured(
                "SENDGRID needs domain or fromEmail",
            ));
        };
        let answer = self
            .call(Method::GET, &["v3", "whitelabel", "domains"], |r| {
                r.query(&[("domain", domain)])
            })
            .await?;
        let found: Vec<AuthenticatedDomain> =
            esp::json_body(&answer, "SendGrid", "the authenticated domains")?;
        let Some(entry) = found
            .into_iter()
            .filter(|d| d.domain.eq_ignore_ascii_case(domain))
            .max_by_key(|d| d.valid)
        else {
            let mut e = ProviderError::new(
                FailureKind::Permanent,
                format!("SendGrid has no authenticated domain {domain}: authenticate it under Settings → Sender Authentication"),
            );
            e.code = Some("msgengine_not_found".into());
            return Err(e);
        };
        let id = esp::text_of(&entry.id).unwrap_or_default();
        let answer = self
            .call(
                Method::POST,
                &["v3", "whitelabel", "domains", &id, "validate"],
                |r| r,
            )
            .await?;
        let validation: Validation = esp::json_body(&answer, "SendGrid", "the validation")?;
        Ok(DomainVerification {
            domain: entry.domain,
            verified: validation.valid,
            provider_state: if validation.valid { "valid" } else { "invalid" }.into(),
            records: records(&entry.dns, &validation.validation_results),
        })
    }

    async fn stats(&self, from: NaiveDate, to: NaiveDate) -> Result<EmailStats, ProviderError> {
        let query = [
            ("start_date", from.format("%Y-%m-%d").to_string()),
            ("end_date", to.format("%Y-%m-%d").to_string()),
            ("aggregated_by", "day".to_owned()),
        ];
        let answer = self
            .call(Method::GET, &["v3", "stats"], |r| r.query(&query))
            .await?;
        let days: Vec<Value> = esp::json_body(&answer, "SendGrid", "stats")?;
        Ok(stats_of(&days, from, to))
    }

    async fn setup_webhooks(&self, url: &str) -> Result<(), ProviderError> {
        let settings = json!({
            "enabled": true, "url": url,
            "processed": true, "delivered": true, "deferred": true, "dropped": true,
            "bounce": true, "open": true, "click": true, "spam_report": true,
            "unsubscribe": true, "group_unsubscribe": true, "group_resubscribe": true
        });
        let signed = ["v3", "user", "webhooks", "event", "settings", "signed"];
        self.call(Method::PATCH, &signed[..5], |r| r.json(&settings))
            .await?;
        let answer = self.call(Method::GET, &signed, |r| r).await?;
        let mut key = public_key_of(&answer)?;
        if key.is_empty() {
            let answer = self
                .call(Method::PATCH, &signed, |r| {
                    r.json(&json!({"enabled": true}))
                })
                .await?;
            key = public_key_of(&answer)?;
        }
        let configured = self.webhook_key.as_ref().map(|k| key_base64(k.expose()));
        if key.is_empty() || configured.as_deref() == Some(key.as_str()) {
            return Ok(());
        }
        let mut e = ProviderError::new(
            FailureKind::Permanent,
            format!("SendGrid now posts events to {url}, but msgengine will refuse them until webhookSecret holds SendGrid's verification key: {key}"),
        );
        e.code = Some("msgengine_webhook_key_mismatch".into());
        Err(e)
    }
}

/// The `public_key` of a signed-settings answer ("" when signing is off).
fn public_key_of(answer: &Answer) -> Result<String, ProviderError> {
    let body: Value = esp::json_body(answer, "SendGrid", "the signed webhook settings")?;
    Ok(body
        .get("public_key")
        .and_then(Value::as_str)
        .map(key_base64)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_records_take_validity_from_the_validation() {
        let dns = json!({
            "mail_cname": {"valid": false, "type": "cname", "host": "em1.example.com", "data": "u1.wl.sendgrid.net"},
            "dkim1": {"valid": true, "type": "cname", "host": "s1._domainkey.example.com", "data": "s1.domainkey.u1.wl.sendgrid.net"}
        });
        let results = json!({"mail_cname": {"valid": true, "reason": null}});
        let (Value::Object(dns), Value::Object(results)) = (dns, results) else {
            unreachable!("object literals")
        };
        let got: Vec<_> = records(&dns, &results)
            .into_iter()
            .map(|r| (r.purpose, r.record_type, r.valid))
            .collect();
        assert_eq!(
            got,
            [
                (DnsPurpose::Dkim, "CNAME".to_owned(), Some(true)),
                (DnsPurpose::ReturnPath, "CNAME".to_owned(), Some(true)),
            ]
        );
    }

    #[test]
    fn stats_sum_days_and_count_drops_as_failures() {
        let days = vec![
            json!({"date": "2024-01-01", "stats": [{"metrics": {"requests": 10, "delivered": 8, "blocks": 1,
                   "bounce_drops": 1, "bounces": 1, "opens": 4, "clicks": 2, "spam_reports": 1, "unsubscribes": 1}}]}),
            json!({"date": "2024-01-02", "stats": [{"metrics": {"requests": 5, "delivered": 5}}]}),
        ];
        let from = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        let to = NaiveDate::from_ymd_opt(2024, 1, 2).expect("date");
        let stats = stats_of(&days, from, to);
        assert_eq!(
            (stats.accepted, stats.delivered, stats.failed, stats.bounced),
            (15, 13, 2, 1)
        );
        assert_eq!(stats.days[1].date, Some(to));
    }
}

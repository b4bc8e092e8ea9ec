//! Mailgun management (providers.md §1.2–1.4):
//!
//! - verify_domain: `PUT /v4/domains/{d}/verify` (Mailgun re-checks DNS and
//!   answers with the domain and its sending/receiving records, each
//!   `valid` = `valid` | `unknown` | …).
//! - stats: `GET /v3/{d}/stats/total` with every counted event, day
//!   resolution, `start`/`end` as unix seconds (the docs accept RFC 2822 or
//!   epoch; the range end is the last second of the `to` day).
//! - setup_webhooks: `GET /v3/domains/{d}/webhooks`, then per event id a
//!   `POST` (new) or `PUT /v3/domains/{d}/webhooks/{id}` (existing) with
//!   `url` repeated. Other URLs already subscribed are kept (Mailgun allows
//!   3 per event; the oldest give way). `accepted` is left out on purpose:
//!   the send's 200 already says it, and it would double the webhook traffic.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{NaiveDate, NaiveTime};
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{classify_response, DEFAULT_BASE_URL};
use crate::esp;
use crate::http::{self, Answer};
use crate::manage::{DayStats, DnsPurpose, DnsRecord, DomainVerification, EmailAdmin, EmailStats};
use crate::send::ProviderError;

/// The webhook ids pointed at msgengine: every delivery outcome and engagement.
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "delivered",
    "permanent_fail",
    "temporary_fail",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
];
/// Mailgun keeps at most this many URLs per webhook event.
const MAX_URLS_PER_EVENT: usize = 3;
/// The events `stats/total` is asked for.
const STATS_EVENTS: [&str; 7] = [
    "accepted",
    "delivered",
    "failed",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
];

/// Mailgun management for one connection (its domain and API key).
pub struct MailgunAdmin {
    http: crate::http::ProviderClient,
    base_url: Option<String>,
    domain: Option<String>,
    api_key: Option<Secret>,
}

impl MailgunAdmin {
    pub fn new(spec: &EmailProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            base_url: spec.base_url.clone(),
            domain: spec.domain.clone(),
            api_key: spec.api_key.clone(),
        }
    }

    fn domain(&self) -> Result<&str, ProviderError> {
        self.domain
            .as_deref()
            .ok_or_else(|| ProviderError::misconfigured("MAILGUN needs domain"))
    }

    /// An authenticated request to `segments` under the base URL.
    fn request(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<(reqwest::RequestBuilder, &Secret), ProviderError> {
        let Some(api_key) = &self.api_key else {
            return Err(ProviderError::misconfigured("MAILGUN needs apiKey"));
        };
        let url = endpoint(self.base_url.as_deref(), segments)?;
        let request = self
            .http
            .request(method, url)
            .basic_auth("api", Some(api_key.expose()));
        Ok((request, api_key))
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let (request, api_key) = self.request(method, segments)?;
        esp::call(
            &self.http,
            build(request),
            &[api_key.expose()],
            classify_response,
        )
        .await
    }
}

pub(super) fn endpoint(base_url: Option<&str>, segments: &[&str]) -> Result<Url, ProviderError> {
    http::endpoint(base_url, DEFAULT_BASE_URL, segments).ok_or_else(|| {
        ProviderError::misconfigured("MAILGUN baseUrl (when set) must be an http(s) URL")
    })
}

#[derive(Deserialize)]
struct DomainAnswer {
    domain: DomainInfo,
    #[serde(default)]
    sending_dns_records: Vec<MailgunRecord>,
    #[serde(default)]
    receiving_dns_records: Vec<MailgunRecord>,
}

#[derive(Deserialize)]
pub(super) struct DomainInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: String,
}

#[derive(Deserialize)]
struct MailgunRecord {
    #[serde(default)]
    record_type: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    valid: Option<String>,
}

impl MailgunRecord {
    fn into_record(self, fallback_name: &str) -> DnsRecord {
        let kind = self.record_type.to_ascii_uppercase();
        let value_lower = self.value.to_ascii_lowercase();
        let purpose = match kind.as_str() {
            "MX" => DnsPurpose::Mx,
            "CNAME" => DnsPurpose::Tracking,
            _ if value_lower.starts_with("v=spf1") => DnsPurpose::Spf,
            _ if value_lower.starts_with("v=dmarc1") => DnsPurpose::Dmarc,
            _ if self.name.contains("._domainkey.") || value_lower.starts_with("k=rsa") => {
                DnsPurpose::Dkim
            }
            _ => DnsPurpose::Ownership,
        };
        DnsRecord {
            purpose,
            record_type: kind,
            name: if self.name.is_empty() {
                fallback_name.to_owned()
            } else {
                self.name
            },
            value: self.value,
            valid: self
                .valid
                .filter(|v| !v.is_empty())
                .map(|v| v.eq_ignore_ascii_case("valid")),
        }
    }
}

#[derive(Deserialize, Default)]
struct WebhooksAnswer {
    #[serde(default)]
    webhooks: HashMap<String, Value>,
}

#[async_trait]
impl EmailAdmin for MailgunAdmin {
    async fn verify_domain(&self) -> Result<DomainVerification, ProviderError> {
        let domain = self.domain()?;
        let answer = self
            .call(Method::PUT, &["v4", "domains", domain, "verify"], |r| r)
            .await?;
        let found: DomainAnswer = esp::json_body(&answer, "Mailgun", "the domain")?;
        let records = found
            .sending_dns_records
            .into_iter()
            .chain(found.receiving_dns_records)
            .map(|r| r.into_record(domain))
            .collect();
        Ok(DomainVerification {
            domain: if found.domain.name.is_empty() {
                domain.to_owned()
            } else {
                found.domain.name
            },
            verified: found.domain.state == "active",
            provider_state: found.domain.state,
            records,
        })
    }

    async fn stats(&self, from: NaiveDate, to: NaiveDate) -> Result<EmailStats, ProviderError> {
        let domain = self.domain()?;
        let start = from.and_time(NaiveTime::MIN).and_utc().timestamp();
        let end = to.and_time(NaiveTime::MIN).and_utc().timestamp() + 86_399;
        let mut query: Vec<(&str, String)> = STATS_EVENTS
            .iter()
            .map(|e| ("event", (*e).to_owned()))
            .collect();
        query.push(("start", start.to_string()));
        query.push(("end", end.to_string()));
        query.push(("resolution", "day".into()));
        let answer = self
            .call(Method::GET, &["v3", domain, "stats", "total"], |r| {
                r.query(&query)
            })
            .await?;
        let body: Value = esp::json_body(&answer, "Mailgun", "stats")?;
        Ok(stats_of(&body, from, to))
    }

    async fn setup_webhooks(&self, url: &str) -> Result<(), ProviderError> {
        let domain = self.domain()?;
        let answer = self
            .call(Method::GET, &["v3", "domains", domain, "webhooks"], |r| r)
            .await?;
        let existing: WebhooksAnswer = esp::json_body(&answer, "Mailgun", "the webhooks")?;
        for event in WEBHOOK_EVENTS {
            let current: Vec<String> = existing
                .webhooks
                .get(event)
                .and_then(|w| w.get("urls"))
                .and_then(Value::as_array)
                .map(|urls| {
                    urls.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if current.iter().any(|u| u == url) {
                continue;
            }
            let mut urls: Vec<(&str, &str)> = current.iter().map(|u| ("url", u.as_str())).collect();
            urls.push(("url", url));
            let keep_from = urls.len().saturating_sub(MAX_URLS_PER_EVENT);
            let mut form = urls.split_off(keep_from);
            if existing.webhooks.contains_key(event) {
                self.call(
                    Method::PUT,
                    &["v3", "domains", domain, "webhooks", event],
                    |r| r.form(&form),
                )
                .await?;
            } else {
                form.insert(0, ("id", event));
                self.call(Method::POST, &["v3", "domains", domain, "webhooks"], |r| {
                    r.form(&form)
                })
                .await?;
            }
        }
        Ok(())
    }
}

/// A counter at `pointer`, 0 when absent.
fn count(item: &Value, pointer: &str) -> u64 {
    item.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Sums `stats[]` of a `stats/total` answer, one [`DayStats`] per entry.
fn stats_of(body: &Value, from: NaiveDate, to: NaiveDate) -> EmailStats {
    let mut total = EmailStats {
        from: Some(from),
        to: Some(to),
        ..EmailStats::default()
    };
    let items = body.get("stats").and_then(Value::as_array);
    for item in items.into_iter().flatten() {
        let bounced = count(item, "/failed/permanent/bounce")
            + count(item, "/failed/permanent/delayed-bounce");
        let day = DayStats {
            date: item.get("time").and_then(Value::as_str).and_then(day_of),
            accepted: count(item, "/accepted/total"),
            delivered: count(item, "/delivered/total"),
            failed: count(item, "/failed/permanent/total").saturating_sub(bounced),
            bounced,
            opened: count(item, "/opened/total"),
            clicked: count(item, "/clicked/total"),
            complained: count(item, "/complained/total"),
            unsubscribed: count(item, "/unsubscribed/total"),
        };
        total.accepted += day.accepted;
        total.delivered += day.delivered;
        total.failed += day.failed;
        total.bounced += day.bounced;
        total.opened += day.opened;
        total.clicked += day.clicked;
        total.complained += day.complained;
        total.unsubscribed += day.unsubscribed;
        total.days.push(day);
    }
    total
}

/// The date of an RFC 2822 time as Mailgun writes it
/// (`Mon, 01 Jan 2024 00:00:00 UTC`).
fn day_of(time: &str) -> Option<NaiveDate> {
    let rest = time.split_once(", ").map_or(time, |(_, rest)| rest);
    let date: Vec<&str> = rest.split_whitespace().take(3).collect();
    NaiveDate::parse_from_str(&date.join(" "), "%d %b %Y").ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stats_split_bounces_from_other_permanent_failures() {
        let body = json!({"stats": [
            {"time": "Mon, 01 Jan 2024 00:00:00 UTC",
             "accepted": {"total": 10}, "delivered": {"total": 7},
             "failed": {"permanent": {"bounce": 1, "delayed-bounce": 1, "suppress-bounce": 1, "total": 3},
                        "temporary": {"total": 4}},
             "opened": {"total": 5}, "clicked": {"total": 2},
             "unsubscribed": {"total": 1}, "complained": {"total": 1}},
            {"time": "Tue, 02 Jan 2024 00:00:00 UTC", "accepted": {"total": 1}}
        ]});
        let from = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        let to = NaiveDate::from_ymd_opt(2024, 1, 2).expect("date");
        let stats = stats_of(&body, from, to);
        assert_eq!(
            (stats.accepted, stats.delivered, stats.failed, stats.bounced),
            (11, 7, 1, 2)
        );
        assert_eq!(
            (
                stats.opened,
                stats.clicked,
                stats.complained,
                stats.unsubscribed
            ),
            (5, 2, 1, 1)
        );
        assert_eq!(stats.days.len(), 2);
        assert_eq!(stats.days[1].date, Some(to));
    }

    #[test]
    fn records_get_their_purpose_and_validity() {
        let spf = MailgunRecord {
            record_type: "TXT".into(),
            name: "mg.example.com".into(),
            value: "v=spf1 include:mailgun.org ~all".into(),
            valid: Some("valid".into()),
        };
        let dkim = MailgunRecord {
            record_type: "TXT".into(),
            name: "pic._domainkey.mg.example.com".into(),
            value: "k=rsa; p=MIGf".into(),
            valid: Some("unknown".into()),
        };
        let tracking = MailgunRecord {
            record_type: "CNAME".into(),
            name: "email.mg.example.com".into(),
            value: "mailgun.org".into(),
            valid: None,
        };
        let got: Vec<_> = [spf, dkim, tracking]
            .into_iter()
            .map(|r| r.into_record("mg.example.com"))
            .map(|r| (r.purpose, r.valid))
            .collect();
        assert_eq!(
            got,
            [
                (DnsPurpose::Spf, Some(true)),
                (DnsPurpose::Dkim, Some(false)),
                (DnsPurpose::Tracking, None)
            ]
        );
    }
}

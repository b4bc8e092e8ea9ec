//! Mailjet management (v3 REST resources; answers are
//! `{"Count", "Data": [...], "Total"}`). Beyond providers.md §3.2, these
//! follow Mailjet's API guides:
//!
//! - verify_domain: `GET /v3/REST/dns/{domain}` (the records Mailjet
//!   expects: SPF, DKIM, the ownership TXT token) and
//!   `POST /v3/REST/dns/{domain}/check` (a fresh check; `SPFStatus` /
//!   `DKIMStatus` = `OK` | `Error` | `Not checked`). The domain is the
//!   connection's `domain`, else the `fromEmail` domain.
//! - stats: `GET /v3/REST/statcounters` for the API key, message-based
//!   timing, one slice per day; `FromTS`/`ToTS` as unix seconds
//!   (unconfirmed: the guides show timestamps without fixing the format).
//!   Counters may come as numbers or numeric strings.
//! - setup_webhooks: `GET /v3/REST/eventcallbackurl`, then per event type a
//!   `PUT /v3/REST/eventcallbackurl/{ID}` (existing, not a backup URL) or a
//!   `POST` (new), `Version` 2 (arrays), `Status` `alive`. The URL gets the
//!   connection's `webhookSecret` as its `token` query parameter, which the
//!   webhook handler requires because Mailjet does not sign.

use async_trait::async_trait;
use chrono::{NaiveDate, NaiveTime};
use msgengine_domain::provider::EmailProviderSpec;
use msgengine_domain::Secret;
use reqwest::Method;
use serde_json::{json, Value};

use super::{classify_response, credentials, DEFAULT_BASE_URL, NEEDS_KEYS};
use crate::esp;
use crate::http::{self, Answer};
use crate::manage::{DayStats, DnsPurpose, DnsRecord, DomainVerification, EmailAdmin, EmailStats};
use crate::send::{FailureKind, ProviderError};

/// The event types pointed at msgengine: every one Mailjet reports.
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "sent", "open", "click", "bounce", "spam", "blocked", "unsub",
];

/// Mailjet management for one connection.
pub struct MailjetAdmin {
    http: crate::http::ProviderClient,
    base_url: Option<String>,
    domain: Option<String>,
    api_key: Option<Secret>,
    webhook_token: Option<Secret>,
}

impl MailjetAdmin {
    pub fn new(spec: &EmailProviderSpec, http: crate::http::ProviderClient) -> Self {
        Self {
            http,
            base_url: spec.base_url.clone(),
            domain: sending_domain(spec),
            api_key: spec.api_key.clone(),
            webhook_token: spec.webhook_secret.clone(),
        }
    }

    fn domain(&self) -> Result<&str, ProviderError> {
        self.domain
            .as_deref()
            .ok_or_else(|| ProviderError::misconfigured("MAILJET needs domain or fromEmail"))
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let Some((public, private)) = credentials(self.api_key.as_ref()) else {
            return Err(ProviderError::misconfigured(NEEDS_KEYS));
        };
        let url = endpoint(self.base_url.as_deref(), segments)?;
        let request = self
            .http
            .request(method, url)
            .basic_auth(public, Some(private));
        esp::call(
            &self.http,
            build(request),
            &[private, public],
            classify_response,
        )
        .await
    }

    /// `Data` of a REST answer.
    async fn data(
        &self,
        method: Method,
        segments: &[&str],
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Vec<Value>, ProviderError> {
        let answer = self.call(method, segments, build).await?;
        let body: Value = esp::json_body(&answer, "Mailjet", what)?;
        Ok(body
            .get("Data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }
}

/// The connection's `domain`, else its `fromEmail` domain.
pub(super) fn sending_domain(spec: &EmailProviderSpec) -> Option<String> {
    spec.domain.clone().or_else(|| {
        spec.from_email
            .as_deref()
            .and_then(esp::domain_of)
            .map(str::to_owned)
    })
}

pub(super) fn endpoint(
    base_url: Option<&str>,
    segments: &[&str],
) -> Result<url::Url, ProviderError> {
    http::endpoint(base_url, DEFAULT_BASE_URL, segments).ok_or_else(|| {
        ProviderError::misconfigured("MAILJET baseUrl (when set) must be an http(s) URL")
    })
}

fn field<'a>(item: &'a Value, name: &str) -> &'a str {
    item.get(name).and_then(Value::as_str).unwrap_or("")
}

/// `OK` → valid, `Error` → not valid, anything else (`Not checked`) → unknown.
fn status_validity(status: &str) -> Option<bool> {
    match status {
        "OK" => Some(true),
        "Error" => Some(false),
        _ => None,
    }
}

/// The records of a `dns` entry, validity from `check` when it has it.
fn records(domain: &str, dns: &Value, check: &Value) -> Vec<DnsRecord> {
    let status = |name: &str| {
        let checked = field(check, name);
        if checked.is_empty() {
            field(dns, name).to_owned()
        } else {
            checked.to_owned()
        }
    };
    let mut records = vec![
        DnsRecord {
            purpose: DnsPurpose::Spf,
            record_type: "TXT".into(),
            name: domain.to_owned(),
            value: field(dns, "SPFRecordValue").to_owned(),
            valid: status_validity(&status("SPFStatus")),
        },
        DnsRecord {
            purpose: DnsPurpose::Dkim,
            record_type: "TXT".into(),
            name: field(dns, "DKIMRecordName")
                .trim_end_matches('.')
                .to_owned(),
            value: field(dns, "DKIMRecordValue").to_owned(),
            valid: status_validity(&status("DKIMStatus")),
        },
    ];
    if !field(dns, "OwnerShipToken").is_empty() {
        records.push(DnsRecord {
            purpose: DnsPurpose::Ownership,
            record_type: "TXT".into(),
            name: field(dns, "OwnerShipTokenRecordName")
                .trim_end_matches('.')
                .to_owned(),
            value: field(dns, "OwnerShipToken").to_owned(),
            valid: None,
        });
    }
    records
}

/// A counter as a number or a numeric string.
fn count(item: &Value, name: &str) -> u64 {
    match item.get(name) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// The day of a `Timeslice`: ISO 8601 (`2024-01-01T00:00:00Z`) or unix seconds.
fn day_of(slice: &Value) -> Option<NaiveDate> {
    let text = esp::text_of(slice)?;
    if let Some(date) = text
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    {
        return Some(date);
    }
    esp::unix_time_of(slice).map(|t| t.date_naive())
}

fn stats_of(slices: &[Value], from: NaiveDate, to: NaiveDate) -> EmailStats {
    let mut total = EmailStats {
        from: Some(from),
        to: Some(to),
        ..EmailStats::default()
    };
    for slice in slices {
        let day = DayStats {
            date: slice.get("Timeslice").and_then(day_of),
            accepted: count(slice, "Total"),
            delivered: count(slice, "MessageSentCount"),
            failed: count(slice, "MessageBlockedCount") + count(slice, "MessageSoftBouncedCount"),
            bounced: count(slice, "MessageHardBouncedCount"),
            opened: count(slice, "MessageOpenedCount"),
            clicked: count(slice, "MessageClickedCount"),
            complained: count(slice, "MessageSpamCount"),
            unsubscribed: count(slice, "MessageUnsubscribedCount"),
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

/// `url` with `token=<secret>` added (replacing any `token` already there).
fn with_token(url: &str, token: &str) -> Result<String, ProviderError> {
    let mut parsed = url::Url::parse(url).map_err(|_| {
        ProviderError::new(FailureKind::Permanent, "the webhook URL is not a valid URL")
    })?;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(name, _)| name != "token")
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("token", token);
    Ok(parsed.into())
}

#[async_trait]
impl EmailAdmin for MailjetAdmin {
    async fn verify_domain(&self) -> Result<DomainVerification, ProviderError> {
        let domain = self.domain()?;
        let dns = self
            .data(
                Method::GET,
                &["v3", "REST", "dns", domain],
                |r| r,
                "the sender domain",
            )
            .await?;
        let dns = dns.into_iter().next().unwrap_or(Value::Null);
        let check = self
            .data(
                Method::POST,
                &["v3", "REST", "dns", domain, "check"],
                |r| r.json(&json!({})),
                "the DNS check",
            )
            .await?;
        let check = check.into_iter().next().unwrap_or(Value::Null);
        let records = records(domain, &dns, &check);
        let verified = records
            .iter()
            .filter(|r| r.purpose != DnsPurpose::Ownership)
            .all(|r| r.valid == Some(true));
        let state = |name: &str| match field(&check, name) {
            "" => field(&dns, name).to_owned(),
            s => s.to_owned(),
        };
        Ok(DomainVerification {
            domain: domain.to_owned(),
            verified,
            provider_state: format!("SPF {}, DKIM {}", state("SPFStatus"), state("DKIMStatus")),
            records,
        })
    }

    async fn stats(&self, from: NaiveDate, to: NaiveDate) -> Result<EmailStats, ProviderError> {
        let start = from.and_time(NaiveTime::MIN).and_utc().timestamp();
        let end = to.and_time(NaiveTime::MIN).and_utc().timestamp() + 86_399;
        let query = [
            ("CounterSource", "APIKey".to_owned()),
            ("CounterTiming", "Message".to_owned()),
            ("CounterResolution", "Day".to_owned()),
            ("FromTS", start.to_string()),
            ("ToTS", end.to_string()),
        ];
        let slices = self
            .data(
                Method::GET,
                &["v3", "REST", "statcounters"],
                |r| r.query(&query),
                "stats",
            )
            .await?;
        Ok(stats_of(&slices, from, to))
    }

    async fn setup_webhooks(&self, url: &str) -> Result<(), ProviderError> {
        let Some(token) = &self.webhook_token else {
            return Err(ProviderError::misconfigured(
                "MAILJET needs webhookSecret before webhooks can be set up: Mailjet does not sign them, so msgengine checks it as the token query parameter",
            ));
        };
        let target = with_token(url, token.expose())?;
        let path = ["v3", "REST", "eventcallbackurl"];
        let existing = self
            .data(
                Method::GET,
                &path,
                |r| r.query(&[("Limit", "100")]),
                "the callbacks",
            )
            .await?;
        for event in WEBHOOK_EVENTS {
            let body = json!({"EventType": event, "Url": target, "Version": 2,
                              "Status": "alive", "IsBackup": false});
            let current = existing.iter().find(|c| {
                field(c, "EventType") == event
                    && c.get("IsBackup").and_then(Value::as_bool) != Some(true)
            });
            match current {
                Some(c) if field(c, "Url") == target && field(c, "Status") == "alive" => {}
                Some(c) => {
                    let id = c.get("ID").and_then(esp::text_of).unwrap_or_default();
                    self.call(Method::PUT, &["v3", "REST", "eventcallbackurl", &id], |r| {
                        r.json(&body)
                    })
                    .await?;
                }
                None => {
                    self.call(Method::POST, &path, |r| r.json(&body)).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_prefer_the_fresh_check() {
        let dns = json!({"DKIMRecordName": "mailjet._domainkey.example.com.", "DKIMRecordValue": "k=rsa; p=F",
                         "DKIMStatus": "Not checked", "SPFRecordValue": "v=spf1 include:spf.mailjet.com ?all",
                         "SPFStatus": "OK", "OwnerShipToken": "0123", "OwnerShipTokenRecordName": "mailjet._0123.example.com"});
        let check =
            json!({"DKIMStatus": "Error", "DKIMErrors": ["no DKIM record"], "SPFStatus": "OK"});
        let got: Vec<_> = records("example.com", &dns, &check)
            .into_iter()
            .map(|r| (r.purpose, r.name, r.valid))
            .collect();
        assert_eq!(
            got,
            [
                (DnsPurpose::Spf, "example.com".to_owned(), Some(true)),
                (
                    DnsPurpose::Dkim,
                    "mailjet._domainkey.example.com".to_owned(),
                    Some(false)
                ),
                (
                    DnsPurpose::Ownership,
                    "mailjet._0123.example.com".to_owned(),
                    None
                ),
            ]
        );
    }

    #[test]
    fn stats_accept_numbers_and_numeric_strings() {
        let slices = vec![
            json!({"Timeslice": "2024-01-01T00:00:00Z", "Total": 10, "MessageSentCount": 7,
                   "MessageBlockedCount": 1, "MessageSoftBouncedCount": 1, "MessageHardBouncedCount": 1,
                   "MessageOpenedCount": "4", "MessageClickedCount": "2", "MessageSpamCount": 0,
                   "MessageUnsubscribedCount": 1}),
            json!({"Timeslice": "1704153600", "Total": "3", "MessageSentCount": "3"}),
        ];
        let from = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        let to = NaiveDate::from_ymd_opt(2024, 1, 2).expect("date");
        let stats = stats_of(&slices, from, to);
        assert_eq!(
            (stats.accepted, stats.delivered, stats.failed, stats.bounced),
            (13, 10, 2, 1)
        );
        assert_eq!((stats.opened, stats.clicked), (4, 2));
        assert_eq!(stats.days[1].date, Some(to));
    }

    #[test]
    fn the_token_is_added_or_replaced() {
        assert_eq!(
            with_token("https://x.example/hook?a=1&token=old", "s3cret")
                .ok()
                .as_deref(),
            Some("https://x.example/hook?a=1&token=s3cret")
        );
        assert!(with_token("not a url", "t").is_err());
    }
}

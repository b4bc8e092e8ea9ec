//! Setting up a tenant for a run through the admin and provider APIs.
//!
//! A fresh organization, an API key for it, an admission rate high enough
//! not to be what the run measures (`PUT .../rate-limit`; an engine without
//! that route answers 404/405 and the run goes on with the default, after a
//! warning), and a `SANDBOX` provider for the run's channel with the chosen
//! latency and failure rates.

use anyhow::{Context, Result};
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::Api;
use crate::payload::Channel;

/// How the sandbox provider behaves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxProfile {
    pub latency_ms: u32,
    pub transient_failure_rate: f64,
    pub permanent_failure_rate: f64,
}

impl SandboxProfile {
    /// No message is meant to fail.
    pub fn is_reliable(&self) -> bool {
        self.transient_failure_rate == 0.0 && self.permanent_failure_rate == 0.0
    }
}

/// The organization's admission limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Admission {
    pub messages_per_second: u32,
    pub burst: u32,
}

impl Admission {
    /// Room for the run: twice the target rate (at least 1,000/s), and a
    /// burst of at least one second of that and two full batches.
    pub fn for_rate(target_rate: f64, batch_size: u32) -> Self {
        let rate = (target_rate * 2.0)
            .ceil()
            .clamp(1000.0, f64::from(u32::MAX)) as u32;
        Self {
            messages_per_second: rate,
            burst: rate.max(batch_size.saturating_mul(2)),
        }
    }
}

/// An organization routed through many connections and rules (the
/// routing benchmark): `providers` sandbox connections of the run's channel,
/// priced per country, and `rules` routing rules of which only the last
/// matches the run's messages, so every message is checked against all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingLoad {
    pub providers: u32,
    pub rules: u32,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct Plan {
    pub organization_name: String,
    pub channel: Channel,
    pub sandbox: SandboxProfile,
    pub admission: Admission,
    /// `None`: one sandbox connection and no rules.
    pub routing: Option<RoutingLoad>,
}

/// What was created.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    pub organization_id: String,
    /// The API key (never written to the report).
    #[serde(skip)]
    pub api_key: String,
    pub provider_id: Option<String>,
    /// Whether the engine took the admission limit.
    pub admission_applied: bool,
}

/// Creates the organization, key, admission limit and sandbox provider.
pub async fn provision(api: &Api, admin_token: &str, plan: &Plan) -> Result<Provisioned> {
    let admin = Api::bearer(admin_token).context("--admin-token")?;
    let org = api
        .call_ok(
            Method::POST,
            "/api/admin/organizations",
            &admin,
            &json!({"name": plan.organization_name}),
        )
        .await
        .context("creating the load-test organization")?;
    let org_id = string_field(&org, "id").context("the organization answer")?;

    let key = api
        .call_ok(
            Method::POST,
            &format!("/api/admin/organizations/{org_id}/api-keys"),
            &admin,
            &json!({"name": "load-test"}),
        )
        .await
        .context("issuing the API key")?;
    let api_key = string_field(&key, "key").context("the API key answer")?;

    let admission_applied = set_admission(api, &admin, &org_id, plan.admission).await?;

    let auth = Api::bearer(&api_key)?;
    let connections = plan.routing.map_or(1, |r| r.providers.max(1));
    let mut ids = Vec::new();
    for i in 0..connections {
        let mut body = json!({
            "providerType": "SANDBOX",
            "name": if connections == 1 { "load-sandbox".to_owned() } else { format!("load-sandbox-{i}") },
            "sandboxConfig": plan.sandbox,
        });
        if plan.routing.is_some() {
            body["priority"] = json!(10 + i);
            body["costs"] = json!({"currency": "NGN", "default": 1000,
                                   "countries": {"NG": 200 + 10 * i, "KE": 400 - 10 * i, "GH": 300}});
        }
        let provider = api
            .call_ok(
                Method::POST,
                &format!("/api/{}/providers", plan.channel),
                &auth,
                &body,
            )
            .await
            .context("registering the sandbox provider")?;
        ids.push(string_field(&provider, "id").context("the provider answer")?);
    }
    if let Some(routing) = plan.routing {
        create_rules(api, &auth, plan.channel, routing.rules, &ids).await?;
    }
    let provider_id = ids.first().cloned();

    Ok(Provisioned {
        organization_id: org_id,
        api_key,
        provider_id,
        admission_applied,
    })
}

/// `rules` rules: all but the last match nothing the run sends (other
/// countries, prefixes, tags, a category or a time window no message has),
/// each naming a few connections; the last routes every message of the
/// channel to the cheapest connection. Priorities put the matching one last.
async fn create_rules(
    api: &Api,
    auth: &HeaderValue,
    channel: Channel,
    rules: u32,
    ids: &[String],
) -> Result<()> {
    let phone = channel != Channel::Email;
    for i in 0..rules {
        let some: Vec<&String> = ids
            .iter()
            .cycle()
            .skip(i as usize)
            .take(3.min(ids.len()))
            .collect();
        let last = i + 1 == rules;
        let matcher = if last {
            json!({"channel": channel.as_str()})
        } else {
            match (i % 4, phone) {
                (0, true) => json!({"channel": channel.as_str(), "countries": ["KE", "GH"]}),
                (1, true) => {
                    json!({"channel": channel.as_str(), "prefixes": [format!("+2547{}", i % 10)]})
                }
                (0 | 1, false) => {
                    json!({"channel": channel.as_str(), "domains": [format!("tenant{i}.example")]})
                }
                (2, _) => {
                    json!({"channel": channel.as_str(), "tags": {"campaign": format!("c{i}")}})
                }
                _ => json!({"channel": channel.as_str(), "category": "marketing",
                            "timeWindow": {"days": ["sat"], "from": "08:00", "to": "09:00",
                                           "timeZone": "Africa/Lagos"}}),
            }
        };
        let body = json!({
            "name": format!("load rule {i}"),
            "priority": i + 1,
            "strategy": if last { "cheapest" } else { ["priority", "weighted", "best_delivery", "cheapest"][i as usize % 4] },
            "providers": if last { json!([]) } else { json!(some) },
            "match": matcher,
        });
        api.call_ok(Method::POST, "/api/routing/rules", auth, &body)
            .await
            .with_context(|| format!("creating routing rule {i}"))?;
    }
    Ok(())
}

/// `PUT .../rate-limit`; Ok(false) with a warning when the engine does not
/// have the route or refuses the values.
pub(crate) async fn set_admission(
    api: &Api,
    admin: &HeaderValue,
    org_id: &str,
    admission: Admission,
) -> Result<bool> {
    let path = format!("/api/admin/organizations/{org_id}/rate-limit");
    let (status, body) = api
        .call_json(Method::PUT, &path, admin, &json!(admission))
        .await
        .context("setting the admission rate")?;
    if status.is_success() {
        return Ok(true);
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        eprintln!(
            "warning: this engine has no PUT {path} ({status}); the organization keeps the default admission rate, so 429s may limit the run"
        );
    } else {
        eprintln!(
            "warning: PUT {path} answered {status}: {body}; the organization keeps its admission rate"
        );
    }
    Ok(false)
}

pub(crate) fn string_field(value: &Value, field: &str) -> Result<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no string {field:?} in {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_leaves_room() {
        assert_eq!(
            Admission::for_rate(500.0, 1),
            Admission {
                messages_per_second: 1000,
                burst: 1000
            }
        );
        assert_eq!(
            Admission::for_rate(15_000.0, 1000),
            Admission {
                messages_per_second: 30_000,
                burst: 30_000
            }
        );
        assert_eq!(Admission::for_rate(100.0, 1000).burst, 2000);
    }

    #[test]
    fn sandbox_config_wire_names() {
        let profile = SandboxProfile {
            latency_ms: 5,
            transient_failure_rate: 0.1,
            permanent_failure_rate: 0.0,
        };
        assert_eq!(
            serde_json::to_value(profile).expect("serializes"),
            json!({"latencyMs": 5, "transientFailureRate": 0.1, "permanentFailureRate": 0.0})
        );
        assert!(!profile.is_reliable());
        assert_eq!(
            serde_json::to_value(Admission {
                messages_per_second: 10,
                burst: 20
            })
            .expect("serializes"),
            json!({"messagesPerSecond": 10, "burst": 20})
        );
    }
}

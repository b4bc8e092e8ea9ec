//! The simulator accounts and engine tenants of a scenario run.
//!
//! One simulator account per (organization, scenario provider), with its own
//! credentials and address (Twilio Account SID, Meta phone number id,
//! Mailgun domain): the engine's webhook URL names one provider connection,
//! so two organizations cannot share an account's webhooks. The harness
//! starts the simulator in-process with these accounts (no config file to
//! keep in step), then per organization: creates it, issues an API key,
//! sets its admission rate, registers one provider per scenario provider
//! (in the scenario's order, which is the engine's failover order) pointing
//! at the simulator, and points the account's webhooks at that provider
//! (`PUT /_sim/accounts/{name}/webhook`).

use anyhow::{Context, Result};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::plan::mix64;
use super::{ProviderSpec, ProviderType, Scenario, MAX_BATCH};
use crate::http::Api;
use crate::setup::{self, Admission};
use crate::sim::config::SimConfig;

/// Names and credentials of one simulator account.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// The simulator's account name (its stats key).
    pub name: String,
    /// Organization index.
    pub tenant: u16,
    /// Index into the scenario's providers.
    pub provider: usize,
    secret_a: String,
    secret_b: String,
    /// Twilio SID / Meta phone number id / Mailgun domain.
    address: String,
}

impl Account {
    fn new(tenant: u16, provider: usize, spec: &ProviderSpec, run_nonce: u64) -> Self {
        let h = |what: u64| {
            mix64(run_nonce ^ mix64((u64::from(tenant) << 20) ^ (provider as u64) << 4 ^ what))
        };
        let hex = |what: u64| format!("{:016x}{:016x}", h(what), h(what + 100));
        let address = match spec.kind {
            ProviderType::Twilio => format!("AC{}", hex(1)),
            ProviderType::MetaCloud => format!("{}", 100_000_000_000u64 + h(1) % 900_000_000_000),
            ProviderType::Mailgun => format!("t{tenant}-p{provider}.mg.example.com"),
        };
        Self {
            name: format!("t{tenant}-{}", spec.display_name(provider)),
            tenant,
            provider,
            secret_a: hex(2),
            secret_b: hex(3),
            address,
        }
    }

    /// The simulator's config entry (no webhook yet).
    fn sim_entry(&self, spec: &ProviderSpec) -> Value {
        let mut entry = match spec.kind {
            ProviderType::Twilio => json!({
                "type": "twilio", "accountSid": self.address, "authToken": self.secret_a,
            }),
            ProviderType::MetaCloud => json!({
                "type": "metaCloud", "accessToken": self.secret_a, "appSecret": self.secret_b,
                "phoneNumberId": self.address, "businessAccountId": "98765",
            }),
            ProviderType::Mailgun => json!({
                "type": "mailgun", "apiKey": self.secret_a, "signingKey": self.secret_b,
                "domain": self.address,
            }),
        };
        let object = entry.as_object_mut().expect("built as an object");
        object.insert("name".into(), json!(self.name));
        object.insert("latencyMs".into(), json!(spec.latency_ms));
        object.insert("errorRate".into(), json!(spec.error_rate));
        object.insert("rateLimitRate".into(), json!(spec.rate_limit_rate));
        if let Some(secs) = spec.retry_after_secs {
            object.insert("retryAfterSecs".into(), json!(secs));
        }
        if !spec.outcomes.is_empty() {
            object.insert("outcomes".into(), json!(spec.outcomes));
        }
        if let Some(ms) = spec.webhook_delay_ms {
            object.insert("webhookDelayMs".into(), json!(ms));
        }
        entry
    }

    /// The engine's provider registration pointing at the simulator.
    fn engine_provider(&self, spec: &ProviderSpec, sim_base: &str) -> Value {
        let name = spec.display_name(self.provider);
        match spec.kind {
            ProviderType::Twilio => json!({
                "providerType": "TWILIO", "name": name, "senderId": "+15005550006",
                "credentials": {"accountSid": self.address, "authToken": self.secret_a},
                "baseUrl": sim_base,
            }),
            ProviderType::MetaCloud => json!({
                "providerType": "META_CLOUD", "name": name, "accessToken": self.secret_a,
                "phoneNumberId": self.address, "businessAccountId": "98765",
                "webhookVerifyToken": format!("verify-{}", self.secret_b),
                "webhookSecret": self.secret_b, "baseUrl": sim_base,
            }),
            ProviderType::Mailgun => json!({
                "providerType": "MAILGUN", "name": name, "apiKey": self.secret_a,
                "domain": self.address, "fromEmail": "load@example.com",
                "webhookSecret": self.secret_b, "baseUrl": sim_base,
            }),
        }
    }
}

/// The organizations' names (a tenant with `count` n gives `name-1`..`name-n`).
pub fn tenant_names(scenario: &Scenario) -> Vec<String> {
    let mut names = Vec::new();
    for t in &scenario.tenants {
        if t.count == 1 {
            names.push(t.name.clone());
        } else {
            names.extend((1..=t.count).map(|k| format!("{}-{k}", t.name)));
        }
    }
    names
}

/// Every simulator account of the run, by organization then provider.
pub fn accounts(scenario: &Scenario, run_nonce: u64) -> Vec<Account> {
    let mut out = Vec::new();
    for tenant in 0..scenario.tenant_count() {
        let tenant = u16::try_from(tenant).unwrap_or(u16::MAX);
        for (i, spec) in scenario.providers.iter().enumerate() {
            out.push(Account::new(tenant, i, spec, run_nonce));
        }
    }
    out
}

/// The simulator configuration serving `accounts`.
pub fn sim_config(scenario: &Scenario, accounts: &[Account]) -> Result<SimConfig> {
    let providers: Vec<Value> = accounts
        .iter()
        .map(|a| a.sim_entry(&scenario.providers[a.provider]))
        .collect();
    SimConfig::from_json(&json!({ "providers": providers }).to_string())
        .context("building the simulator configuration")
}

/// The admission limit of an organization with `share` of the traffic at
/// `peak_rate`: twice its part (at least 1000/s), or the scenario's
/// `org_rate`; a burst of at least two of the largest batches.
pub fn admission(scenario: &Scenario, share: f64, peak_rate: f64) -> Admission {
    let largest = scenario
        .batches
        .iter()
        .map(|b| b.size)
        .max()
        .unwrap_or(1)
        .min(MAX_BATCH);
    let rate = match scenario.load.org_rate {
        Some(r) => r,
        None => (2.0 * share * peak_rate)
            .ceil()
            .clamp(1000.0, f64::from(u32::MAX)) as u32,
    };
    Admission {
        messages_per_second: rate,
        burst: rate.max(largest.saturating_mul(2)),
    }
}

/// One organization as set up.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub name: String,
    pub organization_id: String,
    /// Never written to the report.
    #[serde(skip)]
    pub api_key: String,
    pub admission: Admission,
    pub admission_applied: bool,
    /// Traffic share, 0-1.
    pub share: f64,
    /// (provider name, engine provider id, simulator account), in failover order.
    pub providers: Vec<(String, String, String)>,
}

/// Creates every organization with its key, admission and providers, and
/// points the simulator's accounts at the providers' webhook URLs.
pub async fn provision(
    api: &Api,
    admin_token: &str,
    scenario: &Scenario,
    accounts: &[Account],
    sim_base: &str,
    peak_rate: f64,
) -> Result<Vec<Tenant>> {
    let admin = Api::bearer(admin_token).context("--admin-token")?;
    let names = tenant_names(scenario);
    let shares = shares(scenario);
    let sim = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building the simulator client")?;
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S");
    let mut tenants = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let org = api
            .call_ok(
                Method::POST,
                "/api/admin/organizations",
                &admin,
                &json!({"name": format!("load {} {name} {stamp}", scenario.name)}),
            )
            .await
            .with_context(|| format!("creating organization {name}"))?;
        let org_id = setup::string_field(&org, "id")?;
        let key = api
            .call_ok(
                Method::POST,
                &format!("/api/admin/organizations/{org_id}/api-keys"),
                &admin,
                &json!({"name": "load-test"}),
            )
            .await
            .with_context(|| format!("issuing {name}'s API key"))?;
        let api_key = setup::string_field(&key, "key")?;
        let admission = admission(scenario, shares[index], peak_rate);
        let admission_applied = setup::set_admission(api, &admin, &org_id, admission).await?;
        let auth = Api::bearer(&api_key)?;
        let mut providers = Vec::new();
        for account in accounts.iter().filter(|a| usize::from(a.tenant) == index) {
            let spec = &scenario.providers[account.provider];
            let created = api
                .call_ok(
                    Method::POST,
                    &format!("/api/{}/providers", spec.channel),
                    &auth,
                    &account.engine_provider(spec, sim_base),
                )
                .await
                .with_context(|| format!("registering {} for {name}", account.name))?;
            let provider_id = setup::string_field(&created, "id")?;
            let webhook = api_url(
                api,
                &format!("/api/webhooks/{}/{provider_id}", spec.channel),
            );
            point_webhooks(&sim, sim_base, &account.name, &webhook).await?;
            providers.push((
                spec.display_name(account.provider),
                provider_id,
                account.name.clone(),
            ));
        }
        tenants.push(Tenant {
            name: name.clone(),
            organization_id: org_id,
            api_key,
            admission,
            admission_applied,
            share: shares[index],
            providers,
        });
    }
    Ok(tenants)
}

fn api_url(api: &Api, path: &str) -> String {
    format!("{}{path}", api.base().trim_end_matches('/'))
}

async fn point_webhooks(
    sim: &reqwest::Client,
    sim_base: &str,
    account: &str,
    url: &str,
) -> Result<()> {
    let response = sim
        .put(format!("{sim_base}/_sim/accounts/{account}/webhook"))
        .json(&json!({"webhookUrl": url}))
        .send()
        .await
        .with_context(|| format!("pointing simulator account {account}'s webhooks"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("the simulator answered {status} to account {account}'s webhook: {body}");
    }
    Ok(())
}

/// Each organization's share of the traffic (0-1), in tenant order.
pub fn shares(scenario: &Scenario) -> Vec<f64> {
    let weights: Vec<u32> = scenario
        .tenants
        .iter()
        .flat_map(|t| std::iter::repeat_n(t.share, t.count as usize))
        .collect();
    let total: f64 = weights.iter().map(|w| f64::from(*w)).sum();
    weights
        .iter()
        .map(|w| {
            if total > 0.0 {
                f64::from(*w) / total
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::from_toml(
            r#"
name = "p"
[load]
rate = 1000
duration_secs = 1
[[tenants]]
name = "big"
share = 2
[[tenants]]
name = "small"
share = 1
count = 2
[channels]
sms = 1
whatsapp = 1
email = 1
[[batches]]
size = 1000
weight = 1
[countries]
NG = 1
[[providers]]
channel = "sms"
type = "twilio"
name = "flaky"
error_rate = 0.3
[[providers]]
channel = "sms"
type = "twilio"
[[providers]]
channel = "whatsapp"
type = "metaCloud"
[[providers]]
channel = "email"
type = "mailgun"
outcomes = { delivered = 99, bounced = 1 }
"#,
        )
        .expect("valid")
    }

    #[test]
    fn one_distinct_account_per_organization_and_provider() {
        let s = scenario();
        let accounts = accounts(&s, 9);
        assert_eq!(accounts.len(), 3 * 4);
        let names: std::collections::HashSet<_> = accounts.iter().map(|a| &a.name).collect();
        let addresses: std::collections::HashSet<_> = accounts.iter().map(|a| &a.address).collect();
        assert_eq!(names.len(), 12);
        assert_eq!(addresses.len(), 12);
        assert_eq!(accounts[0].name, "t0-flaky");
        assert_eq!(accounts[1].name, "t0-sms-twilio-1");
        assert!(accounts[0].address.starts_with("AC") && accounts[0].address.len() == 34);
        let config = sim_config(&s, &accounts).expect("valid simulator config");
        assert_eq!(config.providers.len(), 12);
        assert_eq!(config.providers[0].behaviour.error_rate, 0.3);
        assert!(config.providers[3].behaviour.outcomes.len() == 2);
        assert_eq!(tenant_names(&s), ["big", "small-1", "small-2"]);
    }

    #[test]
    fn engine_registrations_point_at_the_simulator() {
        let s = scenario();
        let accounts = accounts(&s, 9);
        let twilio = accounts[0].engine_provider(&s.providers[0], "http://127.0.0.1:9");
        assert_eq!(twilio["providerType"], "TWILIO");
        assert_eq!(twilio["baseUrl"], "http://127.0.0.1:9");
        assert_eq!(
            twilio["credentials"]["accountSid"],
            json!(accounts[0].address)
        );
        let meta = accounts[2].engine_provider(&s.providers[2], "http://x");
        assert_eq!(meta["phoneNumberId"], json!(accounts[2].address));
        let mailgun = accounts[3].engine_provider(&s.providers[3], "http://x");
        assert_eq!(mailgun["domain"], "t0-p3.mg.example.com");
    }

    #[test]
    fn shares_and_admission() {
        let s = scenario();
        assert_eq!(shares(&s), [0.5, 0.25, 0.25]);
        let a = admission(&s, 0.5, 10_000.0);
        assert_eq!((a.messages_per_second, a.burst), (10_000, 10_000));
        let small = admission(&s, 0.25, 100.0);
        assert_eq!((small.messages_per_second, small.burst), (1000, 2000));
    }
}

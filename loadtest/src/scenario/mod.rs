//! Scenarios: a load test described in a TOML file (loadtest/scenarios/).
//!
//! A scenario names the load (target rate, duration, warm-up), the traffic
//! mix (tenants and their shares, channels, batch sizes, recipients'
//! countries), the simulated providers behind each channel (their latency,
//! 5xx and 429 rates and delivery outcomes: listed in failover order), the
//! service-level targets a ramp looks for the knee against, and the ramp's
//! steps. Parsing is strict: an unknown key is an error naming it, and
//! [`Scenario::validate`] lists every out-of-range value by its path
//! (`load.rate`, `providers[1].error_rate`...) before anything starts.
//!
//! Modules: [`countries`] (E.164 numbers per country), [`plan`] (what
//! request `i` sends), [`provision`] (simulator accounts, organizations,
//! providers), [`run`] (one command end to end), [`ramp`] (rate steps and
//! the knee), [`report`] (the report directory and the verdict).

pub mod countries;
pub mod plan;
pub mod provision;
pub mod ramp;
pub mod report;
pub mod run;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::payload::Channel;

/// The simulator's delivery outcomes (`sim::config::Outcome`).
pub const OUTCOMES: [&str; 6] = [
    "delivered",
    "read",
    "failed",
    "undelivered",
    "bounced",
    "none",
];

/// Largest batch the engine takes in one request.
pub const MAX_BATCH: u32 = 1000;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name: report directories and organization names use it.
    pub name: String,
    /// What the scenario is for.
    #[serde(default)]
    pub description: String,
    /// Seed of every traffic pick (same seed, same requests). Default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub load: LoadSpec,
    /// Service-level targets (ramp knee; reported for every run).
    #[serde(default)]
    pub slo: Slo,
    /// The rate steps of `msgengine-load ramp` (required by ramp only).
    #[serde(default)]
    pub ramp: Option<RampSpec>,
    /// Organizations and their traffic shares.
    pub tenants: Vec<TenantSpec>,
    /// Channel weights (`sms`, `whatsapp`, `email`).
    pub channels: BTreeMap<Channel, u32>,
    /// Weighted request sizes (1 = single-message requests).
    pub batches: Vec<BatchSpec>,
    /// Recipients' country weights, ISO codes (see [`countries`]); used by
    /// SMS and WhatsApp.
    #[serde(default)]
    pub countries: BTreeMap<String, u32>,
    /// Simulated providers; per channel in failover order (the engine tries
    /// providers in creation order).
    pub providers: Vec<ProviderSpec>,
}

fn default_seed() -> u64 {
    1
}

/// The load of one run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Target messages per second (open model).
    pub rate: f64,
    /// Seconds of measured load.
    pub duration_secs: f64,
    /// Seconds of load at the same rate before the measured part (its
    /// messages are checked for completion, not in the latency). Default 0.
    #[serde(default)]
    pub warmup_secs: f64,
    /// Most requests under way at once. Default 4096.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Seconds to wait after the load for every message to be terminal.
    /// Default 120.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_secs: f64,
    /// Admission rate of each organization, messages/s. Default: twice its
    /// share of the highest rate the scenario sends (at least 1000).
    #[serde(default)]
    pub org_rate: Option<u32>,
}

fn default_max_in_flight() -> u32 {
    4096
}
fn default_drain_timeout() -> f64 {
    120.0
}

/// Service-level targets.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Accept latency p99 a sustainable rate stays under, ms. Default 100.
    #[serde(default = "default_p99")]
    pub p99_accept_ms: f64,
    /// Share of requests that may fail (any kind) at a sustainable rate,
    /// 0-1. Default 0.01.
    #[serde(default = "default_error_share")]
    pub max_error_share: f64,
    /// Share of the target rate that must be accepted, 0-1. Default 0.95.
    #[serde(default = "default_achieved_share")]
    pub min_achieved_share: f64,
}

fn default_p99() -> f64 {
    100.0
}
fn default_error_share() -> f64 {
    0.01
}
fn default_achieved_share() -> f64 {
    0.95
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            p99_accept_ms: default_p99(),
            max_error_share: default_error_share(),
            min_achieved_share: default_achieved_share(),
        }
    }
}

/// The steps of a ramp.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RampSpec {
    /// First step's rate, messages/s.
    pub start_rate: f64,
    /// Added per step, messages/s.
    pub step_rate: f64,
    /// Seconds per step.
    pub step_secs: f64,
    /// No step above this rate.
    pub max_rate: f64,
}

impl RampSpec {
    /// The rates of the steps, in order.
    pub fn rates(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut rate = self.start_rate;
        while rate <= self.max_rate + 1e-9 && out.len() < 1000 {
            out.push(rate);
            rate += self.step_rate;
        }
        out
    }
}

/// Organizations with one traffic share each.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub name: String,
    /// Weight of each of these organizations in the traffic.
    pub share: u32,
    /// How many organizations like this (named `name-1`, `name-2`...).
    /// Default 1.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// One request size and its weight.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// Messages per request, 1-1000.
    pub size: u32,
    pub weight: u32,
}

/// The simulated provider kinds a scenario can use, each on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProviderType {
    /// Twilio Programmable Messaging, SMS.
    Twilio,
    /// Meta WhatsApp Cloud API.
    MetaCloud,
    /// Mailgun, email.
    Mailgun,
}

impl ProviderType {
    /// The channel this kind serves in a scenario.
    pub fn channel(self) -> Channel {
        match self {
            ProviderType::Twilio => Channel::Sms,
            ProviderType::MetaCloud => Channel::Whatsapp,
            ProviderType::Mailgun => Channel::Email,
        }
    }
}

/// One simulated provider (one per organization is registered).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub channel: Channel,
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// Name in the engine and in the simulator's stats. Default
    /// `{channel}-{type}-{index}`.
    #[serde(default)]
    pub name: Option<String>,
    /// Added before every answer, ms. Default 0.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of sends answered 5xx, 0-1. Default 0.
    #[serde(default)]
    pub error_rate: f64,
    /// Share of sends answered 429, 0-1. Default 0.
    #[serde(default)]
    pub rate_limit_rate: f64,
    /// `Retry-After` of its 429s, seconds. Default 1.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Delivery outcome weights (`delivered`, `read`, `failed`,
    /// `undelivered`, `bounced`, `none`). Default: all delivered.
    #[serde(default)]
    pub outcomes: BTreeMap<String, u32>,
    /// Wait before each status webhook, ms. Default 50.
    #[serde(default)]
    pub webhook_delay_ms: Option<u64>,
}

impl ProviderSpec {
    /// The provider's name (see [`ProviderSpec::name`]).
    pub fn display_name(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-{:?}-{index}", self.channel, self.kind).to_lowercase())
    }

    /// Sends always accepted and every message delivered.
    pub fn is_reliable(&self) -> bool {
        self.error_rate == 0.0 && self.rate_limit_rate == 0.0 && self.delivers_everything()
    }

    fn delivers_everything(&self) -> bool {
        self.outcomes
            .iter()
            .all(|(o, w)| *w == 0 || matches!(o.as_str(), "delivered" | "read"))
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in scenario {}", path.display()))
    }

    /// Parses and validates a scenario.
    pub fn from_toml(text: &str) -> Result<Self> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Every problem with the values, one per line, or Ok.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, text: String| {
            if !ok {
                problems.push(text);
            }
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        check(
            name_ok,
            "name must be 1-64 letters, digits, '-' or '_'".into(),
        );
        self.validate_load(&mut check);
        self.validate_mix(&mut check);
        self.validate_providers(&mut check);
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("invalid scenario:\n  - {}", problems.join("\n  - "))
        }
    }

    fn validate_load(&self, check: &mut impl FnMut(bool, String)) {
        let l = &self.load;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        check(positive(l.rate), "load.rate must be > 0 messages/s".into());
        check(
            positive(l.duration_secs) && l.duration_secs <= 86_400.0,
            "load.duration_secs must be > 0 and at most 86400".into(),
        );
        check(
            l.warmup_secs.is_finite() && (0.0..=3600.0).contains(&l.warmup_secs),
            "load.warmup_secs must be 0 to 3600".into(),
        );
        check(
            (1..=1_000_000).contains(&l.max_in_flight),
            "load.max_in_flight must be 1 to 1000000".into(),
        );
        check(
            l.drain_timeout_secs.is_finite() && (0.0..=86_400.0).contains(&l.drain_timeout_secs),
            "load.drain_timeout_secs must be 0 to 86400".into(),
        );
        check(
            l.org_rate != Some(0),
            "load.org_rate must be at least 1".into(),
        );
        let s = &self.slo;
        check(
            positive(s.p99_accept_ms),
            "slo.p99_accept_ms must be > 0".into(),
        );
        for (name, v) in [
            ("slo.max_error_share", s.max_error_share),
            ("slo.min_achieved_share", s.min_achieved_share),
        ] {
            check((0.0..=1.0).contains(&v), format!("{name} must be 0 to 1"));
        }
        if let Some(r) = &self.ramp {
            check(positive(r.start_rate), "ramp.start_rate must be > 0".into());
            check(positive(r.step_rate), "ramp.step_rate must be > 0".into());
            check(
                positive(r.step_secs) && r.step_secs <= 3600.0,
                "ramp.step_secs must be > 0 and at most 3600".into(),
            );
            check(
                r.max_rate.is_finite() && r.max_rate >= r.start_rate,
                "ramp.max_rate must be >= ramp.start_rate".into(),
            );
        }
    }

    fn validate_mix(&self, check: &mut impl FnMut(bool, String)) {
        check(!self.tenants.is_empty(), "tenants: at least one".into());
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            check(
                !t.name.is_empty() && t.name.len() <= 40,
                format!("tenants[{i}].name must be 1-40 characters"),
            );
            check(
                names.insert(t.name.clone()),
                format!("tenants[{i}].name {:?} is used twice", t.name),
            );
            check(
                (1..=100).contains(&t.count),
                format!("tenants[{i}].count must be 1 to 100"),
            );
        }
        check(
            self.tenant_count() <= 1000,
            "tenants: at most 1000 organizations in all".into(),
        );
        check(
            self.tenants.iter().any(|t| t.share > 0),
            "tenants: some share must be > 0".into(),
        );
        check(
            self.channels.values().any(|w| *w > 0),
            "channels: some weight must be > 0".into(),
        );
        check(!self.batches.is_empty(), "batches: at least one".into());
        for (i, b) in self.batches.iter().enumerate() {
            check(
                (1..=MAX_BATCH).contains(&b.size),
                format!("batches[{i}].size must be 1 to {MAX_BATCH}"),
            );
        }
        check(
            self.batches.iter().any(|b| b.weight > 0),
            "batches: some weight must be > 0".into(),
        );
        let phones = [Channel::Sms, Channel::Whatsapp]
            .iter()
            .any(|c| self.channels.get(c).is_some_and(|w| *w > 0));
        if phones {
            check(
                self.countries.values().any(|w| *w > 0),
                "countries: some weight must be > 0 (SMS and WhatsApp need recipients)".into(),
            );
        }
        for code in self.countries.keys() {
            check(
                countries::Country::from_code(code).is_some(),
                format!(
                    "countries.{code}: unknown country (known: {})",
                    countries::Country::codes().join(", ")
                ),
            );
        }
    }

    fn validate_providers(&self, check: &mut impl FnMut(bool, String)) {
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            check(
                p.kind.channel() == p.channel,
                format!(
                    "{at}: type {:?} serves {}, not {}",
                    p.kind,
                    p.kind.channel(),
                    p.channel
                ),
            );
            check(
                self.channels.get(&p.channel).is_some_and(|w| *w > 0),
                format!("{at}: channel {} has no traffic in [channels]", p.channel),
            );
            for (field, v) in [
                ("error_rate", p.error_rate),
                ("rate_limit_rate", p.rate_limit_rate),
            ] {
                check(
                    (0.0..=1.0).contains(&v),
                    format!("{at}.{field} must be 0 to 1"),
                );
            }
            check(
                p.latency_ms <= 60_000,
                format!("{at}.latency_ms must be at most 60000"),
            );
            for outcome in p.outcomes.keys() {
                check(
                    OUTCOMES.contains(&outcome.as_str()),
                    format!(
                        "{at}.outcomes.{outcome}: unknown outcome (known: {})",
                        OUTCOMES.join(", ")
                    ),
                );
            }
            check(
                p.outcomes.is_empty() || p.outcomes.values().any(|w| *w > 0),
                format!("{at}.outcomes: some weight must be > 0"),
            );
            let name = p.display_name(i);
            let name_ok = !name.is_empty()
                && name.len() <= 40
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            check(
                name_ok,
                format!("{at}.name must be 1-40 letters, digits, '-' or '_'"),
            );
            check(
                names.insert(name.clone()),
                format!("{at}.name {name:?} is used twice"),
            );
        }
        for (channel, weight) in &self.channels {
            if *weight > 0 {
                check(
                    self.providers.iter().any(|p| p.channel == *channel),
                    format!("channels.{channel} has traffic but no provider in [[providers]]"),
                );
            }
        }
    }

    /// Organizations in all.
    pub fn tenant_count(&self) -> usize {
        self.tenants.iter().map(|t| t.count as usize).sum()
    }

    /// Whether every message should end delivered: each channel with
    /// traffic has a reliable provider (a flaky one before it fails over to
    /// it) and no provider reports failed deliveries.
    pub fn expects_all_delivered(&self) -> bool {
        let channels_covered = self.channels.iter().filter(|(_, w)| **w > 0).all(|(c, _)| {
            self.providers
                .iter()
                .any(|p| p.channel == *c && p.is_reliable())
        });
        channels_covered && self.providers.iter().all(ProviderSpec::delivers_everything)
    }

    /// Mean messages per request of the batch mix.
    pub fn mean_batch(&self) -> f64 {
        let total: u64 = self.batches.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            return 1.0;
        }
        self.batches
            .iter()
            .map(|b| f64::from(b.size) * f64::from(b.weight))
            .sum::<f64>()
            / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[load]
rate = 10
duration_secs = 1
[[tenants]]
name = "a"
share = 1
[channels]
sms = 1
[[batches]]
size = 1
weight = 1
[countries]
NG = 1
[[providers]]
channel = "sms"
type = "twilio"
"#;

    #[test]
    fn a_minimal_scenario_takes_the_defaults() {
        let s = Scenario::from_toml(MINIMAL).expect("valid");
        assert_eq!(s.seed, 1);
        assert_eq!(s.load.max_in_flight, 4096);
        assert_eq!(s.slo, Slo::default());
        assert!(s.ramp.is_none());
        assert_eq!(s.tenant_count(), 1);
        assert!(s.expects_all_delivered());
        assert_eq!(s.providers[0].display_name(0), "sms-twilio-0");
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let bad = MINIMAL.replace("duration_secs = 1", "duration_secs = 1\ndurashun = 2");
        let e = format!("{:#}", Scenario::from_toml(&bad).expect_err("unknown key"));
        assert!(e.contains("durashun"), "{e}");
        let bad = MINIMAL.replace("type = \"twilio\"", "type = \"pigeon\"");
        let e = format!("{:#}", Scenario::from_toml(&bad).expect_err("unknown type"));
        assert!(e.contains("pigeon"), "{e}");
        let bad = MINIMAL.replace("sms = 1", "fax = 1");
        assert!(Scenario::from_toml(&bad).is_err());
        let bad = MINIMAL.replace("sms = 1", "sms = 1\nemail = 1");
        let e = format!("{:#}", Scenario::from_toml(&bad).expect_err("no provider"));
        assert!(
            e.contains("channels.email has traffic but no provider"),
            "{e}"
        );
    }

    #[test]
    fn every_bad_value_is_listed_with_its_path() {
        let bad = MINIMAL
            .replace("rate = 10", "rate = -1")
            .replace("size = 1", "size = 1001")
            .replace("NG = 1", "XX = 1")
            .replace("type = \"twilio\"", "type = \"mailgun\"\nerror_rate = 2.0");
        let e = format!("{:#}", Scenario::from_toml(&bad).expect_err("invalid"));
        for needle in [
            "load.rate must be > 0",
            "batches[0].size must be 1 to 1000",
            "countries.XX: unknown country",
            "providers[0]: type Mailgun serves email, not sms",
            "providers[0].error_rate must be 0 to 1",
        ] {
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
    }

    #[test]
    fn a_flaky_provider_with_a_reliable_backup_still_expects_delivery() {
        let flaky = MINIMAL.replace(
            "[[providers]]\nchannel = \"sms\"\ntype = \"twilio\"",
            "[[providers]]\nchannel = \"sms\"\ntype = \"twilio\"\nname = \"flaky\"\nerror_rate = 0.5\n\
             [[providers]]\nchannel = \"sms\"\ntype = \"twilio\"\nname = \"steady\"",
        );
        let s = Scenario::from_toml(&flaky).expect("valid");
        assert!(s.expects_all_delivered());
        let only_flaky =
            MINIMAL.replace("type = \"twilio\"", "type = \"twilio\"\nerror_rate = 0.5");
        assert!(!Scenario::from_toml(&only_flaky)
            .expect("valid")
            .expects_all_delivered());
        let failing = MINIMAL.replace(
            "type = \"twilio\"",
            "type = \"twilio\"\noutcomes = { delivered = 9, failed = 1 }",
        );
        assert!(!Scenario::from_toml(&failing)
            .expect("valid")
            .expects_all_delivered());
    }

    #[test]
    fn outcome_names_are_the_simulators() {
        for name in OUTCOMES {
            serde_json::from_value::<crate::sim::config::Outcome>(serde_json::json!(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn ramp_rates_and_mean_batch() {
        let r = RampSpec {
            start_rate: 100.0,
            step_rate: 50.0,
            step_secs: 1.0,
            max_rate: 260.0,
        };
        assert_eq!(r.rates(), [100.0, 150.0, 200.0, 250.0]);
        let mut s = Scenario::from_toml(MINIMAL).expect("valid");
        s.batches = vec![
            BatchSpec { size: 1, weight: 3 },
            BatchSpec {
                size: 1000,
                weight: 1,
            },
        ];
        assert!((s.mean_batch() - 250.75).abs() < 1e-9);
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(s.ramp.is_some(), "{} has no [ramp]", path.display());
                seen.push(s.name);
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "batch",
                "flaky-provider",
                "mixed-channels",
                "single",
                "smoke"
            ]
        );
    }
}

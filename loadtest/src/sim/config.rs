//! The simulator's configuration: one entry per simulated provider account,
//! each with its credentials, its behaviour (latency, error and 429 rates,
//! delivery outcome mix) and where its status webhooks go.
//!
//! JSON, camelCase (see loadtest/README.md for a full example):
//!
//! ```json
//! {"providers": [
//!   {"type": "twilio", "accountSid": "AC…", "authToken": "…",
//!    "webhookUrl": "http://127.0.0.1:8080/api/webhooks/sms/<id>",
//!    "latencyMs": 20, "errorRate": 0.01, "rateLimitRate": 0.01,
//!    "outcomes": {"delivered": 95, "failed": 5}}
//! ]}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimConfig {
    /// The simulated accounts. Several of one type are told apart by their
    /// credentials and path (Twilio Account SID, Meta phone number id,
    /// Mailgun domain).
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
}

impl SimConfig {
    /// Reads and checks a JSON configuration file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks a JSON configuration.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let raw: serde_json::Value =
            serde_json::from_str(text).context("the simulator config is not JSON")?;
        check_field_names(&raw)?;
        let config: SimConfig = serde_json::from_value(raw).context("invalid simulator config")?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses rates outside 0..=1, outcome mixes without weight, duplicate
    /// names, and SMTP accounts with webhooks or half their credentials.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        for p in &self.providers {
            let b = &p.behaviour;
            for (what, rate) in [
                ("errorRate", b.error_rate),
                ("rateLimitRate", b.rate_limit_rate),
            ] {
                if !(0.0..=1.0).contains(&rate) {
                    bail!("{}: {what} must be between 0 and 1", p.name());
                }
            }
            if !b.outcomes.is_empty() && b.outcomes.values().all(|w| *w == 0) {
                bail!("{}: outcomes has no positive weight", p.name());
            }
            if let ProviderKind::Smtp {
                username, password, ..
            } = &p.kind
            {
                if b.webhook_url.is_some() {
                    bail!(
                        "{}: SMTP has no status webhooks: remove webhookUrl",
                        p.name()
                    );
                }
                if username.is_some() != password.is_some() {
                    bail!("{}: set username and password together", p.name());
                }
            }
            if !names.insert(p.name()) {
                bail!("two providers are named {}: set distinct names", p.name());
            }
        }
        Ok(())
    }
}

/// Fields every entry may have.
const COMMON_FIELDS: [&str; 11] = [
    "type",
    "name",
    "latencyMs",
    "errorRate",
    "rateLimitRate",
    "retryAfterSecs",
    "outcomes",
    "webhookUrl",
    "webhookDelayMs",
    "webhookRetries",
    "webhookRetryDelayMs",
];

/// Refuses a field an entry's type does not know (a typo such as
/// `latencyMS` would otherwise be ignored silently: serde's
/// `deny_unknown_fields` does not work with the flattened entry).
fn check_field_names(raw: &serde_json::Value) -> anyhow::Result<()> {
    let entries = raw
        .get("providers")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (i, entry) in entries.iter().enumerate() {
        let Some(object) = entry.as_object() else {
            bail!("providers[{i}] is not an object");
        };
        let specific: &[&str] = match object.get("type").and_then(serde_json::Value::as_str) {
            Some("twilio") => &[
                "accountSid",
                "authToken",
                "apiKeySid",
                "apiKeySecret",
                "whatsappWebhookUrl",
            ],
            Some("metaCloud") => &[
                "accessToken",
                "appSecret",
                "phoneNumberId",
                "businessAccountId",
                "displayPhoneNumber",
            ],
            Some("mailgun") => &["apiKey", "signingKey", "domain"],
            Some("sendgrid") => &["apiKey", "signingKey"],
            Some("mailjet") => &["apiKey", "secretKey", "domain"],
            Some("smtp") => &["port", "username", "password"],
            Some("africasTalking") => &["username", "apiKey"],
            Some("termii") => &["apiKey", "secretKey"],
            Some("gupshup") => &["apiKey", "appName"],
            Some("aisensy") => &["apiKey", "campaigns"],
            Some("interakt") => &["apiKey", "webhookSecret"],
            // serde names the unknown type.
            _ => continue,
        };
        for name in object.keys() {
            if !COMMON_FIELDS.contains(&name.as_str()) && !specific.contains(&name.as_str()) {
                bail!("providers[{i}]: unknown field {name}");
            }
        }
    }
    Ok(())
}

/// One simulated provider account.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// The name used in `/_sim/stats` (default: the type name).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(flatten)]
    pub kind: ProviderKind,
    #[serde(flatten)]
    pub behaviour: Behaviour,
}

impl ProviderConfig {
    /// The stats name.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.type_name().to_owned())
    }
}

/// The provider type and its credentials (what the simulator checks on
/// sends and signs webhooks with).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ProviderKind {
    /// Twilio Programmable Messaging, SMS and WhatsApp (providers.md §6).
    #[serde(rename_all = "camelCase")]
    Twilio {
        /// The `AC…` SID in the path and the Basic-auth user.
        account_sid: String,
        /// The Basic-auth password and the `X-Twilio-Signature` key.
        auth_token: String,
        /// Optional API key pair also accepted as Basic auth.
        #[serde(default)]
        api_key_sid: Option<String>,
        #[serde(default)]
        api_key_secret: Option<String>,
        /// Where WhatsApp (`whatsapp:`) callbacks go when the send carries
        /// no `StatusCallback` (default: `webhookUrl`).
        #[serde(default)]
        whatsapp_webhook_url: Option<String>,
    },
    /// Meta WhatsApp Cloud API (providers.md §5).
    #[serde(rename_all = "camelCase")]
    MetaCloud {
        /// The Bearer token sends must carry.
        access_token: String,
        /// The app secret `X-Hub-Signature-256` is keyed with.
        app_secret: String,
        /// Only this phone number id is served (any when absent).
        #[serde(default)]
        phone_number_id: Option<String>,
        /// `entry[].id` of the webhooks (the WABA id).
        #[serde(default)]
        business_account_id: Option<String>,
        /// `metadata.display_phone_number` of the webhooks.
        #[serde(default)]
        display_phone_number: Option<String>,
    },
    /// Mailgun (providers.md §1).
    #[serde(rename_all = "camelCase")]
    Mailgun {
        /// The Basic-auth password (user `api`).
        api_key: String,
        /// The HTTP webhook signing key.
        signing_key: String,
        /// Only this domain is served (any when absent; another answers 404).
        #[serde(default)]
        domain: Option<String>,
    },
    /// SendGrid v3 Mail Send (providers.md §2).
    #[serde(rename_all = "camelCase")]
    Sendgrid {
        /// The Bearer token sends must carry (`SG.…`).
        api_key: String,
        /// The P-256 private key the Event Webhook is signed with: PKCS#8 or
        /// SEC1, DER as base64 or PEM. Absent: one is generated at start;
        /// either way its public key (what the engine's `webhookSecret`
        /// takes) is served on `GET /_sim/accounts/{name}/public-key` and
        /// SendGrid's own `GET /v3/user/webhooks/event/settings/signed`.
        #[serde(default)]
        signing_key: Option<String>,
    },
    /// Mailjet Send API v3.1 (providers.md §3).
    #[serde(rename_all = "camelCase")]
    Mailjet {
        /// The Basic-auth user (Mailjet's public API key).
        api_key: String,
        /// The Basic-auth password (Mailjet's secret key).
        secret_key: String,
        /// The sender domain the probe (`GET /v3/REST/dns/{domain}`) knows
        /// (any when absent).
        #[serde(default)]
        domain: Option<String>,
    },
    /// An SMTP submission server on loopback (providers.md §4), plain text.
    #[serde(rename_all = "camelCase")]
    Smtp {
        /// The port it listens on, on the simulator's address (default 0: any
        /// free port, printed at start and served on
        /// `GET /_sim/accounts/{name}/smtp`).
        #[serde(default)]
        port: u16,
        /// AUTH PLAIN/LOGIN user; with `password`, AUTH is required. Both
        /// absent: mail is taken without AUTH.
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
    },
    /// Africa's Talking SMS (providers.md §10).
    #[serde(rename_all = "camelCase")]
    AfricasTalking {
        /// The `username` form field sends must carry.
        username: String,
        /// The `apiKey` header sends must carry.
        api_key: String,
    },
    /// Termii SMS (providers.md §11).
    #[serde(rename_all = "camelCase")]
    Termii {
        /// The `api_key` in send bodies (and GET queries).
        api_key: String,
        /// The account secret `X-Termii-Signature` (HMAC-SHA512) is keyed
        /// with: the engine's `credentials.webhookSecret`.
        secret_key: String,
    },
    /// Gupshup WhatsApp, self-serve API (providers.md §7).
    #[serde(rename_all = "camelCase")]
    Gupshup {
        /// The `apikey` header.
        api_key: String,
        /// Only this `src.name` is served (any when absent); also the `app`
        /// of callbacks.
        #[serde(default)]
        app_name: Option<String>,
    },
    /// AiSensy campaign API (providers.md §8).
    #[serde(rename_all = "camelCase")]
    Aisensy {
        /// The `apiKey` in send bodies.
        api_key: String,
        /// The live API campaigns (any `campaignName` when empty; another
        /// answers 400 "Campaign does not exist.").
        #[serde(default)]
        campaigns: Vec<String>,
    },
    /// Interakt public message API (providers.md §9).
    #[serde(rename_all = "camelCase")]
    Interakt {
        /// The `Authorization: Basic <apiKey>` credential, compared as given.
        api_key: String,
        /// The key `Interakt-Signature` (HMAC-SHA256) is keyed with: the
        /// engine's `webhookSecret`.
        webhook_secret: String,
    },
}

impl ProviderKind {
    /// The `type` of the config entry (`twilio`, `metaCloud`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            ProviderKind::Twilio { .. } => "twilio",
            ProviderKind::MetaCloud { .. } => "metaCloud",
            ProviderKind::Mailgun { .. } => "mailgun",
            ProviderKind::Sendgrid { .. } => "sendgrid",
            ProviderKind::Mailjet { .. } => "mailjet",
            ProviderKind::Smtp { .. } => "smtp",
            ProviderKind::AfricasTalking { .. } => "africasTalking",
            ProviderKind::Termii { .. } => "termii",
            ProviderKind::Gupshup { .. } => "gupshup",
            ProviderKind::Aisensy { .. } => "aisensy",
            ProviderKind::Interakt { .. } => "interakt",
        }
    }
}

/// How an account behaves; every field has a default (instant, no errors,
/// everything delivered, no webhooks).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Behaviour {
    /// Added before every API answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of authenticated sends answered with a 5xx (0..=1).
    #[serde(default)]
    pub error_rate: f64,
    /// Share of authenticated sends answered with a 429 (0..=1).
    #[serde(default)]
    pub rate_limit_rate: f64,
    /// `Retry-After` on 429s (seconds); `null` sends none (Meta and Mailgun
    /// document none; adapters must cope either way).
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: Option<u64>,
    /// Outcome weights of accepted sends: `delivered`, `read`, `failed`,
    /// `undelivered`, `bounced`, `none` (no webhook). Default: all delivered.
    #[serde(default)]
    pub outcomes: BTreeMap<Outcome, u32>,
    /// Where status webhooks go (the engine's
    /// `/api/webhooks/{channel}/{providerId}`); none: no webhooks (Twilio
    /// still uses a send's `StatusCallback`).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Wait before the first webhook of a message, and between its steps.
    #[serde(default = "default_webhook_delay")]
    pub webhook_delay_ms: u64,
    /// Extra attempts of a webhook the engine answers non-2xx (or not at all).
    #[serde(default = "default_webhook_retries")]
    pub webhook_retries: u32,
    /// Wait before the first retry; doubles for each further one.
    #[serde(default = "default_webhook_retry_delay")]
    pub webhook_retry_delay_ms: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: default_retry_after(),
            outcomes: BTreeMap::new(),
            webhook_url: None,
            webhook_delay_ms: default_webhook_delay(),
            webhook_retries: default_webhook_retries(),
            webhook_retry_delay_ms: default_webhook_retry_delay(),
        }
    }
}

fn default_retry_after() -> Option<u64> {
    Some(1)
}
fn default_webhook_delay() -> u64 {
    50
}
fn default_webhook_retries() -> u32 {
    3
}
fn default_webhook_retry_delay() -> u64 {
    200
}

/// What finally happens to an accepted message, told to the engine by
/// status webhooks in the provider's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Twilio `sent`, `delivered`; Meta `sent`, `delivered`; Mailgun
    /// `delivered`; SendGrid `processed`, `delivered`; Mailjet `sent`;
    /// Africa's Talking `Sent`, `Success`; Termii `Message Sent`,
    /// `Delivered`; Gupshup `enqueued`, `sent`, `delivered`; AiSensy and
    /// Interakt `sent`, `delivered`.
    Delivered,
    /// As delivered, then Twilio/Meta/Gupshup/AiSensy/Interakt `read`,
    /// Mailgun `opened`, SendGrid `open`, Mailjet `open` (SMS: as delivered).
    Read,
    /// Twilio `failed` (30008); Meta `failed` (131026); Mailgun `failed`
    /// permanent, reason `generic`; SendGrid `bounce` type `blocked`;
    /// Mailjet soft `bounce`; Africa's Talking `Failed`; Termii `Rejected`;
    /// Gupshup `failed`; AiSensy and Interakt `failed`.
    Failed,
    /// Twilio `sent`, `undelivered` (30003); Africa's Talking `Sent`,
    /// `Failed`; Termii `Message Sent`, `Message Failed`; elsewhere as
    /// `failed`.
    Undelivered,
    /// Mailgun `failed` permanent, reason `bounce`; SendGrid `bounce`;
    /// Mailjet hard `bounce`; elsewhere as `failed`.
    Bounced,
    /// No webhook at all (the message stays `sent` at the engine).
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_entry_takes_the_defaults() {
        let c = SimConfig::from_json(
            r#"{"providers": [{"type": "mailgun", "apiKey": "k", "signingKey": "s"}]}"#,
        )
        .expect("valid");
        let p = &c.providers[0];
        assert_eq!(p.name(), "mailgun");
        assert_eq!(p.behaviour.retry_after_secs, Some(1));
        assert_eq!(p.behaviour.webhook_retries, 3);
        assert!(p.behaviour.outcomes.is_empty());
    }

    #[test]
    fn the_example_config_is_valid_and_has_every_type() {
        let c = SimConfig::from_json(include_str!("../../sim.example.json")).expect("valid");
        let types: std::collections::BTreeSet<&str> =
            c.providers.iter().map(|p| p.kind.type_name()).collect();
        assert_eq!(
            types.into_iter().collect::<Vec<_>>(),
            [
                "africasTalking",
                "aisensy",
                "gupshup",
                "interakt",
                "mailgun",
                "mailjet",
                "metaCloud",
                "sendgrid",
                "smtp",
                "termii",
                "twilio"
            ]
        );
    }

    #[test]
    fn bad_rates_weights_names_and_types_are_refused() {
        for bad in [
            r#"{"providers": [{"type": "mailgun", "apiKey": "k", "signingKey": "s", "errorRate": 1.5}]}"#,
            r#"{"providers": [{"type": "mailgun", "apiKey": "k", "signingKey": "s", "outcomes": {"delivered": 0}}]}"#,
            r#"{"providers": [{"type": "mailgun", "apiKey": "k", "signingKey": "s"},
                              {"type": "mailgun", "apiKey": "k", "signingKey": "s"}]}"#,
            r#"{"providers": [{"type": "pigeon"}]}"#,
            r#"{"providers": [{"type": "mailgun", "apiKey": "k", "signingKey": "s", "latencyMS": 5}]}"#,
            r#"{"providers": [{"type": "mailgun", "apiKey": "k", "signingKey": "s", "accessToken": "t"}]}"#,
            r#"{"providers": [{"type": "twilio", "accountSid": "AC1"}]}"#,
            r#"{"providers": [{"type": "mailgun", "apiKey": "k", "signingKey": "s", "outcomes": {"lost": 1}}]}"#,
            r#"{"providers": [{"type": "smtp", "webhookUrl": "http://127.0.0.1:1/x"}]}"#,
            r#"{"providers": [{"type": "smtp", "username": "u"}]}"#,
            r#"{"providers": [{"type": "termii", "apiKey": "k", "secretKey": "s", "appName": "a"}]}"#,
            r#"{"providers": [{"type": "africasTalking", "apiKey": "k"}]}"#,
        ] {
            assert!(SimConfig::from_json(bad).is_err(), "{bad}");
        }
    }
}

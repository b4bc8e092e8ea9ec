//! An organization's routing rules: what a rule matches, how it orders the
//! providers it names, and how a message falls back. Validation here is
//! everything that can be said of a rule against the organization's
//! providers, with the field named; nothing is stored when it fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::country::Country;
use super::window::TimeWindow;
use crate::channel::Channel;
use crate::ids::ProviderId;
use crate::validate::{self as v, Valid, ValidationError};

/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Most entries in any list of a rule (countries, prefixes, providers...).
pub const MAX_LIST: usize = 200;
/// Most rules an organization may have.
pub const MAX_RULES: i64 = 200;
/// Most tags a rule matches on.
pub const MAX_TAGS: usize = 20;
/// Receipt timeouts and channel fallbacks wait 10 s to 7 days.
pub const MIN_WAIT_SECS: u32 = 10;
pub const MAX_WAIT_SECS: u32 = 7 * 24 * 3600;

/// What a message is for: quiet hours and rules may treat them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    #[default]
    Transactional,
    Marketing,
}

/// How a rule orders its providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Lowest cost for the destination country; ties by priority.
    Cheapest,
    /// The order given (or, with no providers named, by priority).
    Priority,
    /// Highest live delivery ratio; latency breaks ties.
    BestDelivery,
    /// A split by weight, the same for every attempt of one message.
    Weighted,
}

impl Category {
    /// `transactional`: left out of the stored routing.
    pub fn is_default(&self) -> bool {
        *self == Category::default()
    }
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Cheapest => "cheapest",
            Strategy::Priority => "priority",
            Strategy::BestDelivery => "best_delivery",
            Strategy::Weighted => "weighted",
        }
    }
}

/// When a rule applies. Every condition given must hold; an empty match
/// applies to every message of its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleMatch {
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<Country>,
    /// E.164 prefixes (`+234803`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Recipient email domains (`example.com`, lower-case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// Tags the message must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
}

/// Moving a message on when it cannot be, or has not been, delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fallback {
    #[serde(default = "yes")]
    pub on_transient_error: bool,
    #[serde(default = "yes")]
    pub on_circuit_open: bool,
    #[serde(default = "yes")]
    pub on_rate_limited: bool,
    /// A message `sent` with no receipt for this long tries the next provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_timeout_seconds: Option<u32>,
    /// A message not delivered within `afterSeconds` is sent once on another channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_channel: Option<ChannelFallback>,
}

fn yes() -> bool {
    true
}

impl Fallback {
    /// Every default: no need to store it.
    pub fn is_default(&self) -> bool {
        *self == Fallback::default()
    }
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback {
            on_transient_error: true,
            on_circuit_open: true,
            on_rate_limited: true,
            receipt_timeout_seconds: None,
            to_channel: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelFallback {
    pub channel: Channel,
    pub after_seconds: u32,
}

/// One routing rule, as `POST /api/routing/rules` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingRule {
    pub name: String,
    /// Lower is evaluated first; the first matching rule wins.
    pub priority: i32,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(rename = "match")]
    pub matcher: RuleMatch,
    pub strategy: Strategy,
    /// The providers the strategy orders; empty means every active
    /// provider of the channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderId>,
    #[serde(default)]
    pub fallback: Fallback,
}

/// What validation needs to know of one of the organization's providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderFacts {
    pub channel: Channel,
    pub weight: u16,
}

impl RoutingRule {
    /// Checks the rule against the organization's providers (`provider`
    /// answers `None` for an id that is not one of them). Normalises
    /// domains to lower case.
    pub fn validate(
        &mut self,
        provider: &dyn Fn(ProviderId) -> Option<ProviderFacts>,
    ) -> Valid<()> {
        v::text("name", &self.name, MAX_NAME_CHARS)?;
        if !(0..=super::attributes::MAX_PRIORITY).contains(&self.priority) {
            return Err(ValidationError::new(
                "priority",
                "out_of_range",
                format!(
                    "priority must be between 0 and {}",
                    super::attributes::MAX_PRIORITY
                ),
            ));
        }
        self.matcher.validate()?;
        let channel = self.matcher.channel;
        too_many("providers", self.providers.len())?;
        let mut weights = 0u32;
        for (i, id) in self.providers.iter().enumerate() {
            let field = format!("providers[{i}]");
            let facts = provider(*id).ok_or_else(|| {
                ValidationError::new(
                    field.as_str(),
                    "unknown_provider",
                    format!("{field} is not a provider connection of this organization"),
                )
            })?;
            if facts.channel != channel {
                return Err(ValidationError::new(
                    field.as_str(),
                    "wrong_channel",
                    format!(
                        "{field} is a {} provider; this rule routes {}",
                        facts.channel.as_str(),
                        channel.as_str()
                    ),
                ));
            }
            if self.providers[..i].contains(id) {
                return Err(ValidationError::new(
                    field,
                    "duplicate",
                    "a provider is listed twice",
                ));
            }
            weights += u32::from(facts.weight);
        }
        if self.strategy == Strategy::Weighted && !self.providers.is_empty() && weights == 0 {
            return Err(ValidationError::new(
                "providers",
                "zero_weights",
                "every provider of a weighted rule has weight 0: give at least one a weight",
            ));
        }
        self.fallback.validate(channel)
    }
}

impl RoutingRule {
    /// Parses a rule body, naming the failing field (`match.countries[1]`).
    pub fn parse(body: serde_json::Value) -> Valid<RoutingRule> {
        serde_path_to_error::deserialize::<_, RoutingRule>(body)
            .map_err(|e| v::from_serde(&e.path().to_string(), &e.inner().to_string()))
    }
}

impl RuleMatch {
    fn validate(&mut self) -> Valid<()> {
        too_many("match.countries", self.countries.len())?;
        too_many("match.prefixes", self.prefixes.len())?;
        too_many("match.domains", self.domains.len())?;
        let phone = matches!(self.channel, Channel::Sms | Channel::Whatsapp);
        if !phone && (!self.countries.is_empty() || !self.prefixes.is_empty()) {
            let field = if self.countries.is_empty() {
                "match.prefixes"
            } else {
                "match.countries"
            };
            return Err(ValidationError::new(
                field,
                "not_for_channel",
                "countries and prefixes match phone numbers: use domains for email",
            ));
        }
        if phone && !self.domains.is_empty() {
            return Err(ValidationError::new(
                "match.domains",
                "not_for_channel",
                "domains match email addresses: use countries or prefixes for phone numbers",
            ));
        }
        for (i, prefix) in self.prefixes.iter().enumerate() {
            let digits = prefix.strip_prefix('+').unwrap_or("");
            if !(1..=14).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValidationError::new(
                    format!("match.prefixes[{i}]"),
                    "invalid_prefix",
                    "a prefix is `+` and 1 to 14 digits, e.g. +234803",
                ));
            }
        }
        for (i, domain) in self.domains.iter_mut().enumerate() {
            *domain = domain.to_ascii_lowercase();
            v::hostname(&format!("match.domains[{i}]"), domain)?;
        }
        validate_tags("match.tags", &self.tags)?;
        if let Some(window) = &self.time_window {
            window.validate("match.timeWindow")?;
        }
        Ok(())
    }
}

impl Fallback {
    fn validate(&self, channel: Channel) -> Valid<()> {
        let in_range = |s: u32| (MIN_WAIT_SECS..=MAX_WAIT_SECS).contains(&s);
        let wait = |field: &str| {
            ValidationError::new(
                field,
                "out_of_range",
                format!("{field} must be between {MIN_WAIT_SECS} and {MAX_WAIT_SECS} seconds"),
            )
        };
        if self.receipt_timeout_seconds.is_some_and(|s| !in_range(s)) {
            return Err(wait("fallback.receiptTimeoutSeconds"));
        }
        if let Some(to) = self.to_channel {
            if to.channel == channel {
                return Err(ValidationError::new(
                    "fallback.toChannel.channel",
                    "same_channel",
                    "a channel fallback must go to another channel",
                ));
            }
            if !in_range(to.after_seconds) {
                return Err(wait("fallback.toChannel.afterSeconds"));
            }
        }
        Ok(())
    }
}

/// Routing tags, on a rule or a message: at most [`MAX_TAGS`], each key 1
/// to 64 characters and each value at most 256, no control characters.
pub fn validate_tags(field: &str, tags: &BTreeMap<String, String>) -> Valid<()> {
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::new(
            field,
            "too_many",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (key, value) in tags {
        let bad = |s: &str| s.chars().any(char::is_control);
        if key.is_empty()
            || key.chars().count() > 64
            || value.chars().count() > 256
            || bad(key)
            || bad(value)
        {
            return Err(ValidationError::new(
                format!("{field}.{}", crate::text::clean_untrusted(key, 64)),
                "invalid_tag",
                "a tag key is 1 to 64 characters and its value at most 256, without control characters",
            ));
        }
    }
    Ok(())
}

fn too_many(field: &str, len: usize) -> Valid<()> {
    if len > MAX_LIST {
        return Err(ValidationError::new(
            field,
            "too_many",
            format!("{field} holds {len} entries; at most {MAX_LIST}"),
        ));
    }
    Ok(())
}

/// Checks a whole rule set: channel fallbacks must not form a cycle
/// (WhatsApp → SMS → WhatsApp), counting enabled rules only. `rules` are
/// the organization's rules with the one being written in place; the error
/// names the `candidate`'s field.
pub fn check_channel_cycles(rules: &[&RoutingRule]) -> Valid<()> {
    let edges: Vec<(Channel, Channel)> = rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| {
            r.fallback
                .to_channel
                .map(|to| (r.matcher.channel, to.channel))
        })
        .collect();
    for &(start, _) in &edges {
        // Walk from `start`; three channels means a cycle shows within three steps.
        let mut seen = vec![start];
        let mut frontier = vec![start];
        while let Some(at) = frontier.pop() {
            for &(from, to) in &edges {
                if from != at {
                    continue;
                }
                if to == start {
                    return Err(ValidationError::new(
                        "fallback.toChannel.channel",
                        "fallback_cycle",
                        format!(
                            "channel fallbacks would loop: {} falls back to a channel that falls back to {}",
                            start.as_str(),
                            start.as_str()
                        ),
                    ));
                }
                if !seen.contains(&to) {
                    seen.push(to);
                    frontier.push(to);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn pid(n: u128) -> ProviderId {
        ProviderId(Uuid::from_u128(n))
    }

    /// Providers 1-3 are SMS (3 has weight 0), 4 is WhatsApp.
    fn facts(id: ProviderId) -> Option<ProviderFacts> {
        match id.0.as_u128() {
            1 | 2 => Some(ProviderFacts {
                channel: Channel::Sms,
                weight: 100,
            }),
            3 => Some(ProviderFacts {
                channel: Channel::Sms,
                weight: 0,
            }),
            4 => Some(ProviderFacts {
                channel: Channel::Whatsapp,
                weight: 100,
            }),
            _ => None,
        }
    }

    fn base() -> serde_json::Value {
        json!({
            "name": "NG OTP cheapest", "priority": 10,
            "match": {"channel": "sms", "countries": ["NG"], "prefixes": ["+234803"],
                      "category": "transactional", "tags": {"product": "otp"},
                      "timeWindow": {"days": ["mon","tue"], "from": "08:00", "to": "20:00", "timeZone": "Africa/Lagos"}},
            "strategy": "cheapest",
            "providers": [pid(1).0, pid(2).0],
            "fallback": {"receiptTimeoutSeconds": 120, "toChannel": {"channel": "whatsapp", "afterSeconds": 300}}
        })
    }

    fn with(patch: serde_json::Value) -> serde_json::Value {
        let (serde_json::Value::Object(mut body), serde_json::Value::Object(patch)) =
            (base(), patch)
        else {
            unreachable!("both are objects")
        };
        crate::provider::merge_patch(&mut body, &patch);
        serde_json::Value::Object(body)
    }

    fn check(body: serde_json::Value) -> Valid<RoutingRule> {
        let mut rule: RoutingRule = serde_json::from_value(body)
            .map_err(|e| ValidationError::new("(parse)", "invalid_type", e.to_string()))?;
        rule.validate(&facts)?;
        Ok(rule)
    }

    #[test]
    fn the_issue_example_is_valid_and_defaults_fill_in() {
        let rule = check(base()).expect("valid");
        assert!(rule.enabled);
        assert!(rule.fallback.on_transient_error && rule.fallback.on_circuit_open);
        assert_eq!(rule.strategy, Strategy::Cheapest);
        let back = serde_json::to_value(&rule).expect("json");
        assert_eq!(back["strategy"], "cheapest");
        assert_eq!(back["match"]["countries"], json!(["NG"]));
    }

    #[test]
    fn each_bad_rule_is_refused_naming_its_field() {
        let cases = [
            (json!({"name": ""}), "name"),
            (json!({"priority": -5}), "priority"),
            (json!({"providers": [pid(9).0]}), "providers[0]"),
            (json!({"providers": [pid(1).0, pid(4).0]}), "providers[1]"),
            (json!({"providers": [pid(1).0, pid(1).0]}), "providers[1]"),
            (
                json!({"strategy": "weighted", "providers": [pid(3).0]}),
                "providers",
            ),
            (
                json!({"match": {"prefixes": ["234803"]}}),
                "match.prefixes[0]",
            ),
            (
                json!({"match": {"prefixes": ["+23a"]}}),
                "match.prefixes[0]",
            ),
            (
                json!({"match": {"domains": ["example.com"]}}),
                "match.domains",
            ),
            (
                json!({"match": {"timeWindow": {"from": "20:00", "to": "08:00", "timeZone": "Africa/Lagos"}}}),
                "match.timeWindow.to",
            ),
            (
                json!({"fallback": {"toChannel": {"channel": "sms", "afterSeconds": 300}}}),
                "fallback.toChannel.channel",
            ),
            (
                json!({"fallback": {"toChannel": {"channel": "whatsapp", "afterSeconds": 1}}}),
                "fallback.toChannel.afterSeconds",
            ),
            (
                json!({"fallback": {"receiptTimeoutSeconds": 0}}),
                "fallback.receiptTimeoutSeconds",
            ),
            (json!({"match": {"tags": {"": "x"}}}), "match.tags."),
        ];
        for (patch, field) in cases {
            let err = check(with(patch.clone())).expect_err("invalid");
            assert_eq!(err.field, field, "{patch}: {err}");
        }
        let email = json!({"name": "e", "priority": 1, "strategy": "priority",
                           "match": {"channel": "email", "countries": ["NG"]}});
        assert_eq!(
            check(email).expect_err("countries on email").field,
            "match.countries"
        );
    }

    #[test]
    fn malformed_values_do_not_parse() {
        for patch in [
            json!({"strategy": "fastest"}),
            json!({"match": {"countries": ["XX"]}}),
            json!({"match": {"category": "promo"}}),
            json!({"match": {"timeWindow": {"from": "08:00", "to": "20:00", "timeZone": "Lagos"}}}),
            json!({"colour": "red"}),
        ] {
            assert!(
                serde_json::from_value::<RoutingRule>(with(patch.clone())).is_err(),
                "{patch}"
            );
        }
    }

    #[test]
    fn channel_fallbacks_may_not_loop() {
        let rule = |channel: &str, to: Option<&str>, enabled: bool| -> RoutingRule {
            let mut body = json!({"name": "r", "priority": 1, "strategy": "priority", "enabled": enabled,
                                  "match": {"channel": channel}});
            if let Some(to) = to {
                body["fallback"] = json!({"toChannel": {"channel": to, "afterSeconds": 60}});
            }
            serde_json::from_value(body).expect("parses")
        };
        let wa_to_sms = rule("whatsapp", Some("sms"), true);
        let sms_to_email = rule("sms", Some("email"), true);
        let email_to_wa = rule("email", Some("whatsapp"), true);
        let off = rule("email", Some("whatsapp"), false);
        assert!(check_channel_cycles(&[&wa_to_sms, &sms_to_email]).is_ok());
        assert!(
            check_channel_cycles(&[&wa_to_sms, &sms_to_email, &off]).is_ok(),
            "disabled rules do not count"
        );
        let err =
            check_channel_cycles(&[&wa_to_sms, &sms_to_email, &email_to_wa]).expect_err("cycle");
        assert_eq!(err.code, "fallback_cycle");
        let sms_to_wa = rule("sms", Some("whatsapp"), true);
        assert!(check_channel_cycles(&[&wa_to_sms, &sms_to_wa]).is_err());
    }
}

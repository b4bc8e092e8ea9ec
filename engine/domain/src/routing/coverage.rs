//! Warnings for a rule set or provider change that is valid but leaves some
//! messages with no usable provider: the change is accepted and the answer
//! says what will not route.

use serde::Serialize;

use super::rules::{RoutingRule, Strategy};
use super::RouteCandidate;

/// Something a change leaves unroutable, or routed not as the rule says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// `no_usable_provider`, `no_provider_for_country`, `no_price_for_country`.
    pub code: &'static str,
    pub message: String,
    /// The field of the written body the warning is about.
    pub field: String,
}

/// What `rule` leaves uncovered, given the organization's active providers
/// (`active`, any channel).
pub fn rule_warnings(rule: &RoutingRule, active: &[RouteCandidate]) -> Vec<Warning> {
    let channel = rule.matcher.channel;
    let pool: Vec<&RouteCandidate> = if rule.providers.is_empty() {
        active.iter().filter(|c| c.channel == channel).collect()
    } else {
        rule.providers
            .iter()
            .filter_map(|id| {
                active
                    .iter()
                    .find(|c| c.provider_id == *id && c.channel == channel)
            })
            .collect()
    };
    let mut warnings = Vec::new();
    if pool.is_empty() {
        let (field, message) = if rule.providers.is_empty() {
            (
                "match.channel",
                format!(
                    "this organization has no active {} provider: messages this rule matches \
                     cannot be sent until one is added or activated",
                    channel.as_str()
                ),
            )
        } else {
            (
                "providers",
                "none of this rule's providers is active: messages it matches cannot be sent \
                 until one is activated"
                    .to_owned(),
            )
        };
        warnings.push(Warning {
            code: "no_usable_provider",
            message,
            field: field.to_owned(),
        });
        return warnings;
    }
    for (i, country) in rule.matcher.countries.iter().enumerate() {
        let field = format!("match.countries[{i}]");
        let serving: Vec<&&RouteCandidate> = pool
            .iter()
            .filter(|c| c.attributes.allows(Some(*country)))
            .collect();
        if serving.is_empty() {
            warnings.push(Warning {
                code: "no_provider_for_country",
                message: format!(
                    "none of this rule's active providers may be used for {country}: messages \
                     to {country} it matches cannot be sent"
                ),
                field,
            });
        } else if rule.strategy == Strategy::Cheapest
            && serving
                .iter()
                .all(|c| c.attributes.cost(Some(*country)).is_none())
        {
            warnings.push(Warning {
                code: "no_price_for_country",
                message: format!(
                    "no provider of this rule has a price for {country}: `cheapest` falls back \
                     to priority order there"
                ),
                field,
            });
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::channel::Channel;
    use crate::ids::ProviderId;
    use crate::routing::RoutingAttributes;

    fn pid(n: u128) -> ProviderId {
        ProviderId(Uuid::from_u128(n))
    }

    fn candidate(n: u128, channel: Channel, attributes: serde_json::Value) -> RouteCandidate {
        RouteCandidate {
            provider_id: pid(n),
            name: Arc::from(format!("p{n}")),
            provider_type: "SANDBOX".into(),
            channel,
            attributes: serde_json::from_value::<RoutingAttributes>(attributes).expect("attrs"),
            created_order: n as u64,
        }
    }

    fn rule(body: serde_json::Value) -> RoutingRule {
        serde_json::from_value(body).expect("rule")
    }

    #[test]
    fn a_covered_rule_has_no_warnings() {
        let active = [
            candidate(
                1,
                Channel::Sms,
                json!({"costs": {"currency": "NGN", "countries": {"NG": 250}}}),
            ),
            candidate(2, Channel::Sms, json!({"countries": ["KE"]})),
        ];
        let r = rule(json!({"name": "r", "priority": 1, "strategy": "cheapest",
                            "match": {"channel": "sms", "countries": ["NG"]}}));
        assert!(rule_warnings(&r, &active).is_empty());
    }

    #[test]
    fn each_gap_is_a_warning_naming_its_field() {
        let active = [
            candidate(1, Channel::Sms, json!({"countries": ["NG"]})),
            candidate(
                2,
                Channel::Sms,
                json!({"countries": ["KE"], "costs": {"currency": "KES", "default": 1}}),
            ),
            candidate(3, Channel::Email, json!({})),
        ];
        let r = rule(json!({"name": "r", "priority": 1, "strategy": "cheapest",
                            "providers": [pid(1).0],
                            "match": {"channel": "sms", "countries": ["NG", "GH"]}}));
        let w = rule_warnings(&r, &active);
        let got: Vec<(&str, &str)> = w.iter().map(|w| (w.code, w.field.as_str())).collect();
        assert_eq!(
            got,
            [
                ("no_price_for_country", "match.countries[0]"),
                ("no_provider_for_country", "match.countries[1]")
            ]
        );
        let gone = rule(json!({"name": "r", "priority": 1, "strategy": "priority",
                               "providers": [pid(9).0], "match": {"channel": "sms"}}));
        assert_eq!(rule_warnings(&gone, &active)[0].field, "providers");
        let wa = rule(json!({"name": "r", "priority": 1, "strategy": "priority",
                             "match": {"channel": "whatsapp"}}));
        assert_eq!(rule_warnings(&wa, &active)[0].code, "no_usable_provider");
    }
}

//! What a provider connection brings to routing: its priority and weight,
//! its own rate limit, what it costs the platform per destination country,
//! and the countries it may be used for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::country::Country;
use crate::validate::{Valid, ValidationError};

/// Priority of a connection that sets none (lower goes first).
pub const DEFAULT_PRIORITY: i32 = 100;
/// Weight of a connection that sets none.
pub const DEFAULT_WEIGHT: u16 = 100;
/// Largest weight.
pub const MAX_WEIGHT: u16 = 1000;
/// Priorities lie in `0..=MAX_PRIORITY`.
pub const MAX_PRIORITY: i32 = 1_000_000;
/// Highest per-connection rate and burst, messages per second.
pub const MAX_RATE_PER_SECOND: u32 = 100_000;
/// Highest price of one message, in minor units (10^12: no real price is near).
pub const MAX_COST_MINOR: u64 = 1_000_000_000_000;

/// A connection's routing attributes, as set through the provider APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingAttributes {
    /// Lower goes first in `priority` order and breaks ties elsewhere.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// Share of a `weighted` split (0 takes no share; it stays a fallback).
    #[serde(default = "default_weight")]
    pub weight: u16,
    /// The connection's own limit; `None` uses the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// Burst of the connection's own limit; `None` is one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// What one message costs the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub costs: Option<Costs>,
    /// Where the connection may be used; empty means everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<Country>,
}

fn default_priority() -> i32 {
    DEFAULT_PRIORITY
}

fn default_weight() -> u16 {
    DEFAULT_WEIGHT
}

impl Default for RoutingAttributes {
    fn default() -> Self {
        RoutingAttributes {
            priority: DEFAULT_PRIORITY,
            weight: DEFAULT_WEIGHT,
            rate_per_second: None,
            burst: None,
            costs: None,
            countries: Vec::new(),
        }
    }
}

/// Prices of one message in integer minor units of one currency (kobo for
/// NGN, cents for USD): per destination country, else `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Costs {
    /// ISO 4217 code, three upper-case letters.
    pub currency: String,
    /// The price where no country price is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub countries: BTreeMap<Country, u64>,
}

impl Costs {
    /// The price of a message to `country` (`None`: unknown destination or
    /// an email), or `None` when the connection has no price for it.
    pub fn for_country(&self, country: Option<Country>) -> Option<u64> {
        country
            .and_then(|c| self.countries.get(&c).copied())
            .or(self.default)
    }
}

impl RoutingAttributes {
    /// Whether the connection may carry a message to `country`. A message of
    /// unknown country (an email) may go wherever the list allows any.
    pub fn allows(&self, country: Option<Country>) -> bool {
        match country {
            Some(c) => self.countries.is_empty() || self.countries.contains(&c),
            None => true,
        }
    }

    /// Whether routing by this connection depends on the destination
    /// country (it is limited to some countries, or priced per country).
    pub fn is_country_specific(&self) -> bool {
        !self.countries.is_empty() || self.costs.as_ref().is_some_and(|c| !c.countries.is_empty())
    }

    /// The price of a message to `country`, with its currency.
    pub fn cost(&self, country: Option<Country>) -> Option<(u64, &str)> {
        let costs = self.costs.as_ref()?;
        Some((costs.for_country(country)?, costs.currency.as_str()))
    }

    /// Checks every field; `prefix` is the attributes' path in the body
    /// (`""` when they are top-level fields of a provider body).
    pub fn validate(&self, prefix: &str) -> Valid<()> {
        let field = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        if !(0..=MAX_PRIORITY).contains(&self.priority) {
            return Err(ValidationError::new(
                field("priority"),
                "out_of_range",
                format!("priority must be between 0 and {MAX_PRIORITY}"),
            ));
        }
        if self.weight > MAX_WEIGHT {
            return Err(ValidationError::new(
                field("weight"),
                "out_of_range",
                format!("weight must be between 0 and {MAX_WEIGHT}"),
            ));
        }
        for (name, value) in [
            ("ratePerSecond", self.rate_per_second),
            ("burst", self.burst),
        ] {
            if value.is_some_and(|v| !(1..=MAX_RATE_PER_SECOND).contains(&v)) {
                return Err(ValidationError::new(
                    field(name),
                    "out_of_range",
                    format!("{name} must be between 1 and {MAX_RATE_PER_SECOND}"),
                ));
            }
        }
        if self.burst.is_some() && self.rate_per_second.is_none() {
            return Err(ValidationError::required(
                field("ratePerSecond"),
                "when burst is set",
            ));
        }
        if let Some(costs) = &self.costs {
            costs.validate(&field("costs"))?;
        }
        Ok(())
    }
}

impl Costs {
    fn validate(&self, prefix: &str) -> Valid<()> {
        let c = &self.currency;
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValidationError::new(
                format!("{prefix}.currency"),
                "invalid_currency",
                "currency must be an ISO 4217 code such as NGN or USD",
            ));
        }
        if self.default.is_none() && self.countries.is_empty() {
            return Err(ValidationError::required(
                format!("{prefix}.default"),
                "when costs name no country",
            ));
        }
        let prices = self
            .default
            .iter()
            .map(|p| ("default".to_owned(), *p))
            .chain(
                self.countries
                    .iter()
                    .map(|(c, p)| (format!("countries.{c}"), *p)),
            );
        for (path, price) in prices {
            if price > MAX_COST_MINOR {
                return Err(ValidationError::new(
                    format!("{prefix}.{path}"),
                    "out_of_range",
                    format!("a price must be at most {MAX_COST_MINOR} minor units"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> RoutingAttributes {
        serde_json::from_value(value).expect("parses")
    }

    fn country(s: &str) -> Country {
        s.parse().expect("country")
    }

    #[test]
    fn absent_attributes_are_the_defaults() {
        let attrs = parse(json!({}));
        assert_eq!(attrs, RoutingAttributes::default());
        assert_eq!((attrs.priority, attrs.weight), (100, 100));
        assert!(attrs.allows(Some(country("NG"))));
        assert_eq!(attrs.cost(Some(country("NG"))), None);
        assert_eq!(
            serde_json::to_value(&attrs).expect("json"),
            json!({"priority": 100, "weight": 100})
        );
    }

    #[test]
    fn a_country_price_wins_over_the_default() {
        let attrs = parse(json!({
            "costs": {"currency": "NGN", "default": 900, "countries": {"NG": 250, "KE": 410}},
            "countries": ["NG", "KE"]
        }));
        attrs.validate("").expect("valid");
        assert_eq!(attrs.cost(Some(country("NG"))), Some((250, "NGN")));
        assert_eq!(attrs.cost(Some(country("KE"))), Some((410, "NGN")));
        assert_eq!(attrs.cost(Some(country("GH"))), Some((900, "NGN")));
        assert_eq!(attrs.cost(None), Some((900, "NGN")));
        assert!(attrs.allows(Some(country("KE"))));
        assert!(!attrs.allows(Some(country("GH"))));
        assert!(attrs.allows(None));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({"priority": -1}), "priority", "out_of_range"),
            (json!({"weight": 1001}), "weight", "out_of_range"),
            (json!({"ratePerSecond": 0}), "ratePerSecond", "out_of_range"),
            (json!({"burst": 10}), "ratePerSecond", "required"),
            (
                json!({"costs": {"currency": "ngn", "default": 1}}),
                "costs.currency",
                "invalid_currency",
            ),
            (
                json!({"costs": {"currency": "NGN"}}),
                "costs.default",
                "required",
            ),
            (
                json!({"costs": {"currency": "NGN", "countries": {"NG": 2_000_000_000_000u64}}}),
                "costs.countries.NG",
                "out_of_range",
            ),
        ];
        for (body, field, code) in cases {
            let err = parse(body.clone()).validate("").expect_err("invalid");
            assert_eq!((err.field.as_str(), err.code), (field, code), "{body}");
        }
        let err = parse(json!({"weight": 2000}))
            .validate("routing")
            .expect_err("invalid");
        assert_eq!(err.field, "routing.weight");
    }

    #[test]
    fn unknown_countries_and_fields_do_not_parse() {
        for body in [
            json!({"countries": ["XX"]}),
            json!({"costs": {"currency": "NGN", "countries": {"ZZ": 1}}}),
            json!({"colour": "red"}),
        ] {
            assert!(
                serde_json::from_value::<RoutingAttributes>(body.clone()).is_err(),
                "{body}"
            );
        }
    }
}

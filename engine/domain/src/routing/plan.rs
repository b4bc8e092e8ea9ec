//! The routing decision for one message: the first rule that matches (or
//! the channel's default), its providers ordered by its strategy, the
//! unavailable ones set aside, and the reason for every place. A pure
//! function of the rule set, the candidates, the live health and the time,
//! which are all passed in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::country::Country;
use super::rules::{Category, Fallback, RoutingRule, Strategy};
use super::{ProviderLiveness, RouteCandidate};
use crate::channel::Channel;
use crate::ids::{MessageId, ProviderId};

/// A live delivery ratio counts once a provider has this many receipts in
/// its window; below it, the provider ranks after those that have one.
pub const MIN_DELIVERY_SAMPLES: u32 = 20;

/// A stored rule: its id and the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub id: uuid::Uuid,
    pub rule: RoutingRule,
}

/// An organization's rules, in evaluation order (priority, then id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    rules: Vec<StoredRule>,
}

impl RuleSet {
    pub fn new(mut rules: Vec<StoredRule>) -> RuleSet {
        rules.sort_by_key(|r| (r.rule.priority, r.id));
        RuleSet { rules }
    }

    pub fn rules(&self) -> &[StoredRule] {
        &self.rules
    }

    /// Whether any enabled rule routes `channel`.
    pub fn has_rules_for(&self, channel: Channel) -> bool {
        self.rules
            .iter()
            .any(|r| r.rule.enabled && r.rule.matcher.channel == channel)
    }

    /// The first enabled rule that matches.
    pub fn matching(&self, facts: &Facts<'_>, now: DateTime<Utc>) -> Option<&StoredRule> {
        self.rules
            .iter()
            .find(|r| r.rule.enabled && matches(&r.rule, facts, now))
    }
}

/// What routing knows of a message.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub id: MessageId,
    pub channel: Channel,
    /// E.164 for SMS and WhatsApp, an address for email.
    pub to: &'a str,
    /// From the number (see [`Country::of_phone`]); `None` for email.
    pub country: Option<Country>,
    pub category: Category,
    pub tags: Option<&'a BTreeMap<String, String>>,
}

fn matches(rule: &RoutingRule, f: &Facts<'_>, now: DateTime<Utc>) -> bool {
    let m = &rule.matcher;
    m.channel == f.channel
        && (m.countries.is_empty() || f.country.is_some_and(|c| m.countries.contains(&c)))
        && (m.prefixes.is_empty() || m.prefixes.iter().any(|p| f.to.starts_with(p.as_str())))
        && (m.domains.is_empty()
            || crate::validate::email_domain(f.to)
                .is_some_and(|d| m.domains.iter().any(|x| d.eq_ignore_ascii_case(x))))
        && m.category.is_none_or(|c| c == f.category)
        && m.tags
            .iter()
            .all(|(k, v)| f.tags.and_then(|t| t.get(k)) == Some(v))
        && m.time_window.as_ref().is_none_or(|w| w.contains(now))
}

/// Which rule decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decider {
    /// `None`: the channel's default (every active provider by priority).
    pub rule_id: Option<uuid::Uuid>,
    /// The rule's name, or `default`.
    pub rule: String,
    pub strategy: Strategy,
}

/// Why a provider has its place, or was set aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reason {
    /// `cheapest`: the lowest price for the destination.
    Cheapest {
        country: Option<Country>,
        cost: u64,
        currency: String,
    },
    /// `cheapest`: its price for the destination, not the lowest.
    Price {
        country: Option<Country>,
        cost: u64,
        currency: String,
    },
    /// `cheapest`: it has no price for the destination, so it goes last.
    NoPrice { country: Option<Country> },
    /// The default (no rule): its priority.
    Priority { priority: i32 },
    /// `priority`: its place in the rule's list (1 is first).
    Listed { position: usize },
    /// `best_delivery`: its live ratio over enough receipts.
    Delivery { ratio: f64, samples: u32 },
    /// `best_delivery`: too few receipts for its ratio to count yet.
    FewSamples { samples: u32 },
    /// `weighted`: its weight (the draw is fixed per message).
    Weight { weight: u16 },
    /// Kept only as a last resort: its circuit is open.
    CircuitOpen,
    /// Kept only as a last resort: its rate limit is exhausted.
    RateLimited,
    /// Left out: the rule names it but it is inactive or gone.
    Inactive,
    /// Left out: it may not be used for this country.
    CountryNotAllowed { country: Country },
}

/// One provider's place in a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub provider_id: ProviderId,
    /// The connection's name (empty for one the rule names but that is gone).
    pub name: Arc<str>,
    pub reason: Reason,
}

impl Choice {
    /// The reason in words: `termii: cheapest for NG at 250 NGN` (rendered
    /// when read, so planning allocates no text).
    pub fn explanation(&self) -> String {
        Explain {
            name: &self.name,
            reason: &self.reason,
        }
        .to_string()
    }
}

/// The routing decision for one message. Its serde form is the compact
/// one stored with each message (`super::stored`); the API renders its own
/// views.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub decider: Decider,
    /// The failover chain, in order.
    pub candidates: Vec<Choice>,
    /// Providers left out, with why.
    pub excluded: Vec<Choice>,
    /// How the message moves on (the matched rule's, or the default).
    pub fallback: Fallback,
}

impl Plan {
    /// The failover chain's provider ids.
    pub fn chain(&self) -> impl Iterator<Item = ProviderId> + '_ {
        self.candidates.iter().map(|c| c.provider_id)
    }
}

/// Plans one message: `candidates` are the organization's active providers
/// of the message's channel; `live` reports each one's state.
pub fn plan(
    rules: &RuleSet,
    candidates: &[RouteCandidate],
    live: &dyn Fn(ProviderId) -> ProviderLiveness,
    facts: &Facts<'_>,
    now: DateTime<Utc>,
) -> Plan {
    let rule = rules.matching(facts, now);
    let (decider, fallback, named) = match rule {
        Some(r) => (
            Decider {
                rule_id: Some(r.id),
                rule: r.rule.name.clone(),
                strategy: r.rule.strategy,
            },
            r.rule.fallback.clone(),
            r.rule.providers.as_slice(),
        ),
        None => (
            Decider {
                rule_id: None,
                rule: "default".to_owned(),
                strategy: Strategy::Priority,
            },
            Fallback::default(),
            &[][..],
        ),
    };
    let mut excluded = Vec::new();
    // Each candidate with its place in the rule's list (1 is first), if listed.
    let mut pool: Vec<(Option<usize>, &RouteCandidate)> = Vec::with_capacity(candidates.len());
    if named.is_empty() {
        pool.extend(
            candidates
                .iter()
                .filter(|c| c.channel == facts.channel)
                .map(|c| (None, c)),
        );
        pool.sort_by_key(|(_, c)| (c.attributes.priority, c.created_order, c.provider_id));
    } else {
        for (i, id) in named.iter().enumerate() {
            match candidates
                .iter()
                .find(|c| c.provider_id == *id && c.channel == facts.channel)
            {
                Some(c) => pool.push((Some(i + 1), c)),
                None => excluded.push(gone(*id)),
            }
        }
    }
    let mut ranked: Vec<(Ranked<'_>, ProviderLiveness)> = Vec::with_capacity(pool.len());
    for (listed_at, c) in pool {
        match facts.country {
            Some(country) if !c.attributes.allows(Some(country)) => {
                excluded.push(choice(c, Reason::CountryNotAllowed { country }));
                continue;
            }
            _ => {}
        }
        let health = live(c.provider_id);
        ranked.push((rank(decider.strategy, c, &health, facts, listed_at), health));
    }
    // Stable: equal keys keep the pool's order (the rule's, or priority).
    ranked.sort_by(|(a, _), (b, _)| a.key.order(&b.key));
    let mut chain = Vec::with_capacity(ranked.len());
    let mut last_resort = Vec::new();
    for (r, health) in ranked {
        if health.circuit_open && fallback.on_circuit_open {
            last_resort.push(choice(r.candidate, Reason::CircuitOpen));
        } else if health.rate_limited && fallback.on_rate_limited {
            last_resort.push(choice(r.candidate, Reason::RateLimited));
        } else {
            let reason = match r.reason {
                Reason::Price {
                    country,
                    cost,
                    currency,
                } if chain.is_empty() => Reason::Cheapest {
                    country,
                    cost,
                    currency,
                },
                other => other,
            };
            chain.push(choice(r.candidate, reason));
        }
    }
    chain.extend(last_resort);
    Plan {
        decider,
        candidates: chain,
        excluded,
        fallback,
    }
}

struct Ranked<'a> {
    candidate: &'a RouteCandidate,
    key: Key,
    reason: Reason,
}

/// A sort key: smaller goes first; the last member is the priority (ties
/// by priority). Floats compare totally. One plan's keys are all of one
/// strategy, so of one shape.
#[derive(Debug, Clone, Copy)]
enum Key {
    Given,
    Int(u8, u64, i32),
    Float(u8, f64, f64, i32),
}

impl Key {
    fn order(&self, other: &Key) -> std::cmp::Ordering {
        match (self, other) {
            (Key::Int(a, x, p), Key::Int(b, y, q)) => (a, x, p).cmp(&(b, y, q)),
            (Key::Float(a, x, u, p), Key::Float(b, y, v, q)) => a
                .cmp(b)
                .then(x.total_cmp(y))
                .then(u.total_cmp(v))
                .then(p.cmp(q)),
            _ => std::cmp::Ordering::Equal,
        }
    }
}

fn rank<'a>(
    strategy: Strategy,
    c: &'a RouteCandidate,
    health: &ProviderLiveness,
    facts: &Facts<'_>,
    listed_at: Option<usize>,
) -> Ranked<'a> {
    let priority = c.attributes.priority;
    let (key, reason) = match strategy {
        Strategy::Priority => match listed_at {
            Some(position) => (Key::Given, Reason::Listed { position }),
            None => (Key::Given, Reason::Priority { priority }),
        },
        Strategy::Cheapest => match c.attributes.cost(facts.country) {
            Some((cost, currency)) => (
                Key::Int(0, cost, priority),
                Reason::Price {
                    country: facts.country,
                    cost,
                    currency: currency.to_owned(),
                },
            ),
            None => (
                Key::Int(1, 0, priority),
                Reason::NoPrice {
                    country: facts.country,
                },
            ),
        },
        Strategy::BestDelivery => match health.delivery_ratio {
            Some(ratio) if health.delivery_samples >= MIN_DELIVERY_SAMPLES => (
                // Higher ratio first, then lower latency.
                Key::Float(0, -ratio, health.latency_us.unwrap_or(f64::MAX), priority),
                Reason::Delivery {
                    ratio,
                    samples: health.delivery_samples,
                },
            ),
            _ => (
                Key::Float(1, 0.0, health.latency_us.unwrap_or(f64::MAX), priority),
                Reason::FewSamples {
                    samples: health.delivery_samples,
                },
            ),
        },
        Strategy::Weighted => {
            let weight = c.attributes.weight;
            let key = if weight == 0 {
                Key::Float(1, 0.0, 0.0, priority)
            } else {
                // Efraimidis-Spirakis: the largest ln(u)/w goes first, so a
                // provider comes first with probability w / sum(w).
                let u = unit_draw(facts.id, c.provider_id);
                Key::Float(0, -(u.ln() / f64::from(weight)), 0.0, priority)
            };
            (key, Reason::Weight { weight })
        }
    };
    Ranked {
        candidate: c,
        key,
        reason,
    }
}

/// A number in (0, 1) fixed by the message and the provider (SplitMix64 of
/// both ids), so every attempt of one message draws the same.
fn unit_draw(message: MessageId, provider: ProviderId) -> f64 {
    let fold = |u: u128| (u as u64) ^ ((u >> 64) as u64);
    let mut z = fold(message.0.as_u128()) ^ fold(provider.0.as_u128()).rotate_left(32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // 53 random bits, then half a step so the result is never 0.
    ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn choice(c: &RouteCandidate, reason: Reason) -> Choice {
    Choice {
        provider_id: c.provider_id,
        name: c.name.clone(),
        reason,
    }
}

fn gone(provider_id: ProviderId) -> Choice {
    Choice {
        provider_id,
        name: Arc::from(""),
        reason: Reason::Inactive,
    }
}

struct Explain<'a> {
    name: &'a str,
    reason: &'a Reason,
}

impl fmt::Display for Explain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "(removed provider)"
        } else {
            self.name
        };
        let place =
            |c: &Option<Country>| c.map_or("this destination".to_owned(), |c| c.to_string());
        match self.reason {
            Reason::Cheapest {
                country,
                cost,
                currency,
            } => {
                write!(
                    f,
                    "{name}: cheapest for {} at {cost} {currency}",
                    place(country)
                )
            }
            Reason::Price {
                country,
                cost,
                currency,
            } => {
                write!(f, "{name}: {cost} {currency} for {}", place(country))
            }
            Reason::NoPrice { country } => write!(f, "{name}: no price for {}", place(country)),
            Reason::Priority { priority } => write!(f, "{name}: priority {priority}"),
            Reason::Listed { position } => {
                write!(f, "{name}: number {position} in the rule's order")
            }
            Reason::Delivery { ratio, samples } => write!(
                f,
                "{name}: delivers {:.1}% over {samples} receipts",
                ratio * 100.0
            ),
            Reason::FewSamples { samples } => write!(
                f,
                "{name}: {samples} receipts, fewer than the {MIN_DELIVERY_SAMPLES} a ratio needs"
            ),
            Reason::Weight { weight } => write!(f, "{name}: weight {weight}"),
            Reason::CircuitOpen => write!(f, "{name}: circuit open"),
            Reason::RateLimited => write!(f, "{name}: rate limit exhausted"),
            Reason::Inactive => write!(f, "{name}: inactive or removed"),
            Reason::CountryNotAllowed { country } => write!(f, "{name}: not allowed for {country}"),
        }
    }
}

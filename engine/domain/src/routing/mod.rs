//! Routing policy: which provider connections a message tries, in order.
//!
//! A policy is a pure function over a snapshot (the organization's candidate
//! connections and a live view of each one's health), so any number of
//! callers can evaluate it at once and the policy can be swapped without
//! touching the actors. The answer is the failover chain: the message tries
//! the first provider, then the next on failover, and so on.
//!
//! [`plan::plan`] is the policy: an organization's [`rules`] matched on
//! channel, country, prefix, domain, category, tags and local time
//! ([`window`]), its providers ordered by cost, delivery ratio, weight or
//! priority using each connection's [`attributes`], every place explained;
//! with no rule matching, the channel's active connections by priority.
//! Unavailable connections (open circuit, exhausted rate limit) go last.

pub mod attributes;
pub mod country;
pub mod coverage;
pub mod delivery;
pub mod plan;
#[cfg(test)]
mod plan_tests;
pub mod quiet;
pub mod rules;
pub mod simulate;
mod stored;
pub mod window;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::ids::ProviderId;

pub use attributes::{Costs, RoutingAttributes};
pub use country::Country;
pub use coverage::Warning;
pub use plan::{plan, Facts, Plan, RuleSet, StoredRule};
pub use rules::{Category, Fallback, RoutingRule, Strategy};

/// What routing knows and decided of one message, stored with it: the
/// sender's category and tags, and the plan made when it was accepted
/// (retries and restarts follow the same plan).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRouting {
    #[serde(default, skip_serializing_if = "Category::is_default")]
    pub category: Category,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// One provider connection a message may be routed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCandidate {
    pub provider_id: ProviderId,
    /// The connection's name, for explanations.
    pub name: Arc<str>,
    /// The provider type as stored (`MAILGUN`, `SANDBOX`...).
    pub provider_type: String,
    pub channel: Channel,
    /// Priority (lower goes first), weight, costs, countries, rate limit.
    pub attributes: RoutingAttributes,
    /// Creation order, breaking priority ties (older first).
    pub created_order: u64,
}

/// What the router knows live about a provider connection. Build it with
/// `..Default::default()`: more fields may join.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderLiveness {
    /// The connection's circuit breaker is open: calls would be refused now.
    pub circuit_open: bool,
    /// The connection's rate limiter is exhausted beyond a short wait.
    pub rate_limited: bool,
    /// Delivered / sent over the recent window, from receipts.
    pub delivery_ratio: Option<f64>,
    /// Receipts the ratio is computed over.
    pub delivery_samples: u32,
    /// Latency EWMA of provider calls, in microseconds.
    pub latency_us: Option<f64>,
}

impl ProviderLiveness {
    /// A connection that can take calls.
    pub fn healthy() -> ProviderLiveness {
        ProviderLiveness::default()
    }

    /// A connection whose circuit is open.
    pub fn open_circuit() -> ProviderLiveness {
        ProviderLiveness {
            circuit_open: true,
            ..ProviderLiveness::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use uuid::Uuid;

    use super::*;
    use crate::ids::MessageId;

    fn id(n: u128) -> ProviderId {
        ProviderId(Uuid::from_u128(n))
    }

    fn candidate(n: u128, channel: Channel, priority: i32, created_order: u64) -> RouteCandidate {
        RouteCandidate {
            provider_id: id(n),
            name: Arc::from(format!("p{n}")),
            provider_type: "SANDBOX".into(),
            channel,
            attributes: RoutingAttributes {
                priority,
                ..RoutingAttributes::default()
            },
            created_order,
        }
    }

    /// The chain with no rules (the channel's default), circuits of `open` open.
    fn plan_with_open(
        candidates: &[RouteCandidate],
        channel: Channel,
        open: &[u128],
    ) -> Vec<ProviderId> {
        let open: HashSet<ProviderId> = open.iter().map(|n| id(*n)).collect();
        let liveness = |p: ProviderId| ProviderLiveness {
            circuit_open: open.contains(&p),
            ..ProviderLiveness::default()
        };
        let facts = Facts {
            id: MessageId::new(),
            channel,
            to: "+2348031234567",
            country: None,
            category: Category::Transactional,
            tags: None,
        };
        let candidates: Vec<RouteCandidate> = candidates
            .iter()
            .filter(|c| c.channel == channel)
            .cloned()
            .collect();
        plan(
            &RuleSet::default(),
            &candidates,
            &liveness,
            &facts,
            chrono::Utc::now(),
        )
        .chain()
        .collect()
    }

    fn mixed() -> Vec<RouteCandidate> {
        vec![
            candidate(1, Channel::Sms, 20, 1),
            candidate(2, Channel::Email, 0, 2),
            candidate(3, Channel::Sms, 10, 3),
            candidate(4, Channel::Sms, 10, 0),
            candidate(5, Channel::Whatsapp, 0, 4),
            candidate(6, Channel::Sms, -5, 9),
        ]
    }

    #[test]
    fn orders_the_channels_candidates_by_priority_then_creation() {
        assert_eq!(
            plan_with_open(&mixed(), Channel::Sms, &[]),
            [id(6), id(4), id(3), id(1)]
        );
        assert_eq!(plan_with_open(&mixed(), Channel::Email, &[]), [id(2)]);
        assert_eq!(plan_with_open(&mixed(), Channel::Whatsapp, &[]), [id(5)]);
    }

    #[test]
    fn no_candidate_for_the_channel_gives_an_empty_chain() {
        let only_sms = vec![candidate(1, Channel::Sms, 0, 0)];
        assert!(plan_with_open(&only_sms, Channel::Email, &[]).is_empty());
        assert!(plan_with_open(&[], Channel::Sms, &[]).is_empty());
    }

    #[test]
    fn open_circuits_move_to_the_end_keeping_their_order() {
        assert_eq!(
            plan_with_open(&mixed(), Channel::Sms, &[6, 3]),
            [id(4), id(1), id(6), id(3)]
        );
    }

    #[test]
    fn all_circuits_open_still_gives_the_full_chain() {
        assert_eq!(
            plan_with_open(&mixed(), Channel::Sms, &[1, 3, 4, 6]),
            [id(6), id(4), id(3), id(1)]
        );
    }

    #[test]
    fn plan_does_not_depend_on_input_order() {
        let mut reversed = mixed();
        reversed.reverse();
        assert_eq!(
            plan_with_open(&reversed, Channel::Sms, &[4]),
            plan_with_open(&mixed(), Channel::Sms, &[4])
        );
    }
}

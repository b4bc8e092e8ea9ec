//! Routing policy: which provider connections a message tries, in order.
//!
//! A policy is a pure function over a snapshot (the organization's candidate
//! connections and a live view of each one's health), so any number of
//! callers can evaluate it at once and the policy can be swapped without
//! touching the actors. The answer is the failover chain: the message tries
//! the first provider, then the next on failover, and so on.
//!
//! [`OrderedFailover`] is the policy of the send pipeline: the organization's
//! active connections for the channel by priority. [`plan::plan`] is the
//! rule-driven policy (issue 12): an organization's [`rules`] matched on
//! channel, country, prefix, domain, category, tags and local time
//! ([`window`]), its providers ordered by cost, delivery ratio, weight or
//! priority using each connection's [`attributes`], every place explained.

pub mod attributes;
pub mod country;
pub mod plan;
#[cfg(test)]
mod plan_tests;
pub mod rules;
pub mod window;

use std::sync::Arc;

use crate::channel::Channel;
use crate::ids::ProviderId;
use crate::message::OutboundMessage;

pub use attributes::{Costs, RoutingAttributes};
pub use country::Country;
pub use plan::{plan, Facts, Plan, RuleSet, StoredRule};
pub use rules::{Category, Fallback, RoutingRule, Strategy};

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

/// A routing policy: a pure function from a snapshot to a failover chain.
pub trait RoutePolicy: Send + Sync {
    /// The providers `message` should try, in order. `candidates` are the
    /// organization's active connections (any channel); `liveness` reports
    /// each one's live state. An empty chain means no provider can take the
    /// message.
    fn plan(
        &self,
        candidates: &[RouteCandidate],
        message: &OutboundMessage,
        liveness: &dyn Fn(ProviderId) -> ProviderLiveness,
    ) -> Vec<ProviderId>;
}

/// The message's channel's candidates by `(priority, created_order)`, with
/// connections whose circuit is open moved to the end of the chain, in the
/// same order. They are not dropped: when every circuit is open the message
/// still has a chain and waits for one to recover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderedFailover;

impl RoutePolicy for OrderedFailover {
    fn plan(
        &self,
        candidates: &[RouteCandidate],
        message: &OutboundMessage,
        liveness: &dyn Fn(ProviderId) -> ProviderLiveness,
    ) -> Vec<ProviderId> {
        let mut chain: Vec<(bool, i32, u64, ProviderId)> = candidates
            .iter()
            .filter(|c| c.channel == message.channel)
            .map(|c| {
                let open = liveness(c.provider_id).circuit_open;
                (open, c.attributes.priority, c.created_order, c.provider_id)
            })
            .collect();
        // The id last keeps the order total, so equal keys never depend on input order.
        chain.sort_unstable();
        chain.into_iter().map(|(.., id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use uuid::Uuid;

    use super::*;
    use crate::ids::{MessageId, OrganizationId};

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

    fn message(channel: Channel) -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new(),
            organization_id: OrganizationId::new(),
            channel,
            to: "+2348031234567".into(),
            from: None,
            subject: None,
            text: "hi".into(),
            html: None,
            metadata: None,
            extras: None,
        }
    }

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
        OrderedFailover.plan(candidates, &message(channel), &liveness)
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

    #[test]
    fn policy_is_usable_as_a_shared_trait_object() {
        let policy: std::sync::Arc<dyn RoutePolicy> = std::sync::Arc::new(OrderedFailover);
        let chain = policy.plan(&mixed(), &message(Channel::Sms), &|_| {
            ProviderLiveness::healthy()
        });
        assert_eq!(chain.len(), 4);
        assert!(ProviderLiveness::open_circuit().circuit_open);
    }
}

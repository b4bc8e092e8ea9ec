//! The routing snapshot, and the handle that has an organization's routes
//! loaded before they are read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use msgengine_domain::message::OutboundMessage;
use msgengine_domain::routing::quiet::QuietHours;
use msgengine_domain::routing::{
    plan, Country, Facts, Plan, ProviderLiveness, RouteCandidate, RuleSet,
};
use msgengine_domain::{Channel, OrganizationId, ProviderId};
use msgengine_storage::StoreError;

use super::{LoadRoutes, RouterActor};
use crate::provider::ProviderHandle;

/// The routing snapshot.
#[derive(Default)]
pub struct RouteTable {
    pub(super) routes: DashMap<(OrganizationId, Channel), Arc<[RouteCandidate]>>,
    pub(super) loaded: DashMap<OrganizationId, ()>,
    pub(super) providers: DashMap<ProviderId, ProviderHandle>,
    /// Each loaded organization's routing rules, in evaluation order.
    pub(super) rules: DashMap<OrganizationId, Arc<RuleSet>>,
    /// Each loaded organization's quiet hours (absent: none).
    pub(super) quiet: DashMap<OrganizationId, Arc<QuietHours>>,
}

impl RouteTable {
    /// Whether the organization's providers are loaded.
    pub fn is_loaded(&self, org: OrganizationId) -> bool {
        self.loaded.contains_key(&org)
    }

    /// The organization's candidates for a channel (empty when none is active).
    pub fn candidates(&self, org: OrganizationId, channel: Channel) -> Arc<[RouteCandidate]> {
        self.routes
            .get(&(org, channel))
            .map(|r| r.clone())
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// The organization's routing rules (none when it has none or is not loaded).
    pub fn rules(&self, org: OrganizationId) -> Arc<RuleSet> {
        self.rules.get(&org).map(|r| r.clone()).unwrap_or_default()
    }

    /// The organization's quiet hours, if it has set them.
    pub fn quiet_hours(&self, org: OrganizationId) -> Option<Arc<QuietHours>> {
        self.quiet.get(&org).map(|q| q.clone())
    }

    /// What is known live of a provider connection.
    pub fn liveness(&self, id: ProviderId) -> ProviderLiveness {
        self.providers
            .get(&id)
            .map(|h| h.live.liveness(Instant::now()))
            .unwrap_or_default()
    }

    /// Plans a message over the snapshot: the organization's rules, the
    /// channel's candidates and their live state, at `at` (the time the
    /// message is due: time windows match on it).
    pub fn plan(&self, message: &OutboundMessage, at: DateTime<Utc>) -> Plan {
        let org = message.organization_id;
        let rules = self.rules(org);
        let candidates = self.candidates(org, message.channel);
        let routing = message.routing.as_deref();
        // Parsing the number costs microseconds: only when something asks for a country.
        let country = if message.channel != Channel::Email
            && (rules.has_rules_for(message.channel)
                || candidates
                    .iter()
                    .any(|c| c.attributes.is_country_specific()))
        {
            Country::of_phone(&message.to)
        } else {
            None
        };
        let facts = Facts {
            id: message.id,
            channel: message.channel,
            to: &message.to,
            country,
            category: routing.map(|r| r.category).unwrap_or_default(),
            tags: routing.map(|r| &r.tags),
        };
        plan(&rules, &candidates, &|id| self.liveness(id), &facts, at)
    }

    /// A message's failover chain: its stored plan's providers that still
    /// run (open circuits moved last when its fallback allows), or a fresh
    /// plan when it has none or none of them runs any more.
    pub fn chain(&self, message: &OutboundMessage, now: DateTime<Utc>) -> Vec<ProviderId> {
        if let Some(stored) = message.routing.as_deref().and_then(|r| r.plan.as_ref()) {
            let fallback = &stored.fallback;
            // One lookup per provider, and only the two flags (no delivery window).
            let mut chain: Vec<(bool, ProviderId)> = stored
                .chain()
                .filter_map(|id| {
                    let h = self.providers.get(&id)?;
                    if h.organization_id != message.organization_id {
                        return None;
                    }
                    let last = (fallback.on_circuit_open && h.live.circuit_open())
                        || (fallback.on_rate_limited && h.live.rate_limited());
                    Some((last, id))
                })
                .collect();
            if !chain.is_empty() {
                chain.sort_by_key(|(last, _)| *last);
                return chain.into_iter().map(|(_, id)| id).collect();
            }
        }
        self.plan(message, now).chain().collect()
    }

    /// The running actor of a provider.
    pub fn provider(&self, id: ProviderId) -> Option<ProviderHandle> {
        self.providers.get(&id).map(|h| h.clone())
    }

    /// Every running provider actor (for shutdown).
    pub fn all_providers(&self) -> Vec<ProviderHandle> {
        self.providers.iter().map(|e| e.value().clone()).collect()
    }

    /// The running provider actors of one organization.
    pub fn providers_of(&self, org: OrganizationId) -> Vec<ProviderHandle> {
        self.providers
            .iter()
            .filter(|e| e.value().organization_id == org)
            .map(|e| e.value().clone())
            .collect()
    }
}

/// The route table and the way to have an organization's routes loaded: the
/// handle accept and dispatch read routes through.
#[derive(Default)]
pub struct Routes {
    table: Arc<RouteTable>,
    router: OnceLock<Addr<RouterActor>>,
    /// Test hook: route loads fail while set.
    fail_loads: AtomicBool,
}

impl Routes {
    /// The snapshot (shared with the router, which publishes into it).
    pub fn table(&self) -> &Arc<RouteTable> {
        &self.table
    }

    /// Connects the router that loads routes (once, at start).
    pub fn set_router(&self, router: Addr<RouterActor>) {
        let _ = self.router.set(router);
    }

    /// Test hook: make every route load fail (or work again).
    pub fn fail_loads(&self, fail: bool) {
        self.fail_loads.store(fail, Ordering::Relaxed);
    }

    /// Makes sure an organization's routes are loaded.
    pub async fn ensure(&self, org: OrganizationId) -> Result<(), StoreError> {
        if self.fail_loads.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable(
                "route load failure injected (test hook)".into(),
            ));
        }
        if self.table.is_loaded(org) {
            return Ok(());
        }
        let router = self
            .router
            .get()
            .ok_or_else(|| StoreError::Unavailable("router not started".into()))?;
        router
            .send(LoadRoutes {
                organization_id: org,
                force: false,
            })
            .await
            .map_err(|_| StoreError::Unavailable("router stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unloaded_organization_has_no_candidates_and_no_providers() {
        let table = RouteTable::default();
        let org = OrganizationId::new();
        assert!(!table.is_loaded(org));
        assert!(table.candidates(org, Channel::Sms).is_empty());
        assert!(table.providers_of(org).is_empty());
        assert!(table.provider(ProviderId::new()).is_none());
    }

    #[tokio::test]
    async fn a_route_load_fails_without_a_router_or_while_failure_is_injected() {
        let routes = Routes::default();
        let org = OrganizationId::new();
        assert!(matches!(
            routes.ensure(org).await,
            Err(StoreError::Unavailable(m)) if m.contains("router not started")
        ));
        routes.table().loaded.insert(org, ());
        assert!(routes.ensure(org).await.is_ok(), "loaded: no router needed");
        routes.fail_loads(true);
        assert!(matches!(
            routes.ensure(org).await,
            Err(StoreError::Unavailable(m)) if m.contains("injected")
        ));
        routes.fail_loads(false);
        assert!(routes.ensure(org).await.is_ok());
    }
}

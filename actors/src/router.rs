//! The router: which providers a message may go to, in which order.
//!
//! The [`RouteTable`] is a shared snapshot (per organization and channel, the
//! active providers as route candidates) that any number of callers evaluate
//! concurrently with the pure [`RoutePolicy`]; it is never a single-threaded
//! bottleneck. The [`RouterActor`] owns changes: it loads an organization's
//! providers from the database, starts, reconfigures and stops their
//! [`ProviderActor`]s, and publishes the new snapshot. Reloads of one
//! organization are serialised by the actor's mailbox. A reload also reads
//! the organization's active flag into [`crate::orgs::ActiveOrgs`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use msgengine_domain::message::OutboundMessage;
use msgengine_domain::provider::{
    AnyProviderSpec, EmailProviderSpec, ProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
};
use msgengine_domain::routing::{ProviderLiveness, RouteCandidate, RoutePolicy};
use msgengine_domain::{Channel, OrganizationId, ProviderId};
use msgengine_storage::repo::providers::{self as repo, ProviderRecord};
use msgengine_storage::StoreError;

use crate::provider::{ProviderActor, Reconfigure};
use crate::runtime::Shared;

/// A running provider connection as the dispatcher sees it.
#[derive(Clone)]
pub struct ProviderHandle {
    pub addr: Addr<ProviderActor>,
    pub organization_id: OrganizationId,
    /// Set by the provider actor while its circuit is open.
    pub circuit_open: Arc<AtomicBool>,
}

/// The routing snapshot.
#[derive(Default)]
pub struct RouteTable {
    routes: DashMap<(OrganizationId, Channel), Arc<[RouteCandidate]>>,
    loaded: DashMap<OrganizationId, ()>,
    providers: DashMap<ProviderId, ProviderHandle>,
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

    /// The failover chain for a message, from the policy over the snapshot.
    pub fn plan(&self, policy: &dyn RoutePolicy, message: &OutboundMessage) -> Vec<ProviderId> {
        let candidates = self.candidates(message.organization_id, message.channel);
        let liveness = |id: ProviderId| ProviderLiveness {
            circuit_open: self
                .providers
                .get(&id)
                .is_some_and(|h| h.circuit_open.load(Ordering::Relaxed)),
        };
        policy.plan(&candidates, message, &liveness)
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

/// Owns reloads of the route table and the provider actors' lifecycle.
pub struct RouterActor {
    shared: Arc<Shared>,
}

impl RouterActor {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Supervised for RouterActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The table lives in `shared` and stays valid; the next reload refreshes it.
        tracing::warn!("router actor restarting");
        crate::metrics::record_restart("router");
    }
}

/// Liveness probe: answered as soon as the router runs (readiness checks).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;

impl Handler<Ping> for RouterActor {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

/// Load (or reload) an organization's providers and routes.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct LoadRoutes {
    pub organization_id: OrganizationId,
    /// Reload even if already loaded (after a provider change).
    pub force: bool,
}

impl Handler<LoadRoutes> for RouterActor {
    type Result = AtomicResponse<Self, Result<(), StoreError>>;

    fn handle(&mut self, msg: LoadRoutes, _: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        AtomicResponse::new(Box::pin(
            async move {
                if !msg.force && shared.routes.is_loaded(msg.organization_id) {
                    return Ok(());
                }
                reload(&shared, msg.organization_id).await
            }
            .into_actor(self),
        ))
    }
}

async fn reload(shared: &Arc<Shared>, org: OrganizationId) -> Result<(), StoreError> {
    let client = shared.pool.get().await?;
    match msgengine_storage::repo::organizations::get(&client, org).await {
        Ok(found) => shared.orgs.set(org, found.is_active),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let email = repo::list::<EmailProviderSpec>(&client, &shared.ring, org).await?;
    let sms = repo::list::<SmsProviderSpec>(&client, &shared.ring, org).await?;
    let whatsapp = repo::list::<WhatsappProviderSpec>(&client, &shared.ring, org).await?;
    drop(client);
    let mut live: Vec<ProviderId> = Vec::new();
    publish(shared, org, &email, &mut live);
    publish(shared, org, &sms, &mut live);
    publish(shared, org, &whatsapp, &mut live);
    // Stop actors of providers that were deleted or deactivated.
    let stale: Vec<ProviderId> = shared
        .routes
        .providers
        .iter()
        .filter(|e| e.value().organization_id == org && !live.contains(e.key()))
        .map(|e| *e.key())
        .collect();
    for id in stale {
        if let Some((_, handle)) = shared.routes.providers.remove(&id) {
            handle.addr.do_send(crate::provider::Retire);
            // Its series leave /metrics now, not when the actor is finally dropped.
            crate::metrics::connections::forget(id.0);
        }
    }
    shared.routes.loaded.insert(org, ());
    Ok(())
}

fn publish<S: ProviderSpec>(
    shared: &Arc<Shared>,
    org: OrganizationId,
    records: &[ProviderRecord<S>],
    live: &mut Vec<ProviderId>,
) {
    let mut candidates = Vec::new();
    for (order, record) in records.iter().filter(|r| r.spec.is_active()).enumerate() {
        let spec: AnyProviderSpec = record.spec.clone().into_any();
        match shared.routes.providers.get(&record.id).map(|h| h.clone()) {
            Some(handle) => handle.addr.do_send(Reconfigure { spec }),
            None => match crate::provider::start(shared.clone(), org, record.id, spec) {
                Ok(handle) => {
                    shared.routes.providers.insert(record.id, handle);
                }
                Err(e) => {
                    tracing::warn!(provider = %record.id, error = %e, "provider cannot send yet; left out of routes");
                    continue;
                }
            },
        }
        live.push(record.id);
        candidates.push(RouteCandidate {
            provider_id: record.id,
            provider_type: record.spec.provider_type().to_owned(),
            channel: S::CHANNEL,
            priority: 100,
            created_order: order as u64,
        });
    }
    shared
        .routes
        .routes
        .insert((org, S::CHANNEL), Arc::from(candidates));
}

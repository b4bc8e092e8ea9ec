//! The router: which providers a message may go to, in which order.
//!
//! The [`RouteTable`] is a shared snapshot (per organization and channel, the
//! active providers as route candidates; per organization, its routing
//! rules) that any number of callers evaluate concurrently with the pure
//! `routing::plan`; it is never a single-threaded bottleneck. The [`RouterActor`] owns changes: it loads an organization's
//! providers from the database, starts, reconfigures and stops their
//! [`ProviderActor`]s, and publishes the new snapshot. Reloads of one
//! organization are serialised by the actor's mailbox. A reload also reads
//! the organization's active flag into [`crate::state::orgs::ActiveOrgs`].

mod table;

pub use table::{RouteTable, Routes};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use msgengine_domain::provider::{
    AnyProviderSpec, EmailProviderSpec, ProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
};
use msgengine_domain::routing::{RouteCandidate, RuleSet, StoredRule};
use msgengine_domain::{OrganizationId, ProviderId};
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::providers::{self as repo, ProviderRecord};
use msgengine_storage::StoreError;

use crate::provider::{ProviderEnv, Reconfigure};
use crate::state::orgs::ActiveOrgs;

/// What the router needs: the store to load providers from, the table to
/// publish into, the organization flags it refreshes, and what it gives the
/// provider actors it starts (spread over `arbiters`).
pub struct RouterEnv {
    pub pool: Pool,
    pub ring: Arc<KeyRing>,
    pub table: Arc<RouteTable>,
    pub orgs: ActiveOrgs,
    pub providers: ProviderEnv,
    pub arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
}

impl RouterEnv {
    pub fn new(
        pool: Pool,
        ring: Arc<KeyRing>,
        table: Arc<RouteTable>,
        orgs: ActiveOrgs,
        providers: ProviderEnv,
        arbiters: Vec<ArbiterHandle>,
    ) -> Self {
        Self {
            pool,
            ring,
            table,
            orgs,
            providers,
            arbiters,
            next: AtomicUsize::new(0),
        }
    }

    /// The next arbiter, round robin, so provider actors spread over threads.
    fn next_arbiter(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len().max(1);
        self.arbiters
            .get(i)
            .cloned()
            .unwrap_or_else(actix::Arbiter::current)
    }
}

/// Owns reloads of the route table and the provider actors' lifecycle.
pub struct RouterActor {
    env: Arc<RouterEnv>,
}

impl RouterActor {
    pub fn new(env: Arc<RouterEnv>) -> Self {
        Self { env }
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
        // The table lives outside the actor and stays valid; the next reload refreshes it.
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

/// Load (or reload) an organization's providers, routes and routing rules.
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
        let env = self.env.clone();
        AtomicResponse::new(Box::pin(
            async move {
                if !msg.force && env.table.is_loaded(msg.organization_id) {
                    return Ok(());
                }
                reload(&env, msg.organization_id).await
            }
            .into_actor(self),
        ))
    }
}

async fn reload(env: &RouterEnv, org: OrganizationId) -> Result<(), StoreError> {
    let client = env.pool.get().await?;
    match msgengine_storage::repo::organizations::get(&client, org).await {
        Ok(found) => env.orgs.set(org, found.is_active),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let email = repo::list::<EmailProviderSpec>(&client, &env.ring, org).await?;
    let sms = repo::list::<SmsProviderSpec>(&client, &env.ring, org).await?;
    let whatsapp = repo::list::<WhatsappProviderSpec>(&client, &env.ring, org).await?;
    let rules = msgengine_storage::repo::routing_rules::list(&client, org).await?;
    let quiet = msgengine_storage::repo::quiet_hours::get(&client, org).await?;
    drop(client);
    match quiet {
        Some(q) => {
            env.table.quiet.insert(org, Arc::new(q.quiet));
        }
        None => {
            env.table.quiet.remove(&org);
        }
    }
    let rules = RuleSet::new(
        rules
            .into_iter()
            .map(|r| StoredRule {
                id: r.id,
                rule: r.rule,
            })
            .collect(),
    );
    env.table.rules.insert(org, Arc::new(rules));
    let mut live: Vec<ProviderId> = Vec::new();
    publish(env, org, &email, &mut live);
    publish(env, org, &sms, &mut live);
    publish(env, org, &whatsapp, &mut live);
    // Stop actors of providers that were deleted or deactivated.
    let stale: Vec<ProviderId> = env
        .table
        .providers
        .iter()
        .filter(|e| e.value().organization_id == org && !live.contains(e.key()))
        .map(|e| *e.key())
        .collect();
    for id in stale {
        if let Some((_, handle)) = env.table.providers.remove(&id) {
            handle.addr.do_send(crate::provider::Retire);
            // Its series leave /metrics now, not when the actor is finally dropped.
            crate::metrics::connections::forget(id.0);
        }
    }
    env.table.loaded.insert(org, ());
    Ok(())
}

fn publish<S: ProviderSpec>(
    env: &RouterEnv,
    org: OrganizationId,
    records: &[ProviderRecord<S>],
    live: &mut Vec<ProviderId>,
) {
    let mut candidates = Vec::new();
    for (order, record) in records.iter().filter(|r| r.spec.is_active()).enumerate() {
        let spec: AnyProviderSpec = record.spec.clone().into_any();
        match env.table.providers.get(&record.id).map(|h| h.clone()) {
            Some(handle) => handle.addr.do_send(Reconfigure { spec }),
            None => match crate::provider::start(
                env.providers.clone(),
                &env.next_arbiter(),
                org,
                record.id,
                spec,
            ) {
                Ok(handle) => {
                    env.table.providers.insert(record.id, handle);
                }
                Err(e) => {
                    tracing::warn!(provider = %record.id, error = %e, "provider cannot send yet; left out of routes");
                    continue;
                }
            },
        }
        live.push(record.id);
        candidates.push(candidate(record, order));
    }
    env.table
        .routes
        .insert((org, S::CHANNEL), Arc::from(candidates));
}

/// A stored connection as a route candidate; `order` is its place among
/// the channel's connections, oldest first.
pub fn candidate<S: ProviderSpec>(record: &ProviderRecord<S>, order: usize) -> RouteCandidate {
    RouteCandidate {
        provider_id: record.id,
        name: Arc::from(record.spec.name()),
        provider_type: record.spec.provider_type().to_owned(),
        channel: S::CHANNEL,
        attributes: record.spec.routing().clone(),
        created_order: order as u64,
    }
}

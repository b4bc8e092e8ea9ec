//! The engine handle the application layer talks to.
//!
//! [`Engine::start`] runs the actor system on its own thread (an actix
//! `System` with arbiters for the provider actors), so it works the same
//! under the server and inside tests. It wires the parts together with
//! narrow handles (each actor gets what it uses, not the engine) and exposes
//! the handles the accept use case drives (`crate::app::accept::run`): the
//! tenants' admission, the routes, the suppressions and the group committer;
//! after the commit the leased rows' messages are dispatched from memory
//! (see [`crate::scheduler::dispatch`]).

mod start;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use msgengine_domain::OrganizationId;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::{self};

pub use msgengine_domain::lifecycle::suppressed_reason;

use crate::config::EngineConfig;
use crate::dbrt::DbRuntime;
use crate::metrics::TenantSeries;
use crate::router::{LoadRoutes, RouterActor, Routes};
use crate::scheduler::dispatch::Dispatcher;
use crate::state::suppress::Suppressions;
use crate::tenant::{Tenant, TenantEnv, Tenants};
use crate::writers::commit::GroupCommitter;
use crate::writers::outcome::OutcomeWriter;

/// The running engine.
#[derive(Clone)]
pub struct Engine {
    config: Arc<EngineConfig>,
    pool: Pool,
    /// The client every provider call goes through, enforcing
    /// [`EngineConfig::provider_addresses`].
    http: msgengine_providers::ProviderClient,
    routes: Arc<Routes>,
    dispatch: Arc<Dispatcher>,
    writer: OutcomeWriter,
    /// The bounded per-organization metric series.
    tenant_metrics: Arc<TenantSeries>,
    /// Test hook: the scheduler claims nothing while set.
    claims_paused: Arc<AtomicBool>,
    committer: GroupCommitter,
    tenants: Tenants,
    tenant_env: TenantEnv,
    main: ArbiterHandle,
    router: Addr<RouterActor>,
    stop: Arc<AtomicBool>,
    system: System,
    db: Arc<DbRuntime>,
    webhooks: crate::writers::inbound::WebhookWriter,
    /// The shared writers' health, for readiness.
    writers: Vec<crate::writers::bulkhead::WriterHealth>,
}

impl Engine {
    /// This node's id (the owner of its leases).
    pub fn node_id(&self) -> uuid::Uuid {
        self.config.node_id
    }

    /// The organization's tenant actor (admission), started on first use.
    pub(crate) fn tenant(&self, org: OrganizationId) -> Tenant {
        self.tenants.get(&self.tenant_env, &self.main, org)
    }

    /// The route table and route loading.
    pub(crate) fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The store the engine reads (idempotency records, suppression lists).
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The group committer accepted messages go through.
    pub(crate) fn committer(&self) -> &GroupCommitter {
        &self.committer
    }

    /// Whether this node holds as many jobs as it may (new messages are
    /// stored unleased for the scheduler).
    pub(crate) fn node_full(&self) -> bool {
        self.dispatch.leases.len() >= self.config.max_held_jobs
    }

    /// The bounded per-organization metric series.
    pub(crate) fn tenant_metrics(&self) -> &TenantSeries {
        &self.tenant_metrics
    }

    /// Whether the actor system answers: its router handles a message.
    pub async fn is_running(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                self.router.send(crate::router::Ping)
            )
            .await,
            Ok(Ok(()))
        )
    }

    /// Each shared writer (`status`, `webhook`, `outbound`) and, while it
    /// cannot write and waits to try again, how long it has been failing.
    pub fn writer_health(&self) -> Vec<(&'static str, Option<Duration>)> {
        self.writers
            .iter()
            .map(|w| (w.writer(), w.failing_for()))
            .collect()
    }

    /// An organization's providers changed: reload its routes and actors now.
    pub async fn providers_changed(&self, org: OrganizationId) {
        if let Err(e) = self
            .router
            .send(LoadRoutes {
                organization_id: org,
                force: true,
            })
            .await
        {
            tracing::error!(organization = %org, error = %e, "route reload failed");
        }
    }

    /// Where organizations' webhook endpoints may point.
    pub fn webhook_targets(&self) -> crate::outbound::Targets {
        self.config.webhook_targets()
    }

    /// The HTTP client provider calls go through (pooled, shared).
    pub fn http(&self) -> &msgengine_providers::ProviderClient {
        &self.http
    }

    /// The suppression lists this engine checks at accept and again at dispatch.
    pub fn suppressions(&self) -> &Suppressions {
        &self.dispatch.suppressions
    }

    /// Counts final receipts (`true`: delivered) toward a connection's live
    /// delivery ratio, which `best_delivery` routing ranks by.
    pub fn record_receipts(&self, provider: msgengine_domain::ProviderId, receipts: &[bool]) {
        if receipts.is_empty() {
            return;
        }
        if let Some(handle) = self.routes().table().provider(provider) {
            let now = std::time::Instant::now();
            for delivered in receipts {
                handle.live.record_receipt(*delivered, now);
            }
        }
    }

    /// Writes a verified webhook's events (group-committed with other
    /// webhooks'), and puts the recipients its events ask to suppress on the
    /// organization's list, in the database and in the list checked at accept.
    pub async fn ingest_webhook(
        &self,
        org: OrganizationId,
        provider: msgengine_domain::ProviderId,
        events: Vec<msgengine_storage::repo::webhook_events::EventRow>,
        suppress: Vec<(String, String)>,
        wait: Duration,
    ) -> Result<
        msgengine_storage::repo::webhook_events::Ingested,
        crate::writers::inbound::IngestError,
    > {
        let done = self
            .webhooks
            .ingest(org, provider, events, suppress.clone(), wait)
            .await?;
        for (recipient, reason) in &suppress {
            self.dispatch.suppressions.add(org, recipient, reason);
        }
        Ok(done)
    }

    /// Claims a verified webhook's single-use nonce (Mailgun's signed token)
    /// with the SHA-256 of its body: `First` or `Repeat` (a provider's retry
    /// of the same body) may proceed, `Replayed` (another body under a
    /// signature already used) may not. Expired nonces are swept by the
    /// scheduler.
    pub async fn claim_webhook_nonce(
        &self,
        provider: msgengine_domain::ProviderId,
        nonce: &str,
        body_sha256: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<msgengine_storage::repo::webhook_nonces::NonceUse, msgengine_storage::StoreError>
    {
        let client = self.pool.get().await?;
        msgengine_storage::repo::webhook_nonces::claim(
            &client,
            provider.0,
            nonce,
            body_sha256,
            expires_at,
        )
        .await
    }

    /// An organization's rate limits changed: returns once this node's
    /// tenant enforces the new ones.
    pub async fn limits_changed(&self, org: OrganizationId) {
        self.tenants.reload(org).await;
    }

    /// An organization was disabled or enabled (already stored): this node
    /// stops or resumes its sends at once. Disabling hands every job of its
    /// provider actors that is not in flight back to the database.
    pub fn organization_changed(&self, org: OrganizationId, active: bool) {
        self.dispatch.orgs.set(org, active);
        if !active {
            for handle in self.routes.table().providers_of(org) {
                if handle.addr.try_send(crate::provider::HandBack).is_err() {
                    // A full mailbox: each job is checked again before its attempt.
                    tracing::warn!(organization = %org, "provider actor busy; its jobs are handed back one by one");
                }
            }
        }
    }

    /// Leases this node found lost since it started (stale outcomes
    /// dropped, jobs dropped before their attempt).
    pub fn leases_lost(&self) -> u64 {
        self.dispatch.leases.lost()
    }

    /// Test hook: stop (or resume) renewing this node's leases.
    pub fn pause_lease_renewal(&self, paused: bool) {
        self.dispatch.leases.pause_renewal(paused);
    }

    /// Test hook: this node's scheduler claims nothing while `paused` (so
    /// another node's claims can be watched alone).
    pub fn pause_claims(&self, paused: bool) {
        self.claims_paused.store(paused, Ordering::Relaxed);
    }

    /// Test hook: make every route load fail (or work again).
    pub fn fail_route_loads(&self, fail: bool) {
        self.routes.fail_loads(fail);
    }

    /// Test hook: the next send through this provider panics inside its actor.
    pub fn inject_provider_panic(&self, provider: msgengine_domain::ProviderId) -> bool {
        match self.routes.table().provider(provider) {
            Some(handle) => handle
                .addr
                .try_send(crate::provider::PanicOnNextSend)
                .is_ok(),
            None => false,
        }
    }

    /// Stops taking new work from the scheduler, lets in-flight attempts
    /// finish (up to `deadline`), writes their outcomes, gives up this node's
    /// leases and stops the actor system.
    pub async fn shutdown(&self, deadline: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let mut busy = 0usize;
            for handle in self.routes.table().all_providers() {
                busy += handle.addr.send(crate::provider::Load).await.unwrap_or(0);
            }
            if busy == 0 || tokio::time::Instant::now() >= until {
                if busy > 0 {
                    tracing::warn!(
                        busy,
                        "shutdown deadline reached with attempts still in flight"
                    );
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = until
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_secs(1));
        if !self.writer.flush(left).await {
            tracing::warn!("shutdown: some status writes were not flushed");
        }
        match self.pool.get().await {
            Ok(client) => match messages::release_leases(&client, self.config.node_id).await {
                Ok(n) => tracing::info!(released = n, "released this node's leases"),
                Err(e) => tracing::warn!(error = %e, "could not release leases"),
            },
            Err(e) => tracing::warn!(error = %e, "could not release leases"),
        }
        self.system.stop();
        self.db.stop();
    }
}

//! The engine handle the HTTP edge talks to.
//!
//! [`Engine::start`] runs the actor system on its own thread (an actix
//! `System` with arbiters for the provider actors), so it works the same
//! under the server and inside tests. Accepting a send runs the stages of
//! [`crate::app::accept`] (replay → admit → route → suppress → commit, the
//! last a group commit); after the commit the leased rows' messages are
//! dispatched from memory (see [`crate::dispatch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use msgengine_domain::routing::OrderedFailover;
use msgengine_domain::send::SendRequest;
use msgengine_domain::OrganizationId;
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::{self, NewMessageRow, INSERT_LEASE_TOKEN};
use msgengine_storage::StoreError;

pub use msgengine_domain::lifecycle::suppressed_reason;

use crate::app::accept;
use crate::commit::{CommitOutcome, CommitSettings, GroupCommitter};
use crate::dbrt::DbRuntime;
use crate::dispatch::Leased;
use crate::lease::HeldLeases;
use crate::router::{LoadRoutes, RouterActor};
use crate::runtime::{EngineConfig, Shared};
use crate::suppress::Suppressions;
use crate::tenant::Tenants;
use crate::writer::{OutcomeWriter, WriterSettings};

pub use crate::app::accept::{AcceptError, Accepted, IdempotencyKey};

/// The running engine.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    committer: GroupCommitter,
    tenants: Tenants,
    main: ArbiterHandle,
    router: Addr<RouterActor>,
    stop: Arc<AtomicBool>,
    system: System,
    db: Arc<DbRuntime>,
    webhooks: crate::inbound::WebhookWriter,
    /// The shared writers' health, for readiness.
    writers: Vec<crate::bulkhead::WriterHealth>,
}

impl Engine {
    /// Starts the actor system, the committer, the status writer and the scheduler.
    pub fn start(config: EngineConfig, pool: Pool, ring: Arc<KeyRing>) -> std::io::Result<Engine> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("msgengine-actors".into())
            .spawn(move || {
                let runner = System::new();
                let engine = match DbRuntime::start(config.db_threads) {
                    Ok(db) => Ok(runner
                        .block_on(async move { Self::build(config, pool, ring, Arc::new(db)) })),
                    Err(e) => Err(e),
                };
                let _ = tx.send(engine);
                if let Err(e) = runner.run() {
                    tracing::error!(error = %e, "actor system stopped with an error");
                }
            })?;
        rx.recv()
            .map_err(|_| std::io::Error::other("actor system failed to start"))?
    }

    fn build(config: EngineConfig, pool: Pool, ring: Arc<KeyRing>, db: Arc<DbRuntime>) -> Engine {
        let arbiters: Vec<ArbiterHandle> = (0..config.arbiters.max(1))
            .map(|_| Arbiter::new().handle())
            .collect();
        let leases = Arc::new(HeldLeases::new(config.node_id, config.lease_for));
        let writer = OutcomeWriter::start(
            db.handle(),
            pool.clone(),
            WriterSettings {
                shards: config.writer_shards,
                max_batch: 5000,
                leases: leases.clone(),
            },
        );
        let commit = CommitSettings {
            node_id: config.node_id,
            lease_for: chrono::Duration::from_std(config.lease_for).unwrap_or_default(),
            workers: config.commit_workers,
            max_rows: 2_000,
        };
        let shared = Arc::new(Shared::new(
            config,
            pool.clone(),
            ring,
            Box::new(OrderedFailover),
            writer,
            arbiters,
            leases.clone(),
        ));
        let router = Supervisor::start({
            let shared = shared.clone();
            move |_| RouterActor::new(shared)
        });
        let _ = shared.router.set(router.clone());
        let main = Arbiter::current();
        let on_commit = {
            let shared = shared.clone();
            let main = main.clone();
            Arc::new(move |rows: Vec<NewMessageRow>| {
                // The committed rows hold the messages as dispatch takes
                // them: moved, not decoded again.
                let due: Vec<Leased> = rows
                    .into_iter()
                    .filter(|r| r.leased)
                    .map(|r| Leased {
                        message: Arc::new(r.message),
                        attempts: 0,
                        token: INSERT_LEASE_TOKEN,
                    })
                    .collect();
                if due.is_empty() {
                    return;
                }
                // No earlier than the lease the committer wrote; the usable
                // margin of HeldLeases covers the commit's own duration.
                let lease_until = Utc::now()
                    + chrono::Duration::from_std(shared.config.lease_for).unwrap_or_default();
                let shared = shared.clone();
                main.spawn(async move { shared.dispatch(due, lease_until).await });
            })
        };
        let webhooks = crate::inbound::WebhookWriter::start(
            db.handle(),
            pool.clone(),
            crate::inbound::WebhookWriterSettings::default(),
        );
        let committer = GroupCommitter::start(db.handle(), pool, commit, on_commit);
        let stop = Arc::new(AtomicBool::new(false));
        actix::spawn(crate::scheduler::run(shared.clone(), stop.clone()));
        db.handle().spawn(crate::lease::run_renewal(
            leases,
            shared.pool.clone(),
            stop.clone(),
        ));
        crate::gauges::start(
            db.handle(),
            shared.pool.clone(),
            shared.config.queue_poll,
            stop.clone(),
        );
        let outbound = crate::outbound::start(
            db.handle(),
            shared.pool.clone(),
            shared.ring.clone(),
            shared.config.webhook_targets(),
            stop.clone(),
        );
        let writers = vec![shared.writer.health(), webhooks.health(), outbound];
        Engine {
            shared,
            committer,
            tenants: Tenants::default(),
            main,
            router,
            stop,
            system: System::current(),
            db,
            webhooks,
            writers,
        }
    }

    /// This node's id (the owner of its leases).
    pub fn node_id(&self) -> uuid::Uuid {
        self.shared.config.node_id
    }

    /// Accepts a send request for `org`: answers only once its messages are
    /// committed. The stages (replay → admit → route → suppress → commit)
    /// are [`crate::app::accept`]'s; this runs them with the I/O between them.
    pub async fn accept(
        &self,
        org: OrganizationId,
        request: SendRequest,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Accepted, AcceptError> {
        if let Some(key) = &idempotency {
            if let Some(replay) = self.replay(org, key).await? {
                return Ok(replay);
            }
        }
        let requested =
            accept::count_by_channel(request.messages.iter().map(|m| (m.channel, true)));
        let (rows, is_batch) = self
            .checked_rows(org, request)
            .await
            .inspect_err(|e| self.record_refusal(org, &requested, e))?;
        let node_full = self.shared.leases.len() >= self.shared.config.max_held_jobs;
        let prepared =
            accept::commit::prepare(org, rows, is_batch, idempotency.as_ref(), node_full);
        if node_full {
            crate::metrics::record_spilled(prepared.spilled);
        }
        match self
            .committer
            .commit(prepared.rows, prepared.idempotency)
            .await?
        {
            CommitOutcome::Committed => {
                self.record_accepted(org, &prepared.accepted, &prepared.rejected);
                Ok(Accepted {
                    body: prepared.body,
                    replayed: false,
                })
            }
            CommitOutcome::KeyExists => match idempotency {
                Some(key) => self
                    .replay(org, &key)
                    .await?
                    .ok_or(AcceptError::IdempotencyConflict),
                None => Err(AcceptError::IdempotencyConflict),
            },
        }
    }

    /// Stages admit, route and suppress: the request's rows (and whether it
    /// is a batch), or why it is refused.
    async fn checked_rows(
        &self,
        org: OrganizationId,
        request: SendRequest,
    ) -> Result<(Vec<NewMessageRow>, bool), AcceptError> {
        let count = u32::try_from(request.messages.len()).unwrap_or(u32::MAX);
        let tenant = self.tenants.get(&self.shared, &self.main, org);
        accept::admit::admit(tenant.admit(count).await.ok())?;
        self.shared.ensure_routes(org).await?;
        let routes = &self.shared.routes;
        accept::route::route(
            request.messages.iter().map(|m| m.channel),
            request.is_batch,
            |channel| !routes.candidates(org, channel).is_empty(),
        )?;
        let recipients = request.messages.iter().map(|m| m.to.as_str());
        let suppressed = self
            .shared
            .suppressions
            .check(&self.shared.pool, org, recipients)
            .await?;
        let is_batch = request.is_batch;
        let rows =
            accept::suppress::suppress(org, request.messages, suppressed, is_batch, Utc::now())?;
        Ok((rows, is_batch))
    }

    /// Counts a refused request under its reason (a rate-limited one also
    /// as the organization's).
    fn record_refusal(&self, org: OrganizationId, requested: &[u64; 3], error: &AcceptError) {
        if let Some(reason) = error.refused_reason() {
            record_refused(requested, reason);
        }
        if let AcceptError::RateLimited { .. } = error {
            metrics::counter!(crate::metrics::RATE_LIMITED, "scope" => "tenant").increment(1);
            self.shared.tenant_metrics.of(org).rate_limited.increment(1);
        }
    }

    /// Counts a committed request: accepted messages, and batch members
    /// refused for a suppressed recipient (stored `rejected`).
    fn record_accepted(&self, org: OrganizationId, accepted: &[u64; 3], rejected: &[u64; 3]) {
        let tenant = self.shared.tenant_metrics.of(org);
        for (i, channel) in crate::metrics::CHANNELS.into_iter().enumerate() {
            if accepted[i] > 0 {
                metrics::counter!(crate::metrics::MESSAGES_ACCEPTED, "channel" => channel.as_str())
                    .increment(accepted[i]);
                tenant.accepted[i].increment(accepted[i]);
            }
            if rejected[i] > 0 {
                crate::metrics::record_refused(channel, "suppressed", rejected[i]);
                crate::metrics::record_failed(channel, "none", "suppressed", rejected[i]);
            }
        }
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

    /// Stage replay, with the stored record of the key.
    async fn replay(
        &self,
        org: OrganizationId,
        key: &IdempotencyKey,
    ) -> Result<Option<Accepted>, AcceptError> {
        let client = self.shared.pool.get().await.map_err(StoreError::from)?;
        let stored = messages::find_idempotency(&client, org.0, &key.key).await?;
        accept::replay::replay(stored, key)
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
        self.shared.config.webhook_targets()
    }

    /// The HTTP client provider calls go through (pooled, shared).
    pub fn http(&self) -> &msgengine_providers::ProviderClient {
        &self.shared.http
    }

    /// The suppression lists this engine checks at accept and again at dispatch.
    pub fn suppressions(&self) -> &Suppressions {
        &self.shared.suppressions
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
    ) -> Result<msgengine_storage::repo::webhook_events::Ingested, crate::inbound::IngestError>
    {
        let done = self
            .webhooks
            .ingest(org, provider, events, suppress.clone(), wait)
            .await?;
        for (recipient, reason) in &suppress {
            self.shared.suppressions.add(org, recipient, reason);
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
        let client = self.shared.pool.get().await?;
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
        self.shared.orgs.set(org, active);
        if !active {
            for handle in self.shared.routes.providers_of(org) {
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
        self.shared.leases.lost()
    }

    /// Test hook: stop (or resume) renewing this node's leases.
    pub fn pause_lease_renewal(&self, paused: bool) {
        self.shared.leases.pause_renewal(paused);
    }

    /// Test hook: this node's scheduler claims nothing while `paused` (so
    /// another node's claims can be watched alone).
    pub fn pause_claims(&self, paused: bool) {
        self.shared.claims_paused.store(paused, Ordering::Relaxed);
    }

    /// Test hook: make every route load fail (or work again).
    pub fn fail_route_loads(&self, fail: bool) {
        self.shared.fail_route_loads.store(fail, Ordering::Relaxed);
    }

    /// Test hook: the next send through this provider panics inside its actor.
    pub fn inject_provider_panic(&self, provider: msgengine_domain::ProviderId) -> bool {
        match self.shared.routes.provider(provider) {
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
            for handle in self.shared.routes.all_providers() {
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
        if !self.shared.writer.flush(left).await {
            tracing::warn!("shutdown: some status writes were not flushed");
        }
        match self.shared.pool.get().await {
            Ok(client) => match messages::release_leases(&client, self.shared.config.node_id).await
            {
                Ok(n) => tracing::info!(released = n, "released this node's leases"),
                Err(e) => tracing::warn!(error = %e, "could not release leases"),
            },
            Err(e) => tracing::warn!(error = %e, "could not release leases"),
        }
        self.system.stop();
        self.db.stop();
    }
}

fn record_refused(per_channel: &[u64; 3], reason: &'static str) {
    for (i, channel) in crate::metrics::CHANNELS.into_iter().enumerate() {
        crate::metrics::record_refused(channel, reason, per_channel[i]);
    }
}

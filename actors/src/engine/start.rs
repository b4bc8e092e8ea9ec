//! Starting the engine: the actor system's thread, and the wiring that gives
//! each part its narrow handles.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::{NewMessageRow, INSERT_LEASE_TOKEN};

use super::Engine;
use crate::config::EngineConfig;
use crate::dbrt::DbRuntime;
use crate::handles::Outcomes;
use crate::metrics::TenantSeries;
use crate::provider::ProviderEnv;
use crate::router::{RouterActor, RouterEnv, Routes};
use crate::scheduler::dispatch::{Dispatcher, Leased};
use crate::state::lease::HeldLeases;
use crate::state::orgs::ActiveOrgs;
use crate::state::suppress::Suppressions;
use crate::tenant::{TenantEnv, Tenants};
use crate::writers::commit::{CommitSettings, GroupCommitter, OnCommit};
use crate::writers::outcome::{OutcomeWriter, WriterSettings};

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
        let config = Arc::new(config);
        let leases = Arc::new(HeldLeases::new(config.node_id, config.lease_for));
        let writer = start_outcome_writer(&config, &db, &pool, &leases);
        let http = msgengine_providers::ProviderClient::new(
            config.provider_timeout,
            config.provider_addresses(),
        );
        let routes = Arc::new(Routes::default());
        let dispatch = new_dispatcher(&pool, routes.clone(), leases, &writer);
        let router = start_router(&config, &pool, ring.clone(), &http, &dispatch);
        routes.set_router(router.clone());
        let main = Arbiter::current();
        let committer = GroupCommitter::start(
            db.handle(),
            pool.clone(),
            commit_settings(&config),
            on_commit(&config, &dispatch, &main),
        );
        let webhooks = crate::writers::inbound::WebhookWriter::start(
            db.handle(),
            pool.clone(),
            crate::writers::inbound::WebhookWriterSettings::default(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let claims_paused = Arc::new(AtomicBool::new(false));
        let outbound =
            start_background(&config, &pool, &ring, &db, &dispatch, &claims_paused, &stop);
        let writers = vec![writer.health(), webhooks.health(), outbound];
        Engine {
            tenant_metrics: Arc::new(TenantSeries::new(config.tenant_label_limit)),
            tenant_env: TenantEnv {
                pool: pool.clone(),
                default_rate: config.default_tenant_rate,
                default_burst: config.default_tenant_burst,
            },
            config,
            pool,
            http,
            routes,
            dispatch,
            writer,
            claims_paused,
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
}

/// The status writer, on the database runtime.
fn start_outcome_writer(
    config: &EngineConfig,
    db: &DbRuntime,
    pool: &Pool,
    leases: &Arc<HeldLeases>,
) -> OutcomeWriter {
    let settings = WriterSettings {
        shards: config.writer_shards,
        max_batch: 5000,
        linger: config.writer_linger,
        leases: leases.clone(),
    };
    OutcomeWriter::start(db.handle(), pool.clone(), settings)
}

/// Dispatch, with empty organization flags and suppression lists (filled
/// as organizations are seen) and the ordered-failover policy.
fn new_dispatcher(
    pool: &Pool,
    routes: Arc<Routes>,
    leases: Arc<HeldLeases>,
    writer: &OutcomeWriter,
) -> Arc<Dispatcher> {
    Arc::new(Dispatcher {
        pool: pool.clone(),
        routes,
        leases,
        orgs: ActiveOrgs::default(),
        suppressions: Suppressions::default(),
        outcomes: Outcomes::new(writer.clone()),
    })
}

/// The group commit's settings, from the engine's.
fn commit_settings(config: &EngineConfig) -> CommitSettings {
    CommitSettings {
        node_id: config.node_id,
        lease_for: chrono::Duration::from_std(config.lease_for).unwrap_or_default(),
        workers: config.commit_workers,
        max_rows: 2_000,
    }
}

/// Starts the router (supervised); the provider actors it starts get a
/// [`ProviderEnv`] whose reroute handle is dispatch.
fn start_router(
    config: &Arc<EngineConfig>,
    pool: &Pool,
    ring: Arc<KeyRing>,
    http: &msgengine_providers::ProviderClient,
    dispatch: &Arc<Dispatcher>,
) -> Addr<RouterActor> {
    let arbiters: Vec<ArbiterHandle> = (0..config.arbiters.max(1))
        .map(|_| Arbiter::new().handle())
        .collect();
    let providers = ProviderEnv {
        settings: config.clone(),
        http: http.clone(),
        outcomes: dispatch.outcomes.clone(),
        leases: dispatch.leases.clone(),
        orgs: dispatch.orgs.clone(),
        reroute: dispatch.clone(),
    };
    let env = Arc::new(RouterEnv::new(
        pool.clone(),
        ring,
        dispatch.routes.table().clone(),
        dispatch.orgs.clone(),
        providers,
        arbiters,
    ));
    Supervisor::start(move |_| RouterActor::new(env))
}

/// After a group commit: the leased rows' messages go to dispatch, moved
/// (not decoded again), on the engine's main arbiter.
fn on_commit(
    config: &Arc<EngineConfig>,
    dispatch: &Arc<Dispatcher>,
    main: &ArbiterHandle,
) -> OnCommit {
    let lease_for = config.lease_for;
    let dispatch = dispatch.clone();
    let main = main.clone();
    Arc::new(move |rows: Vec<NewMessageRow>| {
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
        let lease_until = Utc::now() + chrono::Duration::from_std(lease_for).unwrap_or_default();
        let dispatch = dispatch.clone();
        main.spawn(async move { dispatch.dispatch(due, lease_until).await });
    })
}

/// Starts the scheduler, lease renewal, the gauges and the outbound webhook
/// worker; returns the outbound worker's health.
fn start_background(
    config: &Arc<EngineConfig>,
    pool: &Pool,
    ring: &Arc<KeyRing>,
    db: &DbRuntime,
    dispatch: &Arc<Dispatcher>,
    claims_paused: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
) -> crate::writers::bulkhead::WriterHealth {
    let scheduler = crate::scheduler::Scheduler {
        config: config.clone(),
        pool: pool.clone(),
        dispatch: dispatch.clone(),
        paused: claims_paused.clone(),
    };
    actix::spawn(crate::scheduler::run(scheduler, stop.clone()));
    db.handle().spawn(crate::state::lease::run_renewal(
        dispatch.leases.clone(),
        pool.clone(),
        stop.clone(),
    ));
    crate::gauges::start(db.handle(), pool.clone(), config.queue_poll, stop.clone());
    crate::outbound::start(
        db.handle(),
        pool.clone(),
        ring.clone(),
        config.webhook_targets(),
        stop.clone(),
    )
}

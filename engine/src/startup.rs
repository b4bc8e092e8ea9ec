//! Builds and runs the server: database, migrations, state, HTTP listeners.
//! `Application::build` binds (port 0 picks a free port, as tests do) and
//! exposes the port; `run_until_stopped` serves until SIGINT/SIGTERM (or the
//! handle's stop), then stops the private cluster if it started one. With
//! `server.webhook_listen` the provider webhook routes get a listener of their
//! own (and the main one no longer serves them); it stops with the main one.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use msgengine_actors::app::{self, AppConfig};
use msgengine_actors::{Engine, EngineConfig};
use msgengine_api::state::ScrapeToken;
use msgengine_api::{AppState, Limits};
use msgengine_storage::driver::deadpool_postgres;
use msgengine_storage::{connect_pool, migrate, PoolSettings};

use crate::bootstrap::{self, ClusterUse, Database};
use crate::settings::Settings;

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    /// The webhook listener's port and server, when it has its own.
    webhooks: Option<(u16, Server)>,
    database: Database,
    engine: Engine,
    drain: Duration,
}

impl Application {
    /// Prepares everything and binds the listener; nothing is served until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        settings.validate().map_err(anyhow::Error::msg)?;
        if settings.database.url.is_none()
            || settings.security.master_keys.is_none()
            || settings.security.admin_token.is_none()
        {
            bootstrap::ensure_data_dir(&settings.data_dir)?;
        }
        let ring = Arc::new(bootstrap::load_key_ring(&settings)?);
        let admin_token = bootstrap::load_admin_token(&settings)?;
        let database = Database::resolve(&settings, ClusterUse::Own).await?;
        let pool = connect_pool(
            database.conninfo.expose(),
            &PoolSettings {
                max_size: settings.database.pool_max_size,
                wait_timeout_ms: settings.database.pool_wait_timeout_ms,
                statement_timeout_ms: settings.database.statement_timeout_ms,
                lock_timeout_ms: settings.database.lock_timeout_ms,
            },
        )
        .await
        .context("cannot connect to the database")?;
        {
            let mut client = pool
                .get()
                .await
                .context("cannot get a database connection")?;
            migrate_without_timeouts(&mut client).await?;
        }
        tracing::info!(key_id = ring.active_key_id(), "credential key ring loaded");
        // The phone number metadata loads on first use (hundreds of
        // milliseconds): pay it now rather than in the first request.
        let _ = msgengine_domain::validate::e164("warmup", "+2348031234567");
        // Before the engine: its actors resolve their metric handles at start.
        let metrics = crate::metrics::install();
        let engine = Engine::start(engine_config(&settings), pool.clone(), ring.clone())
            .context("cannot start the actor system")?;

        let app = app::App::new(
            engine.clone(),
            pool,
            ring,
            &admin_token,
            AppConfig {
                auth_cache_ttl: Duration::from_millis(settings.security.auth_cache_ttl_ms),
                max_providers_per_org: settings.engine.max_providers_per_org,
            },
        );
        let state = AppState {
            app,
            metrics: Arc::new(move || crate::metrics::render(&metrics)),
            metrics_token: settings
                .metrics
                .bearer_token
                .as_ref()
                .map(|token| Arc::new(ScrapeToken::new(token))),
            limits: Limits {
                max_body_bytes: settings.server.max_body_bytes,
                ..Limits::default()
            },
        };
        let data = web::Data::new(state);
        let (port, server) = match settings.server.webhook_listen {
            None => listen(&data, settings.server.listen, &settings, Routes::All)?,
            Some(_) => listen(&data, settings.server.listen, &settings, Routes::Api)?,
        };
        let webhooks = match settings.server.webhook_listen {
            Some(addr) => Some(listen(&data, addr, &settings, Routes::Webhooks)?),
            None => None,
        };
        Ok(Application {
            port,
            server,
            webhooks,
            database,
            engine,
            drain: Duration::from_secs(settings.engine.drain_secs),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The webhook listener's bound port, when it has its own (`server.webhook_listen`).
    pub fn webhook_port(&self) -> Option<u16> {
        self.webhooks.as_ref().map(|(port, _)| *port)
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The engine (actor system) behind the HTTP edge.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until stopped (SIGTERM/SIGINT: the listener closes, in-flight
    /// requests finish), then drains in-flight sends, releases this node's
    /// leases and stops the private database if this process runs it.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let webhooks = self.webhooks.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let outcome = self.server.await;
        if let Some((handle, running)) = webhooks {
            handle.stop(true).await;
            match running.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "webhook listener failed"),
                Err(e) => tracing::warn!(error = %e, "webhook listener task failed"),
            }
        }
        tracing::info!("HTTP server stopped; draining in-flight sends");
        self.engine.shutdown(self.drain).await;
        self.database.shutdown().await;
        outcome.context("HTTP server failed")
    }
}

fn engine_config(settings: &Settings) -> EngineConfig {
    let e = &settings.engine;
    EngineConfig {
        lease_for: Duration::from_secs(e.lease_secs),
        default_tenant_rate: e.default_tenant_rate,
        default_tenant_burst: e.default_tenant_burst,
        provider_concurrency: e.provider_concurrency,
        provider_rate_per_second: e.provider_rate_per_second,
        provider_queue_cap: e.provider_queue_cap,
        max_held_jobs: e.max_held_jobs,
        claim_max_bytes: e.claim_max_bytes,
        provider_timeout: Duration::from_millis(e.provider_timeout_ms),
        outbound_loopback_only: e.outbound_loopback_only,
        providers_allow_private: e.providers_allow_private,
        webhooks_allow_private: e.webhooks_allow_private,
        public_url: settings.server.public_url.clone(),
        tenant_label_limit: settings.metrics.tenant_label_limit,
        queue_poll: Duration::from_secs(settings.metrics.queue_poll_secs),
        ..EngineConfig::default()
    }
}

/// Applies migrations with the pool's statement and lock timeouts lifted for
/// them (a migration may rewrite a large table, and waits for another node's
/// migration under the advisory lock), then restores them for the pool.
async fn migrate_without_timeouts(client: &mut deadpool_postgres::Client) -> anyhow::Result<()> {
    client
        .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
        .await
        .context("cannot prepare the migration connection")?;
    migrate::run(client)
        .await
        .context("cannot apply migrations")?;
    client
        .batch_execute("RESET statement_timeout; RESET lock_timeout")
        .await
        .context("cannot restore the connection's timeouts")
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy)]
enum Routes {
    /// Everything (no separate webhook listener).
    All,
    /// Everything but the provider webhooks.
    Api,
    /// The provider webhooks and `/healthz`.
    Webhooks,
}

impl Routes {
    fn configure(self) -> fn(&mut web::ServiceConfig) {
        match self {
            Routes::All => msgengine_api::configure,
            Routes::Api => msgengine_api::configure_api,
            Routes::Webhooks => msgengine_api::configure_webhook_listener,
        }
    }
}

/// Binds `addr` and builds the server for `routes`; the bound port and the server.
fn listen(
    data: &web::Data<AppState>,
    addr: SocketAddr,
    settings: &Settings,
    routes: Routes,
) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    let server = build_server(data.clone(), listener, settings, routes.configure())?;
    tracing::info!(address = %addr.ip(), port, routes = ?routes, "msgengine listening");
    Ok((port, server))
}

fn build_server(
    data: web::Data<AppState>,
    listener: TcpListener,
    settings: &Settings,
    routes: fn(&mut web::ServiceConfig),
) -> anyhow::Result<Server> {
    let series = web::Data::new(msgengine_api::metrics::HttpSeries::default());
    // The access log is off unless its target is enabled (telemetry.rs): the
    // middleware would otherwise render every request's line (and allocate its
    // method) only for the filter to drop it.
    let access_log = tracing::enabled!(
        target: "actix_web::middleware::logger",
        tracing::Level::INFO
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(series.clone())
            .app_data(msgengine_api::query_config())
            .app_data(web::PathConfig::default())
            .wrap(middleware::from_fn(msgengine_api::metrics::record_request))
            .wrap(middleware::Condition::new(access_log, access_logger()))
            .configure(routes)
            .default_service(web::to(msgengine_api::route_not_found))
    })
    .listen(listener)?
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    let workers = settings
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let max_connections = connections_per_worker(
        raise_open_files_limit(),
        settings.database.pool_max_size,
        workers,
    );
    tracing::debug!(workers, max_connections, "HTTP workers");
    Ok(server
        .workers(workers)
        .max_connections(max_connections)
        .run())
}

/// The per-request access log line. %U is the path without the query
/// string: query strings may carry tokens (webhook handshakes), so they are
/// never logged.
fn access_logger() -> middleware::Logger {
    middleware::Logger::new(r#"%a "%{METHOD}xi %U" %s %b %Dms"#)
        .custom_request_replace("METHOD", |req| req.method().to_string())
}

/// Raises this process's soft limit on open files to its hard limit (a
/// soft limit of 1,024 is common and far below what a server holding
/// thousands of client and provider connections needs). Returns the limit
/// in force.
fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Connections each HTTP worker accepts before it stops accepting (the
/// kernel's backlog then holds new ones): the open files limit, less what
/// the database pool, provider connections and the process's own files
/// need, shared by the workers. Without it a flood of connections reached
/// the limit and every accept failed with `Too many open files`.
fn connections_per_worker(open_files: u64, pool: usize, workers: usize) -> usize {
    const OTHER_FILES: u64 = 2_048;
    let spare = open_files.saturating_sub(OTHER_FILES + pool as u64);
    let per_worker = spare / workers.max(1) as u64;
    usize::try_from(per_worker)
        .unwrap_or(usize::MAX)
        .clamp(64, 25_000)
}

#[cfg(test)]
mod tests {
    use super::connections_per_worker;

    #[test]
    fn connections_leave_room_for_other_files_and_stay_within_bounds() {
        assert_eq!(connections_per_worker(20_000, 16, 2), 8_968);
        assert_eq!(connections_per_worker(1_048_576, 16, 2), 25_000);
        assert_eq!(connections_per_worker(1_024, 16, 2), 64);
        assert_eq!(connections_per_worker(20_000, 16, 0), 17_936);
    }
}

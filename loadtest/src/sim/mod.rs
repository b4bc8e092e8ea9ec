//! `msgengine-sim`: a provider simulator on loopback (msgengine issue 4).
//!
//! It serves the send APIs of the providers the engine's adapters speak,
//! faithful to providers.md and to what `engine/providers` sends and
//! verifies: paths, auth checks, content types, success and error bodies,
//! 429s with `Retry-After`; and after an accepted send it posts the
//! provider's own status webhooks, signed with the provider's own scheme,
//! back to the engine ([`webhooks`]). Per account: latency, 5xx rate, 429
//! rate and the mix of delivery outcomes ([`config`]).
//!
//! Every send is recorded ([`stats`]): per account, per recipient and per
//! `X-Msgengine-Idempotency-Key`, served on `GET /_sim/stats` so tests and
//! load tests can check exactly-once delivery. Recipients are recorded as
//! E.164 where the wire allows it: Twilio's `whatsapp:` prefix is removed,
//! Meta's bare digits get a `+`; Mailgun's addresses as given (each of a
//! comma-separated `to`).
//!
//! Providers: [`twilio`] (SMS and WhatsApp), [`meta`] (WhatsApp Cloud API),
//! [`mailgun`]. Adding one: a module with `configure(cfg, shared)` routes and
//! a [`config::ProviderKind`] variant.
//!
//! Admin endpoints: `GET /_sim/stats` (`?detail=true` lists every recipient
//! and key), `GET /_sim/stats/recipients/{recipient}`,
//! `GET /_sim/stats/keys/{key}`, `POST /_sim/reset`, `GET /_sim/health`.

pub mod config;
pub mod mailgun;
pub mod meta;
pub mod stats;
pub mod twilio;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use base64::Engine as _;
use rand::distributions::WeightedIndex;
use rand::prelude::Distribution;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use self::config::{Behaviour, Outcome, ProviderConfig, ProviderKind, SimConfig};
use self::stats::{ProviderCounters, Stats, StatsSnapshot};
use self::webhooks::WebhookJob;

/// The header every msgengine adapter sends with its idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-Msgengine-Idempotency-Key";

/// Largest request body accepted (Mailgun allows 25 MB messages).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How the server is started.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Where to listen (port 0: any free port; see [`SimHandle::addr`]).
    pub listen: SocketAddr,
    /// HTTP worker threads.
    pub workers: usize,
    /// Stop on Ctrl-C / SIGTERM (the binary); off in-process.
    pub handle_signals: bool,
}

impl StartOptions {
    /// `127.0.0.1:0`, one worker, no signal handling: for tests.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            handle_signals: false,
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    stats: Arc<Stats>,
    server: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl SimHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`: the `baseUrl` of the engine's connections.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it has received so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The summary `GET /_sim/stats` serves.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot(false)
    }

    /// Stops accepting, finishes requests under way.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = self.task.await;
    }

    /// Runs until the server stops (a signal, in the binary).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("the simulator's server task failed")?
            .context("the simulator's server failed")
    }
}

/// Starts the simulator. Must be called inside a tokio runtime: webhook
/// posting runs on it, HTTP on the server's own worker threads.
pub async fn start(config: SimConfig, options: StartOptions) -> anyhow::Result<SimHandle> {
    config.validate()?;
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(webhooks::dispatch(rx, webhooks::client()?));
    let accounts = config
        .providers
        .iter()
        .map(|p| Account::new(p, &stats))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shared = web::Data::new(Shared {
        accounts,
        stats: stats.clone(),
        webhooks: tx,
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .configure(admin_routes)
            .configure(mailgun::configure)
            .configure(twilio::configure)
            .configure(meta::configure)
            .default_service(web::to(unmatched))
    })
    .workers(options.workers.max(1));
    if !options.handle_signals {
        server = server.disable_signals();
    }
    let server = server
        .bind(options.listen)
        .with_context(|| format!("binding {}", options.listen))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .context("the server has no address")?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(SimHandle {
        addr,
        stats,
        server: handle,
        task,
    })
}

/// State shared by every handler.
pub(crate) struct Shared {
    pub(crate) accounts: Vec<Account>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) webhooks: mpsc::UnboundedSender<WebhookJob>,
}

impl Shared {
    /// The accounts of one type.
    pub(crate) fn of_type<'a>(
        &'a self,
        type_name: &'static str,
    ) -> impl Iterator<Item = &'a Account> + 'a {
        self.accounts
            .iter()
            .filter(move |a| a.config.kind.type_name() == type_name)
    }

    /// Queues a message's webhooks (never blocks the answer).
    pub(crate) fn post_webhooks(&self, account: &Account, url: String, steps: Vec<webhooks::Step>) {
        if steps.is_empty() {
            return;
        }
        let b = &account.config.behaviour;
        let job = WebhookJob {
            url,
            steps,
            delay: Duration::from_millis(b.webhook_delay_ms),
            retries: b.webhook_retries,
            retry_delay: Duration::from_millis(b.webhook_retry_delay_ms),
            counters: account.counters.clone(),
        };
        // Fails only when the dispatcher is gone (runtime shutting down).
        let _ = self.webhooks.send(job);
    }
}

/// One configured account, ready to serve.
pub(crate) struct Account {
    pub(crate) config: ProviderConfig,
    pub(crate) counters: Arc<ProviderCounters>,
    outcomes: Vec<Outcome>,
    weights: Option<WeightedIndex<u32>>,
}

/// What a send that passed the auth check gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Accept,
    RateLimited,
    ServerError,
}

impl Account {
    fn new(config: &ProviderConfig, stats: &Stats) -> anyhow::Result<Self> {
        let outcomes: Vec<Outcome> = config.behaviour.outcomes.keys().copied().collect();
        let weights = if outcomes.is_empty() {
            None
        } else {
            Some(
                WeightedIndex::new(config.behaviour.outcomes.values().copied())
                    .with_context(|| format!("{}: outcome weights", config.name()))?,
            )
        };
        Ok(Self {
            counters: stats.provider(&config.name()),
            config: config.clone(),
            outcomes,
            weights,
        })
    }

    pub(crate) fn kind(&self) -> &ProviderKind {
        &self.config.kind
    }

    pub(crate) fn behaviour(&self) -> &Behaviour {
        &self.config.behaviour
    }

    /// Rolls the dice for one authenticated send (and counts the result).
    pub(crate) fn fate(&self) -> Fate {
        let b = self.behaviour();
        let mut rng = rand::thread_rng();
        if b.rate_limit_rate > 0.0 && rng.gen_bool(b.rate_limit_rate) {
            self.counters
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Fate::RateLimited
        } else if b.error_rate > 0.0 && rng.gen_bool(b.error_rate) {
            self.counters
                .server_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Fate::ServerError
        } else {
            Fate::Accept
        }
    }

    /// What happens to an accepted message.
    pub(crate) fn outcome(&self) -> Outcome {
        match &self.weights {
            Some(w) => self.outcomes[w.sample(&mut rand::thread_rng())],
            None => Outcome::Delivered,
        }
    }

    /// Adds `Retry-After` to a 429 when configured.
    pub(crate) fn retry_after(&self, answer: &mut actix_web::HttpResponseBuilder) {
        if let Some(secs) = self.behaviour().retry_after_secs {
            answer.insert_header(("Retry-After", secs.to_string()));
        }
    }

    pub(crate) fn count(&self, counter: fn(&ProviderCounters) -> &std::sync::atomic::AtomicU64) {
        counter(&self.counters).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits the configured latency.
    pub(crate) async fn latency(&self) {
        let ms = self.behaviour().latency_ms;
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// The (user, password) of a Basic `Authorization` header.
pub(crate) fn basic_auth(request: &HttpRequest) -> Option<(String, String)> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of a Bearer `Authorization` header.
pub(crate) fn bearer(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The idempotency key of a request, when sent.
pub(crate) fn idempotency_key(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
}

/// Compares secrets in constant time (credentials checks).
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    use subtle_free::ct_eq;
    ct_eq(given.as_bytes(), expected.as_bytes())
}

/// A constant-time comparison without another dependency.
mod subtle_free {
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill(raw.as_mut_slice());
    hex::encode(raw)
}

/// The form body's pairs.
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/_sim/health",
        web::get().to(|| async { HttpResponse::Ok().json(json!({"ok": true})) }),
    )
    .route("/_sim/stats", web::get().to(get_stats))
    .route(
        "/_sim/stats/recipients/{recipient}",
        web::get().to(get_recipient),
    )
    .route("/_sim/stats/keys/{key}", web::get().to(get_key))
    .route("/_sim/reset", web::post().to(reset));
}

#[derive(Deserialize)]
struct StatsQuery {
    #[serde(default)]
    detail: bool,
}

async fn get_stats(shared: web::Data<Shared>, query: web::Query<StatsQuery>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats.snapshot(query.detail))
}

async fn get_recipient(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats.recipient(&path))
}

async fn get_key(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats.key(&path))
}

async fn reset(shared: web::Data<Shared>) -> HttpResponse {
    shared.stats.reset();
    // Per-account counters live on in the accounts: re-register them.
    for a in &shared.accounts {
        a.counters.reset();
        shared
            .stats
            .providers
            .insert(a.config.name(), a.counters.clone());
    }
    HttpResponse::NoContent().finish()
}

async fn unmatched(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    shared
        .stats
        .unmatched
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    HttpResponse::NotFound().json(json!({
        "message": format!("msgengine-sim serves no {} {}", request.method(), request.path())
    }))
}

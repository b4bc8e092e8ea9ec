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
//! `X-Msgengine-Idempotency-Key` (over SMTP: that header of the mail), served
//! on `GET /_sim/stats` so tests and load tests can check exactly-once
//! delivery. Recipients are recorded as E.164 where the wire allows it:
//! Twilio's `whatsapp:` prefix is removed, bare digits (Meta, Termii,
//! Gupshup, Interakt) get a `+`; email addresses as given (each of a
//! comma-separated `to`, every personalization or SMTP `RCPT TO`).
//!
//! Providers: [`twilio`] (SMS and WhatsApp), [`meta`] (WhatsApp Cloud API),
//! [`mailgun`], [`sendgrid`], [`mailjet`], [`smtp`] (an SMTP listener on its
//! own port, no webhooks), [`africastalking`], [`termii`], [`gupshup`],
//! [`aisensy`], [`interakt`]. Adding one: a module with `configure(cfg)`
//! routes (registered before [`meta`], whose `/{version}/{node}` paths match
//! almost anything) and a [`config::ProviderKind`] variant.
//!
//! Providers that do not sign their webhooks (Mailjet, Africa's Talking,
//! Gupshup, AiSensy) are verified by the engine through a `token` query
//! parameter: the account's `webhookUrl` simply carries it.
//!
//! Admin endpoints: `GET /_sim/stats` (`?detail=true` lists every recipient
//! and key), `GET /_sim/stats/recipients/{recipient}`,
//! `GET /_sim/stats/keys/{key}`, `GET /_sim/receipts?since=&limit=` (every
//! accepted send with its time, for end-to-end latency), `POST /_sim/reset`,
//! `GET /_sim/health`,
//! `GET|PUT /_sim/accounts/{name}/down` (`{"down": true}`: every send answers
//! 5xx until `false`, a provider outage), `GET|PUT /_sim/accounts/{name}/webhook` (where an account's status
//! webhooks go: `{"webhookUrl": ..., "whatsappWebhookUrl": ...}`),
//! `GET /_sim/accounts/{name}/public-key` (a SendGrid account's webhook
//! verification key, `{"publicKey"}`: the engine's `webhookSecret`),
//! `GET /_sim/accounts/{name}/smtp` (an SMTP account's `{"host", "port"}`).

pub mod africastalking;
pub mod aisensy;
pub mod config;
pub mod gupshup;
pub mod interakt;
pub mod mailgun;
pub mod mailjet;
pub mod meta;
pub mod sendgrid;
pub mod smtp;
pub mod stats;
pub mod termii;
pub mod twilio;
pub mod webhooks;

use std::collections::HashMap;
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
    /// Status webhooks being posted at once, at most (a real provider's
    /// delivery workers are bounded too; without a bound a slow engine
    /// meets an ever-growing number of connections).
    pub webhook_concurrency: usize,
}

/// The default of [`StartOptions::webhook_concurrency`].
pub const DEFAULT_WEBHOOK_CONCURRENCY: usize = 256;

impl StartOptions {
    /// `127.0.0.1:0`, one worker, no signal handling: for tests.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            handle_signals: false,
            webhook_concurrency: DEFAULT_WEBHOOK_CONCURRENCY,
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    stats: Arc<Stats>,
    server: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    shared: web::Data<Shared>,
    smtp_tasks: Vec<tokio::task::JoinHandle<()>>,
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

    /// Where the SMTP account `name` listens.
    pub fn smtp_addr(&self, name: &str) -> Option<SocketAddr> {
        self.shared.smtp_addrs.get(name).copied()
    }

    /// Every SMTP account's address, by account name.
    pub fn smtp_addrs(&self) -> &HashMap<String, SocketAddr> {
        &self.shared.smtp_addrs
    }

    /// The SendGrid account `name`'s webhook verification key (base64 DER
    /// SubjectPublicKeyInfo, as SendGrid shows it).
    pub fn public_key(&self, name: &str) -> Option<String> {
        let account = self
            .shared
            .accounts
            .iter()
            .find(|a| a.config.name() == name)?;
        sendgrid::public_key_base64(account.signing_key.as_ref()?)
    }

    /// Stops accepting, finishes requests under way (SMTP sessions are cut).
    pub async fn stop(self) {
        for task in &self.smtp_tasks {
            task.abort();
        }
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
    tokio::spawn(webhooks::dispatch(
        rx,
        webhooks::client(options.webhook_concurrency)?,
        options.webhook_concurrency,
    ));
    let accounts = config
        .providers
        .iter()
        .map(|p| Account::new(p, &stats))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut smtp_listeners = Vec::new();
    let mut smtp_addrs = HashMap::new();
    for (index, account) in accounts.iter().enumerate() {
        if let ProviderKind::Smtp { port, .. } = account.kind() {
            let at = SocketAddr::new(options.listen.ip(), *port);
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("{}: binding SMTP on {at}", account.config.name()))?;
            smtp_addrs.insert(account.config.name(), listener.local_addr()?);
            smtp_listeners.push((index, listener));
        }
    }
    let shared = web::Data::new(Shared {
        accounts,
        stats: stats.clone(),
        webhooks: tx,
        smtp_addrs,
    });
    let smtp_tasks = smtp_listeners
        .into_iter()
        .map(|(index, listener)| tokio::spawn(smtp::serve(listener, shared.clone(), index)))
        .collect();
    let app_shared = shared.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_shared.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .configure(admin_routes)
            .configure(mailgun::configure)
            .configure(twilio::configure)
            .configure(sendgrid::configure)
            .configure(mailjet::configure)
            .configure(africastalking::configure)
            .configure(termii::configure)
            .configure(gupshup::configure)
            .configure(aisensy::configure)
            .configure(interakt::configure)
            // Last: its `/{version}/{node}` paths would shadow the others.
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
        shared,
        smtp_tasks,
    })
}

/// State shared by every handler.
pub(crate) struct Shared {
    pub(crate) accounts: Vec<Account>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) webhooks: mpsc::UnboundedSender<WebhookJob>,
    /// Where each SMTP account listens, by account name.
    pub(crate) smtp_addrs: HashMap<String, SocketAddr>,
}

impl Shared {
    /// Rolls the account's dice for one authenticated send. On an injected
    /// 429 or 5xx the refused send is recorded and the provider's own answer
    /// returned: `limited` gets a 429 builder with `Retry-After` already set,
    /// `failed` builds the 5xx. `None`: go on and accept.
    pub(crate) fn injected_failure(
        &self,
        account: &Account,
        recipients: &[String],
        key: Option<&str>,
        limited: impl FnOnce(actix_web::HttpResponseBuilder) -> HttpResponse,
        failed: impl FnOnce() -> HttpResponse,
    ) -> Option<HttpResponse> {
        let answer = match account.fate() {
            Fate::Accept => return None,
            Fate::RateLimited => {
                let mut answer = HttpResponse::TooManyRequests();
                account.retry_after(&mut answer);
                limited(answer)
            }
            Fate::ServerError => failed(),
        };
        self.stats.record_send(recipients, key, false);
        Some(answer)
    }

    /// The accounts of one type.
    pub(crate) fn of_type<'a>(
        &'a self,
        type_name: &'static str,
    ) -> impl Iterator<Item = &'a Account> + 'a {
        self.accounts
            .iter()
            .filter(move |a| a.config.kind.type_name() == type_name)
    }

    /// Admits one send: the account whose credentials it carried (`found`),
    /// after the account's configured latency. `None` when the credentials
    /// match no account of `type_name`: the refusal is counted on the first
    /// account of the type (as `requests` and `auth_failed`), or as
    /// `unmatched` when the type has none; the caller answers with the
    /// provider's own 401.
    pub(crate) async fn admit<'a>(
        &'a self,
        type_name: &'static str,
        found: Option<&'a Account>,
    ) -> Option<&'a Account> {
        let authorized = found.is_some();
        let Some(account) = found.or_else(|| self.of_type(type_name).next()) else {
            self.stats
                .unmatched
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return None;
        };
        account.count(|c| &c.requests);
        account.latency().await;
        if !authorized {
            account.count(|c| &c.auth_failed);
            return None;
        }
        Some(account)
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
    /// Where status webhooks go; starts from the config and can be changed
    /// at run time (`PUT /_sim/accounts/{name}/webhook`), because the
    /// engine's webhook URL names a provider id that exists only once the
    /// provider is registered.
    webhook_urls: std::sync::RwLock<WebhookUrls>,
    /// SendGrid only: the Event Webhook's ECDSA P-256 key (configured or
    /// generated at start).
    pub(crate) signing_key: Option<p256::ecdsa::SigningKey>,
    outcomes: Vec<Outcome>,
    weights: Option<WeightedIndex<u32>>,
    /// Set by `PUT /_sim/accounts/{name}/down`: every authenticated send
    /// answers 5xx, as a provider in an outage does, until cleared.
    down: std::sync::atomic::AtomicBool,
}

/// `PUT /_sim/accounts/{name}/down`'s body and answer.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Down {
    pub down: bool,
}

/// An account's webhook targets, as `PUT /_sim/accounts/{name}/webhook`
/// takes and answers them.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookUrls {
    /// Status webhooks (Twilio: SMS callbacks when a send has no
    /// `StatusCallback`).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Twilio only: WhatsApp callbacks (default: `webhookUrl`).
    #[serde(default)]
    pub whatsapp_webhook_url: Option<String>,
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
        let whatsapp = match &config.kind {
            ProviderKind::Twilio {
                whatsapp_webhook_url,
                ..
            } => whatsapp_webhook_url.clone(),
            _ => None,
        };
        let signing_key = match &config.kind {
            ProviderKind::Sendgrid { signing_key, .. } => Some(
                sendgrid::signing_key(signing_key.as_deref())
                    .with_context(|| format!("{}: signingKey", config.name()))?,
            ),
            _ => None,
        };
        Ok(Self {
            signing_key,
            counters: stats.provider(&config.name()),
            webhook_urls: std::sync::RwLock::new(WebhookUrls {
                webhook_url: config.behaviour.webhook_url.clone(),
                whatsapp_webhook_url: whatsapp,
            }),
            config: config.clone(),
            outcomes,
            weights,
            down: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn kind(&self) -> &ProviderKind {
        &self.config.kind
    }

    pub(crate) fn behaviour(&self) -> &Behaviour {
        &self.config.behaviour
    }

    /// Where this account's status webhooks go now (none: no webhooks).
    pub(crate) fn webhook_url(&self) -> Option<String> {
        self.urls().webhook_url
    }

    /// Where Twilio WhatsApp callbacks go now (default: [`Self::webhook_url`]).
    pub(crate) fn whatsapp_webhook_url(&self) -> Option<String> {
        let urls = self.urls();
        urls.whatsapp_webhook_url.or(urls.webhook_url)
    }

    fn urls(&self) -> WebhookUrls {
        match self.webhook_urls.read() {
            Ok(urls) => urls.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_urls(&self, urls: WebhookUrls) {
        match self.webhook_urls.write() {
            Ok(mut current) => *current = urls,
            Err(poisoned) => *poisoned.into_inner() = urls,
        }
    }

    /// Rolls the dice for one authenticated send (and counts the result).
    pub(crate) fn fate(&self) -> Fate {
        let b = self.behaviour();
        let mut rng = rand::thread_rng();
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            self.counters
                .server_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Fate::ServerError
        } else if b.rate_limit_rate > 0.0 && rng.gen_bool(b.rate_limit_rate) {
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

/// A random id in the 8-4-4-4-12 hex form providers use for message ids.
pub(crate) fn uuid_like() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
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
    .route("/_sim/receipts", web::get().to(stats::get_receipts))
    .route("/_sim/accounts/{name}/webhook", web::get().to(get_webhook))
    .route("/_sim/accounts/{name}/webhook", web::put().to(put_webhook))
    .route("/_sim/accounts/{name}/down", web::get().to(get_down))
    .route("/_sim/accounts/{name}/down", web::put().to(put_down))
    .route(
        "/_sim/accounts/{name}/public-key",
        web::get().to(get_public_key),
    )
    .route("/_sim/accounts/{name}/smtp", web::get().to(get_smtp))
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

async fn get_webhook(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    match shared.accounts.iter().find(|a| a.config.name() == *path) {
        Some(account) => HttpResponse::Ok().json(account.urls()),
        None => no_account(&path),
    }
}

/// Points an account's webhooks somewhere else (`null` or absent: none).
/// Each URL must be absolute http(s).
async fn put_webhook(
    shared: web::Data<Shared>,
    path: web::Path<String>,
    body: web::Json<WebhookUrls>,
) -> HttpResponse {
    let Some(account) = shared.accounts.iter().find(|a| a.config.name() == *path) else {
        return no_account(&path);
    };
    if matches!(account.kind(), ProviderKind::Smtp { .. }) {
        return HttpResponse::BadRequest()
            .json(json!({"message": "an SMTP account has no status webhooks"}));
    }
    let urls = body.into_inner();
    for url in [&urls.webhook_url, &urls.whatsapp_webhook_url]
        .into_iter()
        .flatten()
    {
        let ok = url::Url::parse(url)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !ok {
            return HttpResponse::BadRequest().json(json!({
                "message": format!("not an absolute http(s) URL: {url}")
            }));
        }
    }
    account.set_urls(urls.clone());
    HttpResponse::Ok().json(urls)
}

async fn get_down(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    match shared.accounts.iter().find(|a| a.config.name() == *path) {
        Some(account) => HttpResponse::Ok().json(Down {
            down: account.down.load(std::sync::atomic::Ordering::Relaxed),
        }),
        None => no_account(&path),
    }
}

/// Takes an account down (every authenticated send answers 5xx, counted as
/// `serverErrors`) or brings it back: the outage of a load or fault test.
async fn put_down(
    shared: web::Data<Shared>,
    path: web::Path<String>,
    body: web::Json<Down>,
) -> HttpResponse {
    let Some(account) = shared.accounts.iter().find(|a| a.config.name() == *path) else {
        return no_account(&path);
    };
    account
        .down
        .store(body.down, std::sync::atomic::Ordering::Relaxed);
    HttpResponse::Ok().json(*body)
}

/// A SendGrid account's webhook verification key: what the engine's
/// connection takes as `webhookSecret`.
async fn get_public_key(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    let Some(account) = shared.accounts.iter().find(|a| a.config.name() == *path) else {
        return no_account(&path);
    };
    match account
        .signing_key
        .as_ref()
        .and_then(sendgrid::public_key_base64)
    {
        Some(key) => HttpResponse::Ok().json(json!({"publicKey": key})),
        None => HttpResponse::NotFound()
            .json(json!({"message": format!("{} signs no webhooks with a key", *path)})),
    }
}

/// An SMTP account's address: the engine's `smtpConfig.host` and `port`.
async fn get_smtp(shared: web::Data<Shared>, path: web::Path<String>) -> HttpResponse {
    match shared.smtp_addrs.get(path.as_str()) {
        Some(addr) => HttpResponse::Ok().json(json!({
            "host": addr.ip().to_string(), "port": addr.port(), "tls": "none",
        })),
        None => no_account(&path),
    }
}

fn no_account(name: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"message": format!("no simulated account named {name}")}))
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

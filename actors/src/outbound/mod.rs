//! Outbound webhooks: the worker that delivers an organization's status
//! events to its own endpoint.
//!
//! Runs on the database runtime ([`crate::dbrt`]), never on the send path:
//! events are rows of `org_webhook_deliveries` written beside the status
//! batches, and this loop claims due rows (`FOR UPDATE SKIP LOCKED`, leased
//! by pushing `next_attempt_at` forward), POSTs each with
//! `Msgengine-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! and records the result: 2xx delivered; anything else retried with
//! exponential backoff and jitter (10 s doubling to 1 h) until
//! [`MAX_ATTEMPTS`] or [`MAX_AGE`], then failed with the last error.
//!
//! Fairness between organizations: concurrency is bounded overall
//! ([`MAX_IN_FLIGHT`]) and per endpoint ([`PER_ENDPOINT`]), and the claim
//! itself takes at most an endpoint's free room of its rows (endpoints
//! visited in random order), skipping endpoints at their cap, disabled
//! endpoints and inactive organizations. A delivery only starts once both
//! its slots are held, so nothing waits for an endpoint while holding a
//! slot another endpoint could use: a slow receiver holds its own
//! [`PER_ENDPOINT`] slots and no more. Deliveries of a disabled endpoint (or
//! organization) stay queued, unclaimed, and go out when it is enabled
//! again, unless they are older than [`MAX_AGE`] by then: a sweep fails
//! those every [`EXPIRE_EVERY`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use hmac::{Hmac, Mac};
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::org_webhooks::{self, ClaimLimits, ClaimedDelivery};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::writers::bulkhead::{Backoff, Reporter, WriterHealth};
use msgengine_providers::reqwest::Client;

/// Attempts before a delivery is given up (≈ 24 h with the backoff below).
pub const MAX_ATTEMPTS: i32 = 30;
/// A delivery older than this is not retried again.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Timeout of one POST to a receiver.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim holds a row before another node may retry it.
const LEASE_SECS: f64 = 60.0;
/// Deliveries in flight at once on this node.
pub const MAX_IN_FLIGHT: usize = 32;
/// Deliveries in flight at once per endpoint.
pub const PER_ENDPOINT: usize = 4;
/// How often the queue is polled when idle.
const POLL: Duration = Duration::from_millis(250);
/// How often deliveries older than [`MAX_AGE`] are expired.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// Most deliveries one expiry sweep fails.
const EXPIRE_BATCH: i64 = 10_000;

/// The signature header's value for `body` sent at unix time `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable.
        Err(_) => return format!("t={t},v1="),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1`: 10 s doubling per attempt, at
/// most 1 h, with ±20 % jitter (`jitter` in [-1, 1]).
pub fn backoff(attempts: i32, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let base = (10u64.saturating_mul(1u64 << exp)).min(3600) as f64;
    Duration::from_secs_f64((base * (1.0 + 0.2 * jitter.clamp(-1.0, 1.0))).max(1.0))
}

/// Which endpoint addresses deliveries may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// Publicly routable addresses only (the default): an organization's
    /// URL must not reach the engine's own network (SSRF).
    Public,
    /// Anything, private networks included (`engine.webhooks_allow_private`).
    Any,
    /// Loopback only (`engine.outbound_loopback_only`: tests, load tests).
    Loopback,
}

impl Targets {
    /// The HTTP client that enforces this for host names at connect time.
    pub fn client(self, timeout: Duration) -> Client {
        use msgengine_providers::http;
        match self {
            Targets::Public => http::public_only_http_client(timeout),
            Targets::Any => http::http_client(timeout),
            Targets::Loopback => http::loopback_only_http_client(timeout),
        }
    }

    /// The provider calls' address policy this corresponds to (one
    /// classifier of addresses for both kinds of outbound call).
    fn policy(self) -> msgengine_providers::address::AddressPolicy {
        use msgengine_providers::address::AddressPolicy;
        match self {
            Targets::Public => AddressPolicy::Public,
            Targets::Any => AddressPolicy::Any,
            Targets::Loopback => AddressPolicy::Loopback,
        }
    }

    /// Whether an IP-literal host may be used (the resolver never sees those).
    pub fn allows(self, ip: std::net::IpAddr) -> bool {
        self.policy().allows(ip)
    }

    /// Whether a URL's host is an IP literal this refuses (host names are
    /// checked by the client when it resolves them).
    pub fn refuses_literal(self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| self.policy().check_url(&u).is_err())
    }
}

/// Starts the delivery loop on `runtime`; it ends when `stop` is set. The
/// returned health says whether it can reach the queue.
pub fn start(
    runtime: &tokio::runtime::Handle,
    pool: Pool,
    ring: Arc<KeyRing>,
    targets: Targets,
    stop: Arc<AtomicBool>,
) -> WriterHealth {
    let http = Delivery {
        client: targets.client(REQUEST_TIMEOUT),
        targets,
    };
    let health = WriterHealth::new("outbound");
    let worker = Worker {
        pool,
        ring,
        http,
        slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        endpoints: Arc::new(DashMap::new()),
    };
    runtime.spawn(worker.run(stop, health.reporter()));
    health
}

/// The client and the address policy it enforces.
#[derive(Clone)]
struct Delivery {
    client: Client,
    targets: Targets,
}

/// The delivery loop's state: the node's slots and each endpoint's.
struct Worker {
    pool: Pool,
    ring: Arc<KeyRing>,
    http: Delivery,
    slots: Arc<Semaphore>,
    endpoints: Arc<DashMap<Uuid, Arc<Semaphore>>>,
}

impl Worker {
    async fn run(self, stop: Arc<AtomicBool>, mut reporter: Reporter) {
        let mut backoff = Backoff::new(POLL, Duration::from_secs(5));
        let mut last_expiry: Option<tokio::time::Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            if last_expiry.is_none_or(|at| at.elapsed() >= EXPIRE_EVERY) {
                last_expiry = Some(tokio::time::Instant::now());
                self.expire().await;
            }
            let claimed = match self.claim().await {
                Ok(claimed) => {
                    reporter.succeeded();
                    backoff.reset();
                    claimed
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery claim failed");
                    reporter.failed();
                    tokio::time::sleep(backoff.next_wait()).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            for delivery in claimed {
                self.start_delivery(delivery).await;
            }
        }
    }

    /// Claims as many due deliveries as there are free slots, each endpoint
    /// limited to its own free slots.
    async fn claim(&self) -> Result<Vec<ClaimedDelivery>, msgengine_storage::StoreError> {
        let free = self.slots.available_permits() as i64;
        if free == 0 {
            return Ok(Vec::new());
        }
        let room: Vec<(Uuid, i64)> = self
            .endpoints
            .iter()
            .filter(|e| e.value().available_permits() < PER_ENDPOINT)
            .map(|e| (*e.key(), e.value().available_permits() as i64))
            .collect();
        let client = self.pool.get().await?;
        let limits = ClaimLimits {
            total: free,
            per_endpoint: PER_ENDPOINT as i64,
            endpoint_room: &room,
        };
        org_webhooks::claim_due(&client, &self.ring, limits, LEASE_SECS).await
    }

    /// Starts one claimed delivery with its two slots taken now. The claim
    /// took no more than the free slots and this loop is the only one taking
    /// them, so both are free; if not, the row goes back untried.
    async fn start_delivery(&self, delivery: ClaimedDelivery) {
        let per_endpoint = self
            .endpoints
            .entry(delivery.endpoint_id)
            .or_insert_with(|| Arc::new(Semaphore::new(PER_ENDPOINT)))
            .clone();
        let (Ok(slot), Ok(turn)) = (
            self.slots.clone().try_acquire_owned(),
            per_endpoint.try_acquire_owned(),
        ) else {
            tracing::warn!(delivery = %delivery.id, "claimed past the free slots; giving it back");
            if let Ok(client) = self.pool.get().await {
                if let Err(e) = org_webhooks::release(&client, delivery.id).await {
                    tracing::warn!(delivery = %delivery.id, error = %e, "giving a delivery back failed; its lease will");
                }
            }
            return;
        };
        let (pool, http) = (self.pool.clone(), self.http.clone());
        tokio::spawn(async move {
            let _held = (slot, turn);
            deliver(&pool, &http, delivery).await;
        });
    }

    /// Fails deliveries older than [`MAX_AGE`], and forgets idle endpoints.
    async fn expire(&self) {
        self.endpoints
            .retain(|_, slots| slots.available_permits() < PER_ENDPOINT);
        let before = chrono::Utc::now() - chrono::Duration::from_std(MAX_AGE).unwrap_or_default();
        let result = match self.pool.get().await {
            Ok(client) => org_webhooks::expire(&client, before, EXPIRE_BATCH).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(expired = n, "webhook deliveries expired");
                metrics::counter!(crate::metrics::OUTBOUND_WEBHOOKS, "result" => "failed")
                    .increment(n);
            }
            Err(e) => tracing::warn!(error = %e, "webhook delivery expiry failed"),
        }
    }
}

/// One attempt and its record.
async fn deliver(pool: &Pool, http: &Delivery, d: ClaimedDelivery) {
    let result = post(http, &d).await;
    let retry_at = match &result {
        Ok(_) => None,
        Err(_) => {
            let age = (chrono::Utc::now() - d.created_at)
                .to_std()
                .unwrap_or_default();
            let wait = backoff(d.attempts, rand::thread_rng().gen_range(-1.0..=1.0));
            (d.attempts < MAX_ATTEMPTS && age + wait < MAX_AGE)
                .then(|| chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default())
        }
    };
    let record = match &result {
        Ok(status) => Ok(*status),
        Err((error, status)) => Err((error.as_str(), *status)),
    };
    let counted = match (&result, retry_at) {
        (Ok(_), _) => "delivered",
        (Err(_), Some(_)) => "retry",
        (Err(_), None) => "failed",
    };
    metrics::counter!(crate::metrics::OUTBOUND_WEBHOOKS, "result" => counted).increment(1);
    if result.is_err() && retry_at.is_none() {
        tracing::warn!(delivery = %d.id, attempts = d.attempts, "webhook delivery given up");
    }
    let mut wait = Duration::from_millis(100);
    for _ in 0..5 {
        let written = match pool.get().await {
            Ok(client) => org_webhooks::finish(&client, d.id, record, retry_at).await,
            Err(e) => Err(e.into()),
        };
        match written {
            Ok(()) => return,
            Err(e) => {
                // The lease brings the row back if this never succeeds.
                tracing::warn!(delivery = %d.id, error = %e, "webhook delivery record failed");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// POSTs the payload; `Ok(status)` on 2xx, else the error in words and the
/// status if there was one (the receiver's body is never stored).
async fn post(http: &Delivery, d: &ClaimedDelivery) -> Result<i32, (String, Option<i32>)> {
    if http.targets.refuses_literal(&d.url) {
        return Err((
            "the endpoint's address is private, loopback or link-local (engine.webhooks_allow_private)".into(),
            None,
        ));
    }
    let body = serde_json::to_vec(&d.payload).map_err(|e| (e.to_string(), None))?;
    let t = chrono::Utc::now().timestamp();
    let response = http
        .client
        .post(&d.url)
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .header("user-agent", "msgengine-webhooks/1")
        .header("msgengine-event-id", d.id.to_string())
        .header("msgengine-signature", signature(&d.secret, t, &body))
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Ok(i32::from(r.status().as_u16())),
        Ok(r) => Err((
            format!("receiver answered {}", r.status().as_u16()),
            Some(i32::from(r.status().as_u16())),
        )),
        Err(e) if e.is_timeout() => Err(("timed out".into(), None)),
        Err(e) if e.is_connect() => Err(("could not connect".into(), None)),
        Err(e) => Err((format!("request failed: {}", e.without_url()), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_targets_refuse_internal_ip_literals_and_allow_names() {
        let t = Targets::Public;
        for internal in [
            "http://127.0.0.1:8080/x",
            "https://10.0.0.1/x",
            "http://169.254.169.254/latest",
            "http://[::1]/x",
            "http://[::ffff:192.168.0.1]/x",
        ] {
            assert!(t.refuses_literal(internal), "{internal}");
        }
        // Names are judged by the client's resolver when it connects.
        assert!(!t.refuses_literal("https://hooks.example.com/x"));
        assert!(!t.refuses_literal("https://8.8.8.8/x"));
        assert!(!Targets::Any.refuses_literal("http://10.0.0.1/x"));
        assert!(!Targets::Loopback.refuses_literal("http://127.0.0.1:9/x"));
        assert!(Targets::Loopback.refuses_literal("http://8.8.8.8/x"));
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_an_hour() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(9, 0.0), Duration::from_secs(2560));
        assert_eq!(backoff(10, 0.0), Duration::from_secs(3600));
        assert_eq!(backoff(29, 0.0), Duration::from_secs(3600));
        assert_eq!(backoff(1, 1.0), Duration::from_secs(12));
        assert_eq!(backoff(1, -1.0), Duration::from_secs(8));
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}

//! What the simulator received, for exactly-once checks: counters per
//! account (atomics), per recipient and per `X-Msgengine-Idempotency-Key`
//! (dashmap of atomics: a shard lock is held only for the lookup, never
//! across an await).
//!
//! It also keeps a receipt log ([`Receipts`]): the time of every accepted
//! send, keyed by its idempotency key (else its first recipient), in a ring
//! of at most [`RECEIPT_CAPACITY`] entries (the oldest are dropped first,
//! and counted), served on `GET /_sim/receipts?since=SEQ&limit=N` so a
//! load test can pair each message it had accepted with the moment the
//! provider received it (end-to-end latency).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::Serialize;

/// Counters of one simulated account.
#[derive(Debug, Default)]
pub struct ProviderCounters {
    /// Every request on a send path.
    pub requests: AtomicU64,
    /// Sends answered with success.
    pub accepted: AtomicU64,
    /// Refused for credentials (401/403).
    pub auth_failed: AtomicU64,
    /// Refused as invalid (400/404).
    pub invalid: AtomicU64,
    /// Answered 429.
    pub rate_limited: AtomicU64,
    /// Answered 5xx.
    pub server_errors: AtomicU64,
    /// Webhooks the engine answered 2xx.
    pub webhooks_delivered: AtomicU64,
    /// Webhooks given up on after every retry.
    pub webhooks_failed: AtomicU64,
    /// Webhook attempts repeated after a non-2xx or transport error.
    pub webhook_retries: AtomicU64,
}

impl ProviderCounters {
    /// Sets every counter back to 0.
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.accepted,
            &self.auth_failed,
            &self.invalid,
            &self.rate_limited,
            &self.server_errors,
            &self.webhooks_delivered,
            &self.webhooks_failed,
            &self.webhook_retries,
        ] {
            c.store(0, Relaxed);
        }
    }
}

/// Attempts and successes of one recipient or idempotency key.
#[derive(Debug, Default)]
pub struct Counts {
    /// Authenticated send requests naming it (whatever the answer).
    pub attempts: AtomicU64,
    /// Of those, answered with success.
    pub accepted: AtomicU64,
}

/// A [`Counts`] as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CountsSnapshot {
    pub attempts: u64,
    pub accepted: u64,
}

impl Counts {
    fn snapshot(&self) -> CountsSnapshot {
        CountsSnapshot {
            attempts: self.attempts.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
        }
    }
}

/// Everything recorded since start (or the last reset).
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) providers: DashMap<String, std::sync::Arc<ProviderCounters>>,
    recipients: DashMap<String, Counts>,
    keys: DashMap<String, Counts>,
    /// Requests on no known path or account.
    pub(crate) unmatched: AtomicU64,
    /// When each accepted send arrived.
    receipts: Receipts,
}

impl Stats {
    /// The counters of `name` (created on first use).
    pub fn provider(&self, name: &str) -> std::sync::Arc<ProviderCounters> {
        if let Some(c) = self.providers.get(name) {
            return c.clone();
        }
        self.providers.entry(name.to_owned()).or_default().clone()
    }

    /// Records one authenticated send to `recipients` under `key`;
    /// `accepted` when it was answered with success.
    pub fn record_send(&self, recipients: &[String], key: Option<&str>, accepted: bool) {
        let bump = |counts: &Counts| {
            counts.attempts.fetch_add(1, Relaxed);
            if accepted {
                counts.accepted.fetch_add(1, Relaxed);
            }
        };
        for r in recipients {
            bump_in(&self.recipients, r, bump);
        }
        if let Some(key) = key {
            bump_in(&self.keys, key, bump);
        }
        if accepted {
            if let Some(name) = key.or(recipients.first().map(String::as_str)) {
                self.receipts
                    .push(name, recipients.first().map(String::as_str));
            }
        }
    }

    /// The receipt log.
    pub fn receipts(&self) -> &Receipts {
        &self.receipts
    }

    /// The counts of one recipient (as recorded: see [`crate::sim`]).
    pub fn recipient(&self, recipient: &str) -> CountsSnapshot {
        self.recipients
            .get(recipient)
            .map(|c| c.snapshot())
            .unwrap_or_default()
    }

    /// The counts of one idempotency key.
    pub fn key(&self, key: &str) -> CountsSnapshot {
        self.keys.get(key).map(|c| c.snapshot()).unwrap_or_default()
    }

    /// Forgets everything.
    pub fn reset(&self) {
        self.providers.clear();
        self.recipients.clear();
        self.keys.clear();
        self.unmatched.store(0, Relaxed);
        self.receipts.clear();
    }

    /// The summary served on `GET /_sim/stats`; with `detail`, every
    /// recipient and key too (large after a load test).
    pub fn snapshot(&self, detail: bool) -> StatsSnapshot {
        let providers = self
            .providers
            .iter()
            .map(|e| {
                let c = e.value();
                let l = |a: &AtomicU64| a.load(Relaxed);
                (
                    e.key().clone(),
                    ProviderSnapshot {
                        requests: l(&c.requests),
                        accepted: l(&c.accepted),
                        auth_failed: l(&c.auth_failed),
                        invalid: l(&c.invalid),
                        rate_limited: l(&c.rate_limited),
                        server_errors: l(&c.server_errors),
                        webhooks_delivered: l(&c.webhooks_delivered),
                        webhooks_failed: l(&c.webhooks_failed),
                        webhook_retries: l(&c.webhook_retries),
                    },
                )
            })
            .collect();
        StatsSnapshot {
            providers,
            unmatched_requests: self.unmatched.load(Relaxed),
            recipients: summary(&self.recipients, detail),
            idempotency_keys: summary(&self.keys, detail),
        }
    }
}

fn bump_in(map: &DashMap<String, Counts>, name: &str, bump: impl Fn(&Counts)) {
    if let Some(c) = map.get(name) {
        bump(&c);
        return;
    }
    bump(&map.entry(name.to_owned()).or_default());
}

/// At most this many names are listed as accepted more than once.
const MAX_LISTED_DUPLICATES: usize = 1000;

fn summary(map: &DashMap<String, Counts>, detail: bool) -> MapSummary {
    let mut s = MapSummary::default();
    for e in map.iter() {
        let c = e.value().snapshot();
        s.distinct += 1;
        s.attempts += c.attempts;
        s.accepted += c.accepted;
        if c.accepted > 1 {
            s.accepted_more_than_once += 1;
            if s.duplicates.len() < MAX_LISTED_DUPLICATES {
                s.duplicates.insert(e.key().clone(), c);
            }
        }
        if detail {
            s.all
                .get_or_insert_with(BTreeMap::new)
                .insert(e.key().clone(), c);
        }
    }
    s
}

/// One account's counters as numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSnapshot {
    pub requests: u64,
    pub accepted: u64,
    pub auth_failed: u64,
    pub invalid: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub webhooks_delivered: u64,
    pub webhooks_failed: u64,
    pub webhook_retries: u64,
}

/// Recipients or keys in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapSummary {
    /// Distinct recipients (keys).
    pub distinct: u64,
    pub attempts: u64,
    pub accepted: u64,
    /// How many were accepted more than once (0 = exactly once or never).
    pub accepted_more_than_once: u64,
    /// The first of those, with their counts.
    pub duplicates: BTreeMap<String, CountsSnapshot>,
    /// Every one (`?detail=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<BTreeMap<String, CountsSnapshot>>,
}

/// The body of `GET /_sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub providers: BTreeMap<String, ProviderSnapshot>,
    pub unmatched_requests: u64,
    pub recipients: MapSummary,
    pub idempotency_keys: MapSummary,
}

/// Receipts kept at most (about 100 bytes each); older ones are dropped.
pub const RECEIPT_CAPACITY: usize = 500_000;

/// Most receipts one `GET /_sim/receipts` answers with.
pub const MAX_RECEIPTS_PER_PAGE: usize = 50_000;

/// One accepted send, as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Position in the log, from 1, increasing by one per receipt.
    pub seq: u64,
    /// The `X-Msgengine-Idempotency-Key` (msgengine's message id), else the
    /// first recipient.
    pub key: String,
    /// The first recipient, as recorded.
    pub recipient: Option<String>,
    /// When the send was accepted, µs since the Unix epoch.
    pub at_unix_us: u64,
}

/// A bounded log of receipts (a mutex held for a push or a page copy only,
/// never across an await).
#[derive(Debug)]
pub struct Receipts {
    log: Mutex<ReceiptLog>,
}

#[derive(Debug)]
struct ReceiptLog {
    entries: VecDeque<Receipt>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

impl Default for Receipts {
    fn default() -> Self {
        Self::with_capacity(RECEIPT_CAPACITY)
    }
}

/// A page of receipts: the body of `GET /_sim/receipts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptPage {
    /// Receipts with `seq > since`, oldest first.
    pub receipts: Vec<Receipt>,
    /// Pass this as `since` for the next page (the last `seq` served, or
    /// `since` when there was none).
    pub next_since: u64,
    /// Receipts after `since` that were dropped from the log before this
    /// request (read more often, or the log was full).
    pub missed: u64,
    /// Receipts dropped since start (or the last reset).
    pub dropped_total: u64,
    /// Whether receipts after this page are waiting.
    pub more: bool,
}

impl Receipts {
    /// An empty log keeping at most `capacity` receipts (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            log: Mutex::new(ReceiptLog {
                entries: VecDeque::new(),
                capacity: capacity.max(1),
                next_seq: 1,
                dropped: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReceiptLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs a receipt stamped now.
    pub fn push(&self, key: &str, recipient: Option<&str>) {
        let at_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut log = self.lock();
        if log.entries.len() >= log.capacity {
            log.entries.pop_front();
            log.dropped += 1;
        }
        let seq = log.next_seq;
        log.next_seq += 1;
        log.entries.push_back(Receipt {
            seq,
            key: key.to_owned(),
            recipient: recipient.map(str::to_owned),
            at_unix_us,
        });
    }

    /// Up to `limit` receipts after `since`.
    pub fn page(&self, since: u64, limit: usize) -> ReceiptPage {
        let log = self.lock();
        let Some(first) = log.entries.front().map(|r| r.seq) else {
            return ReceiptPage {
                next_since: since,
                missed: log.next_seq.saturating_sub(since + 1),
                dropped_total: log.dropped,
                ..ReceiptPage::default()
            };
        };
        let missed = first.saturating_sub(since + 1);
        let skip = usize::try_from(since.saturating_sub(first - 1)).unwrap_or(usize::MAX);
        let receipts: Vec<Receipt> = log.entries.iter().skip(skip).take(limit).cloned().collect();
        let next_since = receipts.last().map_or(since.max(first - 1), |r| r.seq);
        ReceiptPage {
            more: next_since + 1 < log.next_seq,
            receipts,
            next_since,
            missed,
            dropped_total: log.dropped,
        }
    }

    /// Forgets every receipt (sequence numbers go on).
    pub fn clear(&self) {
        let mut log = self.lock();
        log.entries.clear();
        log.dropped = 0;
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct ReceiptQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /_sim/receipts?since=SEQ&limit=N` (limit default and most:
/// [`MAX_RECEIPTS_PER_PAGE`]).
pub(crate) async fn get_receipts(
    shared: actix_web::web::Data<super::Shared>,
    query: actix_web::web::Query<ReceiptQuery>,
) -> actix_web::HttpResponse {
    let limit = query
        .limit
        .unwrap_or(MAX_RECEIPTS_PER_PAGE)
        .clamp(1, MAX_RECEIPTS_PER_PAGE);
    actix_web::HttpResponse::Ok().json(shared.stats.receipts.page(query.since, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_attempts_accepts_and_duplicates() {
        let stats = Stats::default();
        stats.record_send(&["+1".into()], Some("k1"), false);
        stats.record_send(&["+1".into()], Some("k1"), true);
        stats.record_send(&["+1".into()], Some("k1"), true);
        stats.record_send(&["+2".into()], None, true);
        assert_eq!(
            stats.recipient("+1"),
            CountsSnapshot {
                attempts: 3,
                accepted: 2
            }
        );
        assert_eq!(stats.key("k1").attempts, 3);
        assert_eq!(stats.key("nope"), CountsSnapshot::default());
        let s = stats.snapshot(false);
        assert_eq!(s.recipients.distinct, 2);
        assert_eq!(s.recipients.accepted_more_than_once, 1);
        assert_eq!(s.idempotency_keys.duplicates.len(), 1);
        assert!(s.recipients.all.is_none());
        assert_eq!(
            stats.snapshot(true).recipients.all.map(|a| a.len()),
            Some(2)
        );
    }

    #[test]
    fn receipts_are_logged_for_accepted_sends_only() {
        let stats = Stats::default();
        stats.record_send(&["+1".into()], Some("k1"), false);
        stats.record_send(&["+1".into()], Some("k1"), true);
        stats.record_send(&["a@example.com".into()], None, true);
        let page = stats.receipts().page(0, 10);
        let keys: Vec<&str> = page.receipts.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["k1", "a@example.com"]);
        assert_eq!(page.receipts[0].recipient.as_deref(), Some("+1"));
        assert_eq!((page.next_since, page.missed, page.more), (2, 0, false));
        assert!(page.receipts[0].at_unix_us > 0);
        assert!(page.receipts[0].at_unix_us <= page.receipts[1].at_unix_us);
        assert!(stats.receipts().page(2, 10).receipts.is_empty());
        assert_eq!(stats.receipts().page(2, 10).next_since, 2);
    }

    #[test]
    fn the_receipt_log_is_bounded_and_reports_what_was_missed() {
        let receipts = Receipts::with_capacity(3);
        for i in 0..5 {
            receipts.push(&format!("k{i}"), None);
        }
        let page = receipts.page(0, 2);
        let seqs: Vec<u64> = page.receipts.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 4]);
        assert_eq!((page.missed, page.dropped_total, page.more), (2, 2, true));
        let rest = receipts.page(page.next_since, 10);
        assert_eq!(rest.receipts.len(), 1);
        assert_eq!(
            (rest.receipts[0].seq, rest.missed, rest.more),
            (5, 0, false)
        );
        receipts.clear();
        let empty = receipts.page(5, 10);
        assert_eq!((empty.next_since, empty.missed), (5, 0));
        receipts.push("k5", None);
        assert_eq!(receipts.page(5, 10).receipts[0].seq, 6);
    }
}

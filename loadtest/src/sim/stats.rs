//! What the simulator received, for exactly-once checks: counters per
//! account (atomics), per recipient and per `X-Msgengine-Idempotency-Key`
//! (dashmap of atomics: a shard lock is held only for the lookup, never
//! across an await).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

//! End-to-end latency from the simulator's receipts.
//!
//! While the run goes, a [`ReceiptCollector`] reads the simulator's receipt
//! log (`GET /_sim/receipts?since=SEQ`, every 500 ms, so the bounded log
//! never drops what was not read yet) and keeps the first receipt time of
//! each idempotency key (msgengine's message id) and how many keys came
//! more than once. [`correlate`] pairs them with the harness's own record
//! of each accepted message (intended send time, 202 time): end-to-end
//! latency counts from the intended send time (the open model's clock),
//! and a second figure from the 202.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::stats::{AcceptMeta, LatencySummary};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    receipts: Vec<Entry>,
    next_since: u64,
    missed: u64,
    more: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    key: String,
    at_unix_us: u64,
}

/// What was read from the simulator's receipt log.
#[derive(Debug, Default)]
pub struct ReceiptCollector {
    since: u64,
    /// First receipt time of each key, µs since the epoch.
    first: HashMap<String, u64>,
    /// Receipts of keys already seen (a message the provider took twice).
    repeats: u64,
    /// Receipts dropped from the log before they were read.
    missed: u64,
}

impl ReceiptCollector {
    /// Records one page's receipts.
    fn take(&mut self, page: Page) {
        self.missed += page.missed;
        self.since = page.next_since;
        for e in page.receipts {
            match self.first.get_mut(&e.key) {
                Some(at) => {
                    self.repeats += 1;
                    *at = (*at).min(e.at_unix_us);
                }
                None => {
                    self.first.insert(e.key, e.at_unix_us);
                }
            }
        }
    }

    /// Reads every receipt logged since the last call.
    pub async fn poll(&mut self, client: &reqwest::Client, sim_base: &str) -> Result<()> {
        loop {
            let page: Page = client
                .get(format!("{sim_base}/_sim/receipts"))
                .query(&[("since", self.since)])
                .send()
                .await
                .context("reading the simulator's receipts")?
                .error_for_status()
                .context("the simulator's receipts")?
                .json()
                .await
                .context("the simulator's receipts are not the expected JSON")?;
            let more = page.more;
            self.take(page);
            if !more {
                return Ok(());
            }
        }
    }

    /// Distinct keys received.
    pub fn keys(&self) -> usize {
        self.first.len()
    }
}

/// A collector polling in the background until [`Polling::finish`].
pub struct Polling {
    stop: watch::Sender<bool>,
    task: JoinHandle<ReceiptCollector>,
}

/// Starts reading the receipt log every 500 ms.
pub fn spawn(sim_base: String) -> Result<Polling> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the simulator client")?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut collector = ReceiptCollector::default();
        let mut errors = 0u32;
        loop {
            if let Err(e) = collector.poll(&client, &sim_base).await {
                errors += 1;
                if errors <= 3 {
                    eprintln!("warning: {e:#}");
                }
            }
            if *stopped.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopped.changed() => {}
            }
        }
        // A last read after the stop, for what came in meanwhile.
        if let Err(e) = collector.poll(&client, &sim_base).await {
            eprintln!("warning: {e:#}");
        }
        collector
    });
    Ok(Polling { stop, task })
}

impl Polling {
    /// Stops polling after one last read; the collected receipts.
    pub async fn finish(self) -> ReceiptCollector {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// One second of receipts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptSecond {
    /// 1 = the first second after the load started.
    pub second: u64,
    /// Our messages the provider received during this second.
    pub received: u64,
    /// End-to-end latency of those messages, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// End-to-end figures of a run.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndToEnd {
    /// Accepted messages the simulator received.
    pub received: u64,
    /// Accepted messages it never received (failed at every provider, or
    /// still under way).
    pub not_received: u64,
    /// Keys received that are not among the accepted ids (requests whose
    /// answer was lost, or another run's).
    pub unknown_keys: u64,
    /// Receipts of a key already received (duplicate deliveries).
    pub repeated_receipts: u64,
    /// Receipts dropped by the simulator's bounded log before they were read.
    pub missed_receipts: u64,
    /// From the request's intended send time to the provider's receipt.
    pub latency_from_send: LatencySummary,
    /// From the 202 to the provider's receipt (0 when it came first).
    pub latency_after_accept: LatencySummary,
    /// Receipts that came before the harness had the 202.
    pub received_before_accept: u64,
    /// Second by second (by receipt time).
    pub series: Vec<ReceiptSecond>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .expect("constant histogram bounds are valid (low >= 1, high >= 2 low, sigfig 3)")
}

/// Pairs accepted ids (with their [`AcceptMeta`], same order) with the
/// receipts; `load_start_us` is the start of the series.
pub fn correlate(
    ids: &[String],
    meta: &[AcceptMeta],
    receipts: &ReceiptCollector,
    load_start_us: u64,
) -> EndToEnd {
    let mut out = EndToEnd {
        repeated_receipts: receipts.repeats,
        missed_receipts: receipts.missed,
        ..EndToEnd::default()
    };
    let mut from_send = histogram();
    let mut after_accept = histogram();
    let mut seconds: BTreeMap<u64, Histogram<u64>> = BTreeMap::new();
    let mut known = 0u64;
    for (i, id) in ids.iter().enumerate() {
        let Some(at) = receipts.first.get(id).copied() else {
            out.not_received += 1;
            continue;
        };
        known += 1;
        out.received += 1;
        let Some(m) = meta.get(i) else { continue };
        let e2e = at.saturating_sub(m.sent_unix_us).clamp(1, 3_600_000_000);
        from_send.saturating_record(e2e);
        if at < m.accepted_unix_us {
            out.received_before_accept += 1;
        }
        after_accept.saturating_record(
            at.saturating_sub(m.accepted_unix_us)
                .clamp(1, 3_600_000_000),
        );
        let second = at.saturating_sub(load_start_us) / 1_000_000 + 1;
        seconds
            .entry(second)
            .or_insert_with(histogram)
            .saturating_record(e2e);
    }
    out.unknown_keys = (receipts.first.len() as u64).saturating_sub(known);
    out.latency_from_send = LatencySummary::from_histogram(&from_send);
    out.latency_after_accept = LatencySummary::from_histogram(&after_accept);
    out.series = seconds
        .into_iter()
        .map(|(second, h)| {
            let s = LatencySummary::from_histogram(&h);
            ReceiptSecond {
                second,
                received: h.len(),
                p50_ms: s.p50_ms,
                p99_ms: s.p99_ms,
            }
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries: &[(&str, u64)], next_since: u64, missed: u64) -> Page {
        Page {
            receipts: entries
                .iter()
                .map(|(k, at)| Entry {
                    key: k.to_string(),
                    at_unix_us: *at,
                })
                .collect(),
            next_since,
            missed,
            more: false,
        }
    }

    #[test]
    fn receipts_pair_with_accepted_messages() {
        let mut c = ReceiptCollector::default();
        let start = 1_000_000_000u64;
        c.take(page(
            &[("a", start + 10_000), ("b", start + 1_500_000)],
            2,
            0,
        ));
        c.take(page(&[("a", start + 20_000), ("stranger", start)], 4, 3));
        assert_eq!(c.since, 4);
        assert_eq!(c.keys(), 3);
        let meta = |sent: u64, accepted: u64| AcceptMeta {
            tenant: 0,
            sent_unix_us: start + sent,
            accepted_unix_us: start + accepted,
        };
        let ids = vec!["a".to_owned(), "b".to_owned(), "lost".to_owned()];
        let e = correlate(
            &ids,
            &[meta(0, 2_000), meta(1_000_000, 1_600_000), meta(0, 1)],
            &c,
            start,
        );
        assert_eq!((e.received, e.not_received, e.unknown_keys), (2, 1, 1));
        assert_eq!((e.repeated_receipts, e.missed_receipts), (1, 3));
        // a: 10 ms after its send; b: 500 ms after its send, before its 202.
        assert!((e.latency_from_send.p50_ms - 10.0).abs() < 0.1, "{e:?}");
        assert!((e.latency_from_send.max_ms - 500.0).abs() < 1.0, "{e:?}");
        assert_eq!(e.received_before_accept, 1);
        assert!((e.latency_after_accept.max_ms - 8.0).abs() < 0.1, "{e:?}");
        let seconds: Vec<(u64, u64)> = e.series.iter().map(|s| (s.second, s.received)).collect();
        assert_eq!(seconds, [(1, 1), (2, 1)]);
    }
}

//! What a load phase measures, and how it is summarised.
//!
//! One [`Recorder`] per run, behind a mutex held only for a few counter
//! updates (never across an `await`): an HDR histogram of accept latency in
//! microseconds for the whole run, one more that is emptied every second
//! for the per-second series, errors by kind, and every accepted message id
//! (kept for the completion check).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::http::ErrorKind;

/// Highest latency the histograms hold exactly (one hour, in µs); larger
/// values are clamped to it.
const MAX_LATENCY_US: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .expect("constant histogram bounds are valid (low >= 1, high >= 2 low, sigfig 3)")
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    /// How many latencies were recorded.
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds (all zero when it is empty).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One second of the load phase (`second` 1 covers 0 s to 1 s after start;
/// the last one may be shorter: see `window_secs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecondSample {
    pub second: u64,
    /// Length of this window, seconds (1 but for the last).
    pub window_secs: f64,
    /// Messages in requests sent during this second.
    pub sent_messages: u64,
    /// Messages accepted (202) by responses that arrived during this second.
    pub accepted_messages: u64,
    /// Requests that failed (any kind) during this second.
    pub errors: u64,
    /// Requests in flight at the end of the second.
    pub in_flight: u64,
    /// Accept latency of the responses of this second.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Failed attempts that were sent again (send-many), by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetryCounts {
    pub total: u64,
    /// Connect errors, timeouts and other transport errors.
    pub transport: u64,
    /// 5xx answers.
    pub http_5xx: u64,
    /// 429 answers.
    pub http_429: u64,
    /// Anything else that was retried (none today).
    pub other: u64,
}

impl RetryCounts {
    fn add(&mut self, kind: ErrorKind) {
        self.total += 1;
        match kind {
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Transport => self.transport += 1,
            ErrorKind::Http(429) => self.http_429 += 1,
            ErrorKind::Http(code) if (500..=599).contains(&code) => self.http_5xx += 1,
            _ => self.other += 1,
        }
    }
}

/// The numbers of a finished load phase.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSummary {
    /// Wall time of the load phase: from the first request to the last
    /// response (open model: at least the schedule's span).
    pub elapsed_secs: f64,
    pub requests_sent: u64,
    pub requests_accepted: u64,
    pub requests_failed: u64,
    pub messages_sent: u64,
    pub messages_accepted: u64,
    /// Messages in requests that failed (not accepted).
    pub messages_failed: u64,
    /// Open model: messages in requests never sent because the in-flight cap
    /// was reached.
    pub messages_not_sent_client_saturated: u64,
    /// Accepted messages per second over `elapsed_secs`.
    pub achieved_accept_rate: f64,
    /// Accept latency (open model: from the intended send time).
    pub accept_latency: LatencySummary,
    /// Failed requests by kind (`http_429_rate_limited`, `http_500`,
    /// `connect`, `timeout`, `not_sent_client_saturated`...). In send-many
    /// mode every retried 429 counts.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Failed attempts that were sent again (send-many).
    pub retries: RetryCounts,
    /// Accepted answers marked `Idempotent-Replayed: true` (a retry whose
    /// first attempt had been accepted, its answer lost).
    pub idempotent_replays: u64,
    /// Ids of replayed answers that were already recorded, so not recorded
    /// again (0 in a sound run).
    pub replayed_ids_already_recorded: u64,
    /// Messages accepted during the warm-up before this phase (`--warmup`):
    /// in the completion check, not in any figure above.
    pub warmup_messages_accepted: u64,
    /// Second by second.
    pub series: Vec<SecondSample>,
}

/// Where and when one accepted message was sent (open model), kept in
/// step with the accepted ids to pair them with the simulator's receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptMeta {
    /// Index of the tenant (API key) that sent it.
    pub tenant: u16,
    /// The request's intended send time, µs since the Unix epoch.
    pub sent_unix_us: u64,
    /// When its 202 arrived, µs since the Unix epoch.
    pub accepted_unix_us: u64,
}

/// Collects a load phase's measurements.
#[derive(Debug)]
pub struct Recorder {
    total: Histogram<u64>,
    interval: Histogram<u64>,
    errors: BTreeMap<ErrorKind, u64>,
    requests_sent: u64,
    requests_accepted: u64,
    requests_failed: u64,
    messages_sent: u64,
    messages_accepted: u64,
    messages_failed: u64,
    messages_saturated: u64,
    second_sent: u64,
    second_accepted: u64,
    second_errors: u64,
    series: Vec<SecondSample>,
    ids: Vec<String>,
    retries: RetryCounts,
    replays: u64,
    replayed_duplicates: u64,
    /// Every recorded id, built at the first replayed answer (no cost
    /// before), to keep a replay from recording ids twice.
    seen: Option<HashSet<String>>,
    /// One per accepted id when every acceptance came with its
    /// [`AcceptMeta`] (open model), else empty.
    meta: Vec<AcceptMeta>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            total: new_histogram(),
            interval: new_histogram(),
            errors: BTreeMap::new(),
            requests_sent: 0,
            requests_accepted: 0,
            requests_failed: 0,
            messages_sent: 0,
            messages_accepted: 0,
            messages_failed: 0,
            messages_saturated: 0,
            second_sent: 0,
            second_accepted: 0,
            second_errors: 0,
            series: Vec::new(),
            ids: Vec::new(),
            retries: RetryCounts::default(),
            replays: 0,
            replayed_duplicates: 0,
            seen: None,
            meta: Vec::new(),
        }
    }

    /// A request of `messages` messages went out.
    pub fn sent(&mut self, messages: u64) {
        self.requests_sent += 1;
        self.messages_sent += messages;
        self.second_sent += messages;
    }

    /// A request was accepted after `latency`, with these ids.
    pub fn accepted(&mut self, latency: Duration, ids: Vec<String>) {
        self.accepted_answer(latency, ids, false);
    }

    /// Like [`Recorder::accepted`]; a `replayed` answer (`Idempotent-Replayed:
    /// true`) is counted as a replay and its ids already recorded are dropped
    /// (counted in `replayed_ids_already_recorded`). Fresh answers are never
    /// deduplicated, so the completion check still sees an id the engine
    /// handed out twice.
    pub fn accepted_answer(&mut self, latency: Duration, mut ids: Vec<String>, replayed: bool) {
        if replayed {
            self.replays += 1;
            let seen = self
                .seen
                .get_or_insert_with(|| self.ids.iter().cloned().collect());
            let before = ids.len();
            ids.retain(|id| seen.insert(id.clone()));
            self.replayed_duplicates += (before - ids.len()) as u64;
        } else if let Some(seen) = &mut self.seen {
            seen.extend(ids.iter().cloned());
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let us = us.clamp(1, MAX_LATENCY_US);
        self.total.saturating_record(us);
        self.interval.saturating_record(us);
        self.requests_accepted += 1;
        self.messages_accepted += ids.len() as u64;
        self.second_accepted += ids.len() as u64;
        if self.ids.is_empty() {
            self.ids = ids;
        } else {
            self.ids.extend(ids);
        }
    }

    /// A sent request of `messages` messages failed with `kind`. A retried
    /// request counts once per failed attempt but its messages only when
    /// `final_attempt` (they are not retried again); a non-final attempt
    /// counts as a retry.
    pub fn failed(&mut self, kind: ErrorKind, messages: u64, final_attempt: bool) {
        *self.errors.entry(kind).or_insert(0) += 1;
        self.second_errors += 1;
        if !final_attempt {
            self.retries.add(kind);
        }
        if final_attempt {
            self.requests_failed += 1;
            self.messages_failed += messages;
        }
    }

    /// Like [`Recorder::accepted`], keeping `meta` for each of the ids.
    pub fn accepted_with(&mut self, latency: Duration, ids: Vec<String>, meta: AcceptMeta) {
        let n = ids.len();
        self.accepted_answer(latency, ids, false);
        self.meta.extend(std::iter::repeat_n(meta, n));
    }

    /// The [`AcceptMeta`] of every accepted id, in id order (taken out of
    /// the recorder; empty unless every acceptance had one).
    pub fn take_meta(&mut self) -> Vec<AcceptMeta> {
        if self.meta.len() == self.ids.len() {
            std::mem::take(&mut self.meta)
        } else {
            Vec::new()
        }
    }

    /// A request of `messages` messages was not sent: the client was at its
    /// in-flight cap.
    pub fn saturated(&mut self, messages: u64) {
        *self.errors.entry(ErrorKind::ClientSaturated).or_insert(0) += 1;
        self.second_errors += 1;
        self.messages_saturated += messages;
    }

    /// Closes the current second of the series and returns it.
    pub fn roll_second(&mut self, in_flight: u64, window_secs: f64) -> SecondSample {
        let latency = LatencySummary::from_histogram(&self.interval);
        self.interval.reset();
        let sample = SecondSample {
            second: self.series.len() as u64 + 1,
            window_secs,
            sent_messages: std::mem::take(&mut self.second_sent),
            accepted_messages: std::mem::take(&mut self.second_accepted),
            errors: std::mem::take(&mut self.second_errors),
            in_flight,
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            max_ms: latency.max_ms,
        };
        self.series.push(sample.clone());
        sample
    }

    /// How many seconds the series holds.
    pub fn seconds_recorded(&self) -> u64 {
        self.series.len() as u64
    }

    /// Whether anything happened since the last [`Recorder::roll_second`].
    pub fn second_has_activity(&self) -> bool {
        self.second_sent + self.second_accepted + self.second_errors > 0
    }

    /// Accept latency of the whole run so far.
    pub fn latency(&self) -> LatencySummary {
        LatencySummary::from_histogram(&self.total)
    }

    /// Messages sent so far.
    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// Messages accepted so far.
    pub fn messages_accepted(&self) -> u64 {
        self.messages_accepted
    }

    /// Failed requests so far, saturation included.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The summary, and the accepted ids (taken out of the recorder).
    pub fn finish(&mut self, elapsed: Duration) -> (LoadSummary, Vec<String>) {
        let secs = elapsed.as_secs_f64();
        let summary = LoadSummary {
            elapsed_secs: secs,
            requests_sent: self.requests_sent,
            requests_accepted: self.requests_accepted,
            requests_failed: self.requests_failed,
            messages_sent: self.messages_sent,
            messages_accepted: self.messages_accepted,
            messages_failed: self.messages_failed,
            messages_not_sent_client_saturated: self.messages_saturated,
            achieved_accept_rate: rate(self.messages_accepted, secs),
            accept_latency: self.latency(),
            errors_by_kind: self
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            retries: self.retries,
            idempotent_replays: self.replays,
            replayed_ids_already_recorded: self.replayed_duplicates,
            warmup_messages_accepted: 0,
            series: self.series.clone(),
        };
        self.seen = None;
        (summary, std::mem::take(&mut self.ids))
    }
}

/// `count / secs`, 0 when no time passed.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// A recorder shared by the tasks of a run.
#[derive(Debug, Default)]
pub struct SharedRecorder(Mutex<Recorder>);

impl SharedRecorder {
    pub fn new() -> Self {
        Self(Mutex::new(Recorder::new()))
    }

    /// Locks it (a panicked holder leaves plain counters behind, still usable).
    pub fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).expect("in range"); // 0.1 ms .. 1000 ms
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 10_000);
        let close = |a: f64, b: f64| (a - b).abs() / b < 0.002;
        assert!(close(s.p50_ms, 500.0), "{s:?}");
        assert!(close(s.p90_ms, 900.0), "{s:?}");
        assert!(close(s.p99_ms, 990.0), "{s:?}");
        assert!(close(s.p999_ms, 999.0), "{s:?}");
        assert!(close(s.max_ms, 1000.0), "{s:?}");
        assert!(close(s.mean_ms, 500.05), "{s:?}");
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(
            LatencySummary::from_histogram(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn recorder_counts_and_series() {
        let mut r = Recorder::new();
        r.sent(2);
        r.accepted(ms(5), vec!["a".into(), "b".into()]);
        r.sent(1);
        r.failed(ErrorKind::Http(429), 1, false);
        r.failed(ErrorKind::Http(429), 1, true);
        r.saturated(3);
        let first = r.roll_second(4, 1.0);
        assert_eq!(first.second, 1);
        assert_eq!(first.sent_messages, 3);
        assert_eq!(first.accepted_messages, 2);
        assert_eq!(first.errors, 3);
        assert_eq!(first.in_flight, 4);
        assert!((first.p99_ms - 5.0).abs() < 0.01);
        r.sent(1);
        r.accepted(Duration::ZERO, vec!["c".into()]);
        let second = r.roll_second(0, 0.5);
        assert_eq!(r.seconds_recorded(), 2);
        assert_eq!(second.second, 2);
        assert_eq!(second.accepted_messages, 1);
        let (summary, ids) = r.finish(Duration::from_secs(2));
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(summary.messages_sent, 4);
        assert_eq!(summary.messages_accepted, 3);
        assert_eq!(summary.messages_failed, 1);
        assert_eq!(summary.requests_failed, 1);
        assert_eq!(summary.messages_not_sent_client_saturated, 3);
        assert_eq!(summary.errors_by_kind["http_429_rate_limited"], 2);
        assert_eq!(summary.errors_by_kind["not_sent_client_saturated"], 1);
        assert!((summary.achieved_accept_rate - 1.5).abs() < 1e-9);
        assert_eq!(summary.accept_latency.count, 2);
        assert_eq!(summary.series.len(), 2);
        assert_eq!(summary.retries.total, 1);
        assert_eq!(summary.retries.http_429, 1);
        assert_eq!(summary.idempotent_replays, 0);
    }

    #[test]
    fn replayed_answers_are_not_recorded_twice() {
        let mut r = Recorder::new();
        r.failed(ErrorKind::Transport, 2, false);
        r.failed(ErrorKind::Http(503), 2, false);
        r.accepted_answer(ms(1), vec!["a".into(), "b".into()], false);
        // A replay of the same batch: nothing new.
        r.accepted_answer(ms(1), vec!["a".into(), "b".into()], true);
        // A replay of a batch whose first answer was lost: recorded.
        r.accepted_answer(ms(1), vec!["c".into()], true);
        // A fresh answer repeating an id stays visible to the completion check.
        r.accepted_answer(ms(1), vec!["c".into()], false);
        let (summary, ids) = r.finish(Duration::from_secs(1));
        assert_eq!(ids, ["a", "b", "c", "c"]);
        assert_eq!(summary.messages_accepted, 4);
        assert_eq!(summary.idempotent_replays, 2);
        assert_eq!(summary.replayed_ids_already_recorded, 2);
        assert_eq!(
            summary.retries,
            RetryCounts {
                total: 2,
                transport: 1,
                http_5xx: 1,
                http_429: 0,
                other: 0
            }
        );
    }

    #[test]
    fn huge_latencies_are_clamped() {
        let mut r = Recorder::new();
        r.accepted(Duration::from_secs(100_000), vec!["x".into()]);
        assert!(r.latency().max_ms <= 3_600_000.0 * 1.001);
    }
}

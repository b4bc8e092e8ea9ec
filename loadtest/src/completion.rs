//! The completion check: did every accepted message reach a terminal state?
//!
//! After the load phase the harness polls `GET /api/messaging/status/{id}`
//! for every accepted id that is not yet known to be terminal, with bounded
//! concurrency, in rounds at least `poll_interval` apart, until none is left
//! or `drain_timeout` has passed. A message counts as not terminal only if a
//! round that began after the timeout still saw it unfinished (so a slow
//! first pass over many ids cannot time out messages it never re-polled).
//! Terminal, for the harness, is `delivered | read | failed | bounced |
//! rejected | expired`. The moment a message became terminal is the
//! timestamp of its first terminal event as the engine recorded it (same
//! machine, same clock), so the end-to-end delivered throughput does not
//! depend on how fast the harness polls.
//!
//! Before the first full pass it polls only the newest few accepted ids
//! until they are terminal: the engine works roughly in acceptance order, so
//! the full pass then finds nearly everything terminal at once, instead of
//! re-polling every id while the engine is still delivering (which would
//! take engine time away from the deliveries being measured).
//!
//! For a spread sample of the accepted ids (up to `history_sample`), each
//! one found delivered also has its status history checked: events in order
//! `accepted, queued, sending, sent, delivered` (retries may repeat
//! `queued`/`sending`), never moving backwards, timestamps not decreasing
//! (`at` is when the engine recorded each event; a provider's own time is
//! `providerAt`, not checked), and `attemptCount >= 1`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http::{Api, ErrorKind, StatusDoc, StatusOutcome};
use crate::stats::rate;

/// The states after which the harness stops watching a message.
pub const TERMINAL_STATES: [&str; 6] = [
    "delivered",
    "read",
    "failed",
    "bounced",
    "rejected",
    "expired",
];

/// Whether the harness is done with a message in `state`.
pub fn is_terminal(state: &str) -> bool {
    TERMINAL_STATES.contains(&state)
}

/// Whether `state` means the message reached its recipient.
pub fn is_delivered(state: &str) -> bool {
    matches!(state, "delivered" | "read")
}

/// Progress order of the engine's states (`queued` and `sending` share a
/// rank: retries move between them); `None` for an unknown state.
pub fn rank(state: &str) -> Option<u8> {
    Some(match state {
        "scheduled" => 0,
        "accepted" => 1,
        "queued" | "sending" => 2,
        "sent" => 3,
        "delivered" => 4,
        "read" => 5,
        "failed" | "bounced" | "rejected" | "expired" => 6,
        _ => return None,
    })
}

/// The path every delivered message's history must contain, in order.
pub const DELIVERED_PATH: [&str; 5] = ["accepted", "queued", "sending", "sent", "delivered"];

/// Checks a delivered message's status history (see the module docs).
pub fn check_history(doc: &StatusDoc) -> Result<(), String> {
    match doc.attempt_count {
        Some(n) if n >= 1 => {}
        other => return Err(format!("attemptCount is {other:?}, expected >= 1")),
    }
    let states: Vec<&str> = doc.events.iter().map(|e| e.state.as_str()).collect();
    if states.first() != Some(&"accepted") {
        return Err(format!("history does not start with accepted: {states:?}"));
    }
    // The states the message moved through. A provider report that arrives
    // late (Twilio's `sent` after its `delivered`) is kept in the history,
    // marked by `providerAt`, and moves nothing: it is left out here.
    let mut moved: Vec<&str> = Vec::with_capacity(states.len());
    let mut previous_rank = 0;
    for event in &doc.events {
        let state = event.state.as_str();
        let r = rank(state).ok_or_else(|| format!("unknown state {state:?} in {states:?}"))?;
        if r < previous_rank {
            if event.provider_at.is_some() {
                continue;
            }
            return Err(format!("history moves backwards at {state:?}: {states:?}"));
        }
        previous_rank = r;
        moved.push(state);
    }
    let states = moved;
    let mut path = DELIVERED_PATH.iter().peekable();
    for state in &states {
        if path.peek() == Some(&state) {
            path.next();
        }
    }
    if path.peek().is_some() {
        return Err(format!(
            "history lacks the path {DELIVERED_PATH:?} in order: {states:?}"
        ));
    }
    if !states.last().is_some_and(|s| is_delivered(s)) {
        return Err(format!("history does not end delivered: {states:?}"));
    }
    let mut previous: Option<DateTime<Utc>> = None;
    for event in &doc.events {
        let at = event
            .at
            .as_deref()
            .and_then(parse_time)
            .ok_or_else(|| format!("event {:?} has no valid timestamp", event.state))?;
        if previous.is_some_and(|p| at < p) {
            return Err(format!(
                "timestamps decrease at {:?}: {states:?}",
                event.state
            ));
        }
        previous = Some(at);
    }
    Ok(())
}

/// When the message became terminal by the engine's record: its first
/// terminal event's time, else `updatedAt`.
pub fn terminal_time(doc: &StatusDoc) -> Option<DateTime<Utc>> {
    doc.events
        .iter()
        .find(|e| is_terminal(&e.state))
        .and_then(|e| e.at.as_deref())
        .or(doc.updated_at.as_deref())
        .and_then(parse_time)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How the completion check polls.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionConfig {
    #[serde(serialize_with = "secs")]
    pub drain_timeout: Duration,
    #[serde(serialize_with = "secs")]
    pub poll_interval: Duration,
    /// Status requests in flight at once.
    pub concurrency: usize,
    /// How many accepted ids (spread evenly) get their history checked.
    pub history_sample: usize,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The sampled history check.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryCheck {
    /// Delivered messages of the sample whose history was checked.
    pub checked: u64,
    pub passed: u64,
    pub failed: u64,
    /// The first few problems, with their message ids.
    pub failures: Vec<String>,
}

/// What the completion check found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionSummary {
    pub accepted: u64,
    /// Ids the engine handed out more than once.
    pub duplicate_ids: u64,
    pub terminal: u64,
    pub terminal_by_state: BTreeMap<String, u64>,
    /// `delivered` or `read`.
    pub delivered: u64,
    pub not_terminal: u64,
    /// The not-terminal ones by their last known state, or by the error of
    /// their last status request (`unknown:http_404`...).
    pub not_terminal_by_last_state: BTreeMap<String, u64>,
    /// From the end of the load phase until every message was known terminal
    /// (or the timeout).
    pub drain_secs: f64,
    pub timed_out: bool,
    /// Rounds polling only the newest messages, before the full passes.
    pub probe_rounds: u64,
    /// Full passes over the messages not yet known terminal.
    pub rounds: u64,
    pub status_requests: u64,
    pub status_errors_by_kind: BTreeMap<String, u64>,
    /// When the last message became terminal, in seconds after the load
    /// started (engine timestamps).
    pub last_terminal_secs: Option<f64>,
    /// Delivered messages / `last_terminal_secs`.
    pub end_to_end_delivered_per_sec: Option<f64>,
    pub history_check: HistoryCheck,
}

impl CompletionSummary {
    /// Adds another tenant's check to this one (the status API is per
    /// organization, so a run with several tenants drains each apart):
    /// counts add up, times are the longest, the delivered rate is
    /// recomputed over the latest terminal time.
    pub fn merge(&mut self, other: CompletionSummary) {
        fn add(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
            for (k, v) in from {
                *into.entry(k).or_insert(0) += v;
            }
        }
        self.accepted += other.accepted;
        self.duplicate_ids += other.duplicate_ids;
        self.terminal += other.terminal;
        add(&mut self.terminal_by_state, other.terminal_by_state);
        self.delivered += other.delivered;
        self.not_terminal += other.not_terminal;
        add(
            &mut self.not_terminal_by_last_state,
            other.not_terminal_by_last_state,
        );
        self.drain_secs = self.drain_secs.max(other.drain_secs);
        self.timed_out |= other.timed_out;
        self.probe_rounds = self.probe_rounds.max(other.probe_rounds);
        self.rounds = self.rounds.max(other.rounds);
        self.status_requests += other.status_requests;
        add(&mut self.status_errors_by_kind, other.status_errors_by_kind);
        self.last_terminal_secs = match (self.last_terminal_secs, other.last_terminal_secs) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.end_to_end_delivered_per_sec = self
            .last_terminal_secs
            .map(|secs| rate(self.delivered, secs));
        let h = &mut self.history_check;
        let o = other.history_check;
        h.checked += o.checked;
        h.passed += o.passed;
        h.failed += o.failed;
        let room = 10usize.saturating_sub(h.failures.len());
        h.failures.extend(o.failures.into_iter().take(room));
    }
}

enum Poll {
    Terminal {
        state: String,
        at: DateTime<Utc>,
        history: Option<Result<(), String>>,
    },
    Pending(String),
    Error(ErrorKind),
}

/// Every `stride`-th accepted id is in the history sample.
pub fn sample_stride(accepted: usize, sample: usize) -> usize {
    if sample == 0 {
        return usize::MAX;
    }
    accepted.div_ceil(sample).max(1)
}

fn count_duplicates(ids: &[String]) -> u64 {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().filter(|id| !seen.insert(id.as_str())).count() as u64
}

/// Polls until every id is terminal or the drain timeout passes.
pub async fn drain(
    api: Arc<Api>,
    auth: HeaderValue,
    ids: Arc<Vec<String>>,
    load_started_at: SystemTime,
    config: &CompletionConfig,
) -> CompletionSummary {
    let load_start: DateTime<Utc> = load_started_at.into();
    let start = Instant::now();
    let deadline = start + config.drain_timeout;
    let stride = sample_stride(ids.len(), config.history_sample);
    let mut summary = CompletionSummary {
        accepted: ids.len() as u64,
        duplicate_ids: count_duplicates(&ids),
        ..CompletionSummary::default()
    };
    let mut last_terminal: Option<DateTime<Utc>> = None;
    let mut pending: Vec<usize> = (0..ids.len()).collect();
    let mut last_seen: Vec<(usize, String)> = Vec::new();
    let mut last_print = Instant::now();
    println!(
        "completion: checking {} accepted messages (status polls, {} in flight)",
        ids.len(),
        config.concurrency
    );

    wait_for_newest(&api, &auth, &ids, deadline, config, &mut summary).await;

    while !pending.is_empty() {
        let round_start = Instant::now();
        summary.rounds += 1;
        summary.status_requests += pending.len() as u64;
        let results = poll_round(&api, &auth, &ids, pending, stride, config.concurrency).await;
        let mut still = Vec::new();
        last_seen.clear();
        for (idx, poll) in results {
            match poll {
                Poll::Terminal { state, at, history } => {
                    summary.terminal += 1;
                    if is_delivered(&state) {
                        summary.delivered += 1;
                    }
                    *summary.terminal_by_state.entry(state).or_insert(0) += 1;
                    last_terminal = Some(last_terminal.map_or(at, |t| t.max(at)));
                    if let Some(result) = history {
                        let check = &mut summary.history_check;
                        check.checked += 1;
                        match result {
                            Ok(()) => check.passed += 1,
                            Err(problem) => {
                                check.failed += 1;
                                if check.failures.len() < 10 {
                                    check.failures.push(format!("{}: {problem}", ids[idx]));
                                }
                            }
                        }
                    }
                }
                Poll::Pending(state) => {
                    still.push(idx);
                    last_seen.push((idx, state));
                }
                Poll::Error(kind) => {
                    *summary
                        .status_errors_by_kind
                        .entry(kind.to_string())
                        .or_insert(0) += 1;
                    still.push(idx);
                    last_seen.push((idx, format!("unknown:{kind}")));
                }
            }
        }
        // Poll in acceptance order next round too (oldest first).
        still.sort_unstable();
        pending = still;
        let now = Instant::now();
        if now.duration_since(last_print) >= Duration::from_secs(1) || pending.is_empty() {
            last_print = now;
            println!(
                "completion: {}/{} terminal, {} pending ({:.1} s)",
                summary.terminal,
                summary.accepted,
                pending.len(),
                now.duration_since(start).as_secs_f64()
            );
        }
        if pending.is_empty() {
            break;
        }
        if round_start >= deadline {
            // This round began after the deadline: what is still pending
            // was seen unfinished after the whole drain timeout.
            summary.timed_out = true;
            break;
        }
        // The last round starts at the deadline at the latest, even when
        // polling itself took longer than the timeout.
        let next_round = (round_start + config.poll_interval).min(deadline.max(now));
        tokio::time::sleep_until(next_round).await;
    }

    summary.drain_secs = start.elapsed().as_secs_f64();
    summary.not_terminal = pending.len() as u64;
    for (_, state) in last_seen {
        *summary.not_terminal_by_last_state.entry(state).or_insert(0) += 1;
    }
    if let Some(last) = last_terminal {
        let secs = (last - load_start).num_microseconds().unwrap_or(0) as f64 / 1e6;
        summary.last_terminal_secs = Some(secs);
        summary.end_to_end_delivered_per_sec = Some(rate(summary.delivered, secs));
    }
    summary
}

/// How many of the newest accepted ids are watched before the full pass.
pub const NEWEST_PROBES: usize = 16;

/// Before the first full pass, polls only the newest accepted messages until
/// they are all terminal (or the deadline): the engine works roughly in
/// acceptance order, so the full pass then finds nearly everything done in
/// one round instead of competing with the engine's deliveries with
/// repeated polls of every id.
async fn wait_for_newest(
    api: &Arc<Api>,
    auth: &HeaderValue,
    ids: &Arc<Vec<String>>,
    deadline: Instant,
    config: &CompletionConfig,
    summary: &mut CompletionSummary,
) {
    let probes: Vec<usize> = (ids.len().saturating_sub(NEWEST_PROBES)..ids.len()).collect();
    if probes.is_empty() {
        return;
    }
    let start = Instant::now();
    let mut last_print = start;
    loop {
        let round_start = Instant::now();
        summary.probe_rounds += 1;
        summary.status_requests += probes.len() as u64;
        let results = poll_round(
            api,
            auth,
            ids,
            probes.clone(),
            usize::MAX,
            config.concurrency,
        )
        .await;
        let done = results
            .iter()
            .filter(|(_, p)| matches!(p, Poll::Terminal { .. }))
            .count();
        let now = Instant::now();
        if done == probes.len() || round_start >= deadline {
            return;
        }
        if now.duration_since(last_print) >= Duration::from_secs(1) {
            last_print = now;
            println!(
                "completion: waiting for the newest messages ({done}/{} terminal, {:.1} s)",
                probes.len(),
                now.duration_since(start).as_secs_f64()
            );
        }
        let next_round = (round_start + config.poll_interval).min(deadline.max(now));
        tokio::time::sleep_until(next_round).await;
    }
}

/// One status request per pending id, `concurrency` at a time.
async fn poll_round(
    api: &Arc<Api>,
    auth: &HeaderValue,
    ids: &Arc<Vec<String>>,
    pending: Vec<usize>,
    stride: usize,
    concurrency: usize,
) -> Vec<(usize, Poll)> {
    let pending = Arc::new(pending);
    let cursor = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, pending.len().max(1)) {
        let api = Arc::clone(api);
        let auth = auth.clone();
        let ids = Arc::clone(ids);
        let pending = Arc::clone(&pending);
        let cursor = Arc::clone(&cursor);
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let k = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(&idx) = pending.get(k) else { break };
                let poll = match api.status(&auth, &ids[idx]).await {
                    StatusOutcome::Failed(kind) => Poll::Error(kind),
                    StatusOutcome::Found(doc) if is_terminal(&doc.status) => {
                        let history = (idx % stride == 0 && is_delivered(&doc.status))
                            .then(|| check_history(&doc));
                        Poll::Terminal {
                            at: terminal_time(&doc).unwrap_or_else(Utc::now),
                            state: doc.status,
                            history,
                        }
                    }
                    StatusOutcome::Found(doc) => Poll::Pending(doc.status),
                };
                out.push((idx, poll));
            }
            out
        });
    }
    let mut results = Vec::with_capacity(pending.len());
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(part) => results.extend(part),
            // A worker that panicked leaves its ids unreported: they stay
            // pending (re-polled next round).
            Err(e) => eprintln!("warning: a status poller stopped: {e}"),
        }
    }
    let reported: HashSet<usize> = results.iter().map(|(i, _)| *i).collect();
    for &idx in pending.iter() {
        if !reported.contains(&idx) {
            results.push((idx, Poll::Error(ErrorKind::Transport)));
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: serde_json::Value) -> StatusDoc {
        serde_json::from_value(value).expect("a status document")
    }

    fn delivered_doc(states: &[&str], attempts: i64) -> StatusDoc {
        let events: Vec<_> = states
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"state": s, "at": format!("2025-01-01T00:00:0{i}.5+00:00"), "reason": null}))
            .collect();
        doc(
            json!({"status": states.last().copied().unwrap_or("accepted"),
                   "attemptCount": attempts, "events": events}),
        )
    }

    #[test]
    fn terminal_states() {
        for s in [
            "delivered",
            "read",
            "failed",
            "bounced",
            "rejected",
            "expired",
        ] {
            assert!(is_terminal(s), "{s}");
        }
        for s in [
            "scheduled",
            "accepted",
            "queued",
            "sending",
            "sent",
            "weird",
        ] {
            assert!(!is_terminal(s), "{s}");
        }
        assert!(is_delivered("read") && is_delivered("delivered") && !is_delivered("failed"));
    }

    #[test]
    fn a_normal_history_passes() {
        let d = delivered_doc(&DELIVERED_PATH, 1);
        assert_eq!(check_history(&d), Ok(()));
        let with_retry = delivered_doc(
            &[
                "accepted",
                "queued",
                "sending",
                "queued",
                "sending",
                "sent",
                "delivered",
            ],
            2,
        );
        assert_eq!(check_history(&with_retry), Ok(()));
        let read = delivered_doc(
            &["accepted", "queued", "sending", "sent", "delivered", "read"],
            1,
        );
        assert_eq!(check_history(&read), Ok(()));
    }

    #[test]
    fn bad_histories_fail() {
        assert!(check_history(&delivered_doc(&DELIVERED_PATH, 0)).is_err());
        assert!(check_history(&delivered_doc(
            &["accepted", "queued", "sending", "delivered"],
            1
        ))
        .is_err());
        assert!(check_history(&delivered_doc(
            &["queued", "sending", "sent", "delivered"],
            1
        ))
        .is_err());
        assert!(check_history(&delivered_doc(
            &[
                "accepted",
                "queued",
                "sending",
                "sent",
                "queued",
                "delivered"
            ],
            1
        ))
        .is_err());
        assert!(check_history(&delivered_doc(
            &["accepted", "queued", "sending", "sent", "delivered", "sent"],
            1
        ))
        .is_err());
        let mut out_of_time = delivered_doc(&DELIVERED_PATH, 1);
        out_of_time.events[2].at = Some("2024-12-31T23:59:59Z".into());
        assert!(check_history(&out_of_time)
            .unwrap_err()
            .contains("timestamps decrease"));
        // Even half a second back is a failure: `at` is the engine's own
        // recording time.
        let mut half_second = delivered_doc(&DELIVERED_PATH, 1);
        half_second.events[4].at = Some("2025-01-01T00:00:03+00:00".into());
        assert!(check_history(&half_second).is_err());
        // A provider's late report (Twilio's `sent` after its `delivered`)
        // is kept in the history with `providerAt` and moves nothing: fine.
        // The same entry written by the engine itself is a step backwards.
        let mut late = delivered_doc(
            &["accepted", "queued", "sending", "sent", "delivered", "sent"],
            1,
        );
        late.events[5].provider_at = Some("2025-01-01T00:00:03Z".into());
        assert!(check_history(&late).is_ok());
        late.events[5].provider_at = None;
        assert!(check_history(&late).is_err());
        let mut no_time = delivered_doc(&DELIVERED_PATH, 1);
        no_time.events[4].at = None;
        assert!(check_history(&no_time).is_err());
    }

    #[test]
    fn terminal_time_is_the_first_terminal_event() {
        let d = delivered_doc(
            &["accepted", "queued", "sending", "sent", "delivered", "read"],
            1,
        );
        assert_eq!(
            terminal_time(&d).map(|t| t.to_rfc3339()),
            Some("2025-01-01T00:00:04.500+00:00".to_owned())
        );
        let no_events = doc(json!({"status": "failed", "updatedAt": "2025-01-01T00:00:09Z"}));
        assert_eq!(
            terminal_time(&no_events).map(|t| t.timestamp()),
            Some(1_735_689_609)
        );
    }

    #[test]
    fn sample_is_spread() {
        assert_eq!(sample_stride(100_000, 1000), 100);
        assert_eq!(sample_stride(500, 1000), 1);
        assert_eq!(sample_stride(1001, 1000), 2);
        assert_eq!(sample_stride(0, 1000), 1);
        assert_eq!(sample_stride(10, 0), usize::MAX);
        let n = 123_457;
        let stride = sample_stride(n, 1000);
        assert!((0..n).filter(|i| i % stride == 0).count() <= 1000);
    }

    #[test]
    fn duplicates_are_counted() {
        let ids: Vec<String> = ["a", "b", "a", "c", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(count_duplicates(&ids), 2);
    }

    #[test]
    fn merged_checks_add_counts_and_keep_the_latest_time() {
        let mut a = CompletionSummary {
            accepted: 10,
            terminal: 10,
            delivered: 10,
            drain_secs: 1.0,
            last_terminal_secs: Some(2.0),
            ..CompletionSummary::default()
        };
        a.terminal_by_state.insert("delivered".into(), 10);
        let mut b = CompletionSummary {
            accepted: 5,
            terminal: 4,
            delivered: 3,
            not_terminal: 1,
            drain_secs: 3.0,
            timed_out: true,
            last_terminal_secs: Some(4.0),
            ..CompletionSummary::default()
        };
        b.terminal_by_state.insert("delivered".into(), 3);
        b.terminal_by_state.insert("failed".into(), 1);
        a.merge(b);
        assert_eq!(
            (a.accepted, a.terminal, a.delivered, a.not_terminal),
            (15, 14, 13, 1)
        );
        assert_eq!(a.terminal_by_state["delivered"], 13);
        assert_eq!(a.terminal_by_state["failed"], 1);
        assert!(a.timed_out);
        assert_eq!(a.drain_secs, 3.0);
        assert_eq!(a.last_terminal_secs, Some(4.0));
        assert_eq!(a.end_to_end_delivered_per_sec, Some(13.0 / 4.0));
    }
}

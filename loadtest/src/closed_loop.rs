//! The closed-loop load phase (`send-many`): the "small script" of the send
//! pipeline's acceptance test.
//!
//! `concurrency` workers each take the next batch of the `count` messages,
//! send it and wait for the answer before taking another, so the engine
//! sets the pace ("as fast as allowed").
//!
//! Every batch carries a stable `Idempotency-Key` (`load-<run id>-<batch
//! index>`, the run id random per invocation), so the same request (same key,
//! same body bytes) can be sent again safely: the engine replays the first
//! 202 (`Idempotent-Replayed: true`) instead of creating the messages twice.
//! A 429 is retried after the server's `Retry-After` (1 s when absent);
//! transport errors (connect, reset, timeout) and 5xx are retried after a
//! backoff of 200 ms doubling to 5 s (or the server's `Retry-After`), so a run
//! survives an engine restart. A batch is given up after `max_retries`
//! retries or when the next attempt would start past `retry_deadline` from
//! its first; anything else (a malformed 202, a 4xx) is not retried. Every
//! failed attempt is counted by kind, every retry by cause, every replayed
//! answer as a replay. Latency counts from the start of the attempt that was
//! accepted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use tokio::task::JoinSet;
use tokio::time::Instant;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

use crate::http::{Api, ErrorKind, SendOutcome};
use crate::open_loop::LoadOutcome;
use crate::payload::{request_body, Channel};
use crate::progress;
use crate::stats::SharedRecorder;

/// What `send-many` sends.
#[derive(Debug, Clone)]
pub struct ClosedLoopConfig {
    pub count: u64,
    pub batch_size: u32,
    pub concurrency: usize,
    pub channel: Channel,
    /// How often one request is sent again (after a 429, a 5xx or a
    /// transport error).
    pub max_retries: u32,
    /// No retry of a request starts later than this after its first attempt.
    pub retry_deadline: Duration,
}

/// The first backoff after a transport error or a 5xx.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A random id for this run's idempotency keys (16 hex digits).
pub fn run_id() -> String {
    let mut h = RandomState::new().build_hasher();
    SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The `Idempotency-Key` of batch `i` of run `run_id`.
pub fn idempotency_key(run_id: &str, i: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("load-{run_id}-{i}"))
        .expect("an ASCII run id and a number make a valid header value")
}

/// How many requests `count` messages in batches of `batch_size` take, and
/// how many messages request `i` holds.
pub fn batch_plan(count: u64, batch_size: u32, i: u64) -> (u64, usize) {
    let batch = u64::from(batch_size.max(1));
    let requests = count.div_ceil(batch);
    if i >= requests {
        return (requests, 0);
    }
    let first = i * batch;
    (requests, (count - first).min(batch) as usize)
}

/// The wait before retrying after a 429: `Retry-After`, else 1 s, at most 60 s.
pub fn retry_delay(retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(60))
}

/// The wait before retrying an attempt that failed with `kind`: for a 429
/// [`retry_delay`]; otherwise the server's `Retry-After` (at most 60 s) or
/// the current `backoff`.
pub fn retry_wait(kind: ErrorKind, retry_after: Option<Duration>, backoff: Duration) -> Duration {
    match (kind, retry_after) {
        (ErrorKind::Http(429), _) => retry_delay(retry_after),
        (_, Some(after)) => after.min(Duration::from_secs(60)),
        (_, None) => backoff,
    }
}

/// Sends every message and returns the load phase's outcome.
pub async fn run(api: Arc<Api>, auth: HeaderValue, config: ClosedLoopConfig) -> LoadOutcome {
    run_with_id(api, auth, config, &run_id()).await
}

/// [`run`] with a given run id (tests).
pub async fn run_with_id(
    api: Arc<Api>,
    auth: HeaderValue,
    config: ClosedLoopConfig,
    run_id: &str,
) -> LoadOutcome {
    let recorder = Arc::new(SharedRecorder::new());
    let next = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(AtomicU64::new(0));
    let started_at = SystemTime::now();
    let start = Instant::now();
    let ticker = {
        let in_flight = Arc::clone(&in_flight);
        progress::spawn_ticker(start, Arc::clone(&recorder), move || {
            in_flight.load(Ordering::Relaxed)
        })
    };

    let mut workers = JoinSet::new();
    for _ in 0..config.concurrency.max(1) {
        let api = Arc::clone(&api);
        let auth = auth.clone();
        let recorder = Arc::clone(&recorder);
        let next = Arc::clone(&next);
        let in_flight = Arc::clone(&in_flight);
        let config = config.clone();
        let run_id = run_id.to_owned();
        workers.spawn(async move {
            let batch_form = config.batch_size > 1;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (_, count) = batch_plan(config.count, config.batch_size, i);
                if count == 0 {
                    break;
                }
                let first = i * u64::from(config.batch_size);
                let body = request_body(config.channel, first, count, batch_form);
                let key = idempotency_key(&run_id, i);
                let deadline = Instant::now() + config.retry_deadline;
                let mut retries = 0;
                let mut backoff = BACKOFF_INITIAL;
                recorder.lock().sent(count as u64);
                loop {
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    // The same key and the same body bytes on every attempt.
                    let outcome = api.send_keyed(&auth, body.clone(), count, Some(&key)).await;
                    let latency = t0.elapsed();
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    match outcome {
                        SendOutcome::Accepted { ids, replayed } => {
                            recorder.lock().accepted_answer(latency, ids, replayed);
                            break;
                        }
                        SendOutcome::Failed { kind, retry_after } => {
                            let wait = retry_wait(kind, retry_after, backoff);
                            let retry = kind.is_retryable()
                                && retries < config.max_retries
                                && Instant::now() + wait <= deadline;
                            recorder.lock().failed(kind, count as u64, !retry);
                            if !retry {
                                break;
                            }
                            retries += 1;
                            if kind != ErrorKind::Http(429) {
                                backoff = (backoff * 2).min(BACKOFF_MAX);
                            }
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}

    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    progress::stop_ticker(ticker, start, &recorder);
    let (summary, ids) = recorder.lock().finish(elapsed);
    LoadOutcome {
        summary,
        ids,
        meta: Vec::new(),
        started_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_the_count_exactly() {
        assert_eq!(batch_plan(100_000, 1000, 0), (100, 1000));
        assert_eq!(batch_plan(100_000, 1000, 99), (100, 1000));
        assert_eq!(batch_plan(100_000, 1000, 100), (100, 0));
        assert_eq!(batch_plan(2500, 1000, 2), (3, 500));
        assert_eq!(batch_plan(3, 1, 2), (3, 1));
        assert_eq!(batch_plan(0, 10, 0), (0, 0));
        let total: usize = (0..3).map(|i| batch_plan(2500, 1000, i).1).sum();
        assert_eq!(total, 2500);
    }

    #[test]
    fn keys_are_stable_per_batch_and_distinct_per_run() {
        assert_eq!(idempotency_key("abc", 7), "load-abc-7");
        let (a, b) = (run_id(), run_id());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }

    #[test]
    fn retries_wait_for_backoff_or_retry_after() {
        let b = Duration::from_millis(400);
        assert_eq!(retry_wait(ErrorKind::Transport, None, b), b);
        assert_eq!(retry_wait(ErrorKind::Http(503), None, b), b);
        assert_eq!(
            retry_wait(ErrorKind::Http(503), Some(Duration::from_secs(2)), b),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_wait(ErrorKind::Http(429), None, b),
            Duration::from_secs(1)
        );
        assert!(ErrorKind::Connect.is_retryable());
        assert!(ErrorKind::Timeout.is_retryable());
        assert!(ErrorKind::Http(502).is_retryable());
        assert!(!ErrorKind::Http(400).is_retryable());
        assert!(!ErrorKind::BadResponse.is_retryable());
    }

    #[test]
    fn retry_delay_honours_retry_after() {
        assert_eq!(
            retry_delay(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(retry_delay(None), Duration::from_secs(1));
        assert_eq!(
            retry_delay(Some(Duration::from_secs(600))),
            Duration::from_secs(60)
        );
    }
}

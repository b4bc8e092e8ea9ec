//! The closed-loop load phase (`send-many`): the "small script" of the send
//! pipeline's acceptance test.
//!
//! `concurrency` workers each take the next batch of the `count` messages,
//! send it and wait for the answer before taking another, so the engine
//! sets the pace ("as fast as allowed"). A 429 is counted as
//! `http_429_rate_limited` and the same request is sent again after the
//! server's `Retry-After` (1 s when absent), up to `max_retries` times. Any
//! other failure is counted and its messages are not retried. Latency counts
//! from the start of the attempt that was accepted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use tokio::task::JoinSet;
use tokio::time::Instant;

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
    /// How often one request is sent again after a 429.
    pub max_retries: u32,
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

/// Sends every message and returns the load phase's outcome.
pub async fn run(api: Arc<Api>, auth: HeaderValue, config: ClosedLoopConfig) -> LoadOutcome {
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
                let mut retries = 0;
                loop {
                    if retries == 0 {
                        recorder.lock().sent(count as u64);
                    }
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let outcome = api.send(&auth, body.clone(), count).await;
                    let latency = t0.elapsed();
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    match outcome {
                        SendOutcome::Accepted(ids) => {
                            recorder.lock().accepted(latency, ids);
                            break;
                        }
                        SendOutcome::Failed {
                            kind: kind @ ErrorKind::Http(429),
                            retry_after,
                        } if retries < config.max_retries => {
                            retries += 1;
                            recorder.lock().failed(kind, count as u64, false);
                            tokio::time::sleep(retry_delay(retry_after)).await;
                        }
                        SendOutcome::Failed { kind, .. } => {
                            recorder.lock().failed(kind, count as u64, true);
                            break;
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

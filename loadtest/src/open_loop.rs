//! The open-model load phase (`run`).
//!
//! A scheduler loop wakes at the intended send times of
//! [`OpenSchedule`], spawns every request that is due (catching up when the
//! timer woke late: at thousands of requests per second several are due per
//! millisecond tick) and goes back to sleep; it never waits for an answer.
//! Each request's latency counts from its intended time. At most
//! `max_in_flight` requests are under way; a request due while the cap is
//! reached is counted as `not_sent_client_saturated`, so an overloaded
//! server (or client) shows up in the report instead of silently slowing
//! the schedule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, Instant};

use crate::http::{Api, SendOutcome};
use crate::payload::{request_body, Channel};
use crate::progress;
use crate::schedule::OpenSchedule;
use crate::stats::{LoadSummary, SharedRecorder};

/// What the open-model load phase sends.
#[derive(Debug, Clone)]
pub struct OpenLoopConfig {
    pub schedule: OpenSchedule,
    pub channel: Channel,
    pub max_in_flight: usize,
}

/// A finished load phase: its numbers, the accepted ids, and when it began.
#[derive(Debug)]
pub struct LoadOutcome {
    pub summary: LoadSummary,
    pub ids: Vec<String>,
    /// Wall-clock start (to compare with the engine's event timestamps).
    pub started_at: SystemTime,
}

impl LoadOutcome {
    /// This (measured) phase preceded by a warm-up phase at the same rate:
    /// the warm-up's accepted ids join the completion check and the clock
    /// starts at the warm-up (so end-to-end rates cover every message);
    /// every latency and rate figure stays this phase's own.
    pub fn after_warmup(mut self, warmup: LoadOutcome) -> LoadOutcome {
        self.summary.warmup_messages_accepted = warmup.summary.messages_accepted;
        let mut ids = warmup.ids;
        ids.append(&mut self.ids);
        LoadOutcome {
            summary: self.summary,
            ids,
            started_at: warmup.started_at,
        }
    }
}

/// Runs the schedule against the engine with one API key.
pub async fn run(api: Arc<Api>, auth: HeaderValue, config: OpenLoopConfig) -> LoadOutcome {
    let schedule = &config.schedule;
    let batch = schedule.batch_size;
    let batch_form = batch > 1;
    let cap = config
        .max_in_flight
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let permits = Arc::new(Semaphore::new(cap));
    let recorder = Arc::new(SharedRecorder::new());

    let started_at = SystemTime::now();
    let start = Instant::now();
    // Counted apart from the semaphore: while the end of the run waits for
    // every permit, the semaphore's count says nothing about requests.
    let in_flight = Arc::new(AtomicU64::new(0));
    let ticker = {
        let in_flight = Arc::clone(&in_flight);
        progress::spawn_ticker(start, Arc::clone(&recorder), move || {
            in_flight.load(Ordering::Relaxed)
        })
    };

    let mut next = 0u64;
    while next < schedule.requests {
        let due = schedule.due_by(start.elapsed());
        while next < due {
            let intended = start + schedule.offset(next);
            let first_message = next * u64::from(batch);
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => {
                    recorder.lock().sent(u64::from(batch));
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let in_flight = Arc::clone(&in_flight);
                    let api = Arc::clone(&api);
                    let auth = auth.clone();
                    let recorder = Arc::clone(&recorder);
                    let channel = config.channel;
                    tokio::spawn(async move {
                        let body = request_body(channel, first_message, batch as usize, batch_form);
                        let outcome = api.send(&auth, body, batch as usize).await;
                        let latency = intended.elapsed();
                        let mut r = recorder.lock();
                        match outcome {
                            SendOutcome::Accepted { ids, .. } => r.accepted(latency, ids),
                            SendOutcome::Failed { kind, .. } => {
                                r.failed(kind, u64::from(batch), true)
                            }
                        }
                        drop(r);
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                Err(_) => recorder.lock().saturated(u64::from(batch)),
            }
            next += 1;
        }
        if next < schedule.requests {
            sleep_until(start + schedule.offset(next)).await;
        }
    }

    // Every request is out; wait for the last answers (each is bounded by
    // the client's request timeout).
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _drained = permits.acquire_many(all).await;
    // The load window: the schedule's span, or longer if answers came late.
    let elapsed = start.elapsed().max(schedule.span());
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
    use crate::stats::Recorder;

    fn outcome(ids: &[&str], started_at: SystemTime) -> LoadOutcome {
        let mut r = Recorder::new();
        for _ in ids {
            r.sent(1);
        }
        r.accepted(
            std::time::Duration::from_millis(3),
            ids.iter().map(|s| s.to_string()).collect(),
        );
        let (summary, ids) = r.finish(std::time::Duration::from_secs(1));
        LoadOutcome {
            summary,
            ids,
            started_at,
        }
    }

    #[test]
    fn a_warmup_adds_its_ids_and_clock_but_not_its_figures() {
        let early = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let late = early + std::time::Duration::from_secs(2);
        let warm = outcome(&["w1", "w2"], early);
        let measured = outcome(&["m1"], late);
        let merged = measured.after_warmup(warm);
        assert_eq!(merged.ids, ["w1", "w2", "m1"]);
        assert_eq!(merged.started_at, early);
        assert_eq!(merged.summary.messages_accepted, 1);
        assert_eq!(merged.summary.messages_sent, 1);
        assert_eq!(merged.summary.accept_latency.count, 1);
        assert_eq!(merged.summary.warmup_messages_accepted, 2);
    }
}

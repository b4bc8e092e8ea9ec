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
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, Instant};

use crate::http::{Api, SendOutcome};
use crate::payload::{request_body, Channel};
use crate::progress;
use crate::schedule::OpenSchedule;
use crate::stats::{AcceptMeta, LoadSummary, SharedRecorder};

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
    /// One per id (open model; empty in the closed loop).
    pub meta: Vec<AcceptMeta>,
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
        let both_have_meta =
            warmup.meta.len() == warmup.ids.len() && self.meta.len() == self.ids.len();
        let meta = if both_have_meta {
            let mut meta = warmup.meta;
            meta.append(&mut self.meta);
            meta
        } else {
            Vec::new()
        };
        let mut ids = warmup.ids;
        ids.append(&mut self.ids);
        LoadOutcome {
            summary: self.summary,
            ids,
            meta,
            started_at: warmup.started_at,
        }
    }
}

/// What request `i` of an open-model run sends.
#[derive(Debug, Clone)]
pub struct PlannedRequest {
    /// Index of the tenant sending it (kept with its accepted ids).
    pub tenant: u16,
    pub auth: HeaderValue,
    pub body: Bytes,
    /// Messages in `body`.
    pub messages: u32,
}

/// Builds the requests of an open-model run; must be cheap and
/// deterministic (request `i` is built inside its own task).
pub trait RequestSource: Send + Sync + 'static {
    /// How many messages request `i` holds (called on the scheduler loop:
    /// no body is built).
    fn messages(&self, index: u64) -> u32;
    /// Request `i`.
    fn request(&self, index: u64) -> PlannedRequest;
}

/// Every request the same: one API key, one channel, `batch_size` messages.
struct Uniform {
    auth: HeaderValue,
    channel: Channel,
    batch: u32,
}

impl RequestSource for Uniform {
    fn messages(&self, _index: u64) -> u32 {
        self.batch
    }

    fn request(&self, index: u64) -> PlannedRequest {
        let first_message = index * u64::from(self.batch);
        PlannedRequest {
            tenant: 0,
            auth: self.auth.clone(),
            body: request_body(
                self.channel,
                first_message,
                self.batch as usize,
                self.batch > 1,
            ),
            messages: self.batch,
        }
    }
}

/// Runs the schedule against the engine with one API key.
pub async fn run(api: Arc<Api>, auth: HeaderValue, config: OpenLoopConfig) -> LoadOutcome {
    let source = Arc::new(Uniform {
        auth,
        channel: config.channel,
        batch: config.schedule.batch_size,
    });
    run_source(api, source, &config.schedule, config.max_in_flight).await
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Runs `schedule.requests` requests of `source` at the schedule's times
/// (the schedule's batch size is not used: each request holds
/// `source.messages(i)` messages).
pub async fn run_source(
    api: Arc<Api>,
    source: Arc<dyn RequestSource>,
    schedule: &OpenSchedule,
    max_in_flight: usize,
) -> LoadOutcome {
    let cap = max_in_flight.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let permits = Arc::new(Semaphore::new(cap));
    let recorder = Arc::new(SharedRecorder::new());

    let started_at = SystemTime::now();
    let started_us = unix_us(started_at);
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
            let offset = schedule.offset(next);
            let intended = start + offset;
            let messages = u64::from(source.messages(next));
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => {
                    recorder.lock().sent(messages);
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let in_flight = Arc::clone(&in_flight);
                    let api = Arc::clone(&api);
                    let source = Arc::clone(&source);
                    let recorder = Arc::clone(&recorder);
                    let sent_unix_us =
                        started_us + u64::try_from(offset.as_micros()).unwrap_or(u64::MAX);
                    let index = next;
                    tokio::spawn(async move {
                        let planned = source.request(index);
                        let outcome = api
                            .send(&planned.auth, planned.body, planned.messages as usize)
                            .await;
                        let latency = intended.elapsed();
                        let accepted_unix_us = unix_us(SystemTime::now());
                        let mut r = recorder.lock();
                        match outcome {
                            SendOutcome::Accepted { ids, .. } => r.accepted_with(
                                latency,
                                ids,
                                AcceptMeta {
                                    tenant: planned.tenant,
                                    sent_unix_us,
                                    accepted_unix_us,
                                },
                            ),
                            SendOutcome::Failed { kind, .. } => r.failed(kind, messages, true),
                        }
                        drop(r);
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                Err(_) => recorder.lock().saturated(messages),
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
    let mut r = recorder.lock();
    let meta = r.take_meta();
    let (summary, ids) = r.finish(elapsed);
    LoadOutcome {
        summary,
        ids,
        meta,
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
            meta: Vec::new(),
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

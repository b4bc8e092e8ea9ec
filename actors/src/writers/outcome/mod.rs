//! The status writer: outcomes of attempts (and later provider reports) are
//! written in batches, one `UPDATE … FROM unnest(…)` per batch.
//!
//! Outcomes are sharded by message id over a few writer tasks, so two
//! concurrent batches never touch the same row (no lock waits between them).
//! Several outcomes for one message in a batch are merged first (events and
//! attempts concatenated in order).
//!
//! Outcomes are fenced by the lease they were produced under: a stale one
//! (its lease lost to another claim) is not applied, and is counted; once a
//! part of a batch is written, the leases it released are forgotten by
//! [`crate::state::lease::HeldLeases`] (so an outcome waiting here keeps its lease).
//!
//! Many organizations share every batch, so a batch is a bulkhead
//! ([`crate::writers::bulkhead`]): when the database refuses it for a reason tied to
//! its rows, it is split in halves until the bad rows stand alone; each of
//! those is replaced by a minimal outcome (state `failed`, one event with
//! reason `storage_rejected: …`, no provider text, lease released) and, if
//! even that is refused, logged and counted and left to the lease. When the
//! database cannot be reached, the same batch waits (capped backoff) and is
//! tried again: an outcome is never dropped for that while the process
//! lives, and the writer reports itself failing ([`WriterHealth`], shown by
//! `/readyz` and `msgengine_writer_failing`). No batch is retried forever
//! for its data. The happy path is one transaction per batch, as before.

mod store;

use store::BatchStore;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::OutcomeRow;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::writers::bulkhead::WriterHealth;

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Writer tasks (each holds a connection while writing). Default 2.
    pub shards: usize,
    /// Most outcomes in one statement. Default 5000.
    pub max_batch: usize,
    /// How long a shard gathers after its first outcome before it writes
    /// (unless `max_batch` fills first). Default 10 ms (`EngineConfig::writer_linger`).
    pub linger: Duration,
    /// This node's leases: told what each written batch released.
    pub leases: std::sync::Arc<crate::state::lease::HeldLeases>,
}

pub use msgengine_domain::lifecycle::STORAGE_REJECTED_REASON;

/// Handle to submit outcomes.
#[derive(Clone)]
pub struct OutcomeWriter {
    shards: Vec<mpsc::Sender<OutcomeRow>>,
    pending: std::sync::Arc<std::sync::atomic::AtomicI64>,
    health: WriterHealth,
}

impl OutcomeWriter {
    /// Starts the writer tasks on `runtime`.
    pub fn start(runtime: &tokio::runtime::Handle, pool: Pool, settings: WriterSettings) -> Self {
        let pending = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let health = WriterHealth::new("status");
        let shards = (0..settings.shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(65_536);
                let store =
                    BatchStore::new(pool.clone(), health.reporter(), settings.leases.clone());
                runtime.spawn(run_shard(
                    store,
                    rx,
                    settings.max_batch,
                    settings.linger,
                    pending.clone(),
                ));
                tx
            })
            .collect();
        Self {
            shards,
            pending,
            health,
        }
    }

    /// Whether the writer is failing (waiting to try a batch again).
    pub fn health(&self) -> WriterHealth {
        self.health.clone()
    }
    /// Queues an outcome; waits only when the writer is far behind (backpressure).
    pub async fn submit(&self, row: OutcomeRow) {
        let shard = shard_of(row.id.0, self.shards.len());
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.shards[shard].send(row).await.is_err() {
            self.pending
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!("status writer stopped; outcome left to lease expiry");
        }
    }

    /// Queues an outcome if there is room now; gives it back (`Some`) otherwise.
    pub fn try_submit(&self, row: OutcomeRow) -> Option<OutcomeRow> {
        let shard = shard_of(row.id.0, self.shards.len());
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.shards[shard].try_send(row) {
            Ok(()) => None,
            Err(e) => {
                self.pending
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(row)
                    | mpsc::error::TrySendError::Closed(row) => Some(row),
                }
            }
        }
    }

    /// Outcomes submitted but not yet written.
    pub fn pending(&self) -> i64 {
        self.pending.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until every submitted outcome is written, or `deadline` passes.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        while self.pending() > 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

fn shard_of(id: Uuid, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

async fn run_shard(
    mut store: BatchStore,
    mut rx: mpsc::Receiver<OutcomeRow>,
    max_batch: usize,
    linger: Duration,
    pending: std::sync::Arc<std::sync::atomic::AtomicI64>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        gather(&mut rx, &mut batch, max_batch, linger).await;
        let taken = batch.len() as i64;
        let mut rows = coalesce(std::mem::take(&mut batch));
        // In id order, as the webhook writer locks its rows: the update's
        // plan (a nested loop over the unnest and the primary key) then takes
        // row locks in that order, so the two writers do not deadlock (one
        // such deadlock, a second's wait for both, was seen in a load run).
        rows.sort_unstable_by_key(|r| r.id);
        store.leases.refence(&mut rows);
        store.write_all(&rows).await;
        pending.fetch_sub(taken, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Adds what arrives within `linger` of the first outcome (or until
/// `max_batch`). The row writes of a message's outcome are the database's
/// largest cost per message after its insert, and a statement's fixed cost
/// (plan, round trips, the commit's WAL flush) is spread over its rows: at
/// 5,000 msg/s without lingering a batch held about 8 rows. Only the status
/// write waits, never an accept; the lease covers the outcome meanwhile.
async fn gather(
    rx: &mut mpsc::Receiver<OutcomeRow>,
    batch: &mut Vec<OutcomeRow>,
    max_batch: usize,
    linger: Duration,
) {
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max_batch {
        match rx.try_recv() {
            Ok(row) => batch.push(row),
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(row)) => batch.push(row),
                    Ok(None) | Err(_) => return,
                }
            }
        }
    }
}

/// The outcome that replaces one the database refused (the lifecycle's
/// [`msgengine_domain::lifecycle::Outcome::storage_rejected`]), under the
/// same message id and lease fencing.
pub fn storage_rejected(row: &OutcomeRow) -> OutcomeRow {
    OutcomeRow {
        outcome: row.outcome.storage_rejected(chrono::Utc::now()),
        ..row.clone()
    }
}

/// Merges outcomes of the same message, keeping their order. Outcomes of
/// different leases of one message are not merged: the newest lease's
/// (highest token) is kept and the older one dropped as stale (it could not
/// apply anyway: a message holds one lease at a time, and a newer claim
/// takes a higher token).
pub fn coalesce(rows: Vec<OutcomeRow>) -> Vec<OutcomeRow> {
    let mut index: HashMap<Uuid, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<OutcomeRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.id.0) {
            None => {
                index.insert(row.id.0, out.len());
                out.push(row);
            }
            Some(&i) => merge(&mut out[i], row),
        }
    }
    out
}

/// Two outcomes of one message: of different leases, the newest lease's
/// wins; of one lease, they merge as the lifecycle says ([`Outcome::merge`]).
///
/// [`Outcome::merge`]: msgengine_domain::lifecycle::Outcome::merge
fn merge(into: &mut OutcomeRow, next: OutcomeRow) {
    if let (Some(old), Some(new)) = (into.fence, next.fence) {
        if old != new {
            crate::metrics::record_lease_lost("outcome", 1);
            if new.token > old.token {
                *into = next;
            }
            return;
        }
    }
    into.fence = into.fence.or(next.fence);
    into.outcome.merge(next.outcome);
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use msgengine_domain::lifecycle::Outcome;
    use msgengine_domain::message::{Attempt, AttemptOutcome, MessageEvent, MessageState};
    use msgengine_domain::{MessageId, ProviderId};

    use super::*;

    fn row(id: Uuid, state: MessageState, event: &str, release: bool) -> OutcomeRow {
        OutcomeRow {
            id: MessageId(id),
            outcome: Outcome {
                state,
                events: vec![MessageEvent::new(state, Utc::now()).with_reason(event)],
                attempts: Vec::new(),
                attempt_delta: 1,
                provider_id: None,
                provider_message_id: None,
                next_attempt_at: None,
                release_lease: release,
            },
            fence: None,
        }
    }

    fn reasons(row: &OutcomeRow) -> Vec<&str> {
        row.outcome
            .events
            .iter()
            .filter_map(|e| e.reason.as_deref())
            .collect()
    }

    #[tokio::test]
    async fn a_shard_gathers_what_arrives_within_the_linger_and_stops_at_the_cap() {
        let (tx, mut rx) = mpsc::channel(16);
        let send = |tx: mpsc::Sender<OutcomeRow>| async move {
            let r = row(Uuid::new_v4(), MessageState::Sent, "sent", true);
            tx.send(r).await.expect("send");
        };
        // One row queued, one arriving 5 ms later, within a 200 ms linger: one batch.
        send(tx.clone()).await;
        let late = tokio::spawn(send_later(tx.clone(), send));
        let mut batch = vec![rx.recv().await.expect("first")];
        gather(&mut rx, &mut batch, 10, Duration::from_millis(200)).await;
        late.await.expect("late sender");
        assert_eq!(batch.len(), 2);
        // With a 5 s linger, a full cap ends the batch at once.
        for _ in 0..10 {
            send(tx.clone()).await;
        }
        let mut capped = vec![rx.recv().await.expect("first")];
        let started = tokio::time::Instant::now();
        gather(&mut rx, &mut capped, 4, Duration::from_secs(5)).await;
        assert_eq!(capped.len(), 4);
        assert!(started.elapsed() < Duration::from_secs(5));
        // A closed channel ends it too, with what was queued.
        drop(tx);
        let mut rest = vec![rx.recv().await.expect("queued")];
        let started = tokio::time::Instant::now();
        gather(&mut rx, &mut rest, 100, Duration::from_secs(5)).await;
        assert_eq!(rest.len(), 6);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    async fn send_later<F, Fut>(tx: mpsc::Sender<OutcomeRow>, send: F)
    where
        F: FnOnce(mpsc::Sender<OutcomeRow>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
        send(tx).await;
    }

    #[test]
    fn a_refused_outcome_is_replaced_by_a_failed_one_without_provider_text() {
        let provider = ProviderId::new();
        let mut original = row(Uuid::new_v4(), MessageState::Queued, "bad\u{0}thing", false);
        original.outcome.provider_id = Some(provider);
        original.outcome.provider_message_id = Some("pm\u{0}".into());
        original.outcome.attempts = vec![Attempt {
            number: 1,
            provider_id: provider,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            outcome: AttemptOutcome::PermanentError,
            provider_message_id: None,
            error: Some("bad\u{0}thing".into()),
            error_class: Some("permanent".into()),
        }];
        original.outcome.next_attempt_at = Some(Utc::now());
        let safe = storage_rejected(&original);
        let o = &safe.outcome;
        assert_eq!((safe.id, o.state), (original.id, MessageState::Failed));
        assert!(o.attempts.is_empty());
        assert_eq!(o.attempt_delta, original.outcome.attempt_delta);
        assert_eq!(o.provider_id, Some(provider));
        assert!(o.provider_message_id.is_none() && o.next_attempt_at.is_none());
        assert!(o.release_lease);
        assert_eq!(o.events.len(), 1);
        assert_eq!(o.events[0].state, MessageState::Failed);
        assert_eq!(reasons(&safe), [STORAGE_REJECTED_REASON]);
        assert!(STORAGE_REJECTED_REASON.starts_with("storage_rejected: "));
    }

    #[test]
    fn outcomes_of_one_message_merge_in_order_and_never_go_back() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let merged = coalesce(vec![
            row(a, MessageState::Queued, "retry", false),
            row(b, MessageState::Delivered, "b", true),
            row(a, MessageState::Delivered, "delivered", true),
            row(a, MessageState::Sent, "late sent", true),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].id, MessageId(a));
        assert_eq!(merged[0].outcome.state, MessageState::Delivered);
        assert_eq!(reasons(&merged[0]), ["retry", "delivered", "late sent"]);
        assert_eq!(merged[0].outcome.attempt_delta, 3);
        assert!(merged[0].outcome.release_lease);
    }

    #[test]
    fn outcomes_of_different_leases_keep_the_newest_lease() {
        use msgengine_storage::repo::messages::LeaseFence;
        let a = Uuid::new_v4();
        let owner = Uuid::new_v4();
        let fenced = |token, event| OutcomeRow {
            fence: Some(LeaseFence { owner, token }),
            ..row(a, MessageState::Sent, event, true)
        };
        let merged = coalesce(vec![
            fenced(2, "new"),
            fenced(1, "stale"),
            fenced(2, "again"),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].fence.map(|f| f.token), Some(2));
        assert_eq!(reasons(&merged[0]), ["new", "again"]);
        let merged = coalesce(vec![fenced(1, "stale"), fenced(3, "newer")]);
        assert_eq!(reasons(&merged[0]), ["newer"]);
    }
}

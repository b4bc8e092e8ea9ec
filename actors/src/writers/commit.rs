//! Group commit of accepted messages.
//!
//! Request handlers hand their validated rows to [`GroupCommitter::commit`]
//! and wait. A few worker tasks each take everything queued (up to a cap),
//! write it in ONE transaction (idempotency keys first, then every message
//! in one multi-row insert), commit, and answer every waiting request. So a
//! 202 is only given after the rows are durable, and the number of
//! transactions does not grow with the number of requests. Several workers
//! let one batch be written while the next one gathers.
//!
//! Bulkhead: a group holds many organizations' requests, so one request's
//! bad data must not fail the others. When the database refuses a group for
//! a reason tied to its data ([`StoreError::is_data_error`]: a NUL byte, an
//! untranslatable character, a constraint), the group is bisected and each
//! half written in its own transaction, down to single requests: only the
//! requests at fault get the error (422 `storage_rejected` at the edge), the
//! rest commit. The happy path is still one transaction per group. When the
//! database is unavailable, every request of the group gets `Unavailable`
//! (503; the client retries) and the worker goes on with the next group.

use std::ops::Range;
use std::sync::Arc;

use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::{self, IdempotencyRow, NewMessageRow};
use msgengine_storage::StoreError;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// One request's share of a group.
pub struct AcceptJob {
    pub rows: Vec<NewMessageRow>,
    pub idempotency: Option<IdempotencyRow>,
    reply: oneshot::Sender<Result<CommitOutcome, StoreError>>,
}

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The rows are committed.
    Committed,
    /// The idempotency key already existed: nothing was written.
    KeyExists,
}

/// Called with the rows of every committed job (to dispatch the leased ones).
pub type OnCommit = Arc<dyn Fn(Vec<NewMessageRow>) + Send + Sync>;

/// Settings of the committer.
#[derive(Debug, Clone)]
pub struct CommitSettings {
    /// This node's id, the owner of the leases written with leased rows.
    pub node_id: Uuid,
    /// How long a lease written at accept time lasts.
    pub lease_for: chrono::Duration,
    /// Worker tasks (each holds one connection while writing). Default 2
    /// (`EngineConfig::commit_workers`).
    pub workers: usize,
    /// Most rows in one transaction. Default 2000: larger groups made every
    /// member wait for the whole group (p99 346 ms at 12k msg/s with 10000,
    /// 48 ms with 2000).
    pub max_rows: usize,
}

/// Handle to the group-commit workers.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::Sender<AcceptJob>,
}

impl GroupCommitter {
    /// Starts the workers on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        pool: Pool,
        settings: CommitSettings,
        on_commit: OnCommit,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<AcceptJob>(16_384);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..settings.workers.max(1) {
            let worker = Worker {
                pool: pool.clone(),
                rx: rx.clone(),
                settings: settings.clone(),
                on_commit: on_commit.clone(),
            };
            runtime.spawn(worker.run());
        }
        Self { tx }
    }

    /// Writes `rows` (and the idempotency key) durably with other requests' rows.
    pub async fn commit(
        &self,
        rows: Vec<NewMessageRow>,
        idempotency: Option<IdempotencyRow>,
    ) -> Result<CommitOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(AcceptJob {
                rows,
                idempotency,
                reply,
            })
            .await
            .map_err(|_| StoreError::Unavailable("the committer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the committer has stopped".into()))?
    }
}

struct Worker {
    pool: Pool,
    rx: Arc<Mutex<mpsc::Receiver<AcceptJob>>>,
    settings: CommitSettings,
    on_commit: OnCommit,
}

impl Worker {
    async fn run(self) {
        while let Some(group) = self.gather().await {
            self.write(group).await;
        }
    }

    async fn gather(&self) -> Option<Vec<AcceptJob>> {
        gather(&self.rx, self.settings.max_rows, |job| job.rows.len()).await
    }

    async fn write(&self, group: Vec<AcceptJob>) {
        let started = std::time::Instant::now();
        // Move every job's rows into one vector; `spans` remembers whose are whose.
        let mut rows = Vec::with_capacity(group.iter().map(|j| j.rows.len()).sum());
        let mut spans = Vec::with_capacity(group.len());
        let mut waiting = Vec::with_capacity(group.len());
        for job in group {
            spans.push(rows.len()..rows.len() + job.rows.len());
            rows.extend(job.rows);
            waiting.push((job.idempotency, job.reply));
        }
        let keys: Vec<Option<&IdempotencyRow>> = waiting.iter().map(|(k, _)| k.as_ref()).collect();
        let results = self.write_isolated(&rows, &spans, &keys).await;
        drop(keys);
        let outcomes: Vec<Option<CommitOutcome>> =
            results.iter().map(|r| r.as_ref().ok().copied()).collect();
        let written = rows_written(&spans, &outcomes);
        if results.iter().any(Result::is_ok) {
            crate::metrics::record_batch("accept", written, started.elapsed());
        }
        let all_committed = outcomes
            .iter()
            .all(|o| *o == Some(CommitOutcome::Committed));
        let committed = if all_committed {
            rows
        } else {
            keep_committed(rows, &spans, &outcomes)
        };
        for ((_, reply), result) in waiting.into_iter().zip(results) {
            let _ = reply.send(result);
        }
        tracing::trace!(
            rows = committed.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "group committed"
        );
        if !committed.is_empty() {
            (self.on_commit)(committed);
        }
    }

    /// Writes the group in one transaction; when the database refuses it for
    /// a reason tied to the data, bisects it (each half in a transaction of
    /// its own) until the jobs at fault stand alone, so that only they fail
    /// and every other job commits. Bounded: a half of one job is never
    /// split again, so a group of n jobs with k bad ones costs at most about
    /// 2k·log2(n) extra transactions, and none when nothing is wrong. On any
    /// other failure (database unavailable) every job not yet written fails
    /// with `Unavailable` at once (the clients retry).
    async fn write_isolated(
        &self,
        rows: &[NewMessageRow],
        spans: &[Range<usize>],
        keys: &[Option<&IdempotencyRow>],
    ) -> Vec<Result<CommitOutcome, StoreError>> {
        let mut results: Vec<Option<Result<CommitOutcome, StoreError>>> =
            (0..spans.len()).map(|_| None).collect();
        // Job ranges still to write, the next one on top.
        let mut pending: Vec<Range<usize>> = Vec::with_capacity(8);
        pending.push(0..spans.len());
        while let Some(jobs) = pending.pop() {
            let (first, last) = (jobs.start, jobs.end - 1);
            let row_range = spans[first].start..spans[last].end;
            let written = self
                .write_group(rows, row_range, &spans[jobs.clone()], &keys[jobs.clone()])
                .await;
            match written {
                Ok(outcomes) => {
                    for (slot, outcome) in results[jobs].iter_mut().zip(outcomes) {
                        *slot = Some(Ok(outcome));
                    }
                }
                Err(e) if e.is_data_error() && jobs.len() > 1 => {
                    tracing::debug!(error = %e, jobs = jobs.len(), "group refused for its data; splitting it");
                    let middle = jobs.start + jobs.len() / 2;
                    pending.push(middle..jobs.end);
                    pending.push(jobs.start..middle);
                }
                Err(e) if e.is_data_error() => {
                    tracing::warn!(error = %e, rows = spans[first].len(), "a request's rows were refused by the database");
                    results[first] = Some(Err(e));
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = spans.len(), "group commit failed");
                    let text = e.to_string();
                    for slot in results.iter_mut().filter(|r| r.is_none()) {
                        *slot = Some(Err(StoreError::Unavailable(text.clone())));
                    }
                    break;
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Unavailable("not written".into()))))
            .collect()
    }

    /// One transaction: the idempotency keys of `keys`, then the rows of the
    /// jobs whose key was fresh. `row_range` is the jobs' rows in `rows`,
    /// `spans` their own ranges in `rows`.
    async fn write_group(
        &self,
        rows: &[NewMessageRow],
        row_range: Range<usize>,
        spans: &[Range<usize>],
        keys: &[Option<&IdempotencyRow>],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let waited = std::time::Instant::now();
        let mut client = self.pool.get().await?;
        crate::metrics::record_pool_wait(waited.elapsed());
        let tx = client.transaction().await?;
        let mut outcomes = vec![CommitOutcome::Committed; spans.len()];
        let keyed: Vec<(usize, IdempotencyRow)> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.map(|k| (i, k.clone())))
            .collect();
        if !keyed.is_empty() {
            let key_rows: Vec<IdempotencyRow> = keyed.iter().map(|(_, k)| k.clone()).collect();
            let fresh = messages::insert_idempotency(&tx, &key_rows).await?;
            for (n, (job, _)) in keyed.iter().enumerate() {
                if !fresh.contains(&n) {
                    outcomes[*job] = CommitOutcome::KeyExists;
                }
            }
        }
        let lease_until = chrono::Utc::now() + self.settings.lease_for;
        if outcomes.iter().all(|o| *o == CommitOutcome::Committed) {
            messages::copy_many(&tx, &rows[row_range], self.settings.node_id, lease_until).await?;
        } else {
            let kept: Vec<NewMessageRow> = spans
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| **o == CommitOutcome::Committed)
                .flat_map(|(span, _)| rows[span.clone()].iter().cloned())
                .collect();
            messages::copy_many(&tx, &kept, self.settings.node_id, lease_until).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Waits for one job, then takes whatever else is queued until the jobs'
/// total `weight` (rows, events) reaches `cap`: the gathering step of a
/// group-commit worker.
pub(crate) async fn gather<J>(
    rx: &Mutex<mpsc::Receiver<J>>,
    cap: usize,
    weight: impl Fn(&J) -> usize,
) -> Option<Vec<J>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut total = weight(&first);
    let mut group = vec![first];
    while total < cap {
        match rx.try_recv() {
            Ok(job) => {
                total += weight(&job);
                group.push(job);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

/// How many rows a group wrote (jobs whose key existed or that failed wrote none).
fn rows_written(spans: &[Range<usize>], outcomes: &[Option<CommitOutcome>]) -> usize {
    spans
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| **o == Some(CommitOutcome::Committed))
        .map(|(span, _)| span.len())
        .sum()
}

/// The rows of the jobs that committed (the rare case where some job's
/// idempotency key already existed or its rows were refused).
fn keep_committed(
    rows: Vec<NewMessageRow>,
    spans: &[Range<usize>],
    outcomes: &[Option<CommitOutcome>],
) -> Vec<NewMessageRow> {
    let mut keep = vec![false; rows.len()];
    for (span, outcome) in spans.iter().zip(outcomes) {
        if *outcome == Some(CommitOutcome::Committed) {
            keep[span.clone()].fill(true);
        }
    }
    rows.into_iter()
        .zip(keep)
        .filter_map(|(row, kept)| kept.then_some(row))
        .collect()
}

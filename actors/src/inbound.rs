//! Group commit of inbound provider webhooks.
//!
//! A verified webhook's events are handed to [`WebhookWriter::ingest`], which
//! waits for them to be durable. A few worker tasks each take every queued
//! webhook (up to a cap on events) and write them in ONE transaction: one
//! multi-row insert of the events (replays do nothing), one update per kind
//! of message reference, one mark, one outbound enqueue, and the
//! suppressions the events ask for. So the number of transactions does not
//! grow with the webhook rate: at 1,000 messages/s a provider posts 2,000 or
//! more callbacks a second, and one transaction each used every connection
//! of the pool (BENCHMARKS.md, "What the mixed run found").
//!
//! The queue is bounded. A webhook that cannot be queued within its wait is
//! refused as [`IngestError::Busy`] (the route answers 503 with
//! `Retry-After`; providers retry). A failed group is retried: a deadlock or
//! serialization failure as a whole (a few times), any other error job by
//! job, so one bad webhook fails alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use msgengine_domain::{OrganizationId, ProviderId};
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::suppressions;
use msgengine_storage::repo::webhook_events::{self, EventRow, IngestJob, Ingested};
use msgengine_storage::StoreError;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Why a webhook was not written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The queue stayed full for the whole wait.
    #[error("too many webhooks are being written")]
    Busy,
    /// The store refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One webhook: its events and the suppressions they ask for (normalised
/// recipient, reason).
pub struct WebhookJob {
    pub org: OrganizationId,
    pub provider: ProviderId,
    pub events: Vec<EventRow>,
    pub suppress: Vec<(String, String)>,
    reply: oneshot::Sender<Result<Ingested, StoreError>>,
}

/// Settings of the webhook writer.
#[derive(Debug, Clone)]
pub struct WebhookWriterSettings {
    /// Worker tasks (each holds one connection while writing).
    pub workers: usize,
    /// Most events in one transaction (a group stops growing past it).
    pub max_events: usize,
    /// Webhooks waiting to be written, at most.
    pub queue: usize,
}

impl Default for WebhookWriterSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            max_events: 4_000,
            queue: 8_192,
        }
    }
}

/// Handle to the webhook group-commit workers.
#[derive(Clone)]
pub struct WebhookWriter {
    tx: mpsc::Sender<WebhookJob>,
}

impl WebhookWriter {
    /// Starts the workers on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        pool: Pool,
        settings: WebhookWriterSettings,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<WebhookJob>(settings.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..settings.workers.max(1) {
            runtime.spawn(
                Worker {
                    pool: pool.clone(),
                    rx: rx.clone(),
                    max_events: settings.max_events.max(1),
                }
                .run(),
            );
        }
        Self { tx }
    }

    /// Writes one webhook's events durably with other webhooks', waiting at
    /// most `wait` for room in the queue.
    pub async fn ingest(
        &self,
        org: OrganizationId,
        provider: ProviderId,
        events: Vec<EventRow>,
        suppress: Vec<(String, String)>,
        wait: Duration,
    ) -> Result<Ingested, IngestError> {
        let (reply, answer) = oneshot::channel();
        let permit = tokio::time::timeout(wait, self.tx.reserve())
            .await
            .map_err(|_| IngestError::Busy)?
            .map_err(|_| stopped())?;
        permit.send(WebhookJob {
            org,
            provider,
            events,
            suppress,
            reply,
        });
        Ok(answer.await.map_err(|_| stopped())??)
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the webhook writer has stopped".into())
}

struct Worker {
    pool: Pool,
    rx: Arc<Mutex<mpsc::Receiver<WebhookJob>>>,
    max_events: usize,
}

/// Attempts at a group that meets a deadlock or serialization failure.
const CONFLICT_ATTEMPTS: usize = 3;

impl Worker {
    async fn run(self) {
        while let Some(group) = self.gather().await {
            self.write(group).await;
        }
    }

    async fn gather(&self) -> Option<Vec<WebhookJob>> {
        crate::commit::gather(&self.rx, self.max_events, |job| job.events.len()).await
    }

    async fn write(&self, group: Vec<WebhookJob>) {
        let started = Instant::now();
        let mut attempt = 1;
        let result = loop {
            match self.write_group(&group).await {
                Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "webhook group conflicted; retrying");
                    attempt += 1;
                }
                other => break other,
            }
        };
        match result {
            Ok(done) => {
                let events = group.iter().map(|j| j.events.len()).sum();
                crate::metrics::record_batch("webhook", events, started.elapsed());
                for (job, done) in group.into_iter().zip(done) {
                    let _ = job.reply.send(Ok(done));
                }
            }
            Err(e) if group.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                // Some webhook in the group may be at fault: each alone.
                tracing::warn!(error = %e, webhooks = group.len(), "webhook group failed; writing one by one");
                for job in group {
                    let one = std::slice::from_ref(&job);
                    let result = self
                        .write_group(one)
                        .await
                        .map(|mut d| d.pop().unwrap_or_default());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, provider = %job.provider.0, "webhook not written");
                    }
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, webhooks = group.len(), "webhook group not written");
                let text = e.to_string();
                for job in group {
                    let _ = job.reply.send(Err(StoreError::Unavailable(text.clone())));
                }
            }
        }
    }

    async fn write_group(&self, group: &[WebhookJob]) -> Result<Vec<Ingested>, StoreError> {
        let waited = Instant::now();
        let mut client = self.pool.get().await?;
        crate::metrics::record_pool_wait(waited.elapsed());
        let tx = client.transaction().await?;
        let jobs: Vec<IngestJob<'_>> = group
            .iter()
            .map(|j| IngestJob {
                org: j.org,
                provider: j.provider,
                events: &j.events,
            })
            .collect();
        let done = webhook_events::ingest_many(&tx, &jobs).await?;
        for job in group {
            for (recipient, reason) in &job.suppress {
                suppressions::add(&tx, job.org, recipient, reason, Some(job.provider.0), None)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// A deadlock or serialization failure: the same group may well succeed again.
fn is_conflict(e: &StoreError) -> bool {
    use msgengine_storage::driver::tokio_postgres::error::SqlState;
    match e {
        StoreError::Query(q) => matches!(
            q.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        ),
        _ => false,
    }
}

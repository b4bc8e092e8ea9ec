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
//! `Retry-After`; providers retry). A group is a bulkhead
//! ([`crate::writers::bulkhead`]): when the database refuses it for a reason tied to
//! its data it is split in halves until the bad webhooks stand alone, and
//! only those are refused ([`IngestError::Rejected`], a 422: the provider's
//! retry could not succeed either); a deadlock or another passing error is
//! tried again as a whole a few times first. When the database cannot be
//! reached the group's webhooks are answered [`IngestError::Unavailable`]
//! (503 with `Retry-After`), the writer reports itself failing
//! ([`WriterHealth`]) and its worker waits, probing the database with a
//! capped backoff, before it takes the next group. Nothing is retried
//! without end: a provider's own retries bring a refused webhook back.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use msgengine_domain::{lifecycle, OrganizationId, ProviderId};
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::suppressions;
use msgengine_storage::repo::webhook_events::{self, EventRow, IngestJob, Ingested};
use msgengine_storage::StoreError;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::writers::bulkhead::{
    classify, pool_unavailable, Backoff, Fault, Reporter, WriterHealth,
};

/// Why a webhook was not written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The queue stayed full for the whole wait.
    #[error("too many webhooks are being written")]
    Busy,
    /// The database cannot take the write now; the same webhook may succeed later.
    #[error("the webhook could not be written now: {0}")]
    Unavailable(String),
    /// The database refused this webhook's own data: it fails alone and would
    /// fail again.
    #[error("the webhook's events cannot be stored: {0}")]
    Rejected(#[source] StoreError),
}

/// One webhook: its events and the suppressions they ask for (normalised
/// recipient, reason).
pub struct WebhookJob {
    pub org: OrganizationId,
    pub provider: ProviderId,
    pub events: Vec<EventRow>,
    pub suppress: Vec<(String, String)>,
    reply: oneshot::Sender<Result<Ingested, IngestError>>,
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
    health: WriterHealth,
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
        let health = WriterHealth::new("webhook");
        for _ in 0..settings.workers.max(1) {
            runtime.spawn(
                Worker {
                    pool: pool.clone(),
                    rx: rx.clone(),
                    max_events: settings.max_events.max(1),
                }
                .run(health.reporter()),
            );
        }
        Self { tx, health }
    }

    /// Whether the writer is failing (its last write found the database unavailable).
    pub fn health(&self) -> WriterHealth {
        self.health.clone()
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
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> IngestError {
    IngestError::Unavailable("the webhook writer has stopped".into())
}

struct Worker {
    pool: Pool,
    rx: Arc<Mutex<mpsc::Receiver<WebhookJob>>>,
    max_events: usize,
}

/// Tries of a group (or part) that fails for a passing reason (a deadlock,
/// a serialization failure) before it is split as if its data were at fault.
const CONFLICT_ATTEMPTS: u32 = 3;

impl Worker {
    async fn run(self, mut reporter: Reporter) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while let Some(group) = self.gather().await {
            self.write(group, &mut reporter).await;
            // The database was unavailable: wait for it before the next group.
            while reporter.is_failing() {
                tokio::time::sleep(backoff.next_wait()).await;
                if self.probe().await {
                    reporter.succeeded();
                }
            }
            backoff.reset();
        }
    }

    async fn gather(&self) -> Option<Vec<WebhookJob>> {
        crate::writers::commit::gather(&self.rx, self.max_events, |job| job.events.len()).await
    }

    /// Whether the database answers.
    async fn probe(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    /// Writes a group, splitting it when the database refuses its data, and
    /// answers every webhook of it.
    async fn write(&self, group: Vec<WebhookJob>, reporter: &mut Reporter) {
        let started = Instant::now();
        let mut answers: Vec<Option<Result<Ingested, IngestError>>> =
            group.iter().map(|_| None).collect();
        let mut work: Vec<(Range<usize>, u32)> = vec![(0..group.len(), 1)];
        while let Some((range, tries)) = work.pop() {
            let part = &group[range.clone()];
            let error = match self.write_group(part).await {
                Ok(done) => {
                    reporter.succeeded();
                    for (i, done) in range.zip(done) {
                        answers[i] = Some(Ok(done));
                    }
                    continue;
                }
                Err(e) => e,
            };
            match classify(&error) {
                Fault::Other if tries < CONFLICT_ATTEMPTS => {
                    tracing::debug!(error = %error, tries, "webhook group failed; trying again");
                    work.push((range, tries + 1));
                }
                Fault::Data | Fault::Other if part.len() > 1 => {
                    tracing::warn!(error = %error, webhooks = part.len(), "webhook group refused; splitting it");
                    let mid = range.start + part.len() / 2;
                    work.push((mid..range.end, 1));
                    work.push((range.start..mid, 1));
                }
                Fault::Data => {
                    let job = &part[0];
                    tracing::warn!(error = %error, provider = %job.provider.0, organization = %job.org.0,
                        "webhook refused by the database");
                    crate::metrics::record_storage_rejected("webhook", "refused", 1);
                    answers[range.start] = Some(Err(IngestError::Rejected(error)));
                }
                Fault::Unavailable | Fault::Other => {
                    // The store, not the data: the rest of the group waits
                    // for the providers' retries too.
                    tracing::error!(error = %error, webhooks = group.len(), "webhooks not written");
                    reporter.failed();
                    let text = error.to_string();
                    let rest = std::iter::once(range).chain(work.drain(..).map(|(r, _)| r));
                    for i in rest.flatten() {
                        answers[i] = Some(Err(IngestError::Unavailable(text.clone())));
                    }
                }
            }
        }
        let events = group.iter().map(|j| j.events.len()).sum();
        crate::metrics::record_batch("webhook", events, started.elapsed());
        for (job, answer) in group.into_iter().zip(answers) {
            let answer =
                answer.unwrap_or_else(|| Err(IngestError::Unavailable("not written".into())));
            let _ = job.reply.send(answer);
        }
    }

    async fn write_group(&self, group: &[WebhookJob]) -> Result<Vec<Ingested>, StoreError> {
        let waited = Instant::now();
        let mut client = self.pool.get().await.map_err(pool_unavailable)?;
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
        // The lifecycle decides what the reports do; storage executes it.
        let done = webhook_events::ingest_many(&tx, &jobs, lifecycle::merge_reports).await?;
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

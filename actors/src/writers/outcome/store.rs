//! One shard's batch writes: the happy path in one transaction, and the
//! bulkhead around it (split a refused batch, wait out an unreachable store).

use std::ops::Range;
use std::time::Duration;

use msgengine_domain::message::MessageEvent;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::{self, OutcomeRow};
use msgengine_storage::repo::org_webhooks;
use msgengine_storage::StoreError;
use uuid::Uuid;

use super::storage_rejected;
use crate::writers::bulkhead::{classify, pool_unavailable, Backoff, Fault, Reporter};

/// Tries of a part of a batch failing for an [`Fault::Other`] reason before
/// it is split as if its rows were at fault.
const OTHER_TRIES: u32 = 3;

/// One shard's connection to the store and its bulkhead state.
pub(super) struct BatchStore {
    pub(super) leases: std::sync::Arc<crate::state::lease::HeldLeases>,
    pool: Pool,
    outbound: OutboundGate,
    reporter: Reporter,
    backoff: Backoff,
    /// Run the outbound enqueue in a savepoint: set for the rest of a batch
    /// once the enqueue failed, so statuses commit without it.
    guard_enqueue: bool,
}

/// What to do with a part of a batch the store refused.
enum Verdict {
    /// Its rows are at fault: split it (or, a single row, reject it).
    Split,
    /// The store is: wait and try the same part again.
    Wait,
}

impl BatchStore {
    pub(super) fn new(
        pool: Pool,
        reporter: Reporter,
        leases: std::sync::Arc<crate::state::lease::HeldLeases>,
    ) -> Self {
        Self {
            leases,
            pool,
            outbound: OutboundGate::default(),
            reporter,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5)),
            guard_enqueue: false,
        }
    }

    /// Writes every row of a batch: all at once when the store takes them;
    /// otherwise halves, down to single rows, so only refused rows fail.
    pub(super) async fn write_all(&mut self, rows: &[OutcomeRow]) {
        let started = std::time::Instant::now();
        self.guard_enqueue = false;
        // Parts still to write, the next on top.
        let mut work: Vec<Range<usize>> = Vec::with_capacity(8);
        work.push(0..rows.len());
        let mut other_tries = 0;
        while let Some(range) = work.pop() {
            let part = &rows[range.clone()];
            let error = match self.write(part).await {
                Ok(written) => {
                    self.leases.after_write(part, written);
                    self.succeeded();
                    other_tries = 0;
                    continue;
                }
                Err(e) => e,
            };
            let verdict = match classify(&error) {
                Fault::Data => Verdict::Split,
                Fault::Unavailable => Verdict::Wait,
                Fault::Other => {
                    other_tries += 1;
                    if other_tries >= OTHER_TRIES {
                        Verdict::Split
                    } else {
                        Verdict::Wait
                    }
                }
            };
            match verdict {
                Verdict::Split if part.len() > 1 => {
                    other_tries = 0;
                    let mid = range.start + part.len() / 2;
                    tracing::debug!(error = %error, rows = part.len(), "status batch refused; splitting it");
                    work.push(mid..range.end);
                    work.push(range.start..mid);
                }
                Verdict::Split if self.reject(&part[0], &error).await => other_tries = 0,
                _ => {
                    tracing::error!(error = %error, rows = part.len(), "status write failed; retrying");
                    self.wait().await;
                    work.push(range);
                }
            }
        }
        crate::metrics::record_batch("status", rows.len(), started.elapsed());
    }

    /// Replaces a row the store refused with a minimal failed outcome.
    /// Returns false when the store refused that too for a reason not tied
    /// to the row (then the original is tried again later).
    pub(super) async fn reject(&mut self, row: &OutcomeRow, cause: &StoreError) -> bool {
        let safe = storage_rejected(row);
        match self.write(std::slice::from_ref(&safe)).await {
            Ok(written) => {
                self.leases
                    .after_write(std::slice::from_ref(&safe), written);
                self.succeeded();
                tracing::warn!(message = %row.id, error = %cause,
                    "outcome refused by the database; the message is failed as storage_rejected");
                crate::metrics::record_storage_rejected("status", "failed", 1);
                true
            }
            Err(e) if classify(&e) == Fault::Data => {
                tracing::error!(message = %row.id, error = %cause, fallback_error = %e,
                    "outcome refused by the database, and its storage_rejected record too; left to the lease");
                crate::metrics::record_storage_rejected("status", "dropped", 1);
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn succeeded(&mut self) {
        self.reporter.succeeded();
        self.backoff.reset();
    }

    pub(super) async fn wait(&mut self) {
        self.reporter.failed();
        tokio::time::sleep(self.backoff.next_wait()).await;
    }

    /// Writes `rows` in one transaction; when queuing their outbound events
    /// failed on its own, once more with that step in a savepoint.
    pub(super) async fn write(&mut self, rows: &[OutcomeRow]) -> Result<u64, StoreError> {
        let guarded = self.guard_enqueue;
        match self.write_once(rows).await {
            Err(_) if !guarded && self.guard_enqueue => self.write_once(rows).await,
            other => other,
        }
    }

    /// One transaction: the outcomes and, while some organization has an
    /// enabled outbound webhook endpoint, their events for those
    /// organizations (one `INSERT … SELECT`): a status is never written
    /// without its notifications unless queuing them failed on its own
    /// (then, in a savepoint, the statuses commit and the notifications are
    /// counted as dropped). With no endpoint anywhere it is the one `UPDATE`.
    pub(super) async fn write_once(&mut self, rows: &[OutcomeRow]) -> Result<u64, StoreError> {
        let waited = std::time::Instant::now();
        let mut client = self.pool.get().await.map_err(pool_unavailable)?;
        crate::metrics::record_pool_wait(waited.elapsed());
        if !self.outbound.is_open(&client).await {
            let written = messages::apply_outcomes(&client, rows).await?;
            return Ok(written);
        }
        let mut tx = client.transaction().await?;
        let applied = messages::apply_outcomes_returning(&tx, rows).await?;
        let written = applied.len() as u64;
        // Only applied outcomes notify: a stale one (its lease lost) changed
        // nothing, and its holder's outcome will.
        let (ids, events): (Vec<Uuid>, Vec<&[MessageEvent]>) = if applied.len() == rows.len() {
            rows.iter()
                .map(|r| (r.id.0, r.outcome.events.as_slice()))
                .unzip()
        } else {
            let applied: std::collections::HashSet<Uuid> = applied.into_iter().collect();
            rows.iter()
                .filter(|r| applied.contains(&r.id.0))
                .map(|r| (r.id.0, r.outcome.events.as_slice()))
                .unzip()
        };
        if self.guard_enqueue {
            let savepoint = tx.savepoint("outbound_enqueue").await?;
            match org_webhooks::enqueue_outcomes(&savepoint, &ids, &events).await {
                Ok(_) => savepoint.commit().await?,
                Err(e) if classify(&e) == Fault::Unavailable => return Err(e),
                Err(e) => {
                    savepoint.rollback().await?;
                    tracing::error!(error = %e, rows = rows.len(),
                        "outbound webhook events refused; statuses written without them");
                    crate::metrics::record_storage_rejected(
                        "outbound",
                        "dropped",
                        rows.len() as u64,
                    );
                }
            }
        } else if let Err(e) = org_webhooks::enqueue_outcomes(&tx, &ids, &events).await {
            if classify(&e) != Fault::Unavailable {
                // Try again with the enqueue in a savepoint: the statuses
                // must not fail because of their notifications.
                self.guard_enqueue = true;
            }
            return Err(e);
        }
        tx.commit().await?;
        Ok(written)
    }
}

/// Whether any organization has an enabled outbound webhook endpoint, asked
/// at most once per [`OutboundGate::RECHECK`]: while none has, a status batch
/// costs no extra statement (a new endpoint gets events within that delay).
#[derive(Default)]
struct OutboundGate {
    checked: Option<(tokio::time::Instant, bool)>,
}

impl OutboundGate {
    const RECHECK: Duration = Duration::from_secs(1);

    pub(super) async fn is_open(
        &mut self,
        client: &msgengine_storage::driver::deadpool_postgres::Object,
    ) -> bool {
        if let Some((at, open)) = self.checked {
            if at.elapsed() < Self::RECHECK {
                return open;
            }
        }
        // On error, try to queue: the statement checks again itself.
        let open = org_webhooks::any_enabled(client).await.unwrap_or(true);
        self.checked = Some((tokio::time::Instant::now(), open));
        open
    }
}

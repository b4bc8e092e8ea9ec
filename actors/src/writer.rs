//! The status writer: outcomes of attempts (and later provider reports) are
//! written in batches, one `UPDATE … FROM unnest(…)` per batch.
//!
//! Outcomes are sharded by message id over a few writer tasks, so two
//! concurrent batches never touch the same row (no lock waits between them).
//! Several outcomes for one message in a batch are merged first (events and
//! attempts concatenated in order). A failed write is retried until it
//! succeeds: an outcome is never dropped while the process lives; if it dies,
//! the lease expires and the message is sent again (with the same
//! idempotency key).
//!
//! Outcomes are fenced by the lease they were produced under: a stale one
//! (its lease lost to another claim) is not applied, and is counted; once a
//! batch is written, the leases it released are forgotten by
//! [`crate::lease::HeldLeases`] (so an outcome waiting here keeps its lease).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages::{self, OutcomeRow};
use msgengine_storage::repo::org_webhooks;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Writer tasks (each holds a connection while writing). Default 2.
    pub shards: usize,
    /// Most outcomes in one statement. Default 5000.
    pub max_batch: usize,
    /// This node's leases: told what each written batch released.
    pub leases: std::sync::Arc<crate::lease::HeldLeases>,
}

/// Handle to submit outcomes.
#[derive(Clone)]
pub struct OutcomeWriter {
    shards: Vec<mpsc::Sender<OutcomeRow>>,
    pending: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl OutcomeWriter {
    /// Starts the writer tasks on `runtime`.
    pub fn start(runtime: &tokio::runtime::Handle, pool: Pool, settings: WriterSettings) -> Self {
        let pending = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let shards = (0..settings.shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(65_536);
                runtime.spawn(run_shard(
                    pool.clone(),
                    rx,
                    settings.max_batch,
                    pending.clone(),
                    settings.leases.clone(),
                ));
                tx
            })
            .collect();
        Self { shards, pending }
    }

    /// Queues an outcome; waits only when the writer is far behind (backpressure).
    pub async fn submit(&self, row: OutcomeRow) {
        let shard = shard_of(row.id, self.shards.len());
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
        let shard = shard_of(row.id, self.shards.len());
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
    pool: Pool,
    mut rx: mpsc::Receiver<OutcomeRow>,
    max_batch: usize,
    pending: std::sync::Arc<std::sync::atomic::AtomicI64>,
    leases: std::sync::Arc<crate::lease::HeldLeases>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut outbound = OutboundGate::default();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        let taken = batch.len() as i64;
        let mut rows = coalesce(std::mem::take(&mut batch));
        // In id order, as the webhook writer locks its rows: the update's
        // plan (a nested loop over the unnest and the primary key) then takes
        // row locks in that order, so the two writers do not deadlock (one
        // such deadlock, a second's wait for both, was seen in a load run).
        rows.sort_unstable_by_key(|r| r.id);
        let mut delay = Duration::from_millis(50);
        loop {
            let started = std::time::Instant::now();
            let result = match pool.get().await {
                Ok(mut client) => {
                    crate::metrics::record_pool_wait(started.elapsed());
                    apply(&mut client, &rows, &mut outbound).await
                }
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(written) => {
                    crate::metrics::record_batch("status", rows.len(), started.elapsed());
                    leases.after_write(&rows, written);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = rows.len(), "status write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        pending.fetch_sub(taken, std::sync::atomic::Ordering::Relaxed);
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

    async fn is_open(
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

/// Writes a batch and, while some organization has an enabled outbound
/// webhook endpoint, queues its events for those organizations (one
/// `INSERT … SELECT`) in the same transaction: a status is never written
/// without its notifications, nor a notification without its status. With
/// no endpoint anywhere it is the one `UPDATE` alone, as before.
async fn apply(
    client: &mut msgengine_storage::driver::deadpool_postgres::Object,
    rows: &[OutcomeRow],
    outbound: &mut OutboundGate,
) -> Result<u64, msgengine_storage::StoreError> {
    if !outbound.is_open(client).await {
        return messages::apply_outcomes(&*client, rows).await;
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let events: Vec<&Value> = rows.iter().map(|r| &r.events).collect();
    let tx = client.transaction().await?;
    let written = messages::apply_outcomes(&tx, rows).await?;
    org_webhooks::enqueue_outcomes(&tx, &ids, &events).await?;
    tx.commit().await?;
    Ok(written)
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
        match index.get(&row.id) {
            None => {
                index.insert(row.id, out.len());
                out.push(row);
            }
            Some(&i) => merge(&mut out[i], row),
        }
    }
    out
}

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
    if into.state.can_advance_to(next.state) {
        into.state = next.state;
    }
    append(&mut into.events, next.events);
    append(&mut into.attempts, next.attempts);
    into.attempt_delta += next.attempt_delta;
    into.provider_id = next.provider_id.or(into.provider_id);
    into.provider_message_id = next.provider_message_id.or(into.provider_message_id.take());
    into.next_attempt_at = next.next_attempt_at.or(into.next_attempt_at);
    into.release_lease |= next.release_lease;
}

fn append(into: &mut Value, more: Value) {
    if let (Value::Array(a), Value::Array(b)) = (into, more) {
        a.extend(b);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use msgengine_domain::message::MessageState;

    use super::*;

    fn row(id: Uuid, state: MessageState, event: &str, release: bool) -> OutcomeRow {
        OutcomeRow {
            id,
            state,
            events: json!([event]),
            attempts: json!([]),
            attempt_delta: 1,
            provider_id: None,
            provider_message_id: None,
            next_attempt_at: None,
            release_lease: release,
            fence: None,
        }
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
        assert_eq!(merged[0].id, a);
        assert_eq!(merged[0].state, MessageState::Delivered);
        assert_eq!(merged[0].events, json!(["retry", "delivered", "late sent"]));
        assert_eq!(merged[0].attempt_delta, 3);
        assert!(merged[0].release_lease);
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
        assert_eq!(merged[0].events, json!(["new", "again"]));
        let merged = coalesce(vec![fenced(1, "stale"), fenced(3, "newer")]);
        assert_eq!(merged[0].events, json!(["newer"]));
    }
}

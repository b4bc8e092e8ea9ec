//! The renewal task: this node's leases renewed on a timer, on a connection
//! of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use msgengine_storage::driver::deadpool_postgres::{Object, Pool};

use super::HeldLeases;

/// Renews this node's leases every lease/3 until `stop` is set, on a
/// connection of its own (taken once, taken again after an error), so a pool
/// drained by busy writers never delays a renewal.
pub async fn run_renewal(leases: Arc<HeldLeases>, pool: Pool, stop: Arc<AtomicBool>) {
    let every = (leases.lease_for / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<Object> = None;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if leases.paused.load(Ordering::Relaxed) || leases.is_empty() {
            continue;
        }
        let client = match conn.take() {
            Some(client) => client,
            None => {
                let waited = Instant::now();
                match pool.get().await {
                    Ok(client) => {
                        crate::metrics::record_pool_wait(waited.elapsed());
                        client
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "lease renewal found no connection");
                        continue;
                    }
                }
            }
        };
        match leases.renew(&client).await {
            Ok((renewed, lost)) => {
                if lost > 0 {
                    tracing::debug!(renewed, lost, "leases renewed; some were no longer held");
                }
                conn = Some(client);
            }
            // The connection is dropped (back to the pool, which checks it).
            Err(e) => tracing::error!(error = %e, "lease renewal failed"),
        }
    }
}

//! The sampled gauges: queue depth and oldest age per unfinished state (one
//! statement over the scheduler's partial index) and the connection pool's
//! use, refreshed every `EngineConfig::queue_poll` on the database runtime
//! until the engine stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::gauge;
use msgengine_storage::driver::deadpool_postgres::Pool;
use msgengine_storage::repo::messages;

use crate::metrics::{record_pool_wait, DB_POOL_CONNECTIONS, QUEUE_DEPTH, QUEUE_OLDEST_AGE};

/// Starts the poller on `runtime`; it ends when `stop` is set.
pub fn start(runtime: &tokio::runtime::Handle, pool: Pool, every: Duration, stop: Arc<AtomicBool>) {
    runtime.spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            sample(&pool).await;
            tokio::time::sleep(every).await;
        }
    });
}

/// Reads the queue and the pool once into the gauges.
pub async fn sample(pool: &Pool) {
    let status = pool.status();
    let in_use = status.size.saturating_sub(status.available);
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(status.available as f64);
    gauge!(DB_POOL_CONNECTIONS, "state" => "max").set(status.max_size as f64);
    let waited = Instant::now();
    let stats = match pool.get().await {
        Ok(client) => {
            record_pool_wait(waited.elapsed());
            messages::queue_stats(&client).await
        }
        Err(e) => Err(e.into()),
    };
    match stats {
        Ok(stats) => {
            for s in stats {
                gauge!(QUEUE_DEPTH, "state" => s.state).set(s.depth as f64);
                gauge!(QUEUE_OLDEST_AGE, "state" => s.state).set(s.oldest_age_secs);
            }
        }
        Err(e) => tracing::warn!(error = %e, "queue gauges not refreshed"),
    }
}

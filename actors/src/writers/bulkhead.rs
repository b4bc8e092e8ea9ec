//! What the shared writers (status outcomes, inbound webhooks, outbound
//! deliveries) do when the store refuses a write: which fault it was, how
//! long to wait before the next try, and whether a writer is failing now.
//!
//! Invariants:
//! - A fault is read from the SQLSTATE class (never from error text):
//!   [`Fault::Data`] is tied to the rows written (22 data exception, 23
//!   integrity, 54 program limit), so the batch is split and only the bad
//!   rows fail; [`Fault::Unavailable`] is the database itself (08 connection,
//!   53 resources, 57P shutdown, 58 system, a closed connection, an empty
//!   pool), so the same batch waits and is tried again, never dropped;
//!   [`Fault::Other`] (a deadlock, a cancelled statement, a schema that does
//!   not match) is tried again a few times and then treated as tied to the
//!   rows.
//! - A writer reports itself failing while one of its tasks is waiting to try
//!   again, and healthy again on its next successful write: `/readyz` reads
//!   [`WriterHealth`], and so does the `msgengine_writer_failing` gauge.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use msgengine_storage::StoreError;

/// The kind of a store failure, as a writer acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The rows written are at fault: split the batch, fail the bad rows.
    Data,
    /// The database cannot be reached or is out of resources: wait, try again.
    Unavailable,
    /// Anything else: try again a few times, then split as for [`Fault::Data`].
    Other,
}

/// Classifies a store error (see the module docs).
pub fn classify(e: &StoreError) -> Fault {
    match e {
        StoreError::Conflict { .. } | StoreError::NotFound | StoreError::Rejected { .. } => {
            Fault::Data
        }
        StoreError::Unavailable(_) => Fault::Unavailable,
        StoreError::Query(q) => match q.code() {
            Some(code) => classify_sqlstate(code.code()),
            None if q.is_closed() || has_io_source(q) => Fault::Unavailable,
            None => Fault::Other,
        },
        _ => Fault::Other,
    }
}

/// The fault of a SQLSTATE code, by its class (the first two characters).
pub fn classify_sqlstate(code: &str) -> Fault {
    match code.get(..2) {
        Some("22" | "23" | "54") => Fault::Data,
        Some("08" | "53" | "58") => Fault::Unavailable,
        Some("57") if code.starts_with("57P") => Fault::Unavailable,
        _ => Fault::Other,
    }
}

/// A connection that could not be had from the pool (timed out, or a new one
/// could not be opened, whatever the server said) is the database being
/// unavailable, not the rows' fault.
pub fn pool_unavailable(e: msgengine_storage::driver::deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {e}"))
}

/// Whether a client-side error was caused by the connection's I/O.
fn has_io_source(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Capped exponential wait between tries of a write that cannot succeed now.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    cap: Duration,
}

impl Backoff {
    /// Starts at `first`, doubles per wait, never above `cap`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            next: first,
            first,
            cap: cap.max(first),
        }
    }

    /// The wait to take now; the next one is twice as long (capped).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.cap);
        wait
    }

    /// Back to the first wait (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Whether one shared writer (all its tasks together) is failing, and since
/// when. Cheap to clone; every task reports through its own [`Reporter`].
#[derive(Clone)]
pub struct WriterHealth {
    inner: Arc<Inner>,
}

struct Inner {
    writer: &'static str,
    /// Tasks of this writer waiting to try again.
    failing: AtomicUsize,
    /// Unix milliseconds when the first of them started failing (0: none).
    since_ms: AtomicI64,
}

impl WriterHealth {
    /// The health of the writer called `writer` (the metric label).
    pub fn new(writer: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                writer,
                failing: AtomicUsize::new(0),
                since_ms: AtomicI64::new(0),
            }),
        }
    }

    /// The writer's name (`status`, `webhook`, `outbound`).
    pub fn writer(&self) -> &'static str {
        self.inner.writer
    }

    /// How long the writer has been failing, if it is.
    pub fn failing_for(&self) -> Option<Duration> {
        if self.inner.failing.load(Ordering::Acquire) == 0 {
            return None;
        }
        let since = self.inner.since_ms.load(Ordering::Acquire);
        let elapsed = now_ms().saturating_sub(since).max(0);
        Some(Duration::from_millis(u64::try_from(elapsed).unwrap_or(0)))
    }

    /// A reporter for one task of this writer.
    pub fn reporter(&self) -> Reporter {
        Reporter {
            health: self.clone(),
            failing: false,
        }
    }

    fn publish(&self) {
        let failing = self.inner.failing.load(Ordering::Acquire) > 0;
        crate::metrics::record_writer_failing(self.inner.writer, failing);
    }
}

/// One task's view of its writer's health: it reports its transitions only,
/// so several tasks of one writer combine (failing while any one fails).
pub struct Reporter {
    health: WriterHealth,
    failing: bool,
}

impl Reporter {
    /// This task cannot write and is waiting to try again.
    pub fn failed(&mut self) {
        if self.failing {
            return;
        }
        self.failing = true;
        let inner = &self.health.inner;
        if inner.failing.fetch_add(1, Ordering::AcqRel) == 0 {
            inner.since_ms.store(now_ms(), Ordering::Release);
        }
        self.health.publish();
    }

    /// Whether this task is failing now.
    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// This task wrote successfully.
    pub fn succeeded(&mut self) {
        if !self.failing {
            return;
        }
        self.failing = false;
        self.health.inner.failing.fetch_sub(1, Ordering::AcqRel);
        self.health.publish();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.succeeded();
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes_decide_the_fault() {
        for (code, fault) in [
            ("22021", Fault::Data), // invalid byte sequence (a NUL in text)
            ("22P05", Fault::Data), // unsupported Unicode escape in jsonb
            ("23514", Fault::Data), // check violation
            ("23505", Fault::Data), // unique violation
            ("54000", Fault::Data), // index row too large
            ("08006", Fault::Unavailable),
            ("57P01", Fault::Unavailable),
            ("53300", Fault::Unavailable),
            ("57014", Fault::Other), // statement timeout
            ("40P01", Fault::Other), // deadlock
            ("42703", Fault::Other), // undefined column
            ("", Fault::Other),
        ] {
            assert_eq!(classify_sqlstate(code), fault, "{code}");
        }
        assert_eq!(
            classify(&StoreError::Unavailable("pool timed out".into())),
            Fault::Unavailable
        );
        assert_eq!(classify(&StoreError::NotFound), Fault::Data);
        assert_eq!(classify(&StoreError::Corrupt("x".into())), Fault::Other);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let waits: Vec<u128> = (0..5).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(50));
    }

    #[test]
    fn a_writer_fails_while_any_task_fails_and_recovers_when_all_do() {
        let health = WriterHealth::new("status");
        let (mut a, mut b) = (health.reporter(), health.reporter());
        assert_eq!(health.failing_for(), None);
        a.failed();
        a.failed();
        b.failed();
        assert!(health.failing_for().is_some());
        a.succeeded();
        assert!(health.failing_for().is_some(), "b still fails");
        b.succeeded();
        b.succeeded();
        assert_eq!(health.failing_for(), None);
        a.failed();
        drop(a);
        assert_eq!(health.failing_for(), None, "a stopped task no longer fails");
    }
}

//! The database workers' runtime.
//!
//! The group committer and the status writer encode thousands of rows per
//! transaction. On the actor system's single thread they delayed every
//! dispatch and admission queued behind them; they run instead on a small
//! multi-threaded tokio runtime of their own, on a thread that owns it and
//! shuts it down when the engine is dropped or stopped.

use std::sync::Mutex;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub struct DbRuntime {
    handle: Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl DbRuntime {
    /// Starts the runtime with `threads` workers.
    pub fn start(threads: usize) -> std::io::Result<DbRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("msgengine-db")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("msgengine-db-owner".into())
            .spawn(move || {
                // Returns when stop() is called or the sender is dropped.
                let _ = runtime.block_on(stopped);
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;
        Ok(DbRuntime {
            handle,
            stop: Mutex::new(Some(stop)),
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime (its tasks are dropped). Idempotent.
    pub fn stop(&self) {
        let sender = match self.stop.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

impl Drop for DbRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tasks_and_stops() {
        let rt = DbRuntime::start(2).expect("runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            tx.send(std::thread::current().name().map(str::to_owned))
                .expect("send");
        });
        let name = rx.recv_timeout(Duration::from_secs(5)).expect("task ran");
        assert_eq!(name.as_deref(), Some("msgengine-db"));
        rt.stop();
        rt.stop();
    }
}

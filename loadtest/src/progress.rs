//! The one-line-per-second progress report of a load phase.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::stats::{SecondSample, SharedRecorder};

/// Every second after `start`: closes the recorder's second and prints it.
/// `in_flight` reads the number of requests under way.
pub fn spawn_ticker<F>(
    start: Instant,
    recorder: Arc<SharedRecorder>,
    in_flight: F,
) -> JoinHandle<()>
where
    F: Fn() -> u64 + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let line = {
                let mut r = recorder.lock();
                let sample = r.roll_second(in_flight(), 1.0);
                line(
                    &sample,
                    r.messages_sent(),
                    r.latency().p99_ms,
                    r.error_count(),
                )
            };
            println!("{line}");
        }
    })
}

/// Stops the ticker and records the last, partial second (if anything
/// happened in it).
pub fn stop_ticker(ticker: JoinHandle<()>, start: Instant, recorder: &SharedRecorder) {
    ticker.abort();
    let mut r = recorder.lock();
    if r.second_has_activity() {
        let window = start.elapsed().as_secs_f64() - r.seconds_recorded() as f64;
        let sample = r.roll_second(0, window.clamp(0.001, 1.0));
        let text = line(
            &sample,
            r.messages_sent(),
            r.latency().p99_ms,
            r.error_count(),
        );
        println!("{text}");
    }
}

/// `[  12s] sent 60000 | accepted 5000/s | p99 3.21 ms (so far 4.02) | errors 0 | in flight 17`
pub fn line(
    sample: &SecondSample,
    total_sent: u64,
    p99_so_far_ms: f64,
    total_errors: u64,
) -> String {
    let per_sec = sample.accepted_messages as f64 / sample.window_secs.max(0.001);
    format!(
        "[{:>5}s] sent {total_sent} | accepted {per_sec:.0}/s | p99 {:.2} ms (so far {p99_so_far_ms:.2}) | errors {total_errors} | in flight {}",
        sample.second, sample.p99_ms, sample.in_flight
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shape() {
        let sample = SecondSample {
            second: 12,
            window_secs: 1.0,
            sent_messages: 5000,
            accepted_messages: 4990,
            errors: 1,
            in_flight: 17,
            p50_ms: 1.0,
            p99_ms: 3.214,
            max_ms: 9.0,
        };
        assert_eq!(
            line(&sample, 60_000, 4.0199, 3),
            "[   12s] sent 60000 | accepted 4990/s | p99 3.21 ms (so far 4.02) | errors 3 | in flight 17"
        );
    }
}

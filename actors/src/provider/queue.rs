//! The provider actor's queue: what may start now (limiter, breaker, cap,
//! lease and organization checks), short retries held in memory, and
//! stopping once a retired actor is idle.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::ProviderActor;
use crate::state::job::Job;
use crate::state::lease::LostAt;

impl ProviderActor {
    /// Starts as many queued attempts as the breaker, limiter and cap allow.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight.len() < self.env.settings.provider_concurrency
            && !self.queue.is_empty()
        {
            if !self.front_is_startable() {
                continue;
            }
            // The limiter first: a permit spent on a job that then fails over
            // costs nothing, while a half-open probe must not be taken and
            // then left unused.
            if let Some(limiter) = &self.limiter {
                if let Err(not_until) = limiter.check() {
                    let clock = governor::clock::DefaultClock::default();
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
                    if !self.pump_scheduled {
                        self.metrics.rate_limited();
                    }
                    self.publish_backlog();
                    self.schedule_pump(wait, ctx);
                    return;
                }
            }
            let now = Instant::now();
            let acquired = self.breaker.try_acquire(now);
            self.observe_breaker(now);
            if !acquired {
                self.live.set_circuit_open(true);
                let jobs: Vec<Job> = self.queue.drain(..).collect();
                for job in jobs {
                    self.on_circuit_open(job, ctx);
                }
                return;
            }
            if let Some(job) = self.queue.pop_front() {
                self.start_attempt(job, ctx);
            }
        }
        self.publish_backlog();
        self.metrics.in_flight(self.in_flight.len());
    }

    /// Tells routing whether the limiter holds more than a short wait.
    fn publish_backlog(&self) {
        let rate = super::limit_for(&self.env.settings, &self.spec).map(|(rate, _)| rate.get());
        self.live.set_backlog(self.queue.len(), rate);
    }

    /// Roughly how long this actor needs to work through `held` jobs (its
    /// rate, or its concurrency per second when it has none), between 1 and
    /// 30 s: when deferred jobs are worth claiming again.
    pub(super) fn drain_estimate(&self, held: usize) -> chrono::Duration {
        let settings = &self.env.settings;
        chrono::Duration::seconds(drain_secs(
            settings.provider_rate_per_second,
            settings.provider_concurrency,
            held,
        ))
    }

    /// Whether the first queued job may be attempted now; if not, it is
    /// taken off the queue: dropped when this node's lease on it is lost or
    /// about to end (the database gives it to the next claim), handed back
    /// when its organization is disabled.
    pub(super) fn front_is_startable(&mut self) -> bool {
        let Some(job) = self.queue.front() else {
            return false;
        };
        let (id, token) = (job.message.id.0, job.lease.token);
        let leased = self.env.leases.is_usable(id, token);
        let active = self.env.orgs.is_active(job.message.organization_id);
        if leased && active {
            return true;
        }
        let Some(job) = self.queue.pop_front() else {
            return false;
        };
        if !leased {
            tracing::debug!(provider = %self.id, message = %job.message.id,
                "lease lost or about to end; the job is left to the next claim");
            self.env.leases.forget(id, token);
            self.env.leases.record_lost(LostAt::Attempt, 1);
        } else {
            self.env.outcomes.hand_back(&job, "organization disabled");
        }
        false
    }

    /// Takes every job not in flight (queued and waiting to retry).
    pub(super) fn take_waiting(&mut self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.queue.drain(..).collect();
        jobs.extend(self.delayed.drain(..).map(|(_, job)| job));
        jobs
    }

    /// Keeps `job` in memory until `after` has passed, then queues it again.
    pub(super) fn retry_later(&mut self, job: Job, after: Duration, ctx: &mut Context<Self>) {
        self.delayed.push((Instant::now() + after, job));
        self.arm_retry_timer(ctx);
    }

    /// Makes sure a timer fires when the earliest delayed job is due.
    pub(super) fn arm_retry_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.delayed.iter().map(|(at, _)| *at).min() else {
            return;
        };
        if self.retry_timer.is_some_and(|at| at <= due) {
            return;
        }
        let wait = due.saturating_duration_since(Instant::now());
        ctx.run_later(wait, move |act, ctx| {
            if act.retry_timer == Some(due) {
                act.retry_timer = None;
            }
            act.release_due_retries(ctx);
        });
        self.retry_timer = Some(due);
    }

    /// Queues the delayed jobs that are due, in due order.
    pub(super) fn release_due_retries(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let (mut due, later): (Vec<_>, Vec<_>) =
            self.delayed.drain(..).partition(|(at, _)| *at <= now);
        self.delayed = later;
        due.sort_by_key(|(at, _)| *at);
        self.queue.extend(due.into_iter().map(|(_, job)| job));
        self.arm_retry_timer(ctx);
        self.pump(ctx);
    }

    pub(super) fn schedule_pump(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if self.pump_scheduled {
            return;
        }
        self.pump_scheduled = true;
        ctx.run_later(after.max(Duration::from_millis(1)), |act, ctx| {
            act.pump_scheduled = false;
            act.pump(ctx);
        });
    }

    pub(super) fn stop_if_idle(&mut self, ctx: &mut Context<Self>) {
        if self.retiring
            && self.in_flight.is_empty()
            && self.queue.is_empty()
            && self.delayed.is_empty()
        {
            ctx.stop();
            // A retired actor must not be restarted by its supervisor.
            ctx.terminate();
        }
    }
}

/// Seconds to work through `held` jobs at `rate` per second (or, with no
/// rate, `concurrency` per second), between 1 and 30.
fn drain_secs(rate: u32, concurrency: usize, held: usize) -> i64 {
    let per_second = match rate {
        0 => concurrency.max(1),
        rate => rate as usize,
    };
    (held / per_second).clamp(1, 30) as i64
}

#[cfg(test)]
mod tests {
    use super::drain_secs;

    #[test]
    fn deferred_jobs_come_back_after_the_backlog_drains_within_1_to_30_s() {
        assert_eq!(drain_secs(100, 256, 1_000), 10);
        assert_eq!(
            drain_secs(0, 256, 2_560),
            10,
            "no rate: concurrency per second"
        );
        assert_eq!(drain_secs(0, 0, 5), 5, "a zero cap counts as one");
        assert_eq!(drain_secs(100, 256, 0), 1);
        assert_eq!(drain_secs(1, 256, 1_000_000), 30);
    }
}

//! Posting status webhooks back to the engine, off the request path.
//!
//! A handler builds a message's webhooks (already signed: each provider
//! module signs in its own scheme) and queues them as one [`WebhookJob`];
//! [`dispatch`] runs each job in its own task: wait `delay`, post step 1,
//! wait, post step 2, ... At most `concurrency` posts are in flight at once
//! (the others wait their turn). A step the engine answers non-2xx (or not at all)
//! is retried up to `retries` times, `retry_delay` doubling; then it is
//! counted as failed and the job goes on with its next step.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use super::stats::ProviderCounters;

/// One webhook request.
#[derive(Debug, Clone)]
pub struct Step {
    /// Where to post (Twilio signs the exact URL; it may differ per step
    /// only in principle).
    pub url: String,
    pub content_type: &'static str,
    /// Extra headers (signatures, user agent).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A message's webhooks, in order.
#[derive(Debug)]
pub struct WebhookJob {
    /// The target (informational; each step carries its own URL).
    pub url: String,
    pub steps: Vec<Step>,
    pub delay: Duration,
    pub retries: u32,
    pub retry_delay: Duration,
    pub counters: Arc<ProviderCounters>,
}

/// The client webhooks go out with (plain HTTP on loopback, pooled: as many
/// idle connections as posts may be in flight).
pub fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(concurrency.max(1))
        .build()?)
}

/// Runs every queued job until the senders are gone, at most `concurrency`
/// posts at a time.
pub async fn dispatch(
    mut jobs: mpsc::UnboundedReceiver<WebhookJob>,
    client: reqwest::Client,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    while let Some(job) = jobs.recv().await {
        tokio::spawn(run(client.clone(), slots.clone(), job));
    }
}

async fn run(client: reqwest::Client, slots: Arc<Semaphore>, job: WebhookJob) {
    for step in &job.steps {
        tokio::time::sleep(job.delay).await;
        let mut wait = job.retry_delay;
        let mut attempt = 0;
        loop {
            let delivered = match slots.acquire().await {
                Ok(_slot) => post(&client, step).await,
                Err(_) => return,
            };
            if delivered {
                job.counters.webhooks_delivered.fetch_add(1, Relaxed);
                break;
            }
            if attempt >= job.retries {
                job.counters.webhooks_failed.fetch_add(1, Relaxed);
                break;
            }
            attempt += 1;
            job.counters.webhook_retries.fetch_add(1, Relaxed);
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
}

/// One attempt; true on a 2xx answer.
async fn post(client: &reqwest::Client, step: &Step) -> bool {
    let mut request = client
        .post(&step.url)
        .header(reqwest::header::CONTENT_TYPE, step.content_type)
        .body(step.body.clone());
    for (name, value) in &step.headers {
        request = request.header(*name, value);
    }
    match request.send().await {
        Ok(answer) => answer.status().is_success(),
        Err(_) => false,
    }
}

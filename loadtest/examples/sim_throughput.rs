//! How many sends a running `msgengine-sim` answers per second: `--concurrency`
//! keep-alive connections post Termii sends (a new recipient and idempotency
//! key each, so the simulator's per-recipient and per-key maps grow as in a
//! load test) for `--seconds`, then the count, the rate and latency
//! percentiles are printed. Loopback only, bounded in time.
//!
//! ```sh
//! cargo run --release -p msgengine-loadtest --example sim_throughput -- \
//!     --url http://127.0.0.1:18200 --seconds 10 --concurrency 32
//! ```
//!
//! The simulator needs a `termii` account with `apiKey` `--api-key` (the
//! example config's); give it no `webhookUrl` to measure the send path
//! alone.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// The simulator's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:18200")]
    url: String,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The Termii account's `apiKey`.
    #[arg(long, default_value = "TLsimtermiikey")]
    api_key: String,
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = url::Url::parse(&args.url)?;
    anyhow::ensure!(is_loopback(&base), "--url must be a loopback address");
    anyhow::ensure!(args.seconds <= 120, "--seconds is at most 120");
    let endpoint = base.join("/api/sms/send")?;
    // One worker thread: the rest of the machine is the simulator's.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(run(args, endpoint))
}

struct Totals {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

async fn run(args: Args, endpoint: url::Url) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let totals = Arc::new(Totals {
        ok: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let (client, endpoint, totals, key) = (
            client.clone(),
            endpoint.clone(),
            totals.clone(),
            args.api_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).ok();
            let mut n: u64 = 0;
            while Instant::now() < deadline {
                n += 1;
                let body = json!({"api_key": key, "to": format!("234803{worker:03}{n:07}"),
                                  "from": "Acme", "sms": "Your code is 1234",
                                  "type": "plain", "channel": "generic"});
                let sent = Instant::now();
                let answer = client
                    .post(endpoint.clone())
                    .header("X-Msgengine-Idempotency-Key", format!("tp-{worker}-{n}"))
                    .json(&body)
                    .send()
                    .await;
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Some(h) = histogram.as_mut() {
                    let _ = h.record(micros.max(1));
                }
                let counter = match answer {
                    Ok(a) if a.status().is_success() => {
                        let _ = a.bytes().await;
                        &totals.ok
                    }
                    Ok(_) => &totals.refused,
                    Err(_) => &totals.failed,
                };
                counter.fetch_add(1, Relaxed);
            }
            if let Some(h) = histogram {
                let mut all = totals
                    .latency_us
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let _ = all.add(h);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = totals.ok.load(Relaxed);
    let latency = totals
        .latency_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    println!(
        "{ok} sends accepted in {elapsed:.1} s = {:.0}/s ({} refused, {} transport errors); \
         latency p50 {} us, p99 {} us, max {} us",
        ok as f64 / elapsed,
        totals.refused.load(Relaxed),
        totals.failed.load(Relaxed),
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );
    Ok(())
}

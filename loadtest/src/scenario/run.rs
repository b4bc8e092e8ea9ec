//! One scenario end to end: `msgengine-load scenario FILE` and
//! `msgengine-load ramp FILE`.
//!
//! 1. Start the provider simulator in-process on loopback with one account
//!    per (organization, scenario provider) ([`super::provision`]).
//! 2. Create the organizations, keys, admission rates and providers in the
//!    engine; point the simulator's webhooks at them.
//! 3. Read the simulator's receipt log in the background ([`crate::receipts`]).
//! 4. Load: warm-up then the measured phase (`scenario`), or rate steps
//!    until one is not sustained (`ramp`), open model ([`crate::open_loop`]).
//! 5. Completion check per organization ([`crate::completion`]), receipts
//!    paired with accepted messages, the simulator's per-key counts.
//! 6. Verdict and the report directory ([`super::report`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use reqwest::header::HeaderValue;
use tokio::task::JoinSet;

use super::plan::{Mix, ScenarioSource};
use super::provision;
use super::ramp::{find_knee, StepResult};
use super::report::{Phase, RampReport, ScenarioReport};
use super::Scenario;
use crate::completion::{self, CompletionConfig, CompletionSummary};
use crate::http::{Api, ClientOptions};
use crate::open_loop::{self, LoadOutcome};
use crate::receipts;
use crate::schedule::OpenSchedule;
use crate::sim::{self, StartOptions};
use crate::target::Target;

pub use super::report::Mode;

/// What to run the scenario against, and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The engine's base URL (loopback only).
    pub base: String,
    pub admin_token: String,
    /// The report directory (default `target/loadtest-reports/NAME-TIME`).
    pub out_dir: Option<PathBuf>,
    /// Where the simulator listens (port 0: any free port).
    pub sim_listen: SocketAddr,
    /// The simulator's HTTP worker threads.
    pub sim_workers: usize,
    pub request_timeout: Duration,
    /// Status requests in flight during the completion check.
    pub status_concurrency: usize,
    /// Accepted messages (spread evenly) whose history is checked.
    pub history_sample: usize,
}

impl RunOptions {
    /// Defaults for the engine at `base`.
    pub fn new(base: &str, admin_token: &str) -> Self {
        Self {
            base: base.to_owned(),
            admin_token: admin_token.to_owned(),
            out_dir: None,
            sim_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sim_workers: 1,
            request_timeout: Duration::from_secs(30),
            status_concurrency: 256,
            history_sample: 1000,
        }
    }
}

/// A finished run: its report and where it was written.
#[derive(Debug)]
pub struct Finished {
    pub report: ScenarioReport,
    pub dir: PathBuf,
}

/// Runs a scenario end to end and writes its report directory.
pub async fn run(scenario: Scenario, options: &RunOptions, mode: Mode) -> Result<Finished> {
    let ramp_spec = match mode {
        Mode::Ramp => Some(scenario.ramp.context(
            "this scenario has no [ramp] section (start_rate, step_rate, step_secs, max_rate)",
        )?),
        Mode::Scenario => None,
    };
    let peak_rate = ramp_spec.map_or(scenario.load.rate, |r| r.max_rate);
    let target = Target::parse(&options.base)?;
    let api = Arc::new(Api::new(
        target,
        &ClientOptions {
            pool_size: (scenario.load.max_in_flight as usize).max(options.status_concurrency),
            request_timeout: options.request_timeout,
        },
    )?);

    let run_nonce = UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let accounts = provision::accounts(&scenario, run_nonce);
    let sim_config = provision::sim_config(&scenario, &accounts)?;
    let sim = sim::start(
        sim_config,
        StartOptions {
            listen: options.sim_listen,
            workers: options.sim_workers,
            handle_signals: false,
            webhook_concurrency: sim::DEFAULT_WEBHOOK_CONCURRENCY,
        },
    )
    .await
    .context("starting the provider simulator")?;
    let sim_base = sim.base_url();
    println!(
        "simulator: {} accounts on {sim_base} ({} organizations x {} providers)",
        accounts.len(),
        scenario.tenant_count(),
        scenario.providers.len()
    );
    let tenants = provision::provision(
        &api,
        &options.admin_token,
        &scenario,
        &accounts,
        &sim_base,
        peak_rate,
    )
    .await?;
    for t in &tenants {
        println!(
            "set-up: organization {} ({}, share {:.1}%): admission {}/s{}, providers {}",
            t.name,
            t.organization_id,
            100.0 * t.share,
            t.admission.messages_per_second,
            if t.admission_applied {
                ""
            } else {
                " (NOT applied)"
            },
            t.providers
                .iter()
                .map(|(name, _, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(" -> ")
        );
    }
    let auths = tenants
        .iter()
        .map(|t| Api::bearer(&t.api_key))
        .collect::<Result<Vec<HeaderValue>>>()?;
    let source = ScenarioSource::new(
        Mix::new(&scenario)?,
        auths.clone(),
        scenario.seed,
        &scenario.name,
    );
    let polling = receipts::spawn(sim_base.clone())?;

    let load = match ramp_spec {
        None => load_phases(&api, &source, &scenario).await?,
        Some(spec) => ramp_phases(&api, &source, &scenario, &spec.rates(), spec.step_secs).await?,
    };

    let completion = drain_all(&api, &auths, &load, &scenario, options).await;
    let collected = polling.finish().await;
    let start_us = load.phases.first().map_or(0, |p| p.started_unix_us);
    let end_to_end = receipts::correlate(&load.ids, &load.meta, &collected, start_us);
    let sim_stats = sim.snapshot();
    sim.stop().await;

    let report = ScenarioReport::new(
        &scenario,
        mode,
        options.base.clone(),
        tenants,
        load.phases,
        load.ramp,
        completion,
        end_to_end,
        sim_stats,
    );
    let dir = options.out_dir.clone().unwrap_or_else(|| {
        PathBuf::from("target/loadtest-reports").join(format!(
            "{}-{}",
            scenario.name,
            chrono::Utc::now().format("%Y%m%d-%H%M%S")
        ))
    });
    report.write_dir(&dir)?;
    print!("{}", report.human());
    println!("report: {}", dir.display());
    println!("{}", report.correctness.line);
    Ok(Finished { report, dir })
}

/// Every phase's load, and every accepted message in order.
struct Load {
    phases: Vec<Phase>,
    ramp: Option<RampReport>,
    ids: Vec<String>,
    meta: Vec<crate::stats::AcceptMeta>,
}

impl Load {
    fn new() -> Self {
        Self {
            phases: Vec::new(),
            ramp: None,
            ids: Vec::new(),
            meta: Vec::new(),
        }
    }

    fn add(&mut self, label: String, target_rate: f64, measured: bool, mut outcome: LoadOutcome) {
        if outcome.meta.len() == outcome.ids.len() && self.meta.len() == self.ids.len() {
            self.meta.append(&mut outcome.meta);
        } else {
            self.meta.clear();
        }
        self.ids.append(&mut outcome.ids);
        self.phases.push(Phase {
            label,
            target_rate,
            measured,
            started_unix_us: outcome
                .started_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            summary: outcome.summary,
        });
    }
}

async fn phase(
    api: &Arc<Api>,
    source: &ScenarioSource,
    first_request: u64,
    rate: f64,
    secs: f64,
    scenario: &Scenario,
) -> Result<(LoadOutcome, u64)> {
    let mean = scenario.mean_batch();
    // The schedule spaces requests by the mean batch size; each request
    // then holds its own picked size.
    let request_rate = rate / mean;
    let schedule = OpenSchedule::new(request_rate, Duration::from_secs_f64(secs), 1)?;
    println!(
        "load: {rate} msg/s for {secs} s ({:.1} req/s of {:.1} messages on average, {} requests), open model",
        request_rate, mean, schedule.requests
    );
    let source = Arc::new(source.phase(first_request));
    let outcome = open_loop::run_source(
        Arc::clone(api),
        source,
        &schedule,
        scenario.load.max_in_flight as usize,
    )
    .await;
    Ok((outcome, first_request + schedule.requests))
}

async fn load_phases(api: &Arc<Api>, source: &ScenarioSource, scenario: &Scenario) -> Result<Load> {
    let mut load = Load::new();
    let l = &scenario.load;
    let mut next = 0;
    if l.warmup_secs > 0.0 {
        println!("warm-up: {} s, not in the latency figures", l.warmup_secs);
        let (warm, after) = phase(api, source, next, l.rate, l.warmup_secs, scenario).await?;
        next = after;
        load.add("warm-up".into(), l.rate, false, warm);
    }
    let (measured, _) = phase(api, source, next, l.rate, l.duration_secs, scenario).await?;
    load.add("measured".into(), l.rate, true, measured);
    Ok(load)
}

async fn ramp_phases(
    api: &Arc<Api>,
    source: &ScenarioSource,
    scenario: &Scenario,
    rates: &[f64],
    step_secs: f64,
) -> Result<Load> {
    let mut load = Load::new();
    let mut next = 0;
    let l = &scenario.load;
    if l.warmup_secs > 0.0 && !rates.is_empty() {
        println!("warm-up: {} s at {} msg/s", l.warmup_secs, rates[0]);
        let (warm, after) = phase(api, source, next, rates[0], l.warmup_secs, scenario).await?;
        next = after;
        load.add("warm-up".into(), rates[0], false, warm);
    }
    let mut steps = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        println!("ramp step {}/{}: {rate} msg/s", i + 1, rates.len());
        let (outcome, after) = phase(api, source, next, *rate, step_secs, scenario).await?;
        next = after;
        let step = StepResult::from_load(*rate, step_secs, &outcome.summary, &scenario.slo);
        println!(
            "ramp step {}: achieved {:.0}/s, p99 {:.2} ms, errors {:.2}% -> {}",
            i + 1,
            step.achieved_rate,
            step.accept_p99_ms,
            100.0 * step.error_share,
            if step.is_sustained() {
                "sustained".to_owned()
            } else {
                format!("NOT sustained ({})", step.violations.join(", "))
            }
        );
        let sustained = step.is_sustained();
        steps.push(step);
        load.add(
            format!("step {} ({rate} msg/s)", i + 1),
            *rate,
            true,
            outcome,
        );
        if !sustained {
            break;
        }
    }
    let knee = find_knee(&steps);
    println!("{}", knee.summary);
    load.ramp = Some(RampReport { steps, knee });
    Ok(load)
}

/// The completion check of each organization's messages (the status API
/// answers only the owner), concurrently, merged.
async fn drain_all(
    api: &Arc<Api>,
    auths: &[HeaderValue],
    load: &Load,
    scenario: &Scenario,
    options: &RunOptions,
) -> CompletionSummary {
    let mut by_tenant: Vec<Vec<String>> = vec![Vec::new(); auths.len().max(1)];
    for (i, id) in load.ids.iter().enumerate() {
        let tenant = load.meta.get(i).map_or(0, |m| usize::from(m.tenant));
        if let Some(list) = by_tenant.get_mut(tenant) {
            list.push(id.clone());
        }
    }
    let started_at = load
        .phases
        .first()
        .map_or(std::time::SystemTime::now(), |p| {
            UNIX_EPOCH + Duration::from_micros(p.started_unix_us)
        });
    let config = CompletionConfig {
        drain_timeout: Duration::from_secs_f64(scenario.load.drain_timeout_secs),
        poll_interval: Duration::from_millis(500),
        concurrency: (options.status_concurrency / auths.len().max(1)).max(4),
        history_sample: options.history_sample / auths.len().max(1),
    };
    let mut tasks = JoinSet::new();
    for (ids, auth) in by_tenant.into_iter().zip(auths.iter().cloned()) {
        if ids.is_empty() {
            continue;
        }
        let api = Arc::clone(api);
        let config = config.clone();
        tasks.spawn(async move {
            completion::drain(api, auth, Arc::new(ids), started_at, &config).await
        });
    }
    let mut merged = CompletionSummary::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(summary) => merged.merge(summary),
            Err(e) => eprintln!("warning: a completion check task failed: {e}"),
        }
    }
    merged
}

//! The command line and the two modes' flow: set up (or use a given API
//! key), load, completion check, report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use reqwest::header::HeaderValue;
use serde_json::{json, Value};

use crate::closed_loop::{self, ClosedLoopConfig};
use crate::completion::{self, CompletionConfig};
use crate::http::{Api, ClientOptions};
use crate::open_loop::{self, LoadOutcome, OpenLoopConfig};
use crate::payload::Channel;
use crate::report::Report;
use crate::scenario::run::{Mode, RunOptions};
use crate::scenario::{self, Scenario};
use crate::schedule::OpenSchedule;
use crate::setup::{self, Admission, Plan, SandboxProfile};
use crate::target::Target;

/// Load-test harness for msgengine (loopback targets only).
#[derive(Debug, Parser)]
#[command(name = "msgengine-load", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open model: send at a fixed target rate for a duration, whether or
    /// not earlier requests have returned; then check every message ends.
    Run(RunArgs),
    /// Closed loop: send COUNT messages as fast as the engine allows
    /// (honouring 429 Retry-After, retrying transport errors and 5xx with
    /// idempotency keys); then check every message ends.
    SendMany(SendManyArgs),
    /// Runs a scenario file end to end: starts the provider simulator,
    /// sets up organizations and providers, warm-up and measured load,
    /// completion and exactly-once checks, report directory.
    Scenario(ScenarioArgs),
    /// Steps a scenario's rate up (its [ramp] section) until p99 accept
    /// latency or errors pass its [slo]; reports the steps and the knee.
    Ramp(ScenarioArgs),
}

impl Cli {
    /// Tokio worker threads for the run.
    pub fn threads(&self) -> usize {
        usize::from(match &self.command {
            Command::Run(a) => a.common.threads,
            Command::SendMany(a) => a.common.threads,
            Command::Scenario(a) | Command::Ramp(a) => a.threads,
        })
    }
}

/// Options both modes share.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The engine's base URL; only loopback hosts (127.0.0.0/8, ::1,
    /// localhost) are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base: String,
    /// Admin token: the run creates its own organization, API key, admission
    /// rate and SANDBOX provider.
    #[arg(long, env = "MSGENGINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Use this organization API key instead of setting one up (its
    /// providers must already be configured).
    #[arg(long, env = "MSGENGINE_LOAD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Channel of every message.
    #[arg(long, value_enum, default_value_t = Channel::Sms)]
    pub channel: Channel,
    /// Sandbox provider latency per send (set-up only).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub sandbox_latency_ms: u32,
    /// Routing benchmark (set-up only): this many SANDBOX connections of the
    /// channel, priced per country, instead of one.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=50))]
    pub routing_providers: u32,
    /// Routing benchmark (set-up only): this many routing rules, only the
    /// last matching the run's messages (needs --routing-providers).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=200))]
    pub routing_rules: u32,
    /// Sandbox share of transient failures, 0-1 (set-up only).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub transient_rate: f64,
    /// Sandbox share of permanent failures, 0-1 (set-up only).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub permanent_rate: f64,
    /// Organization admission rate, messages/s (set-up only; default: twice
    /// the target, at least 1000; send-many: 100000).
    #[arg(long)]
    pub org_rate: Option<u32>,
    /// Organization admission burst (set-up only; default: the rate, at
    /// least two batches).
    #[arg(long)]
    pub org_burst: Option<u32>,
    /// Do not require every message to be delivered (only terminal). Implied
    /// when the sandbox has failure rates.
    #[arg(long)]
    pub allow_failures: bool,
    /// Seconds to wait after the load for every message to be terminal.
    #[arg(long, default_value = "120", value_parser = seconds)]
    pub drain_timeout: Duration,
    /// Status requests in flight during the completion check.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub status_concurrency: u32,
    /// How many accepted messages (spread evenly) get their history checked.
    #[arg(long, default_value_t = 1000)]
    pub history_sample: usize,
    /// Timeout of one HTTP request, seconds.
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub request_timeout: Duration,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Tokio worker threads (the engine and PostgreSQL share the machine).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

/// `run` options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Target messages per second.
    #[arg(long)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub duration: Duration,
    /// Messages per request (1 sends single-message requests, more sends
    /// `{"messages": [...]}` batches); the request rate is rate / batch size.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
    /// Most requests under way at once; a request due beyond it is not sent
    /// and counted as `not_sent_client_saturated`.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Seconds of load at the same rate BEFORE the measured `--duration`
    /// (connections opened, the organization's actors started, caches
    /// filled). Its messages join the completion check; its latencies are
    /// not in the report's accept latency (as wrk2 leaves its calibration
    /// period out).
    #[arg(long, default_value = "0", value_parser = seconds)]
    pub warmup: Duration,
}

/// `send-many` options.
#[derive(Debug, Clone, Args)]
pub struct SendManyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Messages to send.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Messages per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
    /// Requests under way at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// How often one request is retried (same Idempotency-Key, same body)
    /// after a 429, a 5xx or a transport error.
    #[arg(long, default_value_t = 100)]
    pub max_retries: u32,
    /// Seconds after a request's first attempt past which it is not retried.
    #[arg(long, default_value = "120", value_parser = seconds)]
    pub retry_deadline: Duration,
}

/// `scenario` and `ramp` options.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// The scenario file (TOML, see loadtest/scenarios/).
    pub file: PathBuf,
    /// The engine's base URL; only loopback hosts are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base: String,
    /// Admin token of the engine (organizations and keys are created).
    #[arg(long, env = "MSGENGINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Report directory (default target/loadtest-reports/NAME-TIME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the scenario's load.rate, messages/s.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Override the scenario's load.duration_secs.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Where the simulator listens (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sim_listen: std::net::SocketAddr,
    /// The simulator's HTTP worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub sim_workers: u16,
    /// Timeout of one HTTP request, seconds.
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub request_timeout: Duration,
    /// Status requests in flight during the completion check.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub status_concurrency: u32,
    /// How many accepted messages (spread evenly) get their history checked.
    #[arg(long, default_value_t = 1000)]
    pub history_sample: usize,
    /// Tokio worker threads (the engine and PostgreSQL share the machine).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

impl ScenarioArgs {
    /// The scenario with the command line's overrides, validated.
    pub fn scenario(&self) -> Result<Scenario> {
        let mut scenario = Scenario::from_file(&self.file)?;
        if let Some(rate) = self.rate {
            scenario.load.rate = rate;
        }
        if let Some(duration) = self.duration {
            scenario.load.duration_secs = duration;
        }
        scenario.validate()?;
        Ok(scenario)
    }

    /// The run options.
    pub fn options(&self) -> Result<RunOptions> {
        if !crate::target::is_loopback(self.sim_listen.ip()) {
            bail!("--sim-listen must be a loopback address");
        }
        let mut options = RunOptions::new(&self.base, &self.admin_token);
        options.out_dir = self.out.clone();
        options.sim_listen = self.sim_listen;
        options.sim_workers = usize::from(self.sim_workers);
        options.request_timeout = self.request_timeout;
        options.status_concurrency = self.status_concurrency as usize;
        options.history_sample = self.history_sample;
        Ok(options)
    }
}

async fn scenario(args: ScenarioArgs, mode: Mode) -> Result<bool> {
    let scenario = args.scenario()?;
    let options = args.options()?;
    let finished = scenario::run::run(scenario, &options, mode).await?;
    Ok(finished.report.correctness.pass)
}

fn probability(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{v} is not between 0 and 86400 seconds"))
    }
}

/// The API key to load with, and the set-up that made it (if any).
struct Tenant {
    api_key: String,
    provisioned: Option<setup::Provisioned>,
    plan: Option<Plan>,
}

async fn tenant(api: &Api, common: &CommonArgs, default_admission: Admission) -> Result<Tenant> {
    if let Some(key) = &common.api_key {
        return Ok(Tenant {
            api_key: key.clone(),
            provisioned: None,
            plan: None,
        });
    }
    let Some(admin_token) = &common.admin_token else {
        bail!("give --admin-token (the run sets up its own organization) or --api-key");
    };
    let admission = Admission {
        messages_per_second: common
            .org_rate
            .unwrap_or(default_admission.messages_per_second),
        burst: common.org_burst.unwrap_or(default_admission.burst),
    };
    let plan = Plan {
        organization_name: format!("load-test {}", chrono::Utc::now().to_rfc3339()),
        channel: common.channel,
        sandbox: SandboxProfile {
            latency_ms: common.sandbox_latency_ms,
            transient_failure_rate: common.transient_rate,
            permanent_failure_rate: common.permanent_rate,
        },
        admission,
        routing: (common.routing_providers > 0).then_some(setup::RoutingLoad {
            providers: common.routing_providers,
            rules: common.routing_rules,
        }),
    };
    let provisioned = setup::provision(api, admin_token, &plan).await?;
    if let Some(routing) = plan.routing {
        println!(
            "set-up: routing over {} SANDBOX connections and {} rules",
            routing.providers, routing.rules
        );
    }
    println!(
        "set-up: organization {} with a {} SANDBOX provider (latency {} ms, transient {}, permanent {}), admission {}/s burst {}{}",
        provisioned.organization_id,
        plan.channel,
        plan.sandbox.latency_ms,
        plan.sandbox.transient_failure_rate,
        plan.sandbox.permanent_failure_rate,
        admission.messages_per_second,
        admission.burst,
        if provisioned.admission_applied { "" } else { " (NOT applied)" }
    );
    Ok(Tenant {
        api_key: provisioned.api_key.clone(),
        provisioned: Some(provisioned),
        plan: Some(plan),
    })
}

fn common_config(common: &CommonArgs, tenant: &Tenant, completion: &CompletionConfig) -> Value {
    json!({
        "base": common.base,
        "channel": common.channel,
        "threads": common.threads,
        "requestTimeoutSecs": common.request_timeout.as_secs_f64(),
        "setup": tenant.plan.as_ref().map(|p| json!({
            "sandbox": p.sandbox,
            "admission": p.admission,
        })),
        "provisioned": tenant.provisioned,
        "apiKeyGiven": tenant.provisioned.is_none(),
        "completion": completion,
    })
}

fn expect_all_delivered(common: &CommonArgs, tenant: &Tenant) -> bool {
    !common.allow_failures && tenant.plan.as_ref().is_none_or(|p| p.sandbox.is_reliable())
}

fn completion_config(common: &CommonArgs) -> CompletionConfig {
    CompletionConfig {
        drain_timeout: common.drain_timeout,
        poll_interval: Duration::from_millis(500),
        concurrency: common.status_concurrency as usize,
        history_sample: common.history_sample,
    }
}

fn client(common: &CommonArgs, pool: usize) -> Result<Arc<Api>> {
    let target = Target::parse(&common.base)?;
    let options = ClientOptions {
        pool_size: pool.max(common.status_concurrency as usize),
        request_timeout: common.request_timeout,
    };
    Ok(Arc::new(Api::new(target, &options)?))
}

/// Runs a command; `Ok(true)` when the correctness verdict is PASS.
pub async fn execute(command: Command) -> Result<bool> {
    match command {
        Command::Run(args) => run(args).await,
        Command::SendMany(args) => send_many(args).await,
        Command::Scenario(args) => scenario(args, Mode::Scenario).await,
        Command::Ramp(args) => scenario(args, Mode::Ramp).await,
    }
}

async fn run(args: RunArgs) -> Result<bool> {
    let common = &args.common;
    let schedule = OpenSchedule::new(args.rate, args.duration, args.batch_size)?;
    let api = client(common, args.max_in_flight as usize)?;
    let tenant = tenant(
        &api,
        common,
        Admission::for_rate(args.rate, args.batch_size),
    )
    .await?;
    let auth = Api::bearer(&tenant.api_key).map_err(|e| e.context("API key"))?;
    let warmup = if args.warmup.is_zero() {
        None
    } else {
        let warm = OpenSchedule::new(args.rate, args.warmup, args.batch_size)?;
        println!(
            "warm-up: {:.1} s at {} msg/s ({} requests), not in the latency figures",
            args.warmup.as_secs_f64(),
            args.rate,
            warm.requests
        );
        let config = OpenLoopConfig {
            schedule: warm,
            channel: common.channel,
            max_in_flight: args.max_in_flight as usize,
        };
        Some(open_loop::run(Arc::clone(&api), auth.clone(), config).await)
    };
    println!(
        "load: {} {} msg/s for {:.1} s in requests of {} ({:.1} req/s, {} requests), open model, at most {} in flight, against {}",
        common.channel,
        args.rate,
        args.duration.as_secs_f64(),
        args.batch_size,
        schedule.request_rate(),
        schedule.requests,
        args.max_in_flight,
        api.base()
    );
    let load = open_loop::run(
        Arc::clone(&api),
        auth.clone(),
        OpenLoopConfig {
            schedule: schedule.clone(),
            channel: common.channel,
            max_in_flight: args.max_in_flight as usize,
        },
    )
    .await;
    let load = match warmup {
        Some(warm) => load.after_warmup(warm),
        None => load,
    };
    let load_config = json!({
        "model": "open",
        "rate": args.rate,
        "durationSecs": args.duration.as_secs_f64(),
        "warmupSecs": args.warmup.as_secs_f64(),
        "batchSize": args.batch_size,
        "requestRate": schedule.request_rate(),
        "requests": schedule.requests,
        "messages": schedule.messages(),
        "maxInFlight": args.max_in_flight,
    });
    Finish::new("run", common, &tenant, load_config, Some(args.rate))
        .run(&api, auth, load)
        .await
}

async fn send_many(args: SendManyArgs) -> Result<bool> {
    let common = &args.common;
    let api = client(common, args.concurrency as usize)?;
    let default_admission = Admission {
        messages_per_second: 100_000,
        burst: 100_000,
    };
    let tenant = tenant(&api, common, default_admission).await?;
    let auth = Api::bearer(&tenant.api_key).map_err(|e| e.context("API key"))?;
    println!(
        "load: {} {} messages in requests of {}, {} at a time (closed loop), against {}",
        common.channel,
        args.count,
        args.batch_size,
        args.concurrency,
        api.base()
    );
    let load = closed_loop::run(
        Arc::clone(&api),
        auth.clone(),
        ClosedLoopConfig {
            count: args.count,
            batch_size: args.batch_size,
            concurrency: args.concurrency as usize,
            channel: common.channel,
            max_retries: args.max_retries,
            retry_deadline: args.retry_deadline,
        },
    )
    .await;
    let load_config = json!({
        "model": "closed",
        "count": args.count,
        "batchSize": args.batch_size,
        "concurrency": args.concurrency,
        "maxRetries": args.max_retries,
        "retryDeadlineSecs": args.retry_deadline.as_secs_f64(),
    });
    Finish::new("send-many", common, &tenant, load_config, None)
        .run(&api, auth, load)
        .await
}

/// The shared tail of both modes: completion check, report, verdict.
struct Finish {
    mode: &'static str,
    config: Value,
    target_rate: Option<f64>,
    completion: CompletionConfig,
    expect_all_delivered: bool,
    report_path: Option<PathBuf>,
    warnings: Vec<String>,
}

impl Finish {
    fn new(
        mode: &'static str,
        common: &CommonArgs,
        tenant: &Tenant,
        load_config: Value,
        target_rate: Option<f64>,
    ) -> Self {
        let completion = completion_config(common);
        let mut config = common_config(common, tenant, &completion);
        if let Value::Object(map) = &mut config {
            map.insert("load".into(), load_config);
        }
        let mut warnings = Vec::new();
        if tenant
            .provisioned
            .as_ref()
            .is_some_and(|p| !p.admission_applied)
        {
            warnings.push(
                "the engine did not take the organization's admission rate; it ran with its default"
                    .to_owned(),
            );
        }
        Self {
            mode,
            config,
            target_rate,
            completion,
            expect_all_delivered: expect_all_delivered(common, tenant),
            report_path: common.report.clone(),
            warnings,
        }
    }

    async fn run(self, api: &Arc<Api>, auth: HeaderValue, load: LoadOutcome) -> Result<bool> {
        println!(
            "load done: {} accepted of {} sent in {:.2} s",
            load.summary.messages_accepted, load.summary.messages_sent, load.summary.elapsed_secs
        );
        let ids = Arc::new(load.ids);
        let completion = completion::drain(
            Arc::clone(api),
            auth,
            ids,
            load.started_at,
            &self.completion,
        )
        .await;
        let report = Report::new(
            self.mode,
            self.config,
            self.target_rate,
            load.summary,
            completion,
            self.expect_all_delivered,
            self.warnings,
        );
        print!("{}", report.human());
        if let Some(path) = &self.report_path {
            report.write_json(path)?;
            println!("report written to {}", path.display());
        }
        Ok(report.correctness.pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_run() {
        let cli = Cli::try_parse_from([
            "msgengine-load",
            "run",
            "--base",
            "http://127.0.0.1:18090",
            "--admin-token",
            "t",
            "--rate",
            "500",
            "--duration",
            "5",
            "--batch-size",
            "10",
            "--channel",
            "email",
            "--transient-rate",
            "0.1",
        ])
        .expect("parses");
        assert_eq!(cli.threads(), 1);
        let Command::Run(run) = cli.command else {
            panic!("not a run")
        };
        assert_eq!(run.duration, Duration::from_secs(5));
        assert_eq!(run.batch_size, 10);
        assert_eq!(run.max_in_flight, 4096);
        assert_eq!(run.warmup, Duration::ZERO);
        assert_eq!(run.common.channel, Channel::Email);
        assert_eq!(run.common.drain_timeout, Duration::from_secs(120));
        assert!(!expect_all_delivered(
            &run.common,
            &Tenant {
                api_key: String::new(),
                provisioned: None,
                plan: Some(Plan {
                    organization_name: String::new(),
                    channel: Channel::Email,
                    sandbox: SandboxProfile {
                        latency_ms: 0,
                        transient_failure_rate: 0.1,
                        permanent_failure_rate: 0.0
                    },
                    admission: Admission::for_rate(500.0, 10),
                    routing: None,
                }),
            }
        ));
    }

    #[test]
    fn refuses_bad_options() {
        for args in [
            vec![
                "msgengine-load",
                "run",
                "--rate",
                "10",
                "--batch-size",
                "1001",
            ],
            vec![
                "msgengine-load",
                "run",
                "--rate",
                "10",
                "--transient-rate",
                "1.5",
            ],
            vec!["msgengine-load", "run"],
            vec!["msgengine-load", "send-many", "--concurrency", "0"],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn parses_send_many_defaults() {
        let cli =
            Cli::try_parse_from(["msgengine-load", "send-many", "--api-key", "k"]).expect("parses");
        let Command::SendMany(s) = cli.command else {
            panic!("not send-many")
        };
        assert_eq!((s.count, s.batch_size, s.concurrency), (100_000, 1000, 8));
        assert_eq!(s.retry_deadline, Duration::from_secs(120));
        assert_eq!(s.common.api_key.as_deref(), Some("k"));
    }

    #[test]
    fn parses_scenario_and_ramp_with_overrides() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");
        let cli = Cli::try_parse_from([
            "msgengine-load",
            "scenario",
            file,
            "--admin-token",
            "t",
            "--rate",
            "25",
            "--out",
            "/tmp/x",
        ])
        .expect("parses");
        assert_eq!(cli.threads(), 1);
        let Command::Scenario(args) = cli.command else {
            panic!("not a scenario")
        };
        let scenario = args.scenario().expect("valid");
        assert_eq!(scenario.load.rate, 25.0);
        let options = args.options().expect("options");
        assert_eq!(options.out_dir, Some(PathBuf::from("/tmp/x")));
        assert!(options.sim_listen.ip().is_loopback());

        let cli = Cli::try_parse_from(["msgengine-load", "ramp", file, "--admin-token", "t"])
            .expect("parses");
        assert!(matches!(cli.command, Command::Ramp(_)));
        let cli = Cli::try_parse_from([
            "msgengine-load",
            "scenario",
            file,
            "--admin-token",
            "t",
            "--rate=-5",
        ])
        .expect("parses");
        let Command::Scenario(args) = cli.command else {
            panic!("not a scenario")
        };
        assert!(args.scenario().is_err(), "overrides are validated");
        let cli = Cli::try_parse_from([
            "msgengine-load",
            "scenario",
            file,
            "--admin-token",
            "t",
            "--sim-listen",
            "0.0.0.0:0",
        ])
        .expect("parses");
        let Command::Scenario(args) = cli.command else {
            panic!("not a scenario")
        };
        assert!(args.options().is_err(), "the simulator stays on loopback");
    }
}

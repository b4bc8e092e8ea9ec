//! `msgengine-sim`: the provider simulator (see `msgengine_loadtest::sim`
//! and loadtest/README.md).
//!
//! `msgengine-sim --listen 127.0.0.1:18200 --config sim.json`
//!
//! Exit code 0 after a clean stop (Ctrl-C / SIGTERM), 2 when it could not start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use msgengine_loadtest::sim::{self, config::SimConfig, StartOptions};

/// Serves providers' APIs on loopback and posts their status webhooks.
#[derive(Debug, Parser)]
#[command(name = "msgengine-sim", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18200")]
    listen: SocketAddr,
    /// JSON configuration (providers, credentials, behaviour).
    #[arg(long)]
    config: PathBuf,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Status webhooks posted at once, at most.
    #[arg(long, default_value_t = sim::DEFAULT_WEBHOOK_CONCURRENCY)]
    webhook_concurrency: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    msgengine_loadtest::raise_open_files_limit();
    let config = match SimConfig::from_file(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let options = StartOptions {
        listen: cli.listen,
        workers: cli.workers,
        handle_signals: true,
        webhook_concurrency: cli.webhook_concurrency,
    };
    let result = runtime.block_on(async {
        let handle = sim::start(config, options).await?;
        println!(
            "msgengine-sim listening on {} (stats: {}/_sim/stats)",
            handle.addr(),
            handle.base_url()
        );
        let mut smtp: Vec<_> = handle.smtp_addrs().iter().collect();
        smtp.sort();
        for (name, addr) in smtp {
            println!("  SMTP account {name} listening on {addr} (plain, tls none)");
        }
        handle.wait().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

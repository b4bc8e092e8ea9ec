//! `msgengine-load`: the load-test harness binary. Everything but start-up
//! lives in the library (see `msgengine_loadtest`).
//!
//! Exit code: 0 when the run's verdict is `CORRECTNESS: PASS`, 1 when it is
//! `FAIL`, 2 when the run could not be carried out.

use std::process::ExitCode;

use clap::Parser;
use msgengine_loadtest::cli::{execute, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    msgengine_loadtest::raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

//! Logging: `tracing` to stderr, human-readable in development and JSON lines
//! in production. `RUST_LOG` sets the filter (default `info`, with the
//! per-request access log off: at thousands of requests per second it costs
//! real CPU; turn it on with `RUST_LOG=info,actix_web::middleware::logger=info`).
//! Secrets are kept out by type ([`msgengine_domain::Secret`] prints as `***`).

use tracing_subscriber::EnvFilter;

use crate::settings::Environment;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(environment: Environment) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_web::middleware::logger=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match environment {
        Environment::Production => builder.json().try_init(),
        Environment::Development => builder.try_init(),
    };
}

//! The Prometheus recorder: installed once per process (tests build many
//! servers in one process; they share it), with the explicit buckets of
//! `docs/metrics.md`. `GET /metrics` renders through the returned handle (and
//! [`render`] adds the per-connection gauges); the
//! exporter's own HTTP listener is never started.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use msgengine_actors::metrics as m;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded in when nobody scrapes (bounds
/// the memory they take between scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder handle, installing the recorder on first use.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = match builder().and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => handle,
                Err(e) => {
                    // Another recorder owns the process (an embedding
                    // program): serve an empty page rather than refuse to start.
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            m::describe();
            m::register_static_series();
            metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("msgengine-metrics".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            handle
        })
        .clone()
}

fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".into()),
            m::DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_wait_seconds".into()), m::DURATION_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(m::SEND_LATENCY.into()), m::LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(m::DELIVERY_LATENCY.into()),
            m::LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(m::DB_BATCH_ROWS.into()),
            m::BATCH_ROWS_BUCKETS,
        )
}

/// The `/metrics` page: the recorder's series, then the per-connection gauges
/// (kept apart so a deleted connection's series go with it:
/// `msgengine_actors::metrics::connections`).
pub fn render(handle: &PrometheusHandle) -> String {
    let mut page = handle.render();
    m::connections::render(&mut page);
    page
}

//! The smoke scenario end to end against the real engine in-process (fresh
//! test database from msgengine-testkit, random loopback port) and the
//! provider simulator the harness starts itself: set-up, load, receipts,
//! completion, exactly-once check, report directory. Bounded to a few
//! seconds of load; loopback only; nothing about speed is asserted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use msgengine::settings::{Environment, Settings};
use msgengine::Application;
use msgengine_domain::Secret;
use msgengine_loadtest::scenario::run::{self, Mode, RunOptions};
use msgengine_loadtest::scenario::Scenario;
use msgengine_storage::crypto::KeyRing;
use msgengine_testkit::TestDb;

const ADMIN_TOKEN: &str = "load-test-admin-token-0123456789abcdef0123456789";

struct Engine {
    base: String,
    handle: actix_web::dev::ServerHandle,
    _db: TestDb,
}

async fn engine() -> Engine {
    let db = TestDb::new().await;
    let mut settings = Settings {
        environment: Environment::Development,
        data_dir: std::env::temp_dir().join("msgengine-test-unused"),
        ..Settings::default()
    };
    settings.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.server.workers = Some(2);
    settings.database.url = Some(Secret::new(db.conninfo.clone()));
    settings.database.pool_max_size = 4;
    settings.security.admin_token = Some(Secret::new(ADMIN_TOKEN));
    settings.security.master_keys = Some(Secret::new(KeyRing::generate_entry("test1")));
    settings.engine.outbound_loopback_only = true;
    let app = Application::build(settings).await.expect("server builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    Engine {
        base,
        handle,
        _db: db,
    }
}

fn smoke() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    Scenario::from_file(&path).expect("the smoke scenario is valid")
}

fn out_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    std::env::temp_dir().join(format!(
        "msgengine-load-{name}-{}-{nanos}",
        std::process::id()
    ))
}

fn assert_report_files(dir: &Path) {
    for file in ["report.json", "report.md", "latency.svg", "throughput.svg"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} missing: {e}", path.display()));
        assert!(!text.is_empty(), "{file} is empty");
        if file.ends_with(".svg") {
            assert!(
                text.starts_with("<svg") && text.contains("<polyline"),
                "{file}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_scenario_passes_end_to_end_with_every_count_matching() {
    let engine = engine().await;
    let dir = out_dir("smoke");
    let mut options = RunOptions::new(&engine.base, ADMIN_TOKEN);
    options.out_dir = Some(dir.clone());
    let finished = run::run(smoke(), &options, Mode::Scenario)
        .await
        .expect("the scenario runs");
    let r = &finished.report;
    assert_eq!(
        r.correctness.line, "CORRECTNESS: PASS",
        "{:?}",
        r.correctness
    );
    assert_report_files(&dir);

    let accepted: u64 = r.phases.iter().map(|p| p.summary.messages_accepted).sum();
    let sent: u64 = r.phases.iter().map(|p| p.summary.messages_sent).sum();
    assert!(accepted > 0);
    assert_eq!(accepted, sent, "every message sent was accepted");
    assert_eq!(r.phases.len(), 2, "warm-up and measured");
    assert_eq!(r.completion.accepted, accepted);
    assert_eq!(r.completion.delivered, accepted);
    assert_eq!(r.completion.not_terminal, 0);
    assert_eq!(r.end_to_end.received, accepted, "{:?}", r.end_to_end);
    assert_eq!(r.end_to_end.not_received, 0);
    assert_eq!(r.end_to_end.unknown_keys, 0);
    assert_eq!(r.end_to_end.latency_from_send.count, accepted);
    assert_eq!(r.simulator.keys_accepted, accepted);
    assert_eq!(r.simulator.keys_accepted_more_than_once, 0);
    // One simulator account per organization and provider, all used.
    assert_eq!(r.tenants.len(), 2);
    assert_eq!(r.simulator.accounts.len(), 2 * 3);
    let provider_accepts: u64 = r.simulator.accounts.values().map(|a| a.accepted).sum();
    assert_eq!(provider_accepts, accepted);
    assert_eq!(
        r.headline.accepted_messages,
        r.phases[1].summary.messages_accepted
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    assert_eq!(json["correctness"]["line"], "CORRECTNESS: PASS");
    assert_eq!(json["completion"]["accepted"], accepted);
    assert!(
        !json.to_string().contains(&r.tenants[0].api_key),
        "no API key in the report"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("CORRECTNESS: PASS") && md.contains("](latency.svg)"));

    engine.handle.stop(true).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_of_the_smoke_scenario_reports_its_steps_and_knee() {
    let engine = engine().await;
    let dir = out_dir("ramp");
    let mut options = RunOptions::new(&engine.base, ADMIN_TOKEN);
    options.out_dir = Some(dir.clone());
    let mut scenario = smoke();
    scenario.load.warmup_secs = 0.0;
    let finished = run::run(scenario, &options, Mode::Ramp)
        .await
        .expect("the ramp runs");
    let r = &finished.report;
    let ramp = r.ramp.as_ref().expect("a ramp section");
    assert!(!ramp.steps.is_empty() && ramp.steps.len() <= 3);
    assert_eq!(ramp.steps[0].target_rate, 20.0);
    assert_eq!(ramp.steps.len(), r.phases.len());
    // The steps run until one is not sustained, and the knee agrees.
    let first_bad = ramp.steps.iter().position(|s| !s.is_sustained());
    assert_eq!(
        first_bad.map_or(ramp.steps.len(), |i| i + 1),
        ramp.steps.len()
    );
    assert!(ramp.knee.summary.starts_with("KNEE: "));
    assert_eq!(
        r.correctness.line, "CORRECTNESS: PASS",
        "{:?}",
        r.correctness
    );
    assert_report_files(&dir);
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("## Ramp") && md.contains("KNEE: "));
    engine.handle.stop(true).await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! A real Prometheus on loopback for the test: temporary config and storage, a free port
//! (retried when taken), readiness, instant queries, rules, and a kill on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{repo_path, tool};

/// A Prometheus server on loopback with its storage in a temporary directory; killed and
/// cleaned up on drop (so also when the test panics).
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second with the alert rules loaded. The port
    /// is picked free, then Prometheus binds it: another process may take it in between, so
    /// a start that fails is retried on a new port.
    pub async fn start(target: &str) -> Prometheus {
        let binary = tool("prometheus");
        let dir =
            std::env::temp_dir().join(format!("msgengine-prometheus-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let rules = repo_path("grafana/alerts/msgengine.rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: msgengine\n    static_configs:\n      - targets: [{target:?}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
            let child = Command::new(&binary)
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("prometheus starts");
            let mut prometheus = Prometheus {
                child,
                dir: dir.clone(),
                base: format!("http://127.0.0.1:{port}"),
            };
            if prometheus.wait_ready().await {
                return prometheus;
            }
            last_log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            let _ = prometheus.child.kill();
            let _ = prometheus.child.wait();
            std::mem::forget(prometheus); // the directory is reused by the next attempt
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("prometheus did not start in 5 attempts; last log:\n{last_log}");
    }

    /// Polls /-/ready (bounded: 30 s); false when the process exited (e.g. port taken).
    async fn wait_ready(&mut self) -> bool {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ready = http.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: its result array, or the error Prometheus gave.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let res = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The scrape targets' health and last error, for failure messages.
    async fn targets(&self) -> String {
        let body: Value = match reqwest::get(format!("{}/api/v1/targets", self.base)).await {
            Ok(res) => res.json().await.unwrap_or_default(),
            Err(e) => return e.to_string(),
        };
        body["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn rule_groups(&self) -> Vec<Value> {
        let body: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/rules", self.base))
            .send()
            .await
            .expect("rules API")
            .json()
            .await
            .expect("rules JSON");
        body["data"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (bounded: 60 s) until the engine has been scraped and the rules evaluated at
    /// least `seconds` after now.
    pub async fn wait_scrapes_and_evaluations(&self, seconds: f64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let scraped = self
                .query(r#"timestamp(up{job="msgengine"} == 1)"#)
                .await
                .ok()
                .and_then(|r| {
                    r.first()
                        .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
                });
            let evaluated = self.rule_groups().await.iter().all(|g| {
                g["lastEvaluation"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t.timestamp() as f64 >= now + seconds)
            });
            if scraped.is_some_and(|t| t >= now + seconds) && evaluated {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no successful scrape and rule evaluation {seconds} s after start; \
                     targets: {}\nlog:\n{}",
                    self.targets().await,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

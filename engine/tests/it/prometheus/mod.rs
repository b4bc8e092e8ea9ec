//! The SRE files in `grafana/` against real Prometheus tools: `promtool` checks the alert rules
//! and runs their unit tests; every metric name the dashboards and rules use is in
//! `docs/metrics.md`; then a live engine under a short loopback load is scraped by a real
//! Prometheus, and every dashboard query, template variable and rule is evaluated through its
//! HTTP API: a query that errors or returns no series fails the test.
//!
//! promtool and prometheus come from the Debian package `prometheus`: the machine's, or one
//! the harness downloads itself without root (`tools.rs`); when neither works the tests fail
//! with instructions, never skip. Prometheus runs on 127.0.0.1 with its
//! storage in a temporary directory and is killed when the test ends, panics included.

mod load;
mod server;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::TestApp;
use server::Prometheus;
use tools::tool;

/// Template variables Grafana fills in itself, as the test substitutes them.
const GRAFANA_BUILTINS: &[(&str, &str)] = &[
    ("$__rate_interval", "1m"),
    ("${__rate_interval}", "1m"),
    ("$__interval", "15s"),
    ("${__interval}", "15s"),
    ("$__range", "5m"),
    ("${__range}", "5m"),
];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn promtool(args: &[&str]) {
    let out = Command::new(tool("promtool"))
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("grafana/dashboards"))
        .expect("grafana/dashboards")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in grafana/dashboards");
    files
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "grafana/alerts/msgengine.rules.yml"]);
    promtool(&["check", "config", "grafana/prometheus.yml"]);
    let mut tests: Vec<String> = std::fs::read_dir(repo_path("grafana/alerts/tests"))
        .expect("grafana/alerts/tests")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    tests.sort();
    assert!(
        !tests.is_empty(),
        "no promtool tests in grafana/alerts/tests"
    );
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    promtool(&args);
}

/// Names in docs/metrics.md's tables.
fn documented_metrics() -> BTreeSet<String> {
    read("docs/metrics.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `msgengine_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("msgengine_{name}"))
        .collect()
}

/// Metric names in a text (recording-rule names `level:metric:ops` excluded).
fn used_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("msgengine_") {
        if text[..at].ends_with(':') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
    names
}

fn is_documented(name: &str, documented: &BTreeSet<String>) -> bool {
    documented.contains(name)
        || ["_bucket", "_count", "_sum"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| documented.contains(base))
        })
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn runbook_anchors() -> BTreeSet<String> {
    read("grafana/RUNBOOK.md")
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(anchor)
        .collect()
}

#[test]
fn dashboards_and_rules_use_only_documented_metrics_and_every_alert_has_a_runbook_section() {
    let documented = documented_metrics();
    assert!(
        documented.len() > 30,
        "docs/metrics.md tables: {documented:?}"
    );
    let rules = read("grafana/alerts/msgengine.rules.yml");
    // Comments may name metrics that do not exist yet (billing).
    let rule_code: String = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut texts = vec![("msgengine.rules.yml".to_owned(), rule_code)];
    for file in dashboard_files() {
        let text = std::fs::read_to_string(&file).expect("dashboard");
        texts.push((file.display().to_string(), text));
    }
    for (file, text) in &texts {
        let used = used_metrics(text);
        assert!(!used.is_empty(), "{file} uses no metric");
        let unknown: Vec<&String> = used
            .iter()
            .filter(|n| !is_documented(n, &documented))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} uses undocumented metrics {unknown:?}"
        );
    }
    let anchors = runbook_anchors();
    let alerts = rules
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"));
    let runbooks: Vec<&str> = rules
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("runbook_url: grafana/RUNBOOK.md#")
        })
        .collect();
    assert_eq!(alerts.count(), runbooks.len(), "one runbook_url per alert");
    for target in runbooks {
        assert!(
            anchors.contains(target),
            "RUNBOOK.md has no section #{target}"
        );
    }
}

/// Every target of every panel (rows included) with its panel title.
fn panel_targets(panels: &[Value], out: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.clone(), expr.to_owned()));
            }
        }
        if let Some(nested) = panel["panels"].as_array() {
            panel_targets(nested, out);
        }
    }
}

/// A dashboard's queries with template variables substituted, plus each query variable's
/// `label_values(metric, label)` as a PromQL query for series carrying that label.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = GRAFANA_BUILTINS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut queries = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = var["name"].as_str().expect("variable name");
        let value = match var["type"].as_str() {
            Some("custom") => var["current"]["value"]
                .as_str()
                .expect("custom value")
                .to_owned(),
            Some("query") => {
                let definition = var["definition"].as_str().expect("definition");
                let args = definition
                    .strip_prefix("label_values(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .and_then(|args| args.rsplit_once(','))
                    .unwrap_or_else(|| panic!("variable {name}: {definition}"));
                queries.push((
                    format!("variable ${name}"),
                    format!("count by ({}) ({})", args.1.trim(), args.0.trim()),
                ));
                ".*".to_owned()
            }
            _ => continue,
        };
        values.push((format!("${{{name}}}"), value.clone()));
        values.push((format!("${name}"), value));
    }
    // Longest first, so `$__rate_interval` is not cut by a shorter name.
    values.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut targets = Vec::new();
    panel_targets(
        dashboard["panels"].as_array().expect("panels"),
        &mut targets,
    );
    for (title, expr) in targets {
        let substituted = values
            .iter()
            .fold(expr, |e, (k, v)| e.replace(k.as_str(), v));
        assert!(
            !substituted.contains('$'),
            "unknown variable in {title}: {substituted}"
        );
        queries.push((title, substituted));
    }
    queries
}

/// Failures of the dashboards' queries.
async fn check_dashboards(prometheus: &Prometheus) -> Vec<String> {
    let mut failures = Vec::new();
    let mut count = 0;
    for file in dashboard_files() {
        let text = std::fs::read_to_string(&file).expect("dashboard");
        let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for (title, expr) in dashboard_queries(&dashboard) {
            count += 1;
            match prometheus.query(&expr).await {
                Ok(series) if series.is_empty() => {
                    failures.push(format!("{name} / {title}: no series: {expr}"))
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{name} / {title}: {e}: {expr}")),
            }
        }
    }
    assert!(count > 40, "only {count} dashboard queries found");
    failures
}

/// The recording rule an alert's expression starts with (its signal).
fn leading_name(expr: &str) -> String {
    expr.trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect()
}

/// Failures of the rules as Prometheus loaded them: every rule evaluates without error;
/// every recording rule has series unless it looks back days (`offset`, or built on one that
/// does); every alert evaluates, starts with a recording rule that has series (its signal),
/// has a severity and a runbook section.
async fn check_rules(prometheus: &Prometheus) -> Vec<String> {
    let anchors = runbook_anchors();
    let mut failures = Vec::new();
    let mut recorded: BTreeMap<String, bool> = BTreeMap::new(); // name -> needs history
    let mut alerts = 0;
    for group in prometheus.rule_groups().await {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["name"].as_str().expect("rule name").to_owned();
            let expr = rule["query"].as_str().expect("rule query").to_owned();
            if rule["health"] != "ok" {
                failures.push(format!(
                    "rule {name}: health {} {}",
                    rule["health"], rule["lastError"]
                ));
            }
            let result = prometheus.query(&expr).await;
            if let Err(e) = &result {
                failures.push(format!("rule {name}: {e}: {expr}"));
            }
            if rule["type"] == "recording" {
                let needs_history = expr.contains(" offset ")
                    || recorded
                        .iter()
                        .any(|(n, history)| *history && expr.contains(n.as_str()));
                if !needs_history && result.is_ok_and(|series| series.is_empty()) {
                    failures.push(format!("recording rule {name}: no series: {expr}"));
                }
                recorded.insert(name, needs_history);
                continue;
            }
            alerts += 1;
            let signal = leading_name(&expr);
            match recorded.get(&signal) {
                Some(false) => match prometheus.query(&signal).await {
                    Ok(series) if !series.is_empty() => {}
                    other => failures.push(format!("alert {name}: signal {signal}: {other:?}")),
                },
                _ => failures.push(format!(
                    "alert {name}: its expression must start with a recording rule defined \
                     earlier that needs no history, not `{signal}`"
                )),
            }
            if rule["labels"]["severity"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                failures.push(format!("alert {name}: no severity label"));
            }
            let runbook = rule["annotations"]["runbook_url"].as_str().unwrap_or("");
            let section = runbook.strip_prefix("grafana/RUNBOOK.md#").unwrap_or("");
            if !anchors.contains(section) {
                failures.push(format!(
                    "alert {name}: runbook_url {runbook:?} is not a RUNBOOK.md section"
                ));
            }
        }
    }
    assert!(
        !recorded.is_empty() && alerts > 0,
        "Prometheus loaded no rules"
    );
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_signal_has_series_from_a_live_engine() {
    let app = TestApp::spawn().await;
    let prometheus = Prometheus::start(app.base.trim_start_matches("http://")).await;
    let acme = app.org("acme").await;
    let beta = app.org("beta").await;
    let _receiver = load::set_up_acme(&app, &acme).await;
    let _twilio = load::drive_beta(&app, &beta).await;
    load::drive_load(&app, &acme).await;
    app.drain().await;
    // Several scrapes and rule evaluations after the load (queue gauges poll every few
    // seconds), so rates have samples on both sides.
    prometheus.wait_scrapes_and_evaluations(6.0).await;

    let mut failures = check_dashboards(&prometheus).await;
    failures.extend(check_rules(&prometheus).await);
    app.stop().await;
    assert!(
        failures.is_empty(),
        "{} failing queries:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

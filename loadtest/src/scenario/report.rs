//! A scenario run's report directory: `report.json` (everything),
//! `report.md` (the headline, target vs achieved, latency tables, errors,
//! the ramp's steps, the verdict, the charts), `latency.svg` and
//! `throughput.svg` ([`crate::plot`]).
//!
//! The verdict is the completion check's ([`crate::report::judge`]) plus
//! two checks only the simulator can make: no message was accepted by a
//! provider twice (its per-idempotency-key counts), and every message the
//! engine reports delivered was received by a provider (its receipts).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::provision::Tenant;
use super::ramp::{Knee, StepResult};
use super::Scenario;
use crate::completion::CompletionSummary;
use crate::plot;
use crate::receipts::EndToEnd;
use crate::report::{judge, Correctness};
use crate::sim::stats::StatsSnapshot;
use crate::stats::{LatencySummary, LoadSummary, SecondSample};

/// `scenario` (warm-up + measured phase) or `ramp` (rate steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Scenario,
    Ramp,
}

/// One load phase (warm-up, measured, or a ramp step).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    pub label: String,
    pub target_rate: f64,
    /// In the headline figures (the warm-up is not).
    pub measured: bool,
    pub started_unix_us: u64,
    pub summary: LoadSummary,
}

/// The ramp's steps and knee.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RampReport {
    pub steps: Vec<StepResult>,
    pub knee: Knee,
}

/// Target against achieved, and the latencies that matter.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Headline {
    /// The measured phase's target (ramp: the highest sustainable step's,
    /// else the first step's).
    pub target_rate: f64,
    pub achieved_accept_rate: f64,
    pub accepted_messages: u64,
    pub accept_latency: LatencySummary,
    /// Intended send time to the provider's receipt, every phase.
    pub end_to_end_latency: LatencySummary,
    pub delivered: u64,
    /// Ramp only.
    pub sustainable_rate: Option<f64>,
    pub correctness: String,
}

/// What the simulator saw.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatorSummary {
    /// Per account: requests, accepted, 429s, 5xx, webhooks.
    pub accounts: BTreeMap<String, crate::sim::stats::ProviderSnapshot>,
    /// Distinct idempotency keys (messages) a provider accepted.
    pub keys_accepted: u64,
    /// Keys accepted more than once: duplicate deliveries.
    pub keys_accepted_more_than_once: u64,
    /// The first of those.
    pub duplicate_keys: Vec<String>,
}

/// Everything a scenario run reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub tool: String,
    /// `scenario` or `ramp`.
    pub mode: String,
    pub generated_at: String,
    pub headline: Headline,
    pub scenario: Scenario,
    pub engine: String,
    pub tenants: Vec<Tenant>,
    pub phases: Vec<Phase>,
    pub ramp: Option<RampReport>,
    /// Every phase's seconds, one after the other (the charts' data).
    pub series: Vec<SecondSample>,
    pub end_to_end: EndToEnd,
    pub completion: CompletionSummary,
    pub simulator: SimulatorSummary,
    pub warnings: Vec<String>,
    pub correctness: Correctness,
}

impl ScenarioReport {
    /// Assembles the report and its verdict.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scenario: &Scenario,
        mode: Mode,
        engine: String,
        tenants: Vec<Tenant>,
        phases: Vec<Phase>,
        ramp: Option<RampReport>,
        completion: CompletionSummary,
        end_to_end: EndToEnd,
        sim: StatsSnapshot,
    ) -> Self {
        let simulator = SimulatorSummary {
            accounts: sim.providers,
            keys_accepted: sim.idempotency_keys.distinct,
            keys_accepted_more_than_once: sim.idempotency_keys.accepted_more_than_once,
            duplicate_keys: sim
                .idempotency_keys
                .duplicates
                .keys()
                .take(20)
                .cloned()
                .collect(),
        };
        let correctness = verdict(scenario, &completion, &end_to_end, &simulator);
        let headline_phase = headline_phase(&phases, ramp.as_ref());
        let warnings = warnings(&phases, &tenants, &end_to_end);
        let series = concat_series(&phases);
        let (target_rate, load) = match headline_phase {
            Some(p) => (p.target_rate, Some(&p.summary)),
            None => (scenario.load.rate, None),
        };
        Self {
            tool: concat!("msgengine-load ", env!("CARGO_PKG_VERSION")).to_owned(),
            mode: match mode {
                Mode::Scenario => "scenario",
                Mode::Ramp => "ramp",
            }
            .to_owned(),
            generated_at: chrono::Utc::now().to_rfc3339(),
            headline: Headline {
                target_rate,
                achieved_accept_rate: load.map_or(0.0, |l| l.achieved_accept_rate),
                accepted_messages: load.map_or(0, |l| l.messages_accepted),
                accept_latency: load.map(|l| l.accept_latency).unwrap_or_default(),
                end_to_end_latency: end_to_end.latency_from_send,
                delivered: completion.delivered,
                sustainable_rate: ramp.as_ref().and_then(|r| r.knee.sustainable_rate),
                correctness: correctness.line.clone(),
            },
            scenario: scenario.clone(),
            engine,
            tenants,
            phases,
            ramp,
            series,
            end_to_end,
            completion,
            simulator,
            warnings,
            correctness,
        }
    }

    /// Writes report.json, report.md, latency.svg and throughput.svg.
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
        };
        let json = serde_json::to_vec_pretty(self).context("serializing the report")?;
        write("report.json", &json)?;
        let receipts = &self.end_to_end.series;
        write(
            "latency.svg",
            plot::latency_chart(&self.series, receipts)?.as_bytes(),
        )?;
        write(
            "throughput.svg",
            plot::throughput_chart(&self.series, receipts, Some(self.headline.target_rate))?
                .as_bytes(),
        )?;
        write("report.md", self.markdown().as_bytes())
    }

    /// The short summary printed at the end of a run (the correctness
    /// line is printed after it).
    pub fn human(&self) -> String {
        let h = &self.headline;
        let a = &h.accept_latency;
        let e = &h.end_to_end_latency;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n=== msgengine scenario {} ({}) ===",
            self.scenario.name, self.mode
        );
        let _ = writeln!(
            s,
            "rate          {:.0} msg/s accepted of {:.0} target ({:.1}%)",
            h.achieved_accept_rate,
            h.target_rate,
            percent(h.achieved_accept_rate, h.target_rate)
        );
        let _ = writeln!(
            s,
            "accept        p50 {:.2} ms | p90 {:.2} | p99 {:.2} | p99.9 {:.2} | max {:.2} (n={})",
            a.p50_ms, a.p90_ms, a.p99_ms, a.p999_ms, a.max_ms, a.count
        );
        let _ = writeln!(
            s,
            "end to end    p50 {:.2} ms | p90 {:.2} | p99 {:.2} | p99.9 {:.2} | max {:.2} (n={}, send to provider)",
            e.p50_ms, e.p90_ms, e.p99_ms, e.p999_ms, e.max_ms, e.count
        );
        let c = &self.completion;
        let _ = writeln!(
            s,
            "messages      {} accepted, {} terminal ({}), {} not terminal; providers received {}, twice {}",
            c.accepted,
            c.terminal,
            counts(&c.terminal_by_state),
            c.not_terminal,
            self.end_to_end.received,
            self.simulator.keys_accepted_more_than_once
        );
        let errors = self.errors_by_kind();
        let _ = writeln!(s, "errors        {}", counts(&errors));
        if let Some(ramp) = &self.ramp {
            let _ = writeln!(s, "{}", ramp.knee.summary);
        }
        for w in &self.warnings {
            let _ = writeln!(s, "WARNING: {w}");
        }
        s
    }

    /// Failed requests by kind over the measured phases.
    pub fn errors_by_kind(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for p in self.phases.iter().filter(|p| p.measured) {
            for (k, v) in &p.summary.errors_by_kind {
                *out.entry(k.clone()).or_insert(0) += v;
            }
        }
        out
    }

    /// report.md.
    pub fn markdown(&self) -> String {
        let h = &self.headline;
        let mut s = String::new();
        let _ = writeln!(s, "# Load test: {} ({})\n", self.scenario.name, self.mode);
        if !self.scenario.description.is_empty() {
            let _ = writeln!(s, "{}\n", self.scenario.description);
        }
        let _ = writeln!(s, "**{}**\n", self.correctness.line);
        let _ = writeln!(
            s,
            "{} against {}, {} organizations, generated {}.\n",
            self.tool,
            self.engine,
            self.tenants.len(),
            self.generated_at
        );
        let _ = writeln!(s, "## Target vs achieved\n");
        let _ = writeln!(s, "| | target | achieved |\n|---|---:|---:|");
        let _ = writeln!(
            s,
            "| accept rate (msg/s) | {:.0} | {:.0} ({:.1}%) |",
            h.target_rate,
            h.achieved_accept_rate,
            percent(h.achieved_accept_rate, h.target_rate)
        );
        let _ = writeln!(
            s,
            "| accept p99 (ms) | {:.1} | {:.2} |",
            self.scenario.slo.p99_accept_ms, h.accept_latency.p99_ms
        );
        if let Some(rate) = h.sustainable_rate {
            let _ = writeln!(s, "| highest sustainable rate (msg/s) | | {rate:.0} |");
        }
        let _ = writeln!(s, "\n## Latency (ms)\n");
        let _ = writeln!(
            s,
            "| | n | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (name, l) in [
            ("accept (from intended send)", &h.accept_latency),
            (
                "end to end (send to provider)",
                &self.end_to_end.latency_from_send,
            ),
            (
                "provider receipt after 202",
                &self.end_to_end.latency_after_accept,
            ),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
        }
        let _ = writeln!(
            s,
            "\n![latency over time](latency.svg)\n\n![throughput over time](throughput.svg)\n"
        );
        self.markdown_phases(&mut s);
        self.markdown_outcomes(&mut s);
        s
    }

    fn markdown_phases(&self, s: &mut String) {
        let _ = writeln!(s, "## Phases\n");
        let _ = writeln!(
            s,
            "| phase | target msg/s | achieved msg/s | sent | accepted | failed | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in &self.phases {
            let l = &p.summary;
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
                p.label,
                p.target_rate,
                l.achieved_accept_rate,
                l.messages_sent,
                l.messages_accepted,
                l.messages_failed + l.messages_not_sent_client_saturated,
                l.accept_latency.p50_ms,
                l.accept_latency.p99_ms,
                l.accept_latency.max_ms
            );
        }
        if let Some(ramp) = &self.ramp {
            let _ = writeln!(s, "\n## Ramp\n");
            let _ = writeln!(
                s,
                "| target msg/s | offered msg/s | achieved msg/s | p50 ms | p99 ms | errors | sustained |\n|---:|---:|---:|---:|---:|---:|---|"
            );
            for step in &ramp.steps {
                let _ = writeln!(
                    s,
                    "| {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2}% | {} |",
                    step.target_rate,
                    step.offered_rate,
                    step.achieved_rate,
                    step.accept_p50_ms,
                    step.accept_p99_ms,
                    100.0 * step.error_share,
                    if step.is_sustained() {
                        "yes".to_owned()
                    } else {
                        format!("no: {}", step.violations.join(", "))
                    }
                );
            }
            let _ = writeln!(s, "\n**{}**\n", ramp.knee.summary);
        }
    }

    fn markdown_outcomes(&self, s: &mut String) {
        let c = &self.completion;
        let e = &self.end_to_end;
        let _ = writeln!(s, "\n## Errors and outcomes\n");
        let _ = writeln!(
            s,
            "- request errors (measured): {}",
            counts(&self.errors_by_kind())
        );
        let _ = writeln!(
            s,
            "- accepted {}; terminal {} ({}); not terminal {} ({})",
            c.accepted,
            c.terminal,
            counts(&c.terminal_by_state),
            c.not_terminal,
            counts(&c.not_terminal_by_last_state)
        );
        let _ = writeln!(
            s,
            "- providers received {} of them ({} not received, {} receipts before the 202, {} unknown keys, {} receipts missed)",
            e.received, e.not_received, e.received_before_accept, e.unknown_keys, e.missed_receipts
        );
        let _ = writeln!(
            s,
            "- messages accepted by a provider more than once: {}",
            self.simulator.keys_accepted_more_than_once
        );
        let _ = writeln!(s, "\n| simulator account | requests | accepted | 429 | 5xx | webhooks |\n|---|---:|---:|---:|---:|---:|");
        for (name, a) in &self.simulator.accounts {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} |",
                a.requests, a.accepted, a.rate_limited, a.server_errors, a.webhooks_delivered
            );
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(s, "\n## Warnings\n");
            for w in &self.warnings {
                let _ = writeln!(s, "- {w}");
            }
        }
        let _ = writeln!(s, "\n**{}**", self.correctness.line);
    }
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The completion verdict plus the simulator's checks.
pub fn verdict(
    scenario: &Scenario,
    completion: &CompletionSummary,
    end_to_end: &EndToEnd,
    simulator: &SimulatorSummary,
) -> Correctness {
    let mut v = judge(completion, scenario.expects_all_delivered());
    if simulator.keys_accepted_more_than_once > 0 {
        v.problems.push(format!(
            "{} messages were accepted by a provider more than once (e.g. {})",
            simulator.keys_accepted_more_than_once,
            simulator.duplicate_keys.first().map_or("?", String::as_str)
        ));
    }
    if end_to_end.missed_receipts == 0 && completion.delivered > end_to_end.received {
        v.problems.push(format!(
            "{} messages are delivered at the engine but no provider received them",
            completion.delivered - end_to_end.received
        ));
    }
    v.pass = v.problems.is_empty();
    v.line = if v.pass {
        "CORRECTNESS: PASS".to_owned()
    } else {
        format!("CORRECTNESS: FAIL ({})", v.problems.join("; "))
    };
    v
}

fn headline_phase<'a>(phases: &'a [Phase], ramp: Option<&RampReport>) -> Option<&'a Phase> {
    let measured: Vec<&Phase> = phases.iter().filter(|p| p.measured).collect();
    match ramp {
        None => measured.last().copied(),
        Some(r) => {
            let rate = r.knee.sustainable_rate;
            measured
                .iter()
                .copied()
                .find(|p| Some(p.target_rate) == rate)
                .or(measured.first().copied())
        }
    }
}

fn warnings(phases: &[Phase], tenants: &[Tenant], e2e: &EndToEnd) -> Vec<String> {
    let mut out = Vec::new();
    for p in phases.iter().filter(|p| p.measured) {
        for w in crate::report::warnings(&p.summary, Some(p.target_rate)) {
            out.push(format!("{}: {w}", p.label));
        }
    }
    for t in tenants.iter().filter(|t| !t.admission_applied) {
        out.push(format!(
            "organization {}: the engine did not take its admission rate",
            t.name
        ));
    }
    if e2e.missed_receipts > 0 {
        out.push(format!(
            "{} receipts were dropped by the simulator's bounded log before they were read: end-to-end figures are partial",
            e2e.missed_receipts
        ));
    }
    out
}

/// The phases' seconds one after the other, renumbered.
pub fn concat_series(phases: &[Phase]) -> Vec<SecondSample> {
    let mut out: Vec<SecondSample> = Vec::new();
    for p in phases {
        let offset = out.len() as u64;
        out.extend(p.summary.series.iter().map(|s| SecondSample {
            second: s.second + offset,
            ..s.clone()
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
        Scenario::from_file(&path).expect("valid")
    }

    fn completion(accepted: u64) -> CompletionSummary {
        let mut c = CompletionSummary {
            accepted,
            terminal: accepted,
            delivered: accepted,
            ..CompletionSummary::default()
        };
        c.terminal_by_state.insert("delivered".into(), accepted);
        c
    }

    fn simulator(twice: u64) -> SimulatorSummary {
        SimulatorSummary {
            accounts: BTreeMap::new(),
            keys_accepted: 10,
            keys_accepted_more_than_once: twice,
            duplicate_keys: if twice > 0 {
                vec!["m-1".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn the_verdict_adds_the_simulators_checks() {
        let received = EndToEnd {
            received: 10,
            ..EndToEnd::default()
        };
        let v = verdict(&scenario(), &completion(10), &received, &simulator(0));
        assert_eq!(v.line, "CORRECTNESS: PASS");
        let v = verdict(&scenario(), &completion(10), &received, &simulator(2));
        assert_eq!(
            v.line,
            "CORRECTNESS: FAIL (2 messages were accepted by a provider more than once (e.g. m-1))"
        );
        let short = EndToEnd {
            received: 7,
            ..EndToEnd::default()
        };
        let v = verdict(&scenario(), &completion(10), &short, &simulator(0));
        assert!(
            v.line
                .contains("3 messages are delivered at the engine but no provider received them"),
            "{}",
            v.line
        );
        // With receipts missed, the receipt count proves nothing.
        let partial = EndToEnd {
            received: 7,
            missed_receipts: 3,
            ..EndToEnd::default()
        };
        assert!(verdict(&scenario(), &completion(10), &partial, &simulator(0)).pass);
    }

    #[test]
    fn phases_series_are_renumbered_one_after_the_other() {
        let mut recorder = crate::stats::Recorder::new();
        recorder.sent(1);
        recorder.roll_second(0, 1.0);
        recorder.roll_second(0, 1.0);
        let (summary, _) = recorder.finish(std::time::Duration::from_secs(2));
        let phase = |label: &str| Phase {
            label: label.into(),
            target_rate: 1.0,
            measured: true,
            started_unix_us: 0,
            summary: summary.clone(),
        };
        let series = concat_series(&[phase("a"), phase("b")]);
        let seconds: Vec<u64> = series.iter().map(|s| s.second).collect();
        assert_eq!(seconds, [1, 2, 3, 4]);
        assert_eq!(series[2].sent_messages, 1);
    }
}

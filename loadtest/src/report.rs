//! The run's report: the correctness verdict, a human summary on stdout and
//! the JSON file (`--report`).
//!
//! The verdict is `CORRECTNESS: PASS` when at least one message was
//! accepted, every accepted message reached a terminal state, no id was
//! handed out twice, every sampled delivered history is in order and, when
//! the run expects no failures (sandbox failure rates of zero), every
//! accepted message was delivered. Otherwise `CORRECTNESS: FAIL (...)`
//! lists what went wrong, and the process exits non-zero.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::completion::CompletionSummary;
use crate::stats::LoadSummary;

/// The pass/fail verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Correctness {
    pub pass: bool,
    /// `CORRECTNESS: PASS` or `CORRECTNESS: FAIL (...)`.
    pub line: String,
    pub problems: Vec<String>,
}

/// Judges a run; `expect_all_delivered` when no message was meant to fail.
pub fn judge(completion: &CompletionSummary, expect_all_delivered: bool) -> Correctness {
    let mut problems = Vec::new();
    let c = completion;
    if c.accepted == 0 {
        problems.push("no message was accepted".to_owned());
    }
    if c.not_terminal > 0 {
        problems.push(format!(
            "{} of {} accepted messages not terminal after {:.1} s ({})",
            c.not_terminal,
            c.accepted,
            c.drain_secs,
            counts(&c.not_terminal_by_last_state)
        ));
    }
    let undelivered = c.terminal.saturating_sub(c.delivered);
    if expect_all_delivered && undelivered > 0 {
        let failed: std::collections::BTreeMap<String, u64> = c
            .terminal_by_state
            .iter()
            .filter(|(state, _)| !crate::completion::is_delivered(state))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        problems.push(format!(
            "{undelivered} of {} accepted messages ended without delivery ({}) although no failure was configured",
            c.accepted,
            counts(&failed)
        ));
    }
    if c.duplicate_ids > 0 {
        problems.push(format!(
            "{} message ids were handed out twice",
            c.duplicate_ids
        ));
    }
    if c.history_check.failed > 0 {
        problems.push(format!(
            "{} of {} sampled delivered histories are wrong",
            c.history_check.failed, c.history_check.checked
        ));
    }
    let pass = problems.is_empty();
    let line = if pass {
        "CORRECTNESS: PASS".to_owned()
    } else {
        format!("CORRECTNESS: FAIL ({})", problems.join("; "))
    };
    Correctness {
        pass,
        line,
        problems,
    }
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What makes a run's numbers doubtful without making it incorrect.
pub fn warnings(load: &LoadSummary, target_rate: Option<f64>) -> Vec<String> {
    let mut out = Vec::new();
    if load.messages_not_sent_client_saturated > 0 {
        out.push(format!(
            "the client reached its in-flight cap: {} messages were not sent (the engine could not keep up, or raise --max-in-flight)",
            load.messages_not_sent_client_saturated
        ));
    }
    if let Some(limited) = load.errors_by_kind.get("http_429_rate_limited") {
        out.push(format!(
            "{limited} requests were rate limited (429): the organization's admission rate, not the pipeline, bounded this run"
        ));
    }
    if let Some(target) = target_rate {
        let share = load.achieved_accept_rate / target;
        if share < 0.95 {
            out.push(format!(
                "achieved {:.1}% of the target accept rate",
                100.0 * share
            ));
        }
    }
    out
}

/// The headline numbers, side by side.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Headline {
    /// Open model: the target messages/s; send-many: none.
    pub target_rate: Option<f64>,
    pub achieved_accept_rate: f64,
    pub accepted_messages: u64,
    pub accept_p50_ms: f64,
    pub accept_p99_ms: f64,
    pub end_to_end_delivered_per_sec: Option<f64>,
    pub drain_secs: f64,
    pub correctness: String,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tool: String,
    /// `run` (open model) or `send-many` (closed loop).
    pub mode: String,
    /// When the report was written (RFC 3339).
    pub generated_at: String,
    pub headline: Headline,
    /// The options of the run (no secrets).
    pub config: Value,
    /// What the accept latency is measured from.
    pub latency_basis: String,
    pub load: LoadSummary,
    pub completion: CompletionSummary,
    /// Why the numbers may not mean what they seem (saturation, 429s...).
    pub warnings: Vec<String>,
    pub correctness: Correctness,
}

impl Report {
    /// Assembles the report and its verdict.
    pub fn new(
        mode: &str,
        config: Value,
        target_rate: Option<f64>,
        load: LoadSummary,
        completion: CompletionSummary,
        expect_all_delivered: bool,
        mut extra_warnings: Vec<String>,
    ) -> Self {
        let correctness = judge(&completion, expect_all_delivered);
        let mut all_warnings = warnings(&load, target_rate);
        all_warnings.append(&mut extra_warnings);
        let latency_basis = if target_rate.is_some() {
            "intended send time (open model, no coordinated omission)"
        } else {
            "start of the accepted attempt (closed loop)"
        };
        Self {
            tool: concat!("msgengine-load ", env!("CARGO_PKG_VERSION")).to_owned(),
            mode: mode.to_owned(),
            generated_at: chrono::Utc::now().to_rfc3339(),
            headline: Headline {
                target_rate,
                achieved_accept_rate: load.achieved_accept_rate,
                accepted_messages: load.messages_accepted,
                accept_p50_ms: load.accept_latency.p50_ms,
                accept_p99_ms: load.accept_latency.p99_ms,
                end_to_end_delivered_per_sec: completion.end_to_end_delivered_per_sec,
                drain_secs: completion.drain_secs,
                correctness: correctness.line.clone(),
            },
            config,
            latency_basis: latency_basis.to_owned(),
            load,
            completion,
            warnings: all_warnings,
            correctness,
        }
    }

    /// The human summary (ends with the correctness line).
    pub fn human(&self) -> String {
        let l = &self.load;
        let c = &self.completion;
        let lat = &l.accept_latency;
        let mut s = String::new();
        let _ = writeln!(s, "\n=== msgengine load report ({}) ===", self.mode);
        let _ = match self.headline.target_rate {
            Some(target) => writeln!(
                s,
                "accept rate       {:.0} msg/s achieved of {target:.0} msg/s target ({:.1}%) over {:.1} s",
                l.achieved_accept_rate,
                100.0 * l.achieved_accept_rate / target,
                l.elapsed_secs
            ),
            None => writeln!(
                s,
                "accept rate       {:.0} msg/s over {:.1} s",
                l.achieved_accept_rate, l.elapsed_secs
            ),
        };
        let _ = writeln!(
            s,
            "messages          {} sent, {} accepted, {} failed, {} not sent (client saturated)",
            l.messages_sent,
            l.messages_accepted,
            l.messages_failed,
            l.messages_not_sent_client_saturated
        );
        if l.warmup_messages_accepted > 0 {
            let _ = writeln!(
                s,
                "warm-up           {} messages accepted before the measured phase (checked for completion, not in the latency)",
                l.warmup_messages_accepted
            );
        }
        let _ = writeln!(
            s,
            "accept latency    p50 {:.2} ms | p90 {:.2} | p99 {:.2} | p99.9 {:.2} | max {:.2} | mean {:.2} (n={}, from {})",
            lat.p50_ms, lat.p90_ms, lat.p99_ms, lat.p999_ms, lat.max_ms, lat.mean_ms, lat.count, self.latency_basis
        );
        let _ = writeln!(s, "errors            {}", counts(&l.errors_by_kind));
        let r = &l.retries;
        let _ = writeln!(
            s,
            "retries           {} (transport {}, 5xx {}, 429 {}); idempotent replays {}{}",
            r.total,
            r.transport,
            r.http_5xx,
            r.http_429,
            l.idempotent_replays,
            if l.replayed_ids_already_recorded > 0 {
                format!(
                    " ({} replayed ids already recorded, not counted again)",
                    l.replayed_ids_already_recorded
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "terminal          {} of {} ({}); not terminal {}",
            c.terminal,
            c.accepted,
            counts(&c.terminal_by_state),
            c.not_terminal
        );
        let _ = match (c.end_to_end_delivered_per_sec, c.last_terminal_secs) {
            (Some(rate), Some(last)) => writeln!(
                s,
                "end to end        {rate:.0} delivered msg/s ({} delivered, last terminal {last:.2} s after load start)",
                c.delivered
            ),
            _ => writeln!(s, "end to end        n/a (nothing terminal)"),
        };
        let _ = writeln!(
            s,
            "drain             {:.2} s after the load, {} rounds, {} status requests{}{}",
            c.drain_secs,
            c.rounds,
            c.status_requests,
            if c.timed_out { ", TIMED OUT" } else { "" },
            if c.status_errors_by_kind.is_empty() {
                String::new()
            } else {
                format!(", status errors: {}", counts(&c.status_errors_by_kind))
            }
        );
        let h = &c.history_check;
        let _ = writeln!(
            s,
            "history sample    {} delivered checked, {} in order, {} wrong",
            h.checked, h.passed, h.failed
        );
        for failure in &h.failures {
            let _ = writeln!(s, "  - {failure}");
        }
        for warning in &self.warnings {
            let _ = writeln!(s, "WARNING: {warning}");
        }
        let _ = writeln!(s, "{}", self.correctness.line);
        s
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("serializing the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::HistoryCheck;

    fn done(accepted: u64, delivered: u64, failed: u64) -> CompletionSummary {
        let mut c = CompletionSummary {
            accepted,
            terminal: delivered + failed,
            delivered,
            not_terminal: accepted - delivered - failed,
            ..CompletionSummary::default()
        };
        if delivered > 0 {
            c.terminal_by_state.insert("delivered".into(), delivered);
        }
        if failed > 0 {
            c.terminal_by_state.insert("failed".into(), failed);
        }
        if c.not_terminal > 0 {
            c.not_terminal_by_last_state
                .insert("queued".into(), c.not_terminal);
        }
        c
    }

    #[test]
    fn all_delivered_passes() {
        let v = judge(&done(100, 100, 0), true);
        assert!(v.pass);
        assert_eq!(v.line, "CORRECTNESS: PASS");
    }

    #[test]
    fn failures_pass_only_when_configured() {
        assert!(judge(&done(100, 90, 10), false).pass);
        let v = judge(&done(100, 90, 10), true);
        assert!(!v.pass);
        assert_eq!(
            v.line,
            "CORRECTNESS: FAIL (10 of 100 accepted messages ended without delivery (failed: 10) although no failure was configured)"
        );
    }

    #[test]
    fn unfinished_messages_fail() {
        let v = judge(&done(100, 95, 0), false);
        assert!(!v.pass);
        assert!(
            v.line
                .starts_with("CORRECTNESS: FAIL (5 of 100 accepted messages not terminal"),
            "{}",
            v.line
        );
        assert!(v.line.contains("queued: 5"), "{}", v.line);
    }

    #[test]
    fn nothing_accepted_fails() {
        let v = judge(&done(0, 0, 0), true);
        assert_eq!(v.line, "CORRECTNESS: FAIL (no message was accepted)");
    }

    #[test]
    fn doubtful_runs_are_flagged() {
        let mut load = crate::stats::Recorder::new()
            .finish(std::time::Duration::from_secs(1))
            .0;
        load.achieved_accept_rate = 99.0;
        assert!(warnings(&load, Some(100.0)).is_empty());
        assert!(warnings(&load, None).is_empty());
        load.messages_not_sent_client_saturated = 5;
        load.errors_by_kind
            .insert("http_429_rate_limited".into(), 2);
        load.achieved_accept_rate = 90.0;
        let w = warnings(&load, Some(100.0));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("5 messages were not sent"));
        assert!(w[1].starts_with("2 requests were rate limited"));
        assert_eq!(w[2], "achieved 90.0% of the target accept rate");
        assert_eq!(warnings(&load, None).len(), 2);
    }

    #[test]
    fn duplicates_and_bad_histories_fail() {
        let mut c = done(10, 10, 0);
        c.duplicate_ids = 1;
        c.history_check = HistoryCheck {
            checked: 10,
            passed: 9,
            failed: 1,
            failures: vec!["x: wrong".into()],
        };
        let v = judge(&c, true);
        assert_eq!(v.problems.len(), 2);
        assert_eq!(
            v.line,
            "CORRECTNESS: FAIL (1 message ids were handed out twice; 1 of 10 sampled delivered histories are wrong)"
        );
    }
}

//! Ramp mode: the rate goes up step by step and the knee is the last step
//! the engine sustained.
//!
//! A step is sustained when its accept p99 is within the scenario's
//! `slo.p99_accept_ms`, its failed requests (any kind, client saturation
//! included) are at most `slo.max_error_share` of those due, and it accepted
//! at least `slo.min_achieved_share` of the rate it offered (the messages
//! its requests held over the step's length: with a mix of batch sizes the
//! offered rate is the target only on average). The ramp stops at
//! the first step that is not; the highest sustainable rate is the step
//! before it (none when the first step already fails; the last step when
//! none fails: the knee lies above `ramp.max_rate`).

use serde::Serialize;

use super::Slo;
use crate::stats::LoadSummary;

/// One step's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// Target messages/s.
    pub target_rate: f64,
    /// Messages due in the step (sent or not sent: client saturated) per
    /// second of the step.
    pub offered_rate: f64,
    pub achieved_rate: f64,
    pub accept_p50_ms: f64,
    pub accept_p99_ms: f64,
    pub accept_max_ms: f64,
    pub requests_due: u64,
    /// Failed requests, saturation included.
    pub requests_failed: u64,
    pub error_share: f64,
    /// Why the step is not sustainable (empty when it is).
    pub violations: Vec<String>,
}

impl StepResult {
    /// A step of `step_secs` from its load summary, judged against `slo`.
    pub fn from_load(target_rate: f64, step_secs: f64, load: &LoadSummary, slo: &Slo) -> Self {
        let failed: u64 = load.errors_by_kind.values().sum();
        let due = load.requests_sent
            + load
                .errors_by_kind
                .get("not_sent_client_saturated")
                .copied()
                .unwrap_or(0);
        let offered = load.messages_sent + load.messages_not_sent_client_saturated;
        let mut step = Self {
            target_rate,
            offered_rate: crate::stats::rate(offered, step_secs),
            achieved_rate: load.achieved_accept_rate,
            accept_p50_ms: load.accept_latency.p50_ms,
            accept_p99_ms: load.accept_latency.p99_ms,
            accept_max_ms: load.accept_latency.max_ms,
            requests_due: due,
            requests_failed: failed,
            error_share: if due > 0 {
                failed as f64 / due as f64
            } else {
                0.0
            },
            violations: Vec::new(),
        };
        step.violations = violations(&step, slo);
        step
    }

    /// Whether the step met every target.
    pub fn is_sustained(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What a step broke.
pub fn violations(step: &StepResult, slo: &Slo) -> Vec<String> {
    let mut out = Vec::new();
    if step.accept_p99_ms > slo.p99_accept_ms {
        out.push(format!(
            "p99 {:.1} ms > {:.1} ms",
            step.accept_p99_ms, slo.p99_accept_ms
        ));
    }
    if step.error_share > slo.max_error_share {
        out.push(format!(
            "errors {:.2}% > {:.2}%",
            100.0 * step.error_share,
            100.0 * slo.max_error_share
        ));
    }
    if step.achieved_rate < slo.min_achieved_share * step.offered_rate {
        out.push(format!(
            "achieved {:.0}/s < {:.0}% of the {:.0}/s offered",
            step.achieved_rate,
            100.0 * slo.min_achieved_share,
            step.offered_rate
        ));
    }
    out
}

/// Where the ramp found the knee.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Knee {
    /// The highest step rate that was sustained (none: not even the first).
    pub sustainable_rate: Option<f64>,
    /// The first step rate that was not (none: every step was sustained).
    pub first_unsustained_rate: Option<f64>,
    /// One line for people.
    pub summary: String,
}

/// Finds the knee in steps run in increasing rate order.
pub fn find_knee(steps: &[StepResult]) -> Knee {
    let first_bad = steps.iter().position(|s| !s.is_sustained());
    let sustained = match first_bad {
        Some(i) => i.checked_sub(1).map(|j| &steps[j]),
        None => steps.last(),
    };
    let sustainable_rate = sustained.map(|s| s.target_rate);
    let first_unsustained = first_bad.map(|i| &steps[i]);
    let summary = match (sustainable_rate, first_unsustained) {
        (Some(ok), Some(bad)) => format!(
            "KNEE: highest sustainable rate {ok:.0} msg/s; at {:.0} msg/s: {}",
            bad.target_rate,
            bad.violations.join(", ")
        ),
        (None, Some(bad)) => format!(
            "KNEE: below the first step ({:.0} msg/s: {})",
            bad.target_rate,
            bad.violations.join(", ")
        ),
        (Some(ok), None) => format!(
            "KNEE: not reached; every step sustained, up to {ok:.0} msg/s (raise ramp.max_rate)"
        ),
        (None, None) => "KNEE: no step ran".to_owned(),
    };
    Knee {
        sustainable_rate,
        first_unsustained_rate: first_unsustained.map(|s| s.target_rate),
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, achieved: f64, p99: f64, failed: u64) -> StepResult {
        let mut s = StepResult {
            target_rate: rate,
            offered_rate: rate,
            achieved_rate: achieved,
            accept_p50_ms: p99 / 2.0,
            accept_p99_ms: p99,
            accept_max_ms: p99 * 2.0,
            requests_due: 1000,
            requests_failed: failed,
            error_share: failed as f64 / 1000.0,
            violations: Vec::new(),
        };
        s.violations = violations(&s, &Slo::default());
        s
    }

    #[test]
    fn the_knee_is_the_step_before_the_first_violation() {
        let steps = [
            step(100.0, 100.0, 5.0, 0),
            step(200.0, 199.0, 20.0, 5),
            step(300.0, 298.0, 150.0, 0),
            // Recovers, but the ramp stopped being sustainable above.
            step(400.0, 400.0, 10.0, 0),
        ];
        let knee = find_knee(&steps);
        assert_eq!(knee.sustainable_rate, Some(200.0));
        assert_eq!(knee.first_unsustained_rate, Some(300.0));
        assert_eq!(
            knee.summary,
            "KNEE: highest sustainable rate 200 msg/s; at 300 msg/s: p99 150.0 ms > 100.0 ms"
        );
    }

    #[test]
    fn errors_and_shortfall_are_violations_too() {
        let errors = step(100.0, 100.0, 5.0, 20);
        assert_eq!(errors.violations, ["errors 2.00% > 1.00%"]);
        let short = step(1000.0, 900.0, 5.0, 0);
        assert_eq!(
            short.violations,
            ["achieved 900/s < 95% of the 1000/s offered"]
        );
        let knee = find_knee(&[short]);
        assert_eq!(knee.sustainable_rate, None);
        assert!(knee.summary.starts_with("KNEE: below the first step"));
    }

    #[test]
    fn every_step_sustained_means_no_knee_yet() {
        let knee = find_knee(&[step(100.0, 100.0, 1.0, 0), step(200.0, 200.0, 2.0, 0)]);
        assert_eq!(knee.sustainable_rate, Some(200.0));
        assert_eq!(knee.first_unsustained_rate, None);
        assert!(knee.summary.contains("not reached"));
        assert_eq!(find_knee(&[]).summary, "KNEE: no step ran");
    }

    #[test]
    fn a_step_from_a_load_summary_counts_saturation_as_failure() {
        let mut load = crate::stats::Recorder::new()
            .finish(std::time::Duration::from_secs(1))
            .0;
        load.requests_sent = 90;
        load.messages_sent = 180;
        load.messages_not_sent_client_saturated = 20;
        load.achieved_accept_rate = 95.0;
        load.errors_by_kind
            .insert("not_sent_client_saturated".into(), 10);
        let s = StepResult::from_load(100.0, 2.0, &load, &Slo::default());
        assert_eq!((s.requests_due, s.requests_failed), (100, 10));
        assert_eq!(s.offered_rate, 100.0);
        assert_eq!(s.violations, ["errors 10.00% > 1.00%"]);
    }
}

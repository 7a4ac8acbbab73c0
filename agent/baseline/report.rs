//! The result of a run: per step and per flow, the knee, what broke first, suggested alert
//! rules. Serialised as JSON with a versioned schema (`schema`), which `compare` reads back.
//!
//! Fields are only ever added within one schema version; renaming or removing one needs
//! `redline.baseline/v2`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::generator::{FlowTally, StepOutcome};
use super::workload::{Flow, SloLimit, Threshold, Workload};
use crate::config::{Quantile, When, format_duration, format_percent};

/// The schema identifier written to, and required from, every report.
pub const SCHEMA: &str = "redline.baseline/v1";

/// A whole baseline run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The target base URL.
    pub target: String,
    /// Where the workload came from.
    pub workload: String,
    /// Planned length of each step, seconds.
    pub step_s: f64,
    /// Why stepping stopped: `threshold`, `abort`, `max_rate` or `rates_done`.
    pub stopped: String,
    /// Highest total offered rate at which every flow held every threshold (null: none did).
    pub knee_rps: Option<f64>,
    /// The first threshold that broke (null: none did).
    pub first_break: Option<Break>,
    /// Per flow summary.
    pub flows: Vec<FlowSummary>,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
}

/// A threshold a flow broke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Break {
    /// The flow.
    pub flow: String,
    /// The rule, e.g. `p95 > 100ms`.
    pub rule: String,
    /// The measured value, e.g. `231.4ms` or `7.5%`.
    pub measured: String,
    /// Total offered rate of the step where it broke.
    pub at_rps: f64,
}

/// One flow over the whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowSummary {
    /// Flow name.
    pub name: String,
    /// Fraction of the total rate this flow received.
    pub share: f64,
    /// Thresholds judged, in alert-rule syntax.
    pub thresholds: Vec<String>,
    /// Highest total offered rate at which this flow held all its thresholds.
    pub knee_rps: Option<f64>,
    /// This flow's own rate at its knee (`knee_rps × share`).
    pub knee_flow_rps: Option<f64>,
    /// The threshold that broke first, if any.
    pub broke: Option<Break>,
    /// `when:` lines derived from the step at the knee (see README "Performance baseline").
    pub suggested: Vec<String>,
}

/// One step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// Total offered rate.
    pub offered_rps: f64,
    /// Total responses per second actually received.
    pub achieved_rps: f64,
    /// Seconds from the first intended start to the last completion.
    pub elapsed_s: f64,
    /// The generator's own worst lateness sending a request, ms.
    pub send_lag_ms: f64,
    /// True when the abort limit stopped this step.
    pub aborted: bool,
    /// Per flow, in workload order.
    pub flows: Vec<FlowStep>,
}

/// One flow in one step. Latencies are from each request's intended start, in ms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowStep {
    /// Flow name.
    pub flow: String,
    /// This flow's offered rate.
    pub offered_rps: f64,
    /// This flow's responses per second.
    pub achieved_rps: f64,
    /// Requests sent.
    pub requests: u64,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
    /// Errors (5xx, failures, timeouts) / requests.
    pub error_rate: f64,
    /// Timeouts / requests.
    pub timeout_rate: f64,
    /// With an SLO: errors plus requests slower than its latency, over requests (a request
    /// both slow and failed counts twice, so this errs on the side of "broken").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_bad_rate: Option<f64>,
    /// Thresholds broken at this step, with the measured value.
    pub breaches: Vec<Breach>,
}

/// A threshold broken at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// The rule.
    pub rule: String,
    /// The measured value.
    pub measured: String,
}

impl FlowStep {
    /// The measured latency of a quantile, ms.
    pub fn quantile_ms(&self, q: Quantile) -> Option<f64> {
        match q {
            Quantile::P50 => self.p50_ms,
            Quantile::P90 => self.p90_ms,
            Quantile::P95 => self.p95_ms,
            Quantile::P99 => self.p99_ms,
        }
    }
}

/// Turn a step's raw measurements into its report, judging every threshold.
pub fn step_report(workload: &Workload, rate: f64, outcome: &StepOutcome) -> StepReport {
    let secs = outcome.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let flows: Vec<FlowStep> = workload
        .flows
        .iter()
        .zip(&outcome.flows)
        .map(|(flow, tally)| flow_step(flow, rate, secs, tally))
        .collect();
    let responses: u64 = outcome.flows.iter().map(|t| t.responses).sum();
    StepReport {
        offered_rps: rate,
        achieved_rps: round2(responses as f64 / secs),
        elapsed_s: round2(secs),
        send_lag_ms: round2(outcome.max_send_lag.as_secs_f64() * 1e3),
        aborted: outcome.aborted,
        flows,
    }
}

fn flow_step(flow: &Flow, rate: f64, secs: f64, tally: &FlowTally) -> FlowStep {
    let h = &tally.latency_us;
    let q = |x: f64| (!h.is_empty()).then(|| round2(h.value_at_quantile(x) as f64 / 1e3));
    let per = |n: u64| {
        if tally.requests == 0 {
            0.0
        } else {
            n as f64 / tally.requests as f64
        }
    };
    let mut step = FlowStep {
        flow: flow.name.clone(),
        offered_rps: round2(rate * flow.share),
        achieved_rps: round2(tally.responses as f64 / secs),
        requests: tally.requests,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        max_ms: (!h.is_empty()).then(|| round2(h.max() as f64 / 1e3)),
        error_rate: per(tally.errors),
        timeout_rate: per(tally.timeouts),
        slo_bad_rate: flow.slo.map(|slo| slo_bad_rate(slo, tally)),
        breaches: Vec::new(),
    };
    step.breaches = flow
        .thresholds
        .iter()
        .filter_map(|t| judge(t, &step))
        .collect();
    if let (Some(slo), Some(bad)) = (flow.slo, step.slo_bad_rate) {
        if bad > 1.0 - slo.objective {
            step.breaches.push(Breach {
                rule: slo.to_string(),
                measured: format!("{} bad", percent(bad)),
            });
        }
    }
    step
}

fn slo_bad_rate(slo: SloLimit, tally: &FlowTally) -> f64 {
    if tally.requests == 0 {
        return 0.0;
    }
    let h = &tally.latency_us;
    let slow = match slo.latency {
        Some(l) if !h.is_empty() => {
            let micros = u64::try_from(l.as_micros()).unwrap_or(u64::MAX);
            1.0 - h.quantile_below(micros)
        }
        _ => 0.0,
    };
    let bad = (slow + tally.errors as f64 / tally.requests as f64).min(1.0);
    (bad * 10_000.0).round() / 10_000.0
}

/// The breach of `threshold` at `step`, if it is broken (same strict `>` as alerting).
fn judge(threshold: &Threshold, step: &FlowStep) -> Option<Breach> {
    let (measured, limit, text) = match threshold.when {
        When::Latency {
            quantile,
            threshold: limit,
        } => {
            let ms = step.quantile_ms(quantile)?;
            (ms, limit.as_secs_f64() * 1e3, format!("{ms}ms"))
        }
        When::ErrorRate(x) => (step.error_rate, x, percent(step.error_rate)),
        When::TimeoutRate(x) => (step.timeout_rate, x, percent(step.timeout_rate)),
        // A load test sends no credentials worth judging, and measures no traffic floor.
        When::RpsBelow(_) | When::DeniedRate(_) => return None,
    };
    (measured > limit).then(|| Breach {
        rule: threshold.when.to_string(),
        measured: text,
    })
}

/// Knee, breaks and suggestions over the steps run so far.
pub fn summarize(workload: &Workload, steps: &[StepReport]) -> (Vec<FlowSummary>, Option<Break>) {
    let flows: Vec<FlowSummary> = workload
        .flows
        .iter()
        .enumerate()
        .map(|(i, flow)| flow_summary(flow, i, steps))
        .collect();
    let first = flows
        .iter()
        .filter_map(|f| f.broke.clone())
        .min_by(|a, b| a.at_rps.total_cmp(&b.at_rps));
    (flows, first)
}

fn flow_summary(flow: &Flow, index: usize, steps: &[StepReport]) -> FlowSummary {
    let broke_at = steps
        .iter()
        .position(|s| !s.flows[index].breaches.is_empty());
    let held = &steps[..broke_at.unwrap_or(steps.len())];
    let knee_step = held.last();
    let broke = broke_at.map(|at| {
        let step = &steps[at];
        let breach = &step.flows[index].breaches[0];
        Break {
            flow: flow.name.clone(),
            rule: breach.rule.clone(),
            measured: breach.measured.clone(),
            at_rps: step.offered_rps,
        }
    });
    FlowSummary {
        name: flow.name.clone(),
        share: flow.share,
        thresholds: flow
            .thresholds
            .iter()
            .map(|t| t.when.to_string())
            .chain(flow.slo.map(|s| s.to_string()))
            .collect(),
        knee_rps: knee_step.map(|s| s.offered_rps),
        knee_flow_rps: knee_step.map(|s| s.flows[index].offered_rps),
        broke,
        suggested: knee_step
            .map(|s| suggest(&s.flows[index]))
            .unwrap_or_default(),
    }
}

/// Alert rules from the flow's behaviour at its knee: the latency it shows at the highest
/// load it sustains (rounded up to a readable value), so crossing it in production means
/// "at or past measured capacity"; error and timeout rates at twice the knee's, at least 1%.
pub fn suggest(step: &FlowStep) -> Vec<String> {
    let mut out = Vec::new();
    for q in [Quantile::P95, Quantile::P99] {
        if let Some(ms) = step.quantile_ms(q) {
            let limit = Duration::from_micros((nice_ceiling(ms) * 1e3) as u64);
            out.push(format!("{} > {}", q.label(), format_duration(limit)));
        }
    }
    let rate = |x: f64| format_percent(nice_ceiling((2.0 * x).max(0.01) * 100.0) / 100.0);
    out.push(format!("error_rate > {}", rate(step.error_rate)));
    out.push(format!("timeout_rate > {}", rate(step.timeout_rate)));
    out
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `x` (x > 0).
pub fn nice_ceiling(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let decade = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|v| *v >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

/// A fraction as a percentage with at most two decimals, e.g. `68.42%`.
fn percent(fraction: f64) -> String {
    format_percent((fraction * 10_000.0).round() / 10_000.0)
}

/// Two decimals: enough for ms and req/s, and stable to read in JSON.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_slo_breaks_when_bad_requests_exceed_the_error_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("r.yaml"),
            "flows:\n  - name: a\n    match: /a\n    slo: { objective: 90%, latency: 10ms }\n",
        )
        .unwrap();
        let path = dir.path().join("w.json");
        std::fs::write(
            &path,
            r#"{"version":1,"config":"r.yaml","flows":[{"name":"a","requests":[{"path":"/a"}]}]}"#,
        )
        .unwrap();
        let workload = Workload::from_file(&path, None).unwrap();
        let outcome = |slow: u64| {
            let mut tally = FlowTally {
                requests: 100,
                responses: 100,
                ..FlowTally::default()
            };
            tally.latency_us.record_n(5_000, 100 - slow).unwrap();
            tally.latency_us.record_n(50_000, slow).unwrap();
            StepOutcome {
                flows: vec![tally],
                elapsed: Duration::from_secs(1),
                max_send_lag: Duration::ZERO,
                aborted: false,
            }
        };
        let held = step_report(&workload, 100.0, &outcome(5));
        assert_eq!(held.flows[0].slo_bad_rate, Some(0.05));
        assert!(held.flows[0].breaches.is_empty());
        let broke = step_report(&workload, 100.0, &outcome(20));
        assert_eq!(
            broke.flows[0].breaches,
            [Breach {
                rule: "slo 90% within 10ms".into(),
                measured: "20% bad".into()
            }]
        );
    }

    #[test]
    fn nice_ceilings() {
        for (x, want) in [
            (0.7, 1.0),
            (1.0, 1.0),
            (1.2, 2.0),
            (2.2, 2.5),
            (3.0, 5.0),
            (7.0, 10.0),
            (42.0, 50.0),
            (180.0, 200.0),
        ] {
            assert_eq!(nice_ceiling(x), want, "{x}");
        }
    }

    #[test]
    fn suggestions_round_up_the_knee() {
        let step = FlowStep {
            flow: "a".into(),
            offered_rps: 100.0,
            achieved_rps: 100.0,
            requests: 1000,
            p50_ms: Some(3.0),
            p90_ms: Some(10.0),
            p95_ms: Some(12.3),
            p99_ms: Some(48.0),
            max_ms: Some(60.0),
            error_rate: 0.004,
            timeout_rate: 0.0,
            slo_bad_rate: None,
            breaches: vec![],
        };
        assert_eq!(
            suggest(&step),
            [
                "p95 > 20ms",
                "p99 > 50ms",
                "error_rate > 1%",
                "timeout_rate > 1%"
            ]
        );
    }
}

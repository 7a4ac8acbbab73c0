//! `redline baseline compare OLD NEW`: the regression gate.
//!
//! Per flow of OLD: its knee must not drop by more than the tolerance, and at each rate both
//! reports ran where OLD held every threshold, p95 must not rise by more than the tolerance.
//! Beyond the knee latency is queueing and swings wildly, so those steps are not compared.
//! A p95 rise under [`P95_FLOOR_MS`] never counts: sub-millisecond jitter is not a regression.

use std::fmt::Write as _;
use std::path::Path;

use super::BaselineError;
use super::report::{Report, SCHEMA};

/// A p95 rise smaller than this (ms) is noise whatever its relative size.
pub const P95_FLOOR_MS: f64 = 1.0;

/// Two steps are "the same rate" within this relative difference.
const SAME_RATE: f64 = 0.005;

/// Read a report and check its schema.
pub fn load(path: &Path) -> Result<Report, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| BaselineError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    if schema != SCHEMA {
        return Err(BaselineError::Report(format!(
            "{}: schema {schema:?} is not {SCHEMA:?}; produce it with `redline baseline run`",
            path.display()
        )));
    }
    serde_json::from_value(value).map_err(|source| BaselineError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// One compared number.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Flow name.
    pub flow: String,
    /// `knee req/s` or `p95 ms @ N req/s`.
    pub metric: String,
    /// OLD's value (None: absent).
    pub old: Option<f64>,
    /// NEW's value (None: absent, e.g. no knee).
    pub new: Option<f64>,
    /// True when this row fails the gate.
    pub regressed: bool,
}

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing regressed.
    Pass,
    /// At least one row regressed.
    Regressed,
}

/// The rows of a comparison, and flows of OLD that NEW lacks.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Compared numbers, flow by flow.
    pub rows: Vec<Row>,
    /// Flows of OLD absent from NEW (reported, not failed: the workload changed).
    pub missing: Vec<String>,
    /// The tolerance used.
    pub tolerance: f64,
}

/// Compare `new` against `old` with a relative `tolerance` (0.1 = 10%).
pub fn compare(old: &Report, new: &Report, tolerance: f64) -> Comparison {
    let mut out = Comparison {
        tolerance,
        ..Comparison::default()
    };
    for (old_index, flow) in old.flows.iter().enumerate() {
        let Some(new_index) = new.flows.iter().position(|f| f.name == flow.name) else {
            out.missing.push(flow.name.clone());
            continue;
        };
        if let Some(old_knee) = flow.knee_rps {
            let new_knee = new.flows[new_index].knee_rps;
            out.rows.push(Row {
                flow: flow.name.clone(),
                metric: "knee req/s".into(),
                old: Some(old_knee),
                new: new_knee,
                regressed: new_knee.is_none_or(|k| k < old_knee * (1.0 - tolerance)),
            });
        }
        p95_rows(&mut out, old, new, (old_index, new_index), tolerance);
    }
    out
}

fn p95_rows(
    out: &mut Comparison,
    old: &Report,
    new: &Report,
    (old_index, new_index): (usize, usize),
    tolerance: f64,
) {
    for old_step in &old.steps {
        let old_flow = &old_step.flows[old_index];
        let Some(old_p95) = old_flow.p95_ms else {
            continue;
        };
        if !old_flow.breaches.is_empty() || old_step.aborted {
            continue;
        }
        let same = new.steps.iter().find(|s| {
            (s.offered_rps - old_step.offered_rps).abs() <= SAME_RATE * old_step.offered_rps
        });
        let Some(new_p95) = same.and_then(|s| s.flows.get(new_index)?.p95_ms) else {
            continue;
        };
        let rise = new_p95 - old_p95;
        out.rows.push(Row {
            flow: old_flow.flow.clone(),
            metric: format!("p95 ms @ {} req/s", old_step.offered_rps),
            old: Some(old_p95),
            new: Some(new_p95),
            regressed: rise > old_p95 * tolerance && rise > P95_FLOOR_MS,
        });
    }
}

impl Comparison {
    /// Fail when any row regressed.
    pub fn verdict(&self) -> Verdict {
        if self.rows.iter().any(|r| r.regressed) {
            Verdict::Regressed
        } else {
            Verdict::Pass
        }
    }

    /// A Markdown table (readable as plain text too) and the verdict.
    pub fn table(&self) -> String {
        let mut out = String::from("| flow | metric | old | new | change | verdict |\n");
        out.push_str("|---|---|---:|---:|---:|---|\n");
        let num = |x: Option<f64>| x.map_or_else(|| "none".into(), |v| format!("{v}"));
        for row in &self.rows {
            let change = match (row.old, row.new) {
                (Some(o), Some(n)) if o > 0.0 => format!("{:+.1}%", (n - o) / o * 100.0),
                _ => "–".into(),
            };
            let verdict = if row.regressed { "REGRESSED" } else { "ok" };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {change} | {verdict} |",
                row.flow,
                row.metric,
                num(row.old),
                num(row.new)
            );
        }
        for flow in &self.missing {
            let _ = writeln!(out, "| {flow} | (absent from NEW) | | | | not compared |");
        }
        let tolerance = crate::config::format_percent(self.tolerance);
        let _ = match self.verdict() {
            Verdict::Pass => writeln!(out, "\nPASS: no regression beyond {tolerance}."),
            Verdict::Regressed => writeln!(out, "\nFAIL: regression beyond {tolerance}."),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::report::{FlowStep, FlowSummary, StepReport};

    fn report(knee: Option<f64>, p95s: &[(f64, f64, bool)]) -> Report {
        let steps = p95s
            .iter()
            .map(|&(rate, p95, broke)| StepReport {
                offered_rps: rate,
                achieved_rps: rate,
                elapsed_s: 1.0,
                send_lag_ms: 0.0,
                aborted: false,
                flows: vec![FlowStep {
                    flow: "a".into(),
                    offered_rps: rate,
                    achieved_rps: rate,
                    requests: 10,
                    p50_ms: Some(p95 / 2.0),
                    p90_ms: Some(p95),
                    p95_ms: Some(p95),
                    p99_ms: Some(p95),
                    max_ms: Some(p95),
                    error_rate: 0.0,
                    timeout_rate: 0.0,
                    slo_bad_rate: None,
                    breaches: if broke {
                        vec![crate::baseline::report::Breach {
                            rule: "p95 > 1s".into(),
                            measured: "2s".into(),
                        }]
                    } else {
                        vec![]
                    },
                }],
            })
            .collect();
        Report {
            schema: SCHEMA.into(),
            started_at: String::new(),
            target: String::new(),
            workload: String::new(),
            step_s: 1.0,
            stopped: "threshold".into(),
            knee_rps: knee,
            first_break: None,
            flows: vec![FlowSummary {
                name: "a".into(),
                share: 1.0,
                thresholds: vec![],
                knee_rps: knee,
                knee_flow_rps: knee,
                broke: None,
                suggested: vec![],
            }],
            steps,
        }
    }

    #[test]
    fn knee_drop_and_p95_rise_beyond_tolerance_fail() {
        let old = report(
            Some(200.0),
            &[
                (100.0, 10.0, false),
                (200.0, 20.0, false),
                (300.0, 900.0, true),
            ],
        );
        let same = report(
            Some(200.0),
            &[
                (100.0, 10.5, false),
                (200.0, 21.0, false),
                (300.0, 2000.0, true),
            ],
        );
        assert_eq!(
            compare(&old, &same, 0.1).verdict(),
            Verdict::Pass,
            "beyond the knee is not compared"
        );
        let slower = report(Some(200.0), &[(100.0, 10.0, false), (200.0, 25.0, false)]);
        let c = compare(&old, &slower, 0.1);
        assert_eq!(c.verdict(), Verdict::Regressed);
        assert!(
            c.table()
                .contains("| a | p95 ms @ 200 req/s | 20 | 25 | +25.0% | REGRESSED |"),
            "{}",
            c.table()
        );
        let lower_knee = report(Some(100.0), &[(100.0, 10.0, false)]);
        assert_eq!(
            compare(&old, &lower_knee, 0.1).verdict(),
            Verdict::Regressed
        );
        assert_eq!(compare(&old, &lower_knee, 0.6).verdict(), Verdict::Pass);
        let no_knee = report(None, &[]);
        assert_eq!(compare(&old, &no_knee, 0.5).verdict(), Verdict::Regressed);
    }

    #[test]
    fn sub_millisecond_rises_are_noise() {
        let old = report(Some(100.0), &[(100.0, 0.5, false)]);
        let new = report(Some(100.0), &[(100.0, 1.2, false)]);
        assert_eq!(compare(&old, &new, 0.1).verdict(), Verdict::Pass);
    }
}

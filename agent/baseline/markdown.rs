//! The report as Markdown, for a pull request or a terminal.

use std::fmt::Write as _;

use super::report::{Report, StepReport};

/// The whole report: verdict, one table per flow, suggested rules.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Performance baseline\n");
    let _ = writeln!(
        out,
        "Target `{}`, workload `{}`, steps of {}s, started {}.\n",
        report.target, report.workload, report.step_s, report.started_at
    );
    let _ = writeln!(out, "{}\n", verdict(report));
    for (index, flow) in report.flows.iter().enumerate() {
        let _ = writeln!(
            out,
            "## Flow `{}` ({:.0}% of the load)\n",
            flow.name,
            flow.share * 100.0
        );
        let thresholds = if flow.thresholds.is_empty() {
            "none (nothing can break)".to_string()
        } else {
            flow.thresholds.join(", ")
        };
        let _ = writeln!(out, "Thresholds: {thresholds}.\n");
        let _ = writeln!(out, "{}", knee_line(flow.knee_rps, flow.broke.as_ref()));
        table(&mut out, &report.steps, index);
        if !flow.suggested.is_empty() {
            let _ = writeln!(
                out,
                "\nSuggested alert rules (from the step at the knee):\n\n```yaml\nalerts:"
            );
            for rule in &flow.suggested {
                let _ = writeln!(out, "  - when: \"{rule}\"");
            }
            let _ = writeln!(out, "```");
        }
        out.push('\n');
    }
    out
}

pub fn verdict(report: &Report) -> String {
    let knee = match (report.knee_rps, &report.first_break) {
        (Some(rps), Some(_)) => format!("**Knee: {rps} req/s** (every flow held every threshold)"),
        (Some(rps), None) => format!("**No knee up to {rps} req/s**: every flow held"),
        (None, Some(_)) => "**No knee**: a threshold broke at the first step".to_string(),
        (None, None) => "**No knee**: no step completed".to_string(),
    };
    let why = match (&report.first_break, report.stopped.as_str()) {
        (Some(b), _) => format!(
            "; first break: flow `{}` at {} req/s, `{}` (measured {})",
            b.flow, b.at_rps, b.rule, b.measured
        ),
        (None, "abort") => "; stopped: error rate over the abort limit".into(),
        (None, "max_rate") => "; stopped at --max-rate before any threshold broke".into(),
        (None, _) => "; no threshold broke at any rate tried, so the knee is higher".into(),
    };
    knee + &why + "."
}

pub fn knee_line(knee: Option<f64>, broke: Option<&super::report::Break>) -> String {
    match (knee, broke) {
        (Some(k), Some(b)) => format!(
            "Knee {k} req/s; broke at {} req/s: `{}` (measured {}).\n",
            b.at_rps, b.rule, b.measured
        ),
        (None, Some(b)) => format!(
            "Broke at the first step, {} req/s: `{}` (measured {}).\n",
            b.at_rps, b.rule, b.measured
        ),
        (Some(k), None) => format!("Held every threshold up to {k} req/s (the highest tried).\n"),
        (None, None) => "No step ran.\n".into(),
    }
}

fn ms(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{v}"))
}

fn table(out: &mut String, steps: &[StepReport], index: usize) {
    let _ = writeln!(
        out,
        "| offered req/s (total) | flow req/s | achieved | p50 ms | p95 ms | p99 ms | max ms | errors | timeouts | verdict |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for step in steps {
        let f = &step.flows[index];
        let verdict = if f.breaches.is_empty() {
            "held".to_string()
        } else {
            let broken: Vec<String> = f.breaches.iter().map(|b| format!("`{}`", b.rule)).collect();
            format!("broke {}", broken.join(", "))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.2}% | {:.2}% | {verdict} |",
            step.offered_rps,
            f.offered_rps,
            f.achieved_rps,
            ms(f.p50_ms),
            ms(f.p95_ms),
            ms(f.p99_ms),
            ms(f.max_ms),
            f.error_rate * 100.0,
            f.timeout_rate * 100.0,
        );
    }
}

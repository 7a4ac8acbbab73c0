//! The report as one self-contained HTML page: inline CSS and inline SVG charts, no script,
//! no request to anywhere (its Content-Security-Policy says so), so it can be attached to a
//! CI run or opened from disk.
//!
//! Per flow: latency (p50/p95/p99, log scale because past the knee it grows by orders of
//! magnitude) and error/timeout rate against the offered rate, each with the flow's
//! thresholds as dashed lines and the knee as a vertical line.

use std::fmt::Write as _;

use super::markdown;
use super::report::{FlowStep, FlowSummary, Report};
use crate::config::When;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;

const STYLE: &str = "
:root{color-scheme:light dark;--fg:#1d2330;--muted:#5b6475;--bg:#fff;--card:#f5f6f8;--grid:#d9dce3;
--p50:#2b8a3e;--p95:#1c64d8;--p99:#8a3ffc;--err:#d92d20;--tmo:#c76a00;--thr:#d92d20;--knee:#5b6475}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8ee;--muted:#9aa3b5;--bg:#12151c;--card:#1b2029;--grid:#2f3542}}
body{font:14px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1200px;padding:16px 24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:24px 0 4px}.meta,.muted{color:var(--muted)}
.verdict{font-size:16px;padding:8px 12px;background:var(--card);border-radius:6px}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;background:var(--card);border-radius:6px;padding:8px}
figcaption{font-weight:600;margin:0 0 4px 4px}svg{display:block;max-width:100%;height:auto}
svg text{fill:var(--muted);font-size:11px}.grid{stroke:var(--grid);stroke-width:1}
.line{fill:none;stroke-width:2}.dot{stroke:none}
.p50{stroke:var(--p50);fill:var(--p50)}.p95{stroke:var(--p95);fill:var(--p95)}.p99{stroke:var(--p99);fill:var(--p99)}
.error_rate{stroke:var(--err);fill:var(--err)}.timeout_rate{stroke:var(--tmo);fill:var(--tmo)}
.line.p50,.line.p95,.line.p99,.line.error_rate,.line.timeout_rate{fill:none}
.threshold{stroke:var(--thr);stroke-dasharray:6 4;stroke-width:1.5}svg text.threshold-label{fill:var(--thr)}
.knee{stroke:var(--knee);stroke-dasharray:2 3;stroke-width:1.5}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid var(--grid);text-align:right}th{color:var(--muted);font-weight:600}
td:last-child,th:last-child{text-align:left}tr.broke td{color:var(--err)}
pre{background:var(--card);padding:8px 12px;border-radius:6px;overflow:auto}
.legend span{margin-right:12px}.legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
.legend i.p50{background:var(--p50)}.legend i.p95{background:var(--p95)}.legend i.p99{background:var(--p99)}
.legend i.error_rate{background:var(--err)}.legend i.timeout_rate{background:var(--tmo)}
";

/// The page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("Redline baseline: {}", report.target);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body data-schema=\"{}\">\n",
        esc(&title),
        esc(&report.schema)
    );
    let _ = writeln!(out, "<h1>Performance baseline</h1>");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Target <code>{}</code>, workload <code>{}</code>, steps of {}s, started {}. \
         Latency is measured from each request's intended start (open model).</p>",
        esc(&report.target),
        esc(&report.workload),
        report.step_s,
        esc(&report.started_at)
    );
    let knee = report.knee_rps.map_or(String::new(), |k| k.to_string());
    let _ = writeln!(
        out,
        "<p class=\"verdict\" id=\"verdict\" data-knee=\"{knee}\">{}</p>",
        inline_md(&markdown::verdict(report))
    );
    for (index, flow) in report.flows.iter().enumerate() {
        let steps: Vec<&FlowStep> = report.steps.iter().map(|s| &s.flows[index]).collect();
        let offered: Vec<f64> = report.steps.iter().map(|s| s.offered_rps).collect();
        flow_section(&mut out, flow, &offered, &steps);
    }
    out.push_str("</body></html>\n");
    out
}

fn flow_section(out: &mut String, flow: &FlowSummary, offered: &[f64], steps: &[&FlowStep]) {
    let knee = flow.knee_rps.map_or(String::new(), |k| k.to_string());
    let _ = writeln!(
        out,
        "<section class=\"flow\" id=\"flow-{0}\" data-flow=\"{0}\" data-knee=\"{knee}\">",
        esc(&flow.name)
    );
    let _ = writeln!(
        out,
        "<h2>Flow {} <span class=\"muted\">({:.0}% of the load)</span></h2>",
        esc(&flow.name),
        flow.share * 100.0
    );
    let _ = writeln!(
        out,
        "<p>{}</p>",
        inline_md(&markdown::knee_line(flow.knee_rps, flow.broke.as_ref()))
    );
    out.push_str("<div class=\"charts\">");
    latency_chart(out, flow, offered, steps);
    error_chart(out, flow, offered, steps);
    out.push_str("</div>\n");
    steps_table(out, offered, steps);
    if !flow.suggested.is_empty() {
        out.push_str("<p>Suggested alert rules (from the step at the knee):</p><pre>alerts:\n");
        for rule in &flow.suggested {
            let _ = writeln!(out, "  - when: \"{}\"", esc(rule));
        }
        out.push_str("</pre>\n");
    }
    out.push_str("</section>\n");
}

/// One line of a chart.
struct Series {
    name: &'static str,
    points: Vec<(f64, f64)>,
}

/// A horizontal threshold line.
struct Rule {
    label: String,
    value: f64,
}

/// How values map to the y axis.
#[derive(Clone, Copy)]
enum Scale {
    /// log10, from `lo` to `hi` (both powers of ten).
    Log { lo: f64, hi: f64 },
    /// 0 to `hi`.
    Linear { hi: f64 },
}

impl Scale {
    fn y(self, v: f64) -> f64 {
        let frac = match self {
            Scale::Log { lo, hi } => (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()),
            Scale::Linear { hi } => v / hi,
        };
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - frac.clamp(0.0, 1.0))
    }

    fn ticks(self) -> Vec<f64> {
        match self {
            Scale::Log { lo, hi } => {
                let decades = (hi.log10() - lo.log10()).round() as i32;
                (0..=decades).map(|d| lo * 10f64.powi(d)).collect()
            }
            Scale::Linear { hi } => (0..=4).map(|i| hi * f64::from(i) / 4.0).collect(),
        }
    }
}

fn latency_chart(out: &mut String, flow: &FlowSummary, offered: &[f64], steps: &[&FlowStep]) {
    let pick = |f: fn(&FlowStep) -> Option<f64>| -> Vec<(f64, f64)> {
        offered
            .iter()
            .zip(steps)
            .filter_map(|(x, s)| f(s).map(|y| (*x, y)))
            .collect()
    };
    let series = vec![
        Series {
            name: "p50",
            points: pick(|s| s.p50_ms),
        },
        Series {
            name: "p95",
            points: pick(|s| s.p95_ms),
        },
        Series {
            name: "p99",
            points: pick(|s| s.p99_ms),
        },
    ];
    let rules: Vec<Rule> = thresholds(flow, |w| match w {
        When::Latency { threshold, .. } => Some(threshold.as_secs_f64() * 1e3),
        _ => None,
    });
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(rules.iter().map(|r| r.value));
    let (lo, hi) = values.fold((f64::MAX, 0.1f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = 10f64.powf(lo.max(0.01).min(hi).log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    let chart = Chart {
        kind: "latency",
        unit: "ms",
        scale: Scale::Log { lo, hi },
        offered,
        knee: flow.knee_rps,
        broke: flow.broke.is_some(),
    };
    chart.render(
        out,
        "Latency (ms, log scale) vs offered req/s",
        &series,
        &rules,
    );
}

fn error_chart(out: &mut String, flow: &FlowSummary, offered: &[f64], steps: &[&FlowStep]) {
    let pct = |f: fn(&FlowStep) -> f64| -> Vec<(f64, f64)> {
        offered
            .iter()
            .zip(steps)
            .map(|(x, s)| (*x, f(s) * 100.0))
            .collect()
    };
    let series = vec![
        Series {
            name: "error_rate",
            points: pct(|s| s.error_rate),
        },
        Series {
            name: "timeout_rate",
            points: pct(|s| s.timeout_rate),
        },
    ];
    let rules = thresholds(flow, |w| match w {
        When::ErrorRate(x) | When::TimeoutRate(x) => Some(x * 100.0),
        _ => None,
    });
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(rules.iter().map(|r| r.value))
        .fold(1.0f64, f64::max);
    let hi = quarter_ceiling(top * 1.1);
    let chart = Chart {
        kind: "errors",
        unit: "%",
        scale: Scale::Linear { hi },
        offered,
        knee: flow.knee_rps,
        broke: flow.broke.is_some(),
    };
    chart.render(
        out,
        "Error and timeout rate (%) vs offered req/s",
        &series,
        &rules,
    );
}

/// The smallest of 1, 2, 4, 8 × 10^k at or above `x`: its quarters (the grid lines) are
/// readable numbers too.
fn quarter_ceiling(x: f64) -> f64 {
    let decade = 10f64.powf(x.max(1e-9).log10().floor());
    [1.0, 2.0, 4.0, 8.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|v| *v >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

fn thresholds(flow: &FlowSummary, value: impl Fn(When) -> Option<f64>) -> Vec<Rule> {
    flow.thresholds
        .iter()
        .filter_map(|text| {
            let when: When = text.parse().ok()?;
            Some(Rule {
                label: text.clone(),
                value: value(when)?,
            })
        })
        .collect()
}

struct Chart<'a> {
    kind: &'static str,
    unit: &'static str,
    scale: Scale,
    offered: &'a [f64],
    knee: Option<f64>,
    /// Whether the flow broke; if not, the "knee" is only the highest rate tried.
    broke: bool,
}

impl Chart<'_> {
    fn x(&self, v: f64) -> f64 {
        let max = self.offered.iter().copied().fold(1.0, f64::max) * 1.05;
        LEFT + (WIDTH - LEFT - RIGHT) * (v / max)
    }

    fn render(&self, out: &mut String, caption: &str, series: &[Series], rules: &[Rule]) {
        let _ = write!(
            out,
            "<figure><figcaption>{}</figcaption><svg data-chart=\"{}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
             width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{}\">",
            esc(caption),
            self.kind,
            esc(caption)
        );
        self.axes(out);
        for rule in rules {
            let y = self.scale.y(rule.value);
            let _ = write!(
                out,
                "<line class=\"threshold\" data-threshold=\"{0}\" x1=\"{LEFT}\" x2=\"{1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"threshold-label\" x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{0}</text>",
                esc(&rule.label),
                WIDTH - RIGHT,
                WIDTH - RIGHT - 2.0,
                y - 3.0
            );
        }
        if let Some(knee) = self.knee {
            let x = self.x(knee);
            // Near the right edge the label goes left of the line, or it would be clipped.
            let (label_x, anchor) = if x > WIDTH * 0.7 {
                (x - 3.0, "end")
            } else {
                (x + 3.0, "start")
            };
            let _ = write!(
                out,
                "<line class=\"knee\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{0}\"/>\
                 <text x=\"{label_x:.1}\" y=\"{1}\" text-anchor=\"{anchor}\">{2} {knee}</text>",
                HEIGHT - BOTTOM,
                TOP + 10.0,
                if self.broke { "knee" } else { "held to" }
            );
        }
        for s in series {
            self.line(out, s);
        }
        out.push_str("</svg><div class=\"legend\">");
        for s in series {
            let _ = write!(out, "<span><i class=\"{0}\"></i>{0}</span>", s.name);
        }
        out.push_str("</div></figure>");
    }

    fn axes(&self, out: &mut String) {
        for tick in self.scale.ticks() {
            let y = self.scale.y(tick);
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{0}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{3}{4}</text>",
                WIDTH - RIGHT,
                LEFT - 4.0,
                y + 4.0,
                tick_label(tick),
                self.unit
            );
        }
        for &rate in self.offered {
            let x = self.x(rate);
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"{0}\" text-anchor=\"middle\">{rate}</text>",
                HEIGHT - BOTTOM + 16.0
            );
        }
        let _ = write!(
            out,
            "<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">offered req/s (total)</text>",
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT - 6.0
        );
    }

    fn line(&self, out: &mut String, s: &Series) {
        let mut d = String::new();
        for (i, (x, y)) in s.points.iter().enumerate() {
            let cmd = if i == 0 { 'M' } else { 'L' };
            let _ = write!(d, "{cmd}{:.1} {:.1} ", self.x(*x), self.scale.y(*y));
        }
        let _ = write!(
            out,
            "<path class=\"line {0}\" data-series=\"{0}\" data-points=\"{1}\" d=\"{2}\"/>",
            s.name,
            s.points.len(),
            d.trim_end()
        );
        for (x, y) in &s.points {
            let _ = write!(
                out,
                "<circle class=\"dot {}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{} req/s: {y}{}</title></circle>",
                s.name,
                self.x(*x),
                self.scale.y(*y),
                x,
                self.unit
            );
        }
    }
}

fn tick_label(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.2}").trim_end_matches('0').to_string()
    }
}

fn steps_table(out: &mut String, offered: &[f64], steps: &[&FlowStep]) {
    out.push_str(
        "<table><thead><tr><th>offered (total)</th><th>flow req/s</th><th>achieved</th><th>p50 ms</th>\
         <th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th><th>timeouts</th><th>verdict</th></tr></thead><tbody>",
    );
    let ms = |x: Option<f64>| x.map_or_else(|| "–".into(), |v| v.to_string());
    for (rate, s) in offered.iter().zip(steps) {
        let broke = !s.breaches.is_empty();
        let verdict = if broke {
            let rules: Vec<String> = s
                .breaches
                .iter()
                .map(|b| format!("{} ({})", b.rule, b.measured))
                .collect();
            format!("broke {}", rules.join(", "))
        } else {
            "held".into()
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{rate}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.2}%</td><td>{:.2}%</td><td>{}</td></tr>",
            if broke { "broke" } else { "held" },
            s.offered_rps,
            s.achieved_rps,
            ms(s.p50_ms),
            ms(s.p95_ms),
            ms(s.p99_ms),
            ms(s.max_ms),
            s.error_rate * 100.0,
            s.timeout_rate * 100.0,
            esc(&verdict)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// Markdown's `**bold**` and `` `code` `` in a line of text, as HTML (text escaped first).
fn inline_md(text: &str) -> String {
    let mut out = String::new();
    let mut open = [false, false];
    let escaped = esc(text.trim());
    let mut rest = escaped.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if open[0] { "</strong>" } else { "<strong>" });
            open[0] = !open[0];
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if open[1] { "</code>" } else { "<code>" });
            open[1] = !open[1];
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Escape text for HTML content and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

//! The exposition formats of `/metrics`: Prometheus text 0.0.4 (the default) and OpenMetrics 1.0 with exemplars.
//!
//! Both carry the same families, series and values. OpenMetrics, sent when the scraper
//! asks for it (`Accept: application/openmetrics-text`, as Prometheus does), differs in
//! what its spec requires: a counter family is named without `_total` in `# TYPE` and
//! `# HELP` (its samples keep the suffix), the duration histogram declares `# UNIT`, each
//! of its buckets carries the latest request whose trace was kept as an exemplar
//! (`# {trace_id="…",span_id="…"} 0.087 1700000000.123`: a slow bucket links to a trace
//! in the tracing backend), and the text ends with `# EOF`. `le` values are written the
//! same way in both (`1`, not `1.0`), so a Prometheus that switches format keeps its
//! series.

use super::{Exemplar, Family, Histogram, Registry};
use std::fmt::Write as _;

/// `Content-Type` of the plain Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4.
    Text,
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a non-zero quality, else the plain text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut params = range.split(';').map(str::trim);
                let media = params.next().unwrap_or_default();
                let refused = params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// `# HELP` and `# TYPE` (and for OpenMetrics `# UNIT`) of a family named `name` in the plain format.
/// `# HELP` and `# TYPE` (and `# UNIT`) of a family; an OpenMetrics counter's family name
/// drops `_total`. Public for families rendered outside the registry.
pub fn header(out: &mut String, format: Format, name: &str, kind: &str, help: &str, unit: &str) {
    let family = match format {
        Format::OpenMetrics if kind == "counter" => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
    if format == Format::OpenMetrics && !unit.is_empty() {
        let _ = writeln!(out, "# UNIT {family} {unit}");
    }
}

impl Registry {
    /// The whole registry in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        self.render_as(Format::Text)
    }

    /// The whole registry in `format`.
    pub fn render_as(&self, format: Format) -> String {
        self.render_with(format, |_| {})
    }

    /// The registry, then families kept elsewhere (`extra`, in the same format), then the end.
    pub fn render_with(&self, format: Format, extra: impl FnOnce(&mut String)) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_duration(&mut out, format);
        self.render_active(&mut out, format);
        render_families(&mut out, format, &self.families());
        extra(&mut out);
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }

    fn render_duration(&self, out: &mut String, format: Format) {
        const NAME: &str = "http_server_request_duration_seconds";
        header(
            out,
            format,
            NAME,
            "histogram",
            "Duration of HTTP server requests.",
            "seconds",
        );
        for route in self.routes() {
            for (method, status, error, h) in route.series() {
                let err = error.label(status);
                let status = status.to_string();
                let labels = [
                    ("flow", &*route.flow),
                    ("http_request_method", method),
                    ("http_route", &*route.route),
                    ("http_response_status_code", status.as_str()),
                    ("error_type", &*err),
                ];
                render_histogram(out, NAME, &labels, &h, format);
            }
        }
    }

    fn render_active(&self, out: &mut String, format: Format) {
        const NAME: &str = "http_server_active_requests";
        header(
            out,
            format,
            NAME,
            "gauge",
            "Number of active HTTP server requests.",
            "",
        );
        for active in self.active_all() {
            for (method, v) in active.values() {
                // Methods never seen stay out, to keep the scrape small.
                if v == 0 && method != "GET" {
                    continue;
                }
                out.push_str(NAME);
                write_labels(
                    out,
                    [("flow", &*active.flow), ("http_request_method", method)],
                );
                let _ = writeln!(out, " {v}");
            }
        }
    }
}

/// Families in `format`: `# HELP`/`# TYPE`, then one line per series.
pub fn render_families(out: &mut String, format: Format, families: &[Family]) {
    for family in families {
        header(
            out,
            format,
            family.name,
            family.kind.prometheus(),
            family.help,
            "",
        );
        for series in &family.series {
            out.push_str(family.name);
            if !series.labels.is_empty() {
                write_labels(out, series.labels.iter().map(|(k, v)| (*k, v.as_str())));
            }
            let _ = writeln!(out, " {}", fmt_f64(series.value));
        }
    }
}

fn render_histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    h: &Histogram,
    format: Format,
) {
    let counts = h.bucket_counts();
    let exemplars = match format {
        Format::OpenMetrics => h.exemplars(),
        Format::Text => vec![None; counts.len()],
    };
    let mut cumulative = 0;
    let le_values = h
        .bounds()
        .iter()
        .map(|b| fmt_f64(*b))
        .chain(std::iter::once("+Inf".to_string()));
    for ((count, le), exemplar) in counts.iter().zip(le_values).zip(exemplars) {
        cumulative += count;
        let _ = write!(out, "{name}_bucket");
        write_labels(
            out,
            labels
                .iter()
                .copied()
                .chain(std::iter::once(("le", le.as_str()))),
        );
        let _ = write!(out, " {cumulative}");
        if let Some(e) = exemplar {
            write_exemplar(out, &e);
        }
        out.push('\n');
    }
    let _ = write!(out, "{name}_sum");
    write_labels(out, labels.iter().copied());
    let _ = writeln!(out, " {}", fmt_f64(h.sum()));
    let _ = write!(out, "{name}_count");
    write_labels(out, labels.iter().copied());
    let _ = writeln!(out, " {cumulative}");
}

/// ` # {trace_id="…",span_id="…"} value timestamp`: 63 characters of labels, under OpenMetrics' 128.
fn write_exemplar(out: &mut String, e: &Exemplar) {
    out.push_str(" # {trace_id=\"");
    push_hex(out, &e.trace_id);
    out.push_str("\",span_id=\"");
    push_hex(out, &e.span_id);
    let _ = write!(
        out,
        "\"}} {} {}.{:03}",
        e.seconds,
        e.unix_ms / 1000,
        e.unix_ms % 1000
    );
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// `{k="v",…}` with the values escaped.
pub fn write_labels<'a>(out: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (k, v)) in labels.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// A number as the Prometheus text output writes it (`0.8`, `1`, `2.5`), e.g. for `le` values.
pub fn format_seconds(v: f64) -> String {
    fmt_f64(v)
}

pub(super) fn fmt_f64(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests;

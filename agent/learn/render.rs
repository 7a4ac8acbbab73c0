//! The learned config as commented YAML: the running instance's listeners and upstream, then one flow per group with what each value was learned from.

use std::fmt::Write as _;
use std::time::Duration;

use super::{LearnedFlow, Observed, Proposal, rule_timing, thresholds};
use crate::config::{
    AlertingConfig, Config, FlowConfig, format_duration, format_percent, pattern_text,
};

/// The whole file.
pub fn yaml(p: &Proposal, observed: &Observed) -> String {
    let mut out = String::new();
    header(&mut out, p, observed);
    settings(&mut out, &observed.config);
    let configured = &observed.config.flows;
    if p.flows.is_empty() {
        out.push_str("# No busy unmatched route yet: send traffic through Redline, then run `redline init` again.\n");
    }
    if p.flows.is_empty() && configured.is_empty() {
        out.push_str("flows: []\n");
        return out;
    }
    out.push_str("flows:\n");
    if !configured.is_empty() {
        out.push_str("  # Configured in the running Redline, kept as they are:\n");
        for flow in configured.iter() {
            configured_flow(&mut out, flow);
        }
    }
    let timing = rule_timing(&observed.config);
    for flow in &p.flows {
        flow_yaml(&mut out, flow, observed.window, timing);
    }
    out
}

fn header(out: &mut String, p: &Proposal, observed: &Observed) {
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(observed.at_ms),
    );
    let coverage = match p.total {
        0 => "0%".to_string(),
        t => format_percent((p.covered as f64 / t as f64 * 1000.0).floor() / 1000.0),
    };
    let _ = writeln!(
        out,
        "# Redline config learned from live traffic at {at} (`redline init`)."
    );
    let _ = writeln!(
        out,
        "# Learned from {} unmatched requests over {}; the {} learned flow(s) cover {coverage} of them.",
        p.total,
        about(observed.window),
        p.flows.len(),
    );
    let _ = writeln!(
        out,
        "# Thresholds: p95 = observed p95 x {} rounded up to a histogram boundary (at least {});",
        thresholds::P95_MARGIN,
        format_duration(thresholds::MIN_LATENCY_THRESHOLD),
    );
    let _ = writeln!(
        out,
        "# error and timeout rate = {} x the observed rate, {} to {}, rounded up to a whole percent.",
        thresholds::RATE_MARGIN,
        format_percent(thresholds::RATE_FLOOR),
        format_percent(thresholds::RATE_CAP),
    );
    out.push_str(
        "# Review the names and every `owner: TODO`; check with `redline check --config FILE`.\n",
    );
    out.push_str("# Written to the running Redline's config file, it is hot-reloaded.\n");
}

/// What the running instance needs to keep working the same once this file replaces its own.
fn settings(out: &mut String, config: &Config) {
    let _ = writeln!(out, "service: {}", quoted(&config.service));
    let _ = writeln!(out, "listen: {}", quoted(&config.listen.to_string()));
    if let Some(upstream) = &config.upstream {
        let _ = writeln!(out, "upstream: {}", quoted(&upstream.to_string()));
    }
    let _ = writeln!(out, "timeout: {}", format_duration(config.timeout));
    out.push_str("admin:\n");
    let _ = writeln!(
        out,
        "  listen: {}",
        quoted(&config.admin.listen.to_string())
    );
    if let Some(file) = &config.admin.token_file {
        let _ = writeln!(out, "  token_file: {}", quoted(&file.display().to_string()));
    }
    if config.admin.protect_reads {
        out.push_str("  protect_reads: true\n");
    }
    alerting(out, &config.alerting);
    if let Some(dir) = &config.data_dir {
        let _ = writeln!(out, "data_dir: {}", quoted(&dir.display().to_string()));
    }
    out.push_str(
        "# Not copied from the running config: receivers (they may name secrets), telemetry,\n",
    );
    out.push_str("# redact, routes and limits; add yours back. --alert-webhook still applies.\n");
}

fn alerting(out: &mut String, a: &AlertingConfig) {
    let defaults = AlertingConfig::default();
    let mut lines = Vec::new();
    if a.eval_interval != defaults.eval_interval {
        lines.push(format!(
            "  eval_interval: {}",
            format_duration(a.eval_interval)
        ));
    }
    if a.repeat_interval != defaults.repeat_interval {
        lines.push(format!(
            "  repeat_interval: {}",
            format_duration(a.repeat_interval)
        ));
    }
    if let Some(url) = &a.external_url {
        lines.push(format!("  external_url: {}", quoted(url)));
    }
    if !lines.is_empty() {
        out.push_str("alerting:\n");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn flow_yaml(
    out: &mut String,
    f: &LearnedFlow,
    window: Duration,
    timing: (Duration, Duration, u64),
) {
    let p95 = f
        .p95
        .map_or("beyond the last histogram boundary".into(), ms);
    let _ = writeln!(
        out,
        "  # Learned from {} requests over {}: p95 {p95}, {} errors ({}), {} timeouts ({}).",
        f.requests,
        about(window),
        f.errors,
        rate(f.errors, f.requests),
        f.timeouts,
        rate(f.timeouts, f.requests),
    );
    let failing = f.errors as f64 / f.requests.max(1) as f64;
    if failing >= thresholds::RATE_CAP / 2.0 {
        let _ = writeln!(
            out,
            "  # {} of its requests failed while learning: fix it, then lower error_rate.",
            rate(f.errors, f.requests)
        );
    }
    let _ = writeln!(out, "  - name: {}", f.name);
    out.push_str("    match:\n");
    for pattern in &f.patterns {
        let _ = writeln!(out, "      - {}", quoted(pattern));
    }
    out.push_str("    owner: TODO\n");
    let _ = writeln!(
        out,
        "    timeout: {}  # twice the slowest request seen, at least {}, at most the global timeout",
        format_duration(f.timeout),
        format_duration(thresholds::MIN_TIMEOUT),
    );
    out.push_str("    alerts:\n");
    match (f.latency, f.p95) {
        (Some(t), Some(p)) => {
            let why = format!(
                "observed p95 {} x {}, rounded up",
                ms(p),
                thresholds::P95_MARGIN
            );
            rule(out, &format!("p95 > {}", format_duration(t)), &why, timing);
        }
        _ => out
            .push_str("      # no latency alert: the p95 was beyond the last histogram boundary\n"),
    }
    let error_why = format!("observed {}", rate(f.errors, f.requests));
    rule(
        out,
        &format!("error_rate > {}", format_percent(f.error_rate)),
        &error_why,
        timing,
    );
    let timeout_why = format!("observed {}", rate(f.timeouts, f.requests));
    rule(
        out,
        &format!("timeout_rate > {}", format_percent(f.timeout_rate)),
        &timeout_why,
        timing,
    );
}

/// A flow of the running config, written back with every rule key explicit.
fn configured_flow(out: &mut String, f: &FlowConfig) {
    let _ = writeln!(out, "  - name: {}", f.name);
    out.push_str("    match:\n");
    for pattern in &f.patterns {
        let _ = writeln!(out, "      - {}", quoted(&pattern_text(pattern)));
    }
    for (key, value) in [("owner", &f.owner), ("runbook", &f.runbook)] {
        if let Some(v) = value {
            let _ = writeln!(out, "    {key}: {}", quoted(v));
        }
    }
    if let Some(t) = f.timeout {
        let _ = writeln!(out, "    timeout: {}", format_duration(t));
    }
    if !f.alerts.is_empty() {
        out.push_str("    alerts:\n");
    }
    for r in &f.alerts {
        let _ = writeln!(out, "      - when: {}", quoted(&r.when.to_string()));
        let _ = writeln!(out, "        over: {}", format_duration(r.over));
        let _ = writeln!(out, "        for: {}", format_duration(r.for_));
        let _ = writeln!(out, "        min_requests: {}", r.min_requests);
        let _ = writeln!(
            out,
            "        keep_firing_for: {}",
            format_duration(r.keep_firing_for)
        );
        let _ = writeln!(out, "        severity: {}", r.severity.as_str());
        let _ = writeln!(out, "        name: {}", r.name);
    }
    if let Some(slo) = &f.slo {
        let latency = slo
            .latency
            .map(|l| format!(", latency: {}", format_duration(l)));
        let objective = format_percent(slo.objective);
        let _ = writeln!(
            out,
            "    slo: {{ objective: {objective}{} }}",
            latency.unwrap_or_default()
        );
    }
}

/// One rule; `over` and `for` only when they differ from the rule defaults (5m, 1m).
fn rule(out: &mut String, when: &str, why: &str, (over, for_, min): (Duration, Duration, u64)) {
    let _ = writeln!(out, "      - when: {}  # {why}", quoted(when));
    if over != Duration::from_secs(300) {
        let _ = writeln!(out, "        over: {}", format_duration(over));
    }
    if for_ != Duration::from_secs(60) {
        let _ = writeln!(out, "        for: {}", format_duration(for_));
    }
    let _ = writeln!(out, "        min_requests: {min}");
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn ms(seconds: f64) -> String {
    let ms = seconds * 1e3;
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{}ms", ms.round())
    }
}

fn rate(n: u64, of: u64) -> String {
    format_percent((n as f64 / of.max(1) as f64 * 1000.0).round() / 1000.0)
}

/// A window in whole minutes (seconds under two minutes).
fn about(window: Duration) -> String {
    match window.as_secs() {
        s if s < 120 => format!("{s}s"),
        s => format!("{}m", s / 60),
    }
}

//! The proxy's protection metrics, kept in each flow's state (atomics, no lock on the request path) and rendered on `/metrics`: `redline_retries_total`, `redline_circuit_state`, `redline_fallbacks_total`.

use std::fmt::Write;

use crate::metrics::{Format, header, write_labels};
use crate::resilience::{FallbackKind, RetryResult};
use crate::state::Shared;

/// Both families, in `format`.
pub fn render(shared: &Shared, format: Format, out: &mut String) {
    render_retries(shared, format, out);
    render_circuits(shared, format, out);
    render_fallbacks(shared, format, out);
}

/// `redline_fallbacks_total{flow,kind}` for every flow with a fallback or that served one.
fn render_fallbacks(shared: &Shared, format: Format, out: &mut String) {
    const NAME: &str = "redline_fallbacks_total";
    header(
        out,
        format,
        NAME,
        "counter",
        "Failed requests answered with a fallback instead of the failure (stale: the last good response; static: the flow's static response). The failure still counts as the flow's error.",
        "",
    );
    let runtime = shared.runtime.load();
    let mut flows = shared.all_flows();
    flows.sort_by(|a, b| a.name.cmp(&b.name));
    for flow in flows {
        let counts = FallbackKind::ALL.map(|k| flow.resilience.fallbacks(k));
        let configured = runtime
            .flows
            .iter()
            .any(|f| f.fallback.is_some() && f.state.name == flow.name);
        if counts.iter().all(|&n| n == 0) && !configured {
            continue;
        }
        for (kind, n) in FallbackKind::ALL.iter().zip(counts) {
            out.push_str(NAME);
            write_labels(out, [("flow", &*flow.name), ("kind", kind.label())]);
            let _ = writeln!(out, " {n}");
        }
    }
}

/// `redline_retries_total{flow,result}` for every flow that retries or has retried
/// (counters live in each flow's state, so the request path never takes a lock).
fn render_retries(shared: &Shared, format: Format, out: &mut String) {
    const NAME: &str = "redline_retries_total";
    header(
        out,
        format,
        NAME,
        "counter",
        "Retry decisions on failed tries: retried, budget_exhausted (the flow's retry budget was spent), attempts_exhausted (the last attempt failed too).",
        "",
    );
    let runtime = shared.runtime.load();
    let retrying = |name: &str| {
        runtime
            .flows
            .iter()
            .chain(std::iter::once(&runtime.unmatched))
            .any(|f| f.retry.is_some() && &*f.state.name == name)
    };
    let mut flows = shared.all_flows();
    flows.sort_by(|a, b| a.name.cmp(&b.name));
    for flow in flows {
        let counts = RetryResult::ALL.map(|r| flow.resilience.retries(r));
        if counts.iter().all(|&n| n == 0) && !retrying(&flow.name) {
            continue;
        }
        for (result, n) in RetryResult::ALL.iter().zip(counts) {
            out.push_str(NAME);
            write_labels(out, [("flow", &*flow.name), ("result", result.label())]);
            let _ = writeln!(out, " {n}");
        }
    }
}

/// `redline_circuit_state{flow}` for every flow with a circuit breaker: 0 closed, 1 open,
/// 2 half-open.
fn render_circuits(shared: &Shared, format: Format, out: &mut String) {
    const NAME: &str = "redline_circuit_state";
    header(
        out,
        format,
        NAME,
        "gauge",
        "Circuit breaker state of a flow: 0 closed, 1 open (requests refused or served a fallback), 2 half-open (one probe with the app).",
        "",
    );
    let runtime = shared.runtime.load();
    for flow in runtime.flows.iter().filter(|f| f.breaker.is_some()) {
        out.push_str(NAME);
        write_labels(out, [("flow", &*flow.state.name)]);
        let state = flow.state.resilience.breaker.state();
        let _ = writeln!(out, " {}", state as u8);
    }
}

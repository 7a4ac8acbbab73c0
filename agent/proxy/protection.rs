//! The proxy's protection metrics, kept in each flow's state (atomics, no lock on the request path), as families for `/metrics` and OTLP: `redline_retries_total`, `redline_circuit_state`, `redline_fallbacks_total`, `redline_concurrency_limit`.

use std::sync::Arc;

use crate::metrics::{Family, Kind, Series, Source, describe};
use crate::resilience::{FallbackKind, RetryResult};
use crate::state::Shared;

const RETRIES: Family = describe(
    "redline_retries_total",
    "redline.retries",
    "{decision}",
    Kind::Counter,
    "Retry decisions on failed tries: retried, budget_exhausted (the flow's retry budget was spent), attempts_exhausted (the last attempt failed too).",
);

const CIRCUITS: Family = describe(
    "redline_circuit_state",
    "redline.circuit.state",
    "",
    Kind::Gauge,
    "Circuit breaker state of a flow: 0 closed, 1 open (requests refused or served a fallback), 2 half-open (one probe with the app).",
);

const FALLBACKS: Family = describe(
    "redline_fallbacks_total",
    "redline.fallbacks",
    "{response}",
    Kind::Counter,
    "Failed requests answered with a fallback instead of the failure (stale: the last good response; static: the flow's static response). The failure still counts as the flow's error.",
);

const LIMITS: Family = describe(
    "redline_concurrency_limit",
    "redline.concurrency.limit",
    "{request}",
    Kind::Gauge,
    "Adaptive concurrency limit of a flow: the most of its requests let in flight at once now; more get 503 overloaded.",
);

/// The protection families of a running Redline (handed to the OTLP exporter by `app`).
#[derive(Debug)]
pub struct Protection(Arc<Shared>);

impl Protection {
    /// A view of `shared`'s flows.
    pub fn new(shared: Arc<Shared>) -> Protection {
        Protection(shared)
    }
}

impl Source for Protection {
    fn families(&self) -> Vec<Family> {
        families(&self.0)
    }
}

/// The four families, from every flow's counters.
pub fn families(shared: &Shared) -> Vec<Family> {
    vec![
        retries(shared),
        circuits(shared),
        fallbacks(shared),
        limits(shared),
    ]
}

fn series(flow: &str, key: &'static str, label: &str, value: f64) -> Series {
    Series {
        labels: vec![("flow", flow.to_string()), (key, label.to_string())],
        value,
    }
}

/// `redline_retries_total{flow,result}` for every flow that retries or has retried.
fn retries(shared: &Shared) -> Family {
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
    let mut family = RETRIES;
    for flow in flows {
        let counts = RetryResult::ALL.map(|r| flow.resilience.retries(r));
        if counts.iter().all(|&n| n == 0) && !retrying(&flow.name) {
            continue;
        }
        for (result, n) in RetryResult::ALL.iter().zip(counts) {
            let s = series(&flow.name, "result", result.label(), n as f64);
            family.series.push(s);
        }
    }
    family
}

/// `redline_circuit_state{flow}` for every flow with a circuit breaker.
fn circuits(shared: &Shared) -> Family {
    let runtime = shared.runtime.load();
    let mut family = CIRCUITS;
    for flow in runtime.flows.iter().filter(|f| f.breaker.is_some()) {
        let state = flow.state.resilience.breaker.state();
        family.series.push(Series {
            labels: vec![("flow", flow.state.name.to_string())],
            value: f64::from(state as u8),
        });
    }
    family
}

/// `redline_fallbacks_total{flow,kind}` for every flow with a fallback or that served one.
fn fallbacks(shared: &Shared) -> Family {
    let runtime = shared.runtime.load();
    let mut flows = shared.all_flows();
    flows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut family = FALLBACKS;
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
            family
                .series
                .push(series(&flow.name, "kind", kind.label(), n as f64));
        }
    }
    family
}

/// `redline_concurrency_limit{flow}` for every flow with an adaptive limit.
fn limits(shared: &Shared) -> Family {
    let runtime = shared.runtime.load();
    let mut family = LIMITS;
    let all = runtime
        .flows
        .iter()
        .chain(std::iter::once(&runtime.unmatched));
    for flow in all {
        let Some(policy) = &flow.adaptive else {
            continue;
        };
        let limit = flow.state.resilience.concurrency.limit(policy);
        family.series.push(Series {
            labels: vec![("flow", flow.state.name.to_string())],
            value: f64::from(limit),
        });
    }
    family
}

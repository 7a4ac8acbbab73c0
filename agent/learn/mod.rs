//! Learned config: flows and alert thresholds proposed from the traffic a running Redline has measured (`redline init`, `GET /api/proposal`).
//!
//! The input is the `unmatched` flow's series of `http_server_request_duration_seconds`:
//! per (method, route template) request, error and timeout counts and latency buckets,
//! cumulative since Redline started. Flows already configured are kept as they are, so the
//! proposal can replace the running config file. [`group`] turns templates into flows, [`thresholds`]
//! turns measurements into alert thresholds, [`render`] writes the commented YAML.

pub mod group;
pub mod render;
pub mod thresholds;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Config, ConfigError, default_alerts};
use crate::metrics::ErrorType;
use crate::state::{Shared, UNMATCHED};

/// A group needs this many requests to become a flow: fewer say nothing about its p95.
pub const MIN_FLOW_REQUESTS: u64 = 10;

/// At most this many flows are proposed (the busiest), so the file stays reviewable.
pub const MAX_FLOWS: usize = 20;

/// What Redline measured for one (method, route template) of unmatched traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteStat {
    /// Method label (`GET`, …, `_OTHER`).
    pub method: String,
    /// Route template, e.g. `/api/orders/{id}`.
    pub route: String,
    /// Requests seen.
    pub requests: u64,
    /// Of which errors (5xx and Redline's own failures, as the error rate counts them).
    pub errors: u64,
    /// Of which timeouts.
    pub timeouts: u64,
    /// Latency histogram: per-bucket counts, one more than the bounds (+Inf).
    pub counts: Vec<u64>,
}

/// Everything a proposal is made from.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Per route template.
    pub routes: Vec<RouteStat>,
    /// Histogram boundaries in seconds.
    pub bounds: Vec<f64>,
    /// How long the counts were collected over (Redline's uptime).
    pub window: Duration,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// The running configuration: listeners, upstream, timeout and alert timing are kept.
    pub config: Arc<Config>,
}

/// One proposed flow with what it was learned from.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedFlow {
    /// Flow name.
    pub name: String,
    /// `METHOD /route` patterns.
    pub patterns: Vec<String>,
    /// Requests, errors and timeouts observed.
    pub requests: u64,
    /// See `requests`.
    pub errors: u64,
    /// See `requests`.
    pub timeouts: u64,
    /// Observed p95 in seconds (`None`: beyond the last histogram boundary).
    pub p95: Option<f64>,
    /// `p95 >` threshold (`None`: no latency alert learned).
    pub latency: Option<Duration>,
    /// `error_rate >` threshold.
    pub error_rate: f64,
    /// `timeout_rate >` threshold.
    pub timeout_rate: f64,
    /// Upstream timeout.
    pub timeout: Duration,
}

/// The learned config and how much of the traffic it covers.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// Flows, busiest first.
    pub flows: Vec<LearnedFlow>,
    /// Requests observed in all.
    pub total: u64,
    /// Requests of routes the flows match.
    pub covered: u64,
    /// Routes left out (not busy, or not expressible as a pattern), busiest first.
    pub uncovered: Vec<RouteStat>,
    /// The commented YAML.
    pub yaml: String,
}

/// Why no proposal could be made.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The generated YAML did not parse back: a bug, reported rather than served.
    #[error("the learned config is invalid (please report this): {0}")]
    Invalid(#[from] ConfigError),
}

/// Collect the unmatched flow's series from the registry (routes a configured flow now
/// matches are left out: they were learned already).
pub fn observe(shared: &Shared) -> Observed {
    let runtime = shared.runtime.load();
    let mut by_route: BTreeMap<(String, String), RouteStat> = BTreeMap::new();
    for series in shared.registry.routes() {
        if &*series.flow != UNMATCHED {
            continue;
        }
        for (method, _status, error, histogram) in series.series() {
            let matched = http::Method::from_bytes(method.as_bytes())
                .ok()
                .and_then(|m| runtime.router.find(&m, &series.route));
            if matched.is_some() {
                continue;
            }
            let key = (method.to_string(), series.route.to_string());
            let stat = by_route.entry(key).or_insert_with(|| RouteStat {
                method: method.to_string(),
                route: series.route.to_string(),
                ..RouteStat::default()
            });
            add(stat, error, &histogram.bucket_counts());
        }
    }
    Observed {
        routes: by_route.into_values().collect(),
        bounds: shared.registry.bounds().to_vec(),
        window: shared.started.elapsed(),
        at_ms: shared.clock.now_ms(),
        config: runtime.config.clone(),
    }
}

fn add(stat: &mut RouteStat, error: ErrorType, counts: &[u64]) {
    let n: u64 = counts.iter().sum();
    stat.requests += n;
    if error.is_error() {
        stat.errors += n;
    }
    if error == ErrorType::Timeout {
        stat.timeouts += n;
    }
    stat.counts.resize(counts.len().max(stat.counts.len()), 0);
    for (sum, c) in stat.counts.iter_mut().zip(counts) {
        *sum += c;
    }
}

/// Learn flows from `observed`; the YAML is parsed back before it is returned.
pub fn propose(observed: &Observed) -> Result<Proposal, LearnError> {
    let total = observed.routes.iter().map(|r| r.requests).sum();
    let expressible = observed.routes.iter().filter_map(|r| {
        let pattern = pattern_of(&r.method, &r.route)?;
        Some((r.method.clone(), r.route.clone(), (pattern, r)))
    });
    let configured: Vec<String> = observed
        .config
        .flows
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let mut groups = group::group(expressible.collect(), &configured);
    groups.retain(|g| requests(&g.members) >= MIN_FLOW_REQUESTS);
    groups.sort_by_key(|g| std::cmp::Reverse(requests(&g.members)));
    groups.truncate(MAX_FLOWS);
    let flows: Vec<LearnedFlow> = groups.iter().map(|g| learn(g, observed)).collect();
    let in_flows: std::collections::HashSet<(&str, &str)> = groups
        .iter()
        .flat_map(|g| {
            g.members
                .iter()
                .map(|(_, r)| (r.method.as_str(), r.route.as_str()))
        })
        .collect();
    let mut uncovered: Vec<RouteStat> = observed
        .routes
        .iter()
        .filter(|r| !in_flows.contains(&(r.method.as_str(), r.route.as_str())))
        .cloned()
        .collect();
    uncovered.sort_by_key(|r| std::cmp::Reverse(r.requests));
    let covered = total - uncovered.iter().map(|r| r.requests).sum::<u64>();
    let mut proposal = Proposal {
        flows,
        total,
        covered,
        uncovered,
        yaml: String::new(),
    };
    proposal.yaml = render::yaml(&proposal, observed);
    Config::parse(&proposal.yaml, "learned config")?;
    Ok(proposal)
}

fn requests(members: &[(String, &RouteStat)]) -> u64 {
    members.iter().map(|(_, r)| r.requests).sum()
}

/// `METHOD /route` for a route template, placeholders renamed apart (`{id}`, `{id2}`);
/// `None` for what a pattern cannot say (the `{other}` overflow, unusual methods).
pub fn pattern_of(method: &str, route: &str) -> Option<String> {
    group::Class::of(method)?;
    let mut params = 0;
    let mut path = String::new();
    for segment in route.trim_start_matches('/').split('/') {
        path.push('/');
        match segment {
            "{id}" => {
                params += 1;
                path.push_str(&if params == 1 {
                    "{id}".into()
                } else {
                    format!("{{id{params}}}")
                });
            }
            s if s.contains(['{', '}']) => return None,
            s => path.push_str(s),
        }
    }
    let text = format!("{method} {path}");
    crate::flows::Pattern::parse(&text).ok().map(|_| text)
}

/// Thresholds for one group.
fn learn(g: &group::Group<(String, &RouteStat)>, observed: &Observed) -> LearnedFlow {
    let bounds = &observed.bounds;
    let mut counts = vec![0u64; bounds.len() + 1];
    let (mut requests, mut errors, mut timeouts) = (0, 0, 0);
    for (_, r) in &g.members {
        requests += r.requests;
        errors += r.errors;
        timeouts += r.timeouts;
        for (sum, c) in counts.iter_mut().zip(&r.counts) {
            *sum += c;
        }
    }
    let p95 = thresholds::quantile(bounds, &counts, 0.95);
    let latency = p95.map(|p| thresholds::latency_threshold(p, bounds));
    let rate = |n: u64| n as f64 / requests.max(1) as f64;
    LearnedFlow {
        name: g.name.clone(),
        patterns: g.members.iter().map(|(p, _)| p.clone()).collect(),
        requests,
        errors,
        timeouts,
        p95,
        latency,
        error_rate: thresholds::rate_threshold(rate(errors)),
        timeout_rate: thresholds::rate_threshold(rate(timeouts)),
        timeout: thresholds::flow_timeout(bounds, &counts, latency, observed.config.timeout),
    }
}

/// Alert timing of learned rules: the running default alerts' (`over`, `for`,
/// `min_requests`), so whoever tuned those gets the same here.
pub fn rule_timing(config: &Config) -> (Duration, Duration, u64) {
    let first = config
        .alerting
        .default_alerts
        .first()
        .cloned()
        .or_else(|| default_alerts().into_iter().next());
    first.map_or(
        (Duration::from_secs(300), Duration::from_secs(60), 20),
        |r| (r.over, r.for_, r.min_requests),
    )
}

/// `GET /api/proposal`: the YAML and its coverage.
pub fn proposal_json(shared: &Shared) -> Result<Value, LearnError> {
    let observed = observe(shared);
    let p = propose(&observed)?;
    let flows: Vec<Value> = p
        .flows
        .iter()
        .map(|f| {
            json!({
                "name": f.name, "match": f.patterns, "requests": f.requests,
                "errors": f.errors, "timeouts": f.timeouts,
                "p95_ms": f.p95.map(|s| (s * 1e6).round() / 1e3),
            })
        })
        .collect();
    let uncovered: Vec<Value> = p
        .uncovered
        .iter()
        .map(|r| json!({ "method": r.method, "route": r.route, "requests": r.requests }))
        .collect();
    Ok(json!({
        "yaml": p.yaml,
        "requests": p.total,
        "covered": p.covered,
        "coverage": if p.total == 0 { 0.0 } else { p.covered as f64 / p.total as f64 },
        "window_s": observed.window.as_secs(),
        "flows": flows,
        "uncovered": uncovered,
    }))
}

#[cfg(test)]
mod tests;

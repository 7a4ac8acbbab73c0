//! The workload: which requests each flow sends, each flow's share of the load, and the
//! thresholds that say when a flow is broken.
//!
//! A workload comes from a versioned JSON file (`--workload`) or from a config file's
//! `flows[].baseline` (`--config` alone). Thresholds come from the flow's own alert rules in
//! the config, plus any the workload lists, so the baseline judges a flow the way Redline's
//! alerting would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::BaselineError;
use crate::config::{Config, FlowConfig, When, parse_positive_duration, validate_flow_name};

/// The only workload format version this build reads and writes.
pub const WORKLOAD_VERSION: u32 = 1;

/// Request timeout of a flow when neither the workload nor a config sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The workload file as written (JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// Format version; must be [`WORKLOAD_VERSION`].
    pub version: u32,
    /// Free text for people, e.g. what was removed from recorded requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A Redline config whose flows' alert rules and timeouts apply; relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// The flows to load, at least one.
    pub flows: Vec<FlowLoad>,
}

/// One flow of a workload file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLoad {
    /// The flow name (as in the config).
    pub name: String,
    /// Share of the total offered rate, relative to the other flows (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Request timeout, e.g. `5s`; else the config flow's timeout, else 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Extra thresholds in alert-rule syntax, e.g. `p95 > 300ms`, `error_rate > 1%`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
    /// Request shapes, at least one.
    pub requests: Vec<RequestShape>,
}

/// One request shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestShape {
    /// HTTP method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// Path and query, e.g. `/api/orders/42?full=1`.
    pub path: String,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Body text (UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Relative frequency within the flow (default 1).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

fn get() -> String {
    "GET".into()
}

/// A threshold a flow must hold: an alert condition and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The condition; `rps <` rules are not capacity limits and never become thresholds.
    pub when: When,
    /// `config` or `workload`.
    pub origin: &'static str,
}

/// A flow's SLO as a capacity limit: broken when the share of bad requests (errors, and
/// requests slower than `latency` if set) is above the error budget `1 - objective`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloLimit {
    /// Good-request target, e.g. 0.995.
    pub objective: f64,
    /// Requests slower than this are bad too.
    pub latency: Option<Duration>,
}

impl std::fmt::Display for SloLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let objective = crate::config::format_percent(self.objective);
        match self.latency {
            Some(l) => write!(
                f,
                "slo {objective} within {}",
                crate::config::format_duration(l)
            ),
            None => write!(f, "slo {objective} without errors"),
        }
    }
}

/// A request ready to send many times.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Headers as given.
    pub headers: http::HeaderMap,
    /// Body bytes (empty for none).
    pub body: Bytes,
}

/// One flow, resolved.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Flow name.
    pub name: String,
    /// Fraction of the total rate, in (0, 1]; all flows sum to 1.
    pub share: f64,
    /// Request timeout.
    pub timeout: Duration,
    /// What must hold at a step for the flow to be fine.
    pub thresholds: Vec<Threshold>,
    /// The config flow's SLO, judged like a threshold.
    pub slo: Option<SloLimit>,
    requests: Vec<PreparedRequest>,
    /// Cumulative request weights, for picking by one uniform draw.
    cumulative: Vec<f64>,
}

/// The resolved workload the generator runs.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Flows in file order.
    pub flows: Vec<Flow>,
    /// Where it came from, for the report.
    pub source: String,
}

impl Workload {
    /// Read a workload file; `config` (the `--config` flag) overrides the file's `config`.
    pub fn from_file(path: &Path, config: Option<&Config>) -> Result<Workload, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: WorkloadFile =
            serde_json::from_str(&text).map_err(|source| BaselineError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if file.version != WORKLOAD_VERSION {
            return Err(invalid(format!(
                "{}: workload version {} is not supported; this build reads version {WORKLOAD_VERSION}",
                path.display(),
                file.version
            )));
        }
        let loaded;
        let config = match (config, &file.config) {
            (Some(c), _) => Some(c),
            (None, Some(rel)) => {
                let full = path.parent().unwrap_or(Path::new(".")).join(rel);
                loaded = Config::load(&full)?;
                Some(&loaded)
            }
            (None, None) => None,
        };
        let flows = file
            .flows
            .iter()
            .map(|f| resolve_flow(f, config))
            .collect::<Result<Vec<_>, _>>()?;
        Workload::new(flows, path.display().to_string())
    }

    /// The workload of a config file's `flows[].baseline` sections.
    pub fn from_config(config: &Config) -> Result<Workload, BaselineError> {
        let base = config
            .source
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        let mut flows = Vec::new();
        for (index, flow) in config.flows.iter().enumerate() {
            let Some(baseline) = &flow.baseline else {
                continue;
            };
            let requests = baseline
                .requests
                .iter()
                .map(|r| config_request(r, base))
                .collect::<Result<Vec<_>, _>>()?;
            let load = FlowLoad {
                name: flow.name.clone(),
                weight: baseline.weight,
                timeout: None,
                thresholds: Vec::new(),
                requests,
            };
            let mut resolved = resolve_flow(&load, Some(config))?;
            resolved.timeout = config.flow_timeout(index);
            flows.push(resolved);
        }
        let origin = config
            .source
            .as_ref()
            .map_or_else(|| "config".to_string(), |p| p.display().to_string());
        if flows.is_empty() {
            return Err(invalid(format!(
                "{origin}: no flow has a `baseline:` section; add `baseline: {{ requests: [...] }}` to a flow or pass --workload"
            )));
        }
        Workload::new(flows, origin)
    }

    fn new(mut flows: Vec<Flow>, source: String) -> Result<Workload, BaselineError> {
        if flows.is_empty() {
            return Err(invalid(format!("{source}: the workload has no flows")));
        }
        let total: f64 = flows.iter().map(|f| f.share).sum();
        for flow in &mut flows {
            flow.share /= total;
        }
        Ok(Workload { flows, source })
    }

    /// One of flow `index`'s requests, by a uniform draw in [0, 1) over their weights.
    pub fn request(&self, index: usize, draw: f64) -> &PreparedRequest {
        let flow = &self.flows[index];
        &flow.requests[position(&flow.cumulative, draw)]
    }

    /// The position among flow `index`'s requests of the one `draw` picks (see [`Workload::request`]).
    pub fn pick(&self, index: usize, draw: f64) -> usize {
        position(&self.flows[index].cumulative, draw)
    }

    /// Flow `index`'s request at `position` (from [`Workload::pick`]).
    pub fn request_at(&self, index: usize, position: usize) -> &PreparedRequest {
        &self.flows[index].requests[position]
    }

    /// The longest request timeout of any flow (bounds how long a step drains).
    pub fn max_timeout(&self) -> Duration {
        self.flows
            .iter()
            .map(|f| f.timeout)
            .max()
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// The first index whose cumulative weight is above `draw` (the last one for rounding).
fn position(cumulative: &[f64], draw: f64) -> usize {
    let total = cumulative.last().copied().unwrap_or(1.0);
    let x = draw * total;
    cumulative
        .iter()
        .position(|&c| x < c)
        .unwrap_or(cumulative.len().saturating_sub(1))
}

fn invalid(message: String) -> BaselineError {
    BaselineError::Workload(message)
}

fn config_request(
    r: &crate::config::BaselineRequest,
    base: &Path,
) -> Result<RequestShape, BaselineError> {
    let body = match &r.body_file {
        Some(file) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| BaselineError::Io { path, source })?;
            Some(text)
        }
        None => None,
    };
    Ok(RequestShape {
        method: r.method.clone(),
        path: r.path.clone(),
        headers: r.headers.clone(),
        body,
        weight: r.weight,
    })
}

fn resolve_flow(load: &FlowLoad, config: Option<&Config>) -> Result<Flow, BaselineError> {
    let name = &load.name;
    validate_flow_name(name).map_err(invalid)?;
    if !(load.weight.is_finite() && load.weight > 0.0) {
        return Err(invalid(format!("flow {name}: weight must be above 0")));
    }
    if load.requests.is_empty() {
        return Err(invalid(format!("flow {name}: no requests")));
    }
    let configured = config.and_then(|c| c.flows.iter().position(|f| f.name == *name));
    let slo = configured
        .and_then(|i| config?.flows[i].slo)
        .map(|s| SloLimit {
            objective: s.objective,
            latency: s.latency,
        });
    let mut thresholds = configured
        .map(|i| config_thresholds(&config.expect("config of a configured flow").flows[i]))
        .unwrap_or_default();
    for text in &load.thresholds {
        let when: When = text
            .parse()
            .map_err(|e| invalid(format!("flow {name}: {e}")))?;
        push_threshold(&mut thresholds, when, "workload");
    }
    let timeout = match (&load.timeout, configured) {
        (Some(t), _) => {
            parse_positive_duration(t).map_err(|e| invalid(format!("flow {name}: timeout: {e}")))?
        }
        (None, Some(i)) => config.map_or(DEFAULT_TIMEOUT, |c| c.flow_timeout(i)),
        (None, None) => DEFAULT_TIMEOUT,
    };
    let requests = load
        .requests
        .iter()
        .map(|r| prepare(name, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut acc = 0.0;
    let cumulative = load
        .requests
        .iter()
        .map(|r| {
            acc += r.weight;
            acc
        })
        .collect();
    Ok(Flow {
        name: name.clone(),
        share: load.weight,
        timeout,
        thresholds,
        slo,
        requests,
        cumulative,
    })
}

/// The flow's alert rules that describe capacity: latency, error and timeout rates.
fn config_thresholds(flow: &FlowConfig) -> Vec<Threshold> {
    let mut out = Vec::new();
    for rule in &flow.alerts {
        push_threshold(&mut out, rule.when, "config");
    }
    out
}

fn push_threshold(out: &mut Vec<Threshold>, when: When, origin: &'static str) {
    // `rps < N` says traffic stopped; under generated load it can never mean "broken".
    if matches!(when, When::RpsBelow(_)) || out.iter().any(|t| t.when == when) {
        return;
    }
    out.push(Threshold { when, origin });
}

fn prepare(flow: &str, shape: &RequestShape) -> Result<PreparedRequest, BaselineError> {
    let bad = |what: String| invalid(format!("flow {flow}: {what}"));
    let method = http::Method::from_bytes(shape.method.as_bytes())
        .map_err(|_| bad(format!("invalid method {:?}", shape.method)))?;
    if !shape.path.starts_with('/') || shape.path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(bad(format!(
            "invalid path {:?}; expected e.g. /api/orders/42",
            shape.path
        )));
    }
    if !(shape.weight.is_finite() && shape.weight > 0.0) {
        return Err(bad(format!(
            "request {}: weight must be above 0",
            shape.path
        )));
    }
    let mut headers = http::HeaderMap::new();
    for (k, v) in &shape.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad(format!("invalid header name {k:?}")))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| bad(format!("invalid value of header {k}")))?;
        headers.append(name, value);
    }
    Ok(PreparedRequest {
        method,
        path: shape.path.clone(),
        headers,
        body: shape.body.clone().map(Bytes::from).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        std::fs::write(&path, json).unwrap();
        (dir, path)
    }

    #[test]
    fn shares_are_normalised_and_picks_follow_weights() {
        let (_d, path) = file(
            r#"{"version":1,"flows":[
              {"name":"a","weight":3,"thresholds":["p95 > 100ms","rps < 1"],"requests":[{"path":"/a"}]},
              {"name":"b","requests":[{"path":"/b1"},{"method":"POST","path":"/b2","weight":3,"body":"x"}]}]}"#,
        );
        let w = Workload::from_file(&path, None).unwrap();
        assert_eq!(w.flows[0].share, 0.75);
        assert_eq!(w.flows[0].thresholds.len(), 1, "rps < is not a threshold");
        assert_eq!(w.flows[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(w.request(1, 0.9).path, "/b2");
        assert_eq!(w.request(1, 0.1).path, "/b1");
        assert_eq!(w.request(0, 0.99).path, "/a");
    }

    #[test]
    fn config_rules_and_timeouts_apply() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("r.yaml"),
            "flows:\n  - name: a\n    match: /a\n    timeout: 2s\n    slo: { objective: 99%, latency: 300ms }\n    alerts:\n      - when: \"p99 > 1s\"\n      - when: \"error_rate > 1%\"\n",
        )
        .unwrap();
        let path = dir.path().join("w.json");
        std::fs::write(
            &path,
            r#"{"version":1,"config":"r.yaml","flows":[{"name":"a","thresholds":["error_rate > 1%"],"requests":[{"path":"/a"}]}]}"#,
        )
        .unwrap();
        let w = Workload::from_file(&path, None).unwrap();
        let texts: Vec<String> = w.flows[0]
            .thresholds
            .iter()
            .map(|t| t.when.to_string())
            .collect();
        assert_eq!(texts, ["p99 > 1s", "error_rate > 1%"]);
        let slo = w.flows[0].slo.expect("slo from the config");
        assert_eq!(slo.to_string(), "slo 99% within 300ms");
        assert_eq!(w.flows[0].timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_workloads_say_what_is_wrong() {
        for (json, needle) in [
            (r#"{"version":2,"flows":[]}"#, "version 2"),
            (r#"{"version":1,"flows":[]}"#, "no flows"),
            (
                r#"{"version":1,"flows":[{"name":"a","requests":[{"path":"a"}]}]}"#,
                "invalid path",
            ),
            (
                r#"{"version":1,"flows":[{"name":"a","thresholds":["p95 < 1s"],"requests":[{"path":"/a"}]}]}"#,
                "flow a",
            ),
            (r#"{"version":1,"flows":[{"name":"a"}]}"#, "requests"),
        ] {
            let (_d, path) = file(json);
            let err = Workload::from_file(&path, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}

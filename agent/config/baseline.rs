//! `flows[].baseline`: the requests `redline baseline run --config` sends for a flow.
//!
//! Kept apart from `flow.rs` because it describes load to generate, not traffic to observe;
//! the proxy never reads it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::de::Parse;

/// `baseline:` (top level): what the proxy does for `redline baseline`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { record: { enabled: true } }"
)]
pub struct BaselineConfig {
    /// Keeping request shapes for `redline baseline record`.
    pub record: RecordConfig,
}

/// `baseline.record:` a bounded sample of request shapes per flow (off by default).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { enabled: true, per_flow: 64 }"
)]
pub struct RecordConfig {
    /// Keep shapes at all (default false). Read at start-up only.
    pub enabled: bool,
    /// Shapes kept per flow, 1 to 4096 (default 64).
    #[serde(deserialize_with = "per_flow")]
    pub per_flow: usize,
    /// Request headers kept, lowercase. `authorization`, `cookie`, `proxy-authorization`
    /// and every `redact.headers` name are never kept, whatever this says.
    #[serde(deserialize_with = "header_list")]
    pub headers: Vec<String>,
    /// Largest request body kept with a shape, in bytes, 0 to 65536 (default 4096; 0 keeps
    /// none). Only bodies of idempotent methods (never POST or PATCH), only JSON and form
    /// bodies, with the values of `redact.query_params` names replaced by `REDACTED`.
    #[serde(deserialize_with = "body_limit")]
    pub body_limit: usize,
}

impl Default for RecordConfig {
    fn default() -> RecordConfig {
        RecordConfig {
            enabled: false,
            per_flow: 64,
            headers: ["accept", "accept-language", "content-type"]
                .map(String::from)
                .to_vec(),
            body_limit: 4096,
        }
    }
}

/// Headers a recording never keeps, on top of `redact.headers`.
pub const NEVER_RECORDED: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "set-cookie",
];

fn per_flow<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if (1..=4096).contains(&n) {
        return Ok(n);
    }
    Err(serde::de::Error::custom(format!(
        "per_flow {n} must be between 1 and 4096"
    )))
}

/// Bodies over 64 KiB are streamed, never held whole, by the proxy.
const MAX_BODY_LIMIT: usize = 65_536;

fn body_limit<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n <= MAX_BODY_LIMIT {
        return Ok(n);
    }
    Err(serde::de::Error::custom(format!(
        "body_limit {n} must be between 0 and {MAX_BODY_LIMIT} bytes"
    )))
}

fn header_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Parse::new("a header name such as accept", |s| {
        http::HeaderName::from_bytes(s.trim().as_bytes())
            .map(|h| h.as_str().to_string())
            .map_err(|_| format!("invalid header name {s:?}"))
    })
    .list(d)
}

/// `flows[].baseline`: the flow's share of the load and the requests that make it up.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping such as { requests: [{ method: GET, path: /api/orders/42 }] }"
)]
pub struct FlowBaseline {
    /// The flow's share of the total offered rate, relative to the other flows (default 1).
    #[serde(default = "one", deserialize_with = "weight")]
    pub weight: f64,
    /// The requests, picked at random in proportion to their weights; at least one.
    #[serde(deserialize_with = "requests")]
    pub requests: Vec<BaselineRequest>,
}

/// One request shape of a flow's baseline load.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a request such as { method: POST, path: /api/checkout, body_file: order.json }"
)]
pub struct BaselineRequest {
    /// HTTP method (default GET).
    #[serde(default = "get", deserialize_with = "method")]
    pub method: String,
    /// Origin-form target: path and optional query, e.g. `/api/orders/42?full=1`.
    #[serde(deserialize_with = "target")]
    pub path: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// File whose bytes are the request body; relative to the config file.
    #[serde(default)]
    pub body_file: Option<PathBuf>,
    /// Relative frequency among the flow's requests (default 1).
    #[serde(default = "one", deserialize_with = "weight")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

fn get() -> String {
    "GET".into()
}

fn requests<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BaselineRequest>, D::Error> {
    let list = Vec::<BaselineRequest>::deserialize(d)?;
    if list.is_empty() {
        return Err(serde::de::Error::custom(
            "baseline.requests is empty; list at least one request",
        ));
    }
    Ok(list)
}

fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let w = f64::deserialize(d)?;
    if w.is_finite() && w > 0.0 {
        return Ok(w);
    }
    Err(serde::de::Error::custom(format!(
        "weight {w} must be a number above 0"
    )))
}

fn method<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Parse::new("an HTTP method such as GET", |s| {
        http::Method::from_bytes(s.as_bytes())
            .map(|m| m.as_str().to_string())
            .map_err(|_| format!("invalid HTTP method {s:?}; expected e.g. GET or POST"))
    })
    .one(d)
}

fn target<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Parse::new("a path such as /api/orders/42", |s| {
        if s.starts_with('/') && s.parse::<http::uri::PathAndQuery>().is_ok() {
            return Ok(s.to_string());
        }
        Err(format!(
            "invalid request path {s:?}; expected a path starting with / (query allowed), e.g. /api/orders/42"
        ))
    })
    .one(d)
}

//! `/api/faults`: faults injected through the admin API to rehearse a failure — always with an expiry, token-protected and audited like every admin mutation.
//!
//! `POST /api/faults` `{"flow", "delay"?, "abort"?, "percent"?, "header"?, "expires_in"}`
//! adds one (201, with its id); `GET /api/faults` lists the active ones, the
//! configuration's (`flows[].fault`) included; `DELETE /api/faults/{id}` ends one early.
//! An injected fault travels the real path: its requests are measured, alerted on,
//! counted by the circuit breaker and answered by fallbacks like real failures.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{format_duration, format_percent, parse_positive_duration};
use crate::http_json::{error, json_response, read_json};
use crate::resilience::FaultRule;
use crate::state::{FlowRuntime, Shared};

/// The longest a fault may last: a rehearsal, not a way of running.
const MAX_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Whether `path` is this API's.
pub fn owns(path: &str) -> bool {
    path == "/api/faults" || path.starts_with("/api/faults/")
}

/// Serve one `/api/faults` request (the admin listener has already checked the token).
pub async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Response<Full<Bytes>> {
    let now = shared.clock.now_ms();
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.strip_prefix("/api/faults")) {
        (Method::GET, Some("")) => json_response(StatusCode::OK, &list(shared, now)),
        (Method::POST, Some("")) => create(shared, req, now, client).await,
        (Method::DELETE, Some(rest)) if rest.len() > 1 => remove(shared, &rest[1..], client),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this endpoint",
        ),
    }
}

/// `POST /api/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFault {
    flow: String,
    delay: Option<String>,
    abort: Option<u16>,
    /// 0 to 100 (default 100).
    percent: Option<f64>,
    header: Option<String>,
    expires_in: String,
}

fn flows(shared: &Shared) -> Vec<(String, Option<std::sync::Arc<FaultRule>>, FlowRef)> {
    let runtime = shared.runtime.load_full();
    let count = runtime.flows.len();
    (0..=count)
        .map(|i| {
            let f: &FlowRuntime = runtime.flows.get(i).unwrap_or(&runtime.unmatched);
            (
                f.state.name.to_string(),
                f.fault.clone(),
                FlowRef(f.state.clone()),
            )
        })
        .collect()
}

/// A flow's long-lived state, where its API faults live.
struct FlowRef(std::sync::Arc<crate::state::FlowState>);

fn rule_json(flow: &str, source: &str, r: &FaultRule, now: u64) -> Value {
    json!({
        "id": r.id,
        "flow": flow,
        "source": source,
        "delay": r.delay.map(format_duration),
        "abort": r.abort,
        "percent": format_percent(r.ratio),
        "header": r.header.as_ref().map(HeaderName::as_str),
        "expires_in": r.expires_ms.map(|at| format_duration(Duration::from_millis(at.saturating_sub(now)))),
    })
}

fn list(shared: &Shared, now: u64) -> Value {
    let mut out = Vec::new();
    for (name, configured, state) in flows(shared) {
        if let Some(r) = configured {
            out.push(rule_json(&name, "config", &r, now));
        }
        for r in state.0.resilience.faults.active(now) {
            out.push(rule_json(&name, "api", &r, now));
        }
    }
    json!({ "faults": out })
}

async fn create(
    shared: &Shared,
    req: Request<Incoming>,
    now: u64,
    client: SocketAddr,
) -> Response<Full<Bytes>> {
    let pause = shared.runtime.load().config.limits.body_read_timeout;
    let new: NewFault = match read_json(req, pause).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let rule = match validate(&new, now) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let Some((name, _, state)) = flows(shared).into_iter().find(|(n, _, _)| *n == new.flow) else {
        return error(StatusCode::NOT_FOUND, "no such flow");
    };
    let rule = state.0.resilience.faults.add(rule);
    crate::audit::fault_injected(
        client,
        &rule.id,
        &name,
        &rule.delay.map(format_duration).unwrap_or_default(),
        rule.abort.unwrap_or(0),
        &format_percent(rule.ratio),
        &new.expires_in,
    );
    json_response(StatusCode::CREATED, &rule_json(&name, "api", &rule, now))
}

fn validate(new: &NewFault, now: u64) -> Result<FaultRule, String> {
    let expires =
        parse_positive_duration(&new.expires_in).map_err(|e| format!("expires_in: {e}"))?;
    if expires > MAX_EXPIRY {
        return Err("expires_in: at most 24h (a rehearsal, not a way of running)".into());
    }
    let delay = match &new.delay {
        Some(d) => Some(parse_positive_duration(d).map_err(|e| format!("delay: {e}"))?),
        None => None,
    };
    if delay.is_none() && new.abort.is_none() {
        return Err("a fault needs a delay, an abort status, or both".into());
    }
    if new.abort.is_some_and(|s| !(200..600).contains(&s)) {
        return Err("abort: a status from 200 to 599".into());
    }
    let percent = new.percent.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&percent) {
        return Err("percent: 0 to 100".into());
    }
    let header = match &new.header {
        Some(h) => Some(HeaderName::try_from(h.as_str()).map_err(|_| "header: not a header name")?),
        None => None,
    };
    Ok(FaultRule {
        id: String::new(),
        delay,
        abort: new.abort,
        ratio: percent / 100.0,
        header,
        expires_ms: Some(now + u64::try_from(expires.as_millis()).unwrap_or(u64::MAX)),
    })
}

fn remove(shared: &Shared, id: &str, client: SocketAddr) -> Response<Full<Bytes>> {
    for (name, _, state) in flows(shared) {
        if state.0.resilience.faults.remove(id) {
            crate::audit::fault_removed(client, id, &name);
            return json_response(StatusCode::OK, &json!({ "removed": id }));
        }
    }
    error(StatusCode::NOT_FOUND, "no active fault with this id")
}

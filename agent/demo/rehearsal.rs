//! The demo's rehearsal: a fault injected into one flow through the real admin API (`POST /api/faults`, with an expiry), and a running account of what Redline does about it.
//!
//! The account is read where an operator would look: the breaker's state and the
//! `FlowCircuitOpen` alert from `GET /api/flows`, the fault from `GET /api/faults`, and the
//! fallback from the `x-redline-fallback` header of the answers the traffic got.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::shutdown::Watch;

/// The flow rehearsed: its reads have a stale fallback, the others a static one.
pub const FLOW: &str = "catalog";
/// Within each cycle, the fault is injected this long after the cycle starts (after some
/// traffic, so the stale store holds answers).
pub const AT: Duration = Duration::from_secs(6);
/// The fault's expiry.
pub const FAULT_FOR: Duration = Duration::from_secs(12);
/// How often the account looks at the admin API.
const POLL: Duration = Duration::from_millis(250);
/// A rehearsal that has not ended by then (the alert never resolved) is given up.
const GIVE_UP: Duration = Duration::from_secs(120);
/// The alert the breaker raises.
const ALERT: &str = "FlowCircuitOpen";

/// Answers the demo traffic got from a fallback (`x-redline-fallback`): stale, static.
#[derive(Debug, Default)]
pub struct Fallbacks([AtomicU64; 2]);

impl Fallbacks {
    /// Count an answer if a fallback gave it.
    pub fn note(&self, headers: &http::HeaderMap) {
        match headers.get("x-redline-fallback").map(|v| v.as_bytes()) {
            Some(b"stale") => self.0[0].fetch_add(1, Relaxed),
            Some(b"static") => self.0[1].fetch_add(1, Relaxed),
            _ => 0,
        };
    }

    fn counts(&self) -> (u64, u64) {
        (self.0[0].load(Relaxed), self.0[1].load(Relaxed))
    }
}

/// Rehearse once per `cycle`, `AT` into it, until `stop`.
pub async fn run(
    admin: SocketAddr,
    started: Instant,
    cycle: Duration,
    fallbacks: Arc<Fallbacks>,
    stop: Watch,
) {
    let api = Admin::new(admin);
    let mut next = started + AT;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            () = stop.signaled() => return,
        }
        tokio::select! {
            () = rehearse(&api, started, &fallbacks) => {}
            () = stop.signaled() => return,
        }
        while next <= Instant::now() {
            next += cycle;
        }
    }
}

/// Where the account stands.
#[derive(Debug)]
struct Seen {
    circuit: String,
    alert: String,
    fault: bool,
    stale: bool,
    fallback_static: bool,
    fired: bool,
}

async fn rehearse(api: &Admin, started: Instant, fallbacks: &Fallbacks) {
    let at = |started: Instant| started.elapsed().as_secs();
    let body = format!(
        r#"{{"flow":"{FLOW}","abort":503,"percent":100,"expires_in":"{}s"}}"#,
        FAULT_FOR.as_secs()
    );
    let id = match api.call(Method::POST, "/api/faults", body).await {
        Some((201, v)) => v["id"].as_str().unwrap_or("?").to_string(),
        other => {
            let status = other.map_or(0, |(s, _)| s);
            println!("[demo] rehearsal skipped: POST /api/faults answered {status}.");
            return;
        }
    };
    let before = fallbacks.counts();
    println!(
        "[demo] {}s: rehearsal: fault {id} injected through POST /api/faults: every {FLOW} request answered 503 for {}s. Watch the breaker open, the fallback serve and the alert fire, then all of it recover.",
        at(started),
        FAULT_FOR.as_secs()
    );
    let mut seen = Seen {
        circuit: "closed".into(),
        alert: "inactive".into(),
        fault: true,
        stale: false,
        fallback_static: false,
        fired: false,
    };
    let until = Instant::now() + GIVE_UP;
    while Instant::now() < until {
        tokio::time::sleep(POLL).await;
        let (stale, fixed) = fallbacks.counts();
        if !seen.stale && stale > before.0 {
            seen.stale = true;
            println!(
                "[demo] {}s: rehearsal: fallback served stale: a {FLOW} read got its last good answer (x-redline-fallback: stale).",
                at(started)
            );
        }
        if !seen.fallback_static && fixed > before.1 {
            seen.fallback_static = true;
            println!(
                "[demo] {}s: rehearsal: fallback served static: a {FLOW} request with no stale answer got the flow's static response (x-redline-fallback: static).",
                at(started)
            );
        }
        if seen.fault && !api.fault_listed(&id).await {
            seen.fault = false;
            println!(
                "[demo] {}s: rehearsal: fault {id} expired: the app answers again.",
                at(started)
            );
        }
        let Some((circuit, alert)) = api.flow_state().await else {
            continue;
        };
        if circuit != seen.circuit {
            println!(
                "[demo] {}s: rehearsal: {}",
                at(started),
                circuit_story(&circuit)
            );
            seen.circuit = circuit;
        }
        if alert != seen.alert {
            seen.fired |= alert == "firing";
            if alert == "firing" || (seen.fired && alert == "inactive") {
                let word = if alert == "firing" {
                    "firing"
                } else {
                    "resolved"
                };
                println!(
                    "[demo] {}s: rehearsal: alert {ALERT} {word} for {FLOW}.",
                    at(started)
                );
            }
            seen.alert = alert;
        }
        if seen.fired && seen.alert == "inactive" && !seen.fault {
            let (stale, fixed) = fallbacks.counts();
            println!(
                "[demo] {}s: rehearsal: complete: the breaker opened and closed, fallbacks answered {} requests ({} stale, {} static), the alert fired and resolved.",
                at(started),
                stale - before.0 + fixed - before.1,
                stale - before.0,
                fixed - before.1
            );
            return;
        }
    }
    println!(
        "[demo] rehearsal: gave up watching after {}s.",
        GIVE_UP.as_secs()
    );
}

fn circuit_story(state: &str) -> String {
    match state {
        "open" => format!(
            "circuit open for {FLOW}: the app failed, so requests get the fallback without calling it."
        ),
        "half_open" => format!("circuit half-open for {FLOW}: one probe goes to the app."),
        _ => format!("circuit closed for {FLOW}: the probe succeeded; the app serves again."),
    }
}

/// The admin API, as the demo calls it.
struct Admin {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Sent when set: the admin listener then wants it for mutations.
    token: Option<String>,
}

impl Admin {
    fn new(addr: SocketAddr) -> Admin {
        Admin {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            token: std::env::var(crate::auth::TOKEN_ENV).ok(),
        }
    }

    /// One call: status and JSON body, `None` if it could not be made.
    async fn call(&self, method: Method, path: &str, body: String) -> Option<(u16, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Full::new(Bytes::from(body))).ok()?;
        let resp = tokio::time::timeout(Duration::from_secs(5), self.client.request(req))
            .await
            .ok()?
            .ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn get(&self, path: &str) -> Option<Value> {
        match self.call(Method::GET, path, String::new()).await? {
            (200, v) => Some(v),
            _ => None,
        }
    }

    /// Whether `GET /api/faults` still lists the fault (true when it cannot tell).
    async fn fault_listed(&self, id: &str) -> bool {
        let Some(v) = self.get("/api/faults").await else {
            return true;
        };
        let faults = v["faults"].as_array().cloned().unwrap_or_default();
        faults.iter().any(|f| f["id"] == id)
    }

    /// The flow's circuit and the state of its `FlowCircuitOpen` alert (`inactive` when
    /// the engine has none yet).
    async fn flow_state(&self) -> Option<(String, String)> {
        let v = self.get("/api/flows").await?;
        let flow = v["flows"].as_array()?.iter().find(|f| f["name"] == FLOW)?;
        let circuit = flow["circuit"].as_str()?.to_string();
        let alerts = flow["alerts"].as_array().cloned().unwrap_or_default();
        let alert = alerts
            .iter()
            .find(|a| a["alertname"] == ALERT)
            .and_then(|a| a["state"].as_str())
            .unwrap_or("inactive")
            .to_string();
        Some((circuit, alert))
    }
}

//! The admin listener: `/metrics`, health, and the JSON API over flows, routes and config.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::alerting::Engine;
use crate::auth::{self, Access};
use crate::dashboard;
use crate::http_json::{error, json_response, text};
use crate::metrics;
use crate::metrics::Source;
use crate::proxy::gate::Gate;
use crate::reload::ReloadState;
use crate::state::{FlowState, Shared, UNMATCHED};
use crate::stats::WindowSummary;

/// Windows reported by `GET /api/flows`.
const FLOW_WINDOWS: [(&str, Duration); 2] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
];

/// Serves the admin endpoints of PRODUCT.md §7.
#[derive(Debug, Clone)]
pub struct Admin {
    shared: Arc<Shared>,
    reload: Arc<ReloadState>,
    alerts: Arc<Engine>,
    gate: Arc<Gate>,
}

impl Admin {
    /// Admin API over `shared`, its hot reload, its alert engine and the proxy's upstream
    /// connection gate.
    pub fn new(
        shared: Arc<Shared>,
        reload: Arc<ReloadState>,
        alerts: Arc<Engine>,
        gate: Arc<Gate>,
    ) -> Self {
        Admin {
            shared,
            reload,
            alerts,
            gate,
        }
    }

    /// Route one admin request.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let mutation = !matches!(*req.method(), Method::GET | Method::HEAD);
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let resp = match self.refusal(&req) {
            None => self.dispatch(req, peer).await,
            Some(denied) => denied,
        };
        if mutation {
            crate::audit::admin_action(peer, &method, &path, resp.status().as_u16());
        }
        Ok(resp)
    }

    /// The refusal for a request that may not proceed: mutations (anything but GET/HEAD)
    /// need the admin token (PRODUCT.md §7); with `admin.protect_reads`, so do reads
    /// other than `/metrics`, `/healthz`, `/readyz`.
    fn refusal(&self, req: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
        let runtime = self.shared.runtime.load();
        let admin = &runtime.config.admin;
        let listener = self.reload.admin_listener().unwrap_or(admin.listen);
        let path = req.uri().path();
        let host = match req.uri().authority() {
            Some(authority) => Some(authority.as_str()),
            None => req
                .headers()
                .get(http::header::HOST)
                .map(|h| h.to_str().unwrap_or("")),
        };
        match auth::check_request(admin, listener, req.method(), path, host, req.headers()) {
            Access::Granted => None,
            refused => Some(auth::refusal(refused)),
        }
    }

    /// `/metrics`: Prometheus text, or OpenMetrics (with exemplars) when the scraper asks for it.
    fn metrics(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let format = metrics::Format::negotiate(accept);
        let body = self.shared.registry.render_with(format, |out| {
            crate::metrics::render_families(out, format, &self.gate.families());
            let protection = crate::proxy::protection::families(&self.shared);
            crate::metrics::render_families(out, format, &protection);
        });
        let mut resp = text(StatusCode::OK, format.content_type(), body);
        // The answer depends on Accept: tell caches.
        resp.headers_mut()
            .insert(http::header::VARY, http::HeaderValue::from_static("accept"));
        resp
    }

    /// One match arm per endpoint; each concern's logic lives in its own module.
    async fn dispatch(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => self.metrics(&req),
            (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
            (&Method::GET, "/readyz") => self.readyz(),
            (&Method::GET, "/api/flows") => json_response(StatusCode::OK, &self.flows()),
            (&Method::GET, "/api/routes") => json_response(StatusCode::OK, &self.routes()),
            (&Method::GET, "/api/config") => json_response(StatusCode::OK, &self.config()),
            (&Method::GET, "/api/proposal") => self.proposal(),
            (&Method::GET, "/api/baseline/shapes") => json_response(StatusCode::OK, &self.shapes()),
            (&Method::POST, "/api/reload") => {
                crate::reload::handle_api(self.shared.clone(), self.reload.clone(), req).await
            }
            (&Method::GET | &Method::HEAD, "/") => dashboard::page(),
            (&Method::GET, path) if dashboard::is_series_path(path) => {
                dashboard::series(&self.shared, path)
            }
            (_, path) if crate::proxy::faults::owns(path) => {
                crate::proxy::faults::handle(&self.shared, req, peer).await
            }
            (_, path) if crate::alerting::api::owns(path) => {
                crate::alerting::api::handle(&self.shared, &self.alerts, req, peer).await
            }
            (_, "/") => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            ),
            (
                _,
                "/metrics"
                | "/healthz"
                | "/readyz"
                | "/api/flows"
                | "/api/routes"
                | "/api/config"
                | "/api/reload"
                | "/api/proposal"
                | "/api/baseline/shapes",
            ) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            ),
            _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }

    /// `GET /api/proposal`: a config learned from the traffic so far (`redline init`).
    fn proposal(&self) -> Response<Full<Bytes>> {
        match crate::learn::proposal_json(&self.shared) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    fn readyz(&self) -> Response<Full<Bytes>> {
        if self.shared.is_ready() {
            text(StatusCode::OK, "text/plain", "ready\n".into())
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready\n".into(),
            )
        }
    }

    /// `GET /api/flows`: configured flows in config order, then `unmatched`.
    pub fn flows(&self) -> Value {
        let runtime = self.shared.runtime.load();
        let now = self.shared.clock.now_ms();
        let mut flows: Vec<Value> = runtime
            .config
            .flows
            .iter()
            .zip(runtime.flows.iter())
            .map(|(cfg, rt)| {
                let mut v = flow_json(&rt.state, now);
                v["owner"] = json!(cfg.owner);
                v["runbook"] = json!(cfg.runbook);
                v["patterns"] = json!(
                    cfg.patterns
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                );
                v["timeout_ms"] = json!(rt.timeout.as_millis() as u64);
                v["access"] = access_json(cfg.access.as_ref(), cfg.audit, &rt.state);
                // null without a breaker, else closed | open | half_open.
                v["circuit"] = json!(
                    rt.breaker
                        .map(|_| rt.state.resilience.breaker.state().label())
                );
                v["concurrency_limit"] = concurrency_limit(rt);
                v["alerts"] =
                    crate::alerting::api::flow_alerts(&self.shared, &self.alerts, &cfg.name);
                v
            })
            .collect();
        let mut unmatched = flow_json(&runtime.unmatched.state, now);
        unmatched["timeout_ms"] = json!(runtime.unmatched.timeout.as_millis() as u64);
        unmatched["concurrency_limit"] = concurrency_limit(&runtime.unmatched);
        // The default alerts (no flows configured) are the unmatched flow's.
        unmatched["alerts"] =
            crate::alerting::api::flow_alerts(&self.shared, &self.alerts, UNMATCHED);
        flows.push(unmatched);
        json!({ "flows": flows })
    }

    fn routes(&self) -> Value {
        let runtime = self.shared.runtime.load();
        let templates: Vec<Value> = self
            .shared
            .templates
            .snapshot()
            .into_iter()
            .map(|t| json!({ "route": t.route, "count": t.count, "examples": t.examples }))
            .collect();
        json!({
            "templating": if runtime.config.routes.templating { "auto" } else { "off" },
            "max_templates": runtime.config.routes.max_templates,
            "templates": templates,
        })
    }

    /// `GET /api/baseline/shapes`: each flow's request count and sampled request shapes,
    /// already without credentials (see `baseline.record`), for `redline baseline record`.
    fn shapes(&self) -> Value {
        let runtime = self.shared.runtime.load();
        let flows: Vec<Value> = runtime
            .flows
            .iter()
            .filter_map(|rt| {
                let shapes = rt.state.shapes.get()?;
                let sample: Vec<Value> = shapes
                    .sample()
                    .iter()
                    .map(|s| {
                        let headers: serde_json::Map<String, Value> = s
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect();
                        let mut shape =
                            json!({ "method": s.method, "path": s.path, "headers": headers });
                        if let Some(body) = s.body.get() {
                            shape["body"] = json!(body);
                        }
                        shape
                    })
                    .collect();
                Some(json!({ "flow": &*rt.state.name, "seen": shapes.seen(), "shapes": sample }))
            })
            .collect();
        let config = &runtime.config;
        json!({
            "enabled": config.baseline.record.enabled,
            "never_recorded_headers": crate::config::NEVER_RECORDED,
            "redact_headers": config.redact.headers,
            "redact_query_params": config.redact.query_params,
            "flows": flows,
        })
    }

    fn config(&self) -> Value {
        let runtime = self.shared.runtime.load();
        // `last_reload`, `last_reload_error` (file:line:column, redacted), `needs_restart`.
        let mut out = self.reload.status_json();
        out["config"] = runtime.config.redacted_json();
        out
    }
}

fn flow_json(state: &FlowState, now_ms: u64) -> Value {
    let mut windows = serde_json::Map::new();
    for (label, over) in FLOW_WINDOWS {
        windows.insert(
            label.into(),
            window_json(&state.window.summary(now_ms, over)),
        );
    }
    json!({
        "name": &*state.name,
        "active_requests": state.active.total(),
        "windows": windows,
        "alerts": [],
    })
}

/// A flow's access rule (`null`: no check), whether it is audited, and the decisions so far.
fn access_json(
    rule: Option<&crate::config::AccessConfig>,
    audit: bool,
    state: &FlowState,
) -> Value {
    let [allowed, denied] = &state.access_counts;
    json!({
        "rule": rule.map(|r| r.to_string()),
        "audit": audit,
        "allowed": allowed.load(std::sync::atomic::Ordering::Relaxed),
        "denied": denied.load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn window_json(s: &WindowSummary) -> Value {
    let ms = |q: f64| s.quantile(q).map(|d| (d.as_secs_f64() * 1e6).round() / 1e3);
    json!({
        "requests": s.requests,
        "errors": s.errors,
        "timeouts": s.timeouts,
        "denied": s.denied,
        "rps": (s.rps() * 1000.0).round() / 1000.0,
        "error_rate": s.error_rate(),
        "timeout_rate": s.timeout_rate(),
        "denied_rate": s.denied_rate(),
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
    })
}

/// The flow's adaptive concurrency limit now (null when it has none).
fn concurrency_limit(flow: &crate::state::FlowRuntime) -> Value {
    json!(
        flow.adaptive
            .as_ref()
            .map(|p| flow.state.resilience.concurrency.limit(p))
    )
}

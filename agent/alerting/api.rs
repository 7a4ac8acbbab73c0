//! Admin endpoints of the alert engine: `GET /api/alerts` and `GET/POST/DELETE /api/silences`.
//!
//! `admin.rs` has already checked the token for POST/DELETE when these run.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;

use super::Engine;
use super::silences::NewSilence;
use crate::http_json::{error, json_response, read_json};
use crate::state::Shared;

const SILENCE_PREFIX: &str = "/api/silences/";

/// Whether `path` is served here.
pub fn owns(path: &str) -> bool {
    matches!(path, "/api/alerts" | "/api/silences") || path.starts_with(SILENCE_PREFIX)
}

/// Serve one request for a path [`owns`] accepts, from `client`.
pub async fn handle(
    shared: &Shared,
    engine: &Arc<Engine>,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Response<Full<Bytes>> {
    let now = shared.clock.now_ms();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/api/alerts") => json_response(StatusCode::OK, &engine.alerts_json(now)),
        (&Method::GET, "/api/silences") => {
            json_response(StatusCode::OK, &engine.silences_json(now))
        }
        (&Method::POST, "/api/silences") => {
            let pause = shared.runtime.load().config.limits.body_read_timeout;
            create(engine, req, pause, client, now).await
        }
        (&Method::DELETE, p) if p.starts_with(SILENCE_PREFIX) => {
            let id = p.strip_prefix(SILENCE_PREFIX).unwrap_or("");
            delete(engine, id, client, now).await
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this endpoint",
        ),
    }
}

/// The alerts of one flow for `GET /api/flows`.
pub fn flow_alerts(shared: &Shared, engine: &Engine, flow: &str) -> Value {
    engine.flow_alerts_json(flow, shared.clock.now_ms())
}

async fn create(
    engine: &Arc<Engine>,
    req: Request<Incoming>,
    pause: std::time::Duration,
    client: SocketAddr,
    now: u64,
) -> Response<Full<Bytes>> {
    let new: NewSilence = match read_json(req, pause).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let silence = match engine.add_silence(new, now) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    crate::audit::silence_created(
        client,
        &silence.id,
        silence.flow.as_deref(),
        silence.alertname.as_deref(),
        &super::rfc3339(silence.ends_ms),
        &silence.comment,
    );
    engine.persist().await;
    engine.wake();
    json_response(StatusCode::CREATED, &silence.to_json())
}

async fn delete(
    engine: &Arc<Engine>,
    id: &str,
    client: SocketAddr,
    now: u64,
) -> Response<Full<Bytes>> {
    if !engine.remove_silence(id, now) {
        return error(StatusCode::NOT_FOUND, "no active silence with this id");
    }
    crate::audit::silence_deleted(client, id);
    engine.persist().await;
    // Alerts it muted and still firing are notified at once.
    engine.wake();
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

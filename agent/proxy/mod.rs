//! The reverse proxy: where a request enters, is matched to a flow, forwarded upstream and answered.
//!
//! Requests enter in one of two places and then share the same phases. Every HTTP/1
//! connection starts in [`fast::serve`], which admits its first head and speaks
//! HTTP/1.1 itself on raw sockets for plain requests (most traffic); everything else
//! enters [`Proxy::handle`] through hyper.
//!
//! The phases, in order, and every decision in them live in [`phases`]: admit the head,
//! start a [`RequestCtx`] (flow match, clocks, gauges), rewrite the head, exchange with
//! the upstream under the flow's timeout ([`upstream::send`] for hyper,
//! `direct::exchange` for the fast path) retrying only what is safe, pass the response
//! on, and finish the context when the last response byte is sent ([`ProxyBody`] for
//! hyper). Failures are `crate::error::Error`s that become JSON responses plus a metric
//! (`upstream_failed`), never an `Err` out of the service.
//!
//! Modules, low to high: `wire`, `headers`, `request_body` → `ctx` → `phases` →
//! `upstream`, `direct` → `body` → `fast` and this file. `reach` stands apart: it tells
//! the operator when the upstream is down, from a task of its own.

pub mod body;
pub mod ctx;
mod direct;
pub mod fallback;
pub mod fast;
pub mod faults;
pub mod gate;
pub mod headers;
pub mod phases;
pub mod protection;
pub mod reach;
pub mod request_body;
pub mod retry;
pub mod upstream;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

pub use body::ProxyBody;
pub use ctx::RequestCtx;
use request_body::CountingBody;

use crate::error::ErrorType;
use crate::state::Shared;
use crate::telemetry::Telemetry;
use crate::trace::TraceContext;

/// Forwards requests to the configured upstream and measures them.
pub struct Proxy {
    shared: Arc<Shared>,
    /// Trace propagation, sampling and span export; `None`: W3C propagation, no export.
    telemetry: Option<Arc<Telemetry>>,
    /// Every request goes through hyper (`REDLINE_HTTP1_ENGINE=hyper`): the fast path
    /// still admits each connection's first head, then hands it over. For comparing the
    /// engines, and a way out should the fast path misbehave.
    hyper_only: bool,
    /// Connection limits and queue for the upstream, shared by both engines and every thread.
    gate: Arc<gate::Gate>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy over `shared` state, tracing through `telemetry`; upstream connections are
    /// kept alive per worker thread.
    pub fn new(shared: Arc<Shared>, telemetry: Option<Arc<Telemetry>>) -> Arc<Self> {
        Self::with_gate(shared, telemetry, gate::Gate::new())
    }

    /// [`Proxy::new`] opening upstream connections through `gate`, made before the proxy
    /// so that the OTLP exporter, started first, reads its gauges too.
    pub fn with_gate(
        shared: Arc<Shared>,
        telemetry: Option<Arc<Telemetry>>,
        gate: Arc<gate::Gate>,
    ) -> Arc<Self> {
        let hyper_only = std::env::var("REDLINE_HTTP1_ENGINE")
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("hyper"));
        Arc::new(Proxy {
            shared,
            telemetry,
            hyper_only,
            gate,
        })
    }

    /// The upstream connection gate, for its gauges on `/metrics`.
    pub fn gate(&self) -> &Arc<gate::Gate> {
        &self.gate
    }

    /// Serve one request from a client at `client`. Never fails: errors become responses.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let runtime = self.shared.runtime.load_full();
        let (parts, body) = req.into_parts();
        let mut ctx = RequestCtx::start(
            &self.shared,
            self.telemetry.as_ref(),
            runtime,
            &parts,
            client,
        );
        let pairs = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
        let judged = if parts.version >= Version::HTTP_2 {
            phases::admit_h2(&parts.method, &parts.uri, pairs)
        } else {
            let target = phases::Target::of_uri(&parts.uri);
            phases::admit(&parts.method, target, parts.version, pairs)
        };
        let admitted = match judged {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let mut resp = refused(ctx, refusal);
                if parts.version < Version::HTTP_2 {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return Ok(resp);
            }
        };
        let mut admitted_load = ctx.admit_load();
        // Checked here, not inside: an async call costs its future even when it returns at once.
        if admitted_load.is_ok() && ctx.has_access_rule() {
            admitted_load = ctx.authorize(&parts.headers).await;
        }
        if let Err(shed) = admitted_load {
            let unread = !http_body::Body::is_end_stream(&body);
            let mut resp = upstream_failed(ctx, &shed);
            if unread && parts.version < Version::HTTP_2 {
                // Its body stays unread: nothing after it on this connection can be trusted.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return Ok(resp);
        }
        let idempotent = parts.method.is_idempotent();
        let version = parts.version;
        let mut req = Request::from_parts(parts, body);
        let upgrade =
            headers::upgrade_protocol(req.headers()).filter(|_| req.version() == Version::HTTP_11);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let upgrading = upgrade.is_some();
        let upstream_req = self.upstream_request(req, &mut ctx, client, upgrade, admitted.body);
        let timeout = ctx.flow().timeout;
        let authority = ctx.runtime().upstream_authority.clone();
        ctx.span.upstream_sent();
        let limits = ctx.runtime().config.upstream_connections;
        // Only a body-less request without upgrade is sent again: from a copy of its head.
        let bodyless = http_body::Body::is_end_stream(upstream_req.body()) && !upgrading;
        let tries = retry::Tries::start(&ctx, upstream_req.method(), bodyless);
        let mut first = Some(upstream_req);
        let template = tries.as_ref().and(first.as_ref()).map(upstream::head_of);
        let attempt = |resend: Option<[u8; 8]>| {
            let mut req = match &template {
                Some(t) => upstream::head_of(t),
                None => first.take().unwrap_or_else(upstream::empty_request),
            };
            if let Some(span_id) = resend {
                // This try's own CLIENT span is the upstream's parent.
                let trace = TraceContext {
                    client_span_id: span_id,
                    ..ctx.trace
                };
                let headers = req.headers_mut();
                crate::telemetry::inject(ctx.telemetry(), headers, &trace, &ctx.span);
            }
            upstream::send(&authority, req, idempotent, &self.gate, &limits)
        };
        let status = |(resp, _): &(Response<Incoming>, upstream::Lease)| resp.status().as_u16();
        let mut sent = retry::Sent::Once;
        let sending = retry::exchange(&ctx, tries, status, attempt, &mut sent);
        let answer = crate::watchdog::limit(ctx.started(), timeout, sending).await;
        retry::record(&mut ctx, sent);
        let failure = match answer {
            Some(Ok((resp, lease))) => return Ok(self.respond(resp, lease, ctx, client_upgrade)),
            Some(Err(e)) => match ctx.client_fault() {
                // The client's body broke first; the upstream only saw it end early. Its
                // connection cannot carry another request: say so.
                Some(fault) => {
                    let mut resp = upstream_failed(ctx, &phases::client_failed(fault));
                    if version < Version::HTTP_2 {
                        resp.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    return Ok(resp);
                }
                None => e,
            },
            None => phases::timed_out(timeout),
        };
        Ok(upstream_failed(ctx, &failure))
    }

    /// The client's request for the upstream (`phases::rewrite`), its body counted.
    fn upstream_request(
        &self,
        req: Request<Incoming>,
        ctx: &mut RequestCtx,
        client: SocketAddr,
        upgrade: Option<HeaderValue>,
        framing: phases::BodyLen,
    ) -> Request<CountingBody> {
        let h1 = req.version() < Version::HTTP_2;
        let (mut parts, body) = req.into_parts();
        phases::rewrite(&mut parts, ctx, client, upgrade, framing);
        // A body-less request (most GETs) needs no shared counter: saves an allocation.
        let progress = (!http_body::Body::is_end_stream(&body)).then(|| ctx.body_progress());
        let pause = ctx.runtime().config.limits.body_read_timeout;
        let tee = progress.as_ref().and_then(|_| ctx.body_tee());
        Request::from_parts(
            parts,
            CountingBody::new(body, progress, pause)
                .with_tee(tee)
                .h1(h1),
        )
    }

    /// Pass the upstream's response on, streaming its body; tunnel a 101.
    fn respond(
        &self,
        mut resp: Response<Incoming>,
        lease: upstream::Lease,
        mut ctx: RequestCtx,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ProxyBody> {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching && client_upgrade.is_none() {
            // A client that asked for no upgrade would take the rest as another protocol.
            let error = upstream::broken("101 to a request without upgrade");
            return upstream_failed(ctx, &error);
        }
        let status = resp.status().as_u16();
        if resp.status().is_server_error() {
            // The app failed: its connection is dropped, its failure recorded, the user spared.
            if let Some(chosen) = fallback::choose(&ctx, ErrorType::Status) {
                return fallback::answer(ctx, chosen, ErrorType::Status, status);
            }
        }
        ctx.upstream_responded(status);
        let length = http_body::Body::size_hint(resp.body()).exact();
        let pairs = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
        ctx.begin_capture(status, pairs, length);
        if let (true, Some(client_side)) = (switching, client_upgrade) {
            let upstream_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client_side, upstream_side));
        }
        let (mut parts, body) = resp.into_parts();
        // Our answer is HTTP/1.1 whatever the upstream spoke: hyper frames a body of unknown
        // length as chunked only for an HTTP/1.1 response (an HTTP/1.0 one would be cut by
        // the close, with no word that it ends there).
        parts.version = Version::HTTP_11;
        let reusable = phases::normalise_response(parts.status, &mut parts.headers);
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        headers::strip_hop_by_hop(&mut parts.headers);
        if let (true, Some(p)) = (switching, protocol) {
            headers::set_upgrade(&mut parts.headers, p);
        }
        parts
            .headers
            .insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
        // A switched connection belongs to the tunnel now: never back to the idle stack.
        let lease = (!switching && reusable).then_some(lease);
        Response::from_parts(parts, ProxyBody::upstream(body, ctx, lease))
    }
}

/// Copy bytes both ways between the upgraded client and upstream connections.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "Upgrade failed.");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%error, "Upgraded connection ended with an error.");
    }
}

/// The answer when the upstream gave no response (phase 6): a status from the error's
/// kind, which is also its `error_type`.
fn upstream_failed(ctx: RequestCtx, failure: &crate::error::Error) -> Response<ProxyBody> {
    tracing::debug!(error = %failure, "No upstream response.");
    let status = phases::status_of(failure);
    if let Some(chosen) = fallback::choose(&ctx, failure.kind()) {
        return fallback::answer(ctx, chosen, failure.kind(), status.as_u16());
    }
    let mut resp = local_error(ctx, status, Some(failure.kind()), failure.what());
    if let Some(after) = phases::retry_after(failure) {
        resp.headers_mut().insert(header::RETRY_AFTER, after);
    }
    if let Some(challenge) = phases::www_authenticate(failure) {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    resp
}

/// The answer to a request admission refused: the client's fault, recorded as `bad_request`.
fn refused(ctx: RequestCtx, refusal: phases::Refusal) -> Response<ProxyBody> {
    local_error(
        ctx,
        refusal.status,
        Some(ErrorType::BadRequest),
        refusal.message,
    )
}

/// A short JSON error produced by Redline itself, with the flow and request id.
fn local_error(
    mut ctx: RequestCtx,
    status: StatusCode,
    error: Option<ErrorType>,
    message: &str,
) -> Response<ProxyBody> {
    ctx.local_response(status.as_u16());
    let kind = error.map_or_else(
        || {
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
        },
        |e| e.label(status.as_u16()).into_owned(),
    );
    let body = serde_json::json!({
        "error": kind,
        "message": message,
        "flow": ctx.flow_name(),
        "request_id": ctx.request_id.to_str().unwrap_or(""),
    })
    .to_string();
    let request_id = ctx.request_id.clone();
    let mut ctx = ctx;
    // The failure is the outcome: record it now, with the error type the caller gave.
    ctx.finish(error);
    let mut resp = Response::new(ProxyBody::local(Bytes::from(body), Some(ctx)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(headers::X_REQUEST_ID.clone(), request_id);
    resp
}

//! The reverse proxy: where a request enters, is matched to a flow, forwarded upstream and answered.
//!
//! Requests enter in one of two places and then share the same phases. Plain HTTP/1.1
//! requests (most traffic) enter in [`fast::serve`], which speaks HTTP/1.1 itself on
//! raw sockets; everything else enters [`Proxy::handle`] through hyper.
//!
//! Phases, in order: a [`RequestCtx`] starts (flow match, clocks, gauges),
//! `Proxy::rewrite` rewrites the request head, it goes upstream on a kept-alive
//! connection under the flow's timeout ([`upstream::send`] for hyper, `direct::exchange`
//! for the fast path), and the context is finished when the last response byte is
//! sent ([`ProxyBody`] for hyper). Upstream failures become JSON responses plus a
//! metric (`upstream_failed`), never an `Err`.

pub mod body;
pub mod ctx;
mod direct;
pub mod fast;
pub mod headers;
pub mod upstream;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use body::CountingBody;
pub use body::ProxyBody;
pub use ctx::RequestCtx;

use crate::metrics::ErrorType;
use crate::state::Shared;

/// Forwards requests to the configured upstream and measures them.
pub struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy over `shared` state; upstream connections are kept alive per worker thread.
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Proxy { shared })
    }

    /// Serve one request from a client at `client`. Never fails: errors become responses.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let runtime = self.shared.runtime.load_full();
        let (parts, body) = req.into_parts();
        let mut ctx = RequestCtx::start(&self.shared, runtime, &parts, client);
        if parts.method == Method::CONNECT {
            let msg = "CONNECT is not supported: Redline forwards only to its configured upstream";
            return Ok(local_error(ctx, StatusCode::METHOD_NOT_ALLOWED, None, msg));
        }
        let mut req = Request::from_parts(parts, body);
        let upgrade =
            headers::upgrade_protocol(req.headers()).filter(|_| req.version() == Version::HTTP_11);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let upstream_req = self.upstream_request(req, &mut ctx, client, upgrade);
        let timeout = ctx.flow().timeout;
        let authority = ctx.runtime().upstream_authority.clone();
        ctx.span.upstream_sent();
        let sending = upstream::send(&authority, upstream_req);
        match crate::watchdog::limit(ctx.started(), timeout, sending).await {
            Some(Ok((resp, lease))) => Ok(self.respond(resp, lease, ctx, client_upgrade)),
            failed => Ok(upstream_failed(ctx, timeout, failed.and_then(Result::err))),
        }
    }

    /// Rewrite the client's request for the upstream: fixed authority, HTTP/1.1, clean headers.
    fn upstream_request(
        &self,
        req: Request<Incoming>,
        ctx: &mut RequestCtx,
        client: SocketAddr,
        upgrade: Option<HeaderValue>,
    ) -> Request<CountingBody> {
        let (mut parts, body) = req.into_parts();
        self.rewrite(&mut parts, ctx, client, upgrade);
        // A body-less request (most GETs) needs no shared counter: saves an allocation.
        let progress = (!http_body::Body::is_end_stream(&body)).then(|| ctx.body_progress());
        Request::from_parts(parts, CountingBody::new(body, progress))
    }

    /// The request head rewrite both paths share: origin-form target, the client's host,
    /// no hop-by-hop headers, X-Forwarded-*, request id and trace context, HTTP/1.1.
    fn rewrite(
        &self,
        parts: &mut http::request::Parts,
        ctx: &mut RequestCtx,
        client: SocketAddr,
        upgrade: Option<HeaderValue>,
    ) {
        let runtime = ctx.runtime();
        // h2 and absolute-form requests carry the host in the URI, not the Host header.
        let host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => parts.headers.get(header::HOST).cloned(),
        };
        // Only the path and query survive, in origin form: absolute-form targets cannot
        // pick another host. Moved, not re-parsed: the path's bytes are shared, not copied.
        let mut target = std::mem::take(&mut parts.uri).into_parts();
        target.scheme = None;
        target.authority = None;
        if target.path_and_query.is_none() {
            target.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        let uri = http::Uri::from_parts(target).unwrap_or_else(|_| http::Uri::from_static("/"));
        headers::strip_hop_by_hop(&mut parts.headers);
        headers::set_forwarded(&mut parts.headers, client.ip(), host.as_ref());
        let host = host.unwrap_or_else(|| {
            HeaderValue::from_str(runtime.upstream_authority.as_str())
                .unwrap_or(HeaderValue::from_static("localhost"))
        });
        parts.headers.insert(header::HOST, host);
        parts
            .headers
            .insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
        // The upstream's parent is Redline's CLIENT span (traceparent, b3, … per OTEL_PROPAGATORS).
        crate::telemetry::inject(
            self.shared.telemetry.get(),
            &mut parts.headers,
            &ctx.trace,
            &ctx.span,
        );
        if let Some(protocol) = upgrade {
            headers::set_upgrade(&mut parts.headers, protocol);
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
    }

    /// Pass the upstream's response on, streaming its body; tunnel a 101.
    fn respond(
        &self,
        mut resp: Response<Incoming>,
        lease: upstream::Lease,
        mut ctx: RequestCtx,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ProxyBody> {
        ctx.upstream_responded(resp.status().as_u16());
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (true, Some(client_side)) = (switching, client_upgrade) {
            let upstream_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client_side, upstream_side));
        }
        let (mut parts, body) = resp.into_parts();
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        headers::strip_hop_by_hop(&mut parts.headers);
        if let (true, Some(p)) = (switching, protocol) {
            headers::set_upgrade(&mut parts.headers, p);
        }
        parts
            .headers
            .insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
        // A switched connection belongs to the tunnel now: never back to the idle stack.
        let lease = (!switching).then_some(lease);
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

/// The answer when the upstream gave no response: 504 after `timeout` (`error` is `None`),
/// else 502.
fn upstream_failed(
    ctx: RequestCtx,
    timeout: std::time::Duration,
    error: Option<upstream::UpstreamError>,
) -> Response<ProxyBody> {
    let (status, kind, message): (_, _, std::borrow::Cow<'_, str>) = match error {
        None => {
            let took = humantime::format_duration(timeout);
            let message = format!("upstream sent no response headers within {took}");
            (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorType::Timeout,
                message.into(),
            )
        }
        Some(e @ upstream::UpstreamError::Connect(_)) => {
            tracing::debug!(error = %e, "Upstream unavailable.");
            let message = "upstream refused the connection or is unreachable";
            (
                StatusCode::BAD_GATEWAY,
                ErrorType::UpstreamUnavailable,
                message.into(),
            )
        }
        Some(e) => {
            tracing::debug!(error = %e, "Upstream error.");
            let message = "upstream closed the connection or sent a broken response";
            (
                StatusCode::BAD_GATEWAY,
                ErrorType::UpstreamError,
                message.into(),
            )
        }
    };
    local_error(ctx, status, Some(kind), &message)
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

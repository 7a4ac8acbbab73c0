//! Phase 6 for failures: the flow's fallback instead of the failure — the last good response to the same target (`stale_if_error`), else a static one — and the capture that keeps good responses.
//!
//! A fallback spares the user, not the record: the request is still recorded with the
//! app's failure (its status and `error_type`), so the flow's error rate and alerts tell
//! the truth about the app, while `redline_fallbacks_total{flow,kind}` counts what users
//! were spared. The answer carries `x-redline-fallback: stale|static`, and the SERVER span
//! `redline.fallback`.
//!
//! What is kept follows RFC 9111's rules for a shared cache: only a 200 to a GET without
//! `Authorization` or `Cookie` (unless the flow allows credentials), whose response has no
//! `Set-Cookie`, no `Cache-Control: no-store` or `private`, no `Vary: *`, and a body of at
//! most `max_body` bytes, copied while it streams to the client (never delaying it).

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response};

use super::{ProxyBody, RequestCtx, headers};
use crate::error::ErrorType;
use crate::resilience::{FallbackKind, StaleEntry};
use crate::state::FlowRuntime;

/// `x-redline-fallback`.
pub static X_REDLINE_FALLBACK: HeaderName = HeaderName::from_static("x-redline-fallback");

/// The failures a fallback answers: the app's (timeout, unreachable, broken, 5xx) and an
/// open circuit; never the client's, and not Redline's own queue limits.
fn eligible(kind: ErrorType) -> bool {
    matches!(
        kind,
        ErrorType::Timeout
            | ErrorType::UpstreamUnavailable
            | ErrorType::UpstreamError
            | ErrorType::Status
            | ErrorType::CircuitOpen
    )
}

/// A fallback chosen for a failed request, ready to be sent.
#[derive(Debug)]
pub struct Chosen {
    kind: FallbackKind,
    resp: Response<Bytes>,
}

/// The flow's fallback for a request that failed with `kind`, if it has one that fits:
/// the stale response of its target, else the static one. One branch for flows without.
pub fn choose(ctx: &RequestCtx, kind: ErrorType) -> Option<Chosen> {
    let policy = ctx.flow().fallback.as_ref()?;
    if !eligible(kind) {
        return None;
    }
    let stale = policy.stale.and_then(|p| {
        let ok = matches!(*ctx.method(), Method::GET | Method::HEAD);
        let store = &ctx.flow().state.resilience.stale;
        ok.then(|| store.get(ctx.target(), ctx.now_ms(), p.max_age_ms))
            .flatten()
    });
    match (stale, &policy.static_response) {
        (Some(entry), _) => Some(Chosen {
            kind: FallbackKind::Stale,
            resp: stale_response(&entry),
        }),
        (None, Some(s)) => {
            let mut resp = Response::new(s.body.clone());
            *resp.status_mut() = s.status;
            *resp.headers_mut() = s.headers.clone();
            Some(Chosen {
                kind: FallbackKind::Static,
                resp,
            })
        }
        (None, None) => None,
    }
}

/// Answer with `chosen`, recording the request as the app's failure (`kind`, status
/// `recorded`).
pub fn answer(
    mut ctx: RequestCtx,
    chosen: Chosen,
    kind: ErrorType,
    recorded: u16,
) -> Response<ProxyBody> {
    let Chosen {
        kind: fallback,
        mut resp,
    } = chosen;
    ctx.flow().state.resilience.count_fallback(fallback);
    ctx.span.fallback(fallback.label());
    ctx.local_response(recorded);
    ctx.finish(Some(kind));
    let h = resp.headers_mut();
    h.insert(
        X_REDLINE_FALLBACK.clone(),
        HeaderValue::from_static(fallback.label()),
    );
    h.insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
    let head = ctx.method() == Method::HEAD;
    let (parts, body) = resp.into_parts();
    let body = if head { Bytes::new() } else { body };
    Response::from_parts(parts, ProxyBody::local(body, Some(ctx)))
}

fn stale_response(entry: &StaleEntry) -> Response<Bytes> {
    let mut resp = Response::new(entry.body.clone());
    *resp.status_mut() = http::StatusCode::from_u16(entry.status).unwrap_or_default();
    for (n, v) in &entry.headers {
        resp.headers_mut().append(n.clone(), v.clone());
    }
    resp
}

/// Whether a response with these headers may be kept for others (RFC 9111 §3, §5.2.2).
pub fn storable<'h>(headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>) -> bool {
    headers.into_iter().all(|(name, value)| {
        if name.eq_ignore_ascii_case(b"set-cookie") {
            return false;
        }
        if name.eq_ignore_ascii_case(b"cache-control") {
            let v = value.to_ascii_lowercase();
            let has = |d: &[u8]| {
                v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().starts_with(d))
            };
            return !(has(b"no-store") || has(b"private"));
        }
        if name.eq_ignore_ascii_case(b"vary") {
            return value.trim_ascii() != b"*";
        }
        true
    })
}

/// Headers not kept with a stale response: hop-by-hop, framing (the body's length is
/// known), and those that belong to the one exchange.
pub fn kept_header(name: &[u8]) -> bool {
    const DROPPED: [&[u8]; 10] = [
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"te",
        b"trailer",
        b"upgrade",
        b"date",
        b"x-request-id",
        b"proxy-connection",
    ];
    !DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d))
}

/// Whether a request of `flow` may have its response kept (`stale_if_error` on, GET, and
/// no credentials unless the flow allows them). One branch for flows without it.
pub fn request_storable(flow: &FlowRuntime, parts: &http::request::Parts) -> bool {
    let Some(p) = flow.fallback.as_ref().and_then(|f| f.stale) else {
        return false;
    };
    let credentials = parts.headers.contains_key(header::AUTHORIZATION)
        || parts.headers.contains_key(header::COOKIE);
    parts.method == Method::GET && (p.allow_credentials || !credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_shared_cache_must_not_keep_is_not_kept() {
        let ok: [(&[u8], &[u8]); 2] = [
            (b"content-type", b"text/plain"),
            (b"cache-control", b"max-age=60, public"),
        ];
        assert!(storable(ok));
        for bad in [
            (&b"Set-Cookie"[..], &b"a=b"[..]),
            (b"cache-control", b"max-age=0, no-store"),
            (b"Cache-Control", b"private"),
            (b"vary", b"*"),
        ] {
            assert!(!storable([bad]), "{bad:?}");
        }
        assert!(!kept_header(b"Content-Length") && kept_header(b"etag"));
    }
}

//! Request heads on the fast path: parse with httparse, admit (`phases::admit`), and decide which engine takes the request.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::Method;
use http::Version;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::super::phases::{self, Admitted, BodyLen, Refusal, Target};
use super::super::wire::MAX_HEADERS;

thread_local! {
    // Header positions between parsing a head and building its `Parts` (reused: no allocation).
    static SPANS: RefCell<Vec<(Span, Span)>> = const { RefCell::new(Vec::new()) };
}

/// Largest request body the fast path takes; it is read whole, then sent with the head
/// (small enough to sit in socket buffers, so an upstream that answers before reading
/// it cannot stall the exchange). Larger bodies stream through hyper.
pub(super) const MAX_BODY: u64 = 64 * 1024;

/// What the head parser needs to know besides the bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Largest request head accepted.
    pub(super) max_head: usize,
    /// Hand every admitted request to hyper (`REDLINE_HTTP1_ENGINE=hyper`).
    pub(super) hyper_only: bool,
    /// No request came on the connection yet: only its first bytes can be the HTTP/2
    /// preface (RFC 9113 §3.3). Later, `PRI * HTTP/2.0` is a malformed HTTP/1.1 request,
    /// not a switch of protocol under a front end that reuses the connection.
    pub(super) first: bool,
}

#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed {
    Ready(http::request::Parts, Plain),
    Partial,
    Other,
    Refused(Refusal, http::request::Parts),
}

/// Parse and admit the head at the start of `buf` (phase 1 of `phases`). A request the
/// fast path takes leaves `buf`, its bytes shared by the header values and the URI (no
/// copy); one for hyper leaves `buf` untouched; a refused one is answered and closed.
pub(super) fn parse_request(buf: &mut BytesMut, limits: Limits) -> Parsed {
    // Uninitialised: zeroing 100 headers costs more than parsing the usual five.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    // Only the first `max_head` bytes can hold a head: the verdict must not depend on how
    // much arrived in one read (past the limit, a head is too large whatever follows).
    let window = &buf[..buf.len().min(limits.max_head)];
    let len = match req.parse_with_uninit_headers(window, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.max_head => return Parsed::Partial,
        // More header lines than can be kept is a head too large, as hyper says (431).
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return refused(phases::TOO_LARGE, &req);
        }
        // HTTP/2 with prior knowledge: hyper speaks it.
        Err(_) if limits.first && buf.starts_with(H2_PREFACE) => return Parsed::Other,
        Err(_) => return refused(phases::MALFORMED, &req),
    };
    let (Some(version), Some(method), Some(path)) = (req.version, req.method, req.path) else {
        return refused(phases::MALFORMED, &req);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return refused(phases::MALFORMED, &req);
    };
    let http_version = if version == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let target = Target::of_raw(path);
    let pairs = req.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    let admitted = match phases::admit(&method, target, http_version, pairs) {
        Ok(admitted) => admitted,
        Err(refusal) => return refused(refusal, &req),
    };
    let Some(plain) = plain_request(version, &admitted).filter(|_| !limits.hyper_only) else {
        // hyper parses the head again: what it would refuse is refused here, as JSON.
        if http::Uri::try_from(path).is_err() {
            return refused(phases::MALFORMED, &req);
        }
        return Parsed::Other;
    };
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let path = offset(path.as_bytes());
    SPANS.with_borrow_mut(|spans| {
        spans.clear();
        spans.extend(
            req.headers
                .iter()
                .map(|h| (offset(h.name.as_bytes()), offset(h.value))),
        );
    });
    let head = buf.split_to(len).freeze();
    match SPANS.with_borrow(|spans| build_parts(&head, method.clone(), path, spans)) {
        Some(parts) => Parsed::Ready(parts, plain),
        // The `http` types refused something httparse let through.
        None => Parsed::Refused(phases::MALFORMED, bare_parts(method, None)),
    }
}

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4).
pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A refusal, with as much of the head as can be read for the access log and the flow
/// match (method, target, headers that are valid `http` values).
pub(super) fn refused(refusal: Refusal, req: &httparse::Request<'_, '_>) -> Parsed {
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let mut parts = bare_parts(method.unwrap_or(Method::GET), req.path);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(h.value)) {
            parts.headers.append(name, value);
        }
    }
    Parsed::Refused(refusal, parts)
}

/// Request parts with `method` and `path` (an origin-form target, else `/`).
pub(super) fn bare_parts(method: Method, path: Option<&str>) -> http::request::Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = path
        .filter(|p| p.starts_with('/'))
        .and_then(|p| http::Uri::try_from(p).ok())
        .unwrap_or_else(|| http::Uri::from_static("/"));
    parts
}

/// What the head of a request the fast path takes says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plain {
    /// Length of the body that follows the head.
    pub(super) body: usize,
    /// What admission decided (framing, `Connection: close`).
    pub(super) admitted: Admitted,
}

/// Whether the fast path takes an admitted request: HTTP/1.1, origin or absolute form,
/// no body or one of at most [`MAX_BODY`] bytes framed by `Content-Length`, no `Expect`,
/// no upgrade. hyper takes the rest.
pub(super) fn plain_request(version: u8, admitted: &Admitted) -> Option<Plain> {
    let body = match admitted.body {
        BodyLen::None => 0,
        BodyLen::Length(n) if n <= MAX_BODY => usize::try_from(n).ok()?,
        BodyLen::Length(_) | BodyLen::Chunked => return None,
    };
    let form = matches!(admitted.target, Target::Origin | Target::Absolute);
    (version == 1 && form && !admitted.expect && !admitted.upgrade).then_some(Plain {
        body,
        admitted: *admitted,
    })
}

pub(super) type Span = (usize, usize);

pub(super) fn build_parts(
    head: &Bytes,
    method: Method,
    path: Span,
    headers: &[(Span, Span)],
) -> Option<http::request::Parts> {
    let slice = |(at, len): Span| head.slice(at..at + len);
    let uri = http::Uri::from_maybe_shared(slice(path)).ok()?;
    // Room for what `Proxy::rewrite` adds (X-Forwarded-*, request id, trace context).
    let mut map = HeaderMap::with_capacity(headers.len() + 6);
    for &(name, value) in headers {
        let name = HeaderName::from_bytes(&head[name.0..name.0 + name.1]).ok()?;
        let value = HeaderValue::from_maybe_shared(slice(value)).ok()?;
        map.append(name, value);
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.headers = map;
    Some(parts)
}

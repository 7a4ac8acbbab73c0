//! The request lifecycle both HTTP engines follow: one function per phase, in the order a request meets them.
//!
//! Whichever engine carries a request's bytes (`fast`, on raw sockets, or
//! `Proxy::handle`, through hyper), it passes these phases, and every decision in
//! them is made here, once:
//!
//! 1. **admit** — [`admit`] judges the head: method, target form, `Host`, body framing
//!    (RFC 9112 §3.2, §6.1–6.3). A refusal is answered by Redline ([`Refusal`]) before
//!    any byte goes upstream, and the connection is closed.
//! 2. **start** — `RequestCtx::start` (ctx.rs): flow match, clocks, gauges, trace; then
//!    `RequestCtx::admit_load` sheds what exceeds the flow's or the overall cap on
//!    requests in flight (503 `overloaded`, [`retry_after`]).
//! 3. **rewrite** — [`rewrite`]: the head the upstream gets. Origin-form target, the
//!    client's host, hop-by-hop headers out (framing and `Host` are never among them),
//!    X-Forwarded-*, request id, trace context, and the body framing admission decided.
//! 4. **exchange** — engine I/O (`direct::exchange`, `upstream::send`). A new upstream
//!    connection opens only through `gate` (caps, bounded queue → 503 `overloaded`). A try
//!    that failed is repeated on another connection only when [`may_retry`] says so.
//! 5. **respond** — engine I/O; the response's framing follows `wire::response_body`
//!    (fast) or hyper's client plus [`normalise_response`]; an ambiguous response never
//!    lets its upstream connection be reused.
//! 6. **finish** — `RequestCtx::finish`: metrics, window, access log, spans. A request
//!    with no upstream answer is answered with [`status_of`] its `crate::error::Error`,
//!    whose kind is the `error_type`.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use super::RequestCtx;
use super::headers;
pub use super::request_body::ClientFault;
use super::wire;
use crate::access::{Identity, Verdict};
use crate::error::{Error, ErrorType};

/// The form of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/path?query`.
    Origin,
    /// `http://host/path` (or https).
    Absolute,
    /// `*`, for `OPTIONS` only.
    Asterisk,
    /// `host:port`, for `CONNECT` only.
    Authority,
    /// A scheme other than http or https.
    OtherScheme,
    /// Absolute form whose authority is not `host[:port]`: userinfo (`user:pass@`, which
    /// RFC 9110 §4.2.4 says to treat as an error), spaces, or nothing.
    BadAuthority,
}

impl Target {
    /// The form of a target as sent on the wire.
    pub fn of_raw(target: &str) -> Target {
        let scheme = |s: &str| {
            target
                .get(..s.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(s))
        };
        if target.starts_with('/') {
            Target::Origin
        } else if scheme("http://") || scheme("https://") {
            // Past the scheme's `://` (7 or 8 bytes), up to the path or query.
            let rest = &target.as_bytes()[if scheme("http://") { 7 } else { 8 }..];
            let end = rest
                .iter()
                .position(|b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            if valid_host(&rest[..end]) {
                Target::Absolute
            } else {
                Target::BadAuthority
            }
        } else if target == "*" {
            Target::Asterisk
        } else if target.contains("://") {
            Target::OtherScheme
        } else {
            Target::Authority
        }
    }

    /// The form of a target hyper parsed into a URI.
    pub fn of_uri(uri: &Uri) -> Target {
        match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a))
                if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") =>
            {
                if !valid_host(a.as_str().as_bytes()) {
                    Target::BadAuthority
                } else if uri.path() == "*" {
                    // An HTTP/2 `:path: *` comes with `:scheme` and `:authority`: still the
                    // asterisk form, for OPTIONS only (RFC 9113 §8.3.1), not `GET *` upstream.
                    Target::Asterisk
                } else {
                    Target::Absolute
                }
            }
            (Some(_), _) => Target::OtherScheme,
            (None, Some(_)) => Target::Authority,
            (None, None) if uri.path() == "*" => Target::Asterisk,
            (None, None) => Target::Origin,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// No `Content-Length` or `Transfer-Encoding`: no body.
    None,
    /// `Content-Length: n` (forwarded as one normalised header).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What admission found in a request head it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// How the body is framed.
    pub body: BodyLen,
    /// The connection ends after this request (`Connection: close`, or HTTP/1.0 without
    /// keep-alive).
    pub close: bool,
    /// An `Expect` header is present.
    pub expect: bool,
    /// An `Upgrade` header is present.
    pub upgrade: bool,
    /// The target's form.
    pub target: Target,
}

/// A request Redline answers itself instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 405, 431 or 501.
    pub status: StatusCode,
    /// Why, for the JSON body.
    pub message: &'static str,
}

const fn refuse(status: StatusCode, message: &'static str) -> Refusal {
    Refusal { status, message }
}

const BAD: StatusCode = StatusCode::BAD_REQUEST;

/// A head httparse or the `http` types refused.
pub const MALFORMED: Refusal = refuse(BAD, "malformed request head");

/// A head larger than the configured limit.
pub const TOO_LARGE: Refusal = refuse(
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    "request head too large",
);

/// Phase 1 for an HTTP/2 request (from hyper): [`admit`] with the target its pseudo-headers
/// make. One without `:authority` (the h2 layer then drops `:scheme` too) names its host
/// in `host` alone, so it is judged as an HTTP/1.1 origin-form request: exactly one valid
/// `Host` (RFC 9113 §8.3.1 requires `:authority` or `Host`), never an empty, repeated or
/// invalid one that the upstream and `X-Forwarded-Host` would get as sent, or a host made
/// up. Its framing is the h2 layer's either way: it refuses `Transfer-Encoding`.
pub fn admit_h2<'h>(
    method: &Method,
    uri: &Uri,
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
) -> Result<Admitted, Refusal> {
    let version = if uri.authority().is_some() {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    admit(method, Target::of_uri(uri), version, headers)
}

/// Phase 1: judge a request head. `headers` are (name, value) pairs in any order and
/// any case. HTTP/2 requests with `:authority` (see [`admit_h2`]) are judged on method and
/// target form only: their framing and authority are the HTTP/2 layer's.
pub fn admit<'h>(
    method: &Method,
    target: Target,
    version: Version,
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
) -> Result<Admitted, Refusal> {
    if method == Method::CONNECT {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported: Redline forwards only to its configured upstream",
        ));
    }
    match target {
        Target::Origin | Target::Absolute => {}
        Target::Asterisk if method == Method::OPTIONS => {}
        Target::Asterisk => return Err(refuse(BAD, "'*' is a target for OPTIONS only")),
        Target::Authority => {
            return Err(refuse(BAD, "authority-form targets are for CONNECT only"));
        }
        Target::OtherScheme => return Err(refuse(BAD, "only http and https targets are proxied")),
        Target::BadAuthority => return Err(refuse(BAD, "invalid authority in the target")),
    }
    let http10 = version == Version::HTTP_10 || version == Version::HTTP_09;
    let h2 = version >= Version::HTTP_2;
    let mut scan = Scan {
        close: http10,
        ..Scan::default()
    };
    for (name, value) in headers {
        scan.header(name, value, http10)?;
    }
    if h2 {
        let body = scan.length.map_or(BodyLen::None, BodyLen::Length);
        return Ok(scan.admitted(body, target));
    }
    match scan.hosts {
        0 if !http10 => return Err(refuse(BAD, "an HTTP/1.1 request needs a Host header")),
        0 | 1 => {}
        _ => return Err(refuse(BAD, "more than one Host header")),
    }
    if scan.bad_host {
        return Err(refuse(BAD, "invalid Host header"));
    }
    let body = match (scan.te_lines, scan.length) {
        (0, None) => BodyLen::None,
        (0, Some(n)) => BodyLen::Length(n),
        _ if http10 => {
            return Err(refuse(
                BAD,
                "an HTTP/1.0 request cannot use Transfer-Encoding",
            ));
        }
        (_, Some(_)) => {
            return Err(refuse(BAD, "Content-Length and Transfer-Encoding together"));
        }
        (1, None) if scan.te_chunked => BodyLen::Chunked,
        _ => {
            return Err(refuse(
                StatusCode::NOT_IMPLEMENTED,
                "only Transfer-Encoding: chunked is supported",
            ));
        }
    };
    Ok(scan.admitted(body, target))
}

/// What one walk over the header lines saw.
#[derive(Debug, Default)]
struct Scan {
    hosts: u32,
    bad_host: bool,
    length: Option<u64>,
    te_lines: u32,
    te_chunked: bool,
    close: bool,
    expect: bool,
    upgrade: bool,
}

impl Scan {
    fn header(&mut self, name: &[u8], value: &[u8], http10: bool) -> Result<(), Refusal> {
        // Only these lengths can be one of the names below: most headers skip the compares.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                self.hosts += 1;
                self.bad_host |= !valid_host(value);
            }
            6 if name.eq_ignore_ascii_case(b"expect") => self.expect = true,
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                if http10 {
                    // HTTP/1.0 closes unless asked to keep alive.
                    self.close &= !wire::has_token(value, b"keep-alive");
                } else {
                    self.close |= wire::has_close(value);
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                // Digits only, one value per line (hyper's rule): `+5`, `5, 5` are refused.
                let n = wire::parse_decimal(value.trim_ascii())
                    .ok_or(refuse(BAD, "invalid Content-Length"))?;
                if self.length.replace(n).is_some_and(|m| m != n) {
                    return Err(refuse(BAD, "conflicting Content-Length headers"));
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.te_lines += 1;
                self.te_chunked = value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
            _ => {}
        }
        Ok(())
    }

    fn admitted(&self, body: BodyLen, target: Target) -> Admitted {
        Admitted {
            body,
            close: self.close,
            expect: self.expect,
            upgrade: self.upgrade,
            target,
        }
    }
}

/// A `Host` value is `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2); empty is
/// refused too, since no request to a reverse proxy lacks an authority. Runs on every
/// request: one table lookup a byte (a chain of compares cost ~400 instructions).
pub fn valid_host(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let host_len = if value.first() == Some(&b'[') {
        match ip_literal_len(value) {
            Some(n) => n,
            None => return false,
        }
    } else {
        value
            .iter()
            .take_while(|&&b| REG_NAME[usize::from(b)])
            .count()
    };
    if host_len == 0 {
        return false;
    }
    match value[host_len..].split_first() {
        None => true,
        Some((b':', port)) => port.len() <= 5 && port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// Length of a leading `[v6 or v4 address]`, if it is one.
fn ip_literal_len(value: &[u8]) -> Option<usize> {
    let end = value.iter().position(|&b| b == b']')?;
    let inner = &value[1..end];
    let literal = |b: &u8| b.is_ascii_hexdigit() || matches!(b, b':' | b'.');
    (!inner.is_empty() && inner.iter().all(literal)).then_some(end + 1)
}

/// Bytes of a reg-name: unreserved, `%` of pct-encoded, sub-delims (RFC 3986 §3.2.2).
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let extra = b"-._~%!$&'()*+,;=";
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// Phase 3: rewrite the client's request head for the upstream: origin-form target, the
/// client's host, no hop-by-hop headers, X-Forwarded-*, request id, trace context,
/// HTTP/1.1, and the body framing admission decided (`body`).
pub fn rewrite(
    parts: &mut http::request::Parts,
    ctx: &mut RequestCtx,
    client: SocketAddr,
    upgrade: Option<HeaderValue>,
    body: BodyLen,
) {
    let runtime = ctx.runtime();
    // h2 and absolute-form requests carry the host in the URI, not the Host header.
    let host = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    };
    let uri = origin_form(std::mem::take(&mut parts.uri));
    headers::strip_hop_by_hop(&mut parts.headers);
    forward_identity(&mut parts.headers, runtime, ctx.identity.as_deref());
    headers::set_forwarded(&mut parts.headers, client.ip(), host.as_ref());
    let host = host.unwrap_or_else(|| {
        HeaderValue::from_str(runtime.upstream_authority.as_str())
            .unwrap_or(HeaderValue::from_static("localhost"))
    });
    parts.headers.insert(header::HOST, host);
    set_framing(&mut parts.headers, body);
    parts
        .headers
        .insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
    // The upstream's parent is Redline's CLIENT span (traceparent, b3, … per OTEL_PROPAGATORS).
    crate::telemetry::inject(ctx.telemetry(), &mut parts.headers, &ctx.trace, &ctx.span);
    if let Some(protocol) = upgrade {
        headers::set_upgrade(&mut parts.headers, protocol);
    }
    parts.uri = uri;
    parts.version = Version::HTTP_11;
}

/// The identity headers are the app's to trust, so once `auth` can identify callers,
/// whatever a client sent in them is removed on every flow, with or without an access
/// rule; only a verified identity is written back. Without `auth`, Redline never writes
/// them and leaves the request's headers alone (two hashed lookups a request saved).
fn forward_identity(
    headers: &mut HeaderMap,
    runtime: &crate::state::Runtime,
    who: Option<&Identity>,
) {
    let access = &runtime.access;
    if !access.can_identify() {
        return;
    }
    // `remove` drops every line of a repeated header.
    headers.remove(&access.subject_header);
    headers.remove(&access.roles_header);
    if let Some(who) = who {
        headers.insert(access.subject_header.clone(), who.subject_value.clone());
        headers.insert(access.roles_header.clone(), who.roles_value.clone());
    }
}

/// Only the path and query survive: an absolute-form target cannot pick another host.
/// Moved, not re-parsed: the path's bytes are shared, not copied.
fn origin_form(uri: Uri) -> Uri {
    let mut target = uri.into_parts();
    target.scheme = None;
    target.authority = None;
    match target.path_and_query.as_ref().map(|p| p.as_str()) {
        None => target.path_and_query = Some(http::uri::PathAndQuery::from_static("/")),
        // `http://host?q` has an empty path: origin form needs its `/` (RFC 9112 §3.2.1).
        Some(p) if p.starts_with('?') => {
            target.path_and_query = format!("/{p}").parse().ok();
        }
        Some(_) => {}
    }
    Uri::from_parts(target).unwrap_or_else(|_| Uri::from_static("/"))
}

/// The upstream gets exactly the framing admission decided: one `Content-Length` for a
/// sized body (duplicates and whitespace normalised), none for a chunked one (the engine
/// writes `Transfer-Encoding: chunked` itself).
fn set_framing(headers: &mut HeaderMap, body: BodyLen) {
    match body {
        BodyLen::None => {}
        BodyLen::Length(n) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        BodyLen::Chunked => {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
}

/// Phase 4: whether a failed try on a kept-alive connection may be repeated on another.
/// A request never sent always may; one that reached the upstream only when its method
/// is idempotent (RFC 9110 §9.2.2) and its body can be sent again (`replayable`).
pub fn may_retry(failure: &Error, idempotent: bool, replayable: bool) -> bool {
    failure.retry_verdict().allows(idempotent && replayable)
}

/// No response head within the flow's `timeout`.
pub fn timed_out(timeout: Duration) -> Error {
    let took = humantime::format_duration(timeout);
    Error::new(
        ErrorType::Timeout,
        format!("upstream sent no response headers within {took}"),
    )
}

/// The client's body failed first: the client's doing, not the upstream's.
pub fn client_failed(fault: ClientFault) -> Error {
    match fault {
        ClientFault::Malformed => Error::new(
            ErrorType::BadRequest,
            "the request body's chunked framing is invalid",
        ),
        ClientFault::Aborted => Error::new(
            ErrorType::ClientClosed,
            "the client closed the connection before its body ended",
        ),
        ClientFault::TimedOut => Error::new(
            ErrorType::ClientTimeout,
            "the client paused its request body longer than the body read timeout",
        ),
    }
}

/// Why a request without any credential was refused (401 without an `error` parameter).
pub const NO_CREDENTIAL: &str = "this flow needs a bearer token or an API key";

/// Why a request with a credential that did not verify was refused.
pub const INVALID_CREDENTIAL: &str = "the credential is invalid, expired or not for this service";

/// Phase 2 for denials: the error a refused caller is answered with (401 or 403).
pub fn denied(verdict: Verdict) -> Error {
    match verdict {
        Verdict::Unauthenticated { token_given: false } => {
            Error::new(ErrorType::Unauthenticated, NO_CREDENTIAL)
        }
        Verdict::Unauthenticated { token_given: true } => {
            Error::new(ErrorType::Unauthenticated, INVALID_CREDENTIAL)
        }
        _ => Error::new(
            ErrorType::Forbidden,
            "the caller's roles do not allow this request",
        ),
    }
}

/// Phase 6 for 401s: the RFC 6750 §3 challenge. A request that sent no credential gets no
/// `error` parameter (§3.1: the client may not know authentication is needed); one whose
/// credential failed gets `invalid_token`.
pub fn www_authenticate(failure: &Error) -> Option<HeaderValue> {
    if failure.kind() != ErrorType::Unauthenticated {
        return None;
    }
    Some(if failure.what() == NO_CREDENTIAL {
        HeaderValue::from_static("Bearer")
    } else {
        HeaderValue::from_static("Bearer error=\"invalid_token\"")
    })
}

/// Phase 6 for failures: when a client refused for overload may try again (`Retry-After`,
/// seconds): soon, since the queue it did not fit in drains as fast as the app answers.
/// An open circuit says when its probe is due (whole seconds, rounded up).
pub fn retry_after(failure: &Error) -> Option<HeaderValue> {
    match failure.kind() {
        ErrorType::Overloaded => Some(HeaderValue::from_static("1")),
        ErrorType::CircuitOpen => {
            let wait = failure.retry_after().unwrap_or(Duration::from_secs(1));
            let secs = wait.as_millis().div_ceil(1000).max(1);
            Some(HeaderValue::from(u64::try_from(secs).unwrap_or(u64::MAX)))
        }
        _ => None,
    }
}

/// Phase 6 for failures: the status a request that got no upstream response is answered
/// with, from its error's kind.
pub fn status_of(failure: &Error) -> StatusCode {
    if let Some(status) = failure
        .answered_status()
        .and_then(|s| StatusCode::from_u16(s).ok())
    {
        return status;
    }
    match failure.kind() {
        ErrorType::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorType::BadRequest => StatusCode::BAD_REQUEST,
        ErrorType::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorType::Overloaded | ErrorType::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
        ErrorType::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorType::Forbidden => StatusCode::FORBIDDEN,
        ErrorType::ClientClosed => StatusCode::from_u16(super::ctx::CLIENT_CLOSED_STATUS)
            .unwrap_or(StatusCode::BAD_REQUEST),
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// Phase 5 (hyper engine): make the upstream's response head unambiguous for the client.
/// Returns whether the upstream connection may be reused afterwards.
///
/// hyper's client has already refused conflicting lengths; what is left is framing it
/// accepted but would pass on as received: `Content-Length` beside `Transfer-Encoding`
/// (dropped, and the connection not reused: RFC 9112 §6.3), a length repeated or listed
/// (`3, 3`: sent once, RFC 9110 §8.6), and a 204 that announced a body it must not have
/// (hyper reads none, so the bytes would be taken as the next response). A 304's length
/// is the representation's, not a body's: it stays.
pub fn normalise_response(status: StatusCode, headers: &mut HeaderMap) -> bool {
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = lengths.next().cloned();
    let repeated = lengths.next().is_some();
    let Some(first) = first else {
        return !(chunked && matches!(status.as_u16(), 204 | 304));
    };
    if chunked {
        headers.remove(header::CONTENT_LENGTH);
        return false;
    }
    let listed = first.as_bytes().contains(&b',');
    if repeated || listed {
        let n = first
            .as_bytes()
            .split(|&b| b == b',')
            .next()
            .and_then(|v| wire::parse_decimal(v.trim_ascii()));
        match n {
            Some(n) => headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n)),
            None => headers.remove(header::CONTENT_LENGTH),
        };
    }
    !(status == StatusCode::NO_CONTENT && first.as_bytes() != b"0")
}

#[cfg(test)]
mod tests;

//! The HTTP/1.1 fast path: plain requests proxied without hyper; any other request hands the connection to hyper.
//!
//! Nearly all proxied traffic is a request head with no body (or a small one) answered
//! by a response of known length. For those, hyper's server and client machinery (a
//! task per upstream connection, channels, header maps built and re-encoded on both
//! sides) was most of Redline's CPU time (benches/RESULTS.md). Here one task per client
//! connection parses the head with httparse, shares the rewrite, flow matching and
//! measurement with the hyper path (`Proxy::rewrite`, [`RequestCtx`]), sends the head
//! on a raw upstream socket (`proxy::direct`) and copies the response back,
//! usually in one read and one write each way.
//!
//! What the fast path does not take — a body not framed by a `Content-Length` or over
//! 64 KiB, `Expect`, an upgrade, HTTP/1.0, `*` or authority-form targets, HTTP/2,
//! anything httparse or the `http` types reject, a head over the size limit — goes to
//! hyper with the bytes already read, and the connection stays with hyper from then on.
//! So hyper still produces every 400 and 431, and every case it handles is handled
//! exactly as before.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::direct::{self, Conn, Head};
use super::phases::{self, Admitted, BodyLen, Refusal, Target};
use super::wire::{self, ChunkScan, Framing, MAX_HEADERS};
use super::{Proxy, ProxyBody, RequestCtx};
use crate::metrics::ErrorType;
use crate::watchdog::ConnKey;

/// Read buffer taken from the thread's pool when a connection has bytes to read.
const READ_BUF: usize = 8 * 1024;
/// Buffers kept per thread for reuse.
const POOLED: usize = 64;
/// Largest request body the fast path takes; it is read whole, then sent with the head
/// (small enough to sit in socket buffers, so an upstream that answers before reading
/// it cannot stall the exchange). Larger bodies stream through hyper.
const MAX_BODY: u64 = 64 * 1024;

/// How a client connection left the fast path.
pub enum Served {
    /// It is finished: closed by either side, or drained.
    Closed,
    /// hyper takes it from here, starting with the bytes already read.
    Fallback(Prefixed),
}

/// The shutdown signal for connections in the fast path: idle ones close, busy ones
/// answer with `connection: close` and then close.
#[derive(Debug, Default)]
pub struct Drain {
    started: AtomicBool,
    notify: Notify,
}

impl Drain {
    /// Tell every connection to finish.
    pub fn start(&self) {
        self.started.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }
}

/// Serve `stream` until it closes, drains, or has a request the fast path does not take.
pub async fn serve(
    proxy: &Proxy,
    mut stream: TcpStream,
    peer: SocketAddr,
    key: Option<ConnKey>,
    max_head: usize,
    drain: &Drain,
) -> Served {
    let mut buf = BytesMut::new();
    let limits = Limits {
        max_head,
        hyper_only: proxy.hyper_only,
    };
    loop {
        let (parts, plain) = match next_request(&stream, &mut buf, limits, drain).await {
            Next::Request(parts, plain) => (parts, plain),
            Next::Closed => return Served::Closed,
            Next::Other => {
                let prefix = buf.freeze();
                return Served::Fallback(Prefixed { prefix, stream });
            }
            Next::Refused(refusal, parts) => {
                refuse(proxy, refusal, &parts, &mut stream, peer).await;
                return Served::Closed;
            }
        };
        let busy = key.map(|k| k.busy(false));
        let request = Arrived { parts, plain, peer };
        let keep = forward(proxy, request, &mut stream, &mut buf, max_head, drain).await;
        drop(busy);
        if !keep {
            // FIN after the response rather than a reset that could destroy it.
            let _ = stream.shutdown().await;
            return Served::Closed;
        }
        if buf.is_empty() {
            recycle(std::mem::take(&mut buf));
        }
    }
}

/// A request head the fast path takes, and who sent it.
struct Arrived {
    parts: http::request::Parts,
    plain: Plain,
    peer: SocketAddr,
}

/// What the head parser needs to know besides the bytes.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Largest request head accepted.
    max_head: usize,
    /// Hand every admitted request to hyper (`REDLINE_HTTP1_ENGINE=hyper`).
    hyper_only: bool,
}

// Moved once per request: boxing the head would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(http::request::Parts, Plain),
    Closed,
    Other,
    Refused(Refusal, http::request::Parts),
}

/// Read until `buf` holds a complete request head.
async fn next_request(
    stream: &TcpStream,
    buf: &mut BytesMut,
    limits: Limits,
    drain: &Drain,
) -> Next {
    loop {
        if !buf.is_empty() {
            match parse_request(buf, limits) {
                Parsed::Ready(parts, plain) => return Next::Request(parts, plain),
                Parsed::Partial => {}
                Parsed::Other => return Next::Other,
                Parsed::Refused(refusal, parts) => return Next::Refused(refusal, parts),
            }
        }
        if buf.is_empty() {
            // Between requests: the moment a drain closes the connection.
            let drained = drain.notify.notified();
            if drain.started() {
                return Next::Closed;
            }
            tokio::select! {
                biased;
                ready = stream.readable() => if ready.is_err() { return Next::Closed },
                () = drained => return Next::Closed,
            }
        } else if stream.readable().await.is_err() {
            return Next::Closed;
        }
        make_room(buf);
        match stream.try_read_buf(buf) {
            Ok(0) => return Next::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Next::Closed,
        }
    }
}

#[allow(clippy::large_enum_variant)]
enum Parsed {
    Ready(http::request::Parts, Plain),
    Partial,
    Other,
    Refused(Refusal, http::request::Parts),
}

/// Parse and admit the head at the start of `buf` (phase 1 of `phases`). A request the
/// fast path takes leaves `buf`, its bytes shared by the header values and the URI (no
/// copy); one for hyper leaves `buf` untouched; a refused one is answered and closed.
fn parse_request(buf: &mut BytesMut, limits: Limits) -> Parsed {
    // Uninitialised: zeroing 100 headers costs more than parsing the usual five.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_head => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.max_head => return Parsed::Partial,
        Ok(_) => return refused(phases::TOO_LARGE, &req),
        // HTTP/2 with prior knowledge: hyper speaks it.
        Err(_) if buf.starts_with(H2_PREFACE) => return Parsed::Other,
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
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A refusal, with as much of the head as can be read for the access log and the flow
/// match (method, target, headers that are valid `http` values).
fn refused(refusal: Refusal, req: &httparse::Request<'_, '_>) -> Parsed {
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
fn bare_parts(method: Method, path: Option<&str>) -> http::request::Parts {
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
struct Plain {
    /// Length of the body that follows the head.
    body: usize,
    /// What admission decided (framing, `Connection: close`).
    admitted: Admitted,
}

/// Whether the fast path takes an admitted request: HTTP/1.1, origin or absolute form,
/// no body or one of at most [`MAX_BODY`] bytes framed by `Content-Length`, no `Expect`,
/// no upgrade. hyper takes the rest.
fn plain_request(version: u8, admitted: &Admitted) -> Option<Plain> {
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

type Span = (usize, usize);

fn build_parts(
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

/// Proxy one request and write its response. `true`: the connection may take another.
async fn forward(
    proxy: &Proxy,
    request: Arrived,
    client: &mut TcpStream,
    buf: &mut BytesMut,
    max_head: usize,
    drain: &Drain,
) -> bool {
    let Arrived {
        mut parts,
        plain: Plain { body, admitted },
        peer,
    } = request;
    let close = admitted.close;
    let head_request = parts.method == Method::HEAD;
    let retryable = parts.method.is_idempotent();
    let runtime = proxy.shared.runtime.load_full();
    let mut ctx = RequestCtx::start(&proxy.shared, runtime, &parts, peer);
    if body > 0 && !read_body(client, buf, body).await {
        return false; // the unfinished context records client_closed
    }
    phases::rewrite(
        &proxy.shared,
        &mut parts,
        &mut ctx,
        peer,
        None,
        admitted.body,
    );
    let mut out = take_out();
    wire::encode_request_head(&mut out, &parts);
    drop(parts);
    if body > 0 {
        out.extend_from_slice(&buf[..body]);
        buf.advance(body);
        ctx.body_progress().sent_whole(body as u64);
    }
    let timeout = ctx.flow().timeout;
    let authority = ctx.runtime().upstream_authority.clone();
    ctx.span.upstream_sent();
    let exchange = direct::exchange(&authority, &out, head_request, retryable);
    let answer = tokio::select! {
        biased;
        answer = crate::watchdog::limit(ctx.started(), timeout, exchange) => answer,
        // Dropping the unfinished context records the request as client_closed.
        () = client_gone(&*client, buf, max_head) => {
            put_out(out);
            return false;
        }
    };
    out.clear();
    let close = close || drain.started();
    let failure = match answer {
        Some(Ok((conn, head))) => {
            let written = respond(conn, head, ctx, client, &mut out, &authority, close).await;
            put_out(out);
            return written && !close;
        }
        Some(Err(e)) => phases::Failure::Upstream(e),
        None => phases::Failure::Timeout(timeout),
    };
    let resp = super::upstream_failed(ctx, &failure);
    let written = write_local(client, resp, &mut out, close).await;
    put_out(out);
    written && !close
}

/// Answer a refused request with Redline's JSON error, then close: after a framing error
/// nothing more on this connection can be trusted.
async fn refuse(
    proxy: &Proxy,
    refusal: Refusal,
    parts: &http::request::Parts,
    client: &mut TcpStream,
    peer: SocketAddr,
) {
    let runtime = proxy.shared.runtime.load_full();
    let ctx = RequestCtx::start(&proxy.shared, runtime, parts, peer);
    let resp = super::refused(ctx, refusal);
    let mut out = take_out();
    let written = write_local(client, resp, &mut out, true).await;
    put_out(out);
    if written {
        linger(client).await;
    }
}

/// How long a refused connection is read from and discarded after its answer.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// Stop writing, then read and discard what the client still sends for a moment (nginx's
/// lingering close): closing with unread bytes makes the kernel reset the connection,
/// which can destroy the answer before the client reads it.
async fn linger(client: &mut TcpStream) {
    let _ = client.shutdown().await;
    let mut sink = [0u8; 4096];
    let discard = async {
        let mut total = 0;
        while total <= LINGER_BYTES {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, discard).await;
}

/// Read until `buf` holds the `body` bytes after the head; `false` if the client left.
async fn read_body(client: &TcpStream, buf: &mut BytesMut, body: usize) -> bool {
    while buf.len() < body {
        if client.readable().await.is_err() {
            return false;
        }
        buf.reserve(body - buf.len());
        match client.try_read_buf(buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
    }
    true
}

/// Resolves if the client closes (or resets) while its response is awaited. Bytes it
/// pipelines meanwhile are kept in `buf` for the next request.
async fn client_gone(client: &TcpStream, buf: &mut BytesMut, max_head: usize) {
    loop {
        if buf.len() >= max_head {
            // Enough read ahead: stop watching rather than buffer without bound.
            return std::future::pending().await;
        }
        if client.readable().await.is_err() {
            return;
        }
        make_room(buf);
        match client.try_read_buf(buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// How passing a body on failed.
enum Broke {
    Upstream,
    Client,
}

/// Write the upstream's response head and stream its body; finish the request context.
async fn respond(
    mut conn: Conn,
    head: Head,
    mut ctx: RequestCtx,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    authority: &http::uri::Authority,
    close: bool,
) -> bool {
    ctx.upstream_responded(head.status.as_u16());
    response_head(out, &conn, &head, &ctx.request_id, close);
    conn.buf.advance(head.len);
    let passed = match head.framing {
        Framing::Empty => write(client, out).await.map(|()| true),
        Framing::Length(n) => pass_length(&mut conn, n, client, out, &mut ctx).await,
        Framing::Chunked => pass_chunked(&mut conn, client, out, &mut ctx).await,
        Framing::Close => pass_until_close(&mut conn, client, out, &mut ctx).await,
    };
    match passed {
        Ok(clean) => {
            ctx.finish(None);
            // Reused only if the response ended exactly where the upstream stopped sending.
            if clean && head.keep_alive && conn.buf.is_empty() {
                conn.release(authority);
            }
            true
        }
        Err(Broke::Upstream) => {
            ctx.finish(Some(ErrorType::UpstreamError));
            false
        }
        Err(Broke::Client) => {
            ctx.finish(Some(ErrorType::ClientClosed));
            false
        }
    }
}

/// The client's response head: the upstream's status and end-to-end headers, our request
/// id, a date if the upstream sent none, and the framing the body will have.
fn response_head(
    out: &mut Vec<u8>,
    conn: &Conn,
    head: &Head,
    request_id: &HeaderValue,
    close: bool,
) {
    wire::push_status_line(out, head.status);
    // Read again only in the rare case that the upstream's `Connection` names headers.
    let mut named: [&[u8]; 4] = [b""; 4];
    let mut n_named = 0;
    if head.connection_names {
        for (name, value) in conn.headers() {
            if n_named < named.len() && name.eq_ignore_ascii_case(b"connection") {
                named[n_named] = value;
                n_named += 1;
            }
        }
    }
    let mut has_date = false;
    for (name, value) in conn.headers() {
        let keep = if wire::is_hop_by_hop(name) {
            // A chunked body passes verbatim, so its coding header must too.
            head.framing == Framing::Chunked && name.eq_ignore_ascii_case(b"transfer-encoding")
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Written once below, from the validated value: `3, 3` or two lines become one.
            false
        } else {
            has_date |= name.eq_ignore_ascii_case(b"date");
            !name.eq_ignore_ascii_case(b"x-request-id")
                && (n_named == 0 || !wire::named_by_connection(&named[..n_named], name))
        };
        if keep {
            // Lowercase like hyper writes names, so both paths answer alike.
            let at = out.len();
            wire::push_header(out, name, value);
            out[at..at + name.len()].make_ascii_lowercase();
        }
    }
    let length = match head.framing {
        Framing::Length(n) => Some(n),
        // HEAD and 304 answers keep the length of what a GET would get; 1xx and 204 never
        // carry one (RFC 9110 §8.6).
        Framing::Empty if head.status.as_u16() >= 200 && head.status != StatusCode::NO_CONTENT => {
            head.length
        }
        _ => None,
    };
    if let Some(n) = length {
        out.extend_from_slice(b"content-length: ");
        wire::push_decimal(out, n);
        out.extend_from_slice(b"\r\n");
    }
    wire::push_header(out, b"x-request-id", request_id.as_bytes());
    if !has_date {
        wire::push_date(out);
    }
    if head.framing == Framing::Close {
        wire::push_header(out, b"transfer-encoding", b"chunked");
    }
    if close {
        wire::push_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

async fn write(client: &mut TcpStream, bytes: &[u8]) -> Result<(), Broke> {
    client.write_all(bytes).await.map_err(|_| Broke::Client)
}

async fn read_more(conn: &mut Conn) -> Result<(), Broke> {
    match conn.read_more().await {
        Ok(0) | Err(_) => Err(Broke::Upstream),
        Ok(_) => Ok(()),
    }
}

/// Pass `n` body bytes; the head in `out` leaves with the first of them.
async fn pass_length(
    conn: &mut Conn,
    mut n: u64,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    ctx: &mut RequestCtx,
) -> Result<bool, Broke> {
    let first = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
    out.extend_from_slice(&conn.buf[..first]);
    conn.buf.advance(first);
    ctx.add_bytes_out(first);
    n -= first as u64;
    write(client, out).await?;
    while n > 0 {
        read_more(conn).await?;
        let take = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        write(client, &conn.buf[..take]).await?;
        conn.buf.advance(take);
        ctx.add_bytes_out(take);
        n -= take as u64;
    }
    Ok(true)
}

/// Pass a chunked body verbatim up to its last chunk and trailers.
async fn pass_chunked(
    conn: &mut Conn,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    ctx: &mut RequestCtx,
) -> Result<bool, Broke> {
    let mut scan = ChunkScan::default();
    loop {
        let seen = scan.scan(&conn.buf).map_err(|_| Broke::Upstream)?;
        out.extend_from_slice(&conn.buf[..seen.used]);
        conn.buf.advance(seen.used);
        ctx.add_bytes_out(usize::try_from(seen.data).unwrap_or(usize::MAX));
        if !out.is_empty() {
            write(client, out).await?;
            out.clear();
        }
        if scan == ChunkScan::Done {
            return Ok(true);
        }
        read_more(conn).await?;
    }
}

/// Pass a body that ends when the upstream closes, re-framed as chunks for the client.
async fn pass_until_close(
    conn: &mut Conn,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    ctx: &mut RequestCtx,
) -> Result<bool, Broke> {
    loop {
        wire::push_chunk(out, &conn.buf);
        ctx.add_bytes_out(conn.buf.len());
        conn.buf.clear();
        if !out.is_empty() {
            write(client, out).await?;
            out.clear();
        }
        match conn.read_more().await {
            Ok(0) => {
                write(client, wire::LAST_CHUNK).await?;
                return Ok(false);
            }
            Ok(_) => {}
            Err(_) => return Err(Broke::Upstream),
        }
    }
}

/// Write a response Redline made itself (its context is already finished).
async fn write_local(
    client: &mut TcpStream,
    resp: Response<ProxyBody>,
    out: &mut Vec<u8>,
    close: bool,
) -> bool {
    let (parts, mut body) = resp.into_parts();
    let bytes = body.take_local().unwrap_or_default();
    wire::push_status_line(out, parts.status);
    for (name, value) in &parts.headers {
        wire::push_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    wire::push_date(out);
    wire::push_header(out, b"content-length", bytes.len().to_string().as_bytes());
    if close {
        wire::push_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes);
    write(client, out).await.is_ok()
}

thread_local! {
    // Header positions between parsing a head and building its `Parts` (reused: no allocation).
    static SPANS: RefCell<Vec<(Span, Span)>> = const { RefCell::new(Vec::new()) };
    static READ_BUFS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static OUT_BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Ensure `buf` has room to read into; an idle connection holds no buffer, so its first
/// read takes one from the thread's pool.
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = READ_BUFS
            .with_borrow_mut(Vec::pop)
            .unwrap_or_else(|| BytesMut::with_capacity(READ_BUF));
    } else if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_BUF);
    }
}

/// Return an emptied read buffer to the pool, if its memory is free again (the last
/// request's header values may still share it, e.g. in a queued access-log line).
fn recycle(mut buf: BytesMut) {
    if buf.try_reclaim(READ_BUF) && buf.capacity() <= 4 * READ_BUF {
        READ_BUFS.with_borrow_mut(|pool| {
            if pool.len() < POOLED {
                pool.push(buf);
            }
        });
    }
}

fn take_out() -> Vec<u8> {
    OUT_BUFS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(4096))
}

fn put_out(mut out: Vec<u8>) {
    if out.capacity() > 2 * MAX_BODY as usize {
        return;
    }
    out.clear();
    OUT_BUFS.with_borrow_mut(|pool| {
        if pool.len() < POOLED {
            pool.push(out);
        }
    });
}

/// A client connection handed to hyper: the bytes the fast path read first, then the socket.
pub struct Prefixed {
    prefix: Bytes,
    stream: TcpStream,
}

impl Prefixed {
    /// A connection nothing was read from yet.
    pub fn plain(stream: TcpStream) -> Self {
        Prefixed {
            prefix: Bytes::new(),
            stream,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;

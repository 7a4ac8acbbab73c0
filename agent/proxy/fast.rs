//! The HTTP/1.1 fast path: plain requests proxied without hyper; any other request hands the connection to hyper.
//!
//! Nearly all proxied traffic is a request head with no body (or a small one) answered
//! by a response of known length. For those, hyper's server and client machinery (a
//! task per upstream connection, channels, header maps built and re-encoded on both
//! sides) was most of Redline's CPU time (benches/RESULTS.md). Here one task per client
//! connection parses the head with httparse, shares the rewrite, flow matching and
//! measurement with the hyper path (`phases`, [`RequestCtx`]), sends the head
//! on a raw upstream socket (`proxy::direct`) and copies the response back,
//! usually in one read and one write each way.
//!
//! Every connection's first head is admitted here (`phases::admit`); a refused one is
//! answered here as JSON. What the fast path does not take — a body not framed by a
//! `Content-Length` or over 64 KiB, `Expect`, an upgrade, HTTP/1.0, `OPTIONS *`,
//! HTTP/2 — goes to hyper with the bytes already read, and the connection stays with
//! hyper from then on.
//!
//! Submodules: `head` (parse and admit), `relay` (response head and body relays),
//! `pool` (per-thread buffers), `prefixed` (the hand-over to hyper).

mod head;
mod pool;
mod prefixed;
mod relay;

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::direct::{self, Conn, Head};
use super::phases::{self, Refusal};
use super::retry;
use super::wire::{self, Framing};
use super::{Proxy, RequestCtx};
use crate::error::ErrorType;
use crate::shutdown::Watch;
use crate::watchdog::ConnKey;
use head::{Limits, Parsed, Plain, parse_request};
use pool::{make_room, put_out, recycle, take_out};
pub use prefixed::Prefixed;
use relay::{
    Broke, pass_chunked, pass_length, pass_until_close, response_head, write, write_local,
};

/// How a client connection left the fast path.
pub enum Served {
    /// It is finished: closed by either side, or drained.
    Closed,
    /// hyper takes it from here, starting with the bytes already read.
    Fallback(Prefixed),
}

/// Serve `stream` until it closes, drains, or has a request the fast path does not take.
///
/// When `drain` is signaled, an idle connection (or one part-way through a head) closes
/// at once; one with a request in flight answers it with `connection: close`, then closes.
pub async fn serve(
    proxy: &Proxy,
    mut stream: TcpStream,
    peer: SocketAddr,
    key: Option<ConnKey>,
    max_head: usize,
    drain: &Watch,
) -> Served {
    let mut buf = BytesMut::new();
    let mut limits = Limits {
        max_head,
        hyper_only: proxy.hyper_only,
        first: true,
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
                // Boxed: its lingering read buffer would otherwise make every connection's
                // task that much larger, refused or not (2 MiB per 1,000 connections).
                Box::pin(refuse(proxy, refusal, &parts, &mut stream, peer)).await;
                return Served::Closed;
            }
        };
        limits.first = false;
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
    drain: &Watch,
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
        // Between requests or part-way through a head, no request is in flight: a drain
        // closes the connection at once (a half-sent head must not hold up the exit).
        if drain.is_signaled() {
            return Next::Closed;
        }
        tokio::select! {
            biased;
            ready = stream.readable() => if ready.is_err() { return Next::Closed },
            () = drain.signaled() => return Next::Closed,
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

/// Proxy one request and write its response. `true`: the connection may take another.
async fn forward(
    proxy: &Proxy,
    request: Arrived,
    client: &mut TcpStream,
    buf: &mut BytesMut,
    max_head: usize,
    drain: &Watch,
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
    let mut ctx = RequestCtx::start(
        &proxy.shared,
        proxy.telemetry.as_ref(),
        runtime,
        &parts,
        peer,
    );
    if body > 0 {
        let pause = ctx.runtime().config.limits.body_read_timeout;
        match read_body(client, buf, body, pause).await {
            BodyRead::Whole => {}
            BodyRead::Gone => return false, // the unfinished context records client_closed
            BodyRead::Stalled => {
                // Boxed: its lingering read buffer would otherwise enlarge every connection's task.
                Box::pin(answer_stalled(ctx, client)).await;
                return false;
            }
        }
    }
    let mut out = take_out();
    let mut admitted_load = ctx.admit_load();
    // Checked here, not inside: an async call costs its future even when it returns at once.
    if admitted_load.is_ok() && ctx.has_access_rule() {
        admitted_load = ctx.authorize(&parts.headers).await;
    }
    if let Err(shed) = admitted_load {
        // Its body, if any, was read: the connection can take the next request.
        let resp = super::upstream_failed(ctx, &shed);
        let close = close || drain.is_signaled();
        let written = write_local(client, resp, &mut out, close).await;
        put_out(out);
        return written && !close;
    }
    phases::rewrite(&mut parts, &mut ctx, peer, None, admitted.body);
    wire::encode_request_head(&mut out, &parts);
    // The whole request, body included, is in `out`: it can be sent again as it was.
    let tries = retry::Tries::start(&ctx, &parts.method, true);
    drop(parts);
    if body > 0 {
        ctx.body_passed(&buf[..body]);
        out.extend_from_slice(&buf[..body]);
        buf.advance(body);
        ctx.body_progress().sent_whole(body as u64);
    }
    let timeout = ctx.flow().timeout;
    let authority = ctx.runtime().upstream_authority.clone();
    ctx.span.upstream_sent();
    let limits = ctx.runtime().config.upstream_connections;
    let (head, first_span, gate) = (&out, ctx.trace.client_span_id, &proxy.gate);
    let (authority_ref, limits_ref) = (&authority, &limits);
    let attempt = move |resend: Option<[u8; 8]>| {
        // A resend names its own CLIENT span as the upstream's parent: a copy of the head
        // with the span id replaced (a retry may cost a copy; the first try none).
        let head = match resend {
            None => Cow::Borrowed(head.as_slice()),
            Some(span_id) => Cow::Owned(respan(head, &first_span, &span_id)),
        };
        async move {
            direct::exchange(
                authority_ref,
                &head,
                head_request,
                retryable,
                gate,
                limits_ref,
            )
            .await
        }
    };
    let mut sent = retry::Sent::Once;
    let status = |(_, head): &(Conn, Head)| head.status.as_u16();
    let exchange = retry::exchange(&ctx, tries, status, attempt, &mut sent);
    let answer = tokio::select! {
        biased;
        answer = crate::watchdog::limit(ctx.started(), timeout, exchange) => answer,
        // Dropping the unfinished context records the request as client_closed.
        () = client_gone(&*client, buf, max_head) => {
            retry::record(&mut ctx, sent);
            put_out(out);
            return false;
        }
    };
    retry::record(&mut ctx, sent);
    out.clear();
    let close = close || drain.is_signaled();
    let failure = match answer {
        Some(Ok((conn, head))) => {
            let written = respond(conn, head, ctx, client, &mut out, &authority, close).await;
            put_out(out);
            return written && !close;
        }
        Some(Err(e)) => e,
        None => phases::timed_out(timeout),
    };
    let resp = super::upstream_failed(ctx, &failure);
    let written = write_local(client, resp, &mut out, close).await;
    put_out(out);
    written && !close
}

/// `head` with every lowercase-hex occurrence of span id `old` (what the trace headers
/// carry: `traceparent`, `b3`, `x-b3-spanid`) replaced by `new`. The old id is random
/// and Redline's own, so it appears nowhere else.
fn respan(head: &[u8], old: &[u8; 8], new: &[u8; 8]) -> Vec<u8> {
    let (old, new) = (crate::trace::hex(old), crate::trace::hex(new));
    let (old, new) = (old.as_bytes(), new.as_bytes());
    let mut out = Vec::with_capacity(head.len());
    let mut rest = head;
    while !rest.is_empty() {
        if rest.starts_with(old) {
            out.extend_from_slice(new);
            rest = &rest[old.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
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
    let ctx = RequestCtx::start(
        &proxy.shared,
        proxy.telemetry.as_ref(),
        runtime,
        parts,
        peer,
    );
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

/// How reading a request body ended.
enum BodyRead {
    Whole,
    /// The client closed or reset its connection.
    Gone,
    /// The client sent nothing for the body read timeout.
    Stalled,
}

/// Read until `buf` holds the `body` bytes after the head, waiting at most `pause` for
/// each read (nginx's `client_body_timeout`: a trickling body must not hold a connection).
async fn read_body(
    client: &TcpStream,
    buf: &mut BytesMut,
    body: usize,
    pause: Duration,
) -> BodyRead {
    while buf.len() < body {
        match crate::watchdog::limit(Instant::now(), pause, client.readable()).await {
            None => return BodyRead::Stalled,
            Some(Err(_)) => return BodyRead::Gone,
            Some(Ok(())) => {}
        }
        buf.reserve(body - buf.len());
        match client.try_read_buf(buf) {
            Ok(0) => return BodyRead::Gone,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return BodyRead::Gone,
        }
    }
    BodyRead::Whole
}

/// Answer a request whose body stalled with 408 (`client_timeout`, the client's failure),
/// then close: the rest of its body may still come, and nothing after it can be trusted.
async fn answer_stalled(ctx: RequestCtx, client: &mut TcpStream) {
    let failure = phases::client_failed(phases::ClientFault::TimedOut);
    let resp = super::upstream_failed(ctx, &failure);
    let mut out = take_out();
    let written = write_local(client, resp, &mut out, true).await;
    put_out(out);
    if written {
        linger(client).await;
    }
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
    let status = head.status.as_u16();
    if head.status.is_server_error() {
        // The app failed: its connection is dropped, its failure recorded, the user spared.
        if let Some(chosen) = super::fallback::choose(&ctx, ErrorType::Status) {
            let resp = super::fallback::answer(ctx, chosen, ErrorType::Status, status);
            return write_local(client, resp, out, close).await;
        }
    }
    ctx.upstream_responded(status);
    if let Framing::Length(n) = head.framing {
        ctx.begin_capture(status, conn.headers(), Some(n));
    }
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
        Err(Broke::UpstreamUnsent) => {
            // The head waits in `out` with the first chunks: nothing reached the client yet.
            out.clear();
            let failure = super::upstream::broken("malformed chunked body from the upstream");
            let resp = super::upstream_failed(ctx, &failure);
            write_local(client, resp, out, true).await;
            false
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

#[cfg(test)]
mod tests;

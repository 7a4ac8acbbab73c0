//! Upstream exchanges for the fast path: a raw keep-alive socket per exchange, driven by the request's own task.
//!
//! hyper's client runs every upstream connection as a task of its own and hands
//! requests and responses to it over channels; for a body-less request that is
//! most of the work (callgrind: ~13,000 of ~38,000 instructions a request). Here
//! the request's task writes the head and reads the response head itself, on a
//! socket taken from this thread's idle stack, and the fast path streams the
//! body straight from this socket to the client.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;
use std::task::{Context, Waker};

use bytes::{Buf, BytesMut};
use http::uri::Authority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::gate::{self, Gate, Open, Permit, Returning};
use super::phases::may_retry;
use super::upstream::{Idle, broken, open, park};
use super::wire::{self, Framing, MAX_HEADERS};
use crate::config::UpstreamConnections;
use crate::error::{Error, Retry};

/// Read buffer of an upstream connection; a response head must fit in [`MAX_HEAD`].
const READ_BUF: usize = 16 * 1024;
/// Largest response head accepted (hyper's default buffer limit is ~400 KiB; heads this
/// large are a broken upstream, not a real app).
const MAX_HEAD: usize = 64 * 1024;

thread_local! {
    static IDLE: RefCell<Vec<Idle<Conn>>> = const { RefCell::new(Vec::new()) };
}

/// An upstream connection with the bytes read from it and not yet passed on.
pub struct Conn {
    stream: TcpStream,
    /// Unconsumed bytes from the upstream: after [`exchange`], the response head and
    /// whatever body bytes came with it.
    pub buf: BytesMut,
    headers: Vec<(Range<usize>, Range<usize>)>,
    /// Its place in the upstream's gate, until it closes.
    open: Open,
}

/// A response head sitting at the start of [`Conn::buf`].
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// The status code.
    pub status: http::StatusCode,
    /// Length of the head in the buffer; body bytes follow.
    pub len: usize,
    /// How the body ends.
    pub framing: Framing,
    /// The response's one validated `Content-Length`, if it sent one.
    pub length: Option<u64>,
    /// The upstream allows another request on this connection, and the framing is
    /// unambiguous enough to take it at its word.
    pub keep_alive: bool,
    /// A `Connection` header names other headers (to be dropped as hop-by-hop).
    pub connection_names: bool,
}

impl Conn {
    /// The response head's headers (names and values), as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (&self.buf[n.clone()], &self.buf[v.clone()]))
    }

    /// Read more bytes from the upstream into `buf`; `Ok(0)` at its end.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_BUF);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Put the connection back on this thread's idle stack. Call only when the response
    /// ended exactly at the end of `buf` and the upstream keeps the connection alive.
    /// Closed instead when requests wait for its place (see `gate`).
    pub fn release(mut self, authority: &Authority) {
        self.buf.clear();
        let gate = match self.open.gate().returning() {
            Returning::Close => return,
            Returning::Park => None,
            // Rare (requests are waiting): the clone outlives the connection's move.
            Returning::ParkAndWake => Some(self.open.gate().clone()),
        };
        IDLE.with_borrow_mut(|idle| park(idle, authority, self));
        if let Some(gate) = gate {
            gate.wake_waiters();
        }
    }

    /// Write `head`, read the response head. A failure says whether the request may be
    /// tried again: always when nothing was written, if idempotent when no byte came back.
    async fn send(&mut self, head: &[u8], head_request: bool) -> Result<Head, Error> {
        if let Err(e) = self.stream.write_all(head).await {
            let unsent = broken("cannot write to the upstream");
            return Err(unsent.caused_by(e).retry(Retry::Always));
        }
        let mut heard = false;
        loop {
            match self.read_more().await {
                // Not one byte came back: on a reused connection, it was closed under us.
                Ok(0) if !heard => return Err(closed_early().retry(Retry::IfIdempotent)),
                Ok(0) => return Err(closed_early()),
                Err(e) => {
                    let retry = if heard {
                        Retry::Never
                    } else {
                        Retry::IfIdempotent
                    };
                    return Err(broken("upstream exchange failed").caused_by(e).retry(retry));
                }
                Ok(_) => heard = true,
            }
            if let Some(head) = self.parse_head(head_request)? {
                return Ok(head);
            }
        }
    }

    /// Parse the head at the start of `buf`: `None` while incomplete. Interim (1xx) heads
    /// are dropped, as hyper's client does.
    fn parse_head(&mut self, head_request: bool) -> Result<Option<Head>, Error> {
        loop {
            // Uninitialised: zeroing 100 headers costs more than parsing the usual five.
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut resp,
                &self.buf,
                &mut headers,
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => return Ok(None),
                Ok(httparse::Status::Partial) => {
                    return Err(broken("response head too large"));
                }
                Err(_) => return Err(broken("not an HTTP/1 response head")),
            };
            let code = resp.code.unwrap_or(0);
            if code == 101 {
                return Err(broken("101 to a request without upgrade"));
            }
            if (100..200).contains(&code) {
                self.buf.advance(len);
                continue;
            }
            let status =
                http::StatusCode::from_u16(code).map_err(|_| broken("invalid status code"))?;
            let http10 = resp.version == Some(0);
            let body = wire::response_body(head_request, code, http10, resp.headers).map_err(
                |e| match e {
                    wire::WireError::TransferEncoding => {
                        broken("transfer-encoding in an HTTP/1.0 response")
                    }
                    _ => broken("invalid content-length"),
                },
            )?;
            let mut keep_alive = !http10;
            let mut connection_names = false;
            let base = self.buf.as_ptr() as usize;
            self.headers.clear();
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("connection") {
                    keep_alive = if http10 {
                        h.value.eq_ignore_ascii_case(b"keep-alive")
                    } else {
                        keep_alive && !wire::has_close(h.value)
                    };
                    connection_names |= wire::names_headers(h.value);
                }
                let n = h.name.as_ptr() as usize - base;
                let v = h.value.as_ptr() as usize - base;
                self.headers
                    .push((n..n + h.name.len(), v..v + h.value.len()));
            }
            return Ok(Some(Head {
                status,
                len,
                framing: body.framing,
                length: body.length,
                keep_alive: keep_alive && body.reusable,
                connection_names,
            }));
        }
    }
}

fn closed_early() -> Error {
    broken("the upstream closed the connection before the response head ended")
}

/// Send a body-less request `head` to `authority` and read the response head, on an idle
/// connection of this thread if there is one, else on a new one once `gate` lets it open
/// (`limits`: the caps, queue and connect timeout).
///
/// A kept-alive connection the upstream closed just before the request is replaced
/// silently when the request was not written, or when it may be repeated (`retryable`:
/// an idempotent method) and no byte came back.
pub async fn exchange(
    authority: &Authority,
    head: &[u8],
    head_request: bool,
    retryable: bool,
    gate: &Arc<Gate>,
    limits: &UpstreamConnections,
) -> Result<(Conn, Head), Error> {
    if let Some(done) = reuse(authority, head, head_request, retryable).await {
        return done;
    }
    // Rare next to reuse, and its wait, timers and first exchange make a large future:
    // boxed, rather than enlarging every client connection's task.
    Box::pin(exchange_new(
        authority,
        head,
        head_request,
        retryable,
        gate,
        limits,
    ))
    .await
}

/// Send on this thread's idle connections to `authority`; `None` once none is left.
async fn reuse(
    authority: &Authority,
    head: &[u8],
    head_request: bool,
    retryable: bool,
) -> Option<Result<(Conn, Head), Error>> {
    while let Some(mut conn) = checkout(authority) {
        match conn.send(head, head_request).await {
            Ok(resp) => return Some(Ok((conn, resp))),
            // The whole request (head and any body) is in `head`: it can always be resent.
            Err(e) if may_retry(&e, retryable, true) => {}
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// Open a new connection once `gate` lets it (looking again at the idle ones whenever
/// something was freed), and send on it.
async fn exchange_new(
    authority: &Authority,
    head: &[u8],
    head_request: bool,
    retryable: bool,
    gate: &Arc<Gate>,
    limits: &UpstreamConnections,
) -> Result<(Conn, Head), Error> {
    let mut waiter = gate.waiter(limits);
    let permit = loop {
        if let Some(permit) = waiter.next().await? {
            break permit;
        }
        if let Some(done) = reuse(authority, head, head_request, retryable).await {
            return done;
        }
    };
    drop(waiter);
    let Permit {
        opening,
        open: place,
    } = permit;
    let mut conn = Conn {
        stream: open(authority, limits.connect_timeout).await?,
        buf: BytesMut::with_capacity(READ_BUF),
        headers: Vec::new(),
        open: place,
    };
    // Being opened until answered (the app accepted it), failed, or `gate::PROVING`.
    let resp = gate::proving(opening, conn.send(head, head_request)).await?;
    Ok((conn, resp))
}

/// The most recently released connection to `authority` that has not heard from its
/// upstream since (a readable idle socket means a close or stray bytes: unusable).
fn checkout(authority: &Authority) -> Option<Conn> {
    IDLE.with_borrow_mut(|idle| {
        while let Some(i) = idle.iter().rposition(|c| c.authority == *authority) {
            // `remove`, not `swap_remove`: trimming in `park` relies on oldest-first order.
            let c = idle.remove(i).conn;
            // Readiness already seen by the reactor, no system call: Pending means quiet.
            let mut cx = Context::from_waker(Waker::noop());
            if c.stream.poll_read_ready(&mut cx).is_pending() {
                return Some(c);
            }
        }
        None
    })
}

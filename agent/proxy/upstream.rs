//! Connections to the upstream: keep-alive HTTP/1.1 senders kept per worker thread, without a lock.
//!
//! Like an nginx worker's keep-alive cache, each runtime thread keeps its own
//! stack of idle connections: a checkout is a `Vec::pop` on a thread-local,
//! with no hashing, no mutex and no task spawned to watch the connection come
//! back. A connection returns to the stack only when its response body ended
//! cleanly (and the request body was sent whole), so a reused sender is idle.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::gate::{Gate, Open, Permit, Returning};
use super::phases::may_retry;
use super::request_body::CountingBody;
use crate::config::UpstreamConnections;
use crate::error::{Error, ErrorType, Retry};

/// Drop idle connections older than this; upstream servers close theirs sooner or later anyway.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per worker thread; more are closed on release.
const MAX_IDLE_PER_THREAD: usize = 512;
/// How long a released connection may take to report ready before it is skipped.
const READY_WAIT: Duration = Duration::from_millis(100);

type Sender = SendRequest<CountingBody>;

/// An idle keep-alive connection on a thread's stack (both engines keep one).
pub(super) struct Idle<C> {
    pub(super) authority: Authority,
    pub(super) conn: C,
    since: Instant,
}

/// Push `conn` on a thread's idle stack, dropping entries idle over [`IDLE_TIMEOUT`] and,
/// past [`MAX_IDLE_PER_THREAD`], `conn` itself.
pub(super) fn park<C>(idle: &mut Vec<Idle<C>>, authority: &Authority, conn: C) {
    let now = Instant::now();
    // The oldest entries sit at the bottom of the stack: trim them here, cheaply.
    let stale = idle
        .iter()
        .take_while(|c| now.duration_since(c.since) > IDLE_TIMEOUT)
        .count();
    idle.drain(..stale);
    if idle.len() < MAX_IDLE_PER_THREAD {
        idle.push(Idle {
            authority: authority.clone(),
            conn,
            since: now,
        });
    }
}

thread_local! {
    static IDLE: RefCell<Vec<Idle<Sender>>> = const { RefCell::new(Vec::new()) };
}

/// The upstream refused or could not be reached. Nothing was sent, so the model's verdict
/// is `Always`; the proxy still does not loop on connects (the flow's timeout bounds the
/// whole exchange, and a refused connect would only be refused again).
pub(super) fn unavailable(source: io::Error) -> Error {
    Error::new(
        ErrorType::UpstreamUnavailable,
        "cannot connect to the upstream",
    )
    .caused_by(source)
    .retry(Retry::Always)
}

/// The exchange broke or the answer was not HTTP.
pub(super) fn broken(what: &'static str) -> Error {
    Error::new(ErrorType::UpstreamError, what)
}

/// A connection on loan for one exchange; [`Lease::release`] returns it for reuse.
pub struct Lease {
    authority: Authority,
    sender: Sender,
    gate: Arc<Gate>,
}

impl Lease {
    /// Put the connection back on this thread's idle stack (or close it when requests
    /// wait for its place, see `gate`). Call only after the response body ended and the
    /// request body was sent completely.
    pub fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        let wake = match self.gate.returning() {
            Returning::Close => return,
            Returning::Park => false,
            Returning::ParkAndWake => true,
        };
        IDLE.with_borrow_mut(|idle| park(idle, &self.authority, self.sender));
        if wake {
            self.gate.wake_waiters();
        }
    }
}

/// Send `req` (origin-form URI, Host set) to the upstream at `authority`, on an
/// idle connection if this thread has one, else on a new one once `gate` lets it open
/// (`limits`: the caps, queue and connect timeout).
///
/// A kept-alive connection the upstream closed just before the request is replaced when
/// `phases::may_retry` allows: always if the request was not written, and for an
/// `idempotent` body-less request that got no byte of answer (sent again from a copy
/// of its head). An interim (1xx) answer is a byte of answer: the app had the request.
pub async fn send(
    authority: &Authority,
    mut req: Request<CountingBody>,
    idempotent: bool,
    gate: &Arc<Gate>,
    limits: &UpstreamConnections,
) -> Result<(Response<Incoming>, Lease), Error> {
    // hyper reports a close after a 1xx as an incomplete message, like one before any byte.
    let interim = idempotent.then(|| Arc::new(AtomicBool::new(false)));
    let failed = |e: hyper::Error| {
        let e = exchange_failed(e);
        match &interim {
            Some(heard) if heard.load(Relaxed) => e.retry(Retry::Never),
            _ => e,
        }
    };
    hear_interim(&mut req, interim.as_ref());
    let mut waiting = None;
    let permit = loop {
        while let Some(mut sender) = checkout(authority).await {
            // Copied only when a reused connection is tried: the rare hyper-engine request.
            let replay = http_body::Body::is_end_stream(req.body()).then(|| head_of(&req));
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, lease(authority, sender, gate))),
                Err(mut e) => match e.take_message() {
                    // Never written: the idle connection had just been closed. Try another.
                    Some(returned) => req = returned,
                    None => {
                        let e = failed(e.into_error());
                        match replay.filter(|_| may_retry(&e, idempotent, true)) {
                            Some(head) => {
                                req = head;
                                hear_interim(&mut req, interim.as_ref());
                            }
                            None => return Err(e),
                        }
                    }
                },
            }
        }
        let waiter = waiting.get_or_insert_with(|| gate.waiter(limits));
        if let Some(permit) = waiter.next().await? {
            break permit;
        }
    };
    drop(waiting);
    let Permit { opening, open } = permit;
    let mut sender = connect(authority, open, limits.connect_timeout).await?;
    // Being opened until answered (the app accepted it), failed, or `gate::PROVING`.
    match super::gate::proving(opening, sender.send_request(req)).await {
        Ok(resp) => Ok((resp, lease(authority, sender, gate))),
        Err(e) => Err(failed(e)),
    }
}

/// Note in `heard` when `req` gets an interim (1xx) answer.
fn hear_interim(req: &mut Request<CountingBody>, heard: Option<&Arc<AtomicBool>>) {
    if let Some(heard) = heard {
        let heard = heard.clone();
        hyper::ext::on_informational(req, move |_| heard.store(true, Relaxed));
    }
}

/// A failed hyper exchange; one that ended or reset before any response byte (the
/// upstream's keep-alive timeout racing our reuse) may be repeated when idempotent.
fn exchange_failed(e: hyper::Error) -> Error {
    let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<io::Error>());
    let unanswered = e.is_incomplete_message()
        || matches!(
            io.map(io::Error::kind),
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        );
    let retry = if unanswered {
        Retry::IfIdempotent
    } else {
        Retry::Never
    };
    broken("upstream exchange failed").caused_by(e).retry(retry)
}

/// A body-less copy of `req`'s head, to send again (a retry's try).
pub(super) fn head_of(req: &Request<CountingBody>) -> Request<CountingBody> {
    let mut copy = Request::new(CountingBody::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// A body-less `GET /`: what a try gets should the first request already be gone (never:
/// without retries there is one try, with them every try sends a copy).
pub(super) fn empty_request() -> Request<CountingBody> {
    Request::new(CountingBody::empty())
}

fn lease(authority: &Authority, sender: Sender, gate: &Arc<Gate>) -> Lease {
    Lease {
        authority: authority.clone(),
        sender,
        gate: gate.clone(),
    }
}

/// The most recently released live connection to `authority` on this thread.
async fn checkout(authority: &Authority) -> Option<Sender> {
    loop {
        let mut sender = IDLE.with_borrow_mut(|idle| pop_for(idle, authority))?;
        if sender.is_ready() {
            return Some(sender);
        }
        // Released a moment ago: the connection task may not have seen the end yet.
        if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
            return Some(sender);
        }
    }
}

fn pop_for(idle: &mut Vec<Idle<Sender>>, authority: &Authority) -> Option<Sender> {
    while let Some(i) = idle.iter().rposition(|c| c.authority == *authority) {
        // `remove`, not `swap_remove`: trimming in `park` relies on oldest-first order.
        let c = idle.remove(i);
        if !c.conn.is_closed() {
            return Some(c.conn);
        }
    }
    None
}

/// Open a new connection and start its task (with upgrades, for WebSocket tunnels); the
/// task holds its place in the gate (`open`) until the connection closes or is upgraded.
async fn connect(authority: &Authority, open: Open, timeout: Duration) -> Result<Sender, Error> {
    let stream = self::open(authority, timeout).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(exchange_failed)?;
    tokio::spawn(async move {
        let _open = open;
        if let Err(error) = conn.with_upgrades().await {
            tracing::debug!(%error, "Upstream connection ended with an error.");
        }
    });
    Ok(sender)
}

/// Open a TCP connection to `authority` (port 80 unless given), Nagle off, giving up after
/// `timeout` (`upstream_connections.connect_timeout`: unreachable, so 502, not the app's
/// timeout; the flow's timeout still bounds the whole exchange).
pub(super) async fn open(authority: &Authority, timeout: Duration) -> Result<TcpStream, Error> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(unavailable(e)),
        Err(_) => {
            let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            return Err(unavailable(e));
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

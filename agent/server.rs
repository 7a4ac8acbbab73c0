//! Listeners: accept connections, serve HTTP/1.1 and h2c on each, and drain them on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::Proxy;
use crate::proxy::fast::{self, Prefixed, Served};
use crate::shutdown::{self, Watch};
use crate::watchdog::{Busy, ConnKey};

/// Limits applied to every client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// A client must send its complete header block within this time. On proxy workers
    /// (see `watchdog`) this bounds any idle spell of a connection with no request in
    /// progress, which is when a header is awaited.
    pub header_read_timeout: Duration,
    /// Largest accepted request header block; larger ones get 431.
    pub max_header_bytes: usize,
}

/// A failed accept is logged at most this often, with how many it stands for.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Where a server's connections come from.
#[derive(Debug)]
pub enum Connections {
    /// Its own listening socket.
    Listener(TcpListener),
    /// Connections handed over by an acceptor on another thread (see `workers`).
    Handed(tokio::sync::mpsc::Receiver<(std::net::TcpStream, SocketAddr)>),
}

impl Connections {
    async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        match self {
            Connections::Listener(listener) => listener.accept().await,
            Connections::Handed(rx) => match rx.recv().await {
                // Registered with this thread's runtime here, not the acceptor's.
                Some((stream, peer)) => Ok((TcpStream::from_std(stream)?, peer)),
                None => std::future::pending().await,
            },
        }
    }
}

/// Accept connections from `incoming` until `shutdown` is signaled, then stop accepting
/// and wait up to `grace` for open connections to finish their in-flight requests.
///
/// Each connection holds a [`Watch`] of this server's own drain: on the fast path it
/// closes when idle and answers its request in flight with `connection: close`; under
/// hyper it gets `graceful_shutdown()`. The drain resolves when the last one ends.
///
/// With `fast` (proxy workers only, where the watchdog keeps the header-read limit),
/// connections start on the proxy's HTTP/1.1 fast path (`proxy::fast`) and go to hyper
/// only for what it does not take.
pub async fn serve<F, Fut, B>(
    mut incoming: Connections,
    limits: ConnLimits,
    handler: F,
    shutdown: Watch,
    grace: Duration,
    fast: Option<Arc<Proxy>>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // On a thread with a watchdog it keeps the header-read limit; elsewhere hyper does.
    let builder = Arc::new(builder(limits, crate::watchdog::active()));
    let fast = fast.filter(|_| crate::watchdog::active());
    let (drain, conns) = shutdown::channel();
    let (mut failures, mut failed_log) = (0, crate::fdlimit::Throttle::new(ACCEPT_LOG_EVERY));
    loop {
        let accepted = tokio::select! {
            accepted = incoming.accept() => accepted,
            () = shutdown.signaled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                failures += 1;
                if let Some(n) = failed_log.note(std::time::Instant::now()) {
                    tracing::warn!(%error, failures = n, "Accept failed; backing off.");
                }
                tokio::time::sleep(crate::fdlimit::accept_backoff(failures)).await;
                continue;
            }
        };
        failures = 0;
        let _ = stream.set_nodelay(true);
        let key = crate::watchdog::conn_opened();
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |req| {
            let busy = key.map(|k| k.busy(req.version() == http::Version::HTTP_2));
            let response = handler(req, peer);
            async move { Ok::<_, Infallible>(response.await?.map(|body| Tracked { body, _busy: busy })) }
        });
        let registration = key.map(ConnKey::registration);
        // Taken now: the drain waits for this connection from here on.
        let watch = conns.clone();
        let (builder, fast) = (builder.clone(), fast.clone());
        let task = tokio::spawn(async move {
            let _registration = registration;
            let io = match fast {
                Some(proxy) => {
                    let max_head = limits.max_header_bytes;
                    match fast::serve(&proxy, stream, peer, key, max_head, &watch).await {
                        Served::Closed => return,
                        Served::Fallback(io) => io,
                    }
                }
                None => {
                    // hyper's header timer starts with a request head, but the auto builder
                    // first waits, unbounded, for the bytes that tell HTTP/1 from h2. Off
                    // the watchdog's threads, bound that wait by the same limit.
                    if key.is_none()
                        && !first_byte_within(&stream, limits.header_read_timeout).await
                    {
                        return;
                    }
                    Prefixed::plain(stream)
                }
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            let served = watch.watch(conn, |conn| conn.graceful_shutdown()).await;
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "Connection ended with an error.");
            }
        });
        if let Some(key) = key {
            key.set_abort(task.abort_handle());
        }
    }
    // Closing the listener first makes new connections fail fast instead of queueing.
    drop(incoming);
    drop(conns);
    if tokio::time::timeout(grace, drain.drain()).await.is_err() {
        tracing::warn!(grace = %humantime::format_duration(grace), "Grace period over; closing remaining connections.");
    }
}

/// Whether the client sends something within `limit` of connecting.
async fn first_byte_within(stream: &TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(limit, stream.peek(&mut byte)).await, Ok(Ok(n)) if n > 0)
}

fn builder(limits: ConnLimits, watchdog: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    if watchdog {
        http1.header_read_timeout(None);
    } else {
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// A response body that keeps its connection marked busy (see `watchdog`) until dropped:
/// hyper drops it once the last byte is written or the client is gone.
pub struct Tracked<B> {
    body: B,
    _busy: Option<Busy>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

//! The client's request body on its way upstream: counted as it passes, and told apart when the client, not the upstream, broke it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// What went wrong with the client's request body on its way upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// The client closed or reset the connection mid-body.
    Aborted,
    /// The body's framing was broken (bad chunk size, extension, CRLF).
    Malformed,
    /// No body bytes came for the body read timeout (`limits.body_read_timeout`).
    TimedOut,
}

/// How much of the client's request body went upstream, whether all of it did, and
/// whether the client broke it.
#[derive(Debug, Default)]
pub struct BodyProgress {
    bytes: AtomicU64,
    done: AtomicBool,
    /// 0: no fault; 1: the client aborted; 2: its framing was malformed; 3: it stalled.
    fault: AtomicU8,
}

impl BodyProgress {
    /// Data bytes passed on so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// The body's end was reached.
    pub fn done(&self) -> bool {
        self.done.load(Relaxed)
    }

    /// The client's body failed on its way in, if it did.
    pub fn fault(&self) -> Option<ClientFault> {
        match self.fault.load(Relaxed) {
            1 => Some(ClientFault::Aborted),
            2 => Some(ClientFault::Malformed),
            3 => Some(ClientFault::TimedOut),
            _ => None,
        }
    }

    fn set_fault(&self, error: &hyper::Error) {
        let fault = match client_fault(error) {
            ClientFault::Aborted => 1,
            ClientFault::Malformed => 2,
            ClientFault::TimedOut => 3,
        };
        self.fault.store(fault, Relaxed);
    }

    /// A body of `n` bytes went upstream whole (the fast path sends small bodies at once).
    pub fn sent_whole(&self, n: u64) {
        self.bytes.store(n, Relaxed);
        self.done.store(true, Relaxed);
    }
}

/// Why reading a client's body failed: hyper reports a connection that ended or reset
/// mid-body as an early end of file or an I/O error, and broken chunked framing as
/// invalid data.
fn client_fault(error: &hyper::Error) -> ClientFault {
    if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        return ClientFault::Aborted;
    }
    let io = std::error::Error::source(error).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe,
        ) => ClientFault::Aborted,
        _ => ClientFault::Malformed,
    }
}

/// Why the client's body could not be passed on.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client's connection or framing failed (see [`ClientFault`]).
    #[error(transparent)]
    Client(#[from] hyper::Error),
    /// The client paused longer than the body read timeout.
    #[error("no request body bytes for {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// An HTTP/1 chunked body ended with a trailer section (see [`CountingBody::h1`]).
    #[error("trailer fields after a chunked HTTP/1 request body")]
    Trailers,
}

/// The client's request body on its way upstream, counting bytes as they pass, and
/// failing it when the client pauses longer than the body read timeout.
pub struct CountingBody {
    // `None`: no body (a replayed body-less request has no `Incoming` of its own).
    inner: Option<Incoming>,
    progress: Option<Arc<BodyProgress>>,
    read_timeout: Duration,
    /// Armed the first time the client makes us wait: most bodies arrive with their head
    /// and never do, so they never pay for a timer.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A frame came since the timer was set: it restarts at the next wait.
    rearm: bool,
    /// A copy of the body for a recorded request shape (`baseline.record.body_limit`).
    tee: Option<Box<Tee>>,
    /// Refuse trailers: the body is an HTTP/1 request's.
    h1: bool,
}

/// What a [`Tee`] does with the whole body.
pub type TeeDone = Box<dyn FnOnce(&[u8]) + Send + Sync>;

/// Copies a small body as it passes and hands it over whole at its end; a body that
/// outgrows the limit is dropped, not cut.
pub struct Tee {
    copy: Vec<u8>,
    limit: usize,
    done: TeeDone,
}

impl Tee {
    /// Copy up to `limit` bytes, then give the whole body to `done`.
    pub fn new(limit: usize, done: TeeDone) -> Tee {
        Tee {
            copy: Vec::new(),
            limit,
            done,
        }
    }
}

impl CountingBody {
    /// Wrap `inner`, recording its progress in `progress` (`None`: the body is known
    /// empty); a pause between frames longer than `read_timeout` fails the body.
    pub fn new(
        inner: Incoming,
        progress: Option<Arc<BodyProgress>>,
        read_timeout: Duration,
    ) -> Self {
        CountingBody {
            inner: Some(inner),
            progress,
            read_timeout,
            pause: None,
            rearm: false,
            tee: None,
            h1: false,
        }
    }

    /// The body is an HTTP/1 request's: a chunked trailer section fails it as malformed.
    /// hyper takes a bare LF inside a trailer line as part of it and keeps only what comes
    /// before the first empty line, so bytes a front end reads as the next request can
    /// vanish unseen in a trailer section (request hiding). Trailers are never forwarded
    /// anyway; refusing them closes the connection instead of hiding anything.
    pub fn h1(mut self, h1: bool) -> Self {
        self.h1 = h1;
        self
    }

    /// Also copy the body into `tee` as it passes.
    pub fn with_tee(mut self, tee: Option<Box<Tee>>) -> Self {
        self.tee = tee;
        self
    }

    /// No body at all.
    pub fn empty() -> Self {
        CountingBody {
            inner: None,
            progress: None,
            read_timeout: Duration::MAX,
            pause: None,
            rearm: false,
            tee: None,
            h1: false,
        }
    }

    /// The client made us wait: pending until the timer set at the start of this pause
    /// fires, then the body fails as the client's timeout.
    fn paused(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Some(progress) = &self.progress else {
            return Poll::Pending; // a known-empty body has nothing to wait for
        };
        let deadline = tokio::time::Instant::now() + self.read_timeout;
        let pause = match &mut self.pause {
            Some(pause) => {
                if std::mem::take(&mut self.rearm) {
                    pause.as_mut().reset(deadline);
                }
                pause
            }
            None => self
                .pause
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        ready!(pause.as_mut().poll(cx));
        progress.fault.store(3, Relaxed);
        self.inner = None;
        Poll::Ready(Some(Err(BodyError::TimedOut(self.read_timeout))))
    }
}

fn copy(tee: &mut Option<Box<Tee>>, data: &[u8]) {
    let Some(t) = tee else { return };
    if t.copy.len() + data.len() > t.limit {
        *tee = None;
    } else {
        t.copy.extend_from_slice(data);
    }
}

fn finish(tee: &mut Option<Box<Tee>>) {
    if let Some(t) = tee.take() {
        (t.done)(&t.copy);
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        if this.h1 && matches!(&polled, Poll::Ready(Some(Ok(f))) if f.is_trailers()) {
            if let Some(progress) = &this.progress {
                progress.fault.store(2, Relaxed);
            }
            this.inner = None;
            return Poll::Ready(Some(Err(BodyError::Trailers)));
        }
        if let Some(progress) = &this.progress {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        progress.bytes.fetch_add(data.len() as u64, Relaxed);
                        if this.tee.is_some() {
                            copy(&mut this.tee, data);
                        }
                    }
                    if inner.is_end_stream() {
                        progress.done.store(true, Relaxed);
                        finish(&mut this.tee);
                    }
                    this.rearm = true;
                }
                Poll::Ready(None) => {
                    progress.done.store(true, Relaxed);
                    finish(&mut this.tee);
                }
                Poll::Ready(Some(Err(e))) => progress.set_fault(e),
                Poll::Pending => return this.paused(cx),
            }
        }
        polled.map_err(BodyError::Client)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

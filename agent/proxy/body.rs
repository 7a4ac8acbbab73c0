//! Streaming bodies: the response body that finishes the request context, and a byte-counting request body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::ctx::RequestCtx;
use super::phases::ClientFault;
use super::upstream::Lease;
use crate::error::ErrorType;

enum Inner {
    Upstream(Incoming),
    Local(Option<Bytes>),
}

/// The body sent to the client. Frames pass through as they come (nothing is
/// buffered); the request is finished when the last frame is sent, when the
/// upstream breaks mid-body, or (on drop) when the client goes away first.
pub struct ProxyBody {
    inner: Inner,
    ctx: Option<Box<RequestCtx>>,
    // The upstream connection, reused only after a clean end of both bodies.
    lease: Option<Lease>,
}

impl ProxyBody {
    /// Stream the upstream's body.
    pub fn upstream(body: Incoming, ctx: RequestCtx, lease: Option<Lease>) -> Self {
        ProxyBody {
            inner: Inner::Upstream(body),
            ctx: Some(Box::new(ctx)),
            lease,
        }
    }

    /// A body Redline made itself (error JSON, 405).
    pub fn local(bytes: Bytes, ctx: Option<RequestCtx>) -> Self {
        ProxyBody {
            inner: Inner::Local(Some(bytes)),
            ctx: ctx.map(Box::new),
            lease: None,
        }
    }

    /// Take the bytes of a body Redline made itself (the fast path writes them directly).
    pub(super) fn take_local(&mut self) -> Option<Bytes> {
        match &mut self.inner {
            Inner::Local(bytes) => bytes.take(),
            Inner::Upstream(_) => None,
        }
    }

    fn finish(&mut self, error: Option<ErrorType>) {
        let lease = self.lease.take();
        if let Some(mut ctx) = self.ctx.take() {
            if let (None, Some(lease)) = (error, lease) {
                if ctx.request_body_sent() {
                    lease.release();
                }
            }
            ctx.finish(error);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Inner::Upstream(body) => Pin::new(body).poll_frame(cx),
            Inner::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(ctx)) = (frame.data_ref(), this.ctx.as_mut()) {
                    ctx.add_bytes_out(data.len());
                }
                if this.is_end_stream() {
                    this.finish(None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Some(ErrorType::UpstreamError));
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(body) => body.is_end_stream(),
            Inner::Local(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(body) => body.size_hint(),
            Inner::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Local(None) => SizeHint::with_exact(0),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // Dropped before the last frame: hyper gave up on the client connection.
        if !self.is_end_stream() {
            self.finish(Some(ErrorType::ClientClosed));
        } else {
            self.finish(None);
        }
    }
}

/// How much of the client's request body went upstream, whether all of it did, and
/// whether the client broke it.
#[derive(Debug, Default)]
pub struct BodyProgress {
    bytes: AtomicU64,
    done: AtomicBool,
    /// 0: no fault; 1: the client aborted; 2: its framing was malformed.
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
            _ => None,
        }
    }

    fn set_fault(&self, error: &hyper::Error) {
        let fault = match client_fault(error) {
            ClientFault::Aborted => 1,
            ClientFault::Malformed => 2,
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

/// The client's request body on its way upstream, counting bytes as they pass.
pub struct CountingBody {
    // `None`: no body (a replayed body-less request has no `Incoming` of its own).
    inner: Option<Incoming>,
    progress: Option<Arc<BodyProgress>>,
}

impl CountingBody {
    /// Wrap `inner`, recording its progress in `progress` (`None`: the body is known empty).
    pub fn new(inner: Incoming, progress: Option<Arc<BodyProgress>>) -> Self {
        CountingBody {
            inner: Some(inner),
            progress,
        }
    }

    /// No body at all.
    pub fn empty() -> Self {
        CountingBody {
            inner: None,
            progress: None,
        }
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        if let Some(progress) = &this.progress {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        progress.bytes.fetch_add(data.len() as u64, Relaxed);
                    }
                    if inner.is_end_stream() {
                        progress.done.store(true, Relaxed);
                    }
                }
                Poll::Ready(None) => progress.done.store(true, Relaxed),
                Poll::Ready(Some(Err(e))) => progress.set_fault(e),
                Poll::Pending => {}
            }
        }
        polled
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

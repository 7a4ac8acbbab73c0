//! The response body sent to the client: streams the upstream's frames and finishes the request context at its end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::ctx::RequestCtx;
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
                    ctx.body_out(data);
                }
                if this.is_end_stream() {
                    this.finish(None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // The upstream answered early, then its exchange broke because the client's
                // body did (it stalled or went away): the client's failure, not the app's.
                let fault = this.ctx.as_ref().and_then(|ctx| ctx.client_fault());
                let kind = fault.map_or(ErrorType::UpstreamError, |f| {
                    super::phases::client_failed(f).kind()
                });
                this.finish(Some(kind));
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

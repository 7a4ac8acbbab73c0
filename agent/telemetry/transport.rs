//! OTLP transport: one collector endpoint over HTTP/protobuf or gRPC, its request bodies, and how its answers are read.
//!
//! HTTP/protobuf bodies go through the hyper-util client (rustls for https);
//! gRPC is the same protobuf message in gRPC's length-prefixed frame over
//! cleartext HTTP/2, with `grpc-status` read from the trailers.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::env::{Protocol, Target};

/// Collector answers are read up to this size (they are tiny; a bigger one is not trusted).
const MAX_RESPONSE: usize = 64 * 1024;
/// Why one export failed. Never includes header values (they may hold API keys).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No complete answer within the OTLP timeout.
    #[error("no answer from the collector within {0:?}")]
    Timeout(Duration),
    /// Connecting or talking to the collector failed.
    #[error("cannot reach the collector: {0}")]
    Network(String),
    /// The collector answered with a non-success HTTP status.
    #[error("the collector answered HTTP {0}")]
    Status(u16),
    /// The collector answered with a gRPC error status.
    #[error("the collector answered gRPC status {code} {message:?}")]
    Grpc {
        /// `grpc-status`.
        code: String,
        /// `grpc-message`.
        message: String,
    },
    /// The request could not be built or compressed.
    #[error("cannot build the export request: {0}")]
    Request(String),
}

/// Sends encoded OTLP messages to one collector endpoint.
pub struct Transport {
    target: Target,
    client: Clients,
}

enum Clients {
    Http(Client<HttpsConnector<HttpConnector>, Payload>),
    Grpc(Client<HttpConnector, Payload>),
}

/// An export message as the pieces it was built from (a head, then span chunks), sent one
/// after another: joining them would copy every span once more.
#[derive(Debug, Default)]
pub struct Payload {
    pieces: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl Payload {
    /// Append a piece.
    pub fn push(&mut self, piece: impl Into<Bytes>) {
        let piece = piece.into();
        self.len += piece.len();
        self.pieces.push_back(piece);
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn prepend(&mut self, piece: Bytes) {
        self.len += piece.len();
        self.pieces.push_front(piece);
    }

    fn gzip(self) -> Result<Payload, ExportError> {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(self.len / 4 + 64),
            flate2::Compression::fast(),
        );
        let zipped = self
            .pieces
            .iter()
            .try_for_each(|p| enc.write_all(p))
            .and_then(|()| enc.finish())
            .map_err(|e| ExportError::Request(format!("gzip: {e}")))?;
        Ok(Payload::from(zipped))
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        let mut p = Payload::default();
        p.push(v);
        p
    }
}

impl http_body::Body for Payload {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let piece = self.pieces.pop_front();
        if let Some(p) = &piece {
            self.len -= p.len();
        }
        std::task::Poll::Ready(piece.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len as u64)
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("url", &self.target.url)
            .field("protocol", &self.target.protocol)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A pooled client for `target`; connecting is bounded by the export timeout.
    pub fn new(target: Target) -> Result<Self, ExportError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(target.timeout));
        http.enforce_http(false);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let client = match target.protocol {
            Protocol::HttpProtobuf => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
                    .map_err(|e| ExportError::Request(format!("TLS setup: {e}")))?
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Clients::Http(builder.build(https))
            }
            Protocol::Grpc => {
                builder
                    .http2_only(true)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .http2_keep_alive_timeout(target.timeout);
                Clients::Grpc(builder.build(http))
            }
        };
        Ok(Transport { target, client })
    }

    /// Where this transport sends.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Send one encoded export request; on success, the collector's response message bytes.
    pub async fn export(&self, payload: Payload) -> Result<Bytes, ExportError> {
        let timeout = self.target.timeout;
        match tokio::time::timeout(timeout, self.exchange(payload)).await {
            Ok(result) => result,
            Err(_) => Err(ExportError::Timeout(timeout)),
        }
    }

    async fn exchange(&self, payload: Payload) -> Result<Bytes, ExportError> {
        let payload = if self.target.gzip {
            payload.gzip()?
        } else {
            payload
        };
        match &self.client {
            Clients::Http(client) => {
                let req = self.http_request(payload)?;
                let resp = client.request(req).await.map_err(network)?;
                let status = resp.status();
                let body = read_body(resp.into_body()).await?;
                if !status.is_success() {
                    return Err(ExportError::Status(status.as_u16()));
                }
                Ok(body.to_bytes())
            }
            Clients::Grpc(client) => {
                let req = self.grpc_request(payload)?;
                let resp = client.request(req).await.map_err(network)?;
                let (parts, body) = resp.into_parts();
                if parts.status != http::StatusCode::OK {
                    return Err(ExportError::Status(parts.status.as_u16()));
                }
                let collected = read_body(body).await?;
                let trailers = collected.trailers().cloned().unwrap_or_default();
                grpc_status(&parts.headers, &trailers)?;
                unframe(&collected.to_bytes())
            }
        }
    }

    fn builder(&self) -> http::request::Builder {
        let mut b = Request::post(self.target.url.clone()).header(
            header::USER_AGENT,
            concat!("Redline/", env!("CARGO_PKG_VERSION")),
        );
        for (name, value) in &self.target.headers {
            b = b.header(name, value);
        }
        b
    }

    fn http_request(&self, payload: Payload) -> Result<Request<Payload>, ExportError> {
        let mut b = self
            .builder()
            .header(header::CONTENT_TYPE, "application/x-protobuf");
        if self.target.gzip {
            b = b.header(header::CONTENT_ENCODING, "gzip");
        }
        b.body(payload)
            .map_err(|e| ExportError::Request(e.to_string()))
    }

    fn grpc_request(&self, mut payload: Payload) -> Result<Request<Payload>, ExportError> {
        let ms = self.target.timeout.as_millis().clamp(1, 99_999_999);
        let mut b = self
            .builder()
            .version(http::Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .header("grpc-timeout", format!("{ms}m"));
        if self.target.gzip {
            b = b.header("grpc-encoding", "gzip");
        }
        let mut prefix = BytesMut::with_capacity(5);
        prefix.put_u8(u8::from(self.target.gzip));
        prefix.put_u32(
            u32::try_from(payload.len())
                .map_err(|_| ExportError::Request("message larger than 4 GiB".into()))?,
        );
        payload.prepend(prefix.freeze());
        b.body(payload)
            .map_err(|e| ExportError::Request(e.to_string()))
    }
}

fn network(e: hyper_util::client::legacy::Error) -> ExportError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    ExportError::Network(text)
}

async fn read_body(
    body: hyper::body::Incoming,
) -> Result<http_body_util::Collected<Bytes>, ExportError> {
    Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| ExportError::Network(format!("reading the answer: {e}")))
}

/// `grpc-status` from the trailers, or from the headers of a trailers-only answer.
fn grpc_status(headers: &http::HeaderMap, trailers: &http::HeaderMap) -> Result<(), ExportError> {
    let text = |v: Option<&HeaderValue>| {
        v.and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let status = trailers
        .get("grpc-status")
        .or_else(|| headers.get("grpc-status"));
    match status.map(|v| v.as_bytes()) {
        Some(b"0") => Ok(()),
        None => Err(ExportError::Grpc {
            code: "missing".into(),
            message: String::new(),
        }),
        Some(_) => Err(ExportError::Grpc {
            code: text(status),
            message: text(
                trailers
                    .get("grpc-message")
                    .or_else(|| headers.get("grpc-message")),
            ),
        }),
    }
}

/// The message inside one gRPC frame (empty when the collector sent none).
pub fn unframe(body: &[u8]) -> Result<Bytes, ExportError> {
    if body.len() < 5 {
        return Ok(Bytes::new());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body
        .get(5..5 + len)
        .ok_or_else(|| ExportError::Network("truncated gRPC frame".into()))?;
    if body[0] == 0 {
        return Ok(Bytes::copy_from_slice(msg));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(msg)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut out)
        .map_err(|e| ExportError::Network(format!("gunzip: {e}")))?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_frames_round_trip_plain_and_gzip() {
        let msg = b"hello otlp".to_vec();
        let mut plain = vec![0u8];
        plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        plain.extend_from_slice(&msg);
        assert_eq!(unframe(&plain).unwrap().as_ref(), msg.as_slice());
        let packed = collect_ready(Payload::from(msg.clone()).gzip().unwrap());
        let mut zipped = vec![1u8];
        zipped.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        zipped.extend_from_slice(&packed);
        assert_eq!(unframe(&zipped).unwrap().as_ref(), msg.as_slice());
        assert!(unframe(&[0, 0, 0, 0, 9, 1]).is_err(), "truncated");
        assert!(unframe(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_payload_is_sent_piece_by_piece_with_its_exact_length() {
        use http_body::Body;
        let mut p = Payload::from(b"head".to_vec());
        p.push(b"spans-1".to_vec());
        p.push(Bytes::from_static(b"spans-2"));
        assert_eq!(p.size_hint().exact(), Some(18));
        let whole = collect_ready(p);
        assert_eq!(whole, b"headspans-1spans-2");
        // gzip covers every piece, in order.
        let mut p = Payload::from(b"head".to_vec());
        p.push(b"tail".to_vec());
        let zipped = collect_ready(p.gzip().unwrap());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut out)
            .unwrap();
        assert_eq!(out, "headtail");
    }

    /// Drain a body that is always ready (no runtime needed).
    fn collect_ready(mut body: Payload) -> Vec<u8> {
        use http_body::Body;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        while let std::task::Poll::Ready(Some(Ok(frame))) =
            std::pin::Pin::new(&mut body).poll_frame(&mut cx)
        {
            out.extend_from_slice(&frame.into_data().unwrap());
        }
        assert!(body.is_end_stream());
        out
    }

    #[test]
    fn grpc_status_comes_from_trailers_or_headers() {
        let mut ok = http::HeaderMap::new();
        ok.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(grpc_status(&http::HeaderMap::new(), &ok).is_ok());
        assert!(grpc_status(&ok, &http::HeaderMap::new()).is_ok());
        let mut bad = http::HeaderMap::new();
        bad.insert("grpc-status", HeaderValue::from_static("14"));
        bad.insert("grpc-message", HeaderValue::from_static("unavailable"));
        let e = grpc_status(&http::HeaderMap::new(), &bad).unwrap_err();
        assert!(e.to_string().contains("14"), "{e}");
        assert!(grpc_status(&http::HeaderMap::new(), &http::HeaderMap::new()).is_err());
    }
}

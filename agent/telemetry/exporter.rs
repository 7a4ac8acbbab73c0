//! OTLP export tasks: one per signal, one export in flight at a time, every export bounded by the OTLP timeout.
//!
//! HTTP/protobuf bodies go through the hyper-util client (rustls for https);
//! gRPC is the same protobuf message in gRPC's length-prefixed frame over
//! cleartext HTTP/2, with `grpc-status` read from the trailers. Nothing is
//! retried: a failed batch is dropped and counted, and the next batch simply
//! tries again, so export resumes by itself when the collector comes back
//! while memory stays bounded by the queue.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::SpanChunk;
use super::env::{Batching, Protocol, Signal, Target, Temporality};
use super::otlp_metrics::{MetricsBuilder, scope};
use super::wire;
use crate::metrics::Registry;
use crate::shutdown::stopped;

/// Collector answers are read up to this size (they are tiny; a bigger one is not trusted).
const MAX_RESPONSE: usize = 64 * 1024;
/// Failures and drops are logged at most this often per signal.
const LOG_EVERY: Duration = Duration::from_secs(60);

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

/// Drop counts and the latest failure of one signal, shared by its exporter, the request path and the logger.
#[derive(Debug)]
pub struct Health {
    signal: Signal,
    /// Items dropped and not yet added to `redline_telemetry_dropped_total`.
    unsynced: AtomicU64,
    /// Items dropped since the last log line.
    unlogged: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Health {
    /// Counters for `signal`, all zero.
    pub fn new(signal: Signal) -> Self {
        Health {
            signal,
            unsynced: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Count `n` dropped items (lock-free: also called on the request path).
    pub fn dropped(&self, n: u64) {
        self.unsynced.fetch_add(n, Relaxed);
        self.unlogged.fetch_add(n, Relaxed);
    }

    fn failed(&self, error: &ExportError) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    /// Move drops into the registry; log them (and the last error) if `log` allows.
    pub(super) fn sync(&self, registry: &Registry, log: bool) -> bool {
        let n = self.unsynced.swap(0, Relaxed);
        if n > 0 {
            registry
                .telemetry_dropped
                .add(&[self.signal.label()], n as f64);
        }
        if !log {
            return false;
        }
        let error = self.last_error.lock().ok().and_then(|mut e| e.take());
        let dropped = self.unlogged.swap(0, Relaxed);
        if dropped == 0 && error.is_none() {
            return false;
        }
        tracing::warn!(
            signal = self.signal.label(),
            dropped,
            error = error.as_deref().unwrap_or("none"),
            "OTLP export is failing or falling behind; telemetry was dropped (next report in a minute at the earliest)."
        );
        true
    }
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

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What the span exporter task needs.
#[derive(Debug)]
pub struct SpanExport {
    /// Where to send.
    pub transport: Transport,
    /// Resource attached to every batch, encoded once.
    pub resource: Vec<u8>,
    /// Drop counts.
    pub health: Arc<Health>,
    /// Batch size and delay.
    pub batching: Batching,
}

/// How often the span queue is drained. Polling, rather than waiting on the queue, means a
/// worker's `try_send` never has to wake this task (a cross-thread unpark per chunk).
const POLL: Duration = Duration::from_millis(50);

/// Batch span chunks from the queue and export them until `stop`, then drain the queue and flush.
///
/// A batch goes out when it holds `max_batch` requests (a chunk that would overfill it waits for
/// the next one) or its oldest chunk has waited `delay`.
pub async fn run_spans(
    job: SpanExport,
    mut rx: mpsc::Receiver<SpanChunk>,
    mut stop: watch::Receiver<bool>,
) {
    let max = job.batching.max_batch;
    let mut tick = tokio::time::interval(POLL.min(job.batching.delay));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Batch::default();
    let mut carry: Option<SpanChunk> = None;
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            _ = tick.tick() => {}
        }
        loop {
            while let Some(chunk) = carry.take().or_else(|| rx.try_recv().ok()) {
                if let Some(full) = batch.add(chunk, max) {
                    carry = Some(full);
                    break;
                }
            }
            let due = carry.is_some()
                || batch.requests >= max
                || batch
                    .oldest
                    .is_some_and(|t| t.elapsed() >= job.batching.delay);
            if !due || batch.chunks.is_empty() {
                break;
            }
            export_spans(&job, std::mem::take(&mut batch)).await;
        }
    }
    // Everything finished before shutdown is already queued: send it all.
    rx.close();
    while let Some(chunk) = match carry.take() {
        Some(c) => Some(c),
        None => rx.recv().await,
    } {
        if let Some(full) = batch.add(chunk, max) {
            export_spans(&job, std::mem::take(&mut batch)).await;
            carry = Some(full);
        }
    }
    if !batch.chunks.is_empty() {
        export_spans(&job, batch).await;
    }
}

/// Chunks waiting to go out in one request.
#[derive(Default)]
struct Batch {
    chunks: Vec<SpanChunk>,
    requests: usize,
    oldest: Option<Instant>,
}

impl Batch {
    /// Take `chunk` unless it would push a non-empty batch past `max` requests (then it is returned).
    fn add(&mut self, mut chunk: SpanChunk, max: usize) -> Option<SpanChunk> {
        if !self.chunks.is_empty() && self.requests + chunk.requests > max {
            return Some(chunk);
        }
        // A chunk that was given room for more than it got (traffic dropped) would hold
        // that room while it waits for the batch to fill.
        if chunk.bytes.capacity() > 2 * chunk.bytes.len() + 4096 {
            chunk.bytes.shrink_to_fit();
        }
        self.oldest.get_or_insert_with(Instant::now);
        self.requests += chunk.requests;
        self.chunks.push(chunk);
        None
    }
}

async fn export_spans(job: &SpanExport, batch: Batch) {
    let count: u64 = batch.chunks.iter().map(|c| c.spans).sum();
    let spans: usize = batch.chunks.iter().map(|c| c.bytes.len()).sum();
    let mut request = Payload::from(wire::trace_request_head(
        &job.resource,
        &scope().encode_to_vec(),
        spans,
    ));
    for chunk in batch.chunks {
        request.push(chunk.bytes);
    }
    match job.transport.export(request).await {
        Ok(body) => {
            let rejected = ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_spans.max(0) as u64);
            if rejected > 0 {
                job.health.dropped(rejected);
            }
        }
        Err(error) => {
            tracing::debug!(%error, spans = count, "OTLP span export failed.");
            job.health.dropped(count);
            job.health.failed(&error);
        }
    }
}

/// What the metric exporter task needs.
#[derive(Debug)]
pub struct MetricExport {
    /// Where to send.
    pub transport: Transport,
    /// Resource attached to every export.
    pub resource: Resource,
    /// Drop counts.
    pub health: Arc<Health>,
    /// Time between exports.
    pub interval: Duration,
    /// Histogram temporality.
    pub temporality: Temporality,
    /// Start of the cumulative period.
    pub start_ns: u64,
}

/// Export the registry every interval until `stop`, then once more.
pub async fn run_metrics(
    job: MetricExport,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = MetricsBuilder::new(job.temporality, job.start_ns);
    let first = tokio::time::Instant::now() + job.interval;
    let mut tick = tokio::time::interval_at(first, job.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            biased;
            _ = stopped(&mut stop) => true,
            _ = tick.tick() => false,
        };
        let (request, points) = builder.build(&registry, &job.resource, now_ns());
        match job.transport.export(request.encode_to_vec().into()).await {
            Ok(body) => {
                builder.committed();
                let rejected = ExportMetricsServiceResponse::decode(body)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map_or(0, |p| p.rejected_data_points.max(0) as u64);
                if rejected > 0 {
                    job.health.dropped(rejected);
                }
            }
            Err(error) => {
                tracing::debug!(%error, points, "OTLP metric export failed.");
                job.health.dropped(points);
                job.health.failed(&error);
            }
        }
        if stopping {
            return;
        }
    }
}

/// Every second, move drop counts into `redline_telemetry_dropped_total`; log trouble at most once a minute.
pub async fn report_health(
    registry: Arc<Registry>,
    healths: Vec<Arc<Health>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut last_log: Vec<Option<Instant>> = vec![None; healths.len()];
    loop {
        let stopping = tokio::select! {
            _ = every.tick() => false,
            _ = stopped(&mut stop) => true,
        };
        for (health, last) in healths.iter().zip(last_log.iter_mut()) {
            let may_log = last.is_none_or(|t| t.elapsed() >= LOG_EVERY);
            if health.sync(&registry, may_log) {
                *last = Some(Instant::now());
            }
        }
        if stopping {
            return;
        }
    }
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

    #[test]
    fn batches_never_pass_the_request_limit_and_keep_chunk_order() {
        let chunk = |requests: usize, tag: u8| SpanChunk {
            bytes: vec![tag],
            requests,
            spans: 2 * requests as u64,
        };
        let mut batch = Batch::default();
        assert!(batch.add(chunk(3, 1), 5).is_none());
        assert!(batch.add(chunk(2, 2), 5).is_none(), "exactly full is fine");
        let back = batch.add(chunk(1, 3), 5).expect("would pass the limit");
        assert_eq!(back.bytes, [3]);
        assert_eq!(batch.requests, 5);
        assert!(batch.oldest.is_some());
        // A chunk bigger than the limit still goes, alone, rather than never.
        let mut alone = Batch::default();
        assert!(alone.add(chunk(9, 4), 5).is_none());
        // Room it did not use is given back before it waits in the batch.
        let mut roomy = chunk(1, 5);
        roomy.bytes.reserve(48 * 1024);
        assert!(alone.add(roomy, 50).is_none());
        assert!(alone.chunks[1].bytes.capacity() < 4096);
        let order: Vec<u8> = batch.chunks.iter().flat_map(|c| c.bytes.clone()).collect();
        assert_eq!(order, [1, 2]);
    }

    #[test]
    fn drops_reach_the_registry_and_logging_is_limited() {
        let registry = Registry::new(&[0.1]);
        let h = Health::new(Signal::Traces);
        h.dropped(3);
        assert!(!h.sync(&registry, false));
        assert_eq!(registry.telemetry_dropped.get(&["traces"]), 3.0);
        h.failed(&ExportError::Status(503));
        assert!(h.sync(&registry, true), "logs the 3 drops and the error");
        assert!(!h.sync(&registry, true), "nothing new to say");
    }
}

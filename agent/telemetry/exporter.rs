//! OTLP export tasks: one per signal, one export in flight at a time, every export bounded by the OTLP timeout.
//!
//! The requests go out through [`Transport`] (`transport.rs`), tried again as the
//! OTLP spec asks by [`retry::export`] (`retry.rs`) within the signal's export timeout.
//! A batch that still failed is dropped and counted, and the next batch simply tries
//! again, so export resumes by itself when the collector comes back while memory stays
//! bounded by the queue (one batch held while it is retried; the queue fills meanwhile).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::mpsc;

use super::env::{Batching, Signal, Temporality};
use super::otlp_metrics::{MetricsBuilder, scope};
use super::retry;
use super::transport::{Payload, Transport};
use super::wire;
use crate::error::Error;
use crate::metrics::{Registry, Source};
use crate::shutdown::Watch;

/// Encoded spans (`ScopeSpans.spans` entries) of up to a few dozen requests from one
/// worker thread, on their way to the exporter.
#[derive(Debug, Default)]
pub struct SpanChunk {
    /// The spans, each a complete length-delimited `ScopeSpans.spans` field.
    pub bytes: Vec<u8>,
    /// Requests encoded (what batch and queue sizes count).
    pub requests: usize,
    /// Spans encoded (what drop counts count).
    pub spans: u64,
}

/// Failures and drops are logged at most this often per signal.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Drop counts and the latest failure of one signal, shared by its exporter, the request path and the logger.
#[derive(Debug)]
pub struct Health {
    signal: Signal,
    /// Items dropped and not yet added to `redline_telemetry_dropped_total`.
    unsynced: AtomicU64,
    /// Items dropped since the last log line.
    unlogged: AtomicU64,
    /// Export retries not yet added to `redline_telemetry_retries_total`.
    retried: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Health {
    /// Counters for `signal`, all zero.
    pub fn new(signal: Signal) -> Self {
        Health {
            signal,
            unsynced: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Count `n` dropped items (lock-free: also called on the request path).
    pub fn dropped(&self, n: u64) {
        self.unsynced.fetch_add(n, Relaxed);
        self.unlogged.fetch_add(n, Relaxed);
    }

    /// Count one more try of a failed export.
    fn retried(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    fn failed(&self, error: &Error) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.chain().to_string());
        }
    }

    /// Move drops into the registry; log them (and the last error) if `log` allows.
    pub(super) fn sync(&self, registry: &Registry, log: bool) -> bool {
        // Retries first: a batch's retries happen before its drop, and a scrape that
        // sees the drop should see them too.
        let retries = self.retried.swap(0, Relaxed);
        if retries > 0 {
            registry
                .telemetry_retries
                .add(&[self.signal.label()], retries as f64);
        }
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

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What the span (or log record) exporter task needs.
#[derive(Debug)]
pub struct SpanExport {
    /// Traces or logs: which response to read (the request head is the same shape).
    pub signal: Signal,
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
pub async fn run_spans(job: SpanExport, mut rx: mpsc::Receiver<SpanChunk>, stop: Watch) {
    let max = job.batching.max_batch;
    let mut tick = tokio::time::interval(POLL.min(job.batching.delay));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Batch::default();
    let mut carry: Option<SpanChunk> = None;
    loop {
        tokio::select! {
            biased;
            () = stop.signaled() => break,
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
            export_spans(&job, std::mem::take(&mut batch), &stop).await;
        }
    }
    // Everything finished before shutdown is already queued: send it all.
    rx.close();
    while let Some(chunk) = match carry.take() {
        Some(c) => Some(c),
        None => rx.recv().await,
    } {
        if let Some(full) = batch.add(chunk, max) {
            export_spans(&job, std::mem::take(&mut batch), &stop).await;
            carry = Some(full);
        }
    }
    if !batch.chunks.is_empty() {
        export_spans(&job, batch, &stop).await;
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

async fn export_spans(job: &SpanExport, batch: Batch, stop: &Watch) {
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
    let health = &job.health;
    match retry::export(&job.transport, request, stop, || health.retried()).await {
        Ok(body) => {
            let rejected = rejected(job.signal, body);
            if rejected > 0 {
                job.health.dropped(rejected);
            }
        }
        Err(error) => {
            let signal = job.signal.label();
            tracing::debug!(error = %error.chain(), items = count, signal, "OTLP export failed.");
            job.health.dropped(count);
            job.health.failed(&error);
        }
    }
}

/// Items the collector said it rejected (`partial_success`) in a span or log export's answer.
fn rejected(signal: Signal, body: bytes::Bytes) -> u64 {
    let n = match signal {
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| p.rejected_log_records),
        _ => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| p.rejected_spans),
    };
    n.unwrap_or(0).max(0) as u64
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
    /// Families kept outside the registry.
    pub sources: Vec<Arc<dyn Source>>,
}

/// Export the registry every interval until `stop`, then once more.
pub async fn run_metrics(job: MetricExport, registry: Arc<Registry>, stop: Watch) {
    let mut builder = MetricsBuilder::new(job.temporality, job.start_ns);
    let first = tokio::time::Instant::now() + job.interval;
    let mut tick = tokio::time::interval_at(first, job.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            biased;
            () = stop.signaled() => true,
            _ = tick.tick() => false,
        };
        let (request, points) = builder.build(&registry, &job.sources, &job.resource, now_ns());
        let health = &job.health;
        let payload = request.encode_to_vec().into();
        match retry::export(&job.transport, payload, &stop, || health.retried()).await {
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
                tracing::debug!(error = %error.chain(), points, "OTLP metric export failed.");
                job.health.dropped(points);
                job.health.failed(&error);
            }
        }
        if stopping {
            return;
        }
    }
}

/// Every second, move drop and retry counts into the registry; log trouble at most once a minute.
pub async fn report_health(registry: Arc<Registry>, healths: Vec<Arc<Health>>, stop: Watch) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut last_log: Vec<Option<Instant>> = vec![None; healths.len()];
    loop {
        let stopping = tokio::select! {
            _ = every.tick() => false,
            () = stop.signaled() => true,
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
        h.failed(&Error::status("the collector", 503));
        let last = h.last_error.lock().unwrap().clone();
        assert_eq!(last.as_deref(), Some("the collector answered HTTP 503"));
        assert!(h.sync(&registry, true), "logs the 3 drops and the error");
        assert!(!h.sync(&registry, true), "nothing new to say");
    }
}

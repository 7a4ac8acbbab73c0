//! OpenTelemetry: trace propagation, sampling, and OTLP export of spans and metrics, off the request path.
//!
//! The request path does three cheap things: [`begin`] extracts the caller's
//! trace, draws Redline's span ids and takes the head sampling decision;
//! [`inject`] writes the trace headers for the upstream; [`Telemetry::end`]
//! decides whether to keep the spans (head decision, or failed, or slow) and
//! encodes them into its worker thread's [`SpanChunk`]; a full chunk (or one a
//! worker's flush tick finds) is `try_send` to a bounded queue. Exporter tasks
//! ([`exporter`]) wrap chunks into OTLP requests and send them, one at a time per
//! signal; metrics are read from the [`Registry`](crate::metrics::Registry).
//!
//! Why encode on the worker, like Envoy's per-worker span buffers: a span built
//! where its request lived touches only that thread's memory. Handing each
//! request's record to the exporter thread instead cost a queue operation per
//! request and moved, read and freed on another core data the worker had just
//! written (benches/RESULTS.md has the before and after).
//!
//! Why hand-built OTLP (`opentelemetry-proto` messages; spans written directly by
//! [`wire`]) instead of the SDK:
//! the SDK would record every span a second time through its own processor and
//! queue, its metrics would duplicate the registry's, and its exporters' retry
//! and queueing behaviour is not ours to bound. Here the queue, the drop
//! counting, the timeout and "one export in flight" are explicit.

pub mod env;
pub mod exporter;
pub mod logs;
pub mod otlp_json;
pub mod otlp_metrics;
pub mod propagation;
pub mod retry;
pub mod sampler;
pub mod spans;
pub mod tls;
pub mod transport;
pub mod wire;

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::HeaderMap;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use exporter::SpanChunk;
pub use spans::{EarlierTry, Outcome, RequestSpan};

use env::{Lookup, Settings, Signal, Target};
use exporter::{Health, MetricExport, SpanExport};
use propagation::Propagators;
use sampler::Sampler;
use spans::SpanRecord;
use transport::Transport;

use crate::metrics::Source;
use crate::shutdown;
use crate::state::Shared;
use crate::trace::TraceContext;

/// What the request path consults: propagation formats, the sampler, and the span queue.
#[derive(Debug)]
pub struct Telemetry {
    propagators: Propagators,
    sampler: Sampler,
    keep_slower_than: Option<Duration>,
    spans: Option<SpanQueue>,
    /// Access records go here when logs are exported.
    logs: Option<SpanQueue>,
}

#[derive(Debug, Clone)]
struct SpanQueue {
    tx: mpsc::Sender<SpanChunk>,
    health: Arc<Health>,
    // Requests per chunk: a chunk goes to the queue when it holds this many.
    chunk: usize,
}

impl SpanQueue {
    /// Hand a chunk to the exporter; a full queue drops it, counted.
    fn send(&self, chunk: SpanChunk) {
        if let Err(e) = self.tx.try_send(chunk) {
            let chunk = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            self.health.dropped(chunk.spans);
        }
    }
}

/// Most requests per chunk: small enough that an idle worker holds little back,
/// large enough that the queue sees one operation per this many requests.
const CHUNK_REQUESTS: usize = 32;

/// A chunk this large goes out whatever its count. glibc consolidates its free
/// lists on every free of 64 KiB or more, which showed in profiles when chunks
/// were that big.
const CHUNK_BYTES: usize = 48 * 1024;

/// How often a worker hands over a partial chunk (see [`flush_this_thread_every`]).
pub const WORKER_FLUSH: Duration = Duration::from_millis(50);

/// This thread's chunk in the making, and where it goes.
#[derive(Default)]
struct Pending {
    chunk: SpanChunk,
    scratch: Vec<u8>,
    queue: Option<SpanQueue>,
    // Bytes the next chunk is given when its first span arrives: as much as the last chunk
    // took, and a quarter more, so that it does not grow (copying itself) a dozen times on
    // the request path. Taken at the first span, not at the hand-over, so an idle worker
    // holds no chunk.
    room: usize,
}

impl Pending {
    /// Hand the chunk to the queue this thread's spans go to (set by its first kept request).
    fn send(&mut self) {
        let Some(queue) = &self.queue else { return };
        let used = self.chunk.bytes.len();
        // Capped, so one burst of huge spans does not size every later chunk.
        self.room = (used + used / 4).min(CHUNK_BYTES + CHUNK_BYTES / 4);
        queue.send(std::mem::take(&mut self.chunk));
    }
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Hand whatever spans this thread has encoded to the exporter queue now.
/// Workers call it on a tick and once more after their last request.
pub fn flush_this_thread() {
    PENDING.with_borrow_mut(|p| {
        if p.chunk.requests > 0 {
            p.send();
        }
    });
}

/// Run [`flush_this_thread`] every `every`, so a quiet worker's last spans wait at most that long.
pub async fn flush_this_thread_every(every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush_this_thread();
    }
}

/// Used by a proxy built without a handle from [`start`]: W3C propagation, no export.
static UNSTARTED: LazyLock<Telemetry> = LazyLock::new(|| Telemetry {
    propagators: Propagators::default(),
    sampler: Sampler::default(),
    keep_slower_than: None,
    spans: None,
    logs: None,
});

/// The trace of a request that just arrived, and its span state.
pub fn begin(
    telemetry: Option<&Telemetry>,
    parts: &http::request::Parts,
) -> (TraceContext, RequestSpan) {
    telemetry.unwrap_or(&UNSTARTED).begin(parts)
}

/// Write the configured trace headers into the upstream request.
pub fn inject(
    telemetry: Option<&Telemetry>,
    headers: &mut HeaderMap,
    trace: &TraceContext,
    span: &RequestSpan,
) {
    let t = telemetry.unwrap_or(&UNSTARTED);
    t.propagators
        .inject(headers, trace, span.tracestate.as_ref());
}

impl Telemetry {
    fn begin(&self, parts: &http::request::Parts) -> (TraceContext, RequestSpan) {
        let remote = self.propagators.extract(&parts.headers);
        let mut trace = match &remote {
            Some(r) => TraceContext::continued(r.trace_id, Some(r.span_id), r.sampled),
            None => TraceContext::new_root(),
        };
        let decision = self.sampler.should_sample(&trace.trace_id, trace.sampled);
        trace.recorded = decision;
        let exporting = self.spans.is_some();
        if let (false, Some(r)) = (exporting, &remote) {
            // Redline's spans go nowhere: hand the caller's own span on as the upstream's
            // parent, flag unchanged, so the app's trace stays connected.
            trace.client_span_id = r.span_id;
            trace.recorded = r.sampled.unwrap_or(decision);
        }
        let tracestate = propagation::tracestate(&parts.headers, remote.as_ref());
        let span = RequestSpan::new(tracestate, exporting.then_some(parts));
        (trace, span)
    }

    /// The request ended: keep its spans if head-sampled, failed, or slower than the threshold.
    ///
    /// `slow_threshold` is the flow's lowest latency threshold, used when
    /// `telemetry.traces.keep_slower_than` is not set. Never blocks: a full
    /// queue drops the spans and counts them. Returns whether the spans went to the
    /// exporter (so the trace will exist in the backend, and may be an exemplar).
    pub fn end(
        &self,
        span: &mut RequestSpan,
        outcome: &Outcome<'_>,
        slow_threshold: Option<Duration>,
    ) -> bool {
        let Some(queue) = &self.spans else {
            return false;
        };
        if !span.is_captured() {
            return false;
        }
        let slow = self
            .keep_slower_than
            .or(slow_threshold)
            .is_some_and(|t| outcome.duration > t);
        let keep =
            outcome.trace.recorded || (!self.sampler.never() && (outcome.error.is_error() || slow));
        if !keep {
            return false;
        }
        // A full queue (collector slow or gone): count the drop before building anything.
        if queue.tx.capacity() == 0 {
            queue.health.dropped(span.span_count());
            return false;
        }
        let Some(record) = SpanRecord::take(span, outcome) else {
            return false;
        };
        PENDING.with_borrow_mut(|p| {
            if p.chunk.bytes.capacity() == 0 {
                p.chunk.bytes.reserve(p.room);
            }
            record.encode(&mut p.chunk.bytes, &mut p.scratch);
            p.chunk.requests += 1;
            p.chunk.spans += record.span_count();
            if p.queue.is_none() {
                p.queue = Some(queue.clone());
            }
            if p.chunk.requests >= queue.chunk || p.chunk.bytes.len() >= CHUNK_BYTES {
                p.send();
            }
        });
        true
    }

    /// Whether spans are exported at all (workers need a flush tick only then).
    pub fn exports_spans(&self) -> bool {
        self.spans.is_some()
    }

    /// Whether access records go out as OTLP logs (so callers can skip building them).
    pub fn exports_logs(&self) -> bool {
        self.logs.is_some()
    }

    /// Queue a finished request's access record; never blocks (a full queue drops it, counted).
    pub fn log_access(&self, record: &logs::AccessRecord<'_>) {
        let Some(queue) = &self.logs else { return };
        let mut bytes = Vec::with_capacity(384);
        wire::logs::access_record(&mut bytes, record);
        logs::send(queue, bytes);
    }
}

/// Running exporter tasks; [`Exporters::flush`] stops them after sending what is queued.
#[derive(Debug)]
pub struct Exporters {
    stop: shutdown::Signal,
    tasks: Vec<JoinHandle<()>>,
}

impl Exporters {
    /// Export everything queued (spans of requests already finished, a last metric export), within `deadline`.
    pub async fn flush(self, deadline: Duration) {
        if self.tasks.is_empty() {
            return;
        }
        // Each exporter task holds its watch until its last export is done.
        if tokio::time::timeout(deadline, self.stop.drain())
            .await
            .is_err()
        {
            tracing::warn!(
                ?deadline,
                "Telemetry flush did not finish in time; the rest is dropped."
            );
        }
    }
}

/// Resolve `OTEL_*` (through `lookup`) over the config, spawn the exporters, and return the
/// request-path handle (for `Proxy::new`) with them. Without an endpoint nothing is spawned
/// and nothing is logged above debug. `sources` are families kept outside the registry,
/// exported with it.
pub fn start(
    shared: &Arc<Shared>,
    lookup: Lookup<'_>,
    sources: Vec<Arc<dyn Source>>,
) -> (Arc<Telemetry>, Exporters) {
    let config = shared.runtime.load().config.clone();
    let settings = Settings::resolve(lookup, &config);
    for warning in &settings.warnings {
        tracing::warn!(%warning, "Ignoring an OpenTelemetry setting.");
    }
    let resource = Resource {
        attributes: settings
            .resource
            .iter()
            .map(|(k, v)| spans::kv(k, v))
            .collect(),
        ..Default::default()
    };
    let (stop, stop_rx) = shutdown::channel();
    let mut tasks = Vec::new();
    let mut healths = Vec::new();
    let spans = settings.traces.clone().and_then(|target| {
        let transport = transport(target)?;
        let health = Arc::new(Health::new(Signal::Traces));
        let chunk = settings.batching.max_batch.clamp(1, CHUNK_REQUESTS);
        let (tx, rx) = mpsc::channel(settings.batching.queue.div_ceil(chunk).max(1));
        let job = SpanExport {
            signal: Signal::Traces,
            transport,
            resource: resource.encode_to_vec(),
            health: health.clone(),
            batching: settings.batching,
        };
        tasks.push(tokio::spawn(exporter::run_spans(job, rx, stop_rx.clone())));
        healths.push(health.clone());
        Some(SpanQueue { tx, health, chunk })
    });
    let log_queue = settings.logs.clone().and_then(|target| {
        let transport = transport(target)?;
        let health = Arc::new(Health::new(Signal::Logs));
        let (tx, rx) = mpsc::channel(settings.log_batching.queue.max(1));
        let job = SpanExport {
            signal: Signal::Logs,
            transport,
            resource: resource.encode_to_vec(),
            health: health.clone(),
            batching: settings.log_batching,
        };
        tasks.push(tokio::spawn(exporter::run_spans(job, rx, stop_rx.clone())));
        healths.push(health.clone());
        Some(SpanQueue {
            tx,
            health,
            chunk: 1,
        })
    });
    logs::install(log_queue.clone());
    if let Some(transport) = settings.metrics.clone().and_then(transport) {
        let health = Arc::new(Health::new(Signal::Metrics));
        healths.push(health.clone());
        let job = MetricExport {
            transport,
            resource,
            health,
            interval: settings.metric_interval,
            temporality: settings.temporality,
            start_ns: exporter::now_ns(),
            sources,
        };
        let registry = shared.registry.clone();
        tasks.push(tokio::spawn(exporter::run_metrics(
            job,
            registry,
            stop_rx.clone(),
        )));
    }
    if !healths.is_empty() {
        let registry = shared.registry.clone();
        tasks.push(tokio::spawn(exporter::report_health(
            registry, healths, stop_rx,
        )));
    }
    log_start(&settings);
    let telemetry = Telemetry {
        propagators: settings.propagators,
        sampler: settings.sampler,
        keep_slower_than: settings.keep_slower_than,
        spans,
        logs: log_queue,
    };
    (Arc::new(telemetry), Exporters { stop, tasks })
}

fn transport(target: Target) -> Option<Transport> {
    let signal = target.signal.label();
    match Transport::new(target) {
        Ok(t) => Some(t),
        Err(error) => {
            tracing::error!(signal, error = %error.chain(), "Cannot set up OTLP export; this signal stays off.");
            None
        }
    }
}

fn log_start(s: &Settings) {
    let describe = |t: &Option<Target>| {
        t.as_ref().map_or_else(
            || "off".to_string(),
            // The endpoint may come with credentials or a key in its query.
            |t| {
                format!(
                    "{} ({})",
                    crate::config::redact_url(&t.url.to_string(), false),
                    t.protocol.as_str()
                )
            },
        )
    };
    if s.traces.is_none() && s.metrics.is_none() && s.logs.is_none() {
        tracing::debug!("OTLP export off: no endpoint configured.");
        return;
    }
    tracing::info!(
        traces = %describe(&s.traces),
        metrics = %describe(&s.metrics),
        logs = %describe(&s.logs),
        metric_interval = ?s.metric_interval,
        sampler = %s.sampler.describe(),
        propagators = %s.propagators.describe(),
        "OTLP export on."
    );
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Instant, SystemTime};

    use http::{HeaderValue, Method, Uri};
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

    use super::*;
    use crate::config::{Config, Upstream};
    use crate::metrics::ErrorType;
    use crate::stats::ManualClock;

    fn telemetry(chunk: usize) -> (Telemetry, mpsc::Receiver<SpanChunk>) {
        let (tx, rx) = mpsc::channel(8);
        let spans = SpanQueue {
            tx,
            health: Arc::new(Health::new(Signal::Traces)),
            chunk,
        };
        let t = Telemetry {
            propagators: Propagators::default(),
            sampler: Sampler::default(),
            keep_slower_than: None,
            spans: Some(spans),
            logs: None,
        };
        (t, rx)
    }

    /// One finished request through `Telemetry::end` on the calling thread.
    fn finish_one(t: &Telemetry, path: &str) {
        let config = Config {
            upstream: Some(Upstream::parse("http://127.0.0.1:3000").unwrap()),
            ..Config::default()
        };
        let shared = Shared::new(
            config,
            Arc::new(ManualClock::new(0)),
            crate::access_log::AccessLog::off(),
        )
        .unwrap();
        let rt = shared.runtime.load_full();
        let (parts, ()) = http::Request::get(path).body(()).unwrap().into_parts();
        let (trace, mut span) = t.begin(&parts);
        span.upstream_sent();
        let uri: Uri = path.parse().unwrap();
        let outcome = Outcome {
            trace: &trace,
            method: &Method::GET,
            uri: &uri,
            client: "10.0.0.1:5555".parse::<SocketAddr>().unwrap(),
            flow: &Arc::from("f"),
            route: &Arc::from(path),
            status: Some(200),
            upstream_responded: true,
            error: ErrorType::None,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            duration: Duration::from_millis(3),
            request_id: &HeaderValue::from_static("r"),
            runtime: &rt,
        };
        t.end(&mut span, &outcome, None);
    }

    fn paths(chunk: &SpanChunk) -> Vec<String> {
        let spans = ScopeSpans::decode(chunk.bytes.as_slice()).unwrap().spans;
        spans
            .iter()
            .filter(|s| s.kind == 2)
            .map(|s| {
                let v = s.attributes.iter().find(|kv| kv.key == "url.path").unwrap();
                match v.value.clone().unwrap().value.unwrap() {
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(p) => p,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn a_worker_sends_full_chunks_and_its_flush_sends_the_rest() {
        let (t, mut rx) = telemetry(2);
        // A fresh thread: its chunk starts empty whatever other tests did on theirs.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..5 {
                    finish_one(&t, &format!("/r{i}"));
                }
                let first = rx.try_recv().expect("first full chunk");
                assert_eq!((first.requests, first.spans), (2, 4));
                assert_eq!(paths(&first), ["/r0", "/r1"]);
                let second = rx.try_recv().expect("second full chunk");
                assert_eq!(paths(&second), ["/r2", "/r3"]);
                assert!(rx.try_recv().is_err(), "the fifth waits for more");
                flush_this_thread();
                let rest = rx.try_recv().expect("flushed partial chunk");
                assert_eq!((rest.requests, rest.spans), (1, 2));
                assert_eq!(paths(&rest), ["/r4"]);
                // A chunk starts with room for as much as the last one took, once its
                // first span arrives: a waiting worker holds no chunk.
                assert!(second.bytes.capacity() >= first.bytes.len());
                PENDING.with_borrow(|p| assert_eq!(p.chunk.bytes.capacity(), 0));
                finish_one(&t, "/r5");
                PENDING.with_borrow(|p| assert!(p.chunk.bytes.capacity() >= rest.bytes.len()));
                flush_this_thread();
                assert_eq!(paths(&rx.try_recv().expect("one more")), ["/r5"]);
                flush_this_thread();
                assert!(rx.try_recv().is_err(), "nothing left to flush");
            });
        });
    }

    #[test]
    fn a_full_queue_drops_whole_chunks_and_counts_their_spans() {
        let (t, _rx) = telemetry(1);
        let health = t.spans.as_ref().unwrap().health.clone();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..12 {
                    finish_one(&t, &format!("/d{i}"));
                }
            });
        });
        // 8 chunks fit; the other 4 requests' spans (2 each) were dropped and counted.
        let registry = crate::metrics::Registry::new(&[0.1]);
        health.sync(&registry, false);
        assert_eq!(registry.telemetry_dropped.get(&["traces"]), 8.0);
    }
}

//! OpenTelemetry: trace propagation, sampling, and OTLP export of spans and metrics, off the request path.
//!
//! The request path does three cheap things: [`begin`] extracts the caller's
//! trace, draws Redline's span ids and takes the head sampling decision;
//! [`inject`] writes the trace headers for the upstream; [`Telemetry::end`]
//! decides whether to keep the spans (head decision, or failed, or slow) and
//! `try_send`s a small record to a bounded queue. Exporter tasks
//! ([`exporter`]) build the OTLP messages and send them, one at a time per
//! signal; metrics are read from the [`Registry`](crate::metrics::Registry).
//!
//! Why hand-built OTLP (`opentelemetry-proto` messages; spans written directly by
//! [`wire`]) instead of the SDK:
//! the SDK would record every span a second time through its own processor and
//! queue, its metrics would duplicate the registry's, and its exporters' retry
//! and queueing behaviour is not ours to bound. Here the queue, the drop
//! counting, the timeout and "one export in flight" are explicit.

pub mod env;
pub mod exporter;
pub mod otlp_metrics;
pub mod propagation;
pub mod sampler;
pub mod spans;
pub mod wire;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::HeaderMap;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use spans::{Outcome, RequestSpan};

use env::{Lookup, Settings, Signal, Target};
use exporter::{Health, MetricExport, SpanExport, Transport};
use propagation::Propagators;
use sampler::Sampler;
use spans::SpanRecord;

use crate::state::Shared;
use crate::trace::TraceContext;

/// What the request path consults: propagation formats, the sampler, and the span queue.
#[derive(Debug)]
pub struct Telemetry {
    propagators: Propagators,
    sampler: Sampler,
    keep_slower_than: Option<Duration>,
    spans: Option<SpanQueue>,
}

#[derive(Debug)]
struct SpanQueue {
    tx: mpsc::Sender<SpanRecord>,
    health: Arc<Health>,
}

/// Used before [`start`] ran (and by embedders that never call it): W3C propagation, no export.
static UNSTARTED: LazyLock<Telemetry> = LazyLock::new(|| Telemetry {
    propagators: Propagators::default(),
    sampler: Sampler::default(),
    keep_slower_than: None,
    spans: None,
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
    /// queue drops the spans and counts them.
    pub fn end(
        &self,
        span: &mut RequestSpan,
        outcome: &Outcome<'_>,
        slow_threshold: Option<Duration>,
    ) {
        let Some(queue) = &self.spans else { return };
        if !span.is_captured() {
            return;
        }
        let slow = self
            .keep_slower_than
            .or(slow_threshold)
            .is_some_and(|t| outcome.duration > t);
        let keep =
            outcome.trace.recorded || (!self.sampler.never() && (outcome.error.is_error() || slow));
        if !keep {
            return;
        }
        // A full queue (collector slow or gone): count the drop before building anything.
        if queue.tx.capacity() == 0 {
            queue.health.dropped(1 + u64::from(span.upstream_called()));
            return;
        }
        let Some(record) = SpanRecord::take(span, outcome) else {
            return;
        };
        if let Err(e) = queue.tx.try_send(record) {
            let record = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            queue.health.dropped(record.span_count());
        }
    }
}

/// Running exporter tasks; [`Exporters::flush`] stops them after sending what is queued.
#[derive(Debug)]
pub struct Exporters {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Exporters {
    /// Export everything queued (spans of requests already finished, a last metric export), within `deadline`.
    pub async fn flush(self, deadline: Duration) {
        if self.tasks.is_empty() {
            return;
        }
        let _ = self.stop.send(true);
        let all = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!(
                ?deadline,
                "Telemetry flush did not finish in time; the rest is dropped."
            );
        }
    }
}

/// Resolve `OTEL_*` (through `lookup`) over the config, install the request-path handle in
/// `shared`, and spawn the exporters. Without an endpoint nothing is spawned and nothing is logged above debug.
pub fn start(shared: &Arc<Shared>, lookup: Lookup<'_>) -> Exporters {
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
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut healths = Vec::new();
    let spans = settings.traces.clone().and_then(|target| {
        let transport = transport(target)?;
        let health = Arc::new(Health::new(Signal::Traces));
        let (tx, rx) = mpsc::channel(settings.batching.queue);
        let job = SpanExport {
            transport,
            resource: resource.encode_to_vec(),
            health: health.clone(),
            batching: settings.batching,
        };
        tasks.push(tokio::spawn(exporter::run_spans(job, rx, stop_rx.clone())));
        healths.push(health.clone());
        Some(SpanQueue { tx, health })
    });
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
    };
    if shared.telemetry.set(telemetry).is_err() {
        tracing::warn!("Telemetry was already started; keeping the first setup.");
    }
    Exporters { stop, tasks }
}

fn transport(target: Target) -> Option<Transport> {
    let signal = target.signal.label();
    match Transport::new(target) {
        Ok(t) => Some(t),
        Err(error) => {
            tracing::error!(signal, %error, "Cannot set up OTLP export; this signal stays off.");
            None
        }
    }
}

fn log_start(s: &Settings) {
    let describe = |t: &Option<Target>| {
        t.as_ref().map_or_else(
            || "off".to_string(),
            |t| {
                let protocol = match t.protocol {
                    env::Protocol::Grpc => "grpc",
                    env::Protocol::HttpProtobuf => "http/protobuf",
                };
                format!("{} ({protocol})", t.url)
            },
        )
    };
    if s.traces.is_none() && s.metrics.is_none() {
        tracing::debug!("OTLP export off: no endpoint configured.");
        return;
    }
    tracing::info!(
        traces = %describe(&s.traces),
        metrics = %describe(&s.metrics),
        metric_interval = ?s.metric_interval,
        sampler = %s.sampler.describe(),
        propagators = %s.propagators.describe(),
        "OTLP export on."
    );
}

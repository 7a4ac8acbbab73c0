//! OTLP log records: the access log's requests (through the [`Telemetry`](super::Telemetry) handle, on the request path), and the audit trail and alert events (through [`event`], off it).
//!
//! Every record is encoded where it happens ([`super::wire::logs`]) and handed to the logs
//! exporter's bounded queue with one `try_send`; a full queue drops the record and counts
//! it in `redline_telemetry_dropped_total{signal="logs"}`, so neither the request path nor
//! a reload ever waits on the collector. The logs exporter is the span exporter's loop
//! ([`super::exporter::run_spans`]) over these records, batched by the `OTEL_BLRP_*`
//! settings.
//!
//! Why a process-wide sink for events: audit lines are `tracing` events (see
//! [`crate::audit`]), which reach [`AuditLayer`] from wherever they are logged, and alert
//! events come from the evaluator; both are a handful a minute. The request path does not
//! use it: it holds its queue in the `Telemetry` handle.

use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use super::SpanQueue;
pub use super::wire::logs::{AccessRecord, EventRecord, Severity};
use super::{SpanChunk, wire};

/// The logs queue for events; `None` while logs are not exported.
static EVENTS: RwLock<Option<SpanQueue>> = RwLock::new(None);

/// Make `queue` the destination of [`event`] (telemetry start; `None` turns events off).
pub(super) fn install(queue: Option<SpanQueue>) {
    let mut slot = EVENTS.write().unwrap_or_else(|e| e.into_inner());
    *slot = queue;
}

/// One record in its own chunk, on `queue`.
pub(super) fn send(queue: &SpanQueue, bytes: Vec<u8>) {
    queue.send(SpanChunk {
        bytes,
        requests: 1,
        spans: 1,
    });
}

/// Export an event (an audit line, an alert's change) as a log record, when logs are exported.
pub fn event(name: &str, severity: Severity, body: &str, attributes: &[(&str, &str)]) {
    let slot = EVENTS.read().unwrap_or_else(|e| e.into_inner());
    let Some(queue) = slot.as_ref() else { return };
    let mut bytes = Vec::with_capacity(256);
    wire::logs::event_record(
        &mut bytes,
        &EventRecord {
            time_ns: now_ns(),
            severity,
            name,
            body,
            attributes,
        },
    );
    send(queue, bytes);
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A `tracing` layer that exports the audit trail (events of target [`crate::audit::TARGET`])
/// as OTLP log records named `redline.audit`, with the line's fields as attributes.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuditLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != crate::audit::TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let severity = match *meta.level() {
            tracing::Level::ERROR => Severity::Error,
            tracing::Level::WARN => Severity::Warn,
            _ => Severity::Info,
        };
        let attributes: Vec<(&str, &str)> = fields
            .attributes
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        self::event("redline.audit", severity, &fields.message, &attributes);
    }
}

/// An audit line's message and fields (`audit = true` itself left out: the event name says it).
#[derive(Default)]
struct Fields {
    message: String,
    attributes: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "audit" => {}
            name => self.attributes.push((name, value)),
        }
    }
}

//! The access log: one line per request on stdout, written by its own thread so the request path never waits on I/O.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use crate::metrics::{ErrorType, Registry};
use crate::redact::Redactor;

/// Lines waiting for the writer; beyond this, lines are dropped and counted.
const QUEUE: usize = 16 * 1024;

/// Access log output format (`telemetry.access_log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// `key=value` pairs, for humans at a terminal.
    Text,
}

/// Everything the access log says about one finished request.
#[derive(Debug)]
pub struct Entry {
    /// When the request started.
    pub ts: SystemTime,
    /// Request method.
    pub method: http::Method,
    /// Request target as received (the query is redacted when written).
    pub uri: http::Uri,
    /// `http.route`.
    pub route: Arc<str>,
    /// Flow name, or `unmatched`.
    pub flow: Arc<str>,
    /// Response status sent to the client (499 when the client left first).
    pub status: u16,
    /// Total duration.
    pub duration: Duration,
    /// Time to the upstream's response headers, when it answered.
    pub upstream: Option<Duration>,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Client socket address.
    pub client: SocketAddr,
    /// `x-request-id`.
    pub request_id: http::HeaderValue,
    /// Outcome class.
    pub error: ErrorType,
    /// Redaction rules in force when the request started.
    pub redactor: Arc<Redactor>,
}

/// Handle used by the request path to emit lines.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Entry>>,
    // Lines queued but not yet flushed, so shutdown can wait for them.
    pending: Arc<AtomicUsize>,
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn off() -> Self {
        AccessLog {
            tx: None,
            pending: Arc::default(),
        }
    }

    /// Start the writer thread; lines go to `out`.
    pub fn start(format: Format, out: Box<dyn std::io::Write + Send>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let spawned = std::thread::Builder::new()
            .name("redline-access-log".into())
            .spawn({
                let pending = pending.clone();
                move || write_loop(rx, format, out, &pending)
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "Could not start the access log thread; access log disabled.");
            return AccessLog::off();
        }
        AccessLog {
            tx: Some(tx),
            pending,
        }
    }

    /// Whether lines are being written at all (so callers can skip building entries).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queue a line; never blocks. A full queue drops the line and counts it.
    pub fn emit(&self, entry: Entry, registry: &Registry) {
        if let Some(tx) = &self.tx {
            self.pending.fetch_add(1, Relaxed);
            match tx.try_send(entry) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.pending.fetch_sub(1, Relaxed);
                    registry.access_log_dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Wait (up to `deadline`) until every queued line has been written and flushed.
    pub fn drain(&self, deadline: Duration) {
        let until = std::time::Instant::now() + deadline;
        while self.pending.load(Relaxed) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn write_loop(
    rx: Receiver<Entry>,
    format: Format,
    out: Box<dyn std::io::Write + Send>,
    pending: &AtomicUsize,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = String::with_capacity(512);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut written = 0;
        // Drain whatever is queued before flushing, so bursts cost one write.
        while let Some(entry) = next {
            line.clear();
            match format {
                Format::Json => format_json(&entry, &mut line),
                Format::Text => format_text(&entry, &mut line),
            }
            line.push('\n');
            let _ = out.write_all(line.as_bytes());
            written += 1;
            next = rx.try_recv().ok();
        }
        // A closed stdout must not stall shutdown: lines are counted as done either way.
        let _ = out.flush();
        pending.fetch_sub(written, Relaxed);
    }
}

fn path_of(entry: &Entry) -> String {
    let path = entry.uri.path();
    entry
        .redactor
        .path_and_query(path, entry.uri.query())
        .into_owned()
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// One JSON object; field order is stable for people who grep.
pub fn format_json(e: &Entry, out: &mut String) {
    let obj = serde_json::json!({
        "ts": humantime::format_rfc3339_millis(e.ts).to_string(),
        "method": e.method.as_str(),
        "path": path_of(e),
        "route": &*e.route,
        "flow": &*e.flow,
        "status": e.status,
        "duration_ms": millis(e.duration),
        "upstream_ms": e.upstream.map(millis),
        "bytes_in": e.bytes_in,
        "bytes_out": e.bytes_out,
        "client": e.client.to_string(),
        "request_id": e.request_id.to_str().unwrap_or(""),
        "error_type": e.error.label(e.status),
    });
    let _ = write!(out, "{obj}");
}

/// `key=value` pairs; values with spaces are quoted.
pub fn format_text(e: &Entry, out: &mut String) {
    let _ = write!(
        out,
        "{} {} {} route={} flow={} status={} duration_ms={} upstream_ms={} bytes_in={} bytes_out={} client={} request_id={} error_type={}",
        humantime::format_rfc3339_millis(e.ts),
        e.method,
        path_of(e),
        e.route,
        e.flow,
        e.status,
        millis(e.duration),
        e.upstream
            .map(|d| millis(d).to_string())
            .unwrap_or_else(|| "-".into()),
        e.bytes_in,
        e.bytes_out,
        e.client,
        e.request_id.to_str().unwrap_or("-"),
        match e.error.label(e.status) {
            l if l.is_empty() => "-".into(),
            l => l,
        },
    );
}

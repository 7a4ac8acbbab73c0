//! The tamper-evident audit trail: one JSON line per audited request, hash-chained, under
//! `data_dir/audit/`.
//!
//! Each record carries `seq`, `prev` (the previous record's hash) and `hash` (SHA-256 of
//! the record's own text up to `hash`), in the spirit of CloudTrail's log-file integrity
//! validation: editing a record breaks its own hash, removing or reordering one breaks the
//! next record's `prev` and `seq`. Files rotate by size (`audit-000001.jsonl`, …); the
//! first record of a file carries the last hash of the one before, so the chain spans files.
//!
//! Records are written off the request path: [`AuditTrail::record`] is a `try_send` on a
//! bounded queue ([`QUEUE`]) to a writer thread, which writes each batch and fsyncs at least
//! every [`SYNC_EVERY`] or [`SYNC_RECORDS`] records. A full queue or a failing disk never
//! blocks a request: the record is dropped, counted (`redline_audit_dropped_total`), logged
//! (at most once per [`LOG_EVERY`]), and the next record written is preceded by a `gap`
//! record saying how many are missing, so `verify` reports the loss instead of hiding it.
//!
//! Bound on loss: a `kill -9` loses only what the writer has not yet handed to the kernel,
//! the queue and the batch being written: at most [`QUEUE`] + [`SYNC_RECORDS`] records. It
//! is a bound in records, not time: when the writer thread runs depends on the scheduler. A
//! power loss can also lose what was written but not yet fsynced (at most [`SYNC_EVERY`] of
//! the writer's work, or [`SYNC_RECORDS`]). A truncated last line (the process died
//! mid-write) is cut off when Redline starts again.

mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use serde::Serialize;

pub use verify::{Report, verify_files};

/// Records waiting for the writer at most; more are dropped (and counted).
pub const QUEUE: usize = 10_000;
/// The writer fsyncs at least this often while records arrive.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);
/// … and after at most this many records.
pub const SYNC_RECORDS: usize = 1_000;
/// A drop is logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Default size at which a file is closed and the next one started.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What one audited request was: who, from where, what, and what Redline decided.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// When the request arrived, Unix milliseconds.
    pub time_ms: u64,
    /// The flow.
    pub flow: String,
    /// Verified subject, if any.
    pub subject: Option<String>,
    /// Verified roles.
    pub roles: Vec<String>,
    /// Client address.
    pub client: String,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Path and query, secrets redacted.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// `x-request-id`.
    pub request_id: String,
    /// W3C trace id.
    pub trace_id: String,
    /// `allow`, `unauthenticated` or `forbidden`.
    pub decision: &'static str,
    /// The rule that decided, or `none` for an audited flow without `access`.
    pub rule: String,
}

/// The audit trail's handle: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    queue: SyncSender<Entry>,
    dropped: Arc<Dropped>,
}

/// Records lost since start, and since the writer last marked a gap.
#[derive(Debug, Default)]
pub struct Dropped {
    /// All drops since start (`redline_audit_dropped_total`).
    pub total: Arc<AtomicU64>,
    /// Drops not yet marked by a `gap` record.
    pub unmarked: AtomicU64,
    last_log_ms: AtomicU64,
}

impl Dropped {
    /// Count one lost record and say so loudly, rate-limited.
    pub fn add(&self, why: &str) {
        self.total.fetch_add(1, Relaxed);
        self.unmarked.fetch_add(1, Relaxed);
        let now = writer::unix_ms();
        let last = self.last_log_ms.load(Relaxed);
        let quiet = now.saturating_sub(last) < LOG_EVERY.as_millis() as u64;
        if !quiet
            && self
                .last_log_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            let total = self.total.load(Relaxed);
            tracing::error!(
                why,
                total,
                "Audit records are being dropped; the trail will show a gap."
            );
        }
    }
}

impl AuditTrail {
    /// Start the writer for `data_dir/audit/`, continuing the chain of the files there;
    /// drops are counted in `dropped_total`.
    pub fn open(
        data_dir: &Path,
        max_file_bytes: u64,
        dropped_total: Arc<AtomicU64>,
    ) -> std::io::Result<AuditTrail> {
        let dir: PathBuf = data_dir.join("audit");
        let dropped = Arc::new(Dropped {
            total: dropped_total,
            ..Dropped::default()
        });
        let queue = writer::start(dir, max_file_bytes, dropped.clone())?;
        Ok(AuditTrail { queue, dropped })
    }

    /// The trail under `data_dir` (none without one), files of at most `max_file_bytes`.
    pub fn for_config(
        (data_dir, max_file_bytes): (Option<&Path>, u64),
        dropped_total: Arc<AtomicU64>,
    ) -> std::io::Result<Option<AuditTrail>> {
        data_dir
            .map(|dir| AuditTrail::open(dir, max_file_bytes, dropped_total))
            .transpose()
    }

    /// Queue one record; drops (and counts) it when the writer is behind.
    pub fn record(&self, entry: Entry) {
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped.add("queue full"),
            Err(TrySendError::Disconnected(_)) => self.dropped.add("writer stopped"),
        }
    }

    /// Records dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.total.load(Relaxed)
    }
}

#[cfg(test)]
mod tests;

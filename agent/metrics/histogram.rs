//! The duration histogram: fixed boundaries, atomics on the request path, and the latest exemplar per bucket.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// A request whose trace was kept, as an OpenMetrics exemplar of the bucket it fell in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The kept trace.
    pub trace_id: [u8; 16],
    /// Redline's SERVER span in it.
    pub span_id: [u8; 8],
    /// The observed duration in seconds.
    pub seconds: f64,
    /// When, in Unix milliseconds.
    pub unix_ms: u64,
}

/// A cumulative histogram with fixed boundaries, recorded with atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    // One more bucket than bounds: the +Inf overflow.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
    // The latest exemplar per bucket; allocated with the first (most series never get one).
    exemplars: OnceLock<Box<[Mutex<Option<Exemplar>>]>>,
}

impl Histogram {
    /// A histogram over `bounds` (sorted, in seconds).
    pub fn new(bounds: Arc<[f64]>) -> Self {
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            buckets,
            sum_nanos: AtomicU64::new(0),
            exemplars: OnceLock::new(),
        }
    }

    /// Record one observation in seconds.
    pub fn observe(&self, seconds: f64) {
        self.observe_with(seconds, None);
    }

    /// Record one observation; `exemplar` (a kept trace) replaces its bucket's last one.
    #[inline]
    pub fn observe_with(&self, seconds: f64, exemplar: Option<Exemplar>) {
        let idx = self.bounds.partition_point(|b| *b < seconds);
        self.buckets[idx].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add((seconds * 1e9) as u64, Relaxed);
        if let Some(e) = exemplar {
            self.keep_exemplar(idx, e);
        }
    }

    /// Only requests whose trace is exported carry an exemplar: kept off the inlined path.
    #[cold]
    fn keep_exemplar(&self, idx: usize, e: Exemplar) {
        let slots = self
            .exemplars
            .get_or_init(|| (0..self.buckets.len()).map(|_| Mutex::new(None)).collect());
        // Contended means another request is writing this bucket's exemplar: either is fine.
        if let Ok(mut slot) = slots[idx].try_lock() {
            *slot = Some(e);
        }
    }

    /// The latest exemplar of each bucket (the last one being +Inf).
    pub fn exemplars(&self) -> Vec<Option<Exemplar>> {
        match self.exemplars.get() {
            None => vec![None; self.buckets.len()],
            Some(slots) => slots
                .iter()
                .map(|s| *s.lock().unwrap_or_else(|e| e.into_inner()))
                .collect(),
        }
    }

    /// Boundaries in seconds.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Per-bucket (non-cumulative) counts, the last one being +Inf.
    pub fn bucket_counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }

    /// Sum of observations in seconds.
    pub fn sum(&self) -> f64 {
        self.sum_nanos.load(Relaxed) as f64 / 1e9
    }
}

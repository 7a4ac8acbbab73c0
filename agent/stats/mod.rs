//! Per-flow statistics: lock-free sliding windows of exact per-slot counts and latency histograms.
//!
//! - [`FlowWindow`]: 5 s slots with requests, errors, timeouts and a log-scale latency histogram
//!   (quantiles within 2 %), for `/api/flows`, rule evaluation and the dashboard series.
//! - [`CoarseCounter`]: 1 m slots of total/bad counts for long SLO windows (up to 3 d and more).
//! - [`SloCounter`](slo::SloCounter): a flow's good/bad counts per minute for SLO burn rates.
//! - [`Shapes`](shapes::Shapes): a sample of request shapes per flow for `redline baseline record`.
//! - [`Clock`]: the time source; windows take `now_ms` explicitly so that tests are exact.
//!
//! Recording is lock-free and allocation-free; everything is allocated when a window is built.

pub mod clock;
pub mod coarse;
pub mod histogram;
mod ring;
pub mod shapes;
pub mod slo;
pub mod window;

pub use clock::{Clock, ManualClock, SystemClock};

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests any window or counter left out since start: see [`dropped_total`].
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Requests left out of some flow's windows or SLO counters since start
/// (`redline_stats_dropped_total`): a slot reset whose thread was preempted past the writer's
/// bounded wait, or a clock reading a whole ring turn old. Rare by design, but an alert that
/// did not fire should be explainable, so each one is counted where the operator looks.
pub fn dropped_total() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Counts one left-out sample; called only on the (cold) drop path.
fn count_drop() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}
pub use coarse::{COARSE_SLOT, CoarseCounter};
pub use window::{FlowWindow, MIN_SPAN, SLOT, Sample, SlotSummary, WindowSummary};

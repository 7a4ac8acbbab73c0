//! The per-flow SLO counter: good/bad counts per minute over 3 days, recorded on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::CoarseCounter;
use super::histogram::nanos;
use super::window::Sample;

/// What an SLO counter holds: the longest burn-rate window (`alerting::slo`'s pairs).
pub const SLO_SPAN: Duration = Duration::from_secs(3 * 24 * 3_600);

/// Good/bad counts of one SLO flow, recorded on the request path.
#[derive(Debug)]
pub struct SloCounter {
    counter: CoarseCounter,
    /// Requests slower than this (nanoseconds) are bad; `u64::MAX` when the SLO has no latency.
    latency_ns: AtomicU64,
}

impl SloCounter {
    /// A 3-day counter created at `now_ms`.
    pub fn new(latency: Option<Duration>, now_ms: u64) -> Self {
        Self {
            counter: CoarseCounter::new(SLO_SPAN, now_ms),
            latency_ns: AtomicU64::new(latency.map_or(u64::MAX, nanos)),
        }
    }

    /// Count one finished request. Lock-free: a relaxed load and one or two atomic adds.
    #[inline]
    pub fn record(&self, now_ms: u64, sample: &Sample) {
        let slow = nanos(sample.latency) > self.latency_ns.load(Ordering::Relaxed);
        self.counter.record(now_ms, sample.error || slow);
    }

    /// The per-minute counts.
    pub fn counter(&self) -> &CoarseCounter {
        &self.counter
    }

    /// Apply a new SLO latency (a reload changed it).
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.latency_ns
            .store(latency.map_or(u64::MAX, nanos), Ordering::Relaxed);
    }
}

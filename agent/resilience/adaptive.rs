//! The adaptive concurrency limit of a flow: a gradient limit (Netflix's `Gradient2Limit`, Envoy's adaptive concurrency) that finds how many requests the app serves at once from their latency.
//!
//! Requests add their latency to the current window with atomics. Whoever finishes a
//! request after the window has ended (and it holds enough samples) takes the window with a
//! `try_lock` (never waits: another request is already doing it) and recomputes the limit:
//!
//! ```text
//! gradient = clamp(TOLERANCE × baseline / window mean, 0.5, 1)
//! limit    = limit × (1 − SMOOTHING) + (limit × gradient + √limit) × SMOOTHING
//! ```
//!
//! The baseline is the app's latency when it is not queueing. It is measured as Envoy does
//! (an average of recent latencies cannot tell a slow app from a queueing one): the limit
//! drops to `min` for one window, the mean latency of the requests started in it is the
//! baseline, and the limit goes back to what it was. This is done first and then every
//! `baseline_interval`, jittered so replicas do not all measure at once. A window faster
//! than the baseline lowers it at once. While the app is limited by its traffic (fewer than
//! half the limit in flight) the limit does not grow.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Latency may grow to this multiple of the baseline before the limit falls: some queueing
/// keeps the app busy, and latency is noisy.
const TOLERANCE: f64 = 1.5;
/// Share of a newly computed limit taken per window, so one noisy window moves it little.
const SMOOTHING: f64 = 0.2;
/// Fewest samples a window needs; a quieter window goes on until it has them.
pub const MIN_SAMPLES: u64 = 10;
/// A window is made up to a tenth longer at random, so replicas do not recompute in step.
const WINDOW_JITTER: f64 = 0.1;
/// The baseline interval is made up to this much longer at random.
const BASELINE_JITTER: f64 = 0.15;

/// `concurrency.adaptive:`, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptivePolicy {
    /// Lowest limit, and the limit while the baseline is measured.
    pub min: u32,
    /// Highest limit.
    pub max: u32,
    /// The limit before the first window (and after a reload that turned it on).
    pub initial: u32,
    /// How long latencies are gathered before the limit is recomputed.
    pub window: Duration,
    /// How often the baseline latency is measured again.
    pub baseline_interval: Duration,
}

/// One flow's limit and its current window; kept across reloads.
#[derive(Debug, Default)]
pub struct AdaptiveLimit {
    /// The limit requests are admitted against; 0 until the first request.
    limit: AtomicU32,
    /// Sum of the window's latencies in microseconds, and their count.
    sum_us: AtomicU64,
    count: AtomicU64,
    /// Most requests in flight that a request of the window saw.
    peak: AtomicU32,
    /// When the window may close (clock milliseconds); 0 before the first sample.
    window_end: AtomicU64,
    /// Measuring the baseline since this time (clock milliseconds); 0 while tracking.
    measuring_since: AtomicU64,
    /// What only the window's closer touches.
    calc: Mutex<Calc>,
}

/// The state behind the limit, changed once per window.
#[derive(Debug, Default)]
struct Calc {
    /// The limit as a real number (the atomic holds it rounded).
    estimate: f64,
    /// The app's latency without queueing, microseconds; 0 until measured.
    baseline_us: f64,
    /// When the baseline is measured again.
    next_baseline_ms: u64,
}

/// One finished request, as the limit sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it finished (clock milliseconds).
    pub now_ms: u64,
    /// When it started (clock milliseconds).
    pub started_ms: u64,
    /// Its latency up to the app's response head.
    pub latency: Duration,
    /// Requests of the flow in flight when it finished, itself included.
    pub in_flight: u32,
}

impl AdaptiveLimit {
    /// The limit to admit a request against.
    pub fn limit(&self, policy: &AdaptivePolicy) -> u32 {
        match self.limit.load(Relaxed) {
            0 => policy.initial.clamp(policy.min, policy.max),
            // A reload may have narrowed the bounds since the last window.
            n => n.clamp(policy.min, policy.max),
        }
    }

    /// The current limit for `/api/flows` and the metric (0 before the first request).
    pub fn current(&self) -> u32 {
        self.limit.load(Relaxed)
    }

    /// Add one request's latency; the request that closes the window recomputes the limit.
    pub fn record(&self, sample: Sample, policy: &AdaptivePolicy) {
        let end = self.window_end.load(Relaxed);
        if end == 0 {
            self.start(sample.now_ms, policy);
        }
        // While the baseline is measured, only requests admitted under `min` tell it.
        if sample.started_ms <= self.measuring_since.load(Relaxed) {
            return;
        }
        let us = u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Relaxed);
        let count = self.count.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(sample.in_flight, Relaxed);
        if end != 0 && sample.now_ms >= end && count >= MIN_SAMPLES {
            self.close(sample.now_ms, policy);
        }
    }

    /// The first sample: measure the baseline first.
    #[cold]
    fn start(&self, now_ms: u64, policy: &AdaptivePolicy) {
        let Ok(mut calc) = self.calc.try_lock() else {
            return;
        };
        if self.window_end.load(Relaxed) != 0 {
            return;
        }
        calc.estimate = f64::from(self.limit(policy));
        self.measure(now_ms, policy);
    }

    /// Start measuring the baseline: the limit falls to `min` for a window.
    fn measure(&self, now_ms: u64, policy: &AdaptivePolicy) {
        self.measuring_since.store(now_ms.max(1), Relaxed);
        self.limit.store(policy.min, Relaxed);
        self.next_window(now_ms, policy);
    }

    fn next_window(&self, now_ms: u64, policy: &AdaptivePolicy) {
        self.sum_us.store(0, Relaxed);
        self.count.store(0, Relaxed);
        self.peak.store(0, Relaxed);
        let window = policy.window.as_millis() as f64;
        let jittered = window * (1.0 + WINDOW_JITTER * fastrand::f64());
        self.window_end
            .store(now_ms + jittered.max(1.0) as u64, Relaxed);
    }

    /// Close the window and recompute the limit (skipped when another request does).
    #[cold]
    fn close(&self, now_ms: u64, policy: &AdaptivePolicy) {
        let Ok(mut calc) = self.calc.try_lock() else {
            return;
        };
        // Checked again under the lock: another request may have just closed it.
        let (count, sum) = (self.count.load(Relaxed), self.sum_us.load(Relaxed));
        if now_ms < self.window_end.load(Relaxed) || count < MIN_SAMPLES {
            return;
        }
        let mean_us = sum as f64 / count as f64;
        let peak = self.peak.load(Relaxed);
        let measured = self.measuring_since.swap(0, Relaxed) != 0;
        let limit = calc.next(now_ms, mean_us, peak, measured, policy);
        if !measured && now_ms >= calc.next_baseline_ms {
            self.measure(now_ms, policy);
            return;
        }
        self.limit.store(limit, Relaxed);
        self.next_window(now_ms, policy);
    }
}

impl Calc {
    /// The limit after a window of `mean_us` mean latency with at most `peak` in flight.
    fn next(
        &mut self,
        now_ms: u64,
        mean_us: f64,
        peak: u32,
        measured: bool,
        policy: &AdaptivePolicy,
    ) -> u32 {
        let (min, max) = (f64::from(policy.min), f64::from(policy.max.max(policy.min)));
        if measured {
            self.baseline_us = mean_us.max(1.0);
            let every = policy.baseline_interval.as_millis() as f64;
            let jittered = every * (1.0 + BASELINE_JITTER * fastrand::f64());
            self.next_baseline_ms = now_ms + jittered as u64;
            self.estimate = self.estimate.clamp(min, max);
            return self.estimate.round() as u32;
        }
        self.baseline_us = self.baseline_us.min(mean_us.max(1.0));
        let gradient = (TOLERANCE * self.baseline_us / mean_us.max(1.0)).clamp(0.5, 1.0);
        // Traffic, not the app, holds the limit back: nothing learned.
        let app_limited = f64::from(peak) < self.estimate / 2.0;
        if !app_limited {
            let target = self.estimate * gradient + self.estimate.sqrt();
            self.estimate = self.estimate * (1.0 - SMOOTHING) + target * SMOOTHING;
        }
        self.estimate = self.estimate.clamp(min, max);
        self.estimate.round() as u32
    }
}

#[cfg(test)]
mod tests;

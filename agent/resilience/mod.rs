//! Per-flow protection state that the proxy consults and that outlives reloads: the retry policy and its budget, the circuit breaker, the stale store, injected faults, the adaptive concurrency limit.
//!
//! This module is at the lowest layer on purpose: it holds plain numbers and atomics, no
//! configuration types, so `state` can keep one [`FlowResilience`] per flow (surviving
//! reloads, like the flow's windows) and `proxy` can decide with it on the request path.

pub mod adaptive;
pub mod breaker;
mod budget;
pub mod fault;
pub mod stale;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub use adaptive::{AdaptiveLimit, AdaptivePolicy};
pub use breaker::{Admission, Breaker, BreakerPolicy, CircuitState, Verdict};
pub use budget::RetryBudget;
pub use fault::{Fault, FaultRule, Faults};
pub use stale::{StaleEntry, StaleStore};

/// How a flow's failed tries are repeated (`retries:`), resolved from the configuration.
/// Only flows with more than one attempt get one, so "retries off" is a `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (2 or more: one try is no policy).
    pub attempts: u32,
    /// Longest wait for one try's response head; the flow's timeout still bounds them all.
    pub per_try_timeout: Option<Duration>,
    /// Statuses 400–599 that are tried again, one bit each (bit `status - 400`).
    statuses: [u64; 4],
    /// Full-jitter backoff: the first retry waits up to `backoff_base`, doubling, at most `backoff_max`.
    pub backoff_base: Duration,
    /// The cap of the backoff.
    pub backoff_max: Duration,
    /// Retries allowed per second, as a fraction of the flow's requests that second.
    pub budget_ratio: f64,
    /// Retries allowed per second whatever the traffic (so a quiet flow can retry at all).
    pub budget_floor: u32,
}

impl RetryPolicy {
    /// A policy; statuses outside 400–599 are ignored (configuration refuses them).
    pub fn new(attempts: u32, per_try_timeout: Option<Duration>, retry_on: &[u16]) -> Self {
        let mut statuses = [0u64; 4];
        for &s in retry_on.iter().filter(|s| (400..600).contains(*s)) {
            let bit = usize::from(s - 400);
            statuses[bit / 64] |= 1 << (bit % 64);
        }
        RetryPolicy {
            attempts,
            per_try_timeout,
            statuses,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            budget_ratio: 0.2,
            budget_floor: 10,
        }
    }

    /// Whether an answer with `status` is tried again.
    pub fn retries_status(&self, status: u16) -> bool {
        if !(400..600).contains(&status) {
            return false;
        }
        let bit = usize::from(status - 400);
        self.statuses[bit / 64] & (1 << (bit % 64)) != 0
    }
}

/// A flow's fallbacks (`fallback:`), resolved.
#[derive(Debug, Clone)]
pub struct FallbackPolicy {
    /// Serve the last good response of the same target.
    pub stale: Option<StalePolicy>,
    /// Else serve this.
    pub static_response: Option<StaticFallback>,
}

/// `fallback.stale_if_error`, resolved.
#[derive(Debug, Clone, Copy)]
pub struct StalePolicy {
    /// Oldest response served.
    pub max_age_ms: u64,
    /// Largest body kept.
    pub max_body: usize,
    /// All bodies kept, together.
    pub max_size: usize,
    /// Keep responses to requests with credentials too.
    pub allow_credentials: bool,
}

/// `fallback.static`, resolved: the response as it is sent.
#[derive(Debug, Clone)]
pub struct StaticFallback {
    /// Its status.
    pub status: http::StatusCode,
    /// Its headers, `Content-Type` and `Retry-After` included.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: bytes::Bytes,
}

/// Why a retry was or was not made: the `result` label of `redline_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryResult {
    /// A failed try was repeated.
    Retried,
    /// A retry was due, but the flow's retry budget was spent for this second.
    BudgetExhausted,
    /// The last allowed attempt failed too.
    AttemptsExhausted,
}

impl RetryResult {
    /// Every result, in label order.
    pub const ALL: [RetryResult; 3] = [
        RetryResult::Retried,
        RetryResult::BudgetExhausted,
        RetryResult::AttemptsExhausted,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RetryResult::Retried => "retried",
            RetryResult::BudgetExhausted => "budget_exhausted",
            RetryResult::AttemptsExhausted => "attempts_exhausted",
        }
    }
}

/// A flow's protection state, kept across reloads.
#[derive(Debug, Default)]
pub struct FlowResilience {
    /// Retries spent against the flow's requests, per second.
    pub budget: RetryBudget,
    /// `redline_retries_total{result}`, one counter per [`RetryResult`].
    retries: [AtomicU64; 3],
    /// The flow's circuit (used only when it has a `circuit_breaker:`).
    pub breaker: Breaker,
    /// Last good responses (used only with `fallback.stale_if_error`).
    pub stale: StaleStore,
    /// `redline_fallbacks_total{kind}`: stale, static.
    fallbacks: [AtomicU64; 2],
    /// Faults added through the admin API.
    pub faults: Faults,
    /// The adaptive concurrency limit (used only with `concurrency.adaptive`).
    pub concurrency: AdaptiveLimit,
}

/// Which fallback answered a failed request: the `kind` label and `x-redline-fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackKind {
    /// The last good response to the same target.
    Stale,
    /// The flow's configured static response.
    Static,
}

impl FallbackKind {
    /// Both kinds, in label order.
    pub const ALL: [FallbackKind; 2] = [FallbackKind::Stale, FallbackKind::Static];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            FallbackKind::Stale => "stale",
            FallbackKind::Static => "static",
        }
    }
}

impl FlowResilience {
    /// Count one retry decision (failure path only: never on a request that succeeded first).
    pub fn count(&self, result: RetryResult) {
        self.retries[result as usize].fetch_add(1, Relaxed);
    }

    /// Count one fallback served.
    pub fn count_fallback(&self, kind: FallbackKind) {
        self.fallbacks[kind as usize].fetch_add(1, Relaxed);
    }

    /// Fallbacks of one kind served.
    pub fn fallbacks(&self, kind: FallbackKind) -> u64 {
        self.fallbacks[kind as usize].load(Relaxed)
    }

    /// The count of one retry result.
    pub fn retries(&self, result: RetryResult) -> u64 {
        self.retries[result as usize].load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_bits_and_others_are_ignored() {
        let p = RetryPolicy::new(3, None, &[502, 503, 504, 429, 200, 700]);
        assert!(p.retries_status(503) && p.retries_status(429) && p.retries_status(504));
        assert!(!p.retries_status(500) && !p.retries_status(200) && !p.retries_status(599));
        assert!(!p.retries_status(700));
    }
}

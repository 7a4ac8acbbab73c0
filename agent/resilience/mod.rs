//! Per-flow protection state that the proxy consults and that outlives reloads: the retry policy and its budget, the circuit breaker.
//!
//! This module is at the lowest layer on purpose: it holds plain numbers and atomics, no
//! configuration types, so `state` can keep one [`FlowResilience`] per flow (surviving
//! reloads, like the flow's windows) and `proxy` can decide with it on the request path.

pub mod breaker;
mod budget;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub use breaker::{Admission, Breaker, BreakerPolicy, CircuitState, Verdict};
pub use budget::RetryBudget;

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
}

impl FlowResilience {
    /// Count one retry decision (failure path only: never on a request that succeeded first).
    pub fn count(&self, result: RetryResult) {
        self.retries[result as usize].fetch_add(1, Relaxed);
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

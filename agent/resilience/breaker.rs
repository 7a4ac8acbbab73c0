//! The circuit breaker of a flow: closed, open (requests refused without reaching the app), half-open (one probe), driven by an injected clock.
//!
//! Opens when `consecutive_failures` tries in a row fail, or when the failures of the
//! last `window` reach `error_ratio` of at least `min_requests` requests. After a
//! jittered backoff (`open_for`, doubling each time a probe fails, at most
//! `max_open_for`) one request goes through as a probe: its success closes the circuit,
//! its failure opens it again. Everything is atomics (no lock on the request path): the
//! state, its deadline and the reopen count share one word, and the window is a ring of
//! one-second slots, each one packed word.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Longest window in seconds (the ring's size).
pub const MAX_WINDOW_SECS: usize = 60;

/// When a flow's circuit opens and for how long (`circuit_breaker:`, resolved).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Failures in a row that open the circuit (0: this trigger is off).
    pub consecutive_failures: u32,
    /// Share of failed requests in the window that opens the circuit (`None`: off).
    pub error_ratio: Option<f64>,
    /// The window of the ratio, in seconds (1 to [`MAX_WINDOW_SECS`]).
    pub window_secs: u32,
    /// Fewest requests in the window for the ratio to count.
    pub min_requests: u32,
    /// First wait before a probe; doubles per failed probe.
    pub open_for: Duration,
    /// Longest wait before a probe.
    pub max_open_for: Duration,
}

/// A circuit's state; the `redline_circuit_state` gauge value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests go to the app (0).
    Closed = 0,
    /// Requests are refused or served a fallback, until the probe time (1).
    Open = 1,
    /// One probe request is with the app (2).
    HalfOpen = 2,
}

impl CircuitState {
    /// The `circuit` text of `/api/flows`.
    pub fn label(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// What the breaker says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go on, and report the outcome.
    Pass,
    /// This request is the half-open probe: its outcome decides.
    Probe,
    /// Open: do not call the app; try again after this long.
    Refuse(Duration),
}

/// How a request the breaker let through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The app answered well (or with a 4xx: the client's doing).
    Success,
    /// The app failed: a 5xx, no answer, a timeout.
    Failure,
    /// No verdict on the app: the client left or was refused.
    Unknown,
}

/// One flow's circuit, kept across reloads.
#[derive(Debug)]
pub struct Breaker {
    /// `until_ms << 8 | reopens << 2 | state`.
    word: AtomicU64,
    consecutive: AtomicU32,
    /// Per second: `second << 40 | requests << 20 | failures`.
    slots: [AtomicU64; MAX_WINDOW_SECS],
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            word: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            slots: [const { AtomicU64::new(0) }; MAX_WINDOW_SECS],
        }
    }
}

fn unpack(word: u64) -> (CircuitState, u32, u64) {
    let state = match word & 3 {
        1 => CircuitState::Open,
        2 => CircuitState::HalfOpen,
        _ => CircuitState::Closed,
    };
    (state, ((word >> 2) & 63) as u32, word >> 8)
}

fn pack(state: CircuitState, reopens: u32, until_ms: u64) -> u64 {
    until_ms << 8 | u64::from(reopens.min(63)) << 2 | state as u64
}

const SLOT_MAX: u64 = (1 << 20) - 1;
/// A slot keeps its second's low 24 bits: enough to tell it from the 60 before it.
const SEC_MASK: u64 = (1 << 24) - 1;

impl Breaker {
    /// The state now (an open circuit past its deadline still reads open until a probe).
    pub fn state(&self) -> CircuitState {
        unpack(self.word.load(Relaxed)).0
    }

    /// Whether a request may go to the app at `now_ms`.
    pub fn admit(&self, now_ms: u64, policy: &BreakerPolicy) -> Admission {
        let word = self.word.load(Relaxed);
        let (state, reopens, until) = unpack(word);
        match state {
            CircuitState::Closed => Admission::Pass,
            // Half-open's deadline bounds its probe: one that never reports frees the slot.
            _ if now_ms < until => Admission::Refuse(Duration::from_millis(until - now_ms)),
            _ => {
                let probe_until = now_ms + millis(policy.max_open_for).max(1000);
                let next = pack(CircuitState::HalfOpen, reopens, probe_until);
                match self.word.compare_exchange(word, next, Relaxed, Relaxed) {
                    Ok(_) => Admission::Probe,
                    Err(_) => Admission::Refuse(Duration::from_millis(1)),
                }
            }
        }
    }

    /// Record the outcome of a request `admit` let through (`probe`: it was the probe).
    pub fn record(&self, now_ms: u64, verdict: Verdict, probe: bool, policy: &BreakerPolicy) {
        if probe {
            return self.settle_probe(now_ms, verdict, policy);
        }
        if verdict == Verdict::Unknown {
            return;
        }
        let failed = verdict == Verdict::Failure;
        let (requests, failures) = self.count(now_ms, failed, policy.window_secs);
        let consecutive = if failed {
            self.consecutive.fetch_add(1, Relaxed) + 1
        } else {
            self.consecutive.store(0, Relaxed);
            0
        };
        let by_row = policy.consecutive_failures > 0 && consecutive >= policy.consecutive_failures;
        let by_ratio = policy.error_ratio.is_some_and(|r| {
            requests >= u64::from(policy.min_requests.max(1))
                && failures as f64 >= r * requests as f64
        });
        if failed && (by_row || by_ratio) {
            let word = self.word.load(Relaxed);
            if unpack(word).0 == CircuitState::Closed {
                let open = pack(CircuitState::Open, 0, now_ms + wait(0, policy));
                let _ = self.word.compare_exchange(word, open, Relaxed, Relaxed);
            }
        }
    }

    fn settle_probe(&self, now_ms: u64, verdict: Verdict, policy: &BreakerPolicy) {
        let (_, reopens, _) = unpack(self.word.load(Relaxed));
        let next = match verdict {
            Verdict::Success => {
                self.consecutive.store(0, Relaxed);
                self.clear_window();
                pack(CircuitState::Closed, 0, 0)
            }
            Verdict::Failure => {
                let reopens = reopens + 1;
                pack(CircuitState::Open, reopens, now_ms + wait(reopens, policy))
            }
            // Nothing learnt: the next request probes again.
            Verdict::Unknown => pack(CircuitState::Open, reopens, now_ms),
        };
        self.word.store(next, Relaxed);
    }

    /// Count one request in the current second's slot; the window's (requests, failures).
    fn count(&self, now_ms: u64, failed: bool, window_secs: u32) -> (u64, u64) {
        let sec = now_ms / 1000;
        let window = u64::from(window_secs).clamp(1, MAX_WINDOW_SECS as u64);
        let slot = &self.slots[(sec % MAX_WINDOW_SECS as u64) as usize];
        let _ = slot.fetch_update(Relaxed, Relaxed, |w| {
            let (s, r, f) = (w >> 40, (w >> 20) & SLOT_MAX, w & SLOT_MAX);
            let (r, f) = if s == sec & SEC_MASK { (r, f) } else { (0, 0) };
            let f = f + u64::from(failed);
            Some((sec & SEC_MASK) << 40 | (r + 1).min(SLOT_MAX) << 20 | f.min(SLOT_MAX))
        });
        let mut totals = (0, 0);
        for back in 0..window {
            let want = sec.saturating_sub(back);
            let w = self.slots[(want % MAX_WINDOW_SECS as u64) as usize].load(Relaxed);
            if w >> 40 == want & SEC_MASK {
                totals.0 += (w >> 20) & SLOT_MAX;
                totals.1 += w & SLOT_MAX;
            }
        }
        totals
    }

    /// A closed circuit starts afresh: the failures that opened it are history.
    fn clear_window(&self) {
        for slot in &self.slots {
            slot.store(0, Relaxed);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wait before a probe after `reopens` failed probes: `open_for × 2^reopens` (at most
/// `max_open_for`), its second half jittered so that replicas do not probe in step.
fn wait(reopens: u32, policy: &BreakerPolicy) -> u64 {
    let ceiling = millis(crate::error::ceiling(
        reopens,
        policy.open_for,
        policy.max_open_for,
    ));
    let half = ceiling / 2;
    half + fastrand::u64(0..=ceiling - half)
}

#[cfg(test)]
mod tests;

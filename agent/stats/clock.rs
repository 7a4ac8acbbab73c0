//! Millisecond clocks for the statistics windows: the wall clock in production, a manual one in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now" in milliseconds since the UNIX epoch.
///
/// Windows take `now_ms` as an argument instead of holding a clock, so that one reading can be
/// shared by a whole evaluation (every flow judged at the same instant) and tests stay
/// deterministic.
pub trait Clock: Send + Sync {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// The system wall clock.
///
/// Wall time rather than a monotonic clock so that 5 s slots start on wall-clock multiples of
/// 5 s: every replica and the dashboard agree on slot boundaries. A backwards step of the clock
/// (NTP) makes new samples land in an older slot of the ring; they are still counted, and the
/// windows are right again once the clock passes the step.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 is broken beyond repair; 0 keeps the windows consistent (all
        // samples land in slot 0) instead of panicking on the request path.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to, for deterministic tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(start_ms),
        }
    }

    /// Jumps to `now_ms` (backwards too, to test clock steps).
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves forward by `by`, saturating at `u64::MAX` milliseconds.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // fetch_update keeps concurrent advances additive.
        let _ = self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_sets_and_advances() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_millis(4_500));
        assert_eq!(clock.now_ms(), 5_500);
        clock.set(42);
        assert_eq!(clock.now_ms(), 42);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_ms(), u64::MAX);
    }

    #[test]
    fn system_clock_is_wall_time() {
        // 2020-01-01 in ms: any sane host is past it.
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }

    #[test]
    fn clocks_work_through_arc_dyn() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(7));
        assert_eq!(clock.now_ms(), 7);
    }
}

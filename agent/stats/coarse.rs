//! Coarse good/bad event counts in 1-minute slots, for long SLO windows (30 m, 1 h, 6 h, 3 d).
//!
//! One-minute slots rather than five: a slot is 16 bytes, so 3 days take 4 323 slots = 69 KB
//! (under the 100 KB budget), and a 30 m or 1 h window then overshoots by less than a minute
//! instead of up to five. Window semantics and the reset protocol are those of
//! [`FlowWindow`](super::FlowWindow): a window `over` sums every slot holding an instant of
//! `[now − over, now]`, from exact counts, and reports the time those slots cover.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::ring;
use super::window::millis;

/// Milliseconds per coarse slot.
pub const COARSE_SLOT_MS: u64 = 60_000;

/// Width of one coarse slot: long windows move in steps of this.
pub const COARSE_SLOT: Duration = Duration::from_millis(COARSE_SLOT_MS);

/// Longest span a [`CoarseCounter`] supports (35 days, 806 KB): a 28- or 30-day SLO period.
pub const COARSE_MAX_SPAN: Duration = Duration::from_secs(35 * 24 * 3600);

#[derive(Debug, Default)]
struct CoarseSlot {
    epoch: AtomicU64,
    total: AtomicU32,
    bad: AtomicU32,
}

/// Lock-free counts of total and bad events per minute over a long span, e.g. one per flow SLO.
pub struct CoarseCounter {
    slots: Box<[CoarseSlot]>,
    span_slots: u64,
    created_ms: u64,
    dropped: AtomicU64,
}

impl CoarseCounter {
    /// A counter answering for any `over` up to `longest` (rounded up to a minute, at least 1 m,
    /// at most 35 d). `now_ms` is the creation time: `covered` never reaches before it.
    pub fn new(longest: Duration, now_ms: u64) -> Self {
        let span_slots =
            millis(longest.clamp(COARSE_SLOT, COARSE_MAX_SPAN)).div_ceil(COARSE_SLOT_MS);
        // Windows need span_slots + 1 slots, advance pre-clears one more, and one spare keeps the
        // oldest slot for a reader a minute behind the ticker. span_slots ≤ 50 400.
        let slots = (0..span_slots as usize + 3)
            .map(|_| CoarseSlot::default())
            .collect();
        Self {
            slots,
            span_slots,
            created_ms: now_ms,
            dropped: AtomicU64::new(0),
        }
    }

    /// Counts one event at `now_ms`; `bad` also counts it as bad. Lock-free, allocation-free.
    #[inline]
    pub fn record(&self, now_ms: u64, bad: bool) {
        let slot = now_ms / COARSE_SLOT_MS;
        let Some(s) = self.slots.get(self.index(slot)) else {
            return;
        };
        if s.epoch.load(Ordering::Acquire) != slot && !claim(s, slot) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            super::count_drop();
            return;
        }
        s.total.fetch_add(1, Ordering::Relaxed);
        if bad {
            s.bad.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prepares the current and next slot so that recording almost never resets; call it from
    /// the same background ticker as [`FlowWindow::advance`](super::FlowWindow::advance).
    pub fn advance(&self, now_ms: u64) {
        let slot = now_ms / COARSE_SLOT_MS;
        for slot in [slot, slot + 1] {
            if let Some(s) = self.slots.get(self.index(slot)) {
                claim(s, slot);
            }
        }
    }

    /// `(total, bad, covered)` over the last `over` (capped at [`span`](Self::span)): exact
    /// counts of every slot holding an instant of `[now − over, now]`, and the time they cover
    /// (from the oldest slot's start, or creation if later, to `now`).
    pub fn sum(&self, now_ms: u64, over: Duration) -> (u64, u64, Duration) {
        let over = over.min(self.span());
        let current = now_ms / COARSE_SLOT_MS;
        let oldest = now_ms.saturating_sub(millis(over)) / COARSE_SLOT_MS;
        let (mut total, mut bad) = (0u64, 0u64);
        for slot in oldest..=current {
            let Some(s) = self.slots.get(self.index(slot)) else {
                continue;
            };
            let read = ring::read(&s.epoch, slot, || {
                (
                    u64::from(s.total.load(Ordering::Relaxed)),
                    u64::from(s.bad.load(Ordering::Relaxed)),
                )
            });
            if let Some((t, b)) = read {
                total += t;
                bad += b;
            }
        }
        let start = (oldest * COARSE_SLOT_MS).max(self.created_ms);
        let covered = Duration::from_millis(now_ms.saturating_sub(start));
        // A bad increment may be seen before its total one while writers run.
        (total, bad.min(total), covered)
    }

    /// The longest `over` answered exactly: `longest` rounded up to a minute.
    pub fn span(&self) -> Duration {
        Duration::from_millis(self.span_slots * COARSE_SLOT_MS)
    }

    /// When the counter was created.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// Events not counted (clock reading older than a ring turn, or a reset that did not finish).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Heap and inline bytes held by this counter.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.slots.len() * size_of::<CoarseSlot>()
    }

    fn index(&self, slot: u64) -> usize {
        // The remainder is below slots.len(), a usize.
        (slot % self.slots.len() as u64) as usize
    }
}

#[cold]
#[inline(never)]
fn claim(s: &CoarseSlot, slot: u64) -> bool {
    ring::claim(&s.epoch, slot, || {
        s.total.store(0, Ordering::Relaxed);
        s.bad.store(0, Ordering::Relaxed);
    })
}

impl fmt::Debug for CoarseCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseCounter")
            .field("span", &self.span())
            .field("slots", &self.slots.len())
            .field("created_ms", &self.created_ms)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_040_000; // a multiple of 1 minute
    const HOUR: Duration = Duration::from_secs(3_600);
    const THREE_DAYS: Duration = Duration::from_secs(3 * 24 * 3_600);

    #[test]
    fn three_days_fit_in_100_kb() {
        let c = CoarseCounter::new(THREE_DAYS, T0);
        assert_eq!(c.span(), THREE_DAYS);
        assert!(c.memory_bytes() < 100 * 1024, "{}", c.memory_bytes());
        fn check<T: Send + Sync>() {}
        check::<CoarseCounter>();
    }

    #[test]
    fn windows_of_one_hour_six_hours_and_three_days() {
        let c = CoarseCounter::new(THREE_DAYS, T0);
        // One event per minute for 4 days, every 10th bad, with the ticker running hourly.
        let minutes = 4 * 24 * 60;
        for m in 0..minutes {
            let at = T0 + m * COARSE_SLOT_MS + 30_000;
            if m % 60 == 0 {
                c.advance(at);
            }
            c.record(at, m % 10 == 0);
        }
        let now = T0 + minutes * COARSE_SLOT_MS - 1; // end of the last minute
        let (total, bad, covered) = c.sum(now, HOUR);
        // The 1 h window holds the current minute and the 60 before it, all full.
        assert_eq!((total, bad), (61, 6));
        assert_eq!(covered, Duration::from_millis(61 * 60_000 - 1));
        let (total, _, _) = c.sum(now, 6 * HOUR);
        assert_eq!(total, 6 * 60 + 1);
        let (total, bad, covered) = c.sum(now, THREE_DAYS);
        assert_eq!(total, 3 * 24 * 60 + 1);
        assert_eq!(bad, (1_439..minutes).filter(|m| m % 10 == 0).count() as u64);
        assert!(covered >= THREE_DAYS && covered < THREE_DAYS + COARSE_SLOT);
        assert_eq!(c.dropped(), 0);
    }

    #[test]
    fn window_boundaries_and_partial_coverage() {
        let created = T0 + 20_000;
        let c = CoarseCounter::new(6 * HOUR, created);
        let now = created + 2 * 3_600_000;
        c.record(now - 3_600_000 - 60_000, true); // 1 h 1 m ago: out of 1 h
        c.record(now - 3_600_000, true); // exactly 1 h ago: in
        c.record(now - 1_000, false);
        assert_eq!(c.sum(now, HOUR), (2, 1, Duration::from_millis(3_620_000)));
        // The 6 h window started at creation, 2 h ago.
        assert_eq!(c.sum(now, 6 * HOUR), (3, 2, 2 * HOUR));
        // Beyond the span, the span is answered.
        assert_eq!(c.sum(now, THREE_DAYS).0, 3);
    }

    #[test]
    fn slots_are_zeroed_after_wrap_around() {
        let c = CoarseCounter::new(HOUR, T0);
        let ring = c.slots.len() as u64;
        for _ in 0..10 {
            c.record(T0, true);
        }
        let later = T0 + ring * COARSE_SLOT_MS;
        c.record(later, false);
        assert_eq!(c.sum(later, Duration::ZERO).0, 1);
        assert_eq!(c.sum(later, HOUR).1, 0);
        // advance pre-clears the slot that the next minute reuses.
        c.record(later + 60_000 - ring * COARSE_SLOT_MS, true);
        c.advance(later);
        let next = c.slots[c.index(later / COARSE_SLOT_MS + 1)]
            .total
            .load(Ordering::Relaxed);
        assert_eq!(next, 0);
    }

    #[test]
    fn concurrent_events_sum_exactly() {
        let c = CoarseCounter::new(HOUR, T0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..100_000u64 {
                        c.record(T0 + i / 10, i % 4 == 0);
                    }
                });
            }
        });
        // A writer meeting a reset whose thread was preempted too long drops and counts its
        // event (see `ring`): every event is counted once or dropped, never lost silently.
        let (total, bad, covered) = c.sum(T0 + 10_000, HOUR);
        assert_eq!(total + c.dropped(), 400_000);
        assert!(bad <= 100_000 && bad + c.dropped() >= 100_000);
        assert!(c.dropped() <= 400);
        assert_eq!(covered, Duration::from_secs(10));
    }
}

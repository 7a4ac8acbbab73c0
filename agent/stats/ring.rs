//! The slot rings' epoch protocol: claiming a stale slot for a new epoch, reading a slot safely.
//!
//! Each slot carries the number of the time slot it currently counts (`now_ms / slot_ms`). A slot
//! whose epoch is older than the writer's is stale: the first thread to swap its epoch to
//! [`RESETTING`] zeroes the counters and then publishes the new epoch with release ordering, so
//! any thread that sees the new epoch also sees the zeros and its increments land after them.
//!
//! The remaining races are benign and rare, because `advance` pre-clears the next slot a few
//! seconds before it is used, so writers almost never reset:
//! - a writer that finds a slot mid-reset waits a bounded time (spins, then yields) and, if the
//!   resetting thread is still not done, drops its sample and counts it as dropped;
//! - a writer that read the current epoch and is then descheduled for a whole ring turn (minutes)
//!   adds its sample to whatever epoch the slot holds by then;
//! - a reader that races a reset of the slot it is reading notices the epoch change and skips the
//!   slot, which by then has left every window anyway.

use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Epoch value while a slot is being zeroed; real epochs (`now_ms / slot_ms`) never reach it.
pub(crate) const RESETTING: u64 = u64::MAX;

/// Spins before yielding while another thread resets a slot; zeroing takes well under 1 µs.
const SPINS: u32 = 64;

/// Total waits (spins plus yields) before a writer gives up on a slot being reset.
const MAX_WAITS: u32 = SPINS + 1_000;

/// Makes the slot guarded by `epoch` count epoch `target`, zeroing it first if it counted an
/// older one. Returns false when the sample must be dropped: the slot already counts a newer
/// epoch (the caller's clock reading is more than a ring turn old) or a reset did not finish in
/// time.
pub(crate) fn claim(epoch: &AtomicU64, target: u64, zero: impl FnOnce()) -> bool {
    let mut seen = epoch.load(Ordering::Acquire);
    let mut waits = 0u32;
    loop {
        if seen == target {
            return true;
        }
        if seen == RESETTING {
            if waits >= MAX_WAITS {
                return false;
            }
            if waits < SPINS {
                std::hint::spin_loop();
            } else {
                // The resetting thread may have been preempted; let it run.
                std::thread::yield_now();
            }
            waits += 1;
            seen = epoch.load(Ordering::Acquire);
            continue;
        }
        if seen > target {
            return false;
        }
        match epoch.compare_exchange_weak(seen, RESETTING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                // Pairs with the acquire fence in `read`: a reader that observes any of the zeroing
                // stores is guaranteed to then see the epoch change and discard its reading.
                fence(Ordering::Release);
                zero();
                epoch.store(target, Ordering::Release);
                return true;
            }
            Err(actual) => seen = actual,
        }
    }
}

/// Reads a slot that must count epoch `expected`; `None` if it counts another epoch or was reset
/// while being read (seqlock-style validation).
pub(crate) fn read<R>(epoch: &AtomicU64, expected: u64, read: impl FnOnce() -> R) -> Option<R> {
    if epoch.load(Ordering::Acquire) != expected {
        return None;
    }
    let value = read();
    fence(Ordering::Acquire);
    (epoch.load(Ordering::Relaxed) == expected).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn claim_resets_only_stale_slots() {
        let epoch = AtomicU64::new(3);
        let counter = AtomicU32::new(9);
        let zero = || counter.store(0, Ordering::Relaxed);
        assert!(claim(&epoch, 3, zero));
        assert_eq!(counter.load(Ordering::Relaxed), 9);
        assert!(claim(&epoch, 5, || counter.store(0, Ordering::Relaxed)));
        assert_eq!(counter.load(Ordering::Relaxed), 0);
        assert_eq!(epoch.load(Ordering::Relaxed), 5);
        // An older writer must not clobber a newer epoch.
        counter.store(4, Ordering::Relaxed);
        assert!(!claim(&epoch, 4, || counter.store(0, Ordering::Relaxed)));
        assert_eq!(counter.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn claim_gives_up_on_a_reset_that_never_ends() {
        let epoch = AtomicU64::new(RESETTING);
        assert!(!claim(&epoch, 1, || {}));
    }

    #[test]
    fn read_rejects_other_epochs_and_concurrent_resets() {
        let epoch = AtomicU64::new(7);
        assert_eq!(read(&epoch, 7, || 1), Some(1));
        assert_eq!(read(&epoch, 6, || 1), None);
        assert_eq!(
            read(&epoch, 7, || epoch.store(RESETTING, Ordering::Relaxed)),
            None
        );
    }
}

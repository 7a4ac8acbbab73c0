//! The retry budget: per second, a flow may retry at most a fraction of its requests plus a small floor (linkerd's and Envoy's retry budgets).
//!
//! Without a budget, retries multiply an outage: every failing request becomes
//! `attempts` requests just when the app can least take them. With one, retries are
//! at most `floor + ratio × requests` each second, however the tries fail.
//!
//! Lock-free: the second, its requests and its retries share one `AtomicU64`, so a
//! rollover to a new second and a count can never be seen half done, and "is there
//! budget left" and "spend it" are one compare-and-swap. Only flows with retries on
//! touch it.
//!
//! A second's budget is earned by the larger of its own requests and the previous
//! second's (kept in a second word at rollover): otherwise each second would start with
//! only the floor, and the failures of its first milliseconds would find no budget,
//! clustering refused retries at every second's start (linkerd smooths over 10 s).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bits of the packed word: the second (its low 24 bits: only equality matters), the
/// requests of that second (saturating at 2^24 − 1), and its retries (at 2^16 − 1).
const REQ_BITS: u32 = 24;
const RETRY_BITS: u32 = 16;
const REQ_MAX: u64 = (1 << REQ_BITS) - 1;
const RETRY_MAX: u64 = (1 << RETRY_BITS) - 1;
const SEC_MASK: u64 = (1 << 24) - 1;

/// One flow's retry budget for the current second.
#[derive(Debug, Default)]
pub struct RetryBudget {
    /// `second << 40 | requests << 16 | retries`.
    word: AtomicU64,
    /// The previous second's word, as it was when the second ended.
    previous: AtomicU64,
}

fn unpack(word: u64) -> (u64, u64, u64) {
    (
        word >> (REQ_BITS + RETRY_BITS),
        (word >> RETRY_BITS) & REQ_MAX,
        word & RETRY_MAX,
    )
}

fn pack(sec: u64, requests: u64, retries: u64) -> u64 {
    (sec & SEC_MASK) << (REQ_BITS + RETRY_BITS) | requests << RETRY_BITS | retries
}

/// The counts of the second `now_ms` falls in, as stored in `word` (zero for a new second).
fn current(word: u64, now_ms: u64) -> (u64, u64, u64) {
    let sec = (now_ms / 1000) & SEC_MASK;
    match unpack(word) {
        (s, requests, retries) if s == sec => (sec, requests, retries),
        _ => (sec, 0, 0),
    }
}

impl RetryBudget {
    /// A request of the flow arrived (its first try): it earns `ratio` of a retry.
    pub fn deposit(&self, now_ms: u64) {
        let old = self.word.fetch_update(Relaxed, Relaxed, |w| {
            let (sec, requests, retries) = current(w, now_ms);
            Some(pack(sec, (requests + 1).min(REQ_MAX), retries))
        });
        let old = old.unwrap_or_else(|w| w);
        if unpack(old).0 != (now_ms / 1000) & SEC_MASK {
            // This deposit rolled the second over: keep the one that ended.
            self.previous.store(old, Relaxed);
        }
    }

    /// Requests of the second before `now_ms`'s, if it was the last one counted.
    fn previous_requests(&self, now_ms: u64) -> u64 {
        let (sec, requests, _) = unpack(self.previous.load(Relaxed));
        let before = (now_ms / 1000).wrapping_sub(1) & SEC_MASK;
        if sec == before { requests } else { 0 }
    }

    /// Spend one retry if this second's budget (`floor + ratio × requests`, the requests
    /// being the larger of this second's and the previous second's) has room.
    pub fn withdraw(&self, now_ms: u64, ratio: f64, floor: u32) -> bool {
        let previous = self.previous_requests(now_ms);
        self.word
            .fetch_update(Relaxed, Relaxed, |w| {
                let (sec, requests, retries) = current(w, now_ms);
                (retries < allowed(requests.max(previous), ratio, floor))
                    .then(|| pack(sec, requests, retries + 1))
            })
            .is_ok()
    }

    /// This second's (requests, retries), for tests and views.
    pub fn counts(&self, now_ms: u64) -> (u64, u64) {
        let (_, requests, retries) = current(self.word.load(Relaxed), now_ms);
        (requests, retries)
    }
}

/// Retries allowed in a second with `requests` requests so far.
pub fn allowed(requests: u64, ratio: f64, floor: u32) -> u64 {
    // Truncation is the point: a fraction of a retry is not a retry.
    let earned = (requests as f64 * ratio.clamp(0.0, 1.0)) as u64;
    (u64::from(floor) + earned).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_floor_then_the_ratio_then_a_new_second() {
        let b = RetryBudget::default();
        let t = 5_000;
        assert!(b.withdraw(t, 0.2, 1));
        assert!(!b.withdraw(t, 0.2, 1), "the floor is spent");
        for _ in 0..10 {
            b.deposit(t + 10);
        }
        assert!(b.withdraw(t + 20, 0.2, 1));
        assert!(b.withdraw(t + 20, 0.2, 1));
        assert!(!b.withdraw(t + 20, 0.2, 1), "1 + 20% of 10 = 3");
        assert_eq!(b.counts(t + 999), (10, 3));
        assert_eq!(b.counts(t + 1000), (0, 0));
        b.deposit(t + 1000);
        for _ in 0..3 {
            assert!(
                b.withdraw(t + 1000, 0.2, 1),
                "a new second earns from the last one's 10"
            );
        }
        assert!(!b.withdraw(t + 1000, 0.2, 1));
        b.deposit(t + 3000);
        assert!(b.withdraw(t + 3000, 0.2, 1));
        assert!(
            !b.withdraw(t + 3000, 0.2, 1),
            "two seconds later only the floor"
        );
    }

    /// One step of a failure pattern: time passes, a request arrives, or a retry is asked for.
    #[derive(Debug, Clone)]
    enum Step {
        Advance(u64),
        Request,
        Retry,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => (0u64..1500).prop_map(Step::Advance),
            4 => Just(Step::Request),
            4 => Just(Step::Retry),
        ]
    }

    proptest! {
        /// Whatever the pattern of requests and failures, the retries granted in any second
        /// never exceed `floor + ratio × requests`, the requests being the larger of that
        /// second's and the one before's; so over any run, retries stay within the floor
        /// per second plus twice the ratio of all requests.
        #[test]
        fn retries_never_exceed_the_budget(
            steps in prop::collection::vec(step(), 1..400),
            ratio in 0.0f64..1.0,
            floor in 0u32..20,
        ) {
            let b = RetryBudget::default();
            let mut now = 1_000_000u64;
            let mut per_second: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
            for s in steps {
                match s {
                    Step::Advance(ms) => now += ms,
                    Step::Request => {
                        b.deposit(now);
                        per_second.entry(now / 1000).or_default().0 += 1;
                    }
                    Step::Retry => {
                        if b.withdraw(now, ratio, floor) {
                            per_second.entry(now / 1000).or_default().1 += 1;
                        }
                    }
                }
            }
            let (mut total_requests, mut total_retries) = (0, 0);
            for (&sec, &(requests, retries)) in &per_second {
                let before = per_second.get(&(sec - 1)).map_or(0, |c| c.0);
                prop_assert!(
                    retries <= allowed(requests.max(before), ratio, floor),
                    "second {sec}: {retries} retries for {requests} requests ({before} before)"
                );
                total_requests += requests;
                total_retries += retries;
            }
            let seconds = per_second.len() as f64;
            let bound = seconds * f64::from(floor) + 2.0 * ratio * total_requests as f64;
            prop_assert!(total_retries as f64 <= bound);
        }
    }

    #[test]
    fn concurrent_withdrawals_never_overspend() {
        let b = std::sync::Arc::new(RetryBudget::default());
        let t = 7_000;
        for _ in 0..100 {
            b.deposit(t);
        }
        let granted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter(|_| b.withdraw(t, 0.2, 10)).count() as u64))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(granted, 30, "10 + 20% of 100");
    }
}

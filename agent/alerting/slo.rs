//! SLO burn-rate alerts: the SRE workbook's multi-window pairs, judged from a per-flow 1 m counter.
//!
//! A flow with `slo:` gets a [`SloCounter`] on its `FlowState` (`state.rs`): one
//! lock-free good/bad count per minute over 3 days, where bad = error or slower than the SLO
//! latency. Two alerts named `FlowSLOBurnRate` come from it: severity `page` (14.4× over 1 h
//! and 5 m, or 6× over 6 h and 30 m) and `warning` (1× over 3 d and 6 h). A pair breaches when
//! both its windows burn faster than its factor. Coverage rule: a long window is not judged
//! before the counter has seen at least the pair's short window, so a fresh start cannot page
//! on a few minutes of data passed off as three days.

use std::time::Duration;

use super::state_machine::{Evaluation, Verdict};
use crate::stats::CoarseCounter;
pub use crate::stats::slo::SloCounter;

/// The alert name of every burn-rate alert.
pub const ALERT_NAME: &str = "FlowSLOBurnRate";

/// Requests the short window needs before a pair is judged (the rules' default `min_requests`).
pub const MIN_REQUESTS: u64 = 10;

pub(super) const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);

/// The longest window of any pair: what the counter must hold.
pub const LONGEST: Duration = crate::stats::slo::SLO_SPAN;

/// One multi-window burn-rate condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnPair {
    /// Burn-rate factor both windows must exceed.
    pub factor: f64,
    /// Long window.
    pub long: Duration,
    /// Short window (long / 12), which makes the alert reset soon after the burn stops.
    pub short: Duration,
}

/// Page: 2 % of a 30-day budget in 1 h, or 5 % in 6 h.
pub const PAGE_PAIRS: [BurnPair; 2] = [
    BurnPair {
        factor: 14.4,
        long: HOUR,
        short: Duration::from_secs(5 * 60),
    },
    BurnPair {
        factor: 6.0,
        long: Duration::from_secs(6 * 3_600),
        short: Duration::from_secs(30 * 60),
    },
];

/// Warning: 10 % of a 30-day budget in 3 days.
pub const WARNING_PAIRS: [BurnPair; 1] = [BurnPair {
    factor: 1.0,
    long: LONGEST,
    short: Duration::from_secs(6 * 3_600),
}];

/// One pair's judgement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairOutcome {
    /// Breach, Ok, or Unknown (window not covered, or too few requests).
    pub verdict: Verdict,
    /// Burn rate over the long window (`None` without requests).
    pub burn_long: Option<f64>,
    /// Burn rate over the short window.
    pub burn_short: Option<f64>,
    /// Requests in the long window.
    pub requests: u64,
}

/// Judge one pair at `now_ms`; `budget` is `1 − objective`.
pub fn judge_pair(
    counter: &CoarseCounter,
    budget: f64,
    pair: &BurnPair,
    min_requests: u64,
    now_ms: u64,
) -> PairOutcome {
    let (total_l, bad_l, covered) = counter.sum(now_ms, pair.long);
    let (total_s, bad_s, _) = counter.sum(now_ms, pair.short);
    let burn = |bad: u64, total: u64| (total > 0).then(|| bad as f64 / total as f64 / budget);
    let (burn_long, burn_short) = (burn(bad_l, total_l), burn(bad_s, total_s));
    let judged = covered >= pair.short && total_s >= min_requests.max(1);
    let verdict = match (judged, burn_long, burn_short) {
        (true, Some(l), Some(s)) if l > pair.factor && s > pair.factor => Verdict::Breach,
        (true, Some(_), Some(_)) => Verdict::Ok,
        _ => Verdict::Unknown,
    };
    PairOutcome {
        verdict,
        burn_long,
        burn_short,
        requests: total_l,
    }
}

/// Judge a set of pairs: Breach if any pair breaches (the fastest-burning one is reported),
/// else Ok if any pair could be judged, else Unknown.
pub fn judge(
    counter: &CoarseCounter,
    objective: f64,
    pairs: &[BurnPair],
    min_requests: u64,
    now_ms: u64,
) -> Evaluation {
    let budget = (1.0 - objective).max(f64::MIN_POSITIVE);
    let outcomes: Vec<PairOutcome> = pairs
        .iter()
        .map(|p| judge_pair(counter, budget, p, min_requests, now_ms))
        .collect();
    let (verdict, index) = match fastest_breach(&outcomes) {
        Some(i) => (Verdict::Breach, i),
        None => match outcomes.iter().position(|o| o.verdict == Verdict::Ok) {
            Some(i) => (Verdict::Ok, i),
            None => (Verdict::Unknown, 0),
        },
    };
    let outcome = outcomes.get(index);
    Evaluation {
        verdict,
        value: outcome.and_then(|o| o.burn_long),
        requests: outcome.map_or(0, |o| o.requests),
        pair: Some(index),
    }
}

/// The breaching pair with the highest long-window burn; the first one on a tie.
fn fastest_breach(outcomes: &[PairOutcome]) -> Option<usize> {
    let burn = |o: &PairOutcome| o.burn_long.unwrap_or(0.0);
    let mut best: Option<usize> = None;
    for (i, o) in outcomes.iter().enumerate() {
        if o.verdict == Verdict::Breach
            && best.is_none_or(|b| burn(o) > outcomes.get(b).map_or(0.0, burn))
        {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::super::rules::slo_rules as rules;
    use super::*;
    use crate::state::attach_slo as attach;
    use crate::stats::{Clock, ManualClock, Sample};

    const T0: u64 = 1_700_000_040_000; // a whole minute
    const M: Duration = MINUTE;

    fn sample(latency_ms: u64, error: bool) -> Sample {
        Sample {
            latency: Duration::from_millis(latency_ms),
            error,
            timeout: false,
            denied: false,
        }
    }

    /// `per_min` requests per minute for `minutes`, `bad_every`-th one bad (0 = none), ending now.
    fn traffic(c: &SloCounter, clock: &ManualClock, minutes: u64, per_min: u64, bad_every: u64) {
        for _ in 0..minutes {
            for i in 0..per_min {
                let bad = bad_every > 0 && i % bad_every == 0;
                c.record(clock.now_ms(), &sample(10, bad));
            }
            clock.advance(M);
        }
    }

    #[test]
    fn bad_is_error_or_slower_than_the_latency() {
        let c = SloCounter::new(Some(Duration::from_millis(500)), T0);
        c.record(T0, &sample(100, false));
        c.record(T0, &sample(500, false));
        c.record(T0, &sample(501, false));
        c.record(T0, &sample(10, true));
        assert_eq!(c.counter().sum(T0, M), (4, 2, Duration::ZERO));
        let no_latency = SloCounter::new(None, T0);
        no_latency.record(T0, &sample(60_000, false));
        assert_eq!(no_latency.counter().sum(T0, M).1, 0);
    }

    #[test]
    fn attach_creates_once_and_updates_latency() {
        let slot = OnceLock::new();
        attach(&slot, None, T0);
        assert!(slot.get().is_none());
        let slo = crate::config::Slo {
            objective: 0.995,
            latency: Some(Duration::from_millis(500)),
        };
        attach(&slot, Some(&slo), T0);
        let created = slot.get().map(|c| c.counter().created_ms());
        attach(
            &slot,
            Some(&crate::config::Slo {
                latency: Some(Duration::from_secs(2)),
                ..slo
            }),
            T0 + 60_000,
        );
        assert_eq!(slot.get().map(|c| c.counter().created_ms()), created);
        let c = slot.get().unwrap();
        c.record(T0, &sample(1_000, false));
        assert_eq!(c.counter().sum(T0, M).1, 0);
    }

    #[test]
    fn page_pair_breaches_above_14_4_times_the_budget_on_both_windows() {
        // 99.5 %: budget 0.5 %, 14.4× = 7.2 % bad.
        let clock = ManualClock::new(T0);
        let c = SloCounter::new(None, T0);
        traffic(&c, &clock, 60, 100, 10); // 10 % bad for an hour
        let e = judge(
            c.counter(),
            0.995,
            &PAGE_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!((e.verdict, e.pair), (Verdict::Breach, Some(0)));
        let burn = e.value.unwrap();
        assert!((burn - 20.0).abs() < 0.01, "{burn}");
        // 2 % bad (burn 4) is below both page factors: Ok.
        let c = SloCounter::new(None, T0);
        let clock = ManualClock::new(T0);
        traffic(&c, &clock, 60, 100, 50);
        let e = judge(
            c.counter(),
            0.995,
            &PAGE_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!(e.verdict, Verdict::Ok);
    }

    #[test]
    fn a_pair_needs_both_windows_above_the_factor() {
        let clock = ManualClock::new(T0);
        let c = SloCounter::new(None, T0);
        // 55 clean minutes, then 5 minutes at 100 % bad: the 5 m window burns at 200×, the 1 h
        // one at 500 / 6 000 / 0.005 ≈ 16.7×: breach.
        traffic(&c, &clock, 55, 100, 0);
        traffic(&c, &clock, 5, 100, 1);
        let p = judge_pair(c.counter(), 0.005, &PAGE_PAIRS[0], 10, clock.now_ms());
        assert_eq!(p.verdict, Verdict::Breach);
        // The burn stops: the short window recovers within minutes although the long one is
        // still above 14.4×, and the pair no longer breaches.
        traffic(&c, &clock, 7, 100, 0);
        let p = judge_pair(c.counter(), 0.005, &PAGE_PAIRS[0], 10, clock.now_ms());
        assert!(p.burn_long.unwrap() > 14.4, "{p:?}");
        assert_eq!(p.verdict, Verdict::Ok);
    }

    #[test]
    fn slow_burn_pairs_six_times_over_six_hours() {
        let clock = ManualClock::new(T0);
        let c = SloCounter::new(None, T0);
        // 4 % bad for 6 h: burn 8 — under 14.4 but over 6.
        traffic(&c, &clock, 360, 25, 25);
        let e = judge(
            c.counter(),
            0.995,
            &PAGE_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!((e.verdict, e.pair), (Verdict::Breach, Some(1)));
        let w = judge(
            c.counter(),
            0.995,
            &WARNING_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        // 6 h seen: the 3 d window is judged, and 8× > 1×.
        assert_eq!(w.verdict, Verdict::Breach);
    }

    #[test]
    fn coverage_rule_long_window_not_judged_before_its_short_window_is_seen() {
        let clock = ManualClock::new(T0);
        let c = SloCounter::new(None, T0);
        // Four minutes of total failure: not judged yet (the 1 h/5 m pair needs 5 m seen).
        traffic(&c, &clock, 4, 100, 1);
        let e = judge(
            c.counter(),
            0.995,
            &PAGE_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!(e.verdict, Verdict::Unknown);
        traffic(&c, &clock, 1, 100, 1);
        let e = judge(
            c.counter(),
            0.995,
            &PAGE_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!((e.verdict, e.pair), (Verdict::Breach, Some(0)));
        // The 3 d / 6 h warning pair waits for 6 h of history.
        let w = judge(
            c.counter(),
            0.995,
            &WARNING_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!(w.verdict, Verdict::Unknown);
        traffic(&c, &clock, 355, 10, 1);
        let w = judge(
            c.counter(),
            0.995,
            &WARNING_PAIRS,
            MIN_REQUESTS,
            clock.now_ms() - 1,
        );
        assert_eq!(w.verdict, Verdict::Unknown, "5 h 59 m 59 s seen");
        let w = judge(
            c.counter(),
            0.995,
            &WARNING_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!(w.verdict, Verdict::Breach);
    }

    #[test]
    fn too_few_requests_is_unknown() {
        let clock = ManualClock::new(T0);
        let c = SloCounter::new(None, T0);
        clock.advance(10 * M);
        c.record(clock.now_ms(), &sample(1, true));
        let e = judge(
            c.counter(),
            0.995,
            &PAGE_PAIRS,
            MIN_REQUESTS,
            clock.now_ms(),
        );
        assert_eq!(e.verdict, Verdict::Unknown);
    }

    #[test]
    fn two_rules_page_and_warning() {
        let [page, warning] = rules("checkout", 0.995);
        assert_eq!(page.key.alertname, ALERT_NAME);
        assert_eq!(page.key.severity, "page");
        assert_eq!(warning.key.severity, "warning");
        assert_eq!(page.timing.for_, Duration::ZERO);
        assert_eq!(page.over, Duration::from_secs(300));
        assert_eq!(
            warning.timing.no_data_after,
            Duration::from_secs(18 * 3_600)
        );
        assert_eq!(page.slot_ms(), 60_000);
    }
}

//! The breaker's state machine against a clock the tests move.

use super::*;

const T0: u64 = 1_700_000_000_000;

fn policy() -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures: 3,
        error_ratio: Some(0.5),
        window_secs: 10,
        min_requests: 10,
        open_for: Duration::from_secs(2),
        max_open_for: Duration::from_secs(8),
    }
}

fn fail(b: &Breaker, now: u64, n: u32) {
    for _ in 0..n {
        assert_eq!(b.admit(now, &policy()), Admission::Pass);
        b.record(now, Verdict::Failure, false, &policy());
    }
}

#[test]
fn consecutive_failures_open_it_and_a_successful_probe_closes_it() {
    let b = Breaker::default();
    fail(&b, T0, 2);
    b.record(T0, Verdict::Success, false, &policy());
    fail(&b, T0, 2);
    assert_eq!(b.state(), CircuitState::Closed, "a success broke the row");
    fail(&b, T0, 1);
    assert_eq!(b.state(), CircuitState::Open);
    // Refused until the jittered wait (between 1 s and 2 s) has passed.
    match b.admit(T0 + 500, &policy()) {
        Admission::Refuse(d) => assert!(d <= Duration::from_millis(1500), "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.admit(T0 + 2_000, &policy()), Admission::Probe);
    assert_eq!(b.state(), CircuitState::HalfOpen);
    assert!(
        matches!(b.admit(T0 + 2_001, &policy()), Admission::Refuse(_)),
        "one probe at a time"
    );
    b.record(T0 + 2_050, Verdict::Success, true, &policy());
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.admit(T0 + 2_060, &policy()), Admission::Pass);
}

#[test]
fn a_failed_probe_reopens_it_for_longer_up_to_the_cap() {
    let b = Breaker::default();
    fail(&b, T0, 3);
    let mut now = T0 + 2_000;
    let mut longest = 0;
    for expected_cap in [4_000, 8_000, 8_000] {
        assert_eq!(b.admit(now, &policy()), Admission::Probe);
        b.record(now, Verdict::Failure, true, &policy());
        let Admission::Refuse(d) = b.admit(now, &policy()) else {
            panic!("open again")
        };
        let d = d.as_millis() as u64;
        assert!(
            d >= expected_cap / 2 && d <= expected_cap,
            "{d} vs {expected_cap}"
        );
        longest = longest.max(d);
        now += expected_cap;
    }
    assert!(longest <= 8_000);
}

#[test]
fn the_error_ratio_opens_it_only_past_the_minimum_of_requests() {
    let b = Breaker::default();
    let p = BreakerPolicy {
        consecutive_failures: 0,
        ..policy()
    };
    // 4 failures in 8 requests: 50%, but fewer than 10 requests.
    for i in 0..8 {
        let v = if i % 2 == 0 {
            Verdict::Failure
        } else {
            Verdict::Success
        };
        b.record(T0 + i * 100, v, false, &p);
    }
    assert_eq!(b.state(), CircuitState::Closed);
    b.record(T0 + 900, Verdict::Success, false, &p);
    b.record(T0 + 1_000, Verdict::Failure, false, &p);
    assert_eq!(b.state(), CircuitState::Open, "5 of 10 failed");
}

#[test]
fn old_seconds_leave_the_window() {
    let b = Breaker::default();
    let p = BreakerPolicy {
        consecutive_failures: 0,
        error_ratio: Some(0.6),
        ..policy()
    };
    for i in 0..18 {
        b.record(T0 + i, Verdict::Success, false, &p);
    }
    // Eleven seconds later those 18 successes are outside the 10 s window: 10 failures
    // now are 100% of it, where with the old ones they would be 10 of 28 (36%).
    let later = T0 + 11_000;
    for _ in 0..9 {
        b.record(later, Verdict::Failure, false, &p);
    }
    assert_eq!(b.state(), CircuitState::Closed, "9 requests, fewer than 10");
    b.record(later, Verdict::Failure, false, &p);
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn a_probe_that_tells_nothing_lets_the_next_request_probe() {
    let b = Breaker::default();
    fail(&b, T0, 3);
    assert_eq!(b.admit(T0 + 2_000, &policy()), Admission::Probe);
    b.record(T0 + 2_010, Verdict::Unknown, true, &policy());
    assert_eq!(b.admit(T0 + 2_020, &policy()), Admission::Probe);
    // A probe that never reports frees its place after the half-open deadline.
    assert!(matches!(
        b.admit(T0 + 2_030, &policy()),
        Admission::Refuse(_)
    ));
    assert_eq!(b.admit(T0 + 2_020 + 8_000, &policy()), Admission::Probe);
}

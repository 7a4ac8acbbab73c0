use super::*;

fn policy() -> AdaptivePolicy {
    AdaptivePolicy {
        min: 2,
        max: 100,
        initial: 20,
        window: Duration::from_millis(100),
        baseline_interval: Duration::from_secs(60),
    }
}

/// One window of saturating traffic: 20 requests finish early in the window and one at
/// its end (which closes it), each with as many in flight as the limit allows, taking what
/// `latency_ms(in_flight)` says. The clock is injected: `start_ms` is where the last
/// window closed. Returns where this one closed.
fn window(
    limit: &AdaptiveLimit,
    policy: &AdaptivePolicy,
    start_ms: u64,
    latency_ms: &impl Fn(u32) -> u64,
    in_flight: Option<u32>,
) -> u64 {
    let end = start_ms + 150;
    let times = (1..=MIN_SAMPLES * 2).map(|i| start_ms + i).chain([end]);
    for now_ms in times {
        let in_flight = in_flight.unwrap_or_else(|| limit.limit(policy));
        let sample = Sample {
            now_ms,
            // Admitted in the window (the model has no earlier requests).
            started_ms: now_ms - 1,
            latency: Duration::from_millis(latency_ms(in_flight)),
            in_flight,
        };
        limit.record(sample, policy);
    }
    end
}

/// `windows` windows of saturating traffic from `now_ms`; returns the clock after them.
fn drive(
    limit: &AdaptiveLimit,
    policy: &AdaptivePolicy,
    mut now_ms: u64,
    windows: u32,
    latency_ms: impl Fn(u32) -> u64,
) -> u64 {
    for _ in 0..windows {
        now_ms = window(limit, policy, now_ms, &latency_ms, None);
    }
    now_ms
}

/// An app that serves `capacity` requests at once in `service_ms` each and queues the rest.
fn queueing(capacity: u32, service_ms: u64) -> impl Fn(u32) -> u64 {
    move |in_flight| service_ms * u64::from(in_flight.div_ceil(capacity).max(1))
}

#[test]
fn starts_at_initial_then_measures_the_baseline_at_min() {
    let p = policy();
    let limit = AdaptiveLimit::default();
    assert_eq!(limit.limit(&p), 20);
    assert_eq!(limit.current(), 0, "nothing measured yet");
    drive(&limit, &p, 1_000, 1, queueing(4, 10));
    // The first window measured the baseline at `min`; then the limit is back to initial.
    assert_eq!(limit.calc.lock().unwrap().baseline_us, 10_000.0);
    assert_eq!(limit.limit(&p), 20);
}

#[test]
fn falls_when_latency_rises_and_settles_near_the_capacity() {
    let p = policy();
    let limit = AdaptiveLimit::default();
    drive(&limit, &p, 1_000, 60, queueing(4, 10));
    let settled = limit.limit(&p);
    assert!(
        (4..=12).contains(&settled),
        "an app serving 4 at once: limit {settled}"
    );
}

#[test]
fn recovers_when_latency_drops() {
    let p = policy();
    let limit = AdaptiveLimit::default();
    let now = drive(&limit, &p, 1_000, 60, queueing(4, 10));
    let low = limit.limit(&p);
    // The app scales out: 40 at once now, same service time.
    drive(&limit, &p, now, 60, queueing(40, 10));
    let high = limit.limit(&p);
    assert!(high > low + 20, "limit went from {low} to only {high}");
}

#[test]
fn stays_within_its_bounds() {
    let p = AdaptivePolicy {
        min: 5,
        max: 30,
        ..policy()
    };
    let limit = AdaptiveLimit::default();
    // Latency explodes with any concurrency above min: the limit falls to min, not below.
    let explodes = |n| if n <= 5 { 10 } else { 1_000 };
    let mut now = 1_000;
    for _ in 0..80 {
        now = window(&limit, &p, now, &explodes, None);
        assert!((5..=30).contains(&limit.limit(&p)));
        assert!((5..=30).contains(&limit.current()));
    }
    assert!(limit.limit(&p) <= 6, "hovers at min: {}", limit.limit(&p));
    // Latency never rises: the limit stops at max.
    for _ in 0..200 {
        now = window(&limit, &p, now, &|_| 1, None);
        assert!((5..=30).contains(&limit.current()));
    }
    assert_eq!(limit.limit(&p), 30);
    // A reload that narrows the bounds applies to the next request.
    let narrow = AdaptivePolicy { max: 10, ..p };
    assert_eq!(limit.limit(&narrow), 10);
}

#[test]
fn does_not_grow_while_traffic_is_light() {
    let p = policy();
    let limit = AdaptiveLimit::default();
    let mut now = drive(&limit, &p, 1_000, 1, |_| 10);
    for _ in 0..30 {
        now = window(&limit, &p, now, &|_| 10, Some(3));
    }
    assert_eq!(limit.limit(&p), 20, "3 in flight tells nothing about 20");
}

#[test]
fn a_window_needs_enough_samples() {
    let p = policy();
    let limit = AdaptiveLimit::default();
    let now = drive(&limit, &p, 1_000, 1, |_| 10);
    for i in 1..MIN_SAMPLES {
        let t = now + 1_000 * i;
        let s = Sample {
            now_ms: t,
            started_ms: t - 500,
            latency: Duration::from_millis(500),
            in_flight: 20,
        };
        limit.record(s, &p);
    }
    assert_eq!(limit.limit(&p), 20, "nine slow requests are not a window");
    let s = Sample {
        now_ms: now + 20_000,
        started_ms: now + 19_500,
        latency: Duration::from_millis(500),
        in_flight: 20,
    };
    limit.record(s, &p);
    assert!(limit.limit(&p) < 20, "the tenth closes the window");
}

#[test]
fn measuring_ignores_requests_admitted_before_it() {
    let p = policy();
    let limit = AdaptiveLimit::default();
    for i in 0..=MIN_SAMPLES * 2 {
        let t = 1_000 + i * 10;
        // Queued behind requests admitted under the initial limit: slow.
        let s = Sample {
            now_ms: t,
            started_ms: 900,
            latency: Duration::from_millis(200),
            in_flight: 20,
        };
        limit.record(s, &p);
    }
    assert_eq!(limit.limit(&p), 2, "still measuring at min");
    drive(&limit, &p, 1_200, 1, |_| 10);
    assert_eq!(limit.calc.lock().unwrap().baseline_us, 10_000.0);
}

#[test]
fn the_baseline_is_measured_again_after_its_interval() {
    let p = AdaptivePolicy {
        baseline_interval: Duration::from_secs(1),
        ..policy()
    };
    let limit = AdaptiveLimit::default();
    // The app got slower for good: 30 ms unloaded instead of 10.
    let now = drive(&limit, &p, 1_000, 1, queueing(4, 10));
    drive(&limit, &p, now, 40, queueing(4, 30));
    let baseline = limit.calc.lock().unwrap().baseline_us;
    assert_eq!(baseline, 30_000.0, "the baseline follows the app");
}

//! Thresholds learned from measurements: p95 from histogram buckets, rounded alert thresholds, a flow timeout.

use std::time::Duration;

/// Latency alerts sit this far above the observed p95, so ordinary noise does not fire them.
pub const P95_MARGIN: f64 = 1.5;

/// No latency threshold below this: at low traffic on a dev machine one slow request (a cold
/// cache, a GC pause) moves the p95 by tens of milliseconds.
pub const MIN_LATENCY_THRESHOLD: Duration = Duration::from_millis(100);

/// Error and timeout rate alerts fire at this multiple of the observed rate...
pub const RATE_MARGIN: f64 = 2.0;

/// ...but never below this floor (the zero-config default alerts' 5 %)...
pub const RATE_FLOOR: f64 = 0.05;

/// ...and never above this: a flow failing half its requests is broken, whatever it did before.
pub const RATE_CAP: f64 = 0.5;

/// A learned timeout is never shorter than this, so a slow-but-working endpoint is not cut.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The `q` quantile of a histogram, interpolated linearly inside its bucket as Prometheus'
/// `histogram_quantile` does. `counts` are per bucket (not cumulative), one more than
/// `bounds` (the +Inf bucket). `None` without samples or when the quantile falls in +Inf.
pub fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let upper = *bounds.get(i)?;
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let into = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * into.clamp(0.0, 1.0));
        }
        below += n;
    }
    None
}

/// The latency alert threshold for an observed p95 (seconds): the margin over it, at least
/// [`MIN_LATENCY_THRESHOLD`], rounded up to the next histogram boundary so the exported
/// Prometheus rules test it exactly; past the last boundary, rounded up to a whole second.
pub fn latency_threshold(p95: f64, bounds: &[f64]) -> Duration {
    let wanted = (p95 * P95_MARGIN).max(MIN_LATENCY_THRESHOLD.as_secs_f64());
    let boundary = bounds.iter().copied().find(|b| *b >= wanted - 1e-9);
    let seconds = boundary.unwrap_or_else(|| wanted.ceil());
    Duration::from_micros((seconds * 1e6).round() as u64)
}

/// The error- or timeout-rate threshold for an observed rate: the margin over it, within
/// [`RATE_FLOOR`]..=[`RATE_CAP`], rounded up to a whole percent.
pub fn rate_threshold(observed: f64) -> f64 {
    let wanted = (observed * RATE_MARGIN).clamp(RATE_FLOOR, RATE_CAP);
    // Round in whole percents, with a little slack so 0.05 stays 5 % despite binary floats.
    (wanted * 100.0 - 1e-6).ceil() / 100.0
}

/// The upstream timeout of a learned flow: twice the slowest bucket that saw a request, ten
/// times the latency threshold, at least [`MIN_TIMEOUT`], rounded up to whole seconds and
/// never above `global` (the running timeout). Requests slower than the last boundary say
/// nothing about how slow they were, so then the flow keeps `global`.
pub fn flow_timeout(
    bounds: &[f64],
    counts: &[u64],
    threshold: Option<Duration>,
    global: Duration,
) -> Duration {
    let slowest = counts.iter().rposition(|&n| n > 0);
    let Some(slowest_bound) = slowest.and_then(|i| bounds.get(i)) else {
        return global;
    };
    let from_threshold = threshold.map_or(0.0, |t| t.as_secs_f64() * 10.0);
    let wanted = (slowest_bound * 2.0)
        .max(from_threshold)
        .max(MIN_TIMEOUT.as_secs_f64());
    Duration::from_secs(wanted.ceil() as u64).min(global)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: [f64; 14] = crate::metrics::DEFAULT_BUCKETS;

    fn counts(pairs: &[(usize, u64)]) -> Vec<u64> {
        let mut c = vec![0; BOUNDS.len() + 1];
        for &(i, n) in pairs {
            c[i] = n;
        }
        c
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        // 100 requests in (25ms, 50ms]: p95 is 95 % of the way through it.
        let c = counts(&[(3, 100)]);
        let p95 = quantile(&BOUNDS, &c, 0.95).unwrap();
        assert!((p95 - 0.04875).abs() < 1e-9, "{p95}");
        // 90 fast, 10 in (250ms, 500ms]: p95 is half-way through the slow bucket.
        let c = counts(&[(0, 90), (7, 10)]);
        assert!((quantile(&BOUNDS, &c, 0.95).unwrap() - 0.375).abs() < 1e-9);
        assert_eq!(quantile(&BOUNDS, &counts(&[]), 0.95), None);
        assert_eq!(quantile(&BOUNDS, &counts(&[(14, 5)]), 0.95), None, "+Inf");
    }

    #[test]
    fn latency_thresholds_round_up_to_a_boundary_with_a_floor() {
        let ms = Duration::from_millis;
        assert_eq!(latency_threshold(0.004, &BOUNDS), ms(100), "floor");
        assert_eq!(
            latency_threshold(0.2, &BOUNDS),
            ms(500),
            "0.3s rounds up to 0.5s"
        );
        assert_eq!(
            latency_threshold(0.5, &BOUNDS),
            ms(750),
            "exactly a boundary"
        );
        assert_eq!(latency_threshold(0.9, &BOUNDS), ms(2500));
        assert_eq!(
            latency_threshold(9.0, &BOUNDS),
            Duration::from_secs(14),
            "past 10s"
        );
    }

    #[test]
    fn rate_thresholds_double_with_floor_cap_and_whole_percents() {
        assert_eq!(rate_threshold(0.0), 0.05);
        assert_eq!(rate_threshold(0.025), 0.05);
        assert_eq!(rate_threshold(0.027), 0.06);
        assert_eq!(rate_threshold(0.1), 0.2);
        assert_eq!(rate_threshold(0.9), 0.5);
    }

    #[test]
    fn timeouts_leave_room_over_the_slowest_request() {
        let g = Duration::from_secs(30);
        let fast = counts(&[(2, 50)]);
        assert_eq!(flow_timeout(&BOUNDS, &fast, None, g), MIN_TIMEOUT);
        let slow = counts(&[(2, 50), (10, 1)]); // one request in (1s, 2.5s]
        assert_eq!(
            flow_timeout(&BOUNDS, &slow, None, g),
            Duration::from_secs(5)
        );
        let t = Some(Duration::from_millis(750));
        assert_eq!(flow_timeout(&BOUNDS, &fast, t, g), Duration::from_secs(8));
        let slower = counts(&[(13, 1)]); // (7.5s, 10s]
        assert_eq!(
            flow_timeout(&BOUNDS, &slower, None, g),
            Duration::from_secs(20)
        );
        assert_eq!(
            flow_timeout(&BOUNDS, &counts(&[(14, 1)]), None, g),
            g,
            "+Inf"
        );
        assert_eq!(
            flow_timeout(&BOUNDS, &slower, None, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }
}

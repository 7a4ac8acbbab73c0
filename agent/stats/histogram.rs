//! Log-scale latency buckets (×1.04, 50 µs .. 30 min): lookup, quantiles, counts above a threshold.
//!
//! Bucket `i` holds latencies in `(BOUNDS_NS[i], BOUNDS_NS[i + 1]]` (upper bound inclusive, like a
//! Prometheus `le` bucket), except that bucket 0 also takes everything at or below 50 µs and the
//! last bucket everything above its lower bound: values outside the range clamp to the edge
//! buckets. A quantile is reported as the geometric midpoint of its bucket, so for an in-range
//! value the relative error is at most `sqrt(1.04) - 1 = 1.98 %`.

use std::time::Duration;

/// Ratio between consecutive bucket boundaries.
pub const GAMMA: f64 = 1.04;

/// Lowest boundary: latencies at or below it are not told apart.
pub const MIN_NS: u64 = 50_000;

/// Number of buckets: the first power of [`GAMMA`] times 50 µs that reaches 30 minutes.
pub const BUCKETS: usize = 444;

/// Bucket boundaries in nanoseconds, `BOUNDS_NS[i] = round(50 µs × 1.04^i)`; `BOUNDS_NS[BUCKETS]`
/// is about 30 min 27 s.
pub const BOUNDS_NS: [u64; BUCKETS + 1] = bounds();

/// `ln(MIN_NS)`; checked against `f64::ln` in the tests (`ln` is not `const`).
const LN_MIN: f64 = 10.819_778_284_410_283;

/// `1 / ln(GAMMA)`; checked in the tests.
const INV_LN_GAMMA: f64 = 25.496_731_691_028_337;

const fn bounds() -> [u64; BUCKETS + 1] {
    let mut out = [0u64; BUCKETS + 1];
    // Repeated multiplication drifts by < 1e-13 over 444 steps, far below one nanosecond at the
    // scale where it matters; bucket_index corrects its estimate against this table anyway.
    let mut x = MIN_NS as f64;
    let mut i = 0;
    while i <= BUCKETS {
        out[i] = (x + 0.5) as u64;
        x *= GAMMA;
        i += 1;
    }
    out
}

/// A duration in nanoseconds, saturating (580 years is "very slow").
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The bucket that a latency of `ns` nanoseconds falls in.
#[inline]
pub fn bucket_index(ns: u64) -> usize {
    if ns <= BOUNDS_NS[1] {
        return 0;
    }
    if ns > BOUNDS_NS[BUCKETS - 1] {
        return BUCKETS - 1;
    }
    // The logarithm lands on the right bucket or, at a boundary rounded to whole nanoseconds, its
    // neighbour; the table comparisons make boundaries exact, which count_above relies on.
    let estimate = ((ns as f64).ln() - LN_MIN) * INV_LN_GAMMA;
    // `as` saturates (and maps NaN to 0); the clamp keeps both neighbours inside the table.
    let mut i = (estimate as usize).clamp(1, BUCKETS - 2);
    // Both loops stop inside 1..=BUCKETS-2 because BOUNDS_NS[1] < ns <= BOUNDS_NS[BUCKETS - 1].
    while ns <= BOUNDS_NS[i] {
        i -= 1;
    }
    while ns > BOUNDS_NS[i + 1] {
        i += 1;
    }
    i
}

/// The value reported for bucket `i`: the geometric midpoint of its bounds, in nanoseconds.
pub fn midpoint_ns(i: usize) -> f64 {
    let i = i.min(BUCKETS - 1);
    ((BOUNDS_NS[i] as f64) * (BOUNDS_NS[i + 1] as f64)).sqrt()
}

/// Whether `threshold` is a bucket boundary at which [`count_above`] is exact.
pub fn is_exact_threshold(threshold: Duration) -> bool {
    let ns = nanos(threshold);
    BOUNDS_NS[1..BUCKETS].binary_search(&ns).is_ok()
}

/// The 1-based nearest rank of quantile `q` among `n` samples (`ceil(q·n)`, at least 1).
///
/// The tiny epsilon keeps `0.07 × 100` (7.000000000000001 in binary) at rank 7.
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
    ((q * n as f64 - 1e-9).ceil() as u64).clamp(1, n.max(1))
}

/// The nearest-rank `q` quantile of a bucket histogram, as its bucket's geometric midpoint.
pub fn quantile(counts: &[u64], q: f64) -> Option<Duration> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = nearest_rank(q, total);
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(Duration::from_nanos(midpoint_ns(i).round() as u64));
        }
    }
    None
}

/// How many samples are slower than `threshold`.
///
/// Exact when `threshold` is a boundary `BOUNDS_NS[1..BUCKETS]` (see [`is_exact_threshold`]).
/// Otherwise only the samples of the one bucket containing the threshold — latencies within a
/// factor 1.04 of it — can be misjudged: that bucket counts as slower when its reported
/// midpoint is, so `count_above` agrees with [`quantile`]. The result always lies between the
/// exact counts above the bucket's two bounds. Below 50 µs nothing is told apart.
pub fn count_above(counts: &[u64], threshold: Duration) -> u64 {
    let ns = nanos(threshold);
    let k = bucket_index(ns);
    let above: u64 = counts.iter().skip(k + 1).sum();
    let straddling = if (ns as f64) < midpoint_ns(k) {
        counts.get(k).copied().unwrap_or(0)
    } else {
        0
    };
    above + straddling
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_their_definition() {
        assert!((LN_MIN - (MIN_NS as f64).ln()).abs() < 1e-12);
        assert!((INV_LN_GAMMA - 1.0 / GAMMA.ln()).abs() < 1e-10);
        // 444 buckets reach 30 min, 443 would not.
        assert!(BOUNDS_NS[BUCKETS] >= 30 * 60 * 1_000_000_000);
        assert!(BOUNDS_NS[BUCKETS - 1] < 30 * 60 * 1_000_000_000);
        assert_eq!(BOUNDS_NS[0], MIN_NS);
        for w in BOUNDS_NS.windows(2) {
            let ratio = w[1] as f64 / w[0] as f64;
            assert!((ratio - GAMMA).abs() < 1e-4, "{w:?}");
        }
    }

    #[test]
    fn every_bucket_midpoint_is_within_two_percent() {
        for i in 0..BUCKETS {
            let m = midpoint_ns(i);
            let lo = BOUNDS_NS[i] as f64 + 1.0;
            let hi = BOUNDS_NS[i + 1] as f64;
            assert!((m - lo).abs() / lo <= 0.02, "bucket {i}");
            assert!((m - hi).abs() / hi <= 0.02, "bucket {i}");
        }
    }

    #[test]
    fn boundaries_belong_to_the_bucket_below() {
        for (j, &b) in BOUNDS_NS.iter().enumerate().take(BUCKETS).skip(1) {
            assert_eq!(bucket_index(b), j - 1, "boundary {j}");
            let above = if j == BUCKETS - 1 { BUCKETS - 1 } else { j };
            assert_eq!(bucket_index(b + 1), above, "boundary {j} + 1ns");
            assert_eq!(bucket_index(b - 1), if j == 1 { 0 } else { j - 1 });
        }
    }

    #[test]
    fn index_is_monotonic_and_clamps() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(1_000), 0);
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        assert_eq!(
            bucket_index(nanos(Duration::from_secs(3 * 3600))),
            BUCKETS - 1
        );
        let mut last = 0;
        let mut ns = 1u64;
        while ns < 4_000_000_000_000 {
            let i = bucket_index(ns);
            assert!(i >= last && i < BUCKETS);
            last = i;
            ns += ns / 97 + 1;
        }
    }

    #[test]
    fn exact_thresholds_are_the_inner_boundaries() {
        assert!(is_exact_threshold(Duration::from_nanos(BOUNDS_NS[1])));
        assert!(is_exact_threshold(Duration::from_nanos(
            BOUNDS_NS[BUCKETS - 1]
        )));
        assert!(!is_exact_threshold(Duration::from_nanos(
            BOUNDS_NS[BUCKETS]
        )));
        assert!(!is_exact_threshold(Duration::from_nanos(BOUNDS_NS[10] + 1)));
    }

    #[test]
    fn nearest_rank_edges() {
        assert_eq!(nearest_rank(0.07, 100), 7);
        assert_eq!(nearest_rank(0.0, 100), 1);
        assert_eq!(nearest_rank(1.0, 100), 100);
        assert_eq!(nearest_rank(0.5, 1), 1);
        assert_eq!(nearest_rank(f64::NAN, 10), 10);
    }

    #[test]
    fn quantile_of_empty_is_none() {
        assert_eq!(quantile(&[0; BUCKETS], 0.5), None);
    }
}

//! Criterion benchmarks of the per-flow statistics: record, a full 5 m summary, a quantile.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use redline::stats::{FlowWindow, Sample};

/// A multiple of 5 s.
const T0: u64 = 1_700_000_000_000;
const FIVE_MIN: Duration = Duration::from_secs(300);

/// 1024 requests from 1 ms to about 1 s, one in 50 an error: varied buckets, as in real traffic.
fn samples() -> Vec<Sample> {
    let mut rng = fastrand::Rng::with_seed(1);
    (0..1024)
        .map(|i| Sample {
            latency: Duration::from_micros(rng.u64(1_000..1_000_000)),
            error: i % 50 == 0,
            timeout: i % 500 == 0,
            denied: false,
        })
        .collect()
}

/// A 5 m window with 200 requests in each of its 61 slots.
fn full_window() -> (FlowWindow, u64) {
    let w = FlowWindow::new(FIVE_MIN, T0);
    let samples = samples();
    let now = T0 + 3_600_000 + 2_500;
    for slot in 0..61u64 {
        for (i, s) in samples.iter().take(200).enumerate() {
            w.record(now - slot * 5_000 - i as u64, *s);
        }
    }
    (w, now)
}

fn record(c: &mut Criterion) {
    let samples = samples();
    let w = FlowWindow::new(FIVE_MIN, T0);
    let mut i = 0usize;
    c.bench_function("stats/record", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            w.record(black_box(T0 + 1_000), samples[i & 1023]);
        })
    });

    // Both cores recording into the same flow: the per-record time under contention.
    let w = Arc::new(FlowWindow::new(FIVE_MIN, T0));
    let samples = Arc::new(samples);
    c.bench_function("stats/record_2threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..2 {
                    let (w, samples) = (w.clone(), samples.clone());
                    scope.spawn(move || {
                        for i in 0..per_thread as usize {
                            w.record(black_box(T0 + 1_000), samples[(i + t * 512) & 1023]);
                        }
                    });
                }
            });
            // Each thread did iters / 2 records in this wall time: report the per-record cost a
            // thread pays, not the halved amortised figure.
            start.elapsed() * 2
        })
    });
}

fn summary(c: &mut Criterion) {
    let (w, now) = full_window();
    c.bench_function("stats/summary_5m", |b| {
        b.iter(|| w.summary(black_box(now), FIVE_MIN))
    });
    c.bench_function("stats/slot_series_60", |b| {
        b.iter(|| w.slot_series(black_box(now), 60))
    });
}

fn quantile(c: &mut Criterion) {
    let (w, now) = full_window();
    let s = w.summary(now, FIVE_MIN);
    c.bench_function("stats/quantile", |b| {
        b.iter(|| black_box(&s).quantile(black_box(0.95)))
    });
}

criterion_group!(benches, record, summary, quantile);
criterion_main!(benches);

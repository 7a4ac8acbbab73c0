//! End to end: an app that fails 30% of its requests with 503, behind two flows of one
//! Redline. Without protection users see the failures (~70% success); with retries, a
//! circuit breaker and a stale fallback they see ≥ 99% success, while the flow's records
//! still tell the truth: every request spared by a fallback is counted as an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crate::support::{Redline, config_for, full, get, sample, serve};

/// A small deterministic pseudo-random sequence (an LCG), so a run can be replayed.
fn next(state: &AtomicU64) -> u64 {
    let s = state
        .fetch_update(SeqCst, SeqCst, |s| {
            Some(
                s.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
            )
        })
        .unwrap_or(0);
    (s >> 33) % 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_app_behind_retries_a_breaker_and_stale_keeps_users_at_99_percent() {
    let seed = Arc::new(AtomicU64::new(17));
    let rng = seed.clone();
    let up = serve(move |req| {
        let failing = next(&rng) < 30;
        async move {
            let mut resp = http::Response::new(full(format!("ok {}", req.uri().path())));
            if failing {
                *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                *resp.body_mut() = full("flap");
            }
            resp
        }
    })
    .await;
    // The budget must cover the failure rate for retries to recover it: at the default 20%
    // a 30%-failing app would exhaust it (as it should: then retries stop piling on), and
    // the breaker and the stale responses would carry the users instead.
    let yaml = "flows:\n  - name: guarded\n    match: /guarded/{x...}\n    retries: { attempts: 3, backoff_base: 1ms, backoff_max: 10ms, budget: { ratio: 50% } }\n    circuit_breaker: {}\n    fallback:\n      stale_if_error: { max_age: 5m }\n  - name: bare\n    match: /bare/{x...}\n";
    let rl = Redline::start(&config_for(up, yaml));
    // Warm the stale store: each target once answered well.
    let targets = 5;
    for t in 0..targets {
        while get(&rl.url(&format!("/guarded/{t}"))).await.0 != 200 {}
    }
    let n = 400;
    let (mut guarded_ok, mut bare_ok) = (0, 0);
    for i in 0..n {
        let (status, _, _) = get(&rl.url(&format!("/guarded/{}", i % targets))).await;
        guarded_ok += usize::from(status == 200);
        let (status, _, _) = get(&rl.url(&format!("/bare/{}", i % targets))).await;
        bare_ok += usize::from(status == 200);
    }
    let guarded = guarded_ok as f64 / n as f64;
    let bare = bare_ok as f64 / n as f64;
    assert!(guarded >= 0.99, "with protection: {guarded}");
    assert!((0.6..0.8).contains(&bare), "without: {bare}");
    // The truth: the bare flow's errors are its 503s; the guarded flow's errors are exactly
    // the requests a fallback spared (their retries failed too, or the circuit was open
    // because they kept failing), none hidden.
    let m = rl.metrics_counting(f64::from(2 * n)).await;
    let errors = |flow: &str| -> f64 {
        m.lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "http_server_request_duration_seconds_count{{flow=\"{flow}\""
                ))
            })
            // The app's 503s, and the requests refused while its circuit was open.
            .filter(|l| {
                l.contains("error_type=\"503\"") || l.contains("error_type=\"circuit_open\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(errors("bare"), f64::from(n) - bare_ok as f64);
    let stale = sample(
        &m,
        "redline_fallbacks_total{flow=\"guarded\",kind=\"stale\"}",
    )
    .unwrap_or(0.0);
    assert_eq!(errors("guarded"), stale, "{m}");
    let retried = sample(
        &m,
        "redline_retries_total{flow=\"guarded\",result=\"retried\"}",
    )
    .unwrap_or(0.0);
    assert!(retried > 0.0, "{retried}");
}

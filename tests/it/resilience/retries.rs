//! Retries with a budget, in both engines: a flow with `retries:` recovers from 503s and
//! from connections reset before any response byte, repeats a POST only when nothing was
//! sent, and a spent budget stops retrying however the upstream fails.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{Redline, config_for, full, get, sample, send, serve};

const HYPER: &[(&str, &str)] = &[("REDLINE_HTTP1_ENGINE", "hyper")];

fn engine(hyper: bool) -> &'static [(&'static str, &'static str)] {
    if hyper { HYPER } else { &[] }
}

/// `redline_retries_total{flow,result}` once it reads at least `at_least`.
async fn retries(rl: &Redline, flow: &str, result: &str, at_least: f64) -> f64 {
    let series = format!("redline_retries_total{{flow=\"{flow}\",result=\"{result}\"}}");
    crate::support::eventually(Duration::from_secs(10), &series, || async {
        let v = sample(&rl.metrics().await, &series).unwrap_or(0.0);
        (v >= at_least).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_503_is_retried_away_in_both_engines() {
    let arrived = Arc::new(AtomicUsize::new(0));
    let seen = arrived.clone();
    // Every other request fails with 503: a flapping app.
    let up = serve(move |_req| {
        let n = seen.fetch_add(1, SeqCst);
        async move {
            let mut resp = http::Response::new(full(if n % 2 == 0 { "down" } else { "ok" }));
            if n % 2 == 0 {
                *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            resp
        }
    })
    .await;
    // A budget of one retry per request: half the tries fail, so the default 20% (plus
    // 10 a second) would rightly run out within the burst.
    let flow = "flows:\n  - name: api\n    match: /api/{x...}\n    retries: { attempts: 3, backoff_base: 1ms, backoff_max: 5ms, budget: { ratio: 100% } }\n";
    for hyper in [false, true] {
        let rl = Redline::start_with(&config_for(up, flow), &[], engine(hyper));
        for i in 0..20 {
            let (status, _, body) = get(&rl.url(&format!("/api/{i}"))).await;
            assert_eq!((status, body.as_str()), (200, "ok"), "hyper={hyper} {i}");
        }
        let retried = retries(&rl, "api", "retried", 1.0).await;
        assert!((10.0..=20.0).contains(&retried), "hyper={hyper}: {retried}");
        let m = rl.metrics_counting(20.0).await;
        assert!(!m.contains("http_response_status_code=\"503\""), "{m}");
        // Unmatched traffic (no retries of its own, none globally) sees the 503s.
        let statuses: Vec<u16> = futures_statuses(&rl, "/other", 4).await;
        assert!(statuses.contains(&503), "hyper={hyper}: {statuses:?}");
    }
}

async fn futures_statuses(rl: &Redline, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(&rl.url(path)).await.0);
    }
    out
}

/// An HTTP/1.1 upstream that reads each request head and, for every other request,
/// resets the connection before answering a byte (RST: linger 0); else answers 200.
fn resetting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let count = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || answer_or_reset(stream, &count));
        }
    });
    (addr, heads)
}

fn answer_or_reset(mut stream: std::net::TcpStream, heads: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + body {
                break;
            }
            buf.drain(..end + 4 + body);
            if heads.fetch_add(1, SeqCst) % 2 == 0 {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return;
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_before_any_byte_is_retried_for_get_but_not_for_post() {
    let (up, heads) = resetting_upstream();
    let flow = "retries: { attempts: 2, backoff_base: 1ms }\n";
    for hyper in [false, true] {
        let rl = Redline::start_with(&config_for(up, flow), &[], engine(hyper));
        for i in 0..6 {
            let (status, _, body) = get(&rl.url(&format!("/r/{i}"))).await;
            assert_eq!((status, body.as_str()), (200, "ok"), "hyper={hyper}");
        }
        // A POST that reached the app is never sent twice: its reset is the answer.
        let mut failed = 0;
        for _ in 0..4 {
            let before = heads.load(SeqCst);
            let req = Request::post(rl.url("/r/post"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let (status, _, _) = send(req).await;
            if status == 502 {
                failed += 1;
                assert_eq!(heads.load(SeqCst), before + 1, "hyper={hyper}: sent once");
            }
        }
        assert!(failed >= 1, "hyper={hyper}: some POST met a reset");
        retries(&rl, "unmatched", "retried", 1.0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_with_a_small_body_is_retried_whole_on_the_fast_path() {
    let (up, heads) = resetting_upstream();
    let flow = "retries: { attempts: 2, backoff_base: 1ms }\n";
    let put = |rl: &Redline| {
        Request::put(rl.url("/r/put"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"qty\":2}")))
            .unwrap()
    };
    // Fast path: the whole request is in hand, so the idempotent PUT is sent again after
    // a reset, body and all (the upstream only answers once the whole body arrived, and
    // resets every other request: without the retry, half of these would be 502).
    let rl = Redline::start_with(&config_for(up, flow), &[], engine(false));
    for i in 0..6 {
        let (status, _, body) = send(put(&rl)).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "fast path, PUT {i}");
    }
    // Each PUT's first try was reset after its whole body arrived, its second answered.
    assert_eq!(heads.load(SeqCst), 12, "every PUT arrived twice, whole");
    retries(&rl, "unmatched", "retried", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_stops_retries_against_a_refusing_upstream() {
    // A port that refuses: bound, then closed.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let flow = "retries:\n  attempts: 3\n  backoff_base: 1ms\n  budget: { ratio: 0%, min_per_second: 1 }\n";
    for hyper in [false, true] {
        let rl = Redline::start_with(&config_for(refused, flow), &[], engine(hyper));
        let started = Instant::now();
        let n = 10;
        for i in 0..n {
            let (status, _, body) = get(&rl.url(&format!("/x/{i}"))).await;
            assert_eq!(status, 502, "hyper={hyper}: {body}");
        }
        let seconds = started.elapsed().as_secs_f64().ceil() + 1.0;
        let exhausted = retries(&rl, "unmatched", "budget_exhausted", 1.0).await;
        let m = rl.metrics().await;
        let series = |r: &str| {
            sample(
                &m,
                &format!("redline_retries_total{{flow=\"unmatched\",result=\"{r}\"}}"),
            )
            .unwrap_or(0.0)
        };
        let retried = series("retried");
        // One retry a second at most (ratio 0%, floor 1), whatever the failures.
        assert!(retried <= seconds, "hyper={hyper}: {retried} in {seconds}s");
        // Each request ends its tries once: out of budget, or out of attempts.
        assert_eq!(
            exhausted + series("attempts_exhausted"),
            f64::from(n),
            "hyper={hyper}: {m}"
        );
    }
}

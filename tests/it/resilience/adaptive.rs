//! The adaptive concurrency limit against an app that serves a few requests at once and
//! queues the rest: the limit falls to near the app's capacity, the excess is refused at
//! once with 503 `overloaded` instead of queueing, and `/api/flows` and `/metrics` show it,
//! in both engines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::support::{Redline, config_for, eventually, full, get, sample, serve};

/// Requests the app serves at once; the rest wait for a place.
const CAPACITY: usize = 4;
/// Time one request takes once served.
const SERVICE: Duration = Duration::from_millis(50);
/// Clients sending requests back to back: eight times the capacity.
const CLIENTS: usize = 32;

/// What the clients saw: (status, latency, `error` of a 503 body, its `Retry-After`).
type Seen = Arc<std::sync::Mutex<Vec<(u16, Duration, String, String)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_settles_near_the_apps_capacity_and_the_excess_is_refused_at_once() {
    let places = Arc::new(Semaphore::new(CAPACITY));
    // Requests inside the app now (served or waiting), and the most seen since the limit settled.
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (i, m) = (inside.clone(), most.clone());
    let up = serve(move |_req| {
        let (places, inside, most) = (places.clone(), i.clone(), m.clone());
        async move {
            most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
            let place = places.acquire().await.expect("semaphore open");
            tokio::time::sleep(SERVICE).await;
            drop(place);
            inside.fetch_sub(1, SeqCst);
            http::Response::new(full("ok"))
        }
    })
    .await;
    for env in [&[][..], &[("REDLINE_HTTP1_ENGINE", "hyper")][..]] {
        settles(up, &inside, &most, env).await;
    }
}

/// One engine's case (`env`): Redline in front of the app at `up`, whose requests inside
/// it are counted in `inside` and their peak in `most`.
async fn settles(up: SocketAddr, inside: &AtomicUsize, most: &AtomicUsize, env: &[(&str, &str)]) {
    let flows = "flows:\n  - name: work\n    match: \"GET /work\"\n    concurrency:\n      adaptive: { min: 2, max: 200, initial: 40, window: 200ms }\n";
    let rl = Redline::start_with(&config_for(up, flows), &[], env);
    let before = rl.json("/api/flows").await;
    assert_eq!(before["flows"][0]["concurrency_limit"], 40, "{before}");
    assert_eq!(
        before["flows"][1]["concurrency_limit"],
        serde_json::Value::Null
    );

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Seen = Default::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(rl.url("/work"), stop.clone(), seen.clone())))
        .collect();

    let limit = |flows: serde_json::Value| flows["flows"][0]["concurrency_limit"].as_u64();
    let near = (CAPACITY as u64)..=(3 * CAPACITY as u64);
    let settled = eventually(Duration::from_secs(30), "the limit near capacity", || {
        let rl = &rl;
        let near = near.clone();
        async move { limit(rl.json("/api/flows").await).filter(|l| near.contains(l)) }
    })
    .await;
    // From here on, measured under the settled limit.
    seen.lock().unwrap().clear();
    most.store(inside.load(SeqCst), SeqCst);
    let until = Instant::now() + Duration::from_secs(2);
    let mut limits = vec![settled];
    while Instant::now() < until {
        limits.extend(limit(rl.json("/api/flows").await));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scrape = rl.metrics().await;
    stop.store(true, SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    assert!(
        limits.iter().all(|l| near.contains(l)),
        "{env:?}: the limit stays near the app's capacity of {CAPACITY}: {limits:?}"
    );
    let metric = sample(&scrape, "redline_concurrency_limit{flow=\"work\"}");
    assert!(
        metric.is_some_and(|m| near.contains(&(m as u64))),
        "{metric:?}"
    );
    let most = most.load(SeqCst);
    assert!(
        most <= 3 * CAPACITY,
        "{env:?}: the app holds at most the limit, not all {CLIENTS} clients: {most}"
    );
    let seen = seen.lock().unwrap();
    let median = |status: u16| {
        let mut l: Vec<_> = seen.iter().filter(|s| s.0 == status).map(|s| s.1).collect();
        l.sort();
        assert!(
            !l.is_empty(),
            "no {status} answers: {:?}",
            &seen[..seen.len().min(20)]
        );
        l[l.len() / 2]
    };
    let (served, refused) = (median(200), median(503));
    assert!(
        refused * 4 < served && refused < SERVICE,
        "{env:?}: a refusal comes at once ({refused:?}), a served request waits its turn ({served:?})"
    );
    for (status, _, error, retry_after) in seen.iter().filter(|s| s.0 != 200) {
        assert_eq!(
            (*status, error.as_str(), retry_after.as_str()),
            (503, "overloaded", "1")
        );
    }
}

/// Send requests back to back until `stop`, noting what came back. A refused client waits
/// 5 ms before its next request, as a client honouring an overload would pace itself.
async fn client(url: String, stop: Arc<AtomicBool>, seen: Seen) {
    while !stop.load(SeqCst) {
        let start = Instant::now();
        let (status, headers, body) = get(&url).await;
        let took = start.elapsed();
        let (mut error, mut retry_after) = (String::new(), String::new());
        if status != 200 {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            error = json["error"].as_str().unwrap_or_default().to_string();
            let value = headers.get("retry-after").and_then(|v| v.to_str().ok());
            retry_after = value.unwrap_or_default().to_string();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen.lock()
            .unwrap()
            .push((status, took, error, retry_after));
    }
}

//! Upstream connections open through a gate: a burst on cold connections does not
//! overflow a dev server's tiny listen backlog, a request that finds no slot in time is
//! refused with 503 `overloaded`, and a connect that hangs gives up at `connect_timeout`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use crate::support::{Redline, client, config_for, eventually, full, get, sample, serve};

/// An HTTP/1.0 upstream like `python3 -m http.server`: a listen backlog of 5, one
/// accepting thread that takes its time, and a connection closed after each answer (so
/// every proxied request needs a new connection).
fn tiny_backlog_upstream() -> SocketAddr {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(5).unwrap();
    let listener: std::net::TcpListener = socket.into();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_once(stream));
            // A Python accept loop between two connections: select, accept, start a thread.
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    addr
}

fn answer_once(mut stream: std::net::TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    std::thread::sleep(Duration::from_millis(1));
    let _ = stream.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok");
}

/// Clients at once, and requests each sends in turn.
const CLIENTS: usize = 100;
const EACH: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_cold_connections_does_not_overflow_a_tiny_backlog() {
    let up = tiny_backlog_upstream();
    let rl = Redline::start(&config_for(up, ""));
    // HTTP/1.1 clients (the fast path), then h2c clients with many streams each (hyper).
    burst(&rl, false).await;
    burst(&rl, true).await;
}

/// `CLIENTS` requests at once, `EACH` in turn: none fails, none waits for long, and every
/// gate slot is given back afterwards.
async fn burst(rl: &Redline, h2c: bool) {
    let url = rl.url("/");
    // h2c: ten connections of ten streams each, as `h2load -c 10 -m 10` sends.
    let clients: Vec<_> = (0..10)
        .map(|_| {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http()
        })
        .collect();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let url = url.clone();
        let shared = clients[i % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let client = if h2c { shared } else { client() };
            let mut outcomes = Vec::new();
            for _ in 0..EACH {
                let started = Instant::now();
                let req = http::Request::get(&url).body(Default::default()).unwrap();
                let outcome = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                        (status, body.map(|b| b.len()).unwrap_or(0))
                    }
                    Err(_) => (0, 0),
                };
                outcomes.push((outcome, started.elapsed()));
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let failed: Vec<_> = outcomes.iter().filter(|(o, _)| *o != (200, 2)).collect();
    let slowest = outcomes.iter().map(|(_, took)| *took).max().unwrap();
    assert!(
        failed.is_empty(),
        "h2c={h2c}: {} of {} failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
    // A dropped connection used to wait for the 30 s flow timeout; a SYN retransmit alone
    // would take a second or more. Generous for a shared, busy machine.
    assert!(
        slowest < Duration::from_secs(10),
        "slowest request took {slowest:?}"
    );
    eprintln!(
        "h2c={h2c}: {} requests, slowest {slowest:?}",
        outcomes.len()
    );
    // Every slot given back: nothing is left being opened or waiting.
    eventually(Duration::from_secs(5), "the gate at rest", || async {
        let m = rl.metrics().await;
        let opening = sample(&m, "redline_upstream_connections{state=\"opening\"}")?;
        let queued = sample(&m, "redline_upstream_queue_requests")?;
        (opening == 0.0 && queued == 0.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_free_slot_and_no_room_to_wait_is_503_overloaded_with_retry_after_in_both_engines() {
    // Counts the requests that reached it, then answers after a while.
    let arrived = Arc::new(AtomicUsize::new(0));
    let seen = arrived.clone();
    let up = serve(move |_| {
        seen.fetch_add(1, SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            http::Response::new(full("slow"))
        }
    })
    .await;
    // One connection in all and no room to wait.
    let yaml = config_for(up, "upstream_connections: { max: 1, queue: 0 }\n");
    let fast = Redline::start(&yaml);
    let hyper = Redline::start_with(&yaml, &[], &[("REDLINE_HTTP1_ENGINE", "hyper")]);
    for (n, rl) in [&fast, &hyper].into_iter().enumerate() {
        // Holds the one connection allowed until its answer comes.
        let slow_url = rl.url("/slow");
        let slow = tokio::spawn(async move { get(&slow_url).await });
        eventually(Duration::from_secs(5), "the slow request upstream", || {
            let reached = arrived.load(SeqCst) > n;
            async move { reached.then_some(()) }
        })
        .await;
        let (status, headers, body) = get(&rl.url("/refused")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(headers["retry-after"], "1");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "overloaded", "{body}");
        let (status, _, body) = slow.await.unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "slow"),
            "the slow one is answered"
        );
        let m = rl.metrics_counting(2.0).await;
        assert!(
            m.lines().any(|l| l.contains("error_type=\"overloaded\"")
                && l.contains("http_response_status_code=\"503\"")),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_hangs_gives_up_at_connect_timeout_with_502_in_both_engines() {
    // A listener whose accept queue is full and never drained: the kernel drops further
    // SYNs, so a connect hangs as it would to a blackholed address.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let up: SocketAddr = socket.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<_> = (0..4)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&up, Duration::from_millis(200)).ok())
        .collect();
    let yaml = config_for(up, "upstream_connections: { connect_timeout: 300ms }\n");
    let fast = Redline::start(&yaml);
    let hyper = Redline::start_with(&yaml, &[], &[("REDLINE_HTTP1_ENGINE", "hyper")]);
    for rl in [&fast, &hyper] {
        let started = Instant::now();
        let (status, _, body) = get(&rl.url("/")).await;
        let took = started.elapsed();
        assert_eq!(status, 502, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "upstream_unavailable", "{body}");
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(
            took < Duration::from_secs(3),
            "{took:?}: not the 30 s flow timeout"
        );
    }
    drop((fillers, socket));
}

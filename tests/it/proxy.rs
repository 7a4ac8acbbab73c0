//! Proxy behaviour against real sockets: headers, errors, limits, open-proxy refusal, client abort.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const FLOWS: &str = r#"
flows:
  - name: checkout
    match: ["POST /api/checkout", "GET /api/orders/{id}"]
    owner: payments
    timeout: 300ms
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_with_forwarded_headers_request_id_and_host() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, FLOWS));
    let req = Request::get(rl.url("/echo/a?b=1"))
        .header("host", "shop.example")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must-not-pass")
        .header("keep-alive", "timeout=5")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-custom", "kept")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let h = &echo["headers"];
    assert_eq!(echo["uri"], "/echo/a?b=1");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["body_len"], 5);
    assert_eq!(h["host"], "shop.example");
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["x-custom"], "kept");
    assert!(
        h.get("x-hop").is_none() && h.get("keep-alive").is_none(),
        "{h}"
    );
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        h["x-request-id"], id,
        "the upstream sees the id the client gets"
    );
    // The upstream's own hop-by-hop header does not reach the client either.
    assert!(headers.get("x-upstream-hop").is_none());

    let req = Request::get(rl.url("/echo"))
        .header("x-request-id", "client-id-1")
        .body(Full::default())
        .unwrap();
    let (_, headers, body) = send(req).await;
    assert_eq!(headers["x-request-id"], "client-id-1");
    assert!(body.contains("client-id-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_proxied_over_http1() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, FLOWS));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let resp = client
        .request(
            Request::get(rl.url("/echo/h2"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["uri"], "/echo/h2");
    assert_eq!(echo["headers"]["host"], rl.proxy.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_gives_504_json_and_refused_upstream_gives_502() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, FLOWS));
    let (status, headers, body) = get(&rl.url("/api/orders/42?sleep_ms=2000")).await;
    assert_eq!(status, 504);
    assert_eq!(headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "timeout");
    assert_eq!(v["flow"], "checkout");
    assert_eq!(v["request_id"], headers["x-request-id"].to_str().unwrap());
    assert!(v["message"].as_str().unwrap().contains("300ms"), "{v}");

    // A port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let rl2 = Redline::start(&config_for(dead, FLOWS));
    let (status, _, body) = get(&rl2.url("/api/orders/7")).await;
    assert_eq!(status, 502);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "upstream_unavailable");
    let m = rl2.metrics_counting(1.0).await;
    let series = r#"http_server_request_duration_seconds_count{flow="checkout",http_request_method="GET",http_route="/api/orders/{id}",http_response_status_code="502",error_type="upstream_unavailable"}"#;
    assert_eq!(sample(&m, series), Some(1.0), "{m}");
    let m = rl.metrics_counting(1.0).await;
    let series = r#"http_server_request_duration_seconds_count{flow="checkout",http_request_method="GET",http_route="/api/orders/{id}",http_response_status_code="504",error_type="timeout"}"#;
    assert_eq!(sample(&m, series), Some(1.0), "{m}");
}

/// An upstream that sends headers and part of the body, then resets.
async fn resetting_upstream() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial")
                    .await;
                // Reset rather than close: an RST mid-body is what a crashing app produces.
                let _ = socket2_reset(s);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_response_is_upstream_error() {
    let up = resetting_upstream().await;
    let rl = Redline::start(&config_for(up, FLOWS));
    let resp = client()
        .request(
            Request::get(rl.url("/api/orders/1"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        resp.into_body().collect().await.is_err(),
        "the client must see a broken body"
    );
    let line = rl.access_line(&id).await;
    assert_eq!(line["error_type"], "upstream_error");
    let m = rl.metrics().await;
    let series = r#"http_server_request_duration_seconds_count{flow="checkout",http_request_method="GET",http_route="/api/orders/{id}",http_response_status_code="200",error_type="upstream_error"}"#;
    assert_eq!(sample(&m, series), Some(1.0), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_and_connect_never_reach_another_host() {
    let up = app().await;
    // Never accepted from: a connection Redline made to it would wait in its accept
    // queue, where the kernel put it before Redline could send or answer anything.
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    evil.set_nonblocking(true).unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let rl = Redline::start(&config_for(up, FLOWS));

    let raw = format!(
        "GET http://{evil_addr}/steal HTTP/1.1\r\nHost: {evil_addr}\r\nConnection: close\r\n\r\n"
    );
    let resp = raw_exchange(rl.proxy, raw.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains(r#""uri":"/steal""#),
        "served by the configured upstream: {resp}"
    );

    let raw = format!("CONNECT {evil_addr} HTTP/1.1\r\nHost: {evil_addr}\r\n\r\n");
    let resp = raw_exchange(rl.proxy, raw.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    let reached = evil.accept();
    assert!(
        matches!(&reached, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{reached:?}"
    );
}

fn socket2_reset(s: TcpStream) -> std::io::Result<()> {
    let std = s.into_std()?;
    let sock = socket2::Socket::from(std);
    sock.set_linger(Some(Duration::ZERO))?;
    drop(sock);
    Ok(())
}

/// Write raw bytes, read until the server closes (or 3 s pass).
pub async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        if out.windows(4).any(|w| w == b"\r\n\r\n")
            && !out.starts_with(b"HTTP/1.1 200")
            && !out.starts_with(b"HTTP/1.1 1")
        {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_431_400_and_slow_headers_cut_off() {
    let up = app().await;
    let rl = Redline::start(&config_for(
        up,
        "limits: { header_read_timeout: 1s, max_header_bytes: 16KiB }\n",
    ));
    let big = "a".repeat(40 * 1024);
    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let resp = raw_exchange(rl.proxy, raw.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");

    let resp = raw_exchange(rl.proxy, b"GARBAGE\x01 / HTTP/1.1\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");

    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    let waited = started.elapsed();
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{:?}",
        &buf[..n]
    );
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

/// The header-read limit (kept by the workers' watchdog) bounds idle spells between
/// requests, never a slow response, and leaves HTTP/2 connections alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_connections_close_after_the_header_limit_slow_responses_do_not() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, "limits: { header_read_timeout: 1s }\n"));
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    let started = std::time::Instant::now();
    s.write_all(b"GET /echo/slow?sleep_ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    // Until the end of the JSON body: the response is not cut while it takes 1.5 s.
    while !got.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));

    let idle_from = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    let idled = idle_from.elapsed();
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(
        idled >= Duration::from_millis(900) && idled < Duration::from_secs(3),
        "{idled:?}"
    );

    // An h2c connection idle for longer than the limit still takes requests.
    let stream = TcpStream::connect(rl.proxy).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for round in 0..2 {
        let req = Request::get(rl.url("/echo/h2"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let resp = h2.send_request(req).await.expect("connection still open");
        assert_eq!(resp.status(), 200, "round {round}");
        tokio::time::sleep(Duration::from_millis(1800)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_abort_is_client_closed() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, FLOWS));
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    s.write_all(
        b"GET /slow-abort?sleep_ms=1500 HTTP/1.1\r\nHost: x\r\nx-request-id: abort-1\r\n\r\n",
    )
    .await
    .unwrap();
    // Dropped once the request is inside Redline (the upstream takes 1.5 s to answer).
    eventually(Duration::from_secs(5), "request in flight", || async {
        let m = rl.metrics().await;
        m.contains(r#"http_server_active_requests{flow="unmatched",http_request_method="GET"} 1"#)
            .then_some(())
    })
    .await;
    drop(s);
    let line = rl.access_line("abort-1").await;
    assert_eq!(line["error_type"], "client_closed");
    assert_eq!(line["status"], 499);
    let m = rl.metrics().await;
    assert!(
        m.contains(r#"http_response_status_code="499",error_type="client_closed""#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_every_field_and_redacts_query() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, FLOWS));
    let req = Request::post(rl.url("/api/checkout?token=s3cr3t&x=1"))
        .header("x-request-id", "log-1")
        .body(Full::new(Bytes::from_static(b"12345")))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 200);
    let line = rl.access_line("log-1").await;
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/api/checkout?token=REDACTED&x=1");
    assert_eq!(line["route"], "/api/checkout");
    assert_eq!(line["flow"], "checkout");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_in"], 5);
    assert_eq!(line["bytes_out"], body.len());
    assert_eq!(line["error_type"], "");
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(line["upstream_ms"].as_f64().unwrap() > 0.0);
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(line["ts"].as_str().unwrap().ends_with('Z'));
    let out = rl.stdout.lock().unwrap().join("\n");
    assert!(!out.contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_text_and_off_switches() {
    let up = app().await;
    let text = Redline::start(&config_for(up, "telemetry: { access_log: text }\n"));
    let req = Request::get(text.url("/echo?token=s3cr3t"))
        .header("x-request-id", "txt-1")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(req).await.0, 200);
    let line = eventually(Duration::from_secs(5), "text access line", || async {
        text.stdout
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("request_id=txt-1"))
            .cloned()
    })
    .await;
    assert!(
        line.contains("GET /echo?token=REDACTED") && line.contains("status=200"),
        "{line}"
    );
    assert!(
        line.contains("flow=unmatched") && line.contains("error_type=-"),
        "{line}"
    );

    let off = Redline::start(&config_for(up, "telemetry: { access_log: off }\n"));
    assert_eq!(get(&off.url("/echo")).await.0, 200);
    // The request is fully recorded (metrics) before we look, so a line would be there by now.
    eventually(Duration::from_secs(5), "request recorded", || async {
        off.metrics()
            .await
            .contains(r#"http_route="/echo""#)
            .then_some(())
    })
    .await;
    assert!(
        off.stdout.lock().unwrap().is_empty(),
        "{:?}",
        off.stdout.lock().unwrap()
    );
}

/// An HTTP/1.1 upstream that counts connections, answers `{method} {path} {body length}` with
/// keep-alive, and closes a connection after `idle` without a request (like a server's
/// keep-alive timeout), without announcing it.
async fn counting_upstream(idle: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let (addr, accepted, _) = closing_upstream(idle).await;
    (addr, accepted)
}

/// `counting_upstream` that also counts the connections it has closed.
async fn closing_upstream(
    idle: Duration,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (count, done) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let done = done.clone();
            tokio::spawn(async move {
                keep_alive_conn(stream, idle).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, accepted, closed)
}

async fn keep_alive_conn(mut stream: TcpStream, idle: Duration) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return, // idle timeout, EOF or error: close
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let mut words = head.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let body = format!("{method} {path} {length}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        buf.drain(..head_end + length);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_closed_ones_replaced() {
    let (up, accepted, closed) = closing_upstream(Duration::from_millis(300)).await;
    let rl = Redline::start(&config_for(up, FLOWS));
    // Redline's start-up reachability probe is one connection of its own, not counted below.
    eventually(Duration::from_secs(5), "start-up probe", || async {
        (accepted.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let client = client();
    // One client connection, 60 requests in a row (GETs and POSTs with bodies): the
    // upstream sees at most one connection per Redline worker thread, not one per request.
    for i in 0..60 {
        let req = if i % 2 == 0 {
            Request::get(rl.url(&format!("/r/{i}")))
                .body(Full::new(Bytes::new()))
                .unwrap()
        } else {
            Request::post(rl.url(&format!("/r/{i}")))
                .body(Full::new(Bytes::from(vec![b'x'; 1000 + i])))
                .unwrap()
        };
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let want = if i % 2 == 0 {
            format!("GET /r/{i} 0")
        } else {
            format!("POST /r/{i} {}", 1000 + i)
        };
        assert_eq!(String::from_utf8_lossy(&body), want);
    }
    let used = accepted.load(Ordering::SeqCst) - 1;
    assert!(
        (1..=2).contains(&used),
        "60 requests used {used} upstream connections"
    );
    // The upstream closes idle connections after 300 ms without a word: the next
    // requests must notice and open fresh ones, never fail.
    for i in 0..3 {
        eventually(Duration::from_secs(5), "upstream idle close", || async {
            let (open, gone) = (
                accepted.load(Ordering::SeqCst),
                closed.load(Ordering::SeqCst),
            );
            (open == gone).then_some(())
        })
        .await;
        let (status, _, body) = get(&rl.url(&format!("/later/{i}"))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("GET /later/{i} 0"));
    }
    let after = accepted.load(Ordering::SeqCst) - 1;
    assert_eq!(
        after,
        used + 3,
        "each request after an idle close needs one new connection"
    );
    let scrape = rl.metrics().await;
    assert!(
        !scrape.contains("error_type=\"upstream_error\""),
        "{scrape}"
    );
}

/// One request on a fresh keep-alive client connection, which is returned still open.
async fn request_on_new_connection(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: shop.example\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let want = format!("GET {path} 0");
    let mut got = Vec::new();
    while !got.ends_with(want.as_bytes()) {
        let mut chunk = [0u8; 1024];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connections_are_dealt_to_every_worker_thread_in_turn() {
    // Each proxy thread keeps its own upstream connections, so the number the upstream
    // sees for strictly sequential requests on new client connections is the number of
    // threads those client connections were dealt to.
    for threads in [2usize, 3] {
        let (up, accepted) = counting_upstream(Duration::from_secs(30)).await;
        let n = threads.to_string();
        let rl = Redline::start_with(
            &config_for(up, FLOWS),
            &[],
            &[("TOKIO_WORKER_THREADS", n.as_str())],
        );
        let addr: std::net::SocketAddr = rl.url("").trim_start_matches("http://").parse().unwrap();
        // Redline's start-up reachability probe is one connection of its own.
        eventually(Duration::from_secs(5), "start-up probe", || async {
            (accepted.load(Ordering::SeqCst) >= 1).then_some(())
        })
        .await;
        let mut open = Vec::new();
        for i in 0..3 * threads {
            open.push(request_on_new_connection(addr, &format!("/c/{i}")).await);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst) - 1,
            threads,
            "{} client connections over {threads} threads",
            open.len()
        );
    }
}

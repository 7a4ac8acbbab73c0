//! Both HTTP/1.1 engines, one expected result: the same failures get the same answer whichever engine carries the request.
//!
//! Each case runs through the fast path, through hyper as a fallback (HTTP/1.0, large or
//! chunked uploads, h2c), and through `REDLINE_HTTP1_ENGINE=hyper`, and asserts the same
//! outcome. Before `phases.rs` the hyper engine failed 18–48 % of the idle-race requests
//! and recorded a client's abort or broken body as `upstream_error`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// An upstream that answers one request per connection without saying `Connection:
/// close`, and closes the connection, unanswered, when the next request arrives on it:
/// the race every keep-alive proxy meets when an app's idle timeout is short, made
/// deterministic (the close always meets a request in flight). Counts the answers.
async fn closes_after_each_answer() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                // The next request (or the end) arrives: drop the connection under it.
                let _ = stream.read(&mut chunk).await;
            });
        }
    });
    (addr, answered)
}

const ROUNDS: usize = 150;

/// `ROUNDS` GETs on one keep-alive HTTP/1.1 connection (`http10`: one HTTP/1.0 request per
/// connection); the statuses that were not 200.
async fn sequential_gets(proxy: SocketAddr, http10: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let mut conn = None;
    for i in 0..ROUNDS {
        let stream = match conn.take() {
            Some(s) if !http10 => s,
            _ => TcpStream::connect(proxy).await.unwrap(),
        };
        let mut stream = stream;
        let version = if http10 { "1.0" } else { "1.1" };
        let req = format!("GET /race/{i} HTTP/{version}\r\nHost: shop\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream).await;
        // hyper answers an HTTP/1.0 client in HTTP/1.0.
        if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
            failures.push(format!(
                "#{i}: {}",
                answer.lines().next().unwrap_or("closed")
            ));
            continue;
        }
        conn = Some(stream);
    }
    failures
}

/// One whole answer with a content-length body (what Redline sends here), as text.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return text,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_after_each_answer_costs_no_request_on_either_engine() {
    let (up, answered) = closes_after_each_answer().await;
    let env = [("TOKIO_WORKER_THREADS", "1")];
    let fast = Redline::start_with(&config_for(up, ""), &[], &env);
    let forced = [
        ("TOKIO_WORKER_THREADS", "1"),
        ("REDLINE_HTTP1_ENGINE", "hyper"),
    ];
    let hyper = Redline::start_with(&config_for(up, ""), &[], &forced);

    let fast_path = sequential_gets(fast.proxy, false).await;
    let http10 = sequential_gets(fast.proxy, true).await;
    let hyper_only = sequential_gets(hyper.proxy, false).await;
    let h2c = h2c_gets(fast.proxy).await;
    assert!(fast_path.is_empty(), "fast path: {fast_path:?}");
    assert!(http10.is_empty(), "HTTP/1.0 via hyper: {http10:?}");
    assert!(
        hyper_only.is_empty(),
        "REDLINE_HTTP1_ENGINE=hyper: {hyper_only:?}"
    );
    assert!(h2c.is_empty(), "h2c via hyper: {h2c:?}");
    assert!(answered.load(Ordering::SeqCst) >= 4 * ROUNDS);
}

/// `ROUNDS` GETs over one h2c connection, ten at a time; the failures.
async fn h2c_gets(proxy: SocketAddr) -> Vec<String> {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut failures = Vec::new();
    for batch in 0..ROUNDS / 10 {
        let mut calls = Vec::new();
        for i in 0..10 {
            let mut sender = sender.clone();
            let uri = format!("http://shop/race/h2/{batch}/{i}");
            calls.push(tokio::spawn(async move {
                let req = http::Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
                match sender.send_request(req).await {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0,
                }
            }));
        }
        for call in calls {
            let status = call.await.unwrap();
            if status != 200 {
                failures.push(format!("batch {batch}: {status}"));
            }
        }
    }
    failures
}

/// Send `head` and `sent` body bytes, then vanish; the access log's verdict.
async fn abort_upload(
    rl: &Redline,
    id: &str,
    head: &str,
    sent: &[u8],
) -> (serde_json::Value, serde_json::Value) {
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    let head = head.replace("{id}", id);
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(sent).await.unwrap();
    // Closed only once Redline has the request in flight: its upstream saw the head.
    eventually(Duration::from_secs(5), "request in flight", || async {
        let m = rl.metrics().await;
        let active: f64 = m
            .lines()
            .filter(|l| l.starts_with("http_server_active_requests{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (active >= 1.0).then_some(())
    })
    .await;
    drop(s);
    let line = rl.access_line(id).await;
    (line["error_type"].clone(), line["status"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_aborts_its_upload_is_client_closed_on_either_engine() {
    let up = app().await;
    let fast = Redline::start(&config_for(up, ""));
    let forced = [("REDLINE_HTTP1_ENGINE", "hyper")];
    let hyper = Redline::start_with(&config_for(up, ""), &[], &forced);
    let small =
        "POST /up HTTP/1.1\r\nHost: shop\r\nx-request-id: {id}\r\ncontent-length: 50000\r\n\r\n";
    let large =
        "POST /up HTTP/1.1\r\nHost: shop\r\nx-request-id: {id}\r\ncontent-length: 1000000\r\n\r\n";
    let chunked = "POST /up HTTP/1.1\r\nHost: shop\r\nx-request-id: {id}\r\ntransfer-encoding: chunked\r\n\r\n";
    let part = vec![b'u'; 10_000];
    let mut chunks = b"2710\r\n".to_vec();
    chunks.extend_from_slice(&part);
    chunks.extend_from_slice(b"\r\n");
    let cases: [(&Redline, &str, &str, &[u8]); 4] = [
        (&fast, "abort-fast", small, &part),
        (&fast, "abort-large", large, &part),
        (&fast, "abort-chunked", chunked, &chunks),
        (&hyper, "abort-forced", small, &part),
    ];
    for (rl, id, head, sent) in cases {
        if id == "abort-fast" {
            // The fast path reads a small body whole before going upstream: nothing is in
            // flight upstream yet, so close as soon as the bytes are written.
            let mut s = TcpStream::connect(rl.proxy).await.unwrap();
            s.write_all(head.replace("{id}", id).as_bytes())
                .await
                .unwrap();
            s.write_all(sent).await.unwrap();
            drop(s);
            let line = rl.access_line(id).await;
            assert_eq!(line["error_type"], "client_closed", "{id}: {line}");
            continue;
        }
        let (error, status) = abort_upload(rl, id, head, sent).await;
        assert_eq!(error, "client_closed", "{id}");
        assert_eq!(status, 499, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chunked_body_is_the_clients_400_not_the_apps_502() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    for (i, bad) in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        // hyper ignores what an extension holds but not a bare LF inside one.
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"-1\r\nhello\r\n0\r\n\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("bad-chunk-{i}");
        let mut s = TcpStream::connect(rl.proxy).await.unwrap();
        let head = format!(
            "POST /up HTTP/1.1\r\nHost: shop\r\nx-request-id: {id}\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(bad).await.unwrap();
        let answer = read_answer(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad:?}: {answer}");
        assert!(answer.contains("\"error\":\"bad_request\""), "{answer}");
        let line = rl.access_line(&id).await;
        assert_eq!(line["error_type"], "bad_request", "{line}");
    }
    // The app is fine: this is the clients' doing, not counted as the app's errors.
    let m = rl.metrics().await;
    assert!(!m.contains("upstream_error"), "{m}");
    assert!(m.contains(r#"error_type="bad_request""#), "{m}");
    let client = client();
    let ok = client
        .request(
            http::Request::get(rl.url("/after"))
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let _ = ok.into_body().collect().await;
}

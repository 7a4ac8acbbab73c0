//! Bodies stream both ways: a 100 MB download with bounded RSS, SSE events as they happen, WebSocket tunnelling.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_stream_with_small_rss() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    let resp = client()
        .request(
            Request::get(rl.url("/big?mb=100"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let (mut total, mut peak_rss) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("frame");
        if let Some(d) = frame.data_ref() {
            total += d.len() as u64;
        }
        if total % (8 * 1024 * 1024) < 65536 {
            peak_rss = peak_rss.max(rl.rss_kib());
            // Reading slowly at times makes back-pressure, not buffering, the proxy's answer.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(total, 100 * 1024 * 1024);
    peak_rss = peak_rss.max(rl.rss_kib());
    assert!(
        peak_rss > 0 && peak_rss < 50 * 1024,
        "peak RSS {peak_rss} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_first_event_arrives_before_upstream_finishes() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    let started = Instant::now();
    let resp = client()
        .request(Request::get(rl.url("/sse")).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from_static(b"data: first\n\n"));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "first event after {:?}",
        started.elapsed()
    );
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, Bytes::from_static(b"data: second\n\n"));
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_pass_both_ways() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(s)
                    .await
                    .expect("upstream handshake");
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        ws.send(Message::text(format!("echo: {t}"))).await.unwrap();
                    }
                }
            });
        }
    });
    let rl = Redline::start(&config_for(up, ""));
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/chat", rl.proxy))
        .await
        .expect("handshake via redline");
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            reply.into_text().unwrap().as_str(),
            format!("echo: hello {i}")
        );
    }
    ws.close(None).await.unwrap();
}

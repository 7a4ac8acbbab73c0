//! Bodies stream both ways: a 100 MB download with bounded RSS, SSE events as they happen, WebSocket tunnelling.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_upload_reaches_the_upstream_whole_and_the_connection_stays_usable() {
    // The upstream connection is driven by the client connection's task: a body that
    // arrives in bursts, with pauses, must still flow through as it comes.
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    let stream = tokio::net::TcpStream::connect(rl.proxy).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(2);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
        for i in 0..40 {
            if i % 10 == 5 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                return;
            }
        }
    });
    let resp = sender
        .send_request(
            Request::post("/upload")
                .header("host", "shop")
                .body(channel_body(rx))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let echoed: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echoed["body_len"], 40 * 256 * 1024, "{echoed}");
    assert_eq!(
        echoed["headers"]["transfer-encoding"], "chunked",
        "{echoed}"
    );
    let line = rl.access_line(&id).await;
    assert_eq!(line["bytes_in"], 40 * 256 * 1024, "{line}");

    // Same client connection, next request: answered normally.
    sender.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(1);
    drop(tx);
    let resp = sender
        .send_request(
            Request::get("/after")
                .header("host", "shop")
                .body(channel_body(rx))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echoed["uri"], "/after");
}

type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

/// A request body that sends what arrives on `rx`, as it arrives (chunked on the wire).
fn channel_body(
    rx: tokio::sync::mpsc::Receiver<Chunk>,
) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> {
    StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|f| (f, rx))
    }))
}

//! A request body that trickles is cut after `limits.body_read_timeout` with 408
//! `client_timeout`, the client's failure, in both engines.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Redline, app, config_for, eventually};

const PAUSE: Duration = Duration::from_millis(500);
/// Scheduling slack on a busy machine: the answer must still come long before a default 60 s.
const MARGIN: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_gets_408_client_timeout_in_both_engines() {
    let up = app().await;
    let yaml = config_for(up, "limits:\n  body_read_timeout: 500ms\n");
    let fast = Redline::start(&yaml);
    let forced = [("REDLINE_HTTP1_ENGINE", "hyper")];
    let hyper = Redline::start_with(&yaml, &[], &forced);
    let length = "content-length: 1000\r\n";
    let chunked = "transfer-encoding: chunked\r\n";
    // Fast path (a small Content-Length body); hyper as the fallback for a chunked body;
    // hyper as the only engine.
    for (rl, framing, first) in [
        (&fast, length, "ab"),
        (&fast, chunked, "3e8\r\nab"),
        (&hyper, length, "ab"),
    ] {
        let case = format!("{} {framing:?}", rl.proxy);
        let (took, answer) = trickle(rl, framing, first).await;
        assert!(
            took >= PAUSE - Duration::from_millis(50),
            "{case}: after {took:?}"
        );
        assert!(took < PAUSE + MARGIN, "{case}: after {took:?}");
        assert!(answer.starts_with("HTTP/1.1 408 "), "{case}: {answer}");
        assert!(
            answer.contains("\"error\":\"client_timeout\""),
            "{case}: {answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{case}: {answer}"
        );
    }
    for rl in [&fast, &hyper] {
        eventually(
            Duration::from_secs(10),
            "client_timeout recorded",
            || async {
                let m = rl.metrics().await;
                let line = m.lines().find(|l| {
                    l.starts_with("http_server_request_duration_seconds_count{")
                        && l.contains("error_type=\"client_timeout\"")
                        && l.contains("http_response_status_code=\"408\"")
                })?;
                Some(line.to_string())
            },
        )
        .await;
        let m = rl.metrics().await;
        for wrong in ["error_type=\"upstream_error\"", "error_type=\"timeout\""] {
            assert!(!m.contains(wrong), "{wrong} recorded:\n{m}");
        }
    }
}

/// Send a POST head and the first bytes of a 1,000-byte body, then nothing: how long
/// until Redline answered and closed, and what it said.
async fn trickle(rl: &Redline, framing: &str, first: &str) -> (Duration, String) {
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    let head = format!("POST /upload HTTP/1.1\r\nhost: shop\r\n{framing}\r\n{first}");
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PAUSE + MARGIN * 2, s.read_to_end(&mut answer)).await;
    let took = started.elapsed();
    assert!(
        read.is_ok(),
        "no answer and no close within {:?}",
        PAUSE + MARGIN * 2
    );
    (took, String::from_utf8_lossy(&answer).into_owned())
}

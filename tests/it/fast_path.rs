//! The HTTP/1.1 fast path on the wire: framing, interim responses, pipelining, bodies, hand-over to hyper, drain.
//!
//! A scripted upstream answers with exact bytes and a raw client reads exact bytes, so
//! these tests see what a real peer sees: no HTTP library smooths anything over.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// What the scripted upstream does for a path.
struct Answer {
    bytes: &'static [u8],
    close: bool,
    delay: Duration,
}

fn answer_for(path: &str) -> Answer {
    let (bytes, close): (&'static [u8], bool) = match path {
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream-id\r\nX-Kept: yes\r\n\r\n5\r\nhello\r\n0\r\nx-trailer: t\r\n\r\n",
            false,
        ),
        "/early-hints" => (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\nok",
            false,
        ),
        "/head" => (b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", false),
        "/no-content" => (b"HTTP/1.1 204 No Content\r\n\r\n", false),
        "/until-close" => (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until close",
            true,
        ),
        "/garbage" => (b"NOT HTTP AT ALL\r\n\r\n", true),
        "/two-lengths" => (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", true),
        "/cut" => (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", true),
        // Both say "no more requests here" but leave the socket open.
        "/http10" => (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        "/says-close" => (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false),
        _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain", false),
    };
    let delay = if path == "/slow" {
        Duration::from_millis(600)
    } else {
        Duration::ZERO
    };
    Answer {
        bytes,
        close,
        delay,
    }
}

/// Every request the upstream received, as received.
type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// An upstream answering every request with `answer_for(path)`, recording each request
/// (head and body) as received.
async fn scripted() -> (SocketAddr, Seen) {
    let (addr, seen, _) = scripted_counting().await;
    (addr, seen)
}

/// [`scripted`], also counting the connections it accepted.
async fn scripted_counting() -> (SocketAddr, Seen, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (record, count) = (seen.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(scripted_conn(stream, record.clone()));
        }
    });
    (addr, seen, accepted)
}

async fn scripted_conn(mut stream: TcpStream, seen: Seen) {
    let mut buf = Vec::new();
    loop {
        let Some(len) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let request: Vec<u8> = buf.drain(..len).collect();
        let head = String::from_utf8_lossy(&request).to_string();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        seen.lock().unwrap().push(request);
        let answer = answer_for(&path);
        tokio::time::sleep(answer.delay).await;
        if stream.write_all(answer.bytes).await.is_err() || answer.close {
            return;
        }
    }
}

/// Read one whole request (Content-Length or chunked body) into `buf`; its length.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            let whole = if head.contains("transfer-encoding: chunked") {
                find(&buf[end + 4..], b"0\r\n\r\n").map(|i| end + 4 + i + 5)
            } else {
                Some(end + 4 + length.unwrap_or(0)).filter(|&n| buf.len() >= n)
            };
            if let Some(n) = whole {
                return Some(n);
            }
        }
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response as the client received it: status, lowercase headers, raw body bytes.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Read one response from a raw client connection. The body ends per its framing: a
/// length, the last chunk (kept raw, with its trailers), or none for `no_body`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, no_body: bool) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.to_ascii_lowercase(), v.trim().to_string())
                })
                .collect();
            let raw = Raw {
                status,
                headers,
                body: Vec::new(),
            };
            let start = end + 4;
            let body_end = if no_body {
                Some(start)
            } else if raw.header("transfer-encoding") == Some("chunked") {
                find(&buf[start..], b"0\r\n")
                    .and_then(|i| find(&buf[start + i..], b"\r\n\r\n").map(|j| start + i + j + 4))
            } else {
                let n: usize = raw
                    .header("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                Some(start + n).filter(|&e| buf.len() >= e)
            };
            if let Some(e) = body_end {
                let body = buf[start..e].to_vec();
                buf.drain(..e);
                return Raw { body, ..raw };
            }
        }
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn request(stream: &mut TcpStream, buf: &mut Vec<u8>, method: &str, path: &str) -> Raw {
    let req = format!("{method} {path} HTTP/1.1\r\nhost: shop\r\nx-request-id: fp-{path}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    read_response(stream, buf, method == "HEAD" || path == "/no-content").await
}

/// Reads until the peer closes; fails if it does not within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "connection still open after {within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_interim_responses_and_hop_by_hop_headers_on_one_connection() {
    let (up, _) = scripted().await;
    let rl = Redline::start(&config_for(up, ""));
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    let mut buf = Vec::new();

    // A chunked body passes verbatim, trailers included; hop-by-hop headers (and the one
    // `Connection` names) do not; our request id replaces the upstream's; a date is added.
    let r = request(&mut s, &mut buf, "GET", "/chunked").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"5\r\nhello\r\n0\r\nx-trailer: t\r\n\r\n");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("x-kept"), Some("yes"));
    assert_eq!(r.header("x-request-id"), Some("fp-/chunked"));
    for gone in ["x-hop", "keep-alive", "connection", "content-length"] {
        assert_eq!(r.header(gone), None, "{gone} in {:?}", r.headers);
    }
    assert!(httpdate::parse_http_date(r.header("date").unwrap()).is_ok());

    // 1xx heads are dropped, as hyper's client does; the upstream's own date stays.
    let r = request(&mut s, &mut buf, "GET", "/early-hints").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(r.header("date"), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(r.headers.iter().filter(|(n, _)| n == "date").count(), 1);

    // HEAD keeps the length of the body it does not carry; 204 has none.
    let r = request(&mut s, &mut buf, "HEAD", "/head").await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("1234")));
    let r = request(&mut s, &mut buf, "GET", "/no-content").await;
    assert_eq!(r.status, 204);

    // A body that ends when the upstream closes reaches the client in chunks, so the
    // client connection survives it.
    let r = request(&mut s, &mut buf, "GET", "/until-close").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, b"14\r\nstreamed until close\r\n0\r\n\r\n");
    let r = request(&mut s, &mut buf, "GET", "/after").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"plain"[..]));
    assert!(
        buf.is_empty(),
        "stray bytes: {:?}",
        String::from_utf8_lossy(&buf)
    );

    let line = rl.access_line("fp-/chunked").await;
    assert_eq!(line["bytes_out"], 5, "chunk data only: {line}");
    let line = rl.access_line("fp-/until-close").await;
    assert_eq!(line["bytes_out"], 20, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
    let (up, seen) = scripted().await;
    let rl = Redline::start(&config_for(up, ""));
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    s.write_all(
        b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\nGET /p2 HTTP/1.1\r\nhost: a\r\n\r\nGET /p3 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    for i in 0..3 {
        let r = read_response(&mut s, &mut buf, false).await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"plain"[..]));
        let close = (i == 2).then_some("close");
        assert_eq!(r.header("connection"), close, "response {i}");
    }
    closed_within(&mut s, Duration::from_secs(3)).await;
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r)
                .split(' ')
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(paths, ["/slow", "/p2", "/p3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_bodies_go_fast_other_requests_hand_the_connection_to_hyper() {
    let (up, seen) = scripted().await;
    let rl = Redline::start(&config_for(up, ""));
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    let mut buf = Vec::new();
    // A small body with a length: read whole, sent with the head.
    s.write_all(b"POST /small HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n0123456789")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
    // A chunked upload: hyper's; the same connection then stays with hyper and still works.
    s.write_all(b"POST /chunked-up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
    let r = request(&mut s, &mut buf, "GET", "/after-hyper").await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"plain"[..]));
    // A body over the fast path's limit streams through hyper, whole.
    let mut big = TcpStream::connect(rl.proxy).await.unwrap();
    let body = vec![b'b'; 100_000];
    big.write_all(b"POST /big HTTP/1.1\r\nhost: a\r\ncontent-length: 100000\r\n\r\n")
        .await
        .unwrap();
    big.write_all(&body).await.unwrap();
    assert_eq!(
        read_response(&mut big, &mut Vec::new(), false).await.status,
        200
    );

    // A length that is not all digits is hyper's to refuse.
    let mut plus = TcpStream::connect(rl.proxy).await.unwrap();
    plus.write_all(b"POST /plus HTTP/1.1\r\nhost: a\r\ncontent-length: +5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut plus, &mut Vec::new(), false)
            .await
            .status,
        400
    );

    let seen = seen.lock().unwrap().clone();
    let small = String::from_utf8_lossy(&seen[0]).to_string();
    assert!(small.starts_with("POST /small HTTP/1.1\r\n"), "{small}");
    assert!(small.ends_with("\r\n\r\n0123456789"), "{small}");
    assert!(
        small
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 127.0.0.1"),
        "{small}"
    );
    assert!(String::from_utf8_lossy(&seen[1]).ends_with("3\r\nabc\r\n0\r\n\r\n"));
    assert!(seen[3].ends_with(&body), "the 100 kB body arrived whole");
    let line = rl.access_line(&access_id(&rl, "/small").await).await;
    assert_eq!(line["bytes_in"], 10, "{line}");
}

/// The request id Redline gave the request for `path` (the client sent none).
async fn access_id(rl: &Redline, path: &str) -> String {
    eventually(Duration::from_secs(5), "access line", || async {
        rl.stdout.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["path"] == path).then(|| v["request_id"].as_str().unwrap().to_string())
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_upstream_answers_are_502_and_cut_bodies_close_the_client() {
    let (up, _) = scripted().await;
    let rl = Redline::start(&config_for(up, ""));
    for path in ["/garbage", "/two-lengths"] {
        let mut s = TcpStream::connect(rl.proxy).await.unwrap();
        let r = request(&mut s, &mut Vec::new(), "GET", path).await;
        assert_eq!(r.status, 502, "{path}");
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(json["error"], "upstream_error", "{path}");
        assert_eq!(
            r.header("x-request-id"),
            Some(format!("fp-{path}").as_str())
        );
    }
    // A body cut short: the client gets what there was, then the connection closes
    // (it cannot be framed any more), and the request counts as an upstream error.
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    s.write_all(b"GET /cut HTTP/1.1\r\nhost: a\r\nx-request-id: cut-1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed")
        .unwrap();
    assert!(
        find(&got, b"only this").is_some(),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let line = rl.access_line("cut-1").await;
    assert_eq!(line["error_type"], "upstream_error", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_closes_idle_connections_and_answers_busy_ones_with_close() {
    let (up, _) = scripted().await;
    let mut rl = Redline::start(&config_for(up, "limits: { shutdown_grace: 10s }\n"));
    let mut idle = TcpStream::connect(rl.proxy).await.unwrap();
    let mut idle_buf = Vec::new();
    assert_eq!(
        request(&mut idle, &mut idle_buf, "GET", "/warm")
            .await
            .status,
        200
    );
    let mut busy = TcpStream::connect(rl.proxy).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "request in flight", || async {
        rl.metrics()
            .await
            .contains(
                r#"http_server_active_requests{flow="unmatched",http_request_method="GET"} 1"#,
            )
            .then_some(())
    })
    .await;
    rl.signal("TERM");
    closed_within(&mut idle, Duration::from_secs(2)).await;
    let r = read_response(&mut busy, &mut Vec::new(), false).await;
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    closed_within(&mut busy, Duration::from_secs(2)).await;
    let until = Instant::now() + Duration::from_secs(8);
    while rl.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < until, "redline did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_only_when_the_upstream_keeps_them_alive() {
    let (up, _, accepted) = scripted_counting().await;
    // One worker: every request here shares one idle stack.
    let rl = Redline::start_with(&config_for(up, ""), &[], &[("TOKIO_WORKER_THREADS", "1")]);
    // Redline's start-up reachability probe is one connection of its own, never reused.
    eventually(Duration::from_secs(5), "start-up probe", || async {
        (accepted.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let mut s = TcpStream::connect(rl.proxy).await.unwrap();
    let mut buf = Vec::new();
    let mut connections = Vec::new();
    for path in ["/a", "/b", "/http10", "/c", "/says-close", "/d", "/e"] {
        let r = request(&mut s, &mut buf, "GET", path).await;
        assert_eq!(r.status, 200, "{path}");
        connections.push(accepted.load(Ordering::SeqCst) - 1);
    }
    // /b reuses /a's connection; an HTTP/1.0 answer and a `Connection: close` answer end
    // theirs, so the request after each opens a new one, which is then reused again.
    assert_eq!(connections, [1, 1, 1, 2, 2, 3, 3]);
}

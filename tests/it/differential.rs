//! Differential test: the fast path and the hyper engine must forward (or refuse) every request alike.
//!
//! Two `redline` processes share one raw-socket upstream that records every request as it
//! arrives: one with the default engine (fast path for plain requests), one with
//! `REDLINE_HTTP1_ENGINE=hyper` (admission still runs, then hyper serves). Both run with
//! `TOKIO_WORKER_THREADS=1` and `OTEL_PROPAGATORS=none`. A proptest strategy generates
//! requests: valid ones (GET/HEAD/POST/PUT/DELETE/OPTIONS, random paths and queries, 0–8
//! random headers, bodies up to 2 KiB with `Content-Length`), and near-valid or hostile
//! ones (duplicate, listed, signed, hex, empty or huge `Content-Length`; `Transfer-Encoding`
//! variants, TE with CL; missing, duplicate or invalid Host; `Connection` naming framing
//! headers; space before colon, obs-fold, NUL and bare CR in values, bad method, other
//! versions, bare-LF line ends; absolute-form, authority-form, `*`, CONNECT; Expect,
//! Upgrade, a body over the fast path's 64 KiB). Each is the first request on a fresh
//! connection to each proxy.
//!
//! Property: both refuse with the same status, or the upstream receives from both the same
//! method, target, version, body (chunked bodies compared decoded) and header list (names,
//! values, order), and the client gets the same status, modulo these documented differences
//! (found by running it; nothing else differed in 5,000 cases):
//!
//! * `x-request-id`: Redline makes up a random one (32 hex digits) when the client sent none
//!   or one that is not sane; two such values compare equal.
//! * A client that stops inside its body (`Content-Length` larger than what it sends): the
//!   fast path forwards only whole bodies (at most 64 KiB, read before the head goes
//!   upstream), hyper streams the head first and the upstream sees a cut request. Neither
//!   client gets an answer (both time out), so the case counts as agreeing. The start of the
//!   test checks exactly this to prove `REDLINE_HTTP1_ENGINE=hyper` took effect.
//!
//! Before the generated cases, every run checks `REGRESSIONS` (fixed requests) and that a
//! head over the 64 KiB limit gets the same status however the reads split it.
//!
//! Runs: `PROPTEST_CASES` overrides the default of 64 cases (about 2 s plus the two
//! processes' start); `ORACLE_EXPLORE=1` lists every kind of divergence (shortest example)
//! instead of stopping at the first.
//!
//! # Findings (recorded large run)
//!
//! `ORACLE_EXPLORE=1 PROPTEST_CASES=5000 cargo test --test it differential -- --nocapture`,
//! debug build, on `oracle` merged with `main` 70e5de1, 2 shared cores: 5,000 generated
//! cases + 5 regressions in 71 s (73 s with the start): 2,760 both forward alike, 1,857
//! both 400, 238 both 501, 62 both 405, 45 both 431, 18 both stall; two divergences, and
//! the test fails until they are fixed:
//!
//! 1. Absolute form with an empty path and a query, `GET http://shop.example?q=1`: the
//!    hyper engine sends `GET /?q=1`, the fast path `GET ?q=1` (not a valid request
//!    target; 24 of 5,000 + the regression case). Cause: `wire::encode_request_head`
//!    writes `PathAndQuery::as_str()`, which is `?q=1` for that URI (`path()` is `/`).
//! 2. A head over the 64 KiB limit with more than 100 header lines gets 431 or 400
//!    depending on the read boundaries, on both engines (admission is shared): 400 when
//!    one read takes the buffer from under 65,536 bytes to past the 101st header line,
//!    since `fast::head::parse_request` takes httparse's TooManyHeaders error on a buffer
//!    already past `max_head` as malformed; 431 otherwise. Seen once at random in an
//!    earlier 5,000-case run (fast 400, hyper 431); reproduced every time by sending
//!    65,000 bytes, then the rest 100 ms later.
//!
//! Both fixed in commit "Fixes from the differential test" (origin form gets its `/`;
//! only the first `max_head` bytes are parsed and too many header lines is 431). After
//! the fix, same command with `PROPTEST_CASES=3000` on main: 3,005 cases in 40.8 s, no
//! divergence (1,673 both forward alike, 1,049 both 400, 155 both 501, 80 both 431,
//! 38 both 405, 10 both stall).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

mod requests;
use requests::{Shown, request};

/// A request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body came chunked (compared decoded).
    chunked: bool,
    /// The connection ended before the body did.
    cut: bool,
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    /// Requests whose first byte arrived and which are not recorded yet.
    busy: AtomicUsize,
}

/// The recording upstream: answers every request `200` with `ok` (no body to HEAD).
async fn upstream() -> (SocketAddr, Arc<Recorder>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Arc::new(Recorder::default());
    let shared = rec.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(upstream_conn(stream, shared.clone()));
        }
    });
    (addr, rec)
}

async fn upstream_conn(mut stream: TcpStream, rec: Arc<Recorder>) {
    let mut buf = Vec::new();
    // Counted in `rec.busy` while `buf` holds part of a request.
    let pending = |buf: &Vec<u8>, was: &mut bool| match (buf.is_empty(), *was) {
        (false, false) => {
            *was = true;
            rec.busy.fetch_add(1, Ordering::SeqCst);
        }
        (true, true) => {
            *was = false;
            rec.busy.fetch_sub(1, Ordering::SeqCst);
        }
        _ => {}
    };
    let mut was = false;
    loop {
        let (seen, used) = loop {
            if let Some(done) = parse_request(&buf, false) {
                break done;
            }
            let mut chunk = [0u8; 16384];
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                // Whatever came of a request is recorded, cut.
                if let Some((seen, _)) = parse_request(&buf, true) {
                    rec.seen.lock().unwrap().push(seen);
                }
                buf.clear();
                pending(&buf, &mut was);
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            pending(&buf, &mut was);
        };
        buf.drain(..used);
        let head = seen.method == "HEAD";
        rec.seen.lock().unwrap().push(seen);
        pending(&buf, &mut was);
        let answer: &[u8] = if head {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        if stream.write_all(answer).await.is_err() {
            buf.clear();
            pending(&buf, &mut was);
            return;
        }
    }
}

/// The request at the start of `buf` and its length, once whole (or, at `eof`, as far as
/// it came).
fn parse_request(buf: &[u8], eof: bool) -> Option<(Seen, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = req.parse(buf) else {
        return None;
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let value = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let chunked = value("transfer-encoding").is_some();
    let rest = &buf[len..];
    let (body, used, cut) = if chunked {
        match decode_chunked(rest) {
            Some((body, n)) => (body, len + n, false),
            None if eof => (Vec::new(), buf.len(), true),
            None => return None,
        }
    } else {
        let n: usize = value("content-length").map_or(0, |v| v.trim().parse().unwrap_or(0));
        if rest.len() < n && !eof {
            return None;
        }
        (
            rest[..n.min(rest.len())].to_vec(),
            len + n.min(rest.len()),
            rest.len() < n,
        )
    };
    let seen = Seen {
        method: req.method?.to_string(),
        target: req.path?.to_string(),
        version: req.version?,
        headers,
        body,
        chunked,
        cut,
    };
    Some((seen, used))
}

/// A whole chunked body at the start of `buf`: its data and length.
fn decode_chunked(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (mut at, mut data) = (0, Vec::new());
    loop {
        let line = buf[at..].windows(2).position(|w| w == b"\r\n")?;
        let text = std::str::from_utf8(&buf[at..at + line]).ok()?;
        let size = usize::from_str_radix(text.split(';').next()?.trim(), 16).ok()?;
        at += line + 2;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let line = buf[at..].windows(2).position(|w| w == b"\r\n")?;
                at += line + 2;
                if line == 0 {
                    return Some((data, at));
                }
            }
        }
        data.extend_from_slice(buf.get(at..at + size)?);
        at += size + 2;
        if buf.len() < at {
            return None;
        }
    }
}

/// What a client got back: a status, or how the connection ended without one.
/// `request` goes out in pieces cut at `cuts`, 100 ms apart.
async fn exchange(proxy: SocketAddr, request: &[u8], cuts: &[usize]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let mut at = 0;
    for &cut in cuts.iter().chain([request.len()].iter()) {
        if s.write_all(&request[at..cut]).await.is_err() {
            return "write failed".into();
        }
        at = cut;
        if cut < request.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        // The first final (non-1xx) status line.
        let text = String::from_utf8_lossy(&got).into_owned();
        let mut at = 0;
        while let Some(end) = text[at..].find("\r\n\r\n") {
            let status = text[at..].split(' ').nth(1).unwrap_or("?").to_string();
            if !status.starts_with('1') {
                return status;
            }
            at += end + 4;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(until.into(), s.read(&mut chunk)).await {
            Err(_) => return "timeout".into(),
            Ok(Ok(0)) | Ok(Err(_)) => return "closed".into(),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// `x-request-id` values Redline made up (32 hex digits the client did not send) compare equal.
fn normalise(seen: &mut Seen, sent: &[u8]) {
    for (name, value) in &mut seen.headers {
        let random = value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit());
        if name.eq_ignore_ascii_case("x-request-id")
            && random
            && !sent.windows(32).any(|w| w == value.as_bytes())
        {
            *value = "<random>".into();
        }
    }
}

/// What one proxy did with a request: the client's status and what the upstream got.
#[derive(Debug)]
struct Outcome {
    status: String,
    upstream: Vec<Seen>,
}

async fn outcome(proxy: SocketAddr, rec: &Recorder, request: &[u8]) -> Outcome {
    let status = exchange(proxy, request, &[]).await;
    // Let a request still on its way upstream arrive (or be cut) before looking.
    let until = Instant::now() + Duration::from_millis(500);
    while rec.busy.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut upstream = std::mem::take(&mut *rec.seen.lock().unwrap());
    for seen in &mut upstream {
        normalise(seen, request);
    }
    Outcome { status, upstream }
}

/// Where the two engines part: `None` if they agree.
fn divergence(fast: &Outcome, hyper: &Outcome) -> Option<String> {
    let (f, h) = (&fast.upstream, &hyper.upstream);
    // A client that stops inside its body: the fast path forwards only whole bodies, hyper
    // streams the head first. Nobody gets an answer either way.
    let stalled = |o: &Outcome| o.status == "timeout" && o.upstream.iter().all(|s| s.cut);
    if stalled(fast) && stalled(hyper) {
        return None;
    }
    if f.is_empty() && h.is_empty() {
        return (fast.status != hyper.status).then(|| "both refuse, other status".into());
    }
    if f.len() != h.len() {
        return Some(format!("forwarded {} vs {} requests", f.len(), h.len()));
    }
    let (f, h) = (&f[0], &h[0]);
    let fields = [
        ("method", f.method == h.method),
        ("target", f.target == h.target),
        ("version", f.version == h.version),
        ("body", f.body == h.body && f.cut == h.cut),
        ("framing", f.chunked == h.chunked),
        ("header names", names(f) == names(h)),
        ("header values", f.headers == h.headers),
        ("status", fast.status == hyper.status),
    ];
    fields
        .iter()
        .find(|(_, same)| !same)
        .map(|(what, _)| format!("forwarded, other {what}"))
}

fn names(seen: &Seen) -> Vec<&str> {
    seen.headers.iter().map(|(n, _)| n.as_str()).collect()
}

/// Whether `proxy` sends a request head upstream before its body arrived: hyper streams, the
/// fast path waits for the whole (small) body. Tells the two engines apart.
async fn streams_head_first(proxy: SocketAddr, rec: &Recorder) -> bool {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"POST /canary HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\n")
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(1);
    while rec.busy.load(Ordering::SeqCst) == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let early = rec.busy.load(Ordering::SeqCst) > 0;
    s.write_all(b"12345").await.unwrap();
    let mut got = [0u8; 12];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"HTTP/1.1 200");
    rec.seen.lock().unwrap().clear();
    early
}

/// Requests checked on every run, before the generated ones: divergences found earlier.
const REGRESSIONS: &[&[u8]] = &[
    // Absolute form with an empty path and a query: origin form is `/?q=1` (RFC 9112
    // §3.2.1); the fast path sent `GET ?q=1` (`PathAndQuery::as_str` in
    // `wire::encode_request_head`).
    b"GET http://shop.example?q=1 HTTP/1.1\r\nhost: shop.example\r\n\r\n",
    b"GET http://shop.example HTTP/1.1\r\nhost: shop.example\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nhost: shop.example\r\n\r\n",
    b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nhost: a\r\nconnection: content-length, host\r\ncontent-length: 0\r\n\r\n",
];

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fast_path_and_hyper_engine_forward_alike() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (up, rec) = rt.block_on(upstream());
    let env = [("TOKIO_WORKER_THREADS", "1"), ("OTEL_PROPAGATORS", "none")];
    let fast = Redline::start_with(&config_for(up, ""), &[], &env);
    let hyper_env = [env[0], env[1], ("REDLINE_HTTP1_ENGINE", "hyper")];
    let hyper = Redline::start_with(&config_for(up, ""), &[], &hyper_env);
    let (fast_streams, hyper_streams) = rt.block_on(async {
        let fast = streams_head_first(fast.proxy, &rec).await;
        (fast, streams_head_first(hyper.proxy, &rec).await)
    });
    assert!(
        !fast_streams && hyper_streams,
        "REDLINE_HTTP1_ENGINE=hyper did not take effect"
    );
    let explore = std::env::var("ORACLE_EXPLORE").is_ok_and(|v| v == "1");
    let found = Mutex::new(BTreeMap::<String, (u32, String)>::new());
    let agreed = Mutex::new(BTreeMap::<String, (u32, String)>::new());
    let check = |request: &[u8]| {
        let (f, h) = rt.block_on(async {
            let f = outcome(fast.proxy, &rec, request).await;
            (f, outcome(hyper.proxy, &rec, request).await)
        });
        let shown = Shown(request.to_vec());
        let Some(kind) = divergence(&f, &h) else {
            let key = match f.upstream.is_empty() {
                true => format!("both {}", f.status),
                false => "both forward".into(),
            };
            let mut agreed = agreed.lock().unwrap();
            let entry = agreed
                .entry(key)
                .or_insert_with(|| (0, format!("{shown:?}")));
            entry.0 += 1;
            return Ok(());
        };
        let example = format!("{shown:?}\n    fast: {f:?}\n    hyper: {h:?}");
        if !explore {
            return Err(TestCaseError::fail(format!("{kind}: {example}")));
        }
        let mut found = found.lock().unwrap();
        let entry = found.entry(kind).or_insert((0, example.clone()));
        entry.0 += 1;
        if example.len() < entry.1.len() {
            entry.1 = example;
        }
        Ok(())
    };
    // A head over the 64 KiB limit that also has over 100 header lines: the verdict must
    // not depend on where the reads split it (it was 400 when a read ended between
    // 64,000 and 65,536 bytes, else 431).
    let huge = [
        b"GET / HTTP/1.1\r\nhost: a\r\nx-huge: ".as_slice(),
        &[b'h'; 70_000],
        b"\r\n",
        &b"x-many: v\r\n".repeat(120),
        b"\r\n",
    ]
    .concat();
    for proxy in [fast.proxy, hyper.proxy] {
        let whole = rt.block_on(exchange(proxy, &huge, &[]));
        let split = rt.block_on(exchange(proxy, &huge, &[65_000]));
        let kind = "head over the limit: other status when split".to_string();
        if (whole.as_str(), split.as_str()) != ("431", "431") && explore {
            found
                .lock()
                .unwrap()
                .insert(kind, (1, format!("whole {whole}, split {split}")));
        } else {
            assert_eq!((whole.as_str(), split.as_str()), ("431", "431"), "{kind}");
        }
    }
    let started = Instant::now();
    for request in REGRESSIONS {
        if let Err(e) = check(request) {
            panic!("regression case: {e}");
        }
    }
    let config = Config {
        cases: cases(64),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&request(), |Shown(request)| check(&request));
    let agreed = agreed.into_inner().unwrap();
    let total: u32 = agreed.values().map(|v| v.0).sum();
    eprintln!("differential: {total} cases in {:.1?}", started.elapsed());
    for (kind, (n, example)) in &agreed {
        let example: String = example.chars().take(160).collect();
        eprintln!("  {kind} x{n}, e.g. {example}");
    }
    for (kind, (n, example)) in found.lock().unwrap().iter() {
        eprintln!("  DIVERGENCE x{n}: {kind}\n    {example}");
    }
    result.unwrap();
    assert!(found.lock().unwrap().is_empty(), "divergences");
}

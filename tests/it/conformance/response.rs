//! Response-side cases: a hostile upstream's framing, and whether Redline passes it on
//! safely, fails it, or cuts it — and whether it reuses the upstream connection after.
//!
//! Each case is a GET (or HEAD) of `/r/<name>`; the upstream answers with the case's
//! bytes and keeps the connection open unless the case says otherwise, so reuse is
//! Redline's decision alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use super::harness::{Client, Reply, Upstream, dechunk, show};
use super::runner::{
    AccessLog, check_error_type, check_marker, check_marker_upstream, check_reject,
};

pub enum RWant {
    /// This status and raw body, with these headers (`Some(v)`: exactly one, valued `v`;
    /// `None`: absent); no interim head passed on.
    Pass(u16, Vec<u8>, Vec<(&'static str, Option<&'static str>)>),
    /// 502 `upstream_error` from Redline.
    BadGateway,
    /// The head with this status arrives, then the connection closes before the body ends.
    Cut(u16),
    /// The connection closes with no byte of a response (recorded as `upstream_error`).
    Closed,
}

pub struct RCase {
    pub name: &'static str,
    pub head_request: bool,
    pub reply: Reply,
    pub want: RWant,
    /// Whether the next request goes on the same upstream connection (`None`: either).
    pub reuse: Option<bool>,
    /// What the hyper engine does instead, where that differs and is safe.
    pub on_hyper: Option<(RWant, Option<bool>)>,
}

fn reply(bytes: &[u8]) -> Reply {
    Reply {
        bytes: bytes.to_vec(),
        close: false,
        then: None,
    }
}

/// Passed on: the client gets `status` and `body` (raw), the headers checked as listed.
fn ok(
    name: &'static str,
    bytes: &[u8],
    (status, body): (u16, &[u8]),
    headers: &[(&'static str, Option<&'static str>)],
    reuse: impl Into<Option<bool>>,
) -> RCase {
    RCase {
        name,
        head_request: false,
        reply: reply(bytes),
        want: RWant::Pass(status, body.to_vec(), headers.to_vec()),
        reuse: reuse.into(),
        on_hyper: None,
    }
}

/// Refused as a broken response: 502, the upstream connection dropped.
fn bad(name: &'static str, bytes: &[u8]) -> RCase {
    RCase {
        name,
        head_request: false,
        reply: reply(bytes),
        want: RWant::BadGateway,
        reuse: Some(false),
        on_hyper: None,
    }
}

/// A 200 head goes out first; once the client has it, `body` follows and must cut the
/// client connection (no terminating chunk) and never be reused.
fn cut(name: &'static str, head: &[u8], body: &[u8]) -> RCase {
    let mut r = reply(head);
    r.then = Some((Arc::new(Notify::new()), body.to_vec()));
    RCase {
        name,
        head_request: false,
        reply: r,
        want: RWant::Cut(200),
        reuse: Some(false),
        on_hyper: None,
    }
}

/// hyper's client decodes what the fast path refuses to pass verbatim (it ignores what an
/// extension holds, up to 16 KiB of them): the client gets the data re-chunked, nothing of
/// the hostile line, so this is safe.
fn hyper_decodes(mut c: RCase) -> RCase {
    let want = RWant::Pass(200, ABC_CHUNKED.1.to_vec(), NO_CL_CHUNKED.to_vec());
    c.on_hyper = Some((want, None));
    c
}

fn closing(mut c: RCase) -> RCase {
    c.reply.close = true;
    c
}

fn head_request(mut c: RCase) -> RCase {
    c.head_request = true;
    c
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
const ABC: (u16, &[u8]) = (200, b"abc");
const ABC_CHUNKED: (u16, &[u8]) = (200, b"3\r\nabc\r\n0\r\n\r\n");
const NO_CL_CHUNKED: &[(&str, Option<&str>)] = &[
    ("content-length", None),
    ("transfer-encoding", Some("chunked")),
];
const CL3: &[(&str, Option<&str>)] = &[("content-length", Some("3")), ("transfer-encoding", None)];

pub fn cases() -> Vec<RCase> {
    let chunked = |body: &[u8]| [CHUNKED, body].concat();
    let long_ext = |n| [&b"3;"[..], &vec![b'x'; n], b"\r\nabc\r\n0\r\n\r\n"].concat();
    let mut c = vec![
        ok("plain", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", ABC, CL3, true),
        ok("chunked", &chunked(b"3\r\nabc\r\n0\r\n\r\n"), ABC_CHUNKED, NO_CL_CHUNKED, true),
        // Both framings: chunked wins, no length reaches the client, the connection goes.
        // nginx: same answer, but reuses the upstream connection
        ok(
            "cl-te",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            ABC_CHUNKED,
            NO_CL_CHUNKED,
            false,
        ),
        ok(
            "te-cl",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            ABC_CHUNKED,
            NO_CL_CHUNKED,
            false,
        ),
        // Repeated identical lengths collapse into one.
        ok(
            "cl-twice-same",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            ABC,
            CL3,
            true,
        ),
        // nginx: takes "3, 3" as no length (reads until close, or times out)
        ok("cl-list-same", b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", ABC, CL3, true),
        // A body longer than its length: the rest is never read as the next response.
        ok("cl-body-longer", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil", ABC, CL3, false),
        // No length: the body ends at the close, re-chunked so the client connection stays.
        closing(ok("until-close", b"HTTP/1.1 200 OK\r\n\r\nabc", ABC_CHUNKED, NO_CL_CHUNKED, false)),
        closing(ok("until-close-http10", b"HTTP/1.0 200 OK\r\n\r\nabc", ABC_CHUNKED, NO_CL_CHUNKED, false)),
        // Interim heads are dropped, the final answer passes.
        ok("interim-100", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", ABC, CL3, true),
        ok("interim-102", b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", ABC, CL3, true),
        // nginx: takes the 103 as the final response
        ok(
            "interim-103",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            ABC,
            CL3,
            true,
        ),
        // A 1xx has no body whatever it says: its length must not swallow the answer.
        ok(
            "interim-100-with-length",
            b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            ABC,
            CL3,
            true,
        ),
        // The app had the request: it is not sent again (an idempotent one could be, had
        // no byte come back). Earlier cases leave the idle connection this one reuses.
        closing(bad("interim-then-close", b"HTTP/1.1 103 Early Hints\r\n\r\n")),
        ok(
            "interim-two-103",
            b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            ABC,
            CL3,
            true,
        ),
        // nginx: passes the 101 on and tunnels
        bad("switching-without-upgrade", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        // Bodiless statuses: whatever follows the head is not passed and the connection goes.
        ok("no-content", b"HTTP/1.1 204 No Content\r\n\r\n", (204, b""), &[], true),
        ok("no-content-with-cl-body", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", (204, b""), &[], false),
        ok("no-content-with-body", b"HTTP/1.1 204 No Content\r\n\r\nhello", (204, b""), &[], false),
        ok(
            "no-content-chunked-body",
            b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            (204, b""),
            &[],
            false,
        ),
        ok("not-modified-with-body", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", (304, b""), &[], false),
        // A 304's length is the representation's (RFC 9110 §8.6), not a body: reused.
        // (hyper's server drops the length of a 304; the fast path keeps it.)
        ok("not-modified-cl-no-body", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", (304, b""), &[], true),
        head_request(ok(
            "head-length",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
            (200, b""),
            &[("content-length", Some("1234"))],
            true,
        )),
        head_request(ok(
            "head-with-body",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            (200, b""),
            &[("content-length", Some("5"))],
            false,
        )),
        // Chunked that is valid at its limits passes verbatim.
        ok("chunk-ext", &chunked(b"3;name=value;flag\r\nabc\r\n0\r\n\r\n"), (200, b"3;name=value;flag\r\nabc\r\n0\r\n\r\n"), NO_CL_CHUNKED, true),
        ok("chunk-ext-4000", &chunked(&long_ext(4000)), (200, &long_ext(4000)), NO_CL_CHUNKED, true),
        ok("chunk-size-16-hex", &chunked(b"0000000000000003\r\nabc\r\n0\r\n\r\n"), (200, b"0000000000000003\r\nabc\r\n0\r\n\r\n"), NO_CL_CHUNKED, true),
        ok("chunk-trailer", &chunked(b"3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"), (200, b"3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"), NO_CL_CHUNKED, None),
        ok(
            "te-gzip-chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            ABC_CHUNKED,
            &[("content-length", None)],
            true,
        ),
        // A body cut short by the upstream: the client connection is closed.
        closing(RCase {
            want: RWant::Cut(200),
            ..bad("short-length", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        }),
        closing(RCase {
            want: RWant::Cut(200),
            ..bad("short-chunked", &chunked(b"5\r\nhel"))
        }),
    ];
    // Lengths that are not one valid number, and HTTP/1.0 with a transfer coding: 502.
    for (name, head) in [
        // nginx: the last value wins (200)
        (
            "cl-twice-different",
            &b"Content-Length: 3\r\nContent-Length: 4"[..],
        ),
        ("cl-list-different", b"Content-Length: 3, 4"),
        // nginx: an invalid length is taken as no length (reads until close)
        ("cl-plus", b"Content-Length: +3"),
        ("cl-minus", b"Content-Length: -1"),
        ("cl-hex", b"Content-Length: 0x3"),
        ("cl-empty", b"Content-Length: "),
        ("cl-inner-space", b"Content-Length: 3 3"),
        ("cl-overflow", b"Content-Length: 99999999999999999999"),
    ] {
        c.push(bad(
            name,
            &[b"HTTP/1.1 200 OK\r\n", head, b"\r\n\r\nabc"].concat(),
        ));
    }
    // Header lines that are not HTTP: a proxy must not pass them on (RFC 9112 §5.1, §5.2).
    for (name, head) in [
        ("header-space-before-colon", &b"Content-Length : 3"[..]),
        ("header-obs-fold", b"Content-Length: 3\r\nX-A: b\r\n c"),
        ("header-nul", b"Content-Length: 3\r\nX-A: b\x00c"),
        ("header-bare-cr", b"Content-Length: 3\r\nX-A: b\rc"),
    ] {
        c.push(bad(
            name,
            &[b"HTTP/1.1 200 OK\r\n", head, b"\r\n\r\nabc"].concat(),
        ));
    }
    // Status lines and names that are not HTTP.
    for (name, head) in [
        (
            "status-zero",
            &b"HTTP/1.1 000 Zero\r\nContent-Length: 3"[..],
        ),
        (
            "status-reason-control",
            b"HTTP/1.1 200 O\x01K\r\nContent-Length: 3",
        ),
        (
            "header-name-not-token",
            b"HTTP/1.1 200 OK\r\nX@Y: 1\r\nContent-Length: 3",
        ),
    ] {
        c.push(bad(name, &[head, b"\r\n\r\nabc"].concat()));
    }
    // nginx: 200, de-chunked and re-chunked; the connection is not reused
    c.push(bad(
        "http10-te",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ));
    c.push(bad(
        "http10-te-cl",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ));
    // Chunked that breaks after the head went out.
    for (name, body) in [
        // nginx: closes the client connection without any status (it buffers first)
        ("chunk-ext-bare-lf", &b"3;a=b\nabc\r\n0\r\n\r\n"[..]),
        ("chunk-ext-bare-cr", b"3;a\rb\r\nabc\r\n0\r\n\r\n"),
        ("chunk-ext-nul", b"3;a\x00b\r\nabc\r\n0\r\n\r\n"),
        ("chunk-ext-overlong", &long_ext(5000)),
        ("chunk-size-minus-one", b"-1\r\nabc\r\n0\r\n\r\n"),
        ("chunk-size-0x", b"0x3\r\nabc\r\n0\r\n\r\n"),
        ("chunk-size-leading-space", b" 3\r\nabc\r\n0\r\n\r\n"),
        (
            "chunk-size-overflow",
            b"10000000000000003\r\nabc\r\n0\r\n\r\n",
        ),
        ("chunk-data-no-crlf", b"3\r\nabcX\r\n0\r\n\r\n"),
        ("chunk-data-bare-lf", b"3\r\nabc\n0\r\n\r\n"),
        // nginx: accepted (trailers dropped), the connection is reused
        ("chunk-trailer-blank-line", b"3\r\nabc\r\n0\r\n \r\n\r\n"),
        ("chunk-trailer-no-colon", b"3\r\nabc\r\n0\r\nbogus\r\n\r\n"),
    ] {
        let case = cut(name, CHUNKED, body);
        let lenient = matches!(
            name,
            "chunk-ext-nul" | "chunk-ext-overlong" | "chunk-size-17-hex"
        );
        c.push(if lenient { hyper_decodes(case) } else { case });
    }
    // Chunked that breaks in the head's own segment: nothing went out yet, so the fast path
    // can still answer 502. hyper has queued the head by then: it closes without a byte
    // (as nginx, which buffers, does), or after the chunks it decoded before the break.
    for (name, body, on_hyper) in [
        (
            "first-chunk-ext-bare-lf",
            &b"3;a=b\nabc\r\n0\r\n\r\n"[..],
            RWant::Closed,
        ),
        (
            "first-chunk-size-0x",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            RWant::Closed,
        ),
        (
            "first-chunk-data-no-crlf",
            b"3\r\nabcX\r\n0\r\n\r\n",
            RWant::Cut(200),
        ),
    ] {
        c.push(RCase {
            on_hyper: Some((on_hyper, Some(false))),
            ..bad(name, &chunked(body))
        });
    }
    c
}

/// The upstream's script for these cases.
pub fn script(cases: &[RCase]) -> HashMap<String, Reply> {
    cases
        .iter()
        .map(|c| (format!("/r/{}", c.name), c.reply.clone()))
        .collect()
}

/// Run one response-side case; its problems.
pub async fn run(
    proxy: SocketAddr,
    log: &AccessLog,
    up: &Upstream,
    case: &RCase,
    hyper: bool,
) -> Vec<String> {
    let (want, reuse) = match &case.on_hyper {
        Some((want, reuse)) if hyper => (want, *reuse),
        _ => (&case.want, case.reuse),
    };
    let mark = up.mark();
    let mut problems = Vec::new();
    let mut client = Client::connect(proxy).await;
    let method = if case.head_request { "HEAD" } else { "GET" };
    let name = case.name;
    let req = format!("{method} /r/{name} HTTP/1.1\r\nhost: r\r\nx-request-id: {name}\r\n\r\n");
    let mut open = false;
    if let Err(e) = client.send(req.as_bytes()).await {
        problems.push(e);
    } else {
        if let (RWant::Pass(..), Some((gate, _))) = (want, &case.reply.then) {
            // Held-back bytes the engine passes whole: let them go at once.
            gate.notify_one();
        }
        match want {
            RWant::Pass(status, body, headers) => match client.response(case.head_request).await {
                Ok(r) => {
                    open = r.header("connection") != Some("close");
                    // Chunked bodies compare as their data: an engine may frame chunks anew.
                    let same = r.body == *body
                        || dechunk(&r.body).is_some_and(|b| Some(b) == dechunk(body));
                    if (r.status, same, r.complete) != (*status, true, true) {
                        problems.push(format!("want {status} {}, got {}", show(body), r.summary()));
                    }
                    if !r.interim.is_empty() {
                        problems.push(format!("interim heads passed on: {:?}", r.interim));
                    }
                    for (h, v) in headers {
                        let got: Vec<&str> = r
                            .headers
                            .iter()
                            .filter(|(n, _)| n == h)
                            .map(|(_, v)| v.as_str())
                            .collect();
                        if got != v.iter().copied().collect::<Vec<_>>() {
                            problems.push(format!("header {h}: want {v:?}, got {got:?}"));
                        }
                    }
                }
                Err(e) => problems.push(format!("want {status}: {e}")),
            },
            RWant::BadGateway => match client.response(false).await {
                Ok(r) => {
                    open = r.header("connection") != Some("close");
                    let failed = check_reject(&r, 502, "upstream_error");
                    if failed.is_empty() {
                        problems.extend(check_error_type(log, name, 502, "upstream_error").await);
                    }
                    problems.extend(failed);
                }
                Err(e) => problems.push(format!("want 502: {e}")),
            },
            RWant::Cut(status) => match client.response_head().await {
                Ok(mut r) => {
                    if let Some((gate, _)) = &case.reply.then {
                        gate.notify_one();
                    }
                    if r.status != *status {
                        problems.push(format!("want a {status} head, got {}", r.status));
                    }
                    match client.response_body(&mut r, false).await {
                        Ok(()) if r.complete => {
                            problems.push(format!(
                                "want a cut body, got a whole one: {}",
                                show(&r.body)
                            ));
                        }
                        Ok(()) => {
                            problems.extend(
                                check_error_type(log, name, *status, "upstream_error").await,
                            );
                        }
                        Err(e) => problems.push(format!("want the connection closed: {e}")),
                    }
                }
                Err(e) => problems.push(format!("want a {status} head then a close: {e}")),
            },
            RWant::Closed => match client.closes().await {
                Ok(()) => problems.extend(check_error_type(log, name, 200, "upstream_error").await),
                Err(e) => problems.push(format!("want a close without a response: {e}")),
            },
        }
    }
    problems.extend(check_marker(proxy, open.then_some(client), name).await);
    problems.extend(check_marker_upstream(up, mark, name));
    let seen = up.requests_since(mark);
    let on = |target: String| -> Vec<usize> {
        seen.iter()
            .filter(|s| s.target == target)
            .map(|s| s.conn)
            .collect()
    };
    match (
        on(format!("/r/{name}")).as_slice(),
        on(format!("/next-{name}")).as_slice(),
    ) {
        ([first], [next]) => {
            if reuse.is_some_and(|r| (first == next) != r) {
                let how = if first == next {
                    "reused"
                } else {
                    "not reused"
                };
                problems.push(format!(
                    "upstream connection: {how} (connections {first} then {next})"
                ));
            }
        }
        (cases, nexts) => problems.push(format!(
            "upstream: want one request and one next request, got {} and {}",
            cases.len(),
            nexts.len()
        )),
    }
    problems
}

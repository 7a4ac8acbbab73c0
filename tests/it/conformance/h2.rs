//! The HTTP/2 → HTTP/1.1 downgrade: hostile h2c requests, written as raw frames (a real
//! client would not send them), against the raw-socket upstream. Each case checks what
//! the client gets (a status, or the stream reset), that the upstream never receives a
//! request the client did not send (nothing smuggled, exact bytes where it is forwarded),
//! and that the next request on the same h2 connection gets its own answer.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::harness::{Upstream, WAIT, show};

const HEADERS: u8 = 1;
const DATA: u8 = 0;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// How the stream ended for the client.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// A response: status and body.
    Answer(u16, Vec<u8>),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code (the whole connection).
    GoAway(u32),
}

/// A raw h2c client: frames in, frames out, HPACK literals without indexing or Huffman.
struct H2 {
    stream: TcpStream,
    buf: Vec<u8>,
    next_id: u32,
}

fn frame(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// One header as an HPACK "literal without indexing, new name" (RFC 7541 §6.2.2).
fn literal(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    assert!(name.len() < 127 && value.len() < 127);
    block.push(0);
    block.push(name.len() as u8);
    block.extend_from_slice(name);
    block.push(value.len() as u8);
    block.extend_from_slice(value);
}

impl H2 {
    async fn connect(addr: std::net::SocketAddr) -> H2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.unwrap();
        H2 {
            stream,
            buf: Vec::new(),
            next_id: 1,
        }
    }

    /// Send a request: header block (pseudo-headers first, as given), DATA frames, and
    /// optionally a trailer block; the stream id.
    async fn send(
        &mut self,
        headers: &[(&[u8], &[u8])],
        data: &[&[u8]],
        trailers: &[(&[u8], &[u8])],
    ) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let mut block = Vec::new();
        for (n, v) in headers {
            literal(&mut block, n, v);
        }
        let bodyless = data.is_empty() && trailers.is_empty();
        let flags = END_HEADERS | if bodyless { END_STREAM } else { 0 };
        let mut out = frame(HEADERS, flags, id, &block);
        for (i, d) in data.iter().enumerate() {
            let last = i + 1 == data.len() && trailers.is_empty();
            out.extend(frame(DATA, if last { END_STREAM } else { 0 }, id, d));
        }
        if !trailers.is_empty() {
            let mut block = Vec::new();
            for (n, v) in trailers {
                literal(&mut block, n, v);
            }
            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        }
        self.stream.write_all(&out).await.unwrap();
        id
    }

    /// Read frames until stream `id` ends; `Err` on a timeout or a close.
    async fn outcome(&mut self, id: u32) -> Result<Outcome, String> {
        let mut all = self.outcomes(&[id]).await?;
        Ok(all.remove(&id).unwrap())
    }

    /// Read frames until every stream in `ids` ended (or the connection went away).
    async fn outcomes(&mut self, ids: &[u32]) -> Result<HashMap<u32, Outcome>, String> {
        let until = Instant::now() + WAIT;
        let mut status: HashMap<u32, u16> = HashMap::new();
        let mut body: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut done = HashMap::new();
        loop {
            while self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() < 9 + len {
                    break;
                }
                let f: Vec<u8> = self.buf.drain(..9 + len).collect();
                let (kind, flags) = (f[3], f[4]);
                let sid = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
                let payload = &f[9..];
                let code = |p: &[u8], at: usize| {
                    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
                };
                let mine = ids.contains(&sid);
                match kind {
                    SETTINGS if flags & 1 == 0 => {
                        self.stream
                            .write_all(&frame(SETTINGS, 1, 0, &[]))
                            .await
                            .unwrap();
                    }
                    PING if flags & 1 == 0 => {
                        self.stream
                            .write_all(&frame(PING, 1, 0, payload))
                            .await
                            .unwrap();
                    }
                    GOAWAY => {
                        for id in ids {
                            done.entry(*id).or_insert(Outcome::GoAway(code(payload, 4)));
                        }
                    }
                    RST_STREAM if mine => {
                        done.entry(sid).or_insert(Outcome::Reset(code(payload, 0)));
                    }
                    HEADERS if mine => {
                        if let Entry::Vacant(slot) = status.entry(sid) {
                            slot.insert(status_of(payload)?);
                        }
                        if flags & END_STREAM != 0 {
                            let b = body.remove(&sid).unwrap_or_default();
                            done.insert(sid, Outcome::Answer(status[&sid], b));
                        }
                    }
                    DATA if mine => {
                        body.entry(sid).or_default().extend_from_slice(payload);
                        if flags & END_STREAM != 0 {
                            let b = body.remove(&sid).unwrap_or_default();
                            let s = status.get(&sid).copied().unwrap_or(0);
                            done.insert(sid, Outcome::Answer(s, b));
                        }
                    }
                    _ => {}
                }
                if done.len() == ids.len() {
                    return Ok(done);
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(until.into(), self.stream.read(&mut chunk)).await {
                Err(_) => return Err(format!("streams {ids:?}: timed out, have {done:?}")),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Err(format!("streams {ids:?}: connection closed, have {done:?}"));
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// The `:status` a response header block starts with: hyper's h2 server sends the common
/// ones as indexed static-table entries (RFC 7541 Appendix A).
fn status_of(block: &[u8]) -> Result<u16, String> {
    match block.first() {
        Some(0x88) => Ok(200),
        Some(0x89) => Ok(204),
        Some(0x8b) => Ok(304),
        Some(0x8c) => Ok(400),
        Some(0x8d) => Ok(404),
        Some(0x8e) => Ok(500),
        _ => Err(format!("status not decoded: {}", show(block))),
    }
}

/// What the client must get.
enum Want {
    Status(u16),
    /// The stream (or the connection) is reset: a malformed request (RFC 9113 §8.1.1).
    Reset,
}

/// What the upstream must receive.
enum Up {
    Nothing,
    /// Perhaps part of the request, never a whole one (its body broke midway).
    NoRequest,
    /// Exactly these bytes; `$P` is the case's path, `$N` its name.
    Exact(&'static [u8]),
}

struct Case {
    name: &'static str,
    /// Header fields after `:method GET`… unless the case gives its own pseudo-headers.
    headers: Vec<(&'static [u8], &'static [u8])>,
    data: Vec<&'static [u8]>,
    trailers: Vec<(&'static [u8], &'static [u8])>,
    want: Want,
    up: Up,
}

const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n";

/// `:method`, `:scheme`, `:authority`, `:path` for a GET of the case's path.
fn get(extra: &[(&'static [u8], &'static [u8])]) -> Vec<(&'static [u8], &'static [u8])> {
    let mut h: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"a"),
        (b":path", b"$P"),
    ];
    h.extend_from_slice(extra);
    h
}

fn post(extra: &[(&'static [u8], &'static [u8])]) -> Vec<(&'static [u8], &'static [u8])> {
    let mut h = get(extra);
    h[0].1 = b"POST";
    h
}

fn case(
    name: &'static str,
    headers: Vec<(&'static [u8], &'static [u8])>,
    data: &[&'static [u8]],
    want: Want,
    up: Up,
) -> Case {
    Case {
        name,
        headers,
        data: data.to_vec(),
        trailers: Vec::new(),
        want,
        up,
    }
}

fn cases() -> Vec<Case> {
    use Up::*;
    use Want::*;
    let malformed = |name, headers| case(name, headers, &[], Reset, Nothing);
    vec![
        // An absolute-form `:path` went up as `GET http://evil/admin HTTP/1.1`: flows and
        // access rules matched the string, the upstream (RFC 9112 §3.2.2) the URL's path.
        case(
            "path-absolute",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", b"http://evil/admin"),
            ],
            &[],
            Reset,
            Nothing,
        ),
        case(
            "path-absolute-no-authority",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":path", b"http://evil/admin"),
                (b"host", b"a"),
            ],
            &[],
            Reset,
            Nothing,
        ),
        case(
            "path-without-slash",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", b"admin"),
            ],
            &[],
            Reset,
            Nothing,
        ),
        // `:path: *` comes with a scheme and an authority: OPTIONS only, as in HTTP/1.1
        // (it went up as `GET * HTTP/1.1`).
        case(
            "path-asterisk-get",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", b"*"),
            ],
            &[],
            Status(400),
            Nothing,
        ),
        case(
            "options-asterisk",
            vec![
                (b":method", b"OPTIONS"),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", b"*"),
            ],
            &[],
            Status(200),
            Exact(b"OPTIONS * HTTP/1.1\r\nx-request-id: $N\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\nhost: a\r\n\r\n"),
        ),
        // Without `:authority`, `host` names the target and is judged as in HTTP/1.1.
        // These went up with the Host as sent (`a b` in Host and X-Forwarded-Host too), the
        // first of two, or one Redline made up from the upstream's address.
        case(
            "no-authority-no-host",
            vec![(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"$P")],
            &[],
            Status(400),
            Nothing,
        ),
        case(
            "no-authority-bad-host",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":path", b"$P"),
                (b"host", b"a b"),
            ],
            &[],
            Status(400),
            Nothing,
        ),
        case(
            "no-authority-two-hosts",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":path", b"$P"),
                (b"host", b"a"),
                (b"host", b"b"),
            ],
            &[],
            Status(400),
            Nothing,
        ),
        case(
            "no-authority-host",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":path", b"$P"),
                (b"host", b"a"),
            ],
            &[],
            Status(200),
            Exact(b"GET $P HTTP/1.1\r\nhost: a\r\nx-request-id: $N\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n\r\n"),
        ),
        // Framing the h2 layer owns: the DATA frames must match content-length.
        case(
            "cl-shorter-than-data",
            post(&[(b"content-length", b"5")]),
            &[b"hello", SMUGGLED],
            Reset,
            NoRequest,
        ),
        case(
            "cl-longer-than-data",
            post(&[(b"content-length", b"40")]),
            &[b"hello"],
            Reset,
            NoRequest,
        ),
        case(
            "cl-on-end-stream-headers",
            get(&[(b"content-length", b"36")]),
            &[],
            Reset,
            Nothing,
        ),
        // Connection-specific fields make an h2 request malformed (RFC 9113 §8.2.2).
        case(
            "te-chunked-smuggle",
            post(&[(b"transfer-encoding", b"chunked")]),
            &[b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n"],
            Reset,
            Nothing,
        ),
        malformed("te-gzip", get(&[(b"te", b"gzip")])),
        malformed("connection", get(&[(b"connection", b"keep-alive")])),
        malformed("keep-alive", get(&[(b"keep-alive", b"timeout=5")])),
        malformed("upgrade", get(&[(b"upgrade", b"websocket")])),
        malformed("proxy-connection", get(&[(b"proxy-connection", b"close")])),
        // Bytes that would split an HTTP/1 line.
        malformed("crlf-in-value", get(&[(b"x-a", b"1\r\nx-injected: 1")])),
        malformed("lf-in-value", get(&[(b"x-a", b"1\nx-injected: 1")])),
        malformed("nul-in-value", get(&[(b"x-a", b"1\0")])),
        malformed("upper-name", get(&[(b"X-Upper", b"1")])),
        malformed(
            "two-content-lengths",
            post(&[(b"content-length", b"5"), (b"content-length", b"6")]),
        ),
        case(
            "authority-userinfo",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"u@a"),
                (b":path", b"$P"),
            ],
            &[],
            Status(400),
            Nothing,
        ),
        malformed("space-in-name", get(&[(b"x a", b"1")])),
        malformed("colon-in-name", get(&[(b"x:a", b"1")])),
        malformed(
            "crlf-in-path",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", b"/x HTTP/1.1\r\nhost: a\r\n\r\nGET /smuggled"),
            ],
        ),
        malformed(
            "space-in-method",
            vec![
                (b":method", b"GET /smuggled HTTP/1.1\r\nfoo:"),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", b"$P"),
            ],
        ),
        malformed(
            "crlf-in-authority",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"a\r\nx-injected: 1"),
                (b":path", b"$P"),
            ],
        ),
        // `:authority` wins over a disagreeing `host` (RFC 9113 §8.3.1): one Host upstream.
        case(
            "authority-beats-host",
            get(&[(b"host", b"other")]),
            &[],
            Status(200),
            Exact(b"GET $P HTTP/1.1\r\nhost: a\r\nx-request-id: $N\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n\r\n"),
        ),
        // Trailers are never forwarded: framing fields in them change nothing upstream.
        Case {
            trailers: vec![(b"content-length", b"0"), (b"x-t", b"1")],
            ..case(
                "trailer-content-length",
                post(&[]),
                &[b"hello"],
                Status(200),
                Exact(b"POST $P HTTP/1.1\r\nx-request-id: $N\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            )
        },
    ]
}

fn fill(template: &[u8], name: &str) -> Vec<u8> {
    let path = format!("/q/{name}");
    String::from_utf8_lossy(template)
        .replace("$P", &path)
        .replace("$N", name)
        .into_bytes()
}

/// Run one case on `h2` (replaced by a new connection after a GOAWAY); its problems.
async fn run(h2: &mut H2, rl: &crate::support::Redline, up: &Upstream, c: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let mark = up.mark();
    let headers: Vec<(Vec<u8>, Vec<u8>)> = c
        .headers
        .iter()
        .map(|(n, v)| (n.to_vec(), fill(v, c.name)))
        .chain([(b"x-request-id".to_vec(), c.name.as_bytes().to_vec())])
        .collect();
    let headers: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let id = h2.send(&headers, &c.data, &c.trailers).await;
    let outcome = h2.outcome(id).await;
    match (&c.want, &outcome) {
        (Want::Status(s), Ok(Outcome::Answer(got, _))) if got == s => {}
        (Want::Reset, Ok(Outcome::Reset(_) | Outcome::GoAway(_))) => {}
        _ => problems.push(format!("client got {outcome:?}")),
    }
    if matches!(outcome, Ok(Outcome::GoAway(_)) | Err(_)) {
        *h2 = H2::connect(rl.proxy).await;
    }
    // The upstream's answer (or Redline's refusal) came: what it got is in the log by now,
    // except after a reset, where the upstream connection may still be closing.
    let got = up.bytes_since(mark);
    match &c.up {
        Up::Nothing if !got.is_empty() => {
            problems.push(format!("upstream got {}", show(&got)));
        }
        Up::NoRequest if !up.requests_since(mark).is_empty() => {
            problems.push(format!("upstream got a whole request: {}", show(&got)));
        }
        Up::Exact(want) if got != fill(want, c.name) => {
            problems.push(format!("upstream got {}", show(&got)));
        }
        _ => {}
    }
    // The next request on the same h2 connection gets its own answer, from a request of
    // its own upstream.
    let next = format!("/next-{}", c.name);
    let mark = up.mark();
    let id = h2
        .send(
            &[
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"m"),
                (b":path", next.as_bytes()),
            ],
            &[],
            &[],
        )
        .await;
    let want = Outcome::Answer(200, format!("up:{next}").into_bytes());
    match h2.outcome(id).await {
        Ok(o) if o == want => {}
        other => problems.push(format!("next request got {other:?}")),
    }
    let seen: Vec<String> = up
        .requests_since(mark)
        .iter()
        .map(|s| s.target.clone())
        .collect();
    if seen != [next.clone()] {
        problems.push(format!("upstream requests for the next one: {seen:?}"));
    }
    let all = up.bytes_since(mark);
    if super::harness::find(&all, b"/smuggled").is_some() {
        problems.push(format!("smuggled: {}", show(&all)));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_downgrade_conformance() {
    let up = Upstream::start(HashMap::new()).await;
    let rl = super::start(up.addr, "fast");
    let cases = cases();
    super::assert_unique(cases.iter().map(|c| c.name));
    let only = std::env::var("CONFORMANCE_CASE").ok();
    let started = Instant::now();
    let mut h2 = H2::connect(rl.proxy).await;
    let mut failed = Vec::new();
    for c in &cases {
        if only.as_deref().is_some_and(|o| o != c.name) {
            continue;
        }
        let problems = run(&mut h2, &rl, &up, c).await;
        if !problems.is_empty() {
            failed.push((c.name, problems));
        }
    }
    super::report("h2 downgrade", cases.len(), started, &failed);
}

/// Many streams at once on one h2 connection, every third one a body that breaks its
/// content-length (reset mid-upload), all through one worker's upstream keep-alive pool:
/// each answered stream gets its own answer, and the upstream only ever sees the
/// requests that were sent whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_never_get_each_others_answers() {
    let up = Upstream::start(HashMap::new()).await;
    let rl = super::start(up.addr, "fast");
    let mut h2 = H2::connect(rl.proxy).await;
    let mark = up.mark();
    let mut ids = Vec::new();
    let mut paths = HashMap::new();
    for round in 0..3 {
        let mut batch = Vec::new();
        for i in 0..30 {
            let path = format!("/mix/{round}/{i}");
            let hostile = i % 3 == 0;
            let method: &[u8] = if hostile { b"POST" } else { b"GET" };
            let mut headers: Vec<(&[u8], &[u8])> = vec![
                (b":method", method),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", path.as_bytes()),
            ];
            let data: Vec<&[u8]> = if hostile {
                headers.push((b"content-length", b"5"));
                vec![b"hello", SMUGGLED]
            } else {
                Vec::new()
            };
            let id = h2.send(&headers, &data, &[]).await;
            paths.insert(id, (path, hostile));
            batch.push(id);
        }
        let got = h2.outcomes(&batch).await.unwrap();
        for id in &batch {
            let (path, hostile) = &paths[id];
            match &got[id] {
                Outcome::Answer(200, body) => {
                    assert_eq!(body, format!("up:{path}").as_bytes(), "stream {id}");
                }
                Outcome::Reset(_) if *hostile => {}
                other => panic!("{path} (stream {id}): {other:?}"),
            }
        }
        ids.extend(batch);
    }
    let seen: Vec<String> = up
        .requests_since(mark)
        .iter()
        .map(|s| s.target.clone())
        .collect();
    for target in &seen {
        let known = paths.values().any(|(p, _)| p == target);
        assert!(known, "upstream got a request nobody sent: {target}");
    }
    for (path, hostile) in paths.values() {
        let n = seen.iter().filter(|t| *t == path).count();
        assert!(n == 1 || (*hostile && n == 0), "{path} seen {n} times");
    }
    assert!(super::harness::find(&up.bytes_since(mark), b"/smuggled").is_none());
}

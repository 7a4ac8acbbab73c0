//! Property tests with hyper (and httparse) as the oracle for the fast path's HTTP/1.1 framing.
//!
//! Each property runs the same bytes through Redline's hand-written code and through hyper's
//! HTTP/1.1 client (or server), over an in-memory `tokio::io::duplex` pipe, and compares.
//!
//! * `chunk_scan_never_accepts_what_hyper_rejects`: generated chunked bodies, valid and
//!   hostile (sizes in upper/lower hex, leading zeros, 17+ digits, `+`/`-`/`0x`/leading
//!   space/empty sizes, wrong sizes; extensions with tokens, quoted strings, bare LF, bare CR,
//!   NUL, obs-text, lines around and over 4 KiB, 16 KiB; missing or bare-LF line ends; missing
//!   CRLF after data; trailers valid and invalid, whitespace-only lines, obs-fold; random
//!   truncation, byte flips and inserts), split at random points. hyper reads them as the
//!   body of `HTTP/1.1 200 OK` + `transfer-encoding: chunked`; [`ChunkScan::scan`] reads the
//!   same pieces the way `fast::pass_chunked` does (unused bytes offered again with the next
//!   piece). Where `ChunkScan` reaches `Done`, hyper must return the body without error, with
//!   the same number of data bytes, and end it at the same byte: `used` is the whole input,
//!   or hyper's connection sees the bytes after `used` as stray (and a second run over
//!   `input[..used]` ends cleanly). Scanning in pieces or whole gives the same outcome.
//! * `response_framing_agrees_with_hyper`: response heads (HTTP/1.0 or 1.1; status 1xx, 2xx,
//!   204, 304, 4xx, 5xx; to HEAD or GET; 0–3 `Content-Length` lines with equal, different,
//!   listed, signed, hex, empty, spaced, 20-digit and u64-overflowing values; 0–2
//!   `Transfer-Encoding` lines: chunked in any case, gzip, xchunked, `chunked, identity`,
//!   `gzip, chunked`, empty; filler headers; any order), then a chunked encoding of some data
//!   and maybe stray bytes. Where [`response_framing`] accepts, hyper's client must read
//!   exactly the body the framing says: `Empty` no byte, `Length(n)` the first `n` bytes (an
//!   incomplete-body error when fewer came), `Chunked` the chunk data, `Close` every byte;
//!   and on HTTP/1.1 the connection is clean exactly when no byte is left over. After a
//!   1xx head (framing `Empty`) hyper must read the final response that follows it.
//! * `content_length_digits_agree_with_hyper`: request `Content-Length` values (digits with
//!   and without leading zeros, up to 25 digits, around `u64::MAX`, signs, hex, lists,
//!   inner spaces, `1e3`, `1_0`, non-ASCII digits, empty) parsed the way
//!   `fast::plain_request` does (httparse, OWS trimmed, [`parse_decimal`]) and by hyper's
//!   HTTP/1.1 server. Where Redline takes a length, hyper takes the same one.
//!   (`fast::parse_request` itself is private to `proxy::fast` and cannot be reached from
//!   here; making it `pub(super)` would let this oracle compare whole request heads with
//!   httparse and hyper's server.)
//!
//! # Where Redline and hyper may differ
//!
//! Redline may reject what hyper accepts (it is the stricter side, spec issue 16):
//! chunk-size lines ending in a bare LF; more than 16 hex digits (hyper takes any number of
//! leading zeros); whitespace after the size; NUL, bare CR (hyper: error too) or over 4 KiB
//! in an extension line; trailer lines ending in a bare LF (hyper reads them with httparse,
//! which takes LF); an invalid `Content-Length` next to `Transfer-Encoding` (hyper ignores
//! the length); `Content-Length` of 20+ digits (hyper: up to `u64::MAX - 2`, leading zeros
//! allowed).
//!
//! Redline may accept what hyper rejects only for hyper's buffer caps, which Redline does not
//! need since it passes a chunked body on as it comes and holds at most one line: hyper
//! refuses a body whose extensions add up to 16 KiB (all lines together) and trailer
//! sections of 16 KiB or more than 100 fields. These are recognised by hyper's error text
//! ("over limit", "count overflow") and counted, not failed.
//!
//! # Runs
//!
//! `PROPTEST_CASES` overrides the default case counts (512, 512, 256).
//! Recorded large run: see the end of this comment.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Cases per property: `PROPTEST_CASES`, or `default`.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

/// An error and its sources, for matching hyper's messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What hyper's HTTP/1.1 client made of a response.
#[derive(Debug)]
struct Hyper {
    /// Status of the final response head, or why there was none.
    status: Result<u16, String>,
    /// The body's data, or the error reading it.
    body: Result<Vec<u8>, String>,
    /// The connection then ended cleanly: no stray byte after the response.
    clean: bool,
}

/// Send `method /` with hyper's client and answer with `pieces`, one write each, then EOF.
fn hyper_client(method: &http::Method, pieces: &[&[u8]]) -> Hyper {
    block_on(async {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
            .await
            .expect("handshake");
        let conn = tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method.clone())
            .uri("/")
            .header("host", "oracle")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let exchange = async {
            let resp = send.send_request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await;
            Ok::<_, String>((status, body.map(|b| b.to_bytes().to_vec()).map_err(|e| chain(&e))))
        };
        let feed = async {
            // The answer goes out once the request came in, in pieces hyper reads apart.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            for piece in pieces {
                if server.write_all(piece).await.is_err() {
                    return;
                }
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
            let _ = server.shutdown().await;
        };
        let (answer, ()) = tokio::join!(exchange, feed);
        let clean = matches!(
            tokio::time::timeout(Duration::from_secs(2), conn).await,
            Ok(Ok(Ok(())))
        );
        drop(send);
        let (status, body) = match answer {
            Ok((status, body)) => (Ok(status), body),
            Err(e) => (Err(e.clone()), Err(e)),
        };
        Hyper {
            status,
            body,
            clean,
        }
    })
}

/// Where `ChunkScan` got to over a whole input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Done { used: usize, data: u64 },
    Incomplete,
    Broken,
}

/// Scan `pieces` as `fast::pass_chunked` does: what a scan leaves unused is offered again
/// with the next piece.
fn chunk_scan(pieces: &[&[u8]]) -> Scan {
    let mut scan = ChunkScan::default();
    let (mut buf, mut used, mut data) = (Vec::new(), 0, 0);
    for piece in pieces {
        buf.extend_from_slice(piece);
        let Ok(seen) = scan.scan(&buf) else {
            return Scan::Broken;
        };
        assert!(seen.used <= buf.len());
        buf.drain(..seen.used);
        used += seen.used;
        data += seen.data;
        if scan == ChunkScan::Done {
            return Scan::Done { used, data };
        }
    }
    Scan::Incomplete
}

/// `bytes` cut at `cuts`.
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(options).prop_map(|s| s.as_bytes().to_vec())
}

/// `valid`, or (in a hostile case, now and then) one of `bad`.
fn or_bad(hostile: bool, valid: BoxedStrategy<Vec<u8>>, bad: BoxedStrategy<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    if hostile {
        prop_oneof![6 => valid, 1 => bad].boxed()
    } else {
        valid
    }
}

/// A line end: CRLF, or a broken one.
fn eol(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let crlf = Just(b"\r\n".to_vec()).boxed();
    or_bad(hostile, crlf, pick(&["\n", "\r", "", "\r\r\n", " \r\n"]).boxed())
}

/// How a chunk size is written: hex in either case, maybe with leading zeros, or broken.
fn size_form(size: usize, hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let hex = format!("{size:x}");
    let upper = hex.to_uppercase();
    let zeros = hex.clone();
    let valid = prop_oneof![
        6 => Just(hex.clone().into_bytes()),
        2 => Just(upper.into_bytes()),
        2 => (1..18usize).prop_map(move |n| format!("{}{zeros}", "0".repeat(n)).into_bytes()),
    ];
    let bad = [
        format!("+{hex}"),
        format!("-{hex}"),
        format!("0x{hex}"),
        format!(" {hex}"),
        format!("{hex} "),
        format!("{hex}\t"),
        String::new(),
        format!("{:x}", size + 1),
        format!("{:x}", size.saturating_sub(1)),
        format!("{:0>17}", hex),
    ];
    let bad = prop::sample::select(bad.to_vec()).prop_map(String::into_bytes);
    or_bad(hostile, valid.boxed(), bad.boxed())
}

/// A chunk extension (with its `;`), or none; hostile ones have bad bytes or are long.
fn extension(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let token = "[a-z0-9!#$%&'*+.^_`|~-]{1,8}";
    let quoted = "[ !#-\\[\\]-~\t]{0,12}";
    let valid = prop_oneof![
        6 => Just(Vec::new()),
        2 => (token, prop::option::of(token)).prop_map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}").into_bytes(),
            None => format!(";{n}").into_bytes(),
        }),
        1 => (token, quoted).prop_map(|(n, q)| format!(";{n}=\"{q}\"").into_bytes()),
        1 => pick(&[";a=b;c", ";a=\"x\\\"y\"", ";a=\t b"]),
    ];
    let long = |r: std::ops::Range<usize>| {
        r.prop_map(|n| {
            let mut e = b";x=".to_vec();
            e.resize(n, b'e');
            e
        })
    };
    let bad = prop_oneof![
        3 => pick(&[" ;a=b", ";a\nb", ";a\rb", ";a\0b", ";a\x7fb", ";a=b ", ";\n", ";\r", ";", ";a=\"b"]),
        1 => Just(vec![b';', b'a', b'=', 0x80, 0xff]),
        2 => long(4070..4110),
        1 => long(5000..17000),
    ];
    or_bad(hostile, valid.boxed(), bad.boxed())
}

/// One data chunk: size line, data, and what follows the data.
fn chunk(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let data = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..48),
        1 => prop::collection::vec(any::<u8>(), 1..2500)
    ];
    let crlf = Just(b"\r\n".to_vec()).boxed();
    let after = or_bad(hostile, crlf, pick(&["", "\n", "\r", "x\r\n", "\r\n\r\n"]).boxed());
    data.prop_flat_map(move |data| {
        let size = size_form(data.len(), hostile);
        (size, extension(hostile), eol(hostile), Just(data), after.clone())
    })
    .prop_map(|(size, ext, eol, data, after)| [size, ext, eol, data, after].concat())
    .boxed()
}

/// A trailer field line with its line end.
fn trailer(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let valid = ("[a-zA-Z][a-z0-9-]{0,8}", "[ -~]{0,12}", pick(&[": ", ":", ":\t"]))
        .prop_map(|(n, v, colon)| [n.into_bytes(), colon, v.trim().as_bytes().to_vec()].concat());
    let bad = pick(&["no-colon", "bad name: v", "x-t :v", " ", "\t", " folded", ": v", "x-t: a\0b",
        "x-t: a\rb", "x-\x01: v", "x-t: \u{e9}", "x-t: a\nb"]);
    (or_bad(hostile, valid.boxed(), bad.boxed()), eol(hostile))
        .prop_map(|(l, e)| [l, e].concat())
        .boxed()
}

/// A damage done to a whole body.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(Index),
    Flip(Index, u8),
    Insert(Index, u8),
}

fn damage(hostile: bool) -> BoxedStrategy<Damage> {
    if !hostile {
        return Just(Damage::None).boxed();
    }
    prop_oneof![
        9 => Just(Damage::None),
        1 => any::<Index>().prop_map(Damage::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
    ]
    .boxed()
}

/// Bytes shown as a byte string literal when a case fails.
#[derive(Clone)]
struct Wire(Vec<u8>);

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// A chunked body: valid, or (half the cases) hostile in a few places.
fn chunked_body() -> impl Strategy<Value = Wire> {
    any::<bool>().prop_flat_map(|hostile| {
        let zero = pick(&["00", "000", "00000000000000000", "0 ", "+0", "-0", "0x0", " 0", ""]);
        let last = (or_bad(hostile, Just(b"0".to_vec()).boxed(), zero.boxed()), extension(hostile), eol(hostile));
        (
            prop::collection::vec(chunk(hostile), 0..6),
            last,
            prop::collection::vec(trailer(hostile), 0..3),
            eol(hostile),
            damage(hostile),
        )
    })
    .prop_map(|(chunks, (size, ext, eol), trailers, end, damage)| {
        let mut body = [chunks.concat(), size, ext, eol, trailers.concat(), end].concat();
        match damage {
            Damage::None => {}
            Damage::Truncate(i) => body.truncate(i.index(body.len() + 1)),
            Damage::Flip(i, b) if !body.is_empty() => {
                let at = i.index(body.len());
                body[at] ^= b.max(1);
            }
            Damage::Flip(..) => {}
            Damage::Insert(i, b) => body.insert(i.index(body.len() + 1), b),
        }
        Wire(body)
    })
}

/// How one case came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    BothAccept,
    BothReject,
    /// Redline refused what hyper took (allowed: Redline is the stricter side).
    RedlineStricter,
    /// Redline took what hyper refused only for one of its buffer caps (allowed).
    HyperCap,
}

/// A failed case: `kind` groups alike failures, `detail` says what this one did.
fn fail(kind: impl Into<String>, detail: impl std::fmt::Display) -> String {
    format!("{} | {detail}", kind.into())
}

fn ensure(ok: bool, kind: &str, detail: impl std::fmt::Display) -> Result<(), String> {
    if ok { Ok(()) } else { Err(fail(kind, detail)) }
}

/// Run `check` over `cases` values of `strategy` and print how they came out. With
/// `ORACLE_EXPLORE=1` failures are counted per kind (with a first example) instead of
/// stopping the run, to list every kind of divergence at once.
fn run<S>(name: &str, cases: u32, strategy: S, check: impl Fn(S::Value) -> Result<Verdict, String>)
where
    S: Strategy,
    S::Value: Clone + std::fmt::Debug,
{
    let explore = std::env::var("ORACLE_EXPLORE").is_ok_and(|v| v == "1");
    let verdicts = std::cell::RefCell::new(std::collections::BTreeMap::<Verdict, u32>::new());
    let failures = std::cell::RefCell::new(std::collections::BTreeMap::<String, (u32, String)>::new());
    let started = std::time::Instant::now();
    let result = TestRunner::new(config(cases)).run(&strategy, |value| {
        match check(value.clone()) {
            Ok(v) => *verdicts.borrow_mut().entry(v).or_default() += 1,
            Err(e) if explore => {
                let kind = e.split(" | ").next().unwrap_or_default().to_string();
                let example = format!("{e}\n    {value:?}");
                let mut failures = failures.borrow_mut();
                let entry = failures.entry(kind).or_insert_with(|| (0, example.clone()));
                entry.0 += 1;
                // Keep the shortest example of each kind.
                if example.len() < entry.1.len() {
                    entry.1 = example;
                }
            }
            Err(e) => return Err(TestCaseError::fail(e)),
        }
        Ok(())
    });
    eprintln!("{name}: {:?} in {:.1?}", verdicts.borrow(), started.elapsed());
    for (kind, (n, example)) in failures.borrow().iter() {
        eprintln!("  DIVERGENCE x{n}: {kind}\n    {example}");
    }
    result.unwrap();
    assert!(failures.borrow().is_empty(), "{name}: divergences");
}

const CHUNKED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

#[test]
fn chunk_scan_never_accepts_what_hyper_rejects() {
    let strategy = (chunked_body(), prop::collection::vec(any::<Index>(), 0..5));
    run("chunked", 512, strategy, |(Wire(body), cuts)| {
        let pieces = split(&body, &cuts);
        let scanned = chunk_scan(&pieces);
        let whole = chunk_scan(&[&body]);
        ensure(scanned == whole, "pieces and whole scan differ", format!("{scanned:?} {whole:?}"))?;
        let mut wire = vec![CHUNKED_HEAD];
        wire.extend(pieces.iter().copied());
        let hyper = hyper_client(&http::Method::GET, &wire);
        let Scan::Done { used, data } = scanned else {
            let took = hyper.body.is_ok() && hyper.clean;
            return Ok(if took { Verdict::RedlineStricter } else { Verdict::BothReject });
        };
        let got = match &hyper.body {
            Err(e) if e.contains("over limit") || e.contains("count overflow") => {
                return Ok(Verdict::HyperCap);
            }
            Err(e) => return Err(fail(format!("hyper: {e}"), format!("ChunkScan: {scanned:?}"))),
            Ok(got) => got,
        };
        let detail = format!("hyper {} data bytes, ChunkScan {scanned:?}", got.len());
        ensure(got.len() as u64 == data, "data bytes differ", &detail)?;
        if used == body.len() {
            ensure(hyper.clean, "hyper saw bytes after the end ChunkScan found", &detail)?;
        } else {
            ensure(!hyper.clean, "hyper read past the end ChunkScan found", &detail)?;
            let exact = hyper_client(&http::Method::GET, &[CHUNKED_HEAD, &body[..used]]);
            let ok = exact.body.is_ok() && exact.clean;
            ensure(ok, "hyper did not end where ChunkScan did", format!("{exact:?}"))?;
        }
        Ok(Verdict::BothAccept)
    });
}

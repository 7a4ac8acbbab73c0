//! HTTP/1.1 on the wire for the fast path: request heads out, response framing and heads back.
//!
//! Pure functions over byte slices (no I/O), so every framing rule is unit-tested
//! here. The rules are RFC 9112's: §6.3 for how a response body ends, §7.1 for chunks.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use http::HeaderValue;

/// Most response headers the fast path reads from an upstream (hyper's limit too).
pub const MAX_HEADERS: usize = 100;

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: ends with the last chunk and its trailers.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A response the fast path cannot frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Several different or unparsable `Content-Length` values.
    #[error("invalid content-length")]
    ContentLength,
    /// `Transfer-Encoding` in an HTTP/1.0 response (RFC 9112 §6.1: faulty framing).
    #[error("transfer-encoding in an HTTP/1.0 response")]
    TransferEncoding,
    /// A chunk size line, chunk end or trailer line that is not HTTP.
    #[error("invalid chunked encoding")]
    Chunk,
}

/// How a response body ends, and what that means for its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseBody {
    /// How the body ends.
    pub framing: Framing,
    /// The (validated, single) `Content-Length` value, if one was sent: the client gets
    /// it once, normalised, also on HEAD and 304 answers.
    pub length: Option<u64>,
    /// The framing is unambiguous, so the connection may carry another exchange. Not so
    /// when `Content-Length` came beside `Transfer-Encoding` (RFC 9112 §6.3: a sign of
    /// smuggling) or a 204 announced a body: bytes left over would be read as the next
    /// response.
    pub reusable: bool,
}

/// How the body of a response with `status` to a `head_request` ends (RFC 9112 §6.3).
#[cfg(test)]
pub fn response_framing(
    head_request: bool,
    status: u16,
    headers: &[httparse::Header<'_>],
) -> Result<Framing, WireError> {
    response_body(head_request, status, false, headers).map(|b| b.framing)
}

/// [`response_framing`] with the length and reuse verdict; `http10`: the response is HTTP/1.0.
pub fn response_body(
    head_request: bool,
    status: u16,
    http10: bool,
    headers: &[httparse::Header<'_>],
) -> Result<ResponseBody, WireError> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides; anything but chunked last means "until close".
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for v in h.value.split(|&b| b == b',') {
                let n = parse_decimal(v.trim_ascii()).ok_or(WireError::ContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(WireError::ContentLength);
                }
                length = Some(n);
            }
        }
    }
    if http10 && chunked.is_some() {
        return Err(WireError::TransferEncoding);
    }
    if head_request || status < 200 || status == 204 || status == 304 {
        // RFC 9112 §6.1 lets HEAD and 304 answers carry the GET's coding; a 204 has neither.
        let announced = chunked.is_some() || length.is_some_and(|n| n > 0);
        let reusable = !(status == 204 && announced);
        return Ok(ResponseBody {
            framing: Framing::Empty,
            length,
            reusable,
        });
    }
    let (framing, reusable) = match (chunked, length) {
        (Some(true), l) => (Framing::Chunked, l.is_none()),
        (Some(false), _) => (Framing::Close, false),
        (None, Some(0)) => (Framing::Empty, true),
        (None, Some(n)) => (Framing::Length(n), true),
        (None, None) => (Framing::Close, false),
    };
    let length = length.filter(|_| framing != Framing::Chunked);
    Ok(ResponseBody {
        framing,
        length,
        reusable,
    })
}

/// A `Content-Length` value: 1 to 19 ASCII digits, nothing else.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Where a chunked body stands; [`ChunkScan::scan`] finds how much of a buffer belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkScan {
    /// Before a chunk size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF, this many bytes of it left.
    DataEnd(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body ended.
    Done,
}

/// What one scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes from the buffer's start that belong to the body (pass them on verbatim).
    pub used: usize,
    /// How many of them are chunk data (the body's payload).
    pub data: u64,
}

impl ChunkScan {
    /// Walk `buf` from the current state; bytes of an incomplete line are left unused, to be
    /// scanned again with more data after them.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Scanned, WireError> {
        let mut at = 0;
        let mut data = 0u64;
        while at < buf.len() {
            let rest = &buf[at..];
            match *self {
                ChunkScan::Size => match chunk_size_line(rest)? {
                    Some((n, 0)) => {
                        at += n;
                        *self = ChunkScan::Trailers;
                    }
                    Some((n, size)) => {
                        at += n;
                        *self = ChunkScan::Data(size);
                    }
                    None => break,
                },
                ChunkScan::Data(left) => {
                    let take = left.min(rest.len() as u64);
                    at += take as usize;
                    data += take;
                    *self = if take == left {
                        ChunkScan::DataEnd(2)
                    } else {
                        ChunkScan::Data(left - take)
                    };
                }
                ChunkScan::DataEnd(left) => {
                    let expected: &[u8] = if left == 2 { b"\r\n" } else { b"\n" };
                    let n = expected.len().min(rest.len());
                    if rest[..n] != expected[..n] {
                        return Err(WireError::Chunk);
                    }
                    at += n;
                    *self = if n == expected.len() {
                        ChunkScan::Size
                    } else {
                        ChunkScan::DataEnd(1)
                    };
                }
                ChunkScan::Trailers => {
                    let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_LINE {
                            return Err(WireError::Chunk);
                        }
                        break;
                    };
                    // CRLF only: a bare LF or a whitespace-only line is not the end.
                    let line = match rest[..eol].split_last() {
                        Some((b'\r', line)) if eol <= MAX_LINE => line,
                        _ => return Err(WireError::Chunk),
                    };
                    at += eol + 1;
                    if line.is_empty() {
                        *self = ChunkScan::Done;
                    } else if !field_line(line) {
                        return Err(WireError::Chunk);
                    }
                }
                ChunkScan::Done => break,
            }
        }
        Ok(Scanned { used: at, data })
    }
}

/// Longest chunk-size or trailer line accepted, extensions included (hyper allows 16 KiB
/// of extensions per body; 4 KiB on one line is already no real client or server).
pub const MAX_LINE: usize = 4096;

/// A chunk-size line at the start of `buf` (RFC 9112 §7.1): 1 to 16 hex digits (as
/// httparse, which most Rust clients use, accepts; hyper would take leading zeros past 16
/// but the fast path passes chunks on verbatim, so it must not send what a client may
/// refuse), optional whitespace, extensions of visible characters after `;`, then CRLF.
/// Returns the line's length and the size, or `None` while incomplete. Stricter than
/// httparse: a bare CR or LF, a NUL or another control byte inside the line is an error,
/// so no two parsers can disagree on where the line ends.
fn chunk_size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, WireError> {
    let digits = buf.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > 16 {
        return Err(WireError::Chunk);
    }
    if digits == buf.len() {
        return Ok(None);
    }
    if digits == 0 {
        return Err(WireError::Chunk);
    }
    let size = buf[..digits].iter().fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        n << 4 | u64::from(v)
    });
    let mut at = digits;
    let mut extension = false;
    while at < buf.len() && at <= MAX_LINE {
        match buf[at] {
            b'\r' => {
                return match buf.get(at + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((at + 2, size))),
                    Some(_) => Err(WireError::Chunk),
                };
            }
            b';' => extension = true,
            b' ' | b'\t' => {}
            b'!'..=b'~' | 0x80..=0xff if extension => {}
            _ => return Err(WireError::Chunk),
        }
        at += 1;
    }
    if at > MAX_LINE {
        return Err(WireError::Chunk);
    }
    Ok(None)
}

/// A trailer line `name: value` (CRLF already cut): a token, a colon, then visible
/// characters, spaces and tabs. A leading space (obs-fold) or a control byte is refused.
fn field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty()
        && name.iter().all(|&b| is_tchar(b))
        && value
            .iter()
            .all(|&b| matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff))
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Hop-by-hop response headers (RFC 9110 §7.6.1) never pass to the client.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    // Most names have a length none of these has: one compare, no string scan.
    matches!(name.len(), 2 | 7 | 10 | 16 | 17 | 18)
        && NAMES.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether `name` is listed in one of the `Connection` header `values` (so is hop-by-hop).
pub fn named_by_connection(values: &[&[u8]], name: &[u8]) -> bool {
    values.iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    })
}

/// Whether a `Connection` header value names a header to drop (any option but `close`
/// and `keep-alive`).
pub fn names_headers(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        !t.is_empty() && !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive")
    })
}

/// Whether a `Connection` header value carries the `close` option.
pub fn has_close(value: &[u8]) -> bool {
    has_token(value, b"close")
}

/// Whether a comma-separated header value lists `token` (any case).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Append `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Append the request head for the upstream: origin-form target, HTTP/1.1, every header.
pub fn encode_request_head(out: &mut Vec<u8>, parts: &http::request::Parts) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        push_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Append `name: value\r\n`.
pub fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Append the status line for `status` (the canonical reason, like hyper writes).
pub fn push_status_line(out: &mut Vec<u8>, status: http::StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Append a `date` header with the current time, formatted at most once a second per thread.
pub fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, HeaderValue)> =
            const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let formatted = httpdate::fmt_http_date(now);
            *text = HeaderValue::from_str(&formatted).unwrap_or(HeaderValue::from_static(""));
            *at = secs;
        }
        push_header(out, b"date", text.as_bytes());
    });
}

/// Append one chunk of a chunked body (the fast path re-frames close-delimited bodies so
/// the client connection stays usable).
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let mut n = data.len();
    let mut i = size.len();
    while n > 0 || i == size.len() {
        i -= 1;
        size[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.extend_from_slice(&size[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

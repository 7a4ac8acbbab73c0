//! Response relays: the client's response head, and the body passed on by its framing (length, chunks, until close).

use bytes::Buf;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::super::direct::{Conn, Head};
use super::super::wire::{self, ChunkScan, Framing};
use super::super::{ProxyBody, RequestCtx};

/// How passing a body on failed.
pub(super) enum Broke {
    /// The upstream's body broke before any of the response reached the client, so the
    /// client can still be told with a 502.
    UpstreamUnsent,
    Upstream,
    Client,
}

/// The client's response head: the upstream's status and end-to-end headers, our request
/// id, a date if the upstream sent none, and the framing the body will have.
pub(super) fn response_head(
    out: &mut Vec<u8>,
    conn: &Conn,
    head: &Head,
    request_id: &HeaderValue,
    close: bool,
) {
    wire::push_status_line(out, head.status);
    // Read again only in the rare case that the upstream's `Connection` names headers.
    let mut named: [&[u8]; 4] = [b""; 4];
    let mut n_named = 0;
    if head.connection_names {
        for (name, value) in conn.headers() {
            if n_named < named.len() && name.eq_ignore_ascii_case(b"connection") {
                named[n_named] = value;
                n_named += 1;
            }
        }
    }
    let mut has_date = false;
    for (name, value) in conn.headers() {
        let keep = if wire::is_hop_by_hop(name) {
            // A chunked body passes verbatim, so its coding header must too.
            head.framing == Framing::Chunked && name.eq_ignore_ascii_case(b"transfer-encoding")
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Written once below, from the validated value: `3, 3` or two lines become one.
            false
        } else {
            has_date |= name.eq_ignore_ascii_case(b"date");
            !name.eq_ignore_ascii_case(b"x-request-id")
                && (n_named == 0 || !wire::named_by_connection(&named[..n_named], name))
        };
        if keep {
            // Lowercase like hyper writes names, so both paths answer alike.
            let at = out.len();
            wire::push_header(out, name, value);
            out[at..at + name.len()].make_ascii_lowercase();
        }
    }
    let length = match head.framing {
        Framing::Length(n) => Some(n),
        // HEAD and 304 answers keep the length of what a GET would get; 1xx and 204 never
        // carry one (RFC 9110 §8.6).
        Framing::Empty if head.status.as_u16() >= 200 && head.status != StatusCode::NO_CONTENT => {
            head.length
        }
        _ => None,
    };
    if let Some(n) = length {
        out.extend_from_slice(b"content-length: ");
        wire::push_decimal(out, n);
        out.extend_from_slice(b"\r\n");
    }
    wire::push_header(out, b"x-request-id", request_id.as_bytes());
    if !has_date {
        wire::push_date(out);
    }
    if head.framing == Framing::Close {
        wire::push_header(out, b"transfer-encoding", b"chunked");
    }
    if close {
        wire::push_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

pub(super) async fn write(client: &mut TcpStream, bytes: &[u8]) -> Result<(), Broke> {
    client.write_all(bytes).await.map_err(|_| Broke::Client)
}

pub(super) async fn read_more(conn: &mut Conn) -> Result<(), Broke> {
    match conn.read_more().await {
        Ok(0) | Err(_) => Err(Broke::Upstream),
        Ok(_) => Ok(()),
    }
}

/// Pass `n` body bytes; the head in `out` leaves with the first of them.
pub(super) async fn pass_length(
    conn: &mut Conn,
    mut n: u64,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    ctx: &mut RequestCtx,
) -> Result<bool, Broke> {
    let first = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
    out.extend_from_slice(&conn.buf[..first]);
    ctx.body_out(&conn.buf[..first]);
    conn.buf.advance(first);
    n -= first as u64;
    write(client, out).await?;
    while n > 0 {
        read_more(conn).await?;
        let take = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        write(client, &conn.buf[..take]).await?;
        ctx.body_out(&conn.buf[..take]);
        conn.buf.advance(take);
        n -= take as u64;
    }
    Ok(true)
}

/// Pass a chunked body verbatim up to its last chunk and trailers.
pub(super) async fn pass_chunked(
    conn: &mut Conn,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    ctx: &mut RequestCtx,
) -> Result<bool, Broke> {
    let mut scan = ChunkScan::default();
    // `out` holds the head until the first write.
    let mut sent = false;
    loop {
        let seen = match scan.scan(&conn.buf) {
            Ok(seen) => seen,
            Err(_) if !sent => return Err(Broke::UpstreamUnsent),
            Err(_) => return Err(Broke::Upstream),
        };
        out.extend_from_slice(&conn.buf[..seen.used]);
        conn.buf.advance(seen.used);
        ctx.add_bytes_out(usize::try_from(seen.data).unwrap_or(usize::MAX));
        if !out.is_empty() {
            write(client, out).await?;
            out.clear();
            sent = true;
        }
        if scan == ChunkScan::Done {
            return Ok(true);
        }
        read_more(conn).await?;
    }
}

/// Pass a body that ends when the upstream closes, re-framed as chunks for the client.
pub(super) async fn pass_until_close(
    conn: &mut Conn,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    ctx: &mut RequestCtx,
) -> Result<bool, Broke> {
    loop {
        wire::push_chunk(out, &conn.buf);
        ctx.add_bytes_out(conn.buf.len());
        conn.buf.clear();
        if !out.is_empty() {
            write(client, out).await?;
            out.clear();
        }
        match conn.read_more().await {
            Ok(0) => {
                write(client, wire::LAST_CHUNK).await?;
                return Ok(false);
            }
            Ok(_) => {}
            Err(_) => return Err(Broke::Upstream),
        }
    }
}

/// Write a response Redline made itself (its context is already finished).
pub(super) async fn write_local(
    client: &mut TcpStream,
    resp: Response<ProxyBody>,
    out: &mut Vec<u8>,
    close: bool,
) -> bool {
    let (parts, mut body) = resp.into_parts();
    let bytes = body.take_local().unwrap_or_default();
    wire::push_status_line(out, parts.status);
    for (name, value) in &parts.headers {
        wire::push_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    wire::push_date(out);
    wire::push_header(out, b"content-length", bytes.len().to_string().as_bytes());
    if close {
        wire::push_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes);
    write(client, out).await.is_ok()
}

//! OTLP transport: one collector endpoint over HTTP/protobuf, HTTP/JSON or gRPC, its request bodies, and how its answers are read.
//!
//! HTTP/protobuf bodies go through the hyper-util client; HTTP/JSON is the same
//! request turned into OTLP/JSON once before it is sent (`otlp_json.rs`), its answer
//! turned back into protobuf, so the exporter reads one format; gRPC is the same protobuf
//! message in gRPC's length-prefixed frame over HTTP/2 (h2c for `http://`, ALPN `h2` for
//! `https://`), with `grpc-status` read from the trailers. `https` uses rustls with the
//! roots and client certificate of `tls.rs`.
//!
//! A failed export is a [`crate::error::Error`], like a failed proxied request: the
//! collector is one more upstream. Its retry verdict follows the OTLP specification
//! ("Failures", OTLP/HTTP and OTLP/gRPC), and since the spec lets a client send an
//! export again, a verdict other than `Never` means another try may help; the delay the
//! collector asked for (`Retry-After`, gRPC `RetryInfo`) goes with it. One call here is
//! one try: `retry.rs` decides about the next, sending the same [`Prepared`] body again.
//! Messages never include header values (they may hold API keys).

use std::io::{Read, Write};
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::env::{Protocol, Target};
use crate::error::{Error, ErrorType, Retry, parse_retry_after};

/// Collector answers are read up to this size (they are tiny; a bigger one is not trusted).
const MAX_RESPONSE: usize = 64 * 1024;

/// No complete answer within the OTLP timeout: the collector may have taken the export.
fn timed_out(timeout: Duration) -> Error {
    Error::new(
        ErrorType::Timeout,
        format!("no answer from the collector within {timeout:?}"),
    )
    .retry(Retry::IfIdempotent)
}

/// The request could not be built or compressed: the same request would fail again.
fn unbuildable(what: &'static str) -> Error {
    Error::new(ErrorType::BadRequest, what)
}

/// An answer came but cannot be read; the collector may have acted on the export.
fn unreadable(what: &'static str) -> Error {
    Error::new(ErrorType::UpstreamError, what)
}

/// A non-success HTTP status. OTLP/HTTP: only 429, 502, 503 and 504 are retryable.
fn http_refused(status: u16) -> Error {
    let retry = match status {
        429 | 502 | 503 | 504 => Retry::IfIdempotent,
        _ => Retry::Never,
    };
    Error::status("the collector", status).retry(retry)
}

/// A gRPC error status (`code` as sent; `retry_info`: the status details carry a
/// `google.rpc.RetryInfo`). OTLP/gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
/// UNAVAILABLE and DATA_LOSS are retryable, RESOURCE_EXHAUSTED only with RetryInfo (the
/// server says it can recover); every other code is not.
fn grpc_refused(code: &str, message: &str, retry_info: bool) -> Error {
    let retry = match code.parse::<u8>() {
        Ok(1 | 4 | 10 | 11 | 14 | 15) => Retry::IfIdempotent,
        Ok(8) if retry_info => Retry::IfIdempotent,
        _ => Retry::Never,
    };
    Error::new(
        ErrorType::Status,
        format!("the collector answered gRPC status {code} {message:?}"),
    )
    .retry(retry)
}

/// An export request body, compressed and (for gRPC) framed, that can be sent again as is.
#[derive(Debug, Clone)]
pub struct Prepared(Payload);

/// Sends encoded OTLP messages to one collector endpoint.
pub struct Transport {
    target: Target,
    client: Clients,
}

enum Clients {
    Http(Client<HttpsConnector<HttpConnector>, Payload>),
    Grpc(Client<HttpsConnector<HttpConnector>, Payload>),
}

/// An export message as the pieces it was built from (a head, then span chunks), sent one
/// after another: joining them would copy every span once more.
#[derive(Debug, Default, Clone)]
pub struct Payload {
    pieces: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl Payload {
    /// Append a piece.
    pub fn push(&mut self, piece: impl Into<Bytes>) {
        let piece = piece.into();
        self.len += piece.len();
        self.pieces.push_back(piece);
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces as one contiguous message.
    fn joined(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in &self.pieces {
            out.extend_from_slice(p);
        }
        out
    }

    fn prepend(&mut self, piece: Bytes) {
        self.len += piece.len();
        self.pieces.push_front(piece);
    }

    fn gzip(self) -> Result<Payload, Error> {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(self.len / 4 + 64),
            flate2::Compression::fast(),
        );
        let zipped = self
            .pieces
            .iter()
            .try_for_each(|p| enc.write_all(p))
            .and_then(|()| enc.finish())
            .map_err(|e| unbuildable("cannot build the export request: gzip").caused_by(e))?;
        Ok(Payload::from(zipped))
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        let mut p = Payload::default();
        p.push(v);
        p
    }
}

impl http_body::Body for Payload {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let piece = self.pieces.pop_front();
        if let Some(p) = &piece {
            self.len -= p.len();
        }
        std::task::Poll::Ready(piece.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len as u64)
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("url", &self.target.url)
            .field("protocol", &self.target.protocol)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A pooled client for `target`; connecting is bounded by the export timeout.
    pub fn new(target: Target) -> Result<Self, Error> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(target.timeout));
        http.enforce_http(false);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let tls = super::tls::client_config(&target.tls)
            .map_err(|e| unbuildable("cannot set up TLS for the collector").caused_by(e))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let client = match target.protocol {
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let https = https.enable_http1().wrap_connector(http);
                Clients::Http(builder.build(https))
            }
            Protocol::Grpc => {
                builder
                    .http2_only(true)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .http2_keep_alive_timeout(target.timeout);
                // ALPN h2 for https; cleartext endpoints stay h2c (prior knowledge).
                let https = https.enable_http2().wrap_connector(http);
                Clients::Grpc(builder.build(https))
            }
        };
        Ok(Transport { target, client })
    }

    /// Where this transport sends.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Send one encoded export request once; on success, the collector's response message bytes.
    pub async fn export(&self, payload: Payload) -> Result<Bytes, Error> {
        let body = self.prepare(payload)?;
        self.send(&body, self.target.timeout).await
    }

    /// Compress and frame an export message once, however many times it is sent.
    pub fn prepare(&self, payload: Payload) -> Result<Prepared, Error> {
        let payload = match self.target.protocol {
            Protocol::HttpJson => Payload::from(super::otlp_json::request(
                self.target.signal,
                &payload.joined(),
            )?),
            _ => payload,
        };
        let mut payload = if self.target.gzip {
            payload.gzip()?
        } else {
            payload
        };
        if let Clients::Grpc(_) = self.client {
            let mut prefix = BytesMut::with_capacity(5);
            prefix.put_u8(u8::from(self.target.gzip));
            prefix.put_u32(u32::try_from(payload.len()).map_err(|_| {
                unbuildable("cannot build the export request: message larger than 4 GiB")
            })?);
            payload.prepend(prefix.freeze());
        }
        Ok(Prepared(payload))
    }

    /// One try with `body`, bounded by the OTLP timeout or `limit`, whichever is shorter.
    pub async fn send(&self, body: &Prepared, limit: Duration) -> Result<Bytes, Error> {
        let timeout = self.target.timeout.min(limit);
        // A clone shares the pieces (reference-counted), so the batch is held once.
        match tokio::time::timeout(timeout, self.exchange(body.0.clone(), timeout)).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(timeout)),
        }
    }

    async fn exchange(&self, payload: Payload, timeout: Duration) -> Result<Bytes, Error> {
        match &self.client {
            Clients::Http(client) => {
                let req = self.http_request(payload)?;
                let resp = client.request(req).await.map_err(unreachable)?;
                let (parts, body) = resp.into_parts();
                let body = read_body(body).await?;
                if !parts.status.is_success() {
                    let after = parts
                        .headers
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    return Err(http_refused(parts.status.as_u16()).after(after));
                }
                let body = body.to_bytes();
                match self.target.protocol {
                    Protocol::HttpJson => Ok(super::otlp_json::response(self.target.signal, &body)),
                    _ => Ok(body),
                }
            }
            Clients::Grpc(client) => {
                let req = self.grpc_request(payload, timeout)?;
                let resp = client.request(req).await.map_err(unreachable)?;
                let (parts, body) = resp.into_parts();
                // gRPC maps these HTTP statuses to codes with the same verdicts
                // (429, 502, 503, 504 are UNAVAILABLE), so the OTLP/HTTP table applies.
                if parts.status != http::StatusCode::OK {
                    return Err(http_refused(parts.status.as_u16()));
                }
                let collected = read_body(body).await?;
                let trailers = collected.trailers().cloned().unwrap_or_default();
                grpc_status(&parts.headers, &trailers)?;
                unframe(&collected.to_bytes())
            }
        }
    }

    fn builder(&self) -> http::request::Builder {
        let mut b = Request::post(self.target.url.clone()).header(
            header::USER_AGENT,
            concat!("Redline/", env!("CARGO_PKG_VERSION")),
        );
        for (name, value) in &self.target.headers {
            b = b.header(name, value);
        }
        b
    }

    fn http_request(&self, payload: Payload) -> Result<Request<Payload>, Error> {
        let content_type = match self.target.protocol {
            Protocol::HttpJson => "application/json",
            _ => "application/x-protobuf",
        };
        let mut b = self.builder().header(header::CONTENT_TYPE, content_type);
        if self.target.gzip {
            b = b.header(header::CONTENT_ENCODING, "gzip");
        }
        b.body(payload)
            .map_err(|e| unbuildable("cannot build the export request").caused_by(e))
    }

    fn grpc_request(&self, payload: Payload, timeout: Duration) -> Result<Request<Payload>, Error> {
        let ms = timeout.as_millis().clamp(1, 99_999_999);
        let mut b = self
            .builder()
            .version(http::Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .header("grpc-timeout", format!("{ms}m"));
        if self.target.gzip {
            b = b.header("grpc-encoding", "gzip");
        }
        b.body(payload)
            .map_err(|e| unbuildable("cannot build the export request").caused_by(e))
    }
}

/// No answer: the connect failed (nothing sent) or the exchange broke, the cause kept.
fn unreachable(e: hyper_util::client::legacy::Error) -> Error {
    Error::request_failed("cannot reach the collector", e)
}

async fn read_body(body: hyper::body::Incoming) -> Result<http_body_util::Collected<Bytes>, Error> {
    Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| unreadable("cannot reach the collector: reading the answer").caused_by(e))
}

/// `grpc-status` from the trailers, or from the headers of a trailers-only answer.
fn grpc_status(headers: &http::HeaderMap, trailers: &http::HeaderMap) -> Result<(), Error> {
    let text = |v: Option<&HeaderValue>| {
        v.and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let get = |name: &str| trailers.get(name).or_else(|| headers.get(name));
    let status = get("grpc-status");
    match status.map(|v| v.as_bytes()) {
        Some(b"0") => Ok(()),
        // gRPC reads a missing status as UNKNOWN: not retryable.
        None => Err(grpc_refused("missing", "", false)),
        Some(_) => {
            let retry_info = get("grpc-status-details-bin").and_then(retry_info);
            let message = get("grpc-message").map_or(&[][..], |v| v.as_bytes());
            Err(grpc_refused(
                &text(status),
                &percent_decoded(message),
                retry_info.is_some(),
            )
            .after(retry_info.flatten()))
        }
    }
}

/// `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses"). As that spec
/// asks, a malformed escape is kept as it came rather than failing the whole message.
fn percent_decoded(v: &[u8]) -> String {
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut out = Vec::with_capacity(v.len());
    let mut rest = v;
    while let [c, tail @ ..] = rest {
        if let [b'%', hi, lo, after @ ..] = rest {
            if let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo)) {
                out.push((hi * 16 + lo) as u8);
                rest = after;
                continue;
            }
        }
        out.push(*c);
        rest = tail;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `google.rpc.RetryInfo` in `grpc-status-details-bin` (a base64 `google.rpc.Status`),
/// if there is one: `Some(delay)`, the delay `None` when it names none or cannot be read.
fn retry_info(details: &HeaderValue) -> Option<Option<Duration>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // gRPC sends binary headers unpadded but must accept both.
    const B64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = B64.decode(details.as_bytes()).ok()?;
    let status = <RpcStatus as prost::Message>::decode(bytes.as_slice()).ok()?;
    let info = status
        .details
        .iter()
        .find(|d| d.type_url.ends_with("/google.rpc.RetryInfo"))?;
    let delay = <RpcRetryInfo as prost::Message>::decode(info.value.as_slice())
        .ok()
        .and_then(|r| r.retry_delay)
        .and_then(|d| {
            let secs = u64::try_from(d.seconds).ok()?;
            let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
            Some(Duration::new(secs, nanos))
        });
    Some(delay)
}

/// The part of `google.rpc.Status` read here (its other fields are skipped).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(message, repeated, tag = "3")]
    details: Vec<RpcAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcRetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<RpcDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The message inside one gRPC frame (empty when the collector sent none).
pub fn unframe(body: &[u8]) -> Result<Bytes, Error> {
    if body.len() < 5 {
        return Ok(Bytes::new());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body
        .get(5..5 + len)
        .ok_or_else(|| unreadable("cannot reach the collector: truncated gRPC frame"))?;
    if body[0] == 0 {
        return Ok(Bytes::copy_from_slice(msg));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(msg)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut out)
        .map_err(|e| unreadable("cannot reach the collector: gunzip").caused_by(e))?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_frames_round_trip_plain_and_gzip() {
        let msg = b"hello otlp".to_vec();
        let mut plain = vec![0u8];
        plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        plain.extend_from_slice(&msg);
        assert_eq!(unframe(&plain).unwrap().as_ref(), msg.as_slice());
        let packed = collect_ready(Payload::from(msg.clone()).gzip().unwrap());
        let mut zipped = vec![1u8];
        zipped.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        zipped.extend_from_slice(&packed);
        assert_eq!(unframe(&zipped).unwrap().as_ref(), msg.as_slice());
        assert!(unframe(&[0, 0, 0, 0, 9, 1]).is_err(), "truncated");
        assert!(unframe(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_payload_is_sent_piece_by_piece_with_its_exact_length() {
        use http_body::Body;
        let mut p = Payload::from(b"head".to_vec());
        p.push(b"spans-1".to_vec());
        p.push(Bytes::from_static(b"spans-2"));
        assert_eq!(p.size_hint().exact(), Some(18));
        let whole = collect_ready(p);
        assert_eq!(whole, b"headspans-1spans-2");
        // gzip covers every piece, in order.
        let mut p = Payload::from(b"head".to_vec());
        p.push(b"tail".to_vec());
        let zipped = collect_ready(p.gzip().unwrap());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut out)
            .unwrap();
        assert_eq!(out, "headtail");
    }

    /// Drain a body that is always ready (no runtime needed).
    fn collect_ready(mut body: Payload) -> Vec<u8> {
        use http_body::Body;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        while let std::task::Poll::Ready(Some(Ok(frame))) =
            std::pin::Pin::new(&mut body).poll_frame(&mut cx)
        {
            out.extend_from_slice(&frame.into_data().unwrap());
        }
        assert!(body.is_end_stream());
        out
    }

    #[test]
    fn grpc_status_comes_from_trailers_or_headers() {
        let mut ok = http::HeaderMap::new();
        ok.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(grpc_status(&http::HeaderMap::new(), &ok).is_ok());
        assert!(grpc_status(&ok, &http::HeaderMap::new()).is_ok());
        let mut bad = http::HeaderMap::new();
        bad.insert("grpc-status", HeaderValue::from_static("14"));
        bad.insert("grpc-message", HeaderValue::from_static("unavailable"));
        let e = grpc_status(&http::HeaderMap::new(), &bad).unwrap_err();
        assert!(e.to_string().contains("14"), "{e}");
        assert!(grpc_status(&http::HeaderMap::new(), &http::HeaderMap::new()).is_err());
        bad.insert(
            "grpc-message",
            HeaderValue::from_static("quota%20exceeded%3A%20caf%C3%A9 100%"),
        );
        let e = grpc_status(&http::HeaderMap::new(), &bad).unwrap_err();
        assert!(
            e.to_string().contains(r#""quota exceeded: café 100%""#),
            "{e}"
        );
    }

    #[test]
    fn grpc_messages_are_percent_decoded_and_bad_escapes_kept() {
        assert_eq!(percent_decoded(b"a%2Cb%2cc"), "a,b,c");
        assert_eq!(percent_decoded(b"%zz%4"), "%zz%4");
        assert_eq!(percent_decoded(b"%E2%9C%93 done"), "\u{2713} done");
        assert_eq!(percent_decoded(b"%FF"), "\u{FFFD}");
        assert_eq!(percent_decoded(b""), "");
    }

    fn verdict(e: &Error) -> (ErrorType, Retry) {
        (e.kind(), e.retry_verdict())
    }

    /// `grpc-status-details-bin` holding one detail of type `type_url`, unpadded as gRPC sends it.
    fn details(type_url: &str) -> HeaderValue {
        details_with(type_url, Vec::new())
    }

    fn details_with(type_url: &str, value: Vec<u8>) -> HeaderValue {
        use base64::Engine as _;
        let status = RpcStatus {
            details: vec![RpcAny {
                type_url: type_url.into(),
                value,
            }],
        };
        let bytes = prost::Message::encode_to_vec(&status);
        let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
        HeaderValue::from_str(&text).unwrap()
    }

    #[test]
    fn retry_verdicts_follow_the_otlp_spec() {
        let again = (ErrorType::Status, Retry::IfIdempotent);
        let never = (ErrorType::Status, Retry::Never);
        for status in [429, 502, 503, 504] {
            assert_eq!(verdict(&http_refused(status)), again, "HTTP {status}");
        }
        for status in [300, 400, 401, 403, 404, 408, 413, 415, 500, 501, 505] {
            assert_eq!(verdict(&http_refused(status)), never, "HTTP {status}");
        }
        assert_eq!(
            http_refused(503).to_string(),
            "the collector answered HTTP 503"
        );
        // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
        for code in ["1", "4", "10", "11", "14", "15"] {
            assert_eq!(verdict(&grpc_refused(code, "", false)), again, "{code}");
        }
        for code in [
            "2", "3", "5", "6", "7", "8", "9", "12", "13", "16", "missing", "x",
        ] {
            assert_eq!(verdict(&grpc_refused(code, "", false)), never, "{code}");
        }
        assert_eq!(
            grpc_refused("14", "down", false).to_string(),
            r#"the collector answered gRPC status 14 "down""#
        );
        // RESOURCE_EXHAUSTED is retryable only when the server sent RetryInfo.
        let mut exhausted = http::HeaderMap::new();
        exhausted.insert("grpc-status", HeaderValue::from_static("8"));
        let e = grpc_status(&http::HeaderMap::new(), &exhausted).unwrap_err();
        assert_eq!(verdict(&e), never);
        let quota = details("type.googleapis.com/google.rpc.QuotaFailure");
        exhausted.insert("grpc-status-details-bin", quota);
        let e = grpc_status(&http::HeaderMap::new(), &exhausted).unwrap_err();
        assert_eq!(verdict(&e), never);
        let retry_info = details("type.googleapis.com/google.rpc.RetryInfo");
        exhausted.insert("grpc-status-details-bin", retry_info);
        let e = grpc_status(&http::HeaderMap::new(), &exhausted).unwrap_err();
        assert_eq!(verdict(&e), again);
        assert_eq!(e.retry_after(), None, "RetryInfo without a delay");
        let info = RpcRetryInfo {
            retry_delay: Some(RpcDuration {
                seconds: 2,
                nanos: 500_000_000,
            }),
        };
        let with_delay = details_with(
            "type.googleapis.com/google.rpc.RetryInfo",
            prost::Message::encode_to_vec(&info),
        );
        exhausted.insert("grpc-status-details-bin", with_delay);
        let e = grpc_status(&http::HeaderMap::new(), &exhausted).unwrap_err();
        assert_eq!(verdict(&e), again);
        assert_eq!(e.retry_after(), Some(Duration::from_millis(2500)));
        exhausted.insert("grpc-status-details-bin", HeaderValue::from_static("!!"));
        let e = grpc_status(&http::HeaderMap::new(), &exhausted).unwrap_err();
        assert_eq!(verdict(&e), never, "undecodable details");
        // A missing status is UNKNOWN to gRPC.
        let e = grpc_status(&http::HeaderMap::new(), &http::HeaderMap::new()).unwrap_err();
        assert_eq!(verdict(&e), never);
        // The collector may have taken a timed-out export; a broken answer came.
        let e = timed_out(Duration::from_secs(10));
        assert_eq!(verdict(&e), (ErrorType::Timeout, Retry::IfIdempotent));
        assert_eq!(e.to_string(), "no answer from the collector within 10s");
        let e = unframe(&[0, 0, 0, 0, 9, 1]).unwrap_err();
        assert_eq!(verdict(&e), (ErrorType::UpstreamError, Retry::Never));
        let e = unbuildable("cannot build the export request");
        assert_eq!(verdict(&e), (ErrorType::BadRequest, Retry::Never));
    }

    fn target(url: String, timeout: Duration) -> Target {
        Target {
            signal: super::super::env::Signal::Traces,
            url: url.parse().unwrap(),
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            timeout,
            export_timeout: timeout,
            gzip: false,
            tls: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_refused_connect_is_unavailable_with_its_cause_and_always_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/v1/traces");
        let transport = Transport::new(target(url, Duration::from_secs(5))).unwrap();
        let e = transport.export(Payload::from(vec![1])).await.unwrap_err();
        assert_eq!(verdict(&e), (ErrorType::UpstreamUnavailable, Retry::Always));
        let source = std::error::Error::source(&e).expect("the cause is kept");
        assert!(
            source.is::<hyper_util::client::legacy::Error>(),
            "{source:?}"
        );
        let text = e.chain().to_string();
        assert!(text.starts_with("cannot reach the collector: "), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }

    #[tokio::test]
    async fn silence_is_a_timeout_that_may_be_retried() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let url = format!("http://{addr}/v1/traces");
        let transport = Transport::new(target(url, Duration::from_millis(200))).unwrap();
        let e = transport.export(Payload::from(vec![1])).await.unwrap_err();
        assert_eq!(verdict(&e), (ErrorType::Timeout, Retry::IfIdempotent));
    }
}

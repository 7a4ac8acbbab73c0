//! Spans: what the request path captures (a few header handles, ids, timings) and how the exporter task turns it into OTLP.
//!
//! Per request one SERVER span named `{METHOD} {route}` and, when Redline
//! called the upstream, one CLIENT child span per try (each physical request sent),
//! with the stable HTTP semantic conventions' attributes. Strings, redaction and protobuf encoding all happen
//! in the exporter task; the request path only clones reference-counted values.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use super::wire::{self, attr_int, attr_str};
use crate::metrics::{ErrorType, METHODS, method_index};
use crate::state::Runtime;
use crate::trace::TraceContext;

static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A `'static` attribute key, encoded at compile time.
macro_rules! key {
    ($k:literal) => {{
        static KEY: wire::Key = wire::Key::new($k);
        &KEY
    }};
}

/// `flags` bit saying whether the parent's remoteness is known (OTLP `SpanFlags`).
const HAS_IS_REMOTE: u32 = 0x100;
/// `flags` bit saying the parent span lives in another process.
const IS_REMOTE: u32 = 0x200;
/// W3C `sampled`: every exported span was recorded.
const SAMPLED: u32 = 0x01;

/// The request headers spans need, captured at arrival (cheap: header values are reference-counted).
#[derive(Debug, Clone)]
struct Captured {
    version: Version,
    host: Option<HeaderValue>,
    forwarded_host: Option<HeaderValue>,
    forwarded_proto: Option<HeaderValue>,
    forwarded_for: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl Captured {
    /// One walk over the headers (five hashed lookups cost more, even for a browser's twenty headers).
    fn new(version: Version, headers: &HeaderMap) -> Self {
        let mut c = Captured {
            version,
            host: None,
            forwarded_host: None,
            forwarded_proto: None,
            forwarded_for: None,
            user_agent: None,
        };
        for (name, value) in headers {
            let slot = if name == header::HOST {
                &mut c.host
            } else if name == header::USER_AGENT {
                &mut c.user_agent
            } else if name == X_FORWARDED_FOR {
                &mut c.forwarded_for
            } else if name == X_FORWARDED_PROTO {
                &mut c.forwarded_proto
            } else if name == X_FORWARDED_HOST {
                &mut c.forwarded_host
            } else {
                continue;
            };
            // The first of repeated headers, as `HeaderMap::get` gives.
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        }
        c
    }
}

/// An upstream try that another try followed: its own CLIENT span (the last try's is
/// the request's, ending with it).
#[derive(Debug, Clone, Copy)]
pub struct EarlierTry {
    /// The CLIENT span id the upstream was told (its `traceparent`'s parent).
    pub span_id: [u8; 8],
    /// Sent.
    pub start: Instant,
    /// Answered or failed.
    pub end: Instant,
    /// The status it answered with, if it answered.
    pub status: Option<u16>,
    /// Why it failed without an answer (`None` when it answered).
    pub error: ErrorType,
}

impl EarlierTry {
    /// `error.type`: the failure's class, else an error status (a 4xx or 5xx, as on the last try).
    fn error_type(&self) -> Option<Cow<'static, str>> {
        let status = self.status.unwrap_or(0);
        match self.error {
            ErrorType::None => (status >= 400).then(|| Cow::Owned(status.to_string())),
            kind => Some(kind.label(status)),
        }
    }
}

/// Per-request span state kept in the request context.
#[derive(Debug, Default)]
pub struct RequestSpan {
    /// The caller's `tracestate`, forwarded upstream untouched; `None` removes the header.
    pub tracestate: Option<HeaderValue>,
    upstream_started: Option<Instant>,
    captured: Option<Captured>,
    /// The tries before the last, when the request was resent (each its own CLIENT span).
    earlier: Vec<EarlierTry>,
    /// The fallback that answered (`redline.fallback` on the SERVER span).
    fallback: Option<&'static str>,
    /// A fault was injected (`redline.fault.injected` on the SERVER span).
    fault: bool,
}

impl RequestSpan {
    /// State for a request whose spans may be exported (`capture`) or not.
    pub fn new(tracestate: Option<HeaderValue>, capture: Option<&http::request::Parts>) -> Self {
        RequestSpan {
            tracestate,
            upstream_started: None,
            captured: capture.map(|p| Captured::new(p.version, &p.headers)),
            earlier: Vec::new(),
            fallback: None,
            fault: false,
        }
    }

    /// The upstream request is about to be sent: the CLIENT span starts now.
    pub fn upstream_sent(&mut self) {
        self.upstream_started = Some(Instant::now());
    }

    /// The (last) upstream try started at `at`, later than [`Self::upstream_sent`] said:
    /// after an injected delay, or after earlier tries.
    pub fn upstream_sent_at(&mut self, at: Instant) {
        self.upstream_started = Some(at);
    }

    /// Nothing went upstream after all (an injected abort answered): no CLIENT span.
    pub fn upstream_not_sent(&mut self) {
        self.upstream_started = None;
    }

    /// The request was resent: `earlier` are the tries before the last, which started at
    /// `last_start` (its span id is the trace's `client_span_id`).
    pub fn resent(&mut self, earlier: Vec<EarlierTry>, last_start: Instant) {
        self.earlier = earlier;
        self.upstream_started = Some(last_start);
    }

    /// How many spans the request makes (for drop counts).
    pub fn span_count(&self) -> u64 {
        let client = u64::from(self.upstream_started.is_some());
        1 + client + self.earlier.len() as u64
    }

    /// A fallback (`stale`, `static`) answered instead of the app's failure.
    pub fn fallback(&mut self, kind: &'static str) {
        self.fallback = Some(kind);
    }

    /// A fault was injected into this request (rehearsal).
    pub fn fault_injected(&mut self) {
        self.fault = true;
    }

    /// Whether this request's spans can still be exported.
    pub fn is_captured(&self) -> bool {
        self.captured.is_some()
    }
}

/// How a request ended, as `RequestCtx::finish` knows it.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// Trace ids and the head decision.
    pub trace: &'a TraceContext,
    /// Request method.
    pub method: &'a Method,
    /// Request target as received.
    pub uri: &'a Uri,
    /// The TCP peer.
    pub client: SocketAddr,
    /// Flow name.
    pub flow: &'a Arc<str>,
    /// `http.route`.
    pub route: &'a Arc<str>,
    /// Status sent to the client, if any was.
    pub status: Option<u16>,
    /// Whether that status came from the upstream (rather than from Redline).
    pub upstream_responded: bool,
    /// Outcome class.
    pub error: ErrorType,
    /// Arrival (monotonic).
    pub started: Instant,
    /// Arrival (wall clock).
    pub started_wall: SystemTime,
    /// Arrival to last byte.
    pub duration: Duration,
    /// `x-request-id`.
    pub request_id: &'a HeaderValue,
    /// The runtime the request ran under (redaction rules, upstream address).
    pub runtime: &'a Arc<Runtime>,
}

/// One finished request's spans, owned, waiting in the export queue.
#[derive(Debug)]
pub struct SpanRecord {
    trace: TraceContext,
    tracestate: Option<HeaderValue>,
    captured: Captured,
    method: Method,
    uri: Uri,
    client: SocketAddr,
    flow: Arc<str>,
    route: Arc<str>,
    status: Option<u16>,
    upstream_status: Option<u16>,
    error: ErrorType,
    start_ns: u64,
    end_ns: u64,
    client_start_ns: Option<u64>,
    request_id: HeaderValue,
    runtime: Arc<Runtime>,
    /// Arrival (monotonic), to place the earlier tries' times.
    started: Instant,
    earlier: Vec<EarlierTry>,
    fallback: Option<&'static str>,
    fault: bool,
}

impl SpanRecord {
    /// Move what the spans need out of the request; `None` when nothing was captured.
    pub fn take(span: &mut RequestSpan, o: &Outcome<'_>) -> Option<SpanRecord> {
        let captured = span.captured.take()?;
        let start_ns = unix_nanos(o.started_wall);
        let client_start_ns = span
            .upstream_started
            .map(|t| start_ns + nanos(t.saturating_duration_since(o.started)));
        Some(SpanRecord {
            trace: *o.trace,
            tracestate: span.tracestate.take(),
            captured,
            method: o.method.clone(),
            uri: o.uri.clone(),
            client: o.client,
            flow: o.flow.clone(),
            route: o.route.clone(),
            status: o.status,
            upstream_status: o.status.filter(|_| o.upstream_responded),
            error: o.error,
            start_ns,
            end_ns: start_ns + nanos(o.duration),
            client_start_ns,
            request_id: o.request_id.clone(),
            runtime: o.runtime.clone(),
            started: o.started,
            earlier: std::mem::take(&mut span.earlier),
            fallback: span.fallback,
            fault: span.fault,
        })
    }

    /// How many spans this record becomes (for drop counts).
    pub fn span_count(&self) -> u64 {
        1 + u64::from(self.client_start_ns.is_some()) + self.earlier.len() as u64
    }

    /// Append the SERVER span, then a CLIENT span per upstream try if the upstream was
    /// called, as encoded `ScopeSpans.spans` entries. `scratch` (for the peer address's
    /// text) is reused between calls.
    pub fn encode(&self, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        wire::nested(out, wire::SCOPE_SPANS_SPANS, |b| {
            self.encode_server(b, scratch);
        });
        let Some(start) = self.client_start_ns else {
            return;
        };
        for (resends, t) in (0..).zip(&self.earlier) {
            let client = ClientTry {
                span_id: &t.span_id,
                start: self.at(t.start),
                end: self.at(t.end),
                status: t.status,
                resends,
                error_type: t.error_type(),
            };
            wire::nested(out, wire::SCOPE_SPANS_SPANS, |b| {
                self.encode_client(b, &client)
            });
        }
        let last = ClientTry {
            span_id: &self.trace.client_span_id,
            start,
            end: self.end_ns.max(start),
            status: self.upstream_status,
            resends: u32::try_from(self.earlier.len()).unwrap_or(u32::MAX),
            error_type: self.client_error_type(),
        };
        wire::nested(out, wire::SCOPE_SPANS_SPANS, |b| {
            self.encode_client(b, &last)
        });
    }

    /// Unix nanoseconds of an instant during the request.
    fn at(&self, t: Instant) -> u64 {
        self.start_ns + nanos(t.saturating_duration_since(self.started))
    }

    /// `http.request.method` (+ `_original`); returns the method word for the span name.
    fn method_attrs(&self, b: &mut Vec<u8>) -> &'static str {
        let known = METHODS[method_index(&self.method)];
        attr_str(b, key!("http.request.method"), known);
        if known == "_OTHER" {
            attr_str(
                b,
                key!("http.request.method_original"),
                self.method.as_str(),
            );
            return "HTTP";
        }
        known
    }

    fn encode_server(&self, b: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        let parent = self.trace.parent_span_id;
        wire::bytes(b, 1, &self.trace.trace_id);
        wire::bytes(b, 2, &self.trace.span_id);
        if let Some(state) = &self.tracestate {
            wire::bytes(b, 3, text(state).as_bytes());
        }
        if let Some(p) = &parent {
            wire::bytes(b, 4, p);
        }
        let remote = if parent.is_some() { IS_REMOTE } else { 0 };
        wire::fixed32(b, 16, SAMPLED | HAS_IS_REMOTE | remote);
        wire::varint(b, 6, SPAN_KIND_SERVER);
        wire::fixed64(b, 7, self.start_ns);
        wire::fixed64(b, 8, self.end_ns);
        let method = self.method_attrs(b);
        wire::string_parts(b, 5, &[method, " ", &self.route]);
        attr_str(b, key!("http.route"), &self.route);
        if let Some(status) = self.status {
            attr_int(b, key!("http.response.status_code"), i64::from(status));
        }
        attr_str(b, key!("url.path"), self.uri.path());
        if let Some(q) = self.uri.query() {
            attr_str(b, key!("url.query"), &self.runtime.redactor.query(q));
        }
        let scheme = self.scheme();
        attr_str(b, key!("url.scheme"), scheme);
        if let Some((host, port)) = self.server_address(scheme) {
            attr_str(b, key!("server.address"), host);
            attr_int(b, key!("server.port"), i64::from(port));
        }
        // By hand: `IpAddr`'s Display was a tenth of the cost of encoding a span.
        scratch.clear();
        crate::netfmt::push_ip(scratch, self.client.ip());
        let peer = std::str::from_utf8(scratch).unwrap_or_default();
        attr_str(
            b,
            key!("client.address"),
            self.forwarded_client().unwrap_or(peer),
        );
        attr_str(b, key!("network.peer.address"), peer);
        attr_int(b, key!("network.peer.port"), i64::from(self.client.port()));
        let version = protocol_version(self.captured.version);
        attr_str(b, key!("network.protocol.version"), version);
        if let Some(ua) = &self.captured.user_agent {
            attr_str(b, key!("user_agent.original"), &text(ua));
        }
        let error_type = self.error_type();
        if let Some(e) = &error_type {
            attr_str(b, key!("error.type"), e);
        }
        attr_str(b, key!("redline.flow"), &self.flow);
        if let Some(kind) = self.fallback {
            attr_str(b, key!("redline.fallback"), kind);
        }
        if self.fault {
            wire::attr_bool(b, key!("redline.fault.injected"), true);
        }
        let id = text(&self.request_id);
        wire::attr_str_array(b, key!("http.request.header.x-request-id"), &id);
        let failed = self.error.is_error();
        wire::status(
            b,
            if failed { STATUS_ERROR } else { 0 },
            error_type.as_deref().unwrap_or(""),
        );
    }

    fn encode_client(&self, b: &mut Vec<u8>, t: &ClientTry<'_>) {
        let rt = &self.runtime;
        wire::bytes(b, 1, &self.trace.trace_id);
        wire::bytes(b, 2, t.span_id);
        wire::bytes(b, 4, &self.trace.span_id);
        wire::fixed32(b, 16, SAMPLED | HAS_IS_REMOTE);
        wire::varint(b, 6, SPAN_KIND_CLIENT);
        wire::fixed64(b, 7, t.start);
        wire::fixed64(b, 8, t.end);
        let method = self.method_attrs(b);
        wire::string_parts(b, 5, &[method, " ", &self.route]);
        let scheme = rt.upstream_scheme.as_str();
        let authority = rt.upstream_authority.as_str();
        let path = self.uri.path();
        let query = self.uri.query().map(|q| rt.redactor.query(q));
        let full: &[&str] = match &query {
            Some(q) => &[scheme, "://", authority, path, "?", q],
            None => &[scheme, "://", authority, path],
        };
        wire::attr_str_parts(b, key!("url.full"), full);
        attr_str(b, key!("url.template"), &self.route);
        attr_str(b, key!("server.address"), &rt.upstream_host);
        attr_int(b, key!("server.port"), i64::from(rt.upstream_port));
        attr_str(b, key!("network.protocol.version"), "1.1");
        if let Some(status) = t.status {
            attr_int(b, key!("http.response.status_code"), i64::from(status));
        }
        // Absent on the first try (semconv: set on resends only).
        if t.resends > 0 {
            attr_int(b, key!("http.request.resend_count"), i64::from(t.resends));
        }
        if let Some(e) = &t.error_type {
            attr_str(b, key!("error.type"), e);
        }
        let code = if t.error_type.is_some() {
            STATUS_ERROR
        } else {
            0
        };
        wire::status(b, code, t.error_type.as_deref().unwrap_or(""));
    }

    /// `error.type` of the SERVER span: the metric's `error_type`, so spans and metrics agree.
    fn error_type(&self) -> Option<Cow<'static, str>> {
        let label = self.error.label(self.status.unwrap_or(0));
        (!label.is_empty()).then_some(label)
    }

    /// On the CLIENT span a 4xx is an error too; a client that left cancelled the call, which is not.
    fn client_error_type(&self) -> Option<Cow<'static, str>> {
        match self.error {
            ErrorType::Timeout | ErrorType::UpstreamUnavailable | ErrorType::UpstreamError => {
                self.error_type()
            }
            _ => self
                .upstream_status
                .filter(|s| *s >= 400)
                .map(|s| Cow::Owned(s.to_string())),
        }
    }

    /// The client's original scheme when a front proxy said so, else the listener's.
    fn scheme(&self) -> &'static str {
        match self.captured.forwarded_proto.as_ref().map(|v| v.as_bytes()) {
            Some(p) if p.eq_ignore_ascii_case(b"https") => "https",
            _ => "http",
        }
    }

    /// `X-Forwarded-Host`, else the h2 `:authority`, else `Host` (semconv order).
    fn server_address(&self, scheme: &str) -> Option<(&str, u16)> {
        let text = first_value(&self.captured.forwarded_host)
            .or_else(|| self.uri.authority().map(|a| a.as_str()))
            .or_else(|| first_value(&self.captured.host))?;
        let (host, port) = split_host_port(text);
        Some((host, port.unwrap_or(default_port(scheme))))
    }

    /// The original client from the first `X-Forwarded-For` entry, if a front proxy set one.
    fn forwarded_client(&self) -> Option<&str> {
        first_value(&self.captured.forwarded_for)
    }
}

/// What differs between the CLIENT spans of one request's tries.
struct ClientTry<'a> {
    span_id: &'a [u8; 8],
    start: u64,
    end: u64,
    status: Option<u16>,
    /// Tries before this one (`http.request.resend_count`).
    resends: u32,
    error_type: Option<Cow<'static, str>>,
}

/// `Span.kind` SERVER.
const SPAN_KIND_SERVER: u64 = 2;
/// `Span.kind` CLIENT.
const SPAN_KIND_CLIENT: u64 = 3;
/// `Status.code` ERROR.
const STATUS_ERROR: i32 = 2;

/// A header value as a protobuf string (which must be UTF-8): borrowed when it already
/// is, as nearly all are; `from_utf8_lossy` alone walks the bytes far more slowly.
fn text(v: &HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    }
}

/// The first comma-separated entry of a header, trimmed, if not empty.
fn first_value(v: &Option<HeaderValue>) -> Option<&str> {
    v.as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `host[:port]` or `[v6]:port`, without brackets, borrowing from `text`.
fn split_host_port(text: &str) -> (&str, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (text, None),
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, nanos)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A string attribute (resource and metric attributes, built once per export).
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// An integer attribute (metric attributes).
pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, Status, span, status};
    use prost::Message;

    use super::*;
    use crate::config::{Config, Upstream};
    use crate::state::Shared;
    use crate::stats::ManualClock;

    fn runtime() -> Arc<Runtime> {
        let mut config = Config {
            upstream: Some(Upstream::parse("http://127.0.0.1:3000").unwrap()),
            ..Config::default()
        };
        config.redact.query_params = vec!["token".into()];
        let shared = Shared::new(
            config,
            Arc::new(ManualClock::new(0)),
            crate::access_log::AccessLog::off(),
        )
        .unwrap();
        shared.runtime.load_full()
    }

    fn record(
        method: &str,
        uri: &str,
        status: Option<u16>,
        upstream: bool,
        error: ErrorType,
    ) -> SpanRecord {
        let mut req = http::Request::builder().method(method).uri(uri);
        req = req
            .header("host", "shop.example:8080")
            .header("user-agent", "curl/8")
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.1");
        let (parts, ()) = req.body(()).unwrap().into_parts();
        let mut span = RequestSpan::new(None, Some(&parts));
        let trace = TraceContext::new_root();
        let started = Instant::now();
        span.upstream_sent();
        let rt = runtime();
        let outcome = Outcome {
            trace: &trace,
            method: &parts.method,
            uri: &parts.uri,
            client: "10.0.0.1:5555".parse().unwrap(),
            flow: &Arc::from("checkout"),
            route: &Arc::from("/api/orders/{id}"),
            status,
            upstream_responded: upstream,
            error,
            started,
            started_wall: SystemTime::now(),
            duration: Duration::from_millis(12),
            request_id: &HeaderValue::from_static("req-1"),
            runtime: &rt,
        };
        SpanRecord::take(&mut span, &outcome).unwrap()
    }

    /// Encode as the exporter does, then decode with the generated prost types.
    fn spans(rec: SpanRecord) -> Vec<Span> {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        rec.encode(&mut out, &mut scratch);
        ScopeSpans::decode(out.as_slice()).unwrap().spans
    }

    fn attr(span: &Span, key: &str) -> Option<any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    fn s(v: &str) -> Option<any_value::Value> {
        Some(any_value::Value::StringValue(v.into()))
    }

    #[test]
    fn each_try_is_its_own_client_span_and_only_resends_carry_a_count() {
        let first = spans(record(
            "GET",
            "/api/orders/7",
            Some(200),
            true,
            ErrorType::None,
        ));
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .all(|s| attr(s, "http.request.resend_count").is_none())
        );
        let mut rec = record("GET", "/api/orders/7", Some(200), true, ErrorType::None);
        let sent = rec.started + Duration::from_millis(1);
        let tried = |status, error, span_id| EarlierTry {
            span_id,
            start: sent,
            end: sent + Duration::from_millis(2),
            status,
            error,
        };
        rec.earlier = vec![
            tried(Some(503), ErrorType::None, [1; 8]),
            tried(None, ErrorType::UpstreamError, [2; 8]),
        ];
        rec.fault = true;
        rec.fallback = Some("stale");
        assert_eq!(rec.span_count(), 4);
        let all = spans(rec);
        let yes = Some(any_value::Value::BoolValue(true));
        assert_eq!(attr(&all[0], "redline.fault.injected"), yes);
        assert_eq!(attr(&all[0], "redline.fallback"), s("stale"));
        assert_eq!(attr(&all[0], "http.request.resend_count"), None);
        let (first, second, last) = (&all[1], &all[2], &all[3]);
        assert_eq!(attr(first, "http.request.resend_count"), None);
        assert_eq!(attr(first, "error.type"), s("503"));
        let code = |n| Some(any_value::Value::IntValue(n));
        assert_eq!(attr(first, "http.response.status_code"), code(503));
        assert_eq!(first.span_id, vec![1; 8]);
        assert_eq!(
            first.end_time_unix_nano - first.start_time_unix_nano,
            2_000_000
        );
        assert_eq!(attr(second, "http.request.resend_count"), code(1));
        assert_eq!(attr(second, "error.type"), s("upstream_error"));
        assert_eq!(attr(second, "http.response.status_code"), None);
        assert_eq!(
            second.status.as_ref().map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
        assert_eq!(attr(last, "http.request.resend_count"), code(2));
        assert_eq!(attr(last, "error.type"), None);
        assert_eq!(attr(last, "http.response.status_code"), code(200));
        for client in [first, second, last] {
            assert_eq!(client.kind, span::SpanKind::Client as i32);
            assert_eq!(client.parent_span_id, all[0].span_id);
        }
    }

    #[test]
    fn server_span_carries_the_semconv_attributes() {
        let rec = record(
            "GET",
            "/api/orders/7?token=s3cret&x=1",
            Some(200),
            true,
            ErrorType::None,
        );
        let spans = spans(rec);
        let server = &spans[0];
        assert_eq!(server.name, "GET /api/orders/{id}");
        assert_eq!(server.kind, span::SpanKind::Server as i32);
        assert_eq!(attr(server, "http.request.method"), s("GET"));
        assert_eq!(attr(server, "url.query"), s("token=REDACTED&x=1"));
        assert_eq!(attr(server, "url.path"), s("/api/orders/7"));
        assert_eq!(attr(server, "server.address"), s("shop.example"));
        assert_eq!(
            attr(server, "server.port"),
            Some(any_value::Value::IntValue(8080))
        );
        assert_eq!(attr(server, "client.address"), s("203.0.113.9"));
        assert_eq!(attr(server, "user_agent.original"), s("curl/8"));
        assert_eq!(attr(server, "network.protocol.version"), s("1.1"));
        assert_eq!(attr(server, "error.type"), None);
        assert_eq!(server.status, Some(Status::default()));
        assert_eq!(
            server.end_time_unix_nano - server.start_time_unix_nano,
            12_000_000
        );
        let client = &spans[1];
        assert_eq!(client.parent_span_id, server.span_id);
        assert_eq!(
            attr(client, "url.full"),
            s("http://127.0.0.1:3000/api/orders/7?token=REDACTED&x=1")
        );
        assert_eq!(
            attr(client, "server.port"),
            Some(any_value::Value::IntValue(3000))
        );
    }

    #[test]
    fn status_rules_differ_between_server_and_client() {
        let all = spans(record("GET", "/x", Some(404), true, ErrorType::None));
        assert_eq!(
            all[0].status,
            Some(Status::default()),
            "4xx leaves SERVER unset"
        );
        assert_eq!(
            all[1].status.as_ref().unwrap().code,
            status::StatusCode::Error as i32
        );
        assert_eq!(attr(&all[1], "error.type"), s("404"));
        let all = spans(record(
            "GET",
            "/x",
            Some(502),
            false,
            ErrorType::UpstreamUnavailable,
        ));
        assert_eq!(attr(&all[0], "error.type"), s("upstream_unavailable"));
        assert_eq!(
            all[0].status.as_ref().unwrap().code,
            status::StatusCode::Error as i32
        );
        assert_eq!(attr(&all[1], "http.response.status_code"), None);
        let all = spans(record("GET", "/x", None, false, ErrorType::ClientClosed));
        assert_eq!(
            all[0].status,
            Some(Status::default()),
            "client_closed is not an error"
        );
        assert_eq!(attr(&all[0], "error.type"), s("client_closed"));
        assert_eq!(attr(&all[0], "http.response.status_code"), None);
        assert_eq!(all[1].status, Some(Status::default()));
    }

    #[test]
    fn forwarded_headers_win_and_the_first_of_repeated_ones_counts() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
        headers.insert("host", HeaderValue::from_static("internal:3000"));
        headers.insert("x-forwarded-host", HeaderValue::from_static("shop.example"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        let mut rec = record("GET", "/x", Some(200), true, ErrorType::None);
        rec.captured = Captured::new(Version::HTTP_11, &headers);
        let server = &spans(rec)[0];
        assert_eq!(attr(server, "client.address"), s("198.51.100.7"));
        assert_eq!(attr(server, "server.address"), s("shop.example"));
        assert_eq!(
            attr(server, "server.port"),
            Some(any_value::Value::IntValue(443))
        );
        assert_eq!(attr(server, "url.scheme"), s("https"));
        assert_eq!(attr(server, "user_agent.original"), None);
    }

    #[test]
    fn host_and_port_are_split_without_brackets() {
        assert_eq!(split_host_port("shop:8080"), ("shop", Some(8080)));
        assert_eq!(split_host_port("shop"), ("shop", None));
        assert_eq!(split_host_port("[::1]:9000"), ("::1", Some(9000)));
        assert_eq!(split_host_port("[::1]"), ("::1", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }

    #[test]
    fn header_text_is_borrowed_when_utf8_and_repaired_when_not() {
        let ok = HeaderValue::from_static("curl/8.5");
        assert!(matches!(text(&ok), Cow::Borrowed("curl/8.5")));
        let latin1 = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(text(&latin1), "caf\u{FFFD}");
    }

    #[test]
    fn unknown_methods_are_other_with_the_original() {
        let all = spans(record("PURGE", "/x", Some(200), true, ErrorType::None));
        assert_eq!(attr(&all[0], "http.request.method"), s("_OTHER"));
        assert_eq!(attr(&all[0], "http.request.method_original"), s("PURGE"));
        assert_eq!(all[0].name, "HTTP /api/orders/{id}");
    }
}

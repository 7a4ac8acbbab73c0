//! Spans: what the request path captures (a few header handles, ids, timings) and how the exporter task turns it into OTLP.
//!
//! Per request one SERVER span named `{METHOD} {route}` and, when Redline
//! called the upstream, one CLIENT child span, with the stable HTTP semantic
//! conventions' attributes. Strings, redaction and protobuf encoding all happen
//! in the exporter task; the request path only clones reference-counted values.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};

use crate::metrics::{ErrorType, METHODS, method_index};
use crate::state::Runtime;
use crate::trace::TraceContext;

static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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
    fn new(version: Version, headers: &HeaderMap) -> Self {
        Captured {
            version,
            host: headers.get(header::HOST).cloned(),
            forwarded_host: headers.get(&X_FORWARDED_HOST).cloned(),
            forwarded_proto: headers.get(&X_FORWARDED_PROTO).cloned(),
            forwarded_for: headers.get(&X_FORWARDED_FOR).cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
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
}

impl RequestSpan {
    /// State for a request whose spans may be exported (`capture`) or not.
    pub fn new(tracestate: Option<HeaderValue>, capture: Option<&http::request::Parts>) -> Self {
        RequestSpan {
            tracestate,
            upstream_started: None,
            captured: capture.map(|p| Captured::new(p.version, &p.headers)),
        }
    }

    /// The upstream request is about to be sent: the CLIENT span starts now.
    pub fn upstream_sent(&mut self) {
        self.upstream_started = Some(Instant::now());
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
        })
    }

    /// How many spans this record becomes (for drop counts).
    pub fn span_count(&self) -> u64 {
        1 + u64::from(self.client_start_ns.is_some())
    }

    /// The SERVER span, then the CLIENT span if the upstream was called.
    pub fn into_spans(self, out: &mut Vec<Span>) {
        out.push(self.server_span());
        if let Some(client) = self.client_span() {
            out.push(client);
        }
    }

    fn method_attrs(&self, attrs: &mut Vec<KeyValue>) -> &'static str {
        let known = METHODS[method_index(&self.method)];
        attrs.push(kv("http.request.method", known));
        if known == "_OTHER" {
            attrs.push(kv("http.request.method_original", self.method.as_str()));
        }
        known
    }

    fn server_span(&self) -> Span {
        let mut attrs = Vec::with_capacity(20);
        let method = self.method_attrs(&mut attrs);
        attrs.push(kv("http.route", &self.route));
        if let Some(status) = self.status {
            attrs.push(kv_int("http.response.status_code", i64::from(status)));
        }
        attrs.push(kv("url.path", self.uri.path()));
        if let Some(q) = self.uri.query() {
            attrs.push(kv("url.query", &self.runtime.redactor.query(q)));
        }
        let scheme = self.scheme();
        attrs.push(kv("url.scheme", scheme));
        if let Some((host, port)) = self.server_address(scheme) {
            attrs.push(kv("server.address", &host));
            attrs.push(kv_int("server.port", i64::from(port)));
        }
        attrs.push(kv("client.address", &self.client_address()));
        attrs.push(kv("network.peer.address", &self.client.ip().to_string()));
        attrs.push(kv_int("network.peer.port", i64::from(self.client.port())));
        attrs.push(kv(
            "network.protocol.version",
            protocol_version(self.captured.version),
        ));
        if let Some(ua) = &self.captured.user_agent {
            attrs.push(kv(
                "user_agent.original",
                &String::from_utf8_lossy(ua.as_bytes()),
            ));
        }
        let error_type = self.error_type();
        if let Some(e) = &error_type {
            attrs.push(kv("error.type", e));
        }
        attrs.push(kv("redline.flow", &self.flow));
        attrs.push(kv_strings(
            "http.request.header.x-request-id",
            &String::from_utf8_lossy(self.request_id.as_bytes()),
        ));
        let name_method = if method == "_OTHER" { "HTTP" } else { method };
        let parent = self.trace.parent_span_id;
        Span {
            trace_id: self.trace.trace_id.to_vec(),
            span_id: self.trace.span_id.to_vec(),
            trace_state: self
                .tracestate
                .as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            flags: SAMPLED | HAS_IS_REMOTE | if parent.is_some() { IS_REMOTE } else { 0 },
            name: format!("{name_method} {}", self.route),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: self.end_ns,
            attributes: attrs,
            status: Some(span_status(self.error.is_error(), error_type)),
            ..Default::default()
        }
    }

    fn client_span(&self) -> Option<Span> {
        let start = self.client_start_ns?;
        let mut attrs = Vec::with_capacity(10);
        let method = self.method_attrs(&mut attrs);
        let rt = &self.runtime;
        let scheme = rt.upstream_scheme.as_str();
        let path = self.uri.path();
        let full = match self.uri.query() {
            Some(q) => format!(
                "{scheme}://{}{path}?{}",
                rt.upstream_authority,
                rt.redactor.query(q)
            ),
            None => format!("{scheme}://{}{path}", rt.upstream_authority),
        };
        attrs.push(kv("url.full", &full));
        attrs.push(kv("url.template", &self.route));
        attrs.push(kv(
            "server.address",
            host_only(rt.upstream_authority.host()),
        ));
        let port = rt
            .upstream_authority
            .port_u16()
            .unwrap_or(default_port(scheme));
        attrs.push(kv_int("server.port", i64::from(port)));
        attrs.push(kv("network.protocol.version", "1.1"));
        if let Some(status) = self.upstream_status {
            attrs.push(kv_int("http.response.status_code", i64::from(status)));
        }
        let error_type = self.client_error_type();
        if let Some(e) = &error_type {
            attrs.push(kv("error.type", e));
        }
        let name_method = if method == "_OTHER" { "HTTP" } else { method };
        Some(Span {
            trace_id: self.trace.trace_id.to_vec(),
            span_id: self.trace.client_span_id.to_vec(),
            trace_state: String::new(),
            parent_span_id: self.trace.span_id.to_vec(),
            flags: SAMPLED | HAS_IS_REMOTE,
            name: format!("{name_method} {}", self.route),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: self.end_ns.max(start),
            attributes: attrs,
            status: Some(span_status(error_type.is_some(), error_type)),
            ..Default::default()
        })
    }

    /// `error.type` of the SERVER span: the metric's `error_type`, so spans and metrics agree.
    fn error_type(&self) -> Option<String> {
        let label = self.error.label(self.status.unwrap_or(0));
        (!label.is_empty()).then(|| label.into_owned())
    }

    /// On the CLIENT span a 4xx is an error too; a client that left cancelled the call, which is not.
    fn client_error_type(&self) -> Option<String> {
        match self.error {
            ErrorType::Timeout | ErrorType::UpstreamUnavailable | ErrorType::UpstreamError => {
                self.error_type()
            }
            _ => self
                .upstream_status
                .filter(|s| *s >= 400)
                .map(|s| s.to_string()),
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
    fn server_address(&self, scheme: &str) -> Option<(String, u16)> {
        let text = self
            .captured
            .forwarded_host
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
            .or_else(|| self.uri.authority().map(|a| a.as_str().to_string()))
            .or_else(|| {
                self.captured
                    .host
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })?;
        let authority: http::uri::Authority = text.parse().ok()?;
        let port = authority.port_u16().unwrap_or(default_port(scheme));
        Some((host_only(authority.host()).to_string(), port))
    }

    /// The original client: the first `X-Forwarded-For` entry, else the TCP peer.
    fn client_address(&self) -> String {
        self.captured
            .forwarded_for
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map_or_else(|| self.client.ip().to_string(), str::to_string)
    }
}

fn span_status(error: bool, error_type: Option<String>) -> Status {
    if error {
        Status {
            message: error_type.unwrap_or_default(),
            code: status::StatusCode::Error as i32,
        }
    } else {
        Status::default()
    }
}

/// An IPv6 authority host comes bracketed; `server.address` wants the bare address.
fn host_only(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
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

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A string-array attribute (`http.request.header.*` are arrays per semconv).
fn kv_strings(key: &str, value: &str) -> KeyValue {
    let item = AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![item],
            })),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
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
    fn server_span_carries_the_semconv_attributes() {
        let rec = record(
            "GET",
            "/api/orders/7?token=s3cret&x=1",
            Some(200),
            true,
            ErrorType::None,
        );
        let mut spans = Vec::new();
        rec.into_spans(&mut spans);
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
        let mut spans = Vec::new();
        record("GET", "/x", Some(404), true, ErrorType::None).into_spans(&mut spans);
        assert_eq!(
            spans[0].status,
            Some(Status::default()),
            "4xx leaves SERVER unset"
        );
        assert_eq!(
            spans[1].status.as_ref().unwrap().code,
            status::StatusCode::Error as i32
        );
        assert_eq!(attr(&spans[1], "error.type"), s("404"));
        spans.clear();
        record(
            "GET",
            "/x",
            Some(502),
            false,
            ErrorType::UpstreamUnavailable,
        )
        .into_spans(&mut spans);
        assert_eq!(attr(&spans[0], "error.type"), s("upstream_unavailable"));
        assert_eq!(
            spans[0].status.as_ref().unwrap().code,
            status::StatusCode::Error as i32
        );
        assert_eq!(attr(&spans[1], "http.response.status_code"), None);
        spans.clear();
        record("GET", "/x", None, false, ErrorType::ClientClosed).into_spans(&mut spans);
        assert_eq!(
            spans[0].status,
            Some(Status::default()),
            "client_closed is not an error"
        );
        assert_eq!(attr(&spans[0], "error.type"), s("client_closed"));
        assert_eq!(attr(&spans[0], "http.response.status_code"), None);
        assert_eq!(spans[1].status, Some(Status::default()));
    }

    #[test]
    fn unknown_methods_are_other_with_the_original() {
        let mut spans = Vec::new();
        record("PURGE", "/x", Some(200), true, ErrorType::None).into_spans(&mut spans);
        assert_eq!(attr(&spans[0], "http.request.method"), s("_OTHER"));
        assert_eq!(attr(&spans[0], "http.request.method_original"), s("PURGE"));
        assert_eq!(spans[0].name, "HTTP /api/orders/{id}");
    }
}

//! OTLP export end to end: in-process collectors (hyper + prost for HTTP/protobuf, tonic for gRPC) and the real `rotel` collector.

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, metric};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use tokio::net::TcpListener;

use crate::support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

/// Everything a test collector received.
#[derive(Default)]
struct Inbox {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
    /// HTTP headers (or gRPC metadata) of every export request.
    headers: Vec<http::HeaderMap>,
    /// OTLP/JSON bodies as sent, with their request paths.
    json: Vec<(String, serde_json::Value)>,
}

/// An in-process OTLP collector.
#[derive(Clone)]
pub(crate) struct Collector {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
}

impl Collector {
    /// OTLP/HTTP protobuf receiver (hyper + prost), gzip-aware.
    pub(crate) async fn http() -> Collector {
        Self::http_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    fn http_on(listener: TcpListener) -> Collector {
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        tokio::spawn(serve_http(listener, inbox.clone()));
        Collector { addr, inbox }
    }

    /// OTLP/gRPC receiver built on opentelemetry-proto's tonic server types, accepting gzip.
    pub(crate) async fn grpc() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let sink = Sink(inbox.clone());
        let gzip = tonic::codec::CompressionEncoding::Gzip;
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()).accept_compressed(gzip))
            .add_service(MetricsServiceServer::new(sink.clone()).accept_compressed(gzip))
            .add_service(LogsServiceServer::new(sink).accept_compressed(gzip))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        Collector { addr, inbox }
    }

    /// A receiver behind TLS (`acceptor`: its certificate, and client verification when
    /// asked): OTLP/HTTP protobuf, or OTLP/gRPC (tonic's services over HTTP/2 with ALPN h2).
    pub(crate) async fn tls(acceptor: tokio_rustls::TlsAcceptor, grpc: bool) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let sink = Sink(inbox.clone());
        let routes = tonic::service::Routes::new(TraceServiceServer::new(sink.clone()))
            .add_service(MetricsServiceServer::new(sink.clone()))
            .add_service(LogsServiceServer::new(sink));
        let shared = inbox.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, inbox, routes) = (acceptor.clone(), shared.clone(), routes.clone());
                tokio::spawn(async move {
                    // A refused handshake (wrong CA, no client certificate) ends here.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let io = TokioIo::new(tls);
                    let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if grpc {
                        let svc = hyper_util::service::TowerToHyperService::new(routes);
                        let _ = server.http2_only().serve_connection(io, svc).await;
                    } else {
                        let svc =
                            hyper::service::service_fn(move |req| receive(req, inbox.clone()));
                        let _ = server.serve_connection(io, svc).await;
                    }
                });
            }
        });
        Collector { addr, inbox }
    }

    /// `https://localhost:PORT` (the test certificates name localhost).
    pub(crate) fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far (spans, metrics, export headers) as text, to search.
    pub(crate) fn dump(&self) -> String {
        let inbox = self.inbox.lock().unwrap();
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            inbox.traces, inbox.metrics, inbox.headers, inbox.logs
        )
    }

    /// Every log record received, with its request's resource attributes.
    pub(crate) fn log_records(&self) -> Vec<LogRecord> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| sl.log_records.clone())
            .collect()
    }

    pub(crate) fn spans(&self) -> Vec<Span> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    /// The SERVER span of the request with this `x-request-id`, and its CLIENT child.
    fn request_spans(&self, request_id: &str) -> Option<(Span, Option<Span>)> {
        let spans = self.spans();
        let wanted = Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: vec![opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(Value::StringValue(request_id.into())),
            }],
        });
        let server = spans.iter().find(|s| {
            s.kind == SpanKind::Server as i32
                && attr(&s.attributes, "http.request.header.x-request-id").as_ref() == Some(&wanted)
        })?;
        let client = spans
            .iter()
            .find(|s| s.kind == SpanKind::Client as i32 && s.parent_span_id == server.span_id)
            .cloned();
        Some((server.clone(), client))
    }

    async fn wait_request(&self, request_id: &str) -> (Span, Option<Span>) {
        eventually(Duration::from_secs(15), request_id, || async {
            self.request_spans(request_id)
        })
        .await
    }

    fn resource_attrs(&self) -> Vec<KeyValue> {
        let inbox = self.inbox.lock().unwrap();
        let from_traces = inbox
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|rs| rs.resource.clone());
        let from_metrics = inbox
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .filter_map(|rm| rm.resource.clone());
        from_traces
            .chain(from_metrics)
            .next()
            .map(|r| r.attributes)
            .unwrap_or_default()
    }

    /// The newest `http.server.request.duration` point matching `pred`.
    fn duration_point(
        &self,
        pred: impl Fn(&HistogramDataPoint) -> bool,
    ) -> Option<(i32, HistogramDataPoint)> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .metrics
            .iter()
            .rev()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .filter(|m| m.name == "http.server.request.duration" && m.unit == "s")
            .find_map(|m| match &m.data {
                Some(metric::Data::Histogram(h)) => h
                    .data_points
                    .iter()
                    .find(|p| pred(p))
                    .map(|p| (h.aggregation_temporality, p.clone())),
                _ => None,
            })
    }

    /// Every metric of the newest metrics export.
    pub(crate) fn newest_metrics(&self) -> Vec<opentelemetry_proto::tonic::metrics::v1::Metric> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .metrics
            .last()
            .into_iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| sm.metrics.clone())
            .collect()
    }

    /// Every OTLP/JSON body received (its path, the parsed JSON as sent).
    pub(crate) fn json_bodies(&self) -> Vec<(String, serde_json::Value)> {
        self.inbox.lock().unwrap().json.clone()
    }

    fn header(&self, name: &str) -> Option<String> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .headers
            .iter()
            .find_map(|h| h.get(name).map(|v| v.to_str().unwrap().to_string()))
    }
}

/// The SERVER span of the request with this `x-request-id`, once received.
pub(crate) async fn server_span(collector: &Collector, request_id: &str) -> Span {
    collector.wait_request(request_id).await.0
}

async fn serve_http(listener: TcpListener, inbox: Arc<Mutex<Inbox>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| receive(req, inbox.clone()));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn receive(
    req: Request<Incoming>,
    inbox: Arc<Mutex<Inbox>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let mut bytes = body.collect().await.unwrap().to_bytes().to_vec();
    if parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip")
    {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        bytes = plain;
    }
    // OTLP/JSON is read through opentelemetry-proto's serde types, the protobuf with prost.
    let content_type = parts.headers["content-type"].to_str().unwrap().to_string();
    let json = match content_type.as_str() {
        "application/x-protobuf" => false,
        "application/json" => true,
        other => panic!("unexpected content-type {other}"),
    };
    let mut inbox = inbox.lock().unwrap();
    inbox.headers.push(parts.headers.clone());
    let path = parts.uri.path();
    if json {
        let value = serde_json::from_slice(&bytes).unwrap();
        inbox.json.push((path.to_string(), value));
    }
    let answer = match path {
        "/v1/traces" => {
            inbox.traces.push(read(&bytes, json));
            ExportTraceServiceResponse::default().encode_to_vec()
        }
        "/v1/metrics" => {
            inbox.metrics.push(read(&bytes, json));
            ExportMetricsServiceResponse::default().encode_to_vec()
        }
        "/v1/logs" => {
            inbox.logs.push(read(&bytes, json));
            ExportLogsServiceResponse::default().encode_to_vec()
        }
        other => panic!("unexpected OTLP path {other}"),
    };
    // An empty message is `{}` in JSON.
    let answer = if json { b"{}".to_vec() } else { answer };
    let mut resp = Response::new(Full::new(Bytes::from(answer)));
    resp.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    Ok(resp)
}

/// An export request body, OTLP/JSON or protobuf.
fn read<M: Message + Default + serde::de::DeserializeOwned>(bytes: &[u8], json: bool) -> M {
    if json {
        serde_json::from_slice(bytes).unwrap()
    } else {
        M::decode(bytes).unwrap()
    }
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Inbox>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut inbox = self.0.lock().unwrap();
        inbox
            .headers
            .push(request.metadata().clone().into_headers());
        inbox.traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut inbox = self.0.lock().unwrap();
        inbox
            .headers
            .push(request.metadata().clone().into_headers());
        inbox.logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut inbox = self.0.lock().unwrap();
        inbox
            .headers
            .push(request.metadata().clone().into_headers());
        inbox.metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn s(v: &str) -> Option<Value> {
    Some(Value::StringValue(v.to_string()))
}

fn int(v: i64) -> Option<Value> {
    Some(Value::IntValue(v))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn status_code(span: &Span) -> i32 {
    span.status.as_ref().map_or(0, |s| s.code)
}

/// GET `url` with extra headers; returns status and body.
async fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, _, body) = send(req.body(Full::new(Bytes::new())).unwrap()).await;
    (status, body)
}

/// The headers the echo app received, from its JSON answer.
fn echoed(body: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["headers"].clone()
}

const CHECKOUT: &str = "flows:\n  - name: checkout\n    match: \"GET /api/orders/{id}\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_spans_follow_the_semantic_conventions() {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let rl = Redline::start_with(
        &config_for(up, CHECKOUT),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_SERVICE_NAME", "shop"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=ci%2Dtest,service.name=ignored",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k%3D1"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    let tp = traceparent();
    let (status, body) = get_with(
        &rl.url("/api/orders/42?token=s3cret&page=2"),
        &[
            ("traceparent", &tp),
            ("tracestate", "vendor=opaque,other=1"),
            ("x-request-id", "otlp-http-1"),
            ("user-agent", "otlp-test/1.0"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let upstream = echoed(&body);
    let (server, client) = collector.wait_request("otlp-http-1").await;
    let client = client.expect("a CLIENT span for the upstream call");

    // Trace continued, tracestate untouched, the upstream's parent is the CLIENT span.
    assert_eq!(hex(&server.trace_id), TRACE);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.trace_state, "vendor=opaque,other=1");
    assert_eq!(upstream["tracestate"], "vendor=opaque,other=1");
    assert_eq!(
        upstream["traceparent"],
        format!("00-{TRACE}-{}-01", hex(&client.span_id)).as_str()
    );
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.trace_id, server.trace_id);

    assert_eq!(server.name, "GET /api/orders/{id}");
    assert_eq!(server.kind, SpanKind::Server as i32);
    let a = &server.attributes;
    assert_eq!(attr(a, "http.request.method"), s("GET"));
    assert_eq!(attr(a, "http.route"), s("/api/orders/{id}"));
    assert_eq!(attr(a, "http.response.status_code"), int(200));
    assert_eq!(attr(a, "url.path"), s("/api/orders/42"));
    assert_eq!(attr(a, "url.query"), s("token=REDACTED&page=2"));
    assert_eq!(attr(a, "url.scheme"), s("http"));
    assert_eq!(attr(a, "server.address"), s("127.0.0.1"));
    assert_eq!(attr(a, "server.port"), int(i64::from(rl.proxy.port())));
    assert_eq!(attr(a, "client.address"), s("127.0.0.1"));
    assert_eq!(attr(a, "user_agent.original"), s("otlp-test/1.0"));
    assert_eq!(attr(a, "network.protocol.version"), s("1.1"));
    assert_eq!(attr(a, "redline.flow"), s("checkout"));
    assert_eq!(attr(a, "error.type"), None);
    assert_eq!(status_code(&server), StatusCode::Unset as i32);
    assert!(server.end_time_unix_nano > server.start_time_unix_nano);

    assert_eq!(client.kind, SpanKind::Client as i32);
    let c = &client.attributes;
    assert_eq!(attr(c, "http.request.method"), s("GET"));
    assert_eq!(
        attr(c, "url.full"),
        s(&format!("http://{up}/api/orders/42?token=REDACTED&page=2"))
    );
    assert_eq!(attr(c, "server.address"), s("127.0.0.1"));
    assert_eq!(attr(c, "server.port"), int(i64::from(up.port())));
    assert_eq!(attr(c, "http.response.status_code"), int(200));
    assert!(client.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(client.end_time_unix_nano <= server.end_time_unix_nano);

    let resource = collector.resource_attrs();
    assert_eq!(attr(&resource, "service.name"), s("shop"));
    assert_eq!(attr(&resource, "deployment.environment.name"), s("ci-test"));
    for key in ["service.version", "service.instance.id", "host.name"] {
        assert!(attr(&resource, key).is_some(), "resource lacks {key}");
    }
    assert_eq!(collector.header("x-api-key").as_deref(), Some("k=1"));
    assert_eq!(
        collector.header("content-encoding").as_deref(),
        Some("gzip")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exports_spans_and_cumulative_metrics() {
    let collector = Collector::grpc().await;
    let up = app().await;
    let endpoint = collector.url();
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    // HTTP/2 cleartext from the client, a 503 from the upstream.
    let h2 = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = Request::get(rl.url("/status/503"))
        .header("x-request-id", "otlp-grpc-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = h2.request(req).await.unwrap();
    assert_eq!(resp.status(), 503);
    let _ = resp.into_body().collect().await;

    let (server, client) = collector.wait_request("otlp-grpc-1").await;
    let client = client.unwrap();
    assert_eq!(server.name, "GET /status/{id}");
    assert_eq!(attr(&server.attributes, "network.protocol.version"), s("2"));
    assert_eq!(
        attr(&server.attributes, "http.response.status_code"),
        int(503)
    );
    assert_eq!(attr(&server.attributes, "error.type"), s("503"));
    assert_eq!(attr(&server.attributes, "redline.flow"), s("unmatched"));
    assert_eq!(status_code(&server), StatusCode::Error as i32);
    assert_eq!(server.parent_span_id, Vec::<u8>::new(), "a new trace");
    assert_eq!(attr(&client.attributes, "error.type"), s("503"));
    assert_eq!(status_code(&client), StatusCode::Error as i32);
    assert_eq!(
        collector.header("authorization").as_deref(),
        Some("Bearer abc")
    );

    // The same request as an OTLP metric point, matching the Prometheus scrape.
    let is_503 = |p: &HistogramDataPoint| {
        attr(&p.attributes, "http.response.status_code") == int(503)
            && attr(&p.attributes, "http.route") == s("/status/{id}")
    };
    let (temporality, point) = eventually(Duration::from_secs(10), "503 metric point", || async {
        collector.duration_point(is_503)
    })
    .await;
    assert_eq!(temporality, 2, "AGGREGATION_TEMPORALITY_CUMULATIVE");
    assert_eq!(point.count, 1);
    assert_eq!(attr(&point.attributes, "http.request.method"), s("GET"));
    assert_eq!(attr(&point.attributes, "error.type"), s("503"));
    assert_eq!(attr(&point.attributes, "redline.flow"), s("unmatched"));
    let bounds: Vec<f64> = vec![
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    assert_eq!(point.explicit_bounds, bounds);
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), 1);
    let scrape = rl.metrics().await;
    let count = sample(
        &scrape,
        r#"http_server_request_duration_seconds_count{flow="unmatched",http_request_method="GET",http_route="/status/{id}",http_response_status_code="503",error_type="503"}"#,
    );
    assert_eq!(count, Some(1.0), "{scrape}");
    let has_active = {
        let inbox = collector.inbox.lock().unwrap();
        inbox.metrics.iter().flat_map(|r| &r.resource_metrics).flat_map(|rm| &rm.scope_metrics).flat_map(|sm| &sm.metrics).any(|m| {
            m.name == "http.server.active_requests"
                && matches!(&m.data, Some(metric::Data::Sum(sum)) if !sum.is_monotonic && sum.data_points.iter().any(|p| attr(&p.attributes, "redline.flow") == s("unmatched")))
        })
    };
    assert!(has_active, "http.server.active_requests exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redline_failures_4xx_and_unknown_methods_follow_the_status_rules() {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let flows = "flows:\n  - name: slowpoke\n    match: \"GET /slow\"\n    timeout: 200ms\n";
    let rl = Redline::start_with(
        &config_for(up, flows),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    let (status, _) = get_with(
        &rl.url("/slow?sleep_ms=1500"),
        &[("x-request-id", "st-timeout")],
    )
    .await;
    assert_eq!(status, 504);
    let (status, _) = get_with(&rl.url("/status/404"), &[("x-request-id", "st-404")]).await;
    assert_eq!(status, 404);
    let req = Request::builder()
        .method("PURGE")
        .uri(rl.url("/cache/item"))
        .header("x-request-id", "st-purge")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, 200);

    let (server, client) = collector.wait_request("st-timeout").await;
    let client = client.unwrap();
    assert_eq!(
        attr(&server.attributes, "http.response.status_code"),
        int(504)
    );
    assert_eq!(attr(&server.attributes, "error.type"), s("timeout"));
    assert_eq!(status_code(&server), StatusCode::Error as i32);
    assert_eq!(
        attr(&client.attributes, "http.response.status_code"),
        None,
        "no upstream answer"
    );
    assert_eq!(attr(&client.attributes, "error.type"), s("timeout"));
    assert_eq!(status_code(&client), StatusCode::Error as i32);
    let waited = client.end_time_unix_nano - client.start_time_unix_nano;
    assert!(
        waited >= 190_000_000,
        "CLIENT span covers the 200ms wait: {waited}ns"
    );

    let (server, client) = collector.wait_request("st-404").await;
    assert_eq!(
        status_code(&server),
        StatusCode::Unset as i32,
        "4xx leaves SERVER unset"
    );
    assert_eq!(attr(&server.attributes, "error.type"), None);
    let client = client.unwrap();
    assert_eq!(
        status_code(&client),
        StatusCode::Error as i32,
        "4xx is a CLIENT error"
    );
    assert_eq!(attr(&client.attributes, "error.type"), s("404"));

    let (server, _) = collector.wait_request("st-purge").await;
    assert_eq!(attr(&server.attributes, "http.request.method"), s("_OTHER"));
    assert_eq!(
        attr(&server.attributes, "http.request.method_original"),
        s("PURGE")
    );
    assert!(server.name.starts_with("HTTP "), "{}", server.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_zero_still_keeps_failed_and_slow_requests() {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let yaml = config_for(
        up,
        "telemetry:\n  traces: { sample_ratio: 0.0, keep_slower_than: 300ms }\n",
    );
    let rl = Redline::start_with(
        &yaml,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    let (status, body) = get_with(&rl.url("/fast"), &[("x-request-id", "r0-fast")]).await;
    assert_eq!(status, 200);
    let sent = echoed(&body)["traceparent"].as_str().unwrap().to_string();
    assert!(sent.ends_with("-00"), "head decision sent upstream: {sent}");
    assert_eq!(
        get_with(&rl.url("/status/500"), &[("x-request-id", "r0-fail")])
            .await
            .0,
        500
    );
    let (status, _) = get_with(
        &rl.url("/echo?sleep_ms=450"),
        &[("x-request-id", "r0-slow")],
    )
    .await;
    assert_eq!(status, 200);

    let (failed, _) = collector.wait_request("r0-fail").await;
    assert_eq!(attr(&failed.attributes, "error.type"), s("500"));
    let (slow, _) = collector.wait_request("r0-slow").await;
    assert!(slow.end_time_unix_nano - slow.start_time_unix_nano > 300_000_000);
    // Spans leave in request order: the fast one, had it been kept, would be here by now.
    assert!(
        collector.request_spans("r0-fast").is_none(),
        "fast, successful, unsampled trace was exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_threshold_defaults_to_the_flows_latency_alert_and_env_sampler_wins() {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let yaml = config_for(
        up,
        "flows:\n  - name: search\n    match: \"GET /search\"\n    alerts:\n      - when: \"p95 > 300ms\"\ntelemetry:\n  traces: { sample_ratio: 1.0 }\n",
    );
    let rl = Redline::start_with(
        &yaml,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    assert_eq!(
        get_with(&rl.url("/search"), &[("x-request-id", "fl-fast")])
            .await
            .0,
        200
    );
    let (status, _) = get_with(
        &rl.url("/search?sleep_ms=450"),
        &[("x-request-id", "fl-slow")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get_with(&rl.url("/status/502"), &[("x-request-id", "fl-fail")])
            .await
            .0,
        502
    );
    collector.wait_request("fl-slow").await;
    collector.wait_request("fl-fail").await;
    assert!(
        collector.request_spans("fl-fast").is_none(),
        "env sampler (ratio 0) beats the file's 1.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_propagators_continue_and_inject_the_trace() {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let multi = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_PROPAGATORS", "b3multi"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    let (_, body) = get_with(
        &multi.url("/b3"),
        &[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
            ("x-request-id", "b3-multi"),
        ],
    )
    .await;
    let upstream = echoed(&body);
    let (server, client) = collector.wait_request("b3-multi").await;
    let client = client.unwrap();
    assert_eq!(hex(&server.trace_id), "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(hex(&server.parent_span_id), "e457b5a2e4d86bd1");
    assert_eq!(upstream["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(upstream["x-b3-spanid"], hex(&client.span_id).as_str());
    assert_eq!(upstream["x-b3-sampled"], "1");
    assert!(
        upstream.get("traceparent").is_none(),
        "b3multi only: {upstream}"
    );

    let single = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_PROPAGATORS", "b3"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    let (_, body) = get_with(
        &single.url("/b3"),
        &[
            ("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("x-request-id", "b3-single"),
        ],
    )
    .await;
    let upstream = echoed(&body);
    let (server, client) = collector.wait_request("b3-single").await;
    assert_eq!(hex(&server.trace_id), "000000000000000064fe8b2a57d3eff7");
    assert_eq!(
        upstream["b3"],
        format!(
            "000000000000000064fe8b2a57d3eff7-{}-1",
            hex(&client.unwrap().span_id)
        )
        .as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_traces_are_created_or_passed_through_and_none_means_none() {
    let up = app().await;
    let plain = Redline::start(&config_for(up, ""));
    let (_, body) = get_with(&plain.url("/new"), &[]).await;
    let created = echoed(&body)["traceparent"].as_str().unwrap().to_string();
    let parts: Vec<&str> = created.split('-').collect();
    assert_eq!(
        (
            parts.len(),
            parts[0],
            parts[1].len(),
            parts[2].len(),
            parts[3]
        ),
        (4, "00", 32, 16, "01"),
        "{created}"
    );
    let tp = traceparent();
    let (_, body) = get_with(
        &plain.url("/kept"),
        &[("traceparent", &tp), ("tracestate", "a=1")],
    )
    .await;
    let upstream = echoed(&body);
    assert_eq!(
        upstream["traceparent"],
        tp.as_str(),
        "no spans exported: the caller stays the parent"
    );
    assert_eq!(upstream["tracestate"], "a=1");

    let none = Redline::start_with(&config_for(up, ""), &[], &[("OTEL_PROPAGATORS", "none")]);
    let (_, body) = get_with(&none.url("/none"), &[]).await;
    assert!(echoed(&body).get("traceparent").is_none(), "{body}");
    let (_, body) = get_with(
        &none.url("/none"),
        &[("traceparent", "00-not-a-valid-one-01")],
    )
    .await;
    assert_eq!(
        echoed(&body)["traceparent"],
        "00-not-a-valid-one-01",
        "headers pass untouched"
    );

    // No endpoint: no exporter, and nothing about OTLP in the logs.
    let log = plain.stderr.lock().unwrap().join("\n");
    assert!(!log.contains("OTLP"), "{log}");
    assert_eq!(
        sample(
            &plain.metrics().await,
            r#"redline_telemetry_dropped_total{signal="traces"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_exporter_none_keeps_metrics_flowing() {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    );
    assert_eq!(
        get_with(&rl.url("/status/500"), &[("x-request-id", "tx-none")])
            .await
            .0,
        500
    );
    let has_500 =
        |p: &HistogramDataPoint| attr(&p.attributes, "http.response.status_code") == int(500);
    eventually(Duration::from_secs(10), "metrics export", || async {
        collector.duration_point(has_500)
    })
    .await;
    assert!(
        collector.spans().is_empty(),
        "OTEL_TRACES_EXPORTER=none still exported spans"
    );
}

/// Accepts TCP connections and never answers.
async fn blackhole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_collector_never_slows_the_proxy_and_drops_are_counted() {
    let hole = blackhole().await;
    let up = app().await;
    let endpoint = format!("http://{hole}");
    let rl = Redline::start_with(
        &config_for(up, "telemetry:\n  access_log: off\n"),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
            // Retries (timeouts are retryable) end within this, then the batch is dropped.
            ("OTEL_BSP_EXPORT_TIMEOUT", "3000"),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "3000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            // Access records go out as logs even with the stdout access log off.
            ("OTEL_BLRP_EXPORT_TIMEOUT", "3000"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "10"),
        ],
    );
    let url = rl.url("/echo");
    for _ in 0..20 {
        get(&url).await;
    }
    let rss_before = rl.rss_kib();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for _ in 0..60 {
                let t = Instant::now();
                let (status, _, _) = get(&url).await;
                assert_eq!(status, 200);
                took.push(t.elapsed());
            }
            took
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let p99 = all[all.len() * 99 / 100];
    eprintln!(
        "blackholed collector: p50 {:?} p99 {:?} max {:?}",
        all[all.len() / 2],
        p99,
        all[all.len() - 1]
    );
    assert!(
        p99 < Duration::from_millis(1000),
        "requests waited on the 2 s export: p99 {p99:?}"
    );
    let dropped = eventually(Duration::from_secs(10), "drops counted", || async {
        let m = rl.metrics().await;
        let traces = sample(&m, r#"redline_telemetry_dropped_total{signal="traces"}"#)?;
        let metrics = sample(&m, r#"redline_telemetry_dropped_total{signal="metrics"}"#)?;
        let logs = sample(&m, r#"redline_telemetry_dropped_total{signal="logs"}"#)?;
        (traces >= 400.0 && metrics > 0.0 && logs >= 400.0).then_some(traces)
    })
    .await;
    assert!(dropped <= 2.0 * 500.0, "{dropped}");
    let grown = rl.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 20 * 1024,
        "RSS grew {grown} KiB with a blackholed collector"
    );
    // Hundreds of drops and failed exports, one warning per signal per minute.
    let log = rl.stderr.lock().unwrap().join("\n");
    let warnings = log
        .lines()
        .filter(|l| l.contains("OTLP export is failing") && l.contains(r#""signal":"traces""#))
        .count();
    assert_eq!(warnings, 1, "rate-limited warning: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_resumes_by_itself_when_the_collector_comes_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let up = app().await;
    let endpoint = format!("http://{port}");
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            // Refused connects are retried until this, then the batch is dropped.
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    assert_eq!(
        get_with(&rl.url("/down"), &[("x-request-id", "while-down")])
            .await
            .0,
        200
    );
    eventually(Duration::from_secs(10), "drop while down", || async {
        let m = rl.metrics().await;
        (sample(&m, r#"redline_telemetry_dropped_total{signal="traces"}"#)? >= 2.0).then_some(())
    })
    .await;
    let collector = Collector::http_on(TcpListener::bind(port).await.unwrap());
    assert_eq!(
        get_with(&rl.url("/up"), &[("x-request-id", "after-up")])
            .await
            .0,
        200
    );
    let (server, _) = collector.wait_request("after-up").await;
    assert_eq!(attr(&server.attributes, "url.path"), s("/up"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_spans_of_finished_requests_before_exit() {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let mut rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            // Without the shutdown flush these would wait a minute.
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
        ],
    );
    for i in 0..3 {
        let id = format!("flush-{i}");
        assert_eq!(
            get_with(&rl.url("/echo"), &[("x-request-id", &id)]).await.0,
            200
        );
    }
    assert!(collector.spans().is_empty());
    rl.signal("TERM");
    let until = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = rl.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "redline did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0));
    for i in 0..3 {
        assert!(
            collector.request_spans(&format!("flush-{i}")).is_some(),
            "flush-{i} lost at shutdown"
        );
    }
    let final_metrics =
        collector.duration_point(|p| attr(&p.attributes, "http.route") == s("/echo"));
    assert_eq!(
        final_metrics.map(|(_, p)| p.count),
        Some(3),
        "last metric export at shutdown"
    );
}

/// `rotel-agent`: `$ROTEL_AGENT`, else on PATH, else inside the `rotel` pip package.
pub(crate) fn rotel_agent() -> PathBuf {
    if let Some(p) = std::env::var_os("ROTEL_AGENT") {
        return p.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path)
        .map(|d| d.join("rotel-agent"))
        .find(|p| p.is_file())
    {
        return found;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output();
    if let Ok(out) = out {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && p.is_file() {
            return p;
        }
    }
    panic!(
        "rotel-agent not found: install the collector with `python3 -m pip install rotel==0.0.1a15` \
         (tests/run.sh does this), or point ROTEL_AGENT at the binary"
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Rotel {
    child: Child,
    pub(crate) output: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Rotel {
    /// Wait (20 s at most) until rotel's debug output holds every line of `expected`.
    pub(crate) async fn wait_for_output(&self, expected: &[&str]) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.output.lock().unwrap().clone();
            let missing: Vec<&str> = expected
                .iter()
                .copied()
                .filter(|e| !out.contains(e))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < until,
                "rotel never printed {missing:?}; its output:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_rotel(grpc: u16, http: u16) -> Rotel {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(rotel_agent())
        .args(["start", "--exporter", "blackhole"])
        .args(["--debug-log", "traces", "--debug-log", "metrics"])
        .args(["--debug-log", "logs"])
        .args(["--debug-log-verbosity", "detailed"])
        .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
        .arg("--pid-file")
        .arg(dir.path().join("rotel.pid"))
        .arg("--log-file")
        .arg(dir.path().join("rotel.log"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rotel-agent");
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    Rotel {
        child,
        output,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_collector_receives_traces_and_logs_over_http_and_metrics_over_grpc() {
    let (grpc, http) = (free_port(), free_port());
    let rotel = start_rotel(grpc, http);
    eventually(Duration::from_secs(15), "rotel listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", http))
            .await
            .ok()
    })
    .await;
    let up = app().await;
    let traces = format!("http://127.0.0.1:{http}/v1/traces");
    let metrics = format!("http://127.0.0.1:{grpc}");
    let logs = format!("http://127.0.0.1:{http}/v1/logs");
    let rl = Redline::start_with(
        &config_for(up, CHECKOUT),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &metrics),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &logs),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ("OTEL_SERVICE_NAME", "rotel-e2e"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    );
    let (status, _) = get_with(
        &rl.url("/api/orders/7?token=abc"),
        &[("x-request-id", "rotel-1")],
    )
    .await;
    assert_eq!(status, 200);
    let expected = [
        "Name           : GET /api/orders/{id}",
        "Kind           : SPAN_KIND_SERVER",
        "Kind           : SPAN_KIND_CLIENT",
        "http.request.header.x-request-id: Slice(Str(rotel-1))",
        "url.query: Str(token=REDACTED)",
        "redline.flow: Str(checkout)",
        "service.name: Str(rotel-e2e)",
        "-> Name: http.server.request.duration",
        "-> Name: http.server.active_requests",
        "http.route: Str(/api/orders/{id})",
        "AGGREGATION_TEMPORALITY_CUMULATIVE",
        "GET /api/orders/7 200",
        "redline.duration_ms",
    ];
    rotel.wait_for_output(&expected).await;
}

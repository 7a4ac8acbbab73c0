//! OTLP export retries as the OTLP specification asks, against scripted collectors on real sockets.
//!
//! An HTTP collector (hyper + prost) answers a planned list of refusals before it takes
//! exports; a gRPC collector (opentelemetry-proto's tonic server) answers UNAVAILABLE a
//! planned number of times. The real `redline` binary exports one request's spans.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tokio::net::TcpListener;

use crate::support::*;

/// What a scripted collector saw.
#[derive(Default)]
struct Seen {
    /// Arrival time and the status answered, per export request.
    tries: Vec<(Instant, u16)>,
    /// SERVER spans taken (answered 200), by `url.path`.
    server_spans: Vec<String>,
}

/// An OTLP/HTTP collector that answers `plan` (status, `Retry-After`) to the first exports, then takes them.
async fn scripted_http(plan: Vec<(u16, Option<&'static str>)>) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = (plan, seen.clone());
    let addr = serve(move |req: Request<Incoming>| {
        let (plan, seen) = state.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let export = ExportTraceServiceRequest::decode(body).unwrap();
            let refusal = plan.lock().unwrap().pop_front();
            let status = refusal.map_or(200, |(status, _)| status);
            let mut seen = seen.lock().unwrap();
            seen.tries.push((Instant::now(), status));
            let mut resp = Response::builder().status(status);
            if let Some((_, Some(after))) = refusal {
                resp = resp.header("retry-after", after);
            }
            if refusal.is_none() {
                seen.server_spans.extend(server_paths(&export));
            }
            let answer = ExportTraceServiceResponse::default().encode_to_vec();
            resp.header("content-type", "application/x-protobuf")
                .body(full(Bytes::from(answer)))
                .unwrap()
        }
    })
    .await;
    (addr, seen)
}

/// `url.path` of every SERVER span in an export.
fn server_paths(export: &ExportTraceServiceRequest) -> Vec<String> {
    export
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter(|s| s.kind == SpanKind::Server as i32)
        .flat_map(|s| &s.attributes)
        .filter(|kv| kv.key == "url.path")
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v) => {
                Some(v.clone())
            }
            _ => None,
        })
        .collect()
}

/// Redline exporting only traces to `endpoint`, batches sent 20 ms after their first span.
fn redline_exporting(endpoint: &str, up: SocketAddr, extra: &[(&str, &str)]) -> Redline {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
    ];
    env.extend_from_slice(extra);
    Redline::start_with(&config_for(up, ""), &[], &env)
}

/// `(retries, dropped)` for traces, once `ready` accepts them.
async fn trace_counters(rl: &Redline, what: &str, ready: impl Fn(f64, f64) -> bool) -> (f64, f64) {
    eventually(Duration::from_secs(15), what, || async {
        let m = rl.metrics().await;
        let retries = sample(&m, r#"redline_telemetry_retries_total{signal="traces"}"#)?;
        let dropped = sample(&m, r#"redline_telemetry_dropped_total{signal="traces"}"#)?;
        ready(retries, dropped).then_some((retries, dropped))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_retried_after_that_delay_and_delivered_once() {
    let (addr, seen) = scripted_http(vec![(503, Some("1"))]).await;
    let up = app().await;
    let rl = redline_exporting(&format!("http://{addr}"), up, &[]);
    assert_eq!(get(&rl.url("/echo")).await.0, 200);
    eventually(Duration::from_secs(15), "spans delivered", || async {
        (!seen.lock().unwrap().server_spans.is_empty()).then_some(())
    })
    .await;
    let (retries, dropped) = trace_counters(&rl, "retry counted", |r, _| r >= 1.0).await;
    assert_eq!((retries, dropped), (1.0, 0.0));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.server_spans, ["/echo"], "delivered exactly once");
    let statuses: Vec<u16> = seen.tries.iter().map(|t| t.1).collect();
    assert_eq!(statuses, [503, 200]);
    let waited = seen.tries[1].0 - seen.tries[0].0;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 not honoured: retried after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried_and_the_spans_are_dropped_and_counted() {
    let (addr, seen) = scripted_http(vec![(400, None), (400, None)]).await;
    let up = app().await;
    let rl = redline_exporting(&format!("http://{addr}"), up, &[]);
    assert_eq!(get(&rl.url("/echo")).await.0, 200);
    // One request: a SERVER and a CLIENT span.
    let (retries, dropped) = trace_counters(&rl, "drop counted", |_, d| d >= 2.0).await;
    assert_eq!((retries, dropped), (0.0, 2.0));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.tries.len(), 1, "a 400 was sent again");
    assert!(seen.server_spans.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_export_timeout_and_the_batch_is_dropped() {
    let plan = vec![(503, None); 50];
    let (addr, seen) = scripted_http(plan).await;
    let up = app().await;
    let rl = redline_exporting(
        &format!("http://{addr}"),
        up,
        &[("OTEL_BSP_EXPORT_TIMEOUT", "1500")],
    );
    let started = Instant::now();
    assert_eq!(get(&rl.url("/echo")).await.0, 200);
    let (retries, _) = trace_counters(&rl, "batch given up", |_, d| d >= 2.0).await;
    let tries = seen.lock().unwrap().tries.clone();
    assert_eq!(retries as usize, tries.len() - 1, "each retry counted");
    let span = tries.last().unwrap().0 - tries[0].0;
    assert!(span < Duration::from_millis(1500), "tried for {span:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// An OTLP/gRPC trace collector that answers UNAVAILABLE `failures` times, then takes exports.
#[derive(Clone)]
struct Flaky {
    failures: Arc<AtomicUsize>,
    tries: Arc<AtomicUsize>,
    server_spans: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Flaky {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(tonic::Status::unavailable(
                "collector restarting: 100% busy",
            ));
        }
        let paths = server_paths(request.get_ref());
        self.server_spans.lock().unwrap().extend(paths);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unavailable_is_retried_then_delivered_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flaky = Flaky {
        failures: Arc::new(AtomicUsize::new(2)),
        tries: Arc::new(AtomicUsize::new(0)),
        server_spans: Arc::new(Mutex::new(Vec::new())),
    };
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(flaky.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    let up = app().await;
    let rl = redline_exporting(
        &format!("http://{addr}"),
        up,
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
    );
    assert_eq!(get(&rl.url("/echo")).await.0, 200);
    eventually(Duration::from_secs(15), "spans delivered", || async {
        (!flaky.server_spans.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    let (retries, dropped) = trace_counters(&rl, "retries counted", |r, _| r >= 2.0).await;
    assert_eq!((retries, dropped), (2.0, 0.0));
    assert_eq!(flaky.tries.load(Ordering::SeqCst), 3);
    assert_eq!(*flaky.server_spans.lock().unwrap(), ["/echo"]);
}

//! The spans of failures and rehearsals, in both engines: each upstream try is its own
//! CLIENT span named in that try's `traceparent`; an injected abort sends nothing and so
//! makes no CLIENT span; an injected delay keeps it.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use crate::otlp::Collector;
use crate::support::{Redline, config_for, eventually, send};

/// The request heads an upstream received: path and `traceparent`, in arrival order.
type Heads = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP/1.1 upstream that fails the first request to each path once: a path holding
/// `reset` is reset before any response byte (RST), one holding `flap` gets a 503. Every
/// other request gets 200 `ok`.
fn failing_once_upstream() -> (SocketAddr, Heads) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads: Heads = Arc::default();
    let seen = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || answer(stream, &seen));
        }
    });
    (addr, heads)
}

fn answer(mut stream: std::net::TcpStream, heads: &Mutex<Vec<(String, String)>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head.split(' ').nth(1).unwrap_or_default().to_string();
            let traceparent = head
                .lines()
                .find_map(|l| l.strip_prefix("traceparent: "))
                .unwrap_or_default()
                .to_string();
            let first = {
                let mut heads = heads.lock().unwrap();
                let first = !heads.iter().any(|(p, _)| *p == path);
                heads.push((path.clone(), traceparent));
                first
            };
            if first && path.contains("reset") {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return;
            }
            let reply: &[u8] = if first && path.contains("flap") {
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            };
            let _ = stream.write_all(reply);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn exporting(collector: &Collector, hyper: bool) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_string()),
        ("OTEL_METRICS_EXPORTER", "none".to_string()),
    ];
    if hyper {
        env.push(("REDLINE_HTTP1_ENGINE", "hyper".to_string()));
    }
    env
}

fn start(upstream: SocketAddr, flows: &str, env: &[(&'static str, String)]) -> Redline {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Redline::start_with(&config_for(upstream, flows), &[], &env)
}

/// GET `url` with this `x-request-id`; returns status and body.
async fn get_as(url: &str, request_id: &str) -> (u16, String) {
    let req = Request::get(url)
        .header("x-request-id", request_id)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(req).await;
    (status, body)
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    let found: Option<&KeyValue> = span.attributes.iter().find(|kv| kv.key == key);
    found.and_then(|kv| kv.value.clone()?.value)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The SERVER span of request `request_id` and its CLIENT children by start time, once
/// `clients` of them arrived.
async fn request_spans(c: &Collector, request_id: &str, clients: usize) -> (Span, Vec<Span>) {
    let id = Value::StringValue(request_id.to_string());
    eventually(Duration::from_secs(15), request_id, || async {
        let spans = c.spans();
        let server = spans.iter().find(|s| {
            s.kind == SpanKind::Server as i32
                && matches!(
                    attr(s, "http.request.header.x-request-id"),
                    Some(Value::ArrayValue(a)) if a.values.first().and_then(|v| v.value.as_ref()) == Some(&id)
                )
        })?;
        let mut children: Vec<Span> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Client as i32 && s.parent_span_id == server.span_id)
            .cloned()
            .collect();
        children.sort_by_key(|s| s.start_time_unix_nano);
        (children.len() >= clients).then(|| (server.clone(), children))
    })
    .await
}

fn status_code(span: &Span) -> i32 {
    span.status.as_ref().map_or(0, |s| s.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_try_is_its_own_client_span_named_in_its_traceparent_in_both_engines() {
    let (up, heads) = failing_once_upstream();
    let collector = Collector::http().await;
    let flow = "flows:\n  - name: api\n    match: /api/{x...}\n    retries: { attempts: 3, backoff_base: 1ms, backoff_max: 5ms, budget: { ratio: 100% } }\n";
    for hyper in [false, true] {
        let rl = start(up, flow, &exporting(&collector, hyper));
        for (failure, error_type, first_status) in [
            ("flap", "503", Some(Value::IntValue(503))),
            ("reset", "upstream_error", None),
        ] {
            let case = format!("hyper={hyper} {failure}");
            let path = format!("/api/{failure}-{hyper}");
            let request_id = format!("tries-{failure}-{hyper}");
            let (status, body) = get_as(&rl.url(&path), &request_id).await;
            assert_eq!((status, body.as_str()), (200, "ok"), "{case}");
            let (server, clients) = request_spans(&collector, &request_id, 2).await;
            assert_eq!(clients.len(), 2, "{case}: one CLIENT span per try");
            let (first, second) = (&clients[0], &clients[1]);
            assert_ne!(first.span_id, second.span_id, "{case}");
            assert_ne!(first.span_id, server.span_id, "{case}");
            for client in &clients {
                assert_eq!(client.trace_id, server.trace_id, "{case}");
                assert!(client.start_time_unix_nano >= server.start_time_unix_nano);
                assert!(client.end_time_unix_nano <= server.end_time_unix_nano);
            }
            // The first try: no resend count, its own failure.
            assert_eq!(attr(first, "http.request.resend_count"), None, "{case}");
            let expected = Some(Value::StringValue(error_type.into()));
            assert_eq!(attr(first, "error.type"), expected, "{case}");
            assert_eq!(attr(first, "http.response.status_code"), first_status);
            assert_eq!(status_code(first), StatusCode::Error as i32, "{case}");
            assert!(first.end_time_unix_nano <= second.start_time_unix_nano);
            // The resend: counted, and answered well.
            let one = Some(Value::IntValue(1));
            assert_eq!(attr(second, "http.request.resend_count"), one, "{case}");
            assert_eq!(attr(second, "error.type"), None, "{case}");
            let ok = Some(Value::IntValue(200));
            assert_eq!(attr(second, "http.response.status_code"), ok, "{case}");
            assert_eq!(status_code(second), StatusCode::Unset as i32, "{case}");
            assert_eq!(attr(&server, "http.request.resend_count"), None, "{case}");
            // The upstream saw each try's own span as its parent.
            let trace = hex(&server.trace_id);
            let received: Vec<String> = heads
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| *p == path)
                .map(|(_, tp)| tp.clone())
                .collect();
            let expected: Vec<String> = clients
                .iter()
                .map(|c| format!("00-{trace}-{}-01", hex(&c.span_id)))
                .collect();
            assert_eq!(received, expected, "{case}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_abort_makes_no_client_span_and_a_delay_keeps_it_in_both_engines() {
    let (up, heads) = failing_once_upstream();
    let collector = Collector::http().await;
    let flows = "flows:\n  - name: aborted\n    match: /aborted/{x...}\n    fault: { abort: 418 }\n  - name: delayed\n    match: /delayed/{x...}\n    fault: { delay: 150ms }\n";
    for hyper in [false, true] {
        let rl = start(up, flows, &exporting(&collector, hyper));
        let case = format!("hyper={hyper}");
        let aborted = format!("abort-{hyper}");
        let (status, _) = get_as(&rl.url(&format!("/aborted/{hyper}")), &aborted).await;
        assert_eq!(status, 418, "{case}");
        let delayed = format!("delay-{hyper}");
        let path = format!("/delayed/{hyper}");
        let (status, body) = get_as(&rl.url(&path), &delayed).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{case}");

        let (server, clients) = request_spans(&collector, &delayed, 1).await;
        assert_eq!(clients.len(), 1, "{case}");
        let client = &clients[0];
        let injected = Some(Value::BoolValue(true));
        assert_eq!(attr(&server, "redline.fault.injected"), injected, "{case}");
        assert!(
            client.start_time_unix_nano >= server.start_time_unix_nano + 150_000_000,
            "{case}: the CLIENT span starts when the request went upstream, after the delay"
        );
        let sent = heads
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| *p == path)
            .cloned();
        let trace = hex(&server.trace_id);
        let expected = format!("00-{trace}-{}-01", hex(&client.span_id));
        assert_eq!(sent.map(|(_, tp)| tp), Some(expected), "{case}");

        // A request's spans travel together (one record): with its SERVER span here, a
        // CLIENT span would be too.
        let (server, clients) = request_spans(&collector, &aborted, 0).await;
        assert!(clients.is_empty(), "{case}: nothing was sent upstream");
        assert_eq!(attr(&server, "redline.fault.injected"), injected, "{case}");
        let teapot = Some(Value::IntValue(418));
        assert_eq!(attr(&server, "http.response.status_code"), teapot, "{case}");
        let upstream_saw_it = heads
            .lock()
            .unwrap()
            .iter()
            .any(|(p, _)| p.contains("abort"));
        assert!(!upstream_saw_it, "{case}");
    }
}

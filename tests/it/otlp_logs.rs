//! OTLP logs: access records (semantic-convention attributes, redacted query, the request's trace and SERVER span, severity by status), audit records and alert events reach an in-process receiver over HTTP and gRPC.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::otlp::Collector;
use crate::support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(record: &LogRecord, key: &str) -> Option<Value> {
    record
        .attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn s(v: &str) -> Option<Value> {
    Some(Value::StringValue(v.into()))
}

fn body(record: &LogRecord) -> String {
    match record.body.as_ref().and_then(|b| b.value.clone()) {
        Some(Value::StringValue(v)) => v,
        other => format!("{other:?}"),
    }
}

/// A GET with a caller's `traceparent` and this `x-request-id`.
async fn request(url: &str, request_id: &str) -> u16 {
    let req = Request::get(url)
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .header("x-request-id", request_id)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(req).await.0
}

/// The access record of the request with this `x-request-id`.
async fn access_record(collector: &Collector, request_id: &str) -> LogRecord {
    eventually(Duration::from_secs(15), request_id, || async {
        collector.log_records().into_iter().find(|r| {
            format!("{:?}", attr(r, "http.request.header.x-request-id")).contains(request_id)
        })
    })
    .await
}

async fn event(collector: &Collector, name: &str, key: &str, value: &str) -> LogRecord {
    eventually(Duration::from_secs(20), name, || async {
        collector
            .log_records()
            .into_iter()
            .find(|r| r.event_name == name && attr(r, key) == s(value))
    })
    .await
}

fn config(up: std::net::SocketAddr) -> String {
    config_for(
        up,
        "flows:
  - name: checkout
    match: \"GET /status/{code}\"
    runbook: https://wiki.example/checkout
    alerts:
      - { when: \"error_rate > 2%\", over: 10s, for: 0s, min_requests: 5, severity: page }
alerting:
  eval_interval: 1s
  receivers:
    - { name: ops, type: console }
",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_audit_and_alert_records_reach_an_http_receiver() {
    let collector = Collector::http().await;
    let up = app().await;
    let rl = Redline::start_with(
        &config(up),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ],
    );
    let failing = rl.url("/status/503?token=abc&x=1");
    assert_eq!(request(&failing, "logs-1").await, 503);
    for i in 0..5 {
        assert_eq!(
            request(&rl.url("/status/503"), &format!("more-{i}")).await,
            503
        );
    }
    assert_eq!(request(&rl.url("/status/200"), "logs-ok").await, 200);

    let record = access_record(&collector, "logs-1").await;
    assert_eq!(attr(&record, "http.request.method"), s("GET"));
    assert_eq!(attr(&record, "url.path"), s("/status/503"));
    assert_eq!(attr(&record, "url.query"), s("token=REDACTED&x=1"));
    assert_eq!(attr(&record, "http.route"), s("/status/{code}"));
    assert_eq!(
        attr(&record, "http.response.status_code"),
        Some(Value::IntValue(503))
    );
    assert_eq!(attr(&record, "error.type"), s("503"));
    assert_eq!(attr(&record, "redline.flow"), s("checkout"));
    assert_eq!(
        (record.severity_number, record.severity_text.as_str()),
        (17, "ERROR")
    );
    assert_eq!(body(&record), "GET /status/503 503");
    // The caller's trace, and Redline's SERVER span of this request (kept: it failed).
    assert_eq!(hex(&record.trace_id), TRACE);
    let server = crate::otlp::server_span(&collector, "logs-1").await;
    assert_eq!(record.span_id, server.span_id);
    assert_eq!(record.flags & 1, 1, "sampled: its spans were exported");
    assert!(record.time_unix_nano > 0 && record.observed_time_unix_nano >= record.time_unix_nano);

    let ok = access_record(&collector, "logs-ok").await;
    assert_eq!((ok.severity_number, ok.severity_text.as_str()), (9, "INFO"));
    assert_eq!(attr(&ok, "error.type"), None);

    // The alert fires: one `redline.alert` record with its labels and runbook.
    let alert = event(&collector, "redline.alert", "status", "firing").await;
    assert_eq!(attr(&alert, "alertname"), s("FlowErrorRate"));
    assert_eq!(attr(&alert, "flow"), s("checkout"));
    assert_eq!(
        attr(&alert, "runbook_url"),
        s("https://wiki.example/checkout")
    );
    assert_eq!(alert.severity_text, "WARN");
    assert!(
        body(&alert).contains("FIRING FlowErrorRate checkout"),
        "{}",
        body(&alert)
    );

    // A reload's audit line: a `redline.audit` record with the line's fields.
    rl.signal("HUP");
    let audit = event(&collector, "redline.audit", "event", "reload").await;
    assert_eq!(attr(&audit, "trigger"), s("signal"));
    assert_eq!(attr(&audit, "result"), s("success"));
    assert_eq!(body(&audit), "Configuration reloaded.");
    assert_eq!(attr(&audit, "audit"), None);

    let scrape = rl.metrics().await;
    assert_eq!(
        sample(&scrape, r#"redline_telemetry_dropped_total{signal="logs"}"#),
        Some(0.0),
        "{scrape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_records_reach_a_grpc_receiver_with_the_callers_trace() {
    let collector = Collector::grpc().await;
    let up = app().await;
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &collector.url()),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-tenant=acme"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ],
    );
    assert_eq!(request(&rl.url("/status/404"), "grpc-log-1").await, 404);
    let record = access_record(&collector, "grpc-log-1").await;
    assert_eq!(hex(&record.trace_id), TRACE, "continued from the caller");
    assert_eq!(record.span_id.len(), 8);
    assert_eq!(record.flags & 1, 0, "no trace export: nothing kept");
    assert_eq!(
        (record.severity_number, record.severity_text.as_str()),
        (13, "WARN")
    );
    assert_eq!(attr(&record, "http.route"), s("/status/{id}"));
    assert!(
        collector.dump().contains("acme"),
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS sent"
    );
    // Only logs were asked for: no spans, no metrics.
    assert!(collector.spans().is_empty());
}

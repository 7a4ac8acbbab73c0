//! OTLP `http/json` end to end: spans, metrics and log records reach an HTTP receiver as OTLP/JSON that `opentelemetry-proto`'s serde types read.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;

use crate::otlp::{Collector, server_span};
use crate::support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first JSON body sent to `path` that `pick` finds something in.
async fn sent(
    collector: &Collector,
    path: &str,
    pick: impl Fn(&serde_json::Value) -> Option<serde_json::Value>,
) -> serde_json::Value {
    eventually(Duration::from_secs(15), path, || async {
        collector
            .json_bodies()
            .iter()
            .filter(|(p, _)| p == path)
            .find_map(|(_, body)| pick(body))
    })
    .await
}

/// Items at `items` (a JSON pointer under each resource/scope entry) whose `key` is `want`.
fn find(
    body: &serde_json::Value,
    outer: [&str; 3],
    key: &str,
    want: &str,
) -> Option<serde_json::Value> {
    let [resources, scopes, items] = outer;
    body[resources]
        .as_array()?
        .iter()
        .flat_map(|r| r[scopes].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s[items].as_array().cloned().unwrap_or_default())
        .find(|item| item[key] == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_carries_spans_metrics_and_log_records_as_otlp_json() {
    let collector = Collector::http().await;
    let up = app().await;
    let rl = Redline::start_with(
        &config_for(
            up,
            "flows:\n  - name: checkout\n    match: \"GET /api/orders/{id}\"\n",
        ),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            // JSON and gzip together, on one signal.
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_SERVICE_NAME", "json-shop"),
        ],
    );
    let req = Request::get(rl.url("/api/orders/42"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "json-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, 200);

    // Read through the serde types: the same span as the protobuf route gives.
    let server = server_span(&collector, "json-1").await;
    assert_eq!(hex(&server.trace_id), TRACE);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.name, "GET /api/orders/{id}");
    // As sent: hex ids, an integer kind, nanoseconds as a decimal string, AnyValue objects.
    let span = sent(&collector, "/v1/traces", |b| {
        find(
            b,
            ["resourceSpans", "scopeSpans", "spans"],
            "spanId",
            &hex(&server.span_id),
        )
    })
    .await;
    assert_eq!(span["traceId"], TRACE);
    assert_eq!(span["parentSpanId"], CALLER_SPAN);
    assert_eq!(span["kind"], SpanKind::Server as i32);
    assert_eq!(
        span["startTimeUnixNano"],
        server.start_time_unix_nano.to_string()
    );
    let status = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "http.response.status_code")
        .map(|a| a["value"].clone());
    assert_eq!(status, Some(json!({"intValue": "200"})));

    // Metrics, gzip-compressed JSON: the duration histogram with the request counted.
    let histogram = sent(&collector, "/v1/metrics", |b| {
        let m = find(
            b,
            ["resourceMetrics", "scopeMetrics", "metrics"],
            "name",
            "http.server.request.duration",
        )?;
        let points = m["histogram"]["dataPoints"].as_array()?.clone();
        points.into_iter().find(|p| p["count"] == "1")
    })
    .await;
    assert!(
        histogram["bucketCounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.is_string())
    );
    assert!(histogram["sum"].as_f64().unwrap() > 0.0);
    let point_count = collector
        .newest_metrics()
        .iter()
        .filter_map(|m| match &m.data {
            Some(metric::Data::Histogram(h)) if m.name == "http.server.request.duration" => {
                Some(h.data_points.iter().map(|p| p.count).sum::<u64>())
            }
            _ => None,
        })
        .sum::<u64>();
    assert_eq!(point_count, 1, "read back through the serde types");

    // The access record, with the caller's trace id as hex.
    let record = sent(&collector, "/v1/logs", |b| {
        find(
            b,
            ["resourceLogs", "scopeLogs", "logRecords"],
            "traceId",
            TRACE,
        )
    })
    .await;
    assert_eq!(record["spanId"], hex(&server.span_id));
    assert!(record["severityNumber"].is_u64(), "{record}");
    assert!(record["timeUnixNano"].is_string(), "{record}");
    let read = collector
        .log_records()
        .into_iter()
        .find(|r| hex(&r.trace_id) == TRACE)
        .expect("the access record read back");
    assert!(
        matches!(&read.body.and_then(|b| b.value), Some(Value::StringValue(s)) if s.contains("/api/orders/42")),
        "{record}"
    );
    // Every export went through and was answered `{}`: nothing dropped, nothing retried.
    let scrape = rl.metrics().await;
    for signal in ["traces", "metrics", "logs"] {
        for family in ["dropped", "retries"] {
            let series = format!("redline_telemetry_{family}_total{{signal=\"{signal}\"}}");
            assert_eq!(sample(&scrape, &series), Some(0.0), "{series}");
        }
    }
}

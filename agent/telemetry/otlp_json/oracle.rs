//! Oracle: the `http/json` bodies against the OTLP/JSON rules, field by field.
//!
//! The proptests of `wire/oracle.rs`, `wire/logs/oracle.rs` and `otlp_metrics/oracle.rs`
//! show that the JSON reads back as the same message; reading it back with the serde types
//! that wrote it would not notice a rule both sides break, so here one message of each
//! signal, with every kind of field Redline sends, is checked against the OTLP
//! specification's "JSON Protobuf Encoding" text itself: lowerCamelCase keys, trace and span
//! ids as lowercase hex (not base64), enums as integers, 64-bit integers as decimal strings,
//! `AnyValue` as a one-key object.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, exemplar, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Value, json};

use super::*;
use crate::telemetry::spans::{kv, kv_int};

const TRACE_ID: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
const TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_HEX: &str = "00f067aa0ba902b7";
/// Above 2^53: a JSON number would lose it in JavaScript, hence the string rule.
const NANOS: u64 = 1_764_000_000_123_456_789;

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", "café ☕")],
        ..Default::default()
    })
}

/// The JSON body for `message`, parsed; it must also read back as `message`.
fn sent<M>(signal: Signal, message: &M) -> Value
where
    M: Message + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let body = request(signal, &message.encode_to_vec()).unwrap();
    let back: M = serde_json::from_slice(&body).unwrap();
    assert_eq!(&back, message);
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_camel_case(&value);
    value
}

/// Every object key is lowerCamelCase (attribute names are values, not keys).
fn assert_camel_case(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                let ok = k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.chars().all(|c| c.is_ascii_alphanumeric());
                assert!(ok, "key {k:?} is not lowerCamelCase");
                assert_camel_case(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_camel_case),
        _ => {}
    }
}

/// The `value` of the attribute named `key`.
fn attribute<'a>(attrs: &'a Value, key: &str) -> &'a Value {
    attrs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
        .unwrap_or_else(|| panic!("no attribute {key} in {attrs}"))
}

#[test]
fn spans_as_otlp_json() {
    let span = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        parent_span_id: vec![0xff; 8],
        trace_state: "congo=t61rcWkgMzE".into(),
        flags: 0x301,
        name: "GET /api/orders/{id}".into(),
        kind: 2,
        start_time_unix_nano: NANOS,
        end_time_unix_nano: NANOS + 1,
        attributes: vec![
            kv("http.request.method", "GET"),
            kv_int("http.response.status_code", 503),
            KeyValue {
                key: "http.request.header.x-request-id".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::StringValue("r-1".into())),
                        }],
                    })),
                }),
                ..Default::default()
            },
        ],
        status: Some(Status {
            code: 2,
            message: "upstream \"timeout\"".into(),
        }),
        ..Default::default()
    };
    let message = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let v = sent(Signal::Traces, &message);
    let rs = &v["resourceSpans"][0];
    assert_eq!(
        attribute(&rs["resource"]["attributes"], "service.name"),
        &json!({"stringValue": "café ☕"})
    );
    let s = &rs["scopeSpans"][0]["spans"][0];
    assert_eq!(s["traceId"], TRACE_HEX);
    assert_eq!(s["spanId"], SPAN_HEX);
    assert_eq!(s["parentSpanId"], "ffffffffffffffff");
    assert_eq!(s["traceState"], "congo=t61rcWkgMzE");
    assert_eq!(s["flags"], 0x301);
    assert_eq!(s["kind"], 2, "enums are integers");
    assert_eq!(s["startTimeUnixNano"], NANOS.to_string());
    assert_eq!(s["endTimeUnixNano"], (NANOS + 1).to_string());
    assert_eq!(
        s["status"],
        json!({"code": 2, "message": "upstream \"timeout\""})
    );
    let attrs = &s["attributes"];
    assert_eq!(
        attribute(attrs, "http.request.method"),
        &json!({"stringValue": "GET"})
    );
    assert_eq!(
        attribute(attrs, "http.response.status_code"),
        &json!({"intValue": "503"})
    );
    assert_eq!(
        attribute(attrs, "http.request.header.x-request-id"),
        &json!({"arrayValue": {"values": [{"stringValue": "r-1"}]}})
    );
}

#[test]
fn metrics_as_otlp_json() {
    let histogram = Metric {
        name: "http.server.request.duration".into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            aggregation_temporality: 2,
            data_points: vec![HistogramDataPoint {
                attributes: vec![kv("http.route", "/api/orders/{id}")],
                start_time_unix_nano: NANOS,
                time_unix_nano: NANOS + 5,
                count: 3,
                sum: Some(1.25),
                bucket_counts: vec![1, 2, u64::MAX],
                explicit_bounds: vec![0.5, 2.5],
                exemplars: vec![Exemplar {
                    time_unix_nano: NANOS + 2,
                    trace_id: TRACE_ID.to_vec(),
                    span_id: SPAN_ID.to_vec(),
                    value: Some(exemplar::Value::AsDouble(0.75)),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let sum = Metric {
        name: "redline.alerts.notifications".into(),
        data: Some(metric::Data::Sum(Sum {
            aggregation_temporality: 2,
            is_monotonic: true,
            data_points: vec![NumberDataPoint {
                time_unix_nano: NANOS,
                value: Some(number_data_point::Value::AsInt(-9_007_199_254_740_993)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let message = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![histogram, sum],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let v = sent(Signal::Metrics, &message);
    let metrics = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    let h = &metrics[0]["histogram"];
    assert_eq!(h["aggregationTemporality"], 2);
    let p = &h["dataPoints"][0];
    assert_eq!(p["count"], "3");
    assert_eq!(p["sum"], 1.25);
    assert_eq!(p["bucketCounts"], json!(["1", "2", u64::MAX.to_string()]));
    assert_eq!(p["explicitBounds"], json!([0.5, 2.5]));
    assert_eq!(p["startTimeUnixNano"], NANOS.to_string());
    let e = &p["exemplars"][0];
    assert_eq!(e["traceId"], TRACE_HEX);
    assert_eq!(e["spanId"], SPAN_HEX);
    assert_eq!(e["asDouble"], 0.75);
    assert_eq!(e["timeUnixNano"], (NANOS + 2).to_string());
    let s = &metrics[1]["sum"];
    assert_eq!(s["isMonotonic"], true);
    assert_eq!(s["dataPoints"][0]["asInt"], "-9007199254740993");
}

#[test]
fn log_records_as_otlp_json() {
    let record = LogRecord {
        time_unix_nano: NANOS,
        observed_time_unix_nano: NANOS + 1,
        severity_number: 13,
        severity_text: "WARN".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("GET /x 503".into())),
        }),
        attributes: vec![kv_int("http.response.status_code", 503)],
        flags: 1,
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        event_name: "redline.alert.fired".into(),
        ..Default::default()
    };
    let message = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let v = sent(Signal::Logs, &message);
    let r = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(r["timeUnixNano"], NANOS.to_string());
    assert_eq!(r["observedTimeUnixNano"], (NANOS + 1).to_string());
    assert_eq!(r["severityNumber"], 13);
    assert_eq!(r["severityText"], "WARN");
    assert_eq!(r["body"], json!({"stringValue": "GET /x 503"}));
    assert_eq!(r["traceId"], TRACE_HEX);
    assert_eq!(r["spanId"], SPAN_HEX);
    assert_eq!(r["flags"], 1);
    assert_eq!(r["eventName"], "redline.alert.fired");
    assert_eq!(
        attribute(&r["attributes"], "http.response.status_code"),
        &json!({"intValue": "503"})
    );
}

#[test]
fn an_answer_with_partial_success_is_read_as_a_number_or_a_string() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let traces = response(
        Signal::Traces,
        br#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"too old"}}"#,
    );
    let traces = ExportTraceServiceResponse::decode(traces).unwrap();
    let p = traces.partial_success.unwrap();
    assert_eq!((p.rejected_spans, p.error_message.as_str()), (2, "too old"));
    let metrics = response(
        Signal::Metrics,
        br#"{"partialSuccess":{"rejectedDataPoints":5}}"#,
    );
    let metrics = ExportMetricsServiceResponse::decode(metrics).unwrap();
    assert_eq!(metrics.partial_success.unwrap().rejected_data_points, 5);
    let logs = response(
        Signal::Logs,
        br#"{"partialSuccess":{"rejectedLogRecords":"7"}}"#,
    );
    let logs = ExportLogsServiceResponse::decode(logs).unwrap();
    assert_eq!(logs.partial_success.unwrap().rejected_log_records, 7);
    for nothing in [&b""[..], b"{}", b"not json", b"[1]"] {
        assert!(response(Signal::Traces, nothing).is_empty(), "{nothing:?}");
    }
}

#[test]
fn bytes_that_are_not_the_signals_message_are_an_error_not_a_panic() {
    let e = request(Signal::Traces, &[0xff, 0xff, 0xff]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("cannot build the JSON export request: failed to decode"),
        "{text}"
    );
}

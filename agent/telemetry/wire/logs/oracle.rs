//! Oracle: log records written by the hand-made writer against `opentelemetry-proto`'s prost types.
//!
//! Random access records and events (any Unicode, lengths around the varint limits) are
//! written with [`super`]'s functions behind a [`trace_request_head`] and decoded with
//! prost as an `ExportLogsServiceRequest`; the same records are built with prost's types.
//! Property: the two messages are equal, field by field and re-encoded, and so is the message
//! read back from the `http/json` conversion of Redline's bytes.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use prost::Message;

use super::super::trace_request_head;
use super::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => ".{0,20}",
        2 => (120usize..136, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
        1 => (16_370usize..16_400).prop_map(|n| "x".repeat(n)),
    ]
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Info),
        Just(Severity::Warn),
        Just(Severity::Error)
    ]
}

#[derive(Debug, Clone)]
struct Access {
    times: (u64, u64),
    severity: Severity,
    strings: [String; 8],
    status: u16,
    duration_ms: f64,
    ids: ([u8; 16], [u8; 8], bool),
}

#[derive(Debug, Clone)]
enum Generated {
    Access(Access),
    Event {
        time: u64,
        severity: Severity,
        name: String,
        body: String,
        attributes: Vec<(String, String)>,
    },
}

fn access() -> impl Strategy<Value = Generated> {
    let strings = (
        (".{0,8}", text(), ".{0,12}", text()),
        (".{0,12}", "[0-9a-z_]{0,8}", ".{0,20}", text()),
    )
        .prop_map(|((a, b, c, d), (e, f, g, h))| [a, b, c, d, e, f, g, h]);
    (
        (any::<u64>(), any::<u64>()),
        severity(),
        strings,
        any::<u16>(),
        any::<f64>().prop_filter("a number", |v| !v.is_nan()),
        any::<([u8; 16], [u8; 8], bool)>(),
    )
        .prop_map(|(times, severity, strings, status, duration_ms, ids)| {
            Generated::Access(Access {
                times,
                severity,
                strings,
                status,
                duration_ms,
                ids,
            })
        })
}

fn event() -> impl Strategy<Value = Generated> {
    (
        any::<u64>(),
        severity(),
        ".{0,16}",
        text(),
        proptest::collection::vec((".{0,70}", text()), 0..6),
    )
        .prop_map(
            |(time, severity, name, body, attributes)| Generated::Event {
                time,
                severity,
                name,
                body,
                attributes,
            },
        )
}

fn write(g: &Generated, out: &mut Vec<u8>) {
    match g {
        Generated::Access(a) => {
            let [method, path, query, route, flow, error, client, request_id] = &a.strings;
            access_record(
                out,
                &AccessRecord {
                    time_ns: a.times.0,
                    observed_ns: a.times.1,
                    severity: a.severity,
                    method,
                    path,
                    query,
                    route,
                    flow,
                    status: a.status,
                    error,
                    duration_ms: a.duration_ms,
                    client,
                    request_id,
                    trace_id: a.ids.0,
                    span_id: a.ids.1,
                    sampled: a.ids.2,
                },
            );
        }
        Generated::Event {
            time,
            severity,
            name,
            body,
            attributes,
        } => {
            let attributes: Vec<(&str, &str)> = attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            event_record(
                out,
                &EventRecord {
                    time_ns: *time,
                    severity: *severity,
                    name,
                    body,
                    attributes: &attributes,
                },
            );
        }
    }
}

fn some(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn string(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: some(any_value::Value::StringValue(v.into())),
        ..Default::default()
    }
}

/// The same record built with prost's types.
fn expected(g: &Generated) -> LogRecord {
    match g {
        Generated::Access(a) => {
            let [method, path, query, route, flow, error, client, request_id] = &a.strings;
            let mut attributes = vec![
                string("http.request.method", method),
                string("url.path", path),
            ];
            if !query.is_empty() {
                attributes.push(string("url.query", query));
            }
            attributes.push(string("http.route", route));
            attributes.push(KeyValue {
                key: "http.response.status_code".into(),
                value: some(any_value::Value::IntValue(i64::from(a.status))),
                ..Default::default()
            });
            if !error.is_empty() {
                attributes.push(string("error.type", error));
            }
            attributes.push(string("redline.flow", flow));
            attributes.push(KeyValue {
                key: "redline.duration_ms".into(),
                value: some(any_value::Value::DoubleValue(a.duration_ms)),
                ..Default::default()
            });
            attributes.push(string("client.address", client));
            if !request_id.is_empty() {
                attributes.push(KeyValue {
                    key: "http.request.header.x-request-id".into(),
                    value: some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::StringValue(request_id.clone())),
                        }],
                    })),
                    ..Default::default()
                });
            }
            LogRecord {
                time_unix_nano: a.times.0,
                observed_time_unix_nano: a.times.1,
                severity_number: a.severity.number() as i32,
                severity_text: a.severity.text().into(),
                body: some(any_value::Value::StringValue(format!(
                    "{method} {path} {}",
                    a.status
                ))),
                attributes,
                flags: u32::from(a.ids.2),
                trace_id: a.ids.0.to_vec(),
                span_id: a.ids.1.to_vec(),
                ..Default::default()
            }
        }
        Generated::Event {
            time,
            severity,
            name,
            body,
            attributes,
        } => LogRecord {
            time_unix_nano: *time,
            observed_time_unix_nano: *time,
            severity_number: severity.number() as i32,
            severity_text: severity.text().into(),
            body: some(any_value::Value::StringValue(body.clone())),
            attributes: attributes.iter().map(|(k, v)| string(k, v)).collect(),
            event_name: name.clone(),
            ..Default::default()
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn prost_reads_every_written_log_record_as_the_message_built_with_its_types(
        records in proptest::collection::vec(prop_oneof![access(), event()], 1..5),
        service in text(),
    ) {
        let resource = Resource {
            attributes: vec![crate::telemetry::spans::kv("service.name", &service)],
            ..Default::default()
        };
        let scope = InstrumentationScope { name: "redline".into(), ..Default::default() };
        let mut written = Vec::new();
        for g in &records {
            write(g, &mut written);
        }
        let mut body = trace_request_head(&resource.encode_to_vec(), &scope.encode_to_vec(), written.len());
        body.extend_from_slice(&written);
        let ours = ExportLogsServiceRequest::decode(body.as_slice())
            .map_err(|e| TestCaseError::fail(format!("prost cannot decode: {e}")))?;
        let theirs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope),
                    log_records: records.iter().map(expected).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (a, b) = (&ours.resource_logs[0].scope_logs[0], &theirs.resource_logs[0].scope_logs[0]);
        prop_assert_eq!(a.log_records.len(), b.log_records.len());
        for (x, y) in a.log_records.iter().zip(&b.log_records) {
            prop_assert_eq!(x, y);
        }
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
        // The http/json route sends the same message.
        let json = crate::telemetry::otlp_json::request(crate::telemetry::env::Signal::Logs, &body)
            .map_err(|e| TestCaseError::fail(format!("no JSON: {e}")))?;
        let read: ExportLogsServiceRequest = serde_json::from_slice(&json)
            .map_err(|e| TestCaseError::fail(format!("JSON unreadable: {e}")))?;
        prop_assert_eq!(&read, &ours);
    }
}

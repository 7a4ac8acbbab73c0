//! Oracle: spans written by the hand-made protobuf writer against `opentelemetry-proto`'s prost types.
//!
//! A proptest strategy generates spans the way `spans.rs` writes them (ids, an optional
//! parent and `tracestate`, a name in pieces, kind, times, flags, string / string-in-pieces /
//! integer / string-array attributes, a status), with strings of any Unicode and of lengths
//! around the one-, two- and three-byte length varints, so `nested`'s kept room is too big,
//! right and too small. Each span is written with [`super`]'s functions into
//! `ScopeSpans.spans` entries behind a [`trace_request_head`] with a random resource, and
//! the same span is built as an `opentelemetry_proto` `Span` in an
//! `ExportTraceServiceRequest`. Property: prost decodes Redline's bytes into exactly the
//! message built with prost's types (compared field by field through `PartialEq`, then by
//! prost's own re-encoding of both).
//!
//! Metric points are built as the prost types and encoded by prost; what is hand-made there
//! is the mapping from the registry, which `otlp_metrics/oracle.rs` checks against a model
//! and against the OpenMetrics text.
//!
//! The same bytes go through the `http/json` conversion (`otlp_json`), and the JSON is read
//! back through `opentelemetry-proto`'s serde types: it must be the same message.
//!
//! `PROPTEST_CASES` overrides the default of 256 cases. Recorded run:
//! `PROPTEST_CASES=5000 cargo test --lib telemetry::wire::oracle`, debug build, 2 shared
//! cores: 4.9 s, no difference.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;

use super::*;

/// One attribute value, in the shapes the writer has.
#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Parts(Vec<String>),
    Int(i64),
    StrArray(String),
}

#[derive(Debug, Clone)]
struct Generated {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    tracestate: Option<String>,
    name: Vec<String>,
    kind: u64,
    start: u64,
    end: u64,
    flags: u32,
    attributes: Vec<(String, Value)>,
    status: (i32, String),
}

/// Text of any Unicode, mostly short, sometimes around the varint length limits.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => ".{0,20}",
        2 => (120usize..136, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
        1 => (16_370usize..16_400).prop_map(|n| "x".repeat(n)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::Str),
        proptest::collection::vec(".{0,8}", 0..4).prop_map(Value::Parts),
        any::<i64>().prop_map(Value::Int),
        text().prop_map(Value::StrArray),
    ]
}

fn generated() -> impl Strategy<Value = Generated> {
    let ids = (
        any::<[u8; 16]>(),
        any::<[u8; 8]>(),
        any::<Option<[u8; 8]>>(),
    );
    let head = (
        proptest::option::of("[ -~]{0,40}"),
        proptest::collection::vec(".{0,12}", 1..4),
        0u64..6,
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    );
    let attributes = proptest::collection::vec(("[ -~]{0,64}", value()), 0..12);
    let status = (0i32..3, text());
    (ids, head, attributes, status).prop_map(
        |(
            (trace_id, span_id, parent),
            (tracestate, name, kind, start, end, flags),
            attributes,
            status,
        )| {
            Generated {
                trace_id,
                span_id,
                parent,
                tracestate,
                name,
                kind,
                start,
                end,
                flags,
                attributes,
                status,
            }
        },
    )
}

/// The span as `spans.rs` writes one: the same calls in the same order.
fn write(g: &Generated, out: &mut Vec<u8>) {
    nested(out, SCOPE_SPANS_SPANS, |b| {
        bytes(b, 1, &g.trace_id);
        bytes(b, 2, &g.span_id);
        if let Some(state) = &g.tracestate {
            bytes(b, 3, state.as_bytes());
        }
        if let Some(p) = &g.parent {
            bytes(b, 4, p);
        }
        fixed32(b, 16, g.flags);
        varint(b, 6, g.kind);
        fixed64(b, 7, g.start);
        fixed64(b, 8, g.end);
        let name: Vec<&str> = g.name.iter().map(String::as_str).collect();
        string_parts(b, 5, &name);
        for (key, value) in &g.attributes {
            let key = Key::new(key);
            match value {
                Value::Str(s) => attr_str(b, &key, s),
                Value::Parts(p) => {
                    let p: Vec<&str> = p.iter().map(String::as_str).collect();
                    attr_str_parts(b, &key, &p);
                }
                Value::Int(n) => attr_int(b, &key, *n),
                Value::StrArray(s) => attr_str_array(b, &key, s),
            }
        }
        status(b, g.status.0, &g.status.1);
    });
}

fn wrap(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

/// The same span built with `opentelemetry-proto`'s types.
fn expected(g: &Generated) -> Span {
    let attributes = g
        .attributes
        .iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: match value {
                Value::Str(s) => wrap(any_value::Value::StringValue(s.clone())),
                Value::Parts(p) => wrap(any_value::Value::StringValue(p.concat())),
                Value::Int(n) => wrap(any_value::Value::IntValue(*n)),
                Value::StrArray(s) => wrap(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue(s.clone())),
                    }],
                })),
            },
            ..Default::default()
        })
        .collect();
    // An unset status carries no message (OTLP: the description is for errors).
    let status = match g.status.0 {
        0 => Status::default(),
        code => Status {
            code,
            message: g.status.1.clone(),
        },
    };
    Span {
        trace_id: g.trace_id.to_vec(),
        span_id: g.span_id.to_vec(),
        trace_state: g.tracestate.clone().unwrap_or_default(),
        parent_span_id: g.parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags: g.flags,
        name: g.name.concat(),
        kind: g.kind as i32,
        start_time_unix_nano: g.start,
        end_time_unix_nano: g.end,
        attributes,
        status: Some(status),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn prost_reads_every_written_span_as_the_message_built_with_its_types(
        spans in proptest::collection::vec(generated(), 1..4),
        service in text(),
        scope_name in ".{0,16}",
    ) {
        let resource = Resource {
            attributes: vec![crate::telemetry::spans::kv("service.name", &service)],
            ..Default::default()
        };
        let scope = InstrumentationScope { name: scope_name, ..Default::default() };
        let mut written = Vec::new();
        for g in &spans {
            write(g, &mut written);
        }
        let mut body = trace_request_head(
            &resource.encode_to_vec(),
            &scope.encode_to_vec(),
            written.len(),
        );
        body.extend_from_slice(&written);
        let ours = ExportTraceServiceRequest::decode(body.as_slice())
            .map_err(|e| TestCaseError::fail(format!("prost cannot decode: {e}")))?;
        let theirs = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope),
                    spans: spans.iter().map(expected).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (a, b) = (&ours.resource_spans[0].scope_spans[0], &theirs.resource_spans[0].scope_spans[0]);
        prop_assert_eq!(a.spans.len(), b.spans.len());
        for (x, y) in a.spans.iter().zip(&b.spans) {
            prop_assert_eq!(&x.trace_id, &y.trace_id);
            prop_assert_eq!(&x.span_id, &y.span_id);
            prop_assert_eq!(&x.parent_span_id, &y.parent_span_id);
            prop_assert_eq!(&x.trace_state, &y.trace_state);
            prop_assert_eq!(x.flags, y.flags);
            prop_assert_eq!(&x.name, &y.name);
            prop_assert_eq!(x.kind, y.kind);
            prop_assert_eq!(x.start_time_unix_nano, y.start_time_unix_nano);
            prop_assert_eq!(x.end_time_unix_nano, y.end_time_unix_nano);
            prop_assert_eq!(&x.attributes, &y.attributes);
            prop_assert_eq!(&x.status, &y.status);
        }
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
        // The http/json route sends the same message.
        let json = crate::telemetry::otlp_json::request(crate::telemetry::env::Signal::Traces, &body)
            .map_err(|e| TestCaseError::fail(format!("no JSON: {e}")))?;
        let read: ExportTraceServiceRequest = serde_json::from_slice(&json)
            .map_err(|e| TestCaseError::fail(format!("JSON unreadable: {e}")))?;
        prop_assert_eq!(&read, &ours);
    }
}

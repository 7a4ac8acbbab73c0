//! OTLP log records (`opentelemetry/proto/logs/v1/logs.proto`) written by hand, as spans are: access records on the request path, audit and alert events off it.
//!
//! Why by hand: an access record is written for every request, and building
//! `opentelemetry-proto`'s `LogRecord` costs an allocation per attribute key and value.
//! The request head is [`super::trace_request_head`]: `ExportLogsServiceRequest` has the
//! very shape and field numbers of `ExportTraceServiceRequest`. `oracle.rs` decodes random
//! records with the prost types and compares them with the message built with those types.

use super::{
    Key, bytes, field_len, fixed32, fixed64, key_value_head, nested, string_parts, varint,
};

/// `ScopeLogs.log_records`.
pub const SCOPE_LOGS_RECORDS: u32 = 2;
/// `LogRecord.attributes`.
const ATTRIBUTES: u32 = 6;

/// `SeverityNumber` and its text, the OpenTelemetry log data model's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `SEVERITY_NUMBER_INFO`.
    Info,
    /// `SEVERITY_NUMBER_WARN`.
    Warn,
    /// `SEVERITY_NUMBER_ERROR`.
    Error,
}

impl Severity {
    /// The `SeverityNumber` value.
    pub fn number(self) -> u64 {
        match self {
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
        }
    }

    /// The `severity_text`.
    pub fn text(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

/// One finished request, as its access log line says it (values already redacted).
#[derive(Debug, Clone)]
pub struct AccessRecord<'a> {
    /// When the request started.
    pub time_ns: u64,
    /// When the record was written.
    pub observed_ns: u64,
    /// By status: INFO below 400, WARN for a 4xx, ERROR for a failure.
    pub severity: Severity,
    /// `http.request.method`.
    pub method: &'a str,
    /// `url.path`.
    pub path: &'a str,
    /// `url.query`, redacted; empty: none.
    pub query: &'a str,
    /// `http.route`.
    pub route: &'a str,
    /// `redline.flow`.
    pub flow: &'a str,
    /// `http.response.status_code`.
    pub status: u16,
    /// `error.type`; empty: none.
    pub error: &'a str,
    /// `redline.duration_ms`, the access log's `duration_ms`.
    pub duration_ms: f64,
    /// `client.address`.
    pub client: &'a str,
    /// `x-request-id`.
    pub request_id: &'a str,
    /// The request's trace and Redline's SERVER span.
    pub trace_id: [u8; 16],
    /// Redline's SERVER span.
    pub span_id: [u8; 8],
    /// The trace's sampled flag.
    pub sampled: bool,
}

static METHOD: Key = Key::new("http.request.method");
static PATH: Key = Key::new("url.path");
static QUERY: Key = Key::new("url.query");
static ROUTE: Key = Key::new("http.route");
static STATUS: Key = Key::new("http.response.status_code");
static ERROR: Key = Key::new("error.type");
static FLOW: Key = Key::new("redline.flow");
static DURATION: Key = Key::new("redline.duration_ms");
static CLIENT: Key = Key::new("client.address");
static REQUEST_ID: Key = Key::new("http.request.header.x-request-id");

/// One `ScopeLogs.log_records` entry for `r`. Its body is the line's gist,
/// `GET /orders/42 200`; everything else is an attribute.
pub fn access_record(buf: &mut Vec<u8>, r: &AccessRecord<'_>) {
    nested(buf, SCOPE_LOGS_RECORDS, |b| {
        head(b, r.time_ns, r.observed_ns, r.severity);
        let status = r.status.to_string();
        nested(b, 5, |any| {
            string_parts(any, 1, &[r.method, " ", r.path, " ", &status])
        });
        str_attr(b, &METHOD, r.method);
        str_attr(b, &PATH, r.path);
        if !r.query.is_empty() {
            str_attr(b, &QUERY, r.query);
        }
        str_attr(b, &ROUTE, r.route);
        int_attr(b, &STATUS, i64::from(r.status));
        if !r.error.is_empty() {
            str_attr(b, &ERROR, r.error);
        }
        str_attr(b, &FLOW, r.flow);
        double_attr(b, &DURATION, r.duration_ms);
        str_attr(b, &CLIENT, r.client);
        if !r.request_id.is_empty() {
            str_array_attr(b, &REQUEST_ID, r.request_id);
        }
        fixed32(b, 8, u32::from(r.sampled));
        bytes(b, 9, &r.trace_id);
        bytes(b, 10, &r.span_id);
    });
}

/// An event: an audit line or an alert's change of state.
#[derive(Debug, Clone)]
pub struct EventRecord<'a> {
    /// When it happened (also the observed time).
    pub time_ns: u64,
    /// Severity.
    pub severity: Severity,
    /// `LogRecord.event_name` (`redline.audit`, `redline.alert`).
    pub name: &'a str,
    /// The human line.
    pub body: &'a str,
    /// String attributes, in order.
    pub attributes: &'a [(&'a str, &'a str)],
}

/// One `ScopeLogs.log_records` entry for `r`.
pub fn event_record(buf: &mut Vec<u8>, r: &EventRecord<'_>) {
    nested(buf, SCOPE_LOGS_RECORDS, |b| {
        head(b, r.time_ns, r.time_ns, r.severity);
        nested(b, 5, |any| bytes(any, 1, r.body.as_bytes()));
        for (key, value) in r.attributes {
            // KeyValue { key, value: AnyValue { string_value } }, the key known only now.
            nested(b, ATTRIBUTES, |kv| {
                bytes(kv, 1, key.as_bytes());
                nested(kv, 2, |v| bytes(v, 1, value.as_bytes()));
            });
        }
        bytes(b, 12, r.name.as_bytes());
    });
}

/// Times and severity: `time_unix_nano` (1), `severity_number` (2), `severity_text` (3),
/// `observed_time_unix_nano` (11).
fn head(b: &mut Vec<u8>, time_ns: u64, observed_ns: u64, severity: Severity) {
    fixed64(b, 1, time_ns);
    varint(b, 2, severity.number());
    bytes(b, 3, severity.text().as_bytes());
    fixed64(b, 11, observed_ns);
}

fn str_attr(b: &mut Vec<u8>, key: &Key, value: &str) {
    key_value_head(b, ATTRIBUTES, key, field_len(1, value.len()));
    bytes(b, 1, value.as_bytes());
}

fn int_attr(b: &mut Vec<u8>, key: &Key, value: i64) {
    let raw = value as u64;
    key_value_head(
        b,
        ATTRIBUTES,
        key,
        1 + prost::encoding::encoded_len_varint(raw),
    );
    varint(b, 3, raw);
}

/// `AnyValue.array_value` (field 5) of one string: `http.request.header.*` are `string[]`.
fn str_array_attr(b: &mut Vec<u8>, key: &Key, value: &str) {
    let item = field_len(1, value.len());
    let array = field_len(1, item);
    key_value_head(b, ATTRIBUTES, key, field_len(5, array));
    nested(b, 5, |a| nested(a, 1, |v| bytes(v, 1, value.as_bytes())));
}

/// `AnyValue.double_value` (field 4, fixed64).
fn double_attr(b: &mut Vec<u8>, key: &Key, value: f64) {
    key_value_head(b, ATTRIBUTES, key, 9);
    fixed64(b, 4, value.to_bits());
}

#[cfg(test)]
mod oracle;

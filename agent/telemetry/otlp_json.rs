//! OTLP/JSON (`http/json`): an export request written as protobuf, re-read and written as the OTLP JSON encoding.
//!
//! Why decode and re-serialise rather than write JSON beside the protobuf writers:
//! every signal is already built as protobuf (spans and log records on the workers,
//! metrics by prost), so one conversion at the exporter covers all three with no
//! second encoder to keep in step, and nothing changes on the request path. The
//! JSON comes from `opentelemetry-proto`'s `with-serde` types, whose serialisers
//! follow the OTLP/JSON rules (field names in lowerCamelCase, trace and span ids as
//! hex strings rather than protobuf JSON's base64, enums as integers, 64-bit integers
//! as decimal strings, `AnyValue` as `{"stringValue": …}`); `oracle.rs` holds them
//! to that. The cost is one decode and one allocation of the message per export,
//! on the exporter task, paid only by those who choose `http/json`.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    self as logs, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    self as metrics, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    self as trace, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::env::Signal;
use crate::error::{Error, ErrorType};

/// The JSON body of the export request whose protobuf encoding is `protobuf`.
pub fn request(signal: Signal, protobuf: &[u8]) -> Result<Vec<u8>, Error> {
    match signal {
        Signal::Traces => to_json::<ExportTraceServiceRequest>(protobuf),
        Signal::Metrics => to_json::<ExportMetricsServiceRequest>(protobuf),
        Signal::Logs => to_json::<ExportLogsServiceRequest>(protobuf),
    }
}

/// The collector's JSON answer as the protobuf the exporter reads: only `partialSuccess`
/// matters, its count as a JSON number or (the protobuf JSON mapping of int64) a string;
/// read here rather than through the serde types, which take only the number. An empty
/// or unreadable answer is an empty message, as on the protobuf path.
pub fn response(signal: Signal, json: &[u8]) -> Bytes {
    let answer: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
    let Some(partial) = answer.get("partialSuccess") else {
        return Bytes::new();
    };
    let field = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let rejected = match partial.get(field) {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(0);
    let error_message = partial
        .get("errorMessage")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    let protobuf = match signal {
        Signal::Traces => ExportTraceServiceResponse {
            partial_success: Some(trace::ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceResponse {
            partial_success: Some(metrics::ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceResponse {
            partial_success: Some(logs::ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
    };
    Bytes::from(protobuf)
}

fn to_json<M: Message + Default + serde::Serialize>(protobuf: &[u8]) -> Result<Vec<u8>, Error> {
    let message = M::decode(protobuf).map_err(|e| {
        Error::new(
            ErrorType::BadRequest,
            "cannot build the JSON export request",
        )
        .caused_by(e)
    })?;
    serde_json::to_vec(&message).map_err(|e| {
        Error::new(
            ErrorType::BadRequest,
            "cannot build the JSON export request",
        )
        .caused_by(e)
    })
}

#[cfg(test)]
mod oracle;

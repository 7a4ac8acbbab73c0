//! The `telemetry` section: OTLP export, trace sampling, metric export and the access log.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::de::{Parse, http_url, opt_positive_duration, parse_http_url, positive_duration};
use super::units::parse_duration;

/// OpenTelemetry's advised boundaries for `http.server.request.duration`, in seconds.
pub const DEFAULT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `telemetry:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { access_log: json }"
)]
pub struct TelemetryConfig {
    /// OTLP exporter; without it (and without `OTEL_EXPORTER_OTLP_*`) nothing is exported.
    pub otlp: Option<OtlpConfig>,
    /// Trace sampling.
    pub traces: TracesConfig,
    /// Metric export and histogram boundaries.
    pub metrics: MetricsConfig,
    /// Access log format (default json; `--access-log` and `REDLINE_ACCESS_LOG` override).
    pub access_log: AccessLogFormat,
    /// Redline extension: link trace ids on the dashboard to a trace backend, e.g.
    /// `https://jaeger.example/trace/{trace_id}`; must contain `{trace_id}`.
    #[serde(deserialize_with = "opt_trace_url_template")]
    pub trace_url_template: Option<String>,
}

/// What `trace_url_template` marks the trace id with.
pub const TRACE_ID_PLACEHOLDER: &str = "{trace_id}";

/// `telemetry.otlp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping such as { endpoint: http://collector:4318 }"
)]
pub struct OtlpConfig {
    /// Base URL of the collector, e.g. `http://collector:4318`.
    #[serde(deserialize_with = "http_url")]
    pub endpoint: String,
    /// Wire protocol (default http/protobuf, the specification's default).
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Extra request headers, e.g. an API key; values are treated as secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum OtlpProtocol {
    /// `http/protobuf`, usually on port 4318.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `grpc`, usually on port 4317.
    #[serde(rename = "grpc")]
    Grpc,
    /// `http/json` (OTLP/JSON), usually on port 4318.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    /// The YAML and `OTEL_EXPORTER_OTLP_PROTOCOL` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpJson => "http/json",
        }
    }
}

/// `telemetry.traces`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { sample_ratio: 0.5 }"
)]
pub struct TracesConfig {
    /// Head sampling ratio in [0, 1]; unset defers to `OTEL_TRACES_SAMPLER` (always on).
    #[serde(deserialize_with = "opt_ratio")]
    pub sample_ratio: Option<f64>,
    /// Always keep traces slower than this; unset means the flow's lowest latency threshold.
    #[serde(deserialize_with = "opt_positive_duration")]
    pub keep_slower_than: Option<Duration>,
}

/// `telemetry.metrics`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { interval: 60s }"
)]
pub struct MetricsConfig {
    /// OTLP metric export interval (default 60s, as `OTEL_METRIC_EXPORT_INTERVAL`).
    #[serde(deserialize_with = "positive_duration")]
    pub interval: Duration,
    /// Histogram boundaries in seconds, strictly increasing; latency thresholds are added.
    #[serde(deserialize_with = "buckets")]
    pub buckets: Vec<f64>,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            interval: Duration::from_secs(60),
            buckets: DEFAULT_BUCKETS.to_vec(),
        }
    }
}

/// Access log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// One JSON object per request (the default).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
    /// No access log.
    Off,
}

impl std::str::FromStr for AccessLogFormat {
    type Err = String;

    /// The YAML spelling, as `--access-log` and `REDLINE_ACCESS_LOG` take it.
    fn from_str(s: &str) -> Result<AccessLogFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(AccessLogFormat::Json),
            "text" => Ok(AccessLogFormat::Text),
            "off" => Ok(AccessLogFormat::Off),
            other => Err(format!(
                "invalid access log format {other:?}; expected json, text or off"
            )),
        }
    }
}

impl AccessLogFormat {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLogFormat::Json => "json",
            AccessLogFormat::Text => "text",
            AccessLogFormat::Off => "off",
        }
    }
}

fn opt_trace_url_template<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Parse::new(
        "a URL with {trace_id}, e.g. https://jaeger.example/trace/{trace_id}",
        parse_trace_url_template,
    )
    .optional(d)
}

/// The template must make an http(s) URL once the id is in, and carry no credentials: every
/// dashboard viewer receives it.
fn parse_trace_url_template(s: &str) -> Result<String, String> {
    let text = s.trim();
    if !text.contains(TRACE_ID_PLACEHOLDER) {
        return Err(format!(
            "trace_url_template {text:?} lacks {TRACE_ID_PLACEHOLDER}; expected e.g. \
             https://jaeger.example/trace/{TRACE_ID_PLACEHOLDER}"
        ));
    }
    let example = text.replace(TRACE_ID_PLACEHOLDER, "4bf92f3577b34da6a3ce929d0e0e4736");
    parse_http_url(&example).map_err(|_| {
        format!(
            "invalid trace_url_template {text:?}; expected an http:// or https:// URL with a host"
        )
    })?;
    let authority = example.split("://").nth(1).unwrap_or("").split('/').next();
    if authority.is_some_and(|a| a.contains('@')) {
        return Err(format!(
            "trace_url_template {text:?} must not contain credentials: the dashboard shows it"
        ));
    }
    Ok(text.to_string())
}

fn opt_ratio<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Parse::new("a ratio between 0 and 1", |s| {
        match s.trim().parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            Ok(_) => Err(format!(
                "sample_ratio {} is out of range; expected 0 to 1",
                s.trim()
            )),
            Err(_) => Err(format!(
                "invalid sample_ratio {s:?}; expected a number from 0 to 1, e.g. 0.25"
            )),
        }
    })
    .optional(d)
}

/// A boundary is seconds as a number (`0.25`) or a duration (`250ms`).
fn parse_bucket(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let seconds = match text.parse::<f64>() {
        Ok(x) => x,
        Err(_) => parse_duration(text)?.as_secs_f64(),
    };
    if seconds.is_finite() && seconds > 0.0 {
        return Ok(seconds);
    }
    Err(format!(
        "bucket boundary {text:?} must be a positive number of seconds or a duration"
    ))
}

fn buckets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    d.deserialize_seq(Buckets)
}

struct Buckets;

impl<'de> Visitor<'de> for Buckets {
    type Value = Vec<f64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of bucket boundaries in seconds, e.g. [0.05, 0.1, 0.5]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f64>, A::Error> {
        let item = Parse::new("a bucket boundary in seconds", parse_bucket);
        let mut out: Vec<f64> = Vec::new();
        while let Some(x) = seq.next_element_seed(item)? {
            out.push(x);
        }
        if out.is_empty() {
            return Err(de::Error::custom(
                "at least one bucket boundary is required",
            ));
        }
        if out.windows(2).any(|w| w[0] >= w[1]) {
            return Err(de::Error::custom(
                "bucket boundaries must be strictly increasing",
            ));
        }
        Ok(out)
    }
}

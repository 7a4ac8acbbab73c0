//! The `OTEL_*` environment variables, resolved once at start with the config file's `telemetry` section as fallback.
//!
//! Precedence, per variable: signal-specific variable (`…_TRACES_…`) > generic
//! variable > config file > the specification's default. Empty values count
//! as unset; invalid values are reported as warnings and ignored, as the
//! specification asks. Variables are read through a lookup function so tests
//! pass a map instead of touching the process environment.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use super::propagation::Propagators;
use super::sampler::Sampler;
use super::tls::Tls;
use crate::config::{Config, OtlpProtocol};

pub use resource::parse_pairs;
use resource::{parse_pairs_lenient, resource};

/// Reads one environment variable.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `OTEL_EXPORTER_OTLP_TIMEOUT`'s default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `OTEL_BSP_EXPORT_TIMEOUT`'s and `OTEL_METRIC_EXPORT_TIMEOUT`'s default.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// An OTLP signal Redline exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
    /// Log records (access log, audit trail, alert events).
    Logs,
}

impl Signal {
    /// The `signal` label of `redline_telemetry_dropped_total`.
    pub fn label(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    fn env_part(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }

    /// The variable bounding one export with its retries (the SDK's processor or reader timeout).
    fn export_timeout_var(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_BSP_EXPORT_TIMEOUT",
            Signal::Metrics => "OTEL_METRIC_EXPORT_TIMEOUT",
            Signal::Logs => "OTEL_BLRP_EXPORT_TIMEOUT",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }

    /// The gRPC method path of the collector service.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }
}

/// OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Protobuf bodies POSTed over HTTP/1.1 (default; port 4318).
    HttpProtobuf,
    /// gRPC over HTTP/2 (port 4317).
    Grpc,
    /// OTLP/JSON bodies POSTed over HTTP/1.1 (port 4318).
    HttpJson,
}

impl Protocol {
    /// The `OTEL_EXPORTER_OTLP_PROTOCOL` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::Grpc => "grpc",
            Protocol::HttpJson => "http/json",
        }
    }
}

/// Where and how one signal is exported.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which signal.
    pub signal: Signal,
    /// The full request URL (for gRPC: the collector's origin plus the service method path).
    pub url: Uri,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Extra request headers (gRPC metadata), e.g. an API key.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Bound on one try (connect, send, answer): `OTEL_EXPORTER_OTLP_TIMEOUT`.
    pub timeout: Duration,
    /// Bound on one batch with all its tries and the waits between them:
    /// `OTEL_BSP_EXPORT_TIMEOUT` (spans) or `OTEL_METRIC_EXPORT_TIMEOUT` (metrics).
    pub export_timeout: Duration,
    /// Compress bodies with gzip.
    pub gzip: bool,
    /// Custom CA and client certificate for `https` endpoints.
    pub tls: Tls,
}

/// Aggregation temporality of exported histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Counts since process start (default).
    Cumulative,
    /// Counts since the previous successful export (`delta` and `lowmemory` preferences).
    Delta,
}

/// Span queue and batching (`OTEL_BSP_*`). Sizes count requests; each request makes one or two spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Requests waiting for export before new ones are dropped (default 2048).
    pub queue: usize,
    /// Requests per export at most (default 512).
    pub max_batch: usize,
    /// How long a partial batch waits for more (default 5 s).
    pub delay: Duration,
}

/// Everything telemetry needs, resolved from the environment and the config file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Span export; `None` when no endpoint is configured, or disabled.
    pub traces: Option<Target>,
    /// Metric export; `None` when no endpoint is configured, or disabled.
    pub metrics: Option<Target>,
    /// Log record export; `None` when no endpoint is configured, or disabled.
    pub logs: Option<Target>,
    /// Time between metric exports.
    pub metric_interval: Duration,
    /// Histogram temporality.
    pub temporality: Temporality,
    /// Trace header formats.
    pub propagators: Propagators,
    /// Head sampler.
    pub sampler: Sampler,
    /// Keep traces slower than this whatever the head sampler said; `None`: the flow's threshold.
    pub keep_slower_than: Option<Duration>,
    /// Resource attributes, `service.name` first.
    pub resource: Vec<(String, String)>,
    /// Span queue and batching.
    pub batching: Batching,
    /// Log record queue and batching (`OTEL_BLRP_*`, counted in records).
    pub log_batching: Batching,
    /// Invalid or unsupported values that were ignored.
    pub warnings: Vec<String>,
}

/// What `OTEL_{TRACES,METRICS}_EXPORTER` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exporter {
    Unset,
    Otlp,
    Off,
}

struct Env<'a> {
    lookup: Lookup<'a>,
    warnings: Vec<String>,
}

impl Env<'_> {
    /// The trimmed value, with empty meaning unset.
    fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// `OTEL_EXPORTER_OTLP_{SIGNAL}_{key}`, else `OTEL_EXPORTER_OTLP_{key}`, with the name that supplied it.
    fn otlp_var(&self, signal: Signal, key: &str) -> Option<(String, String)> {
        let specific = format!("OTEL_EXPORTER_OTLP_{}_{key}", signal.env_part());
        let generic = format!("OTEL_EXPORTER_OTLP_{key}");
        [specific, generic]
            .into_iter()
            .find_map(|name| self.var(&name).map(|v| (name, v)))
    }

    /// Record a warning once (generic variables are read for each signal).
    fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    fn millis(&mut self, name: &str, value: &str) -> Option<Duration> {
        match value.parse::<u64>() {
            Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => {
                self.warn(format!(
                    "{name}={value:?} is not a positive number of milliseconds; ignored"
                ));
                None
            }
        }
    }

    fn count(&mut self, name: &str, default: usize) -> usize {
        let Some(value) = self.var(name) else {
            return default;
        };
        match value.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                self.warn(format!(
                    "{name}={value:?} is not a positive integer; ignored"
                ));
                default
            }
        }
    }
}

impl Settings {
    /// Resolve every setting from `lookup` (the environment) over `config`.
    pub fn resolve(lookup: Lookup<'_>, config: &Config) -> Settings {
        let mut env = Env {
            lookup,
            warnings: Vec::new(),
        };
        let disabled = env
            .var("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (traces, metrics, logs) = if disabled {
            (None, None, None)
        } else {
            (
                target(&mut env, config, Signal::Traces),
                target(&mut env, config, Signal::Metrics),
                target(&mut env, config, Signal::Logs),
            )
        };
        let propagators = match env.var("OTEL_PROPAGATORS") {
            Some(v) => Propagators::parse(&v, &mut env.warnings),
            None => Propagators::default(),
        };
        Settings {
            traces,
            metrics,
            logs,
            metric_interval: metric_interval(&mut env, config),
            temporality: temporality(&mut env),
            propagators,
            sampler: sampler(&mut env, config),
            keep_slower_than: config.telemetry.traces.keep_slower_than,
            resource: resource(&mut env, config),
            batching: batching(&mut env, "BSP", Duration::from_secs(5)),
            log_batching: batching(&mut env, "BLRP", Duration::from_secs(1)),
            warnings: env.warnings,
        }
    }
}

fn exporter_choice(env: &mut Env<'_>, signal: Signal) -> Exporter {
    let name = format!("OTEL_{}_EXPORTER", signal.env_part());
    let Some(value) = env.var(&name) else {
        return Exporter::Unset;
    };
    let values: Vec<String> = value
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    if values.iter().any(|v| v == "none") {
        return Exporter::Off;
    }
    if values.iter().any(|v| v == "otlp") {
        return Exporter::Otlp;
    }
    env.warn(format!(
        "{name}={value:?} is not supported (use otlp or none); ignored"
    ));
    Exporter::Unset
}

fn target(env: &mut Env<'_>, config: &Config, signal: Signal) -> Option<Target> {
    let choice = exporter_choice(env, signal);
    if choice == Exporter::Off {
        return None;
    }
    let protocol = protocol(env, config, signal);
    let url = endpoint(env, config, signal, protocol, choice)?;
    Some(Target {
        signal,
        url,
        protocol,
        headers: headers(env, config, signal),
        timeout: timeout(env, signal),
        export_timeout: export_timeout(env, signal),
        gzip: compression(env, signal),
        tls: tls(env, signal),
    })
}

fn protocol(env: &mut Env<'_>, config: &Config, signal: Signal) -> Protocol {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.env_part());
    for name in [specific.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        let Some(value) = env.var(name) else { continue };
        match value.to_ascii_lowercase().as_str() {
            "grpc" => return Protocol::Grpc,
            "http/protobuf" => return Protocol::HttpProtobuf,
            "http/json" => return Protocol::HttpJson,
            _ => env.warn(format!(
                "{name}={value:?} is not supported (use grpc, http/protobuf or http/json); ignored"
            )),
        }
    }
    match config.telemetry.otlp.as_ref().map(|o| o.protocol) {
        Some(OtlpProtocol::Grpc) => Protocol::Grpc,
        Some(OtlpProtocol::HttpJson) => Protocol::HttpJson,
        _ => Protocol::HttpProtobuf,
    }
}

/// The export URL, or `None` (no export) when nothing names a collector.
///
/// A signal-specific endpoint is used verbatim for HTTP; a generic one (or the
/// config file's) is a base URL that gets `/v1/traces` or `/v1/metrics`. gRPC
/// uses only the endpoint's origin. With no endpoint anywhere, only an explicit
/// `OTEL_*_EXPORTER=otlp` falls back to the specification's localhost default.
fn endpoint(
    env: &mut Env<'_>,
    config: &Config,
    signal: Signal,
    protocol: Protocol,
    choice: Exporter,
) -> Option<Uri> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.env_part());
    let default = match protocol {
        Protocol::HttpProtobuf | Protocol::HttpJson => "http://localhost:4318",
        Protocol::Grpc => "http://localhost:4317",
    };
    let (name, value, verbatim) = if let Some(v) = env.var(&specific) {
        (specific, v, true)
    } else if let Some(v) = env.var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), v, false)
    } else if let Some(otlp) = &config.telemetry.otlp {
        (
            "telemetry.otlp.endpoint".to_string(),
            otlp.endpoint.clone(),
            false,
        )
    } else if choice == Exporter::Otlp {
        ("default endpoint".to_string(), default.to_string(), false)
    } else {
        return None;
    };
    let url = match protocol {
        Protocol::Grpc => {
            origin(&with_scheme(env, signal, &value)).map(|o| format!("{o}{}", signal.grpc_path()))
        }
        Protocol::HttpProtobuf | Protocol::HttpJson if verbatim => Some(value.clone()),
        Protocol::HttpProtobuf | Protocol::HttpJson => Some(signal_url(&value, signal.http_path())),
    };
    match url.and_then(|u| checked_url(&u, protocol)) {
        Some(uri) => Some(uri),
        None => {
            env.warn(format!(
                "{name}={value:?} is not a usable http:// or https:// URL; {} export disabled",
                signal.label()
            ));
            None
        }
    }
}

/// `base` with the signal's `path` joined to its path, its query kept after it.
fn signal_url(base: &str, path: &str) -> String {
    let (base, query) = base.split_at(base.find('?').unwrap_or(base.len()));
    format!("{}{path}{query}", base.trim_end_matches('/'))
}

/// A gRPC endpoint without a scheme (`collector:4317`) gets `https`, or `http` when
/// `OTEL_EXPORTER_OTLP_INSECURE` (or the signal's) is `true`: that is all the variable does,
/// as the specification says; an explicit scheme wins.
fn with_scheme(env: &mut Env<'_>, signal: Signal, value: &str) -> String {
    if value.contains("://") {
        return value.to_string();
    }
    let insecure = match env.otlp_var(signal, "INSECURE") {
        Some((_, v)) if v.eq_ignore_ascii_case("true") => true,
        Some((_, v)) if v.eq_ignore_ascii_case("false") => false,
        Some((name, v)) => {
            env.warn(format!("{name}={v:?} is not true or false; ignored"));
            false
        }
        None => false,
    };
    let scheme = if insecure { "http" } else { "https" };
    format!("{scheme}://{value}")
}

/// `OTEL_EXPORTER_OTLP_{CERTIFICATE,CLIENT_CERTIFICATE,CLIENT_KEY}`, each per signal or generic.
fn tls(env: &mut Env<'_>, signal: Signal) -> Tls {
    let path = |key| env.otlp_var(signal, key).map(|(_, v)| PathBuf::from(v));
    Tls {
        ca: path("CERTIFICATE"),
        client_cert: path("CLIENT_CERTIFICATE"),
        client_key: path("CLIENT_KEY"),
    }
}

/// `scheme://authority` of a URL (gRPC ignores any path).
fn origin(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

fn checked_url(url: &str, protocol: Protocol) -> Option<Uri> {
    let uri: Uri = url.parse().ok()?;
    uri.authority()?;
    match (uri.scheme_str()?, protocol) {
        ("http" | "https", _) => Some(uri),
        _ => None,
    }
}

fn headers(env: &mut Env<'_>, config: &Config, signal: Signal) -> Vec<(HeaderName, HeaderValue)> {
    let pairs: Vec<(String, String)> = match env.otlp_var(signal, "HEADERS") {
        Some((name, value)) => match parse_pairs(&value) {
            Ok(pairs) => pairs,
            Err(bad) => {
                env.warn(format!(
                    "{name}: entry {bad:?} is not key=value (percent-encoded); ignored"
                ));
                parse_pairs_lenient(&value)
            }
        },
        None => config
            .telemetry
            .otlp
            .as_ref()
            .map(|o| {
                o.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match (
            HeaderName::from_bytes(key.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(k), Ok(mut v)) => {
                v.set_sensitive(true);
                out.push((k, v));
            }
            _ => env.warn(format!(
                "OTLP header {key:?} is not a valid HTTP header; ignored"
            )),
        }
    }
    out
}

fn timeout(env: &mut Env<'_>, signal: Signal) -> Duration {
    match env.otlp_var(signal, "TIMEOUT") {
        Some((name, value)) => env.millis(&name, &value).unwrap_or(DEFAULT_TIMEOUT),
        None => DEFAULT_TIMEOUT,
    }
}

fn export_timeout(env: &mut Env<'_>, signal: Signal) -> Duration {
    let name = signal.export_timeout_var();
    env.var(name)
        .and_then(|value| env.millis(name, &value))
        .unwrap_or(DEFAULT_EXPORT_TIMEOUT)
}

fn compression(env: &mut Env<'_>, signal: Signal) -> bool {
    let Some((name, value)) = env.otlp_var(signal, "COMPRESSION") else {
        return false;
    };
    match value.to_ascii_lowercase().as_str() {
        "gzip" => true,
        "none" => false,
        _ => {
            env.warn(format!(
                "{name}={value:?} is not supported (use gzip or none); ignored"
            ));
            false
        }
    }
}

fn metric_interval(env: &mut Env<'_>, config: &Config) -> Duration {
    let file = config.telemetry.metrics.interval;
    match env.var("OTEL_METRIC_EXPORT_INTERVAL") {
        Some(v) => env
            .millis("OTEL_METRIC_EXPORT_INTERVAL", &v)
            .unwrap_or(file),
        None => file,
    }
}

fn temporality(env: &mut Env<'_>) -> Temporality {
    const NAME: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    let Some(value) = env.var(NAME) else {
        return Temporality::Cumulative;
    };
    match value.to_ascii_lowercase().as_str() {
        "cumulative" => Temporality::Cumulative,
        "delta" | "lowmemory" => Temporality::Delta,
        _ => {
            env.warn(format!(
                "{NAME}={value:?} is not supported; using cumulative"
            ));
            Temporality::Cumulative
        }
    }
}

/// `OTEL_TRACES_SAMPLER` (+ `_ARG`) wins over `telemetry.traces.sample_ratio`, which means
/// `parentbased_traceidratio`; a ratio sampler without `_ARG` takes the file's ratio, else 1.0.
fn sampler(env: &mut Env<'_>, config: &Config) -> Sampler {
    let file_ratio = config.telemetry.traces.sample_ratio;
    let arg = env
        .var("OTEL_TRACES_SAMPLER_ARG")
        .and_then(|v| match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Some(r),
            _ => {
                env.warn(format!(
                    "OTEL_TRACES_SAMPLER_ARG={v:?} is not a ratio from 0 to 1; ignored"
                ));
                None
            }
        });
    let ratio = arg.or(file_ratio).unwrap_or(1.0);
    if let Some(name) = env.var("OTEL_TRACES_SAMPLER") {
        match Sampler::named(&name, ratio) {
            Some(s) => return s,
            None => env.warn(format!(
                "OTEL_TRACES_SAMPLER={name:?} is not supported; using parentbased_always_on"
            )),
        }
        return Sampler::default();
    }
    match arg.or(file_ratio) {
        Some(r) => Sampler::named("parentbased_traceidratio", r).unwrap_or_default(),
        None => Sampler::default(),
    }
}

/// `OTEL_{BSP,BLRP}_*`: the batch span and batch log record processors' settings, with
/// the specification's defaults (2048, 512; the delay differs: 5 s for spans, 1 s for logs).
fn batching(env: &mut Env<'_>, processor: &str, default_delay: Duration) -> Batching {
    let queue = env.count(&format!("OTEL_{processor}_MAX_QUEUE_SIZE"), 2048);
    let max_batch = env
        .count(&format!("OTEL_{processor}_MAX_EXPORT_BATCH_SIZE"), 512)
        .min(queue);
    let name = format!("OTEL_{processor}_SCHEDULE_DELAY");
    let delay = match env.var(&name) {
        Some(v) => env.millis(&name, &v),
        None => None,
    };
    Batching {
        queue,
        max_batch,
        delay: delay.unwrap_or(default_delay),
    }
}

mod resource;
#[cfg(test)]
mod tests;

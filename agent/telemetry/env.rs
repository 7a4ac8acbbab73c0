//! The `OTEL_*` environment variables, resolved once at start with the config file's `telemetry` section as fallback.
//!
//! Precedence, per variable: signal-specific variable (`…_TRACES_…`) > generic
//! variable > config file > the specification's default. Empty values count
//! as unset; invalid values are reported as warnings and ignored, as the
//! specification asks. Variables are read through a lookup function so tests
//! pass a map instead of touching the process environment.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use super::propagation::Propagators;
use super::sampler::Sampler;
use crate::config::{Config, OtlpProtocol};

/// Reads one environment variable.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `OTEL_EXPORTER_OTLP_TIMEOUT`'s default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// An OTLP signal Redline exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
}

impl Signal {
    /// The `signal` label of `redline_telemetry_dropped_total`.
    pub fn label(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    fn env_part(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }

    /// The gRPC method path of the collector service.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }
}

/// OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Protobuf bodies POSTed over HTTP/1.1 (default; port 4318).
    HttpProtobuf,
    /// gRPC over cleartext HTTP/2 (port 4317).
    Grpc,
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
    /// Bound on one whole export (connect, send, answer).
    pub timeout: Duration,
    /// Compress bodies with gzip.
    pub gzip: bool,
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
        let (traces, metrics) = if disabled {
            (None, None)
        } else {
            (
                target(&mut env, config, Signal::Traces),
                target(&mut env, config, Signal::Metrics),
            )
        };
        let propagators = match env.var("OTEL_PROPAGATORS") {
            Some(v) => Propagators::parse(&v, &mut env.warnings),
            None => Propagators::default(),
        };
        Settings {
            traces,
            metrics,
            metric_interval: metric_interval(&mut env, config),
            temporality: temporality(&mut env),
            propagators,
            sampler: sampler(&mut env, config),
            keep_slower_than: config.telemetry.traces.keep_slower_than,
            resource: resource(&mut env, config),
            batching: batching(&mut env),
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
        gzip: compression(env, signal),
    })
}

fn protocol(env: &mut Env<'_>, config: &Config, signal: Signal) -> Protocol {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.env_part());
    for name in [specific.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        let Some(value) = env.var(name) else { continue };
        match value.to_ascii_lowercase().as_str() {
            "grpc" => return Protocol::Grpc,
            "http/protobuf" => return Protocol::HttpProtobuf,
            _ => env.warn(format!(
                "{name}={value:?} is not supported (use grpc or http/protobuf); ignored"
            )),
        }
    }
    match config.telemetry.otlp.as_ref().map(|o| o.protocol) {
        Some(OtlpProtocol::Grpc) => Protocol::Grpc,
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
        Protocol::HttpProtobuf => "http://localhost:4318",
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
        Protocol::Grpc => origin(&value).map(|o| format!("{o}{}", signal.grpc_path())),
        Protocol::HttpProtobuf if verbatim => Some(value.clone()),
        Protocol::HttpProtobuf => Some(format!(
            "{}{}",
            value.trim_end_matches('/'),
            signal.http_path()
        )),
    };
    match url.and_then(|u| checked_url(&u, protocol)) {
        Some(uri) => Some(uri),
        None => {
            env.warn(format!(
                "{name}={value:?} is not a usable http:// URL for {} (https needs http/protobuf); {} export disabled",
                match protocol {
                    Protocol::Grpc => "grpc",
                    Protocol::HttpProtobuf => "http/protobuf",
                },
                signal.label()
            ));
            None
        }
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
        ("http", _) | ("https", Protocol::HttpProtobuf) => Some(uri),
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

fn batching(env: &mut Env<'_>) -> Batching {
    let queue = env.count("OTEL_BSP_MAX_QUEUE_SIZE", 2048);
    let max_batch = env.count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).min(queue);
    let delay = match env.var("OTEL_BSP_SCHEDULE_DELAY") {
        Some(v) => env.millis("OTEL_BSP_SCHEDULE_DELAY", &v),
        None => None,
    };
    Batching {
        queue,
        max_batch,
        delay: delay.unwrap_or(Duration::from_secs(5)),
    }
}

/// `service.name` (OTEL_SERVICE_NAME > OTEL_RESOURCE_ATTRIBUTES > config `service`), then
/// Redline's own attributes, then the rest of OTEL_RESOURCE_ATTRIBUTES (which win on clashes).
fn resource(env: &mut Env<'_>, config: &Config) -> Vec<(String, String)> {
    let attrs = match env.var("OTEL_RESOURCE_ATTRIBUTES") {
        Some(v) => parse_pairs(&v).unwrap_or_else(|bad| {
            env.warn(format!(
                "OTEL_RESOURCE_ATTRIBUTES: entry {bad:?} is not key=value (percent-encoded); the whole variable is ignored"
            ));
            Vec::new()
        }),
        None => Vec::new(),
    };
    let from_attrs = attrs
        .iter()
        .rev()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    let service = env
        .var("OTEL_SERVICE_NAME")
        .or(from_attrs)
        .unwrap_or_else(|| config.service.clone());
    let mut out: Vec<(String, String)> = vec![
        ("service.name".into(), service),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("service.instance.id".into(), instance_id()),
        ("host.name".into(), host_name()),
        ("telemetry.sdk.name".into(), "redline".into()),
        ("telemetry.sdk.language".into(), "rust".into()),
        (
            "telemetry.sdk.version".into(),
            env!("CARGO_PKG_VERSION").into(),
        ),
    ];
    for (k, v) in attrs {
        if k == "service.name" {
            continue;
        }
        match out.iter_mut().find(|(existing, _)| *existing == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// A random UUID (version 4 layout), new for every process.
fn instance_id() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::trace::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// `k1=v1,k2=v2` with percent-encoded values (W3C Baggage syntax, no properties); `Err` names the bad entry.
pub fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (k, v) = entry.split_once('=').ok_or_else(|| entry.to_string())?;
        let key = k.trim();
        let value = percent_decode(v.trim()).ok_or_else(|| entry.to_string())?;
        if key.is_empty() {
            return Err(entry.to_string());
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The valid entries only, for headers (where one bad entry should not lose an API key).
fn parse_pairs_lenient(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|e| parse_pairs(e).ok())
        .flatten()
        .collect()
}

/// Strict percent-decoding: `None` on a broken escape or invalid UTF-8. `+` stays `+`.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{OtlpConfig, TelemetryConfig};
    use crate::telemetry::propagation::Format;
    use crate::telemetry::sampler::Root;

    fn resolve_with(vars: &[(&str, &str)], config: &Config) -> Settings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(&|k| map.get(k).cloned(), config)
    }

    fn resolve(vars: &[(&str, &str)]) -> Settings {
        resolve_with(vars, &Config::default())
    }

    fn file(endpoint: &str, protocol: OtlpProtocol) -> Config {
        Config {
            telemetry: TelemetryConfig {
                otlp: Some(OtlpConfig {
                    endpoint: endpoint.into(),
                    protocol,
                    headers: [("x-file".to_string(), "f".to_string())].into(),
                }),
                ..TelemetryConfig::default()
            },
            ..Config::default()
        }
    }

    const EP: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");

    fn url(t: &Option<Target>) -> String {
        t.as_ref().map(|t| t.url.to_string()).unwrap_or_default()
    }

    #[test]
    fn no_endpoint_means_no_export_and_no_warning() {
        let s = resolve(&[]);
        assert!(s.traces.is_none() && s.metrics.is_none());
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn endpoint_is_a_base_url_for_http() {
        let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
        assert_eq!(url(&s.traces), "http://collector:4318/v1/traces");
        assert_eq!(url(&s.metrics), "http://collector:4318/v1/metrics");
        let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw/otlp")]);
        assert_eq!(url(&s.traces), "http://gw/otlp/v1/traces");
        assert_eq!(s.traces.unwrap().protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn traces_endpoint_is_used_verbatim() {
        let s = resolve(&[
            EP,
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/custom"),
        ]);
        assert_eq!(url(&s.traces), "http://t:1/custom");
        assert_eq!(url(&s.metrics), "http://collector:4318/v1/metrics");
    }

    #[test]
    fn metrics_endpoint_is_used_verbatim() {
        let s = resolve(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:2/x")]);
        assert_eq!(url(&s.metrics), "http://m:2/x");
        assert!(s.traces.is_none(), "only metrics were configured");
    }

    #[test]
    fn protocol_grpc_uses_the_origin_and_the_service_path() {
        let s = resolve(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317/ignored"),
        ]);
        let t = s.traces.unwrap();
        assert_eq!(t.protocol, Protocol::Grpc);
        assert_eq!(
            t.url.to_string(),
            "http://c:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        let m = s.metrics.unwrap();
        assert_eq!(
            m.url.path(),
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        );
        let bad = resolve(&[EP, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        assert_eq!(bad.traces.unwrap().protocol, Protocol::HttpProtobuf);
        assert_eq!(bad.warnings.len(), 1, "{:?}", bad.warnings);
    }

    #[test]
    fn traces_protocol_overrides_the_generic_one() {
        let s = resolve(&[
            EP,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]);
        assert_eq!(s.traces.unwrap().protocol, Protocol::Grpc);
        assert_eq!(s.metrics.unwrap().protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn metrics_protocol_overrides_the_generic_one() {
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")]);
        assert_eq!(s.metrics.unwrap().protocol, Protocol::Grpc);
        assert_eq!(s.traces.unwrap().protocol, Protocol::HttpProtobuf);
    }

    fn header_list(t: &Option<Target>) -> Vec<(String, String)> {
        t.as_ref()
            .unwrap()
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn headers_are_percent_decoded_pairs() {
        let s = resolve(&[
            EP,
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=a%20b%2Cc , X-Tenant=t1",
            ),
        ]);
        let expected = vec![
            ("api-key".to_string(), "a b,c".to_string()),
            ("x-tenant".to_string(), "t1".to_string()),
        ];
        assert_eq!(header_list(&s.traces), expected);
        assert_eq!(header_list(&s.metrics), expected);
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_HEADERS", "good=1,broken,bad=%zz")]);
        assert_eq!(
            header_list(&s.traces),
            vec![("good".to_string(), "1".to_string())]
        );
        assert!(!s.warnings.is_empty());
    }

    #[test]
    fn traces_headers_replace_the_generic_ones() {
        let s = resolve(&[
            EP,
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2"),
        ]);
        assert_eq!(
            header_list(&s.traces),
            vec![("b".to_string(), "2".to_string())]
        );
        assert_eq!(
            header_list(&s.metrics),
            vec![("a".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn metrics_headers_replace_the_generic_ones() {
        let s = resolve(&[
            EP,
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "m=3"),
        ]);
        assert_eq!(
            header_list(&s.metrics),
            vec![("m".to_string(), "3".to_string())]
        );
    }

    #[test]
    fn timeout_is_milliseconds_with_a_10s_default() {
        assert_eq!(
            resolve(&[EP]).traces.unwrap().timeout,
            Duration::from_secs(10)
        );
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_TIMEOUT", "250")]);
        assert_eq!(s.traces.unwrap().timeout, Duration::from_millis(250));
        assert_eq!(s.metrics.unwrap().timeout, Duration::from_millis(250));
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]);
        assert_eq!(s.traces.unwrap().timeout, Duration::from_secs(10));
        assert_eq!(s.warnings.len(), 1, "reported once: {:?}", s.warnings);
    }

    #[test]
    fn traces_timeout_overrides_the_generic_one() {
        let s = resolve(&[
            EP,
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "250"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100"),
        ]);
        assert_eq!(s.traces.unwrap().timeout, Duration::from_millis(100));
        assert_eq!(s.metrics.unwrap().timeout, Duration::from_millis(250));
    }

    #[test]
    fn metrics_timeout_overrides_the_generic_one() {
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700")]);
        assert_eq!(s.metrics.unwrap().timeout, Duration::from_millis(700));
        assert_eq!(s.traces.unwrap().timeout, Duration::from_secs(10));
    }

    #[test]
    fn compression_gzip_or_none() {
        assert!(!resolve(&[EP]).traces.unwrap().gzip);
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]);
        assert!(s.traces.unwrap().gzip && s.metrics.unwrap().gzip);
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]);
        assert!(!s.traces.unwrap().gzip);
        assert!(!s.warnings.is_empty());
    }

    #[test]
    fn traces_compression_overrides_the_generic_one() {
        let s = resolve(&[
            EP,
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ]);
        assert!(!s.traces.unwrap().gzip);
        assert!(s.metrics.unwrap().gzip);
    }

    #[test]
    fn metrics_compression_overrides_the_generic_one() {
        let s = resolve(&[EP, ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip")]);
        assert!(s.metrics.unwrap().gzip);
        assert!(!s.traces.unwrap().gzip);
    }

    fn attr<'a>(s: &'a Settings, key: &str) -> Option<&'a str> {
        s.resource
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn service_name_beats_resource_attributes_and_the_file() {
        let config = Config {
            service: "from-file".into(),
            ..Config::default()
        };
        let s = resolve_with(&[], &config);
        assert_eq!(attr(&s, "service.name"), Some("from-file"));
        let s = resolve_with(
            &[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")],
            &config,
        );
        assert_eq!(attr(&s, "service.name"), Some("from-attrs"));
        let s = resolve_with(
            &[
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
                ("OTEL_SERVICE_NAME", "shop"),
            ],
            &config,
        );
        assert_eq!(attr(&s, "service.name"), Some("shop"));
        assert_eq!(s.resource[0].0, "service.name");
    }

    #[test]
    fn resource_attributes_are_percent_decoded_and_all_or_nothing() {
        let s = resolve(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=ci,team=a%2Cb%3Dc,service.version=9.9",
        )]);
        assert_eq!(attr(&s, "deployment.environment.name"), Some("ci"));
        assert_eq!(attr(&s, "team"), Some("a,b=c"));
        assert_eq!(
            attr(&s, "service.version"),
            Some("9.9"),
            "user attributes win"
        );
        for key in [
            "service.instance.id",
            "host.name",
            "telemetry.sdk.name",
            "telemetry.sdk.language",
            "telemetry.sdk.version",
        ] {
            assert!(attr(&s, key).is_some_and(|v| !v.is_empty()), "{key}");
        }
        let id = attr(&s, "service.instance.id").unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
        let s = resolve(&[("OTEL_RESOURCE_ATTRIBUTES", "ok=1,broken")]);
        assert_eq!(attr(&s, "ok"), None);
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn propagators_default_and_override() {
        assert_eq!(
            resolve(&[]).propagators.formats(),
            &[Format::TraceContext, Format::Baggage]
        );
        assert_eq!(
            resolve(&[("OTEL_PROPAGATORS", "b3multi")])
                .propagators
                .formats(),
            &[Format::B3Multi]
        );
        assert_eq!(
            resolve(&[("OTEL_PROPAGATORS", "none")])
                .propagators
                .formats(),
            &[]
        );
    }

    #[test]
    fn traces_sampler_names_and_default() {
        assert_eq!(resolve(&[]).sampler, Sampler::default());
        let s = resolve(&[("OTEL_TRACES_SAMPLER", "always_off")]).sampler;
        assert_eq!((s.parent_based, s.root), (false, Root::AlwaysOff));
        let s = resolve(&[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")]).sampler;
        assert_eq!(s.root, Root::Ratio(1.0), "ratio defaults to 1.0");
        let s = resolve(&[("OTEL_TRACES_SAMPLER", "xray")]);
        assert_eq!(s.sampler, Sampler::default());
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn traces_sampler_arg_sets_the_ratio_and_beats_the_file() {
        let s = resolve(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .sampler;
        assert_eq!((s.parent_based, s.root), (false, Root::Ratio(0.25)));
        let mut config = Config::default();
        config.telemetry.traces.sample_ratio = Some(0.1);
        let s = resolve_with(&[], &config).sampler;
        assert_eq!(
            (s.parent_based, s.root),
            (true, Root::Ratio(0.1)),
            "file ratio means parentbased_traceidratio"
        );
        let s = resolve_with(&[("OTEL_TRACES_SAMPLER", "traceidratio")], &config).sampler;
        assert_eq!(
            s.root,
            Root::Ratio(0.1),
            "a ratio sampler without _ARG takes the file's ratio"
        );
        let s = resolve_with(&[("OTEL_TRACES_SAMPLER_ARG", "0.5")], &config).sampler;
        assert_eq!(s.root, Root::Ratio(0.5));
        let s = resolve_with(&[("OTEL_TRACES_SAMPLER_ARG", "2")], &config);
        assert_eq!(s.sampler.root, Root::Ratio(0.1));
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn traces_exporter_none_or_otlp() {
        let s = resolve(&[EP, ("OTEL_TRACES_EXPORTER", "none")]);
        assert!(s.traces.is_none() && s.metrics.is_some());
        let s = resolve(&[("OTEL_TRACES_EXPORTER", "otlp")]);
        assert_eq!(
            url(&s.traces),
            "http://localhost:4318/v1/traces",
            "explicit otlp uses the spec default"
        );
        assert!(s.metrics.is_none());
        let s = resolve(&[EP, ("OTEL_TRACES_EXPORTER", "console")]);
        assert!(s.traces.is_some());
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn metrics_exporter_none_or_otlp() {
        let s = resolve(&[EP, ("OTEL_METRICS_EXPORTER", "none")]);
        assert!(s.metrics.is_none() && s.traces.is_some());
        let s = resolve(&[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert_eq!(
            s.metrics.unwrap().url.authority().unwrap().as_str(),
            "localhost:4317"
        );
    }

    #[test]
    fn metric_export_interval_beats_the_file() {
        assert_eq!(resolve(&[]).metric_interval, Duration::from_secs(60));
        let mut config = Config::default();
        config.telemetry.metrics.interval = Duration::from_secs(15);
        assert_eq!(
            resolve_with(&[], &config).metric_interval,
            Duration::from_secs(15)
        );
        let s = resolve_with(&[("OTEL_METRIC_EXPORT_INTERVAL", "500")], &config);
        assert_eq!(s.metric_interval, Duration::from_millis(500));
    }

    #[test]
    fn sdk_disabled_turns_off_export_but_not_propagation() {
        let s = resolve(&[
            EP,
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_PROPAGATORS", "b3"),
        ]);
        assert!(s.traces.is_none() && s.metrics.is_none());
        assert_eq!(s.propagators.formats(), &[Format::B3]);
        assert!(
            resolve(&[EP, ("OTEL_SDK_DISABLED", "false")])
                .traces
                .is_some()
        );
        assert!(
            resolve(&[EP, ("OTEL_SDK_DISABLED", "1")]).traces.is_some(),
            "only `true` counts"
        );
    }

    #[test]
    fn empty_values_mean_unset() {
        let mut config = file("http://file:4318", OtlpProtocol::HttpProtobuf);
        config.service = "svc".into();
        let s = resolve_with(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "  "),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", ""),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", ""),
                ("OTEL_SERVICE_NAME", ""),
                ("OTEL_TRACES_SAMPLER", ""),
                ("OTEL_PROPAGATORS", ""),
                ("OTEL_SDK_DISABLED", ""),
                ("OTEL_TRACES_EXPORTER", ""),
            ],
            &config,
        );
        assert_eq!(url(&s.traces), "http://file:4318/v1/traces");
        assert_eq!(s.traces.as_ref().unwrap().timeout, Duration::from_secs(10));
        assert_eq!(attr(&s, "service.name"), Some("svc"));
        assert_eq!(s.sampler, Sampler::default());
        assert_eq!(s.propagators, Propagators::default());
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn the_config_file_is_the_fallback_and_env_wins() {
        let config = file("http://file:4317", OtlpProtocol::Grpc);
        let s = resolve_with(&[], &config);
        let t = s.traces.unwrap();
        assert_eq!(t.protocol, Protocol::Grpc);
        assert_eq!(t.url.authority().unwrap().as_str(), "file:4317");
        assert_eq!(
            header_list(&Some(t)),
            vec![("x-file".to_string(), "f".to_string())]
        );
        let s = resolve_with(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
            &config,
        );
        assert_eq!(url(&s.traces), "http://env:4318/v1/traces");
    }

    #[test]
    fn https_works_for_http_protobuf_only() {
        let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://saas.example")]);
        assert_eq!(url(&s.traces), "https://saas.example/v1/traces");
        let s = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://saas.example"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert!(s.traces.is_none());
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]);
        assert!(s.traces.is_none());
    }

    #[test]
    fn metrics_temporality_preference() {
        assert_eq!(resolve(&[]).temporality, Temporality::Cumulative);
        let s = resolve(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")]);
        assert_eq!(s.temporality, Temporality::Delta);
        let s = resolve(&[(
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "LowMemory",
        )]);
        assert_eq!(s.temporality, Temporality::Delta);
    }

    #[test]
    fn batch_span_processor_variables() {
        let b = resolve(&[]).batching;
        assert_eq!(
            (b.queue, b.max_batch, b.delay),
            (2048, 512, Duration::from_secs(5))
        );
        let b = resolve(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ])
        .batching;
        assert_eq!(
            (b.queue, b.max_batch, b.delay),
            (100, 100, Duration::from_millis(200))
        );
    }

    #[test]
    fn keep_slower_than_comes_from_the_file() {
        let mut config = Config::default();
        config.telemetry.traces.keep_slower_than = Some(Duration::from_secs(2));
        assert_eq!(
            resolve_with(&[], &config).keep_slower_than,
            Some(Duration::from_secs(2))
        );
        assert_eq!(resolve(&[]).keep_slower_than, None);
    }
}

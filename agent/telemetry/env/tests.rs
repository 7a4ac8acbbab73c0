//! Tests of `OTEL_*` resolution over the config.

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
    // The signal's path joins the path; a query (an API key, say) stays after it.
    let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw/otlp/?key=k1")]);
    assert_eq!(url(&s.traces), "http://gw/otlp/v1/traces?key=k1");
    let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw:4318?key=k1")]);
    assert_eq!(url(&s.metrics), "http://gw:4318/v1/metrics?key=k1");
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
    let bad = resolve(&[EP, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")]);
    assert_eq!(bad.traces.unwrap().protocol, Protocol::HttpProtobuf);
    assert_eq!(bad.warnings.len(), 1, "{:?}", bad.warnings);
}

#[test]
fn http_json_is_a_protocol_for_every_signal_with_the_http_paths() {
    let s = resolve(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base/"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "HTTP/JSON"),
    ]);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let t = s.traces.unwrap();
    assert_eq!(t.protocol, Protocol::HttpJson);
    assert_eq!(t.url.to_string(), "http://c:4318/base/v1/traces");
    let m = s.metrics.unwrap();
    assert_eq!(m.protocol, Protocol::HttpJson);
    assert_eq!(m.url.path(), "/base/v1/metrics");
    assert_eq!(url(&s.logs), "http://c:4318/base/v1/logs");
    assert_eq!(s.logs.unwrap().protocol, Protocol::HttpJson);
    let only_logs = resolve(&[
        EP,
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4318/v1/logs"),
    ]);
    assert_eq!(only_logs.logs.unwrap().protocol, Protocol::HttpJson);
    assert_eq!(only_logs.traces.unwrap().protocol, Protocol::HttpProtobuf);
    let default = resolve(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_EXPORTER", "otlp"),
    ]);
    assert_eq!(url(&default.traces), "http://localhost:4318/v1/traces");
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
fn export_timeouts_bound_each_signal_with_its_retries_30s_by_default() {
    let s = resolve(&[EP]);
    assert_eq!(s.traces.unwrap().export_timeout, Duration::from_secs(30));
    assert_eq!(s.metrics.unwrap().export_timeout, Duration::from_secs(30));
    let s = resolve(&[
        EP,
        ("OTEL_BSP_EXPORT_TIMEOUT", "4000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "7000"),
    ]);
    assert_eq!(
        s.traces.unwrap().export_timeout,
        Duration::from_millis(4000)
    );
    assert_eq!(
        s.metrics.unwrap().export_timeout,
        Duration::from_millis(7000)
    );
    let s = resolve(&[EP, ("OTEL_BSP_EXPORT_TIMEOUT", "-1")]);
    assert_eq!(s.traces.unwrap().export_timeout, Duration::from_secs(30));
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("OTEL_BSP_EXPORT_TIMEOUT")),
        "{:?}",
        s.warnings
    );
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
fn https_works_for_both_protocols() {
    let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://saas.example")]);
    assert_eq!(url(&s.traces), "https://saas.example/v1/traces");
    let s = resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://saas.example"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    assert_eq!(
        url(&s.traces),
        "https://saas.example/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // http/protobuf needs a scheme (only gRPC's INSECURE flag decides one).
    let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]);
    assert!(s.traces.is_none());
    assert_eq!(s.warnings.len(), 3, "one per signal: {:?}", s.warnings);
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

#[test]
fn logs_follow_the_endpoint_like_the_other_signals() {
    let s = resolve(&[EP]);
    assert_eq!(url(&s.logs), "http://collector:4318/v1/logs");
    let s = resolve(&[EP, ("OTEL_LOGS_EXPORTER", "none")]);
    assert!(s.logs.is_none() && s.traces.is_some());
    let s = resolve(&[("OTEL_LOGS_EXPORTER", "otlp")]);
    assert_eq!(
        url(&s.logs),
        "http://localhost:4318/v1/logs",
        "explicit otlp: the default"
    );
    assert!(s.traces.is_none());
    let s = resolve(&[
        EP,
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "1500"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=v"),
        ("OTEL_BLRP_EXPORT_TIMEOUT", "4000"),
    ]);
    let logs = s.logs.unwrap();
    assert_eq!(
        logs.url.to_string(),
        "http://logs:4317/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    );
    assert_eq!(logs.timeout, Duration::from_millis(1500));
    assert_eq!(logs.export_timeout, Duration::from_secs(4));
    assert_eq!(
        header_list(&Some(logs)),
        [("k".to_string(), "v".to_string())]
    );
    assert_eq!(url(&s.traces), "http://collector:4318/v1/traces");
    let s = resolve(&[EP, ("OTEL_SDK_DISABLED", "true")]);
    assert!(s.logs.is_none());
}

#[test]
fn batch_log_record_processor_variables() {
    let s = resolve(&[]);
    assert_eq!(
        (
            s.log_batching.queue,
            s.log_batching.max_batch,
            s.log_batching.delay
        ),
        (2048, 512, Duration::from_secs(1))
    );
    let s = resolve(&[
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "500"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "20"),
    ]);
    assert_eq!(
        (
            s.log_batching.queue,
            s.log_batching.max_batch,
            s.log_batching.delay
        ),
        (100, 100, Duration::from_millis(20))
    );
}

#[test]
fn grpc_without_a_scheme_is_https_unless_insecure() {
    let grpc = ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    let s = resolve(&[grpc, ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
    assert!(
        url(&s.traces).starts_with("https://collector:4317/"),
        "{}",
        url(&s.traces)
    );
    let s = resolve(&[
        grpc,
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "false"),
    ]);
    assert!(url(&s.traces).starts_with("http://collector:4317/"));
    assert!(url(&s.metrics).starts_with("https://collector:4317/"));
    // An explicit scheme wins over the flag.
    let s = resolve(&[
        grpc,
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert!(url(&s.traces).starts_with("https://"));
}

#[test]
fn certificates_per_signal_replace_the_generic_ones() {
    let s = resolve(&[
        EP,
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/client.key"),
        ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/logs-ca.pem"),
    ]);
    let traces = s.traces.unwrap().tls;
    assert_eq!(traces.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
    assert_eq!(
        traces.client_key.as_deref(),
        Some(std::path::Path::new("/client.key"))
    );
    let logs = s.logs.unwrap().tls;
    assert_eq!(
        logs.ca.as_deref(),
        Some(std::path::Path::new("/logs-ca.pem"))
    );
    assert_eq!(
        logs.client_cert.as_deref(),
        Some(std::path::Path::new("/client.pem"))
    );
}

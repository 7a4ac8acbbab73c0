//! Redline's own `redline_*` families over OTLP: every family `/metrics` shows arrives at an OTLP receiver under the name the OpenTelemetry ↔ Prometheus rules translate it from, with the same kind, labels and values.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};

use crate::otlp::Collector;
use crate::support::*;

/// (Prometheus name, sorted `label="value"` pairs) → value.
type Samples = BTreeMap<(String, Vec<String>), f64>;

/// The `redline_*` samples of a Prometheus text scrape, with their `# TYPE`.
fn scraped(scrape: &str) -> (Samples, BTreeMap<String, String>) {
    let mut samples = Samples::new();
    let mut kinds = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE redline_") {
            let (name, kind) = rest.split_once(' ').unwrap();
            kinds.insert(format!("redline_{name}"), kind.to_string());
            continue;
        }
        if !line.starts_with("redline_") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut labels: Vec<String> = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        labels.sort();
        samples.insert((name.to_string(), labels), value.parse().unwrap());
    }
    (samples, kinds)
}

/// The Prometheus name, `# TYPE` and samples the compatibility rules give an OTLP metric.
fn translated(m: &Metric, samples: &mut Samples, kinds: &mut BTreeMap<String, String>) {
    let (points, kind, total) = match &m.data {
        Some(metric::Data::Gauge(g)) => (&g.data_points, "gauge", false),
        Some(metric::Data::Sum(s)) if s.is_monotonic => {
            assert_eq!(s.aggregation_temporality, 2, "cumulative: {}", m.name);
            (&s.data_points, "counter", true)
        }
        Some(metric::Data::Sum(s)) => (&s.data_points, "gauge", false),
        other => panic!("{}: {other:?}", m.name),
    };
    let mut name = m.name.replace(['.', '-'], "_");
    if total {
        name.push_str("_total");
    }
    kinds.insert(name.clone(), kind.to_string());
    for p in points {
        let mut labels: Vec<String> = p
            .attributes
            .iter()
            .map(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(v)) => format!("{}=\"{v}\"", kv.key),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        labels.sort();
        let value = match p.value {
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            Some(number_data_point::Value::AsDouble(v)) => v,
            None => panic!("no value"),
        };
        samples.insert((name.clone(), labels), value);
    }
}

fn config(up: std::net::SocketAddr) -> String {
    config_for(
        up,
        "flows:
  - name: checkout
    match: \"GET /status/{code}\"
    concurrency: { adaptive: {} }
    alerts:
      - { when: \"error_rate > 2%\", over: 10s, for: 0s, min_requests: 5, severity: page }
alerting:
  eval_interval: 1s
  receivers:
    - { name: ops, type: console }
",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redline_family_goes_out_over_otlp_as_on_metrics() {
    let collector = Collector::http().await;
    let up = app().await;
    let rl = Redline::start_with(
        &config(up),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
    );
    for _ in 0..10 {
        let (status, _, _) = get(&rl.url("/status/503")).await;
        assert_eq!(status, 503);
    }
    // The alert fires and its notification is delivered: every family has a non-zero series.
    let want = r#"redline_notifications_total{receiver="ops",result="delivered"}"#;
    eventually(Duration::from_secs(20), "the notification", || async {
        sample(&rl.metrics().await, want).filter(|v| *v >= 1.0)
    })
    .await;
    // Export and scrape are not taken at the same instant: wait for an export equal to a scrape.
    let (otlp, kinds) = eventually(
        Duration::from_secs(20),
        "an export equal to /metrics",
        || async {
            let (scraped, scraped_kinds) = scraped(&rl.metrics().await);
            let (mut samples, mut kinds) = (Samples::new(), BTreeMap::new());
            for m in collector.newest_metrics() {
                if m.name.starts_with("redline.") {
                    translated(&m, &mut samples, &mut kinds);
                }
            }
            (samples == scraped && kinds == scraped_kinds).then_some((samples, kinds))
        },
    )
    .await;
    let alert = (
        "redline_alert_state".to_string(),
        vec![
            r#"alertname="FlowErrorRate""#.to_string(),
            r#"flow="checkout""#.to_string(),
            r#"severity="page""#.to_string(),
        ],
    );
    assert_eq!(otlp.get(&alert), Some(&2.0), "firing: {otlp:?}");
    for family in [
        "redline_alert_state",
        "redline_notifications_total",
        "redline_config_reloads_total",
        "redline_telemetry_dropped_total",
        "redline_telemetry_retries_total",
        "redline_access_log_dropped_total",
        "redline_build_info",
        "redline_connections_shed_total",
        "redline_stats_dropped_total",
        "redline_upstream_connections",
        "redline_upstream_queue_requests",
        "redline_concurrency_limit",
    ] {
        assert!(kinds.contains_key(family), "{family} missing: {kinds:?}");
    }
}

//! OTLP metrics read from the lock-free [`Registry`] at each export: nothing is recorded twice on the request path.
//!
//! `http.server.request.duration` (histogram, seconds, the registry's bucket
//! boundaries) and `http.server.active_requests` (non-monotonic sum), with the
//! HTTP semantic conventions' attribute names plus `redline.flow`. Each
//! histogram point carries its buckets' exemplars (the latest exported trace per
//! bucket), as `/metrics` does in OpenMetrics. Then Redline's own `redline_*` families
//! (`families.rs`), under the OpenTelemetry names their Prometheus names translate from.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, exemplar, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::env::Temporality;
use super::spans::{kv, kv_int};
use crate::metrics::{ErrorType, Registry, Source};

mod families;

use families::Counters;

/// One histogram series: flow, route, method, status, error type.
type SeriesKey = (Arc<str>, Arc<str>, &'static str, u16, ErrorType);

/// Counts and sum of one series at the last successful export.
#[derive(Debug, Clone)]
struct Snapshot {
    counts: Vec<u64>,
    sum: f64,
}

/// Builds metric export requests; remembers what delta temporality needs between exports.
#[derive(Debug)]
pub struct MetricsBuilder {
    temporality: Temporality,
    /// Start of the cumulative period (process start), or of the current delta period.
    start_ns: u64,
    baseline: HashMap<SeriesKey, Snapshot>,
    pending: Option<(u64, HashMap<SeriesKey, Snapshot>)>,
    active_seen: HashSet<(Arc<str>, &'static str)>,
    /// Redline's own families; their counters' delta baseline.
    counters: Counters,
}

impl MetricsBuilder {
    /// A builder whose cumulative period starts at `start_ns`.
    pub fn new(temporality: Temporality, start_ns: u64) -> Self {
        MetricsBuilder {
            temporality,
            start_ns,
            baseline: HashMap::new(),
            pending: None,
            active_seen: HashSet::new(),
            counters: Counters::default(),
        }
    }

    /// The request for the current values of the registry and of `sources` at `now_ns`,
    /// and its number of data points.
    pub fn build(
        &mut self,
        registry: &Registry,
        sources: &[Arc<dyn Source>],
        resource: &Resource,
        now_ns: u64,
    ) -> (ExportMetricsServiceRequest, u64) {
        let start_ns = self.start_ns;
        let mut metrics = vec![
            self.duration_metric(registry, now_ns),
            self.active_metric(registry, now_ns),
        ];
        let mut own = registry.families();
        own.extend(sources.iter().flat_map(|s| s.families()));
        metrics.extend(
            self.counters
                .metrics(&own, self.temporality, start_ns, now_ns),
        );
        let points = metrics.iter().map(points).sum();
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        (request, points)
    }

    /// The last built request was accepted: a delta period ends here.
    pub fn committed(&mut self) {
        if let Some((now_ns, snapshot)) = self.pending.take() {
            self.baseline = snapshot;
            self.start_ns = now_ns;
        }
        self.counters.committed();
    }

    fn duration_metric(&mut self, registry: &Registry, now_ns: u64) -> Metric {
        let mut data_points = Vec::new();
        let mut snapshot = HashMap::new();
        for route in registry.routes() {
            for (method, status, error, h) in route.series() {
                let key: SeriesKey = (
                    route.flow.clone(),
                    route.route.clone(),
                    method,
                    status,
                    error,
                );
                let now = Snapshot {
                    counts: h.bucket_counts(),
                    sum: h.sum(),
                };
                let shown = match (self.temporality, self.baseline.get(&key)) {
                    (Temporality::Delta, Some(before)) => minus(&now, before),
                    _ => now.clone(),
                };
                snapshot.insert(key.clone(), now);
                let count: u64 = shown.counts.iter().sum();
                if count == 0 && self.temporality == Temporality::Delta {
                    continue;
                }
                data_points.push(HistogramDataPoint {
                    attributes: duration_attributes(&key),
                    start_time_unix_nano: self.start_ns,
                    time_unix_nano: now_ns,
                    count,
                    sum: Some(shown.sum),
                    bucket_counts: shown.counts,
                    explicit_bounds: h.bounds().to_vec(),
                    exemplars: exemplars(&h, self.start_ns),
                    ..Default::default()
                });
            }
        }
        if self.temporality == Temporality::Delta {
            self.pending = Some((now_ns, snapshot));
        }
        let temporality = match self.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta => AggregationTemporality::Delta,
        };
        Metric {
            name: "http.server.request.duration".into(),
            description: "Duration of HTTP server requests.".into(),
            unit: "s".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: temporality as i32,
            })),
            ..Default::default()
        }
    }

    /// Gauge-like up-down counter: always cumulative, as the specification says for every preference.
    fn active_metric(&mut self, registry: &Registry, now_ns: u64) -> Metric {
        let mut data_points = Vec::new();
        for active in registry.active_all() {
            for (method, value) in active.values() {
                let key = (active.flow.clone(), method);
                // A series once reported keeps being reported, so a return to zero is seen.
                if value != 0 || method == "GET" {
                    self.active_seen.insert(key.clone());
                }
                if !self.active_seen.contains(&key) {
                    continue;
                }
                data_points.push(NumberDataPoint {
                    attributes: vec![
                        kv("http.request.method", method),
                        kv("url.scheme", "http"),
                        kv("redline.flow", &active.flow),
                    ],
                    start_time_unix_nano: self.start_ns,
                    time_unix_nano: now_ns,
                    value: Some(number_data_point::Value::AsInt(value)),
                    ..Default::default()
                });
            }
        }
        Metric {
            name: "http.server.active_requests".into(),
            description: "Number of active HTTP server requests.".into(),
            unit: "{request}".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: false,
            })),
            ..Default::default()
        }
    }
}

/// The buckets' exemplars recorded since `since_ns` (a delta point names only its own period's).
fn exemplars(h: &crate::metrics::Histogram, since_ns: u64) -> Vec<Exemplar> {
    h.exemplars()
        .into_iter()
        .flatten()
        .map(|e| (e, e.unix_ms.saturating_mul(1_000_000)))
        .filter(|(_, at)| *at >= since_ns)
        .map(|(e, at)| Exemplar {
            time_unix_nano: at,
            span_id: e.span_id.to_vec(),
            trace_id: e.trace_id.to_vec(),
            value: Some(exemplar::Value::AsDouble(e.seconds)),
            ..Default::default()
        })
        .collect()
}

fn minus(now: &Snapshot, before: &Snapshot) -> Snapshot {
    Snapshot {
        counts: now
            .counts
            .iter()
            .zip(before.counts.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect(),
        sum: (now.sum - before.sum).max(0.0),
    }
}

fn duration_attributes(key: &SeriesKey) -> Vec<KeyValue> {
    let (flow, route, method, status, error) = key;
    let mut attrs = vec![
        kv("http.request.method", method),
        kv("url.scheme", "http"),
        kv("http.route", route),
        kv_int("http.response.status_code", i64::from(*status)),
    ];
    let label = error.label(*status);
    if !label.is_empty() {
        attrs.push(kv("error.type", &label));
    }
    attrs.push(kv("redline.flow", flow));
    attrs
}

fn points(m: &Metric) -> u64 {
    let n = match &m.data {
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        _ => 0,
    };
    n as u64
}

/// Redline's instrumentation scope.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "redline".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    use super::*;
    use crate::metrics::DEFAULT_BUCKETS;

    fn histogram(req: &ExportMetricsServiceRequest) -> &Histogram {
        let m = &req.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(
            (m.name.as_str(), m.unit.as_str()),
            ("http.server.request.duration", "s")
        );
        match &m.data {
            Some(metric::Data::Histogram(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn attr(p: &[KeyValue], key: &str) -> Option<Value> {
        p.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    #[test]
    fn cumulative_histograms_mirror_the_registry() {
        let reg = Registry::new(&DEFAULT_BUCKETS);
        let r = reg.route(&"checkout".into(), &"/api/checkout".into());
        r.record(2, 200, ErrorType::None, 0.02, None);
        r.record(2, 200, ErrorType::None, 0.3, None);
        r.record(2, 503, ErrorType::Status, 2.0, None);
        let _busy = reg.active(&"checkout".into()).start(2);
        let mut b = MetricsBuilder::new(Temporality::Cumulative, 1);
        let (req, points) = b.build(&reg, &[], &Resource::default(), 10);
        let h = histogram(&req);
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(h.data_points.len(), 2);
        let ok = &h.data_points[0];
        assert_eq!(ok.count, 2);
        assert_eq!(ok.explicit_bounds, DEFAULT_BUCKETS.to_vec());
        assert_eq!(ok.bucket_counts.len(), DEFAULT_BUCKETS.len() + 1);
        assert_eq!(ok.bucket_counts[2], 1, "0.02 s falls in (0.01, 0.025]");
        assert_eq!(
            attr(&ok.attributes, "http.route"),
            Some(Value::StringValue("/api/checkout".into()))
        );
        assert_eq!(
            attr(&ok.attributes, "http.response.status_code"),
            Some(Value::IntValue(200))
        );
        assert_eq!(attr(&ok.attributes, "error.type"), None, "only when set");
        assert_eq!(
            attr(&h.data_points[1].attributes, "error.type"),
            Some(Value::StringValue("503".into()))
        );
        assert_eq!((ok.start_time_unix_nano, ok.time_unix_nano), (1, 10));
        let active = &req.resource_metrics[0].scope_metrics[0].metrics[1];
        let Some(metric::Data::Sum(sum)) = &active.data else {
            panic!()
        };
        assert!(!sum.is_monotonic);
        let post = sum
            .data_points
            .iter()
            .find(|p| {
                attr(&p.attributes, "http.request.method")
                    == Some(Value::StringValue("POST".into()))
            })
            .unwrap();
        assert_eq!(post.value, Some(number_data_point::Value::AsInt(1)));
        let own: usize = reg.families().iter().map(|f| f.series.len()).sum();
        assert_eq!(points, (2 + sum.data_points.len() + own) as u64);
    }

    #[test]
    fn delta_reports_what_changed_since_the_last_accepted_export() {
        let reg = Registry::new(&DEFAULT_BUCKETS);
        let r = reg.route(&"f".into(), &"/r".into());
        r.record(0, 200, ErrorType::None, 0.02, None);
        let mut b = MetricsBuilder::new(Temporality::Delta, 1);
        let (req, _) = b.build(&reg, &[], &Resource::default(), 10);
        assert_eq!(histogram(&req).data_points[0].count, 1);
        // Not committed (the export failed): the next delta still includes it.
        r.record(0, 200, ErrorType::None, 0.02, None);
        let (req, _) = b.build(&reg, &[], &Resource::default(), 20);
        assert_eq!(histogram(&req).data_points[0].count, 2);
        b.committed();
        let (req, _) = b.build(&reg, &[], &Resource::default(), 30);
        assert!(histogram(&req).data_points.is_empty());
        r.record(0, 200, ErrorType::None, 0.02, None);
        let (req, _) = b.build(&reg, &[], &Resource::default(), 40);
        let p = &histogram(&req).data_points[0];
        assert_eq!((p.count, p.start_time_unix_nano), (1, 20));
    }
}

#[cfg(test)]
mod oracle;

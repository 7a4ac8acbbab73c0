//! Redline's own families (`redline_*`, [`crate::metrics::Family`]) as OTLP metrics.
//!
//! A counter is a monotonic sum in the preferred temporality (a delta point reports what
//! changed since the last accepted export, as the duration histogram does); a gauge is a
//! gauge; an up-down counter is a non-monotonic cumulative sum, which the specification
//! asks for under every temporality preference. Values are integers where they are whole
//! numbers (counts, states), so a backend shows `3`, not `3.0`.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum, metric, number_data_point,
};

use super::super::env::Temporality;
use super::super::spans::kv;
use crate::metrics::{Family, Kind, Series};

/// One counter series: family name and label values.
type CounterKey = (&'static str, Vec<String>);

/// Counter values at the last accepted export, for delta temporality.
#[derive(Debug, Default)]
pub(super) struct Counters {
    baseline: HashMap<CounterKey, f64>,
    pending: Option<HashMap<CounterKey, f64>>,
}

impl Counters {
    /// The last built request was accepted.
    pub(super) fn committed(&mut self) {
        if let Some(now) = self.pending.take() {
            self.baseline = now;
        }
    }

    /// `families` as OTLP metrics, each point over `[start_ns, now_ns]`.
    pub(super) fn metrics(
        &mut self,
        families: &[Family],
        temporality: Temporality,
        start_ns: u64,
        now_ns: u64,
    ) -> Vec<Metric> {
        let mut seen = HashMap::new();
        let metrics = families
            .iter()
            .map(|family| {
                let points = family
                    .series
                    .iter()
                    .map(|series| {
                        let value = self.shown(family, series, temporality, &mut seen);
                        point(series, value, start_ns, now_ns)
                    })
                    .collect();
                metric(family, points, temporality)
            })
            .collect();
        if temporality == Temporality::Delta {
            self.pending = Some(seen);
        }
        metrics
    }

    /// The value a point shows: a delta counter's change since the last accepted export.
    fn shown(
        &self,
        family: &Family,
        series: &Series,
        temporality: Temporality,
        seen: &mut HashMap<CounterKey, f64>,
    ) -> f64 {
        if family.kind != Kind::Counter || temporality != Temporality::Delta {
            return series.value;
        }
        let key = (
            family.name,
            series.labels.iter().map(|(_, v)| v.clone()).collect(),
        );
        let before = self.baseline.get(&key).copied().unwrap_or(0.0);
        seen.insert(key, series.value);
        (series.value - before).max(0.0)
    }
}

fn point(series: &Series, value: f64, start_ns: u64, now_ns: u64) -> NumberDataPoint {
    let attributes: Vec<KeyValue> = series.labels.iter().map(|(k, v)| kv(k, v)).collect();
    let value = if value.fract() == 0.0 && value.abs() < 9.0e15 {
        number_data_point::Value::AsInt(value as i64)
    } else {
        number_data_point::Value::AsDouble(value)
    };
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        value: Some(value),
        ..Default::default()
    }
}

fn metric(family: &Family, data_points: Vec<NumberDataPoint>, temporality: Temporality) -> Metric {
    let data = match family.kind {
        Kind::Gauge => metric::Data::Gauge(Gauge { data_points }),
        Kind::Counter => metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: match temporality {
                Temporality::Cumulative => AggregationTemporality::Cumulative,
                Temporality::Delta => AggregationTemporality::Delta,
            } as i32,
            is_monotonic: true,
        }),
        Kind::UpDownCounter => metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: false,
        }),
    };
    Metric {
        name: family.otel_name.into(),
        description: family.help.into(),
        unit: family.unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

/// The Prometheus name the compatibility rules give an OTLP metric: dots (and any other
/// character Prometheus does not allow) become underscores, a monotonic sum gains `_total`.
/// Unit annotations (`{…}`) add nothing; Redline's families have no other units.
#[cfg(test)]
pub(super) fn prometheus_name(m: &Metric) -> String {
    let mut name: String = m
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if matches!(&m.data, Some(metric::Data::Sum(s)) if s.is_monotonic) {
        name.push_str("_total");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{DEFAULT_BUCKETS, Registry, Source};

    #[test]
    fn every_family_translates_to_its_prometheus_name_and_kind() {
        let reg = Registry::new(&DEFAULT_BUCKETS);
        reg.notifications.inc(&["ops", "delivered"]);
        reg.alert_state.set(&["checkout", "latency", "page"], 2.0);
        let gate = crate::proxy::gate::Gate::new();
        let mut families = reg.families();
        families.extend(gate.families());
        let metrics = Counters::default().metrics(&families, Temporality::Cumulative, 1, 2);
        assert_eq!(metrics.len(), families.len());
        for (m, f) in metrics.iter().zip(&families) {
            assert_eq!(prometheus_name(m), f.name, "{m:?}");
            let kind = match &m.data {
                Some(metric::Data::Gauge(_)) => "gauge",
                Some(metric::Data::Sum(s)) if s.is_monotonic => "counter",
                Some(metric::Data::Sum(_)) => "gauge",
                other => panic!("{other:?}"),
            };
            assert_eq!(kind, f.kind.prometheus());
        }
    }

    #[test]
    fn delta_counters_report_the_change_since_the_last_accepted_export() {
        let reg = Registry::new(&DEFAULT_BUCKETS);
        let mut c = Counters::default();
        let value = |ms: &[Metric]| match &ms[1].data {
            Some(metric::Data::Sum(s)) => (s.aggregation_temporality, s.data_points[0].value),
            other => panic!("{other:?}"),
        };
        reg.notifications.add(&["ops", "delivered"], 3.0);
        let first = c.metrics(&reg.families(), Temporality::Delta, 1, 2);
        assert_eq!(
            value(&first),
            (
                AggregationTemporality::Delta as i32,
                Some(number_data_point::Value::AsInt(3))
            )
        );
        // Not accepted: the next export still carries the 3.
        reg.notifications.inc(&["ops", "delivered"]);
        let again = c.metrics(&reg.families(), Temporality::Delta, 1, 3);
        assert_eq!(value(&again).1, Some(number_data_point::Value::AsInt(4)));
        c.committed();
        let after = c.metrics(&reg.families(), Temporality::Delta, 3, 4);
        assert_eq!(value(&after).1, Some(number_data_point::Value::AsInt(0)));
    }
}

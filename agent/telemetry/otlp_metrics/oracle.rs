//! Oracle: metric points as OTLP (decoded with `opentelemetry-proto`'s prost types) and as OpenMetrics text, against a model.
//!
//! A proptest strategy records random requests (flow, route, method, status, error type, a
//! duration that is often exactly a bucket boundary, and sometimes a kept trace) into a
//! [`Registry`] with random bucket boundaries. The registry is then read two ways, each
//! mapped by hand: `MetricsBuilder` builds the OTLP request, which is encoded and decoded
//! again with prost; `render_as(Format::OpenMetrics)` writes the text, parsed back here.
//! Both are compared field by field with a plain model of the same requests (per series:
//! `le` bucket counts, count, sum, the latest exemplar per bucket) and with each other
//! through the OpenTelemetry ↔ Prometheus naming (`http.route` ↔ `http_route`, …).
//! The OTLP request also goes through the `http/json` conversion and is read back with
//! `opentelemetry-proto`'s serde types: the same message.
//!
//! `PROPTEST_CASES` overrides the default of 128 cases. Recorded run:
//! `PROPTEST_CASES=3000 cargo test --lib otlp_metrics::oracle`, debug build, 2 shared
//! cores: 24 s, no difference (and a model that put a duration equal to a bound in the next
//! bucket was caught at once, shrunk to one request).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::{exemplar, metric};
use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::metrics::{Exemplar as Kept, Format, METHODS};

const STATUSES: [u16; 5] = [200, 201, 404, 500, 503];
const ERRORS: [ErrorType; 4] = [
    ErrorType::None,
    ErrorType::Timeout,
    ErrorType::UpstreamError,
    ErrorType::Status,
];

#[derive(Debug, Clone)]
struct Request {
    flow: usize,
    route: usize,
    method: usize,
    status: u16,
    error: ErrorType,
    seconds: f64,
    kept: Option<Kept>,
}

fn bounds() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(
        prop_oneof![
            Just(0.005),
            Just(0.1),
            Just(0.25),
            Just(1.0),
            Just(2.5),
            Just(10.0),
            (1u32..100_000).prop_map(|n| f64::from(n) / 1000.0)
        ],
        1..8,
    )
}

fn request(bounds: Vec<f64>) -> impl Strategy<Value = Request> {
    let seconds = prop_oneof![
        2 => proptest::sample::select(bounds),
        3 => (0u32..20_000_000).prop_map(|us| f64::from(us) / 1e6),
    ];
    let kept = proptest::option::of(
        (any::<[u8; 16]>(), any::<[u8; 8]>(), 1u64..4_000_000_000_000).prop_map(
            |(trace_id, span_id, unix_ms)| Kept {
                trace_id,
                span_id,
                seconds: 0.0,
                unix_ms,
            },
        ),
    );
    (
        0usize..2,
        0usize..3,
        0usize..METHODS.len(),
        proptest::sample::select(STATUSES.to_vec()),
        proptest::sample::select(ERRORS.to_vec()),
        seconds,
        kept,
    )
        .prop_map(
            |(flow, route, method, status, error, seconds, kept)| Request {
                flow,
                route,
                method,
                status,
                error,
                seconds,
                kept: kept.map(|k| Kept { seconds, ..k }),
            },
        )
}

fn case() -> impl Strategy<Value = (Vec<f64>, Vec<Request>)> {
    bounds().prop_flat_map(|b| {
        let requests = proptest::collection::vec(request(b.clone()), 0..40);
        (Just(b), requests)
    })
}

/// One series as the Prometheus labels name it.
type Labels = BTreeMap<String, String>;

/// What one series should say.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    /// Non-cumulative, the last one `+Inf`.
    counts: Vec<u64>,
    sum_nanos: u64,
    exemplars: Vec<Option<Kept>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn flow_name(i: usize) -> String {
    format!("flow-{i}")
}

fn route_name(i: usize) -> String {
    ["/", "/orders/{id}", "/a \"quoted\" \\ route"][i].to_string()
}

/// The model: `le` buckets (a duration equal to a bound counts in it), the latest exemplar per bucket.
fn model(bounds: &[f64], requests: &[Request]) -> BTreeMap<Labels, Expected> {
    let mut out: BTreeMap<Labels, Expected> = BTreeMap::new();
    for r in requests {
        let status = r.status.to_string();
        let error = r.error.label(r.status);
        let key = labels(&[
            ("flow", &flow_name(r.flow)),
            ("http_request_method", METHODS[r.method]),
            ("http_route", &route_name(r.route)),
            ("http_response_status_code", &status),
            ("error_type", &error),
        ]);
        let e = out.entry(key).or_insert_with(|| Expected {
            counts: vec![0; bounds.len() + 1],
            sum_nanos: 0,
            exemplars: vec![None; bounds.len() + 1],
        });
        let bucket = bounds
            .iter()
            .position(|b| r.seconds <= *b)
            .unwrap_or(bounds.len());
        e.counts[bucket] += 1;
        e.sum_nanos += (r.seconds * 1e9) as u64;
        if r.kept.is_some() {
            e.exemplars[bucket] = r.kept;
        }
    }
    out
}

fn registry(bounds: &[f64], requests: &[Request]) -> Registry {
    let reg = Registry::new(bounds);
    for r in requests {
        let route = reg.route(&flow_name(r.flow).into(), &route_name(r.route).into());
        let method = http::Method::from_bytes(METHODS[r.method].as_bytes()).unwrap();
        let method = crate::metrics::method_index(&method);
        route.record(method, r.status, r.error, r.seconds, r.kept);
    }
    reg
}

/// OTLP attributes as the Prometheus labels of the same series.
fn prometheus_labels(attrs: &[KeyValue]) -> Labels {
    let mut out = labels(&[("error_type", "")]);
    for kv in attrs {
        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(n)) => n.to_string(),
            other => panic!("unexpected attribute value {other:?}"),
        };
        let name = match kv.key.as_str() {
            "redline.flow" => "flow".to_string(),
            // Fixed for every point: not a label of `/metrics`.
            "url.scheme" => continue,
            key => key.replace('.', "_"),
        };
        out.insert(name, value);
    }
    out
}

fn otlp(reg: &Registry) -> BTreeMap<Labels, Expected> {
    let mut b = MetricsBuilder::new(Temporality::Cumulative, 0);
    let (request, _) = b.build(reg, &[], &Resource::default(), 1);
    let bytes = request.encode_to_vec();
    let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
    // The http/json route sends the same message.
    let json = crate::telemetry::otlp_json::request(crate::telemetry::env::Signal::Metrics, &bytes)
        .unwrap();
    let read: ExportMetricsServiceRequest = serde_json::from_slice(&json).unwrap();
    assert_eq!(read, decoded, "OTLP/JSON");
    let metric = &decoded.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(metric::Data::Histogram(h)) = &metric.data else {
        panic!("{metric:?}")
    };
    let mut out = BTreeMap::new();
    for p in &h.data_points {
        assert_eq!(p.explicit_bounds, reg.bounds().to_vec());
        assert_eq!(p.count, p.bucket_counts.iter().sum::<u64>());
        let mut exemplars = vec![None; p.bucket_counts.len()];
        for e in &p.exemplars {
            let Some(exemplar::Value::AsDouble(seconds)) = e.value else {
                panic!("{e:?}")
            };
            let bucket = p
                .explicit_bounds
                .iter()
                .position(|b| seconds <= *b)
                .unwrap_or(p.explicit_bounds.len());
            exemplars[bucket] = Some(Kept {
                trace_id: e.trace_id.clone().try_into().unwrap(),
                span_id: e.span_id.clone().try_into().unwrap(),
                seconds,
                unix_ms: e.time_unix_nano / 1_000_000,
            });
        }
        let expected = Expected {
            counts: p.bucket_counts.clone(),
            sum_nanos: (p.sum.unwrap() * 1e9).round() as u64,
            exemplars,
        };
        out.insert(prometheus_labels(&p.attributes), expected);
    }
    out
}

/// `name{labels} rest`, label values unescaped.
fn split_sample(line: &str) -> Option<(&str, Labels, &str)> {
    let (name, rest) = line.split_once('{')?;
    let mut labels = Labels::new();
    let mut chars = rest.char_indices();
    let mut key = String::new();
    loop {
        let (i, c) = chars.next()?;
        match c {
            '}' => return Some((name, labels, rest[i + 1..].trim_start())),
            ',' => {}
            '=' => {
                chars.next(); // the opening quote
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next()?.1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        c => value.push(c),
                    }
                }
                labels.insert(std::mem::take(&mut key), value);
            }
            c => key.push(c),
        }
    }
}

fn hex_bytes<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// ` # {trace_id="…",span_id="…"} value seconds.millis` after a bucket's count.
fn parse_exemplar(text: &str) -> Kept {
    let (_, labels, rest) = split_sample(&format!("x{}", text.trim_start_matches("# ")))
        .map(|(n, l, r)| (n.to_string(), l, r.to_string()))
        .unwrap();
    let mut parts = rest.split(' ');
    let seconds: f64 = parts.next().unwrap().parse().unwrap();
    let (secs, millis) = parts.next().unwrap().split_once('.').unwrap();
    Kept {
        trace_id: hex_bytes(&labels["trace_id"]),
        span_id: hex_bytes(&labels["span_id"]),
        seconds,
        unix_ms: secs.parse::<u64>().unwrap() * 1000 + millis.parse::<u64>().unwrap(),
    }
}

fn openmetrics(reg: &Registry) -> BTreeMap<Labels, Expected> {
    let text = reg.render_as(Format::OpenMetrics);
    let mut out: BTreeMap<Labels, Expected> = BTreeMap::new();
    let mut last_cumulative: BTreeMap<Labels, u64> = BTreeMap::new();
    for line in text.lines() {
        let Some((name, mut labels, rest)) = split_sample(line) else {
            continue;
        };
        let (value, exemplar) = match rest.split_once(" # ") {
            Some((v, e)) => (v, Some(parse_exemplar(e))),
            None => (rest, None),
        };
        match name {
            "http_server_request_duration_seconds_bucket" => {
                labels.remove("le");
                let cumulative: u64 = value.parse().unwrap();
                let before = last_cumulative
                    .insert(labels.clone(), cumulative)
                    .unwrap_or(0);
                let e = out.entry(labels).or_default();
                e.counts.push(cumulative - before);
                e.exemplars.push(exemplar);
            }
            "http_server_request_duration_seconds_sum" => {
                let sum: f64 = value.parse().unwrap();
                out.entry(labels).or_default().sum_nanos = (sum * 1e9).round() as u64;
            }
            "http_server_request_duration_seconds_count" => {
                let count: u64 = value.parse().unwrap();
                assert_eq!(Some(&count), last_cumulative.get(&labels), "{line}");
            }
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn otlp_points_and_openmetrics_samples_say_what_was_recorded((bounds, requests) in case()) {
        let reg = registry(&bounds, &requests);
        let mut sorted = bounds.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        let mut model = model(&sorted, &requests);
        for e in model.values_mut() {
            // The registry keeps whole nanoseconds; both outputs print seconds as f64.
            e.sum_nanos = (((e.sum_nanos as f64) / 1e9) * 1e9).round() as u64;
        }
        let otlp = otlp(&reg);
        let om = openmetrics(&reg);
        prop_assert_eq!(otlp.keys().collect::<Vec<_>>(), model.keys().collect::<Vec<_>>());
        prop_assert_eq!(om.keys().collect::<Vec<_>>(), model.keys().collect::<Vec<_>>());
        for (key, want) in &model {
            let (o, m) = (&otlp[key], &om[key]);
            prop_assert_eq!(&o.counts, &want.counts, "OTLP counts of {:?}", key);
            prop_assert_eq!(&m.counts, &want.counts, "OpenMetrics counts of {:?}", key);
            prop_assert_eq!(&o.exemplars, &want.exemplars, "OTLP exemplars of {:?}", key);
            prop_assert_eq!(&m.exemplars, &want.exemplars, "OpenMetrics exemplars of {:?}", key);
            prop_assert!(o.sum_nanos.abs_diff(want.sum_nanos) <= 1, "OTLP sum of {:?}", key);
            prop_assert!(m.sum_nanos.abs_diff(want.sum_nanos) <= 1, "OpenMetrics sum of {:?}", key);
        }
    }
}

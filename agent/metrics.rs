//! Redline's own metric registry: lock-free instruments on the request path, Prometheus text on `/metrics`.
//!
//! Why not the `metrics` facade: its handles are looked up by string key, its
//! histogram buckets are fixed when the global recorder is installed, and the
//! OTLP exporter needs to read the very same series. Here every series handle
//! is resolved once per flow/route and recorded with plain atomics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

mod exposition;
mod families;
mod histogram;

pub use exposition::{
    Format, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, format_seconds, header, render_families,
    write_labels,
};
pub use families::{Family, Kind, Series, Source, describe};
pub use histogram::{Exemplar, Histogram};

/// Default bucket boundaries, in seconds: the OpenTelemetry advice for `http.server.request.duration`.
pub const DEFAULT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Methods known to the HTTP semantic conventions; anything else is `_OTHER`.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// Index of a method in [`METHODS`], so per-method series need no string lookup.
pub fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::CONNECT => 5,
        http::Method::OPTIONS => 6,
        http::Method::TRACE => 7,
        http::Method::PATCH => 8,
        _ => 9,
    }
}

pub use crate::error::ErrorType;

/// Series of `http_server_request_duration_seconds` for one (flow, route).
///
/// The request path holds an `Arc` to this, so only the small integer key of
/// (method, status, error type) is hashed per request.
#[derive(Debug)]
pub struct RouteMetrics {
    /// `flow` label.
    pub flow: Arc<str>,
    /// `http_route` label.
    pub route: Arc<str>,
    bounds: Arc<[f64]>,
    series: DashMap<u32, Arc<Histogram>>,
}

impl RouteMetrics {
    fn new(flow: Arc<str>, route: Arc<str>, bounds: Arc<[f64]>) -> Self {
        RouteMetrics {
            flow,
            route,
            bounds,
            series: DashMap::new(),
        }
    }

    /// Record one finished request; `exemplar` when its trace was kept.
    pub fn record(
        &self,
        method: usize,
        status: u16,
        error: ErrorType,
        seconds: f64,
        exemplar: Option<Exemplar>,
    ) {
        let key = (method as u32) | (u32::from(status.min(999)) << 4) | (error.code() << 14);
        if let Some(h) = self.series.get(&key) {
            h.observe_with(seconds, exemplar);
            return;
        }
        let h = self
            .series
            .entry(key)
            .or_insert_with(|| Arc::new(Histogram::new(self.bounds.clone())))
            .clone();
        h.observe_with(seconds, exemplar);
    }

    /// Every series: (method, status, error type, histogram).
    pub fn series(&self) -> Vec<(&'static str, u16, ErrorType, Arc<Histogram>)> {
        let mut out: Vec<_> = self
            .series
            .iter()
            .map(|e| {
                let k = *e.key();
                let method = METHODS[(k & 0xf) as usize % METHODS.len()];
                let status = ((k >> 4) & 0x3ff) as u16;
                (
                    method,
                    status,
                    ErrorType::from_code(k >> 14),
                    e.value().clone(),
                )
            })
            .collect();
        out.sort_by(|a, b| (a.0, a.1, a.2 as u8).cmp(&(b.0, b.1, b.2 as u8)));
        out
    }
}

/// `http_server_active_requests` for one flow, one gauge per method.
#[derive(Debug)]
pub struct ActiveRequests {
    /// `flow` label.
    pub flow: Arc<str>,
    gauges: [AtomicI64; METHODS.len()],
}

impl ActiveRequests {
    /// Gauges for `flow`, all zero.
    pub fn new(flow: Arc<str>) -> Self {
        ActiveRequests {
            flow,
            gauges: Default::default(),
        }
    }

    /// A request started; the returned guard ends it when dropped.
    pub fn start(self: &Arc<Self>, method: usize) -> ActiveGuard {
        self.gauges[method].fetch_add(1, Relaxed);
        ActiveGuard {
            active: self.clone(),
            method,
        }
    }

    /// Current value per method.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        METHODS
            .iter()
            .zip(self.gauges.iter())
            .map(|(m, g)| (*m, g.load(Relaxed)))
    }

    /// Sum over all methods.
    pub fn total(&self) -> i64 {
        self.gauges.iter().map(|g| g.load(Relaxed)).sum()
    }
}

/// Decrements an active-requests gauge on drop, whatever way the request ends.
#[derive(Debug)]
pub struct ActiveGuard {
    active: Arc<ActiveRequests>,
    method: usize,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.active.gauges[self.method].fetch_sub(1, Relaxed);
    }
}

/// A family of counters or gauges with string labels, for low-rate events off the request path.
#[derive(Debug)]
pub struct LabeledFamily {
    /// Names, unit, kind and help; its `series` stays empty.
    desc: Family,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl LabeledFamily {
    fn new(desc: Family, labels: &'static [&'static str]) -> Self {
        LabeledFamily {
            desc,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// The family's description with its current series.
    pub fn snapshot(&self) -> Family {
        let mut family = self.desc.clone();
        family.series = self.with(|m| {
            m.iter()
                .map(|(values, v)| Series {
                    labels: self.labels.iter().copied().zip(values.clone()).collect(),
                    value: *v,
                })
                .collect()
        });
        family
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<Vec<String>, f64>) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of a counter; keep counting.
        let mut guard = self.values.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Add `by` to the series with these label values (in the family's label order).
    pub fn add(&self, labels: &[&str], by: f64) {
        let key = labels.iter().map(|s| s.to_string()).collect();
        self.with(|m| *m.entry(key).or_insert(0.0) += by);
    }

    /// Increment a counter by one.
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0);
    }

    /// Set a gauge.
    pub fn set(&self, labels: &[&str], value: f64) {
        let key = labels.iter().map(|s| s.to_string()).collect();
        self.with(|m| m.insert(key, value));
    }

    /// Replace every series with `series` (label values in the family's order), all at `value`.
    pub fn replace_all<const N: usize>(
        &self,
        series: impl Iterator<Item = [String; N]>,
        value: f64,
    ) {
        let fresh: BTreeMap<Vec<String>, f64> = series.map(|s| (s.to_vec(), value)).collect();
        self.with(|m| *m = fresh);
    }

    /// Remove one series (a gauge whose subject no longer exists).
    pub fn remove(&self, labels: &[&str]) {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.with(|m| m.remove(&key));
    }

    /// Current value of one series, 0 when absent.
    pub fn get(&self, labels: &[&str]) -> f64 {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.with(|m| m.get(&key).copied().unwrap_or(0.0))
    }
}

/// Every metric Redline exposes (PRODUCT.md §4).
#[derive(Debug)]
pub struct Registry {
    bounds: Arc<[f64]>,
    routes: DashMap<(Arc<str>, Arc<str>), Arc<RouteMetrics>>,
    active: DashMap<Arc<str>, Arc<ActiveRequests>>,
    /// `redline_alert_state{flow, alertname, severity}`.
    pub alert_state: LabeledFamily,
    /// `redline_notifications_total{receiver, result}`.
    pub notifications: LabeledFamily,
    /// `redline_flow_info{flow, owner, runbook}`: 1 per configured flow.
    pub flow_info: LabeledFamily,
    /// `redline_config_reloads_total{result}`.
    pub config_reloads: LabeledFamily,
    /// `redline_telemetry_dropped_total{signal}`.
    pub telemetry_dropped: LabeledFamily,
    /// `redline_telemetry_retries_total{signal}`: failed exports tried again.
    pub telemetry_retries: LabeledFamily,
    /// `redline_access_log_dropped_total`: lines dropped because stdout could not keep up.
    pub access_log_dropped: AtomicU64,
    /// `redline_audit_dropped_total`: audit records lost (queue full, disk error).
    pub audit_dropped: Arc<AtomicU64>,
}

impl Registry {
    /// A registry whose latency histograms use `bounds` (seconds; sorted and deduplicated here).
    pub fn new(bounds: &[f64]) -> Self {
        let mut b: Vec<f64> = bounds
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        let telemetry_dropped = LabeledFamily::new(
            describe(
                "redline_telemetry_dropped_total",
                "redline.telemetry.dropped",
                "{item}",
                Kind::Counter,
                "Telemetry items dropped because an export queue was full or the collector failed.",
            ),
            &["signal"],
        );
        let telemetry_retries = LabeledFamily::new(
            describe(
                "redline_telemetry_retries_total",
                "redline.telemetry.retries",
                "{export}",
                Kind::Counter,
                "OTLP exports tried again after a failure the OTLP specification calls retryable.",
            ),
            &["signal"],
        );
        for signal in ["traces", "metrics", "logs"] {
            telemetry_dropped.add(&[signal], 0.0);
            telemetry_retries.add(&[signal], 0.0);
        }
        let config_reloads = LabeledFamily::new(
            describe(
                "redline_config_reloads_total",
                "redline.config.reloads",
                "{reload}",
                Kind::Counter,
                "Configuration reloads by result.",
            ),
            &["result"],
        );
        for result in ["success", "failure"] {
            config_reloads.add(&[result], 0.0);
        }
        Registry {
            bounds: b.into(),
            routes: DashMap::new(),
            active: DashMap::new(),
            alert_state: LabeledFamily::new(
                describe(
                    "redline_alert_state",
                    "redline.alert.state",
                    "",
                    Kind::Gauge,
                    "Alert state: 0 inactive, 1 pending, 2 firing.",
                ),
                &["flow", "alertname", "severity"],
            ),
            notifications: LabeledFamily::new(
                describe(
                    "redline_notifications_total",
                    "redline.notifications",
                    "{notification}",
                    Kind::Counter,
                    "Alert notifications by receiver and result.",
                ),
                &["receiver", "result"],
            ),
            flow_info: LabeledFamily::new(
                describe(
                    "redline_flow_info",
                    "redline.flow.info",
                    "",
                    Kind::Gauge,
                    "Configured flows with their owner and runbook (always 1), to join on flow.",
                ),
                &["flow", "owner", "runbook"],
            ),
            config_reloads,
            telemetry_dropped,
            telemetry_retries,
            access_log_dropped: AtomicU64::new(0),
            audit_dropped: Arc::default(),
        }
    }

    /// Histogram boundaries in seconds.
    pub fn bounds(&self) -> &Arc<[f64]> {
        &self.bounds
    }

    /// The series handle for (flow, route), created once and kept across reloads (until
    /// the flow is retired, see `retire_flow`).
    pub fn route(&self, flow: &Arc<str>, route: &Arc<str>) -> Arc<RouteMetrics> {
        let key = (flow.clone(), route.clone());
        // Unmatched traffic resolves its template per request: a shared read lock is enough then.
        if let Some(existing) = self.routes.get(&key) {
            return existing.clone();
        }
        self.routes
            .entry(key)
            .or_insert_with(|| {
                Arc::new(RouteMetrics::new(
                    flow.clone(),
                    route.clone(),
                    self.bounds.clone(),
                ))
            })
            .clone()
    }

    /// The active-requests gauges for a flow, created once and kept across reloads.
    pub fn active(&self, flow: &Arc<str>) -> Arc<ActiveRequests> {
        self.active
            .entry(flow.clone())
            .or_insert_with(|| Arc::new(ActiveRequests::new(flow.clone())))
            .clone()
    }

    /// Drop the series of a flow that is gone (`state::Shared::retire_flows`): its route
    /// histograms and active-requests gauges, unless something still holds a handle to
    /// them (a runtime built meanwhile keeps its series). A flow of that name added later
    /// starts from zero.
    pub fn retire_flow(&self, flow: &str) {
        self.routes
            .retain(|(f, _), series| &**f != flow || Arc::strong_count(series) > 1);
        self.active
            .remove_if(flow, |_, gauges| Arc::strong_count(gauges) == 1);
    }

    /// Every route series handle, sorted by flow then route.
    pub fn routes(&self) -> Vec<Arc<RouteMetrics>> {
        let mut v: Vec<_> = self.routes.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| (&a.flow, &a.route).cmp(&(&b.flow, &b.route)));
        v
    }

    /// Every active-requests gauge set, sorted by flow.
    pub fn active_all(&self) -> Vec<Arc<ActiveRequests>> {
        let mut v: Vec<_> = self.active.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.flow.cmp(&b.flow));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_le_and_cumulative() {
        let reg = Registry::new(&[0.1, 0.5, 0.1]);
        let r = reg.route(&"checkout".into(), &"/api/checkout".into());
        r.record(2, 200, ErrorType::None, 0.1, None);
        r.record(2, 200, ErrorType::None, 0.3, None);
        r.record(2, 503, ErrorType::Status, 2.0, None);
        let text = reg.render();
        let base = r#"flow="checkout",http_request_method="POST",http_route="/api/checkout",http_response_status_code="200",error_type="""#;
        assert!(
            text.contains(&format!(
                "http_server_request_duration_seconds_bucket{{{base},le=\"0.1\"}} 1\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "http_server_request_duration_seconds_bucket{{{base},le=\"0.5\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "http_server_request_duration_seconds_count{{{base}}} 2\n"
        )));
        assert!(text.contains(r#"http_response_status_code="503",error_type="503",le="+Inf"} 1"#));
        assert!(text.contains("redline_build_info{version=\""));
    }

    #[test]
    fn active_guard_decrements_on_drop() {
        let reg = Registry::new(&DEFAULT_BUCKETS);
        let a = reg.active(&"f".into());
        let g = a.start(0);
        assert_eq!(a.total(), 1);
        drop(g);
        assert_eq!(a.total(), 0);
    }
}

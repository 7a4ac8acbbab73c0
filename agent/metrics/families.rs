//! Redline's own families (`redline_*`) as plain data, so `/metrics` and the OTLP exporter read the same values under names that translate into each other.
//!
//! Each family carries its Prometheus name and its OpenTelemetry name. The pair follows
//! the OpenTelemetry ↔ Prometheus compatibility rules: the OTLP name's dots become
//! underscores, and a monotonic sum (a [`Kind::Counter`]) gains `_total` — so the OTLP
//! sum `redline.notifications` is scraped as `redline_notifications_total`. Units are
//! annotations (`{notification}`), which those rules leave out of the Prometheus name.
//! Attribute keys are the Prometheus label names, which the rules keep as they are.

use std::fmt::Debug;
use std::sync::atomic::Ordering::Relaxed;

use super::Registry;

/// What kind of instrument a family is, in both worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Prometheus counter; OTLP monotonic cumulative sum.
    Counter,
    /// Prometheus gauge; OTLP gauge (a value that is set).
    Gauge,
    /// Prometheus gauge; OTLP non-monotonic sum (a count that goes up and down).
    UpDownCounter,
}

impl Kind {
    /// The `# TYPE` of the Prometheus text format.
    pub fn prometheus(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge | Kind::UpDownCounter => "gauge",
        }
    }
}

/// One series of a family: label values in the family's label order, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// (label name, value) pairs.
    pub labels: Vec<(&'static str, String)>,
    /// Current value (counters: since start).
    pub value: f64,
}

/// A family's description and current series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Prometheus name, with `_total` for counters.
    pub name: &'static str,
    /// OpenTelemetry instrument name.
    pub otel_name: &'static str,
    /// UCUM unit or annotation for OTLP (empty: none).
    pub unit: &'static str,
    /// Help text, the OTLP description too.
    pub help: &'static str,
    /// Instrument kind.
    pub kind: Kind,
    /// The series, in a stable order.
    pub series: Vec<Series>,
}

impl Family {
    /// A family of one unlabelled series.
    pub fn single(mut self, value: f64) -> Family {
        self.series = vec![Series {
            labels: Vec::new(),
            value,
        }];
        self
    }
}

/// Families kept outside the registry (the proxy's connection gate), handed to `/metrics`
/// and to the OTLP exporter by `app`.
pub trait Source: Send + Sync + Debug {
    /// The current values.
    fn families(&self) -> Vec<Family>;
}

/// Description of a family whose series are filled in later.
pub const fn describe(
    name: &'static str,
    otel_name: &'static str,
    unit: &'static str,
    kind: Kind,
    help: &'static str,
) -> Family {
    Family {
        name,
        otel_name,
        unit,
        help,
        kind,
        series: Vec::new(),
    }
}

const ACCESS_LOG_DROPPED: Family = describe(
    "redline_access_log_dropped_total",
    "redline.access_log.dropped",
    "{line}",
    Kind::Counter,
    "Access log lines dropped because the writer could not keep up.",
);

const AUDIT_DROPPED: Family = describe(
    "redline_audit_dropped_total",
    "redline.audit.dropped",
    "{record}",
    Kind::Counter,
    "Audit records dropped (writer behind or disk error); the trail marks each gap.",
);

const BUILD_INFO: Family = describe(
    "redline_build_info",
    "redline.build.info",
    "",
    Kind::Gauge,
    "Build information.",
);

const CONNECTIONS_SHED: Family = describe(
    "redline_connections_shed_total",
    "redline.connections.shed",
    "{connection}",
    Kind::Counter,
    "Client connections closed at accept: file descriptors near the limit.",
);

const STATS_DROPPED: Family = describe(
    "redline_stats_dropped_total",
    "redline.stats.dropped",
    "{request}",
    Kind::Counter,
    "Requests left out of a flow's alerting windows (a slot reset not finished in time, or a stale clock reading).",
);

impl Registry {
    /// Every `redline_*` family the registry holds, in `/metrics` order.
    pub fn families(&self) -> Vec<Family> {
        let mut out: Vec<Family> = [
            &self.alert_state,
            &self.notifications,
            &self.flow_info,
            &self.config_reloads,
            &self.telemetry_dropped,
            &self.telemetry_retries,
        ]
        .into_iter()
        .map(|f| f.snapshot())
        .collect();
        out.push(ACCESS_LOG_DROPPED.single(self.access_log_dropped.load(Relaxed) as f64));
        out.push(AUDIT_DROPPED.single(self.audit_dropped.load(Relaxed) as f64));
        let mut build = BUILD_INFO;
        build.series = vec![Series {
            labels: vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            value: 1.0,
        }];
        out.push(build);
        out.push(CONNECTIONS_SHED.single(crate::fdlimit::shed_total() as f64));
        out.push(STATS_DROPPED.single(crate::stats::dropped_total() as f64));
        out
    }
}

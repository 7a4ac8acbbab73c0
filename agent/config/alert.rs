//! Alert rules (`when` expressions, windows, severities) and SLOs of a flow.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::de::{Parse, opt_positive_duration};
use super::units::{format_duration, format_percent, parse_percent, parse_positive_duration};

/// A latency quantile usable in `when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantile {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
}

impl Quantile {
    /// The quantile as a fraction, e.g. `0.95`.
    pub fn value(self) -> f64 {
        match self {
            Quantile::P50 => 0.5,
            Quantile::P90 => 0.9,
            Quantile::P95 => 0.95,
            Quantile::P99 => 0.99,
        }
    }

    /// The lowercase name used in `when` and in JSON, e.g. `p95`.
    pub fn label(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P90 => "p90",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
    }

    fn from_label(s: &str) -> Option<Quantile> {
        [Quantile::P50, Quantile::P90, Quantile::P95, Quantile::P99]
            .into_iter()
            .find(|q| q.label() == s)
    }
}

/// The condition of an alert rule (`when:`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// `pNN > DURATION`: the quantile latency over the window exceeds the threshold.
    Latency {
        /// Which quantile.
        quantile: Quantile,
        /// Breach when the quantile is above this.
        threshold: Duration,
    },
    /// `error_rate > X%`, as a fraction (2% is 0.02).
    ErrorRate(f64),
    /// `timeout_rate > X%`, as a fraction.
    TimeoutRate(f64),
    /// `denied_rate > X%`, as a fraction: requests refused by the flow's `access` rule (401
    /// and 403) over all of its requests.
    DeniedRate(f64),
    /// `rps < N`: traffic fell below N requests per second.
    RpsBelow(f64),
}

const WHEN_FORMS: &str = "expected one of `p50|p90|p95|p99 > DURATION` (e.g. \"p95 > 800ms\"), \
     `error_rate > PERCENT` (e.g. \"error_rate > 2%\"), `timeout_rate > PERCENT`, \
     `denied_rate > PERCENT` or `rps < NUMBER` (e.g. \"rps < 0.05\")";

impl When {
    /// The alert name used when the rule sets none (PRODUCT §6).
    pub fn default_alert_name(&self) -> &'static str {
        match self {
            When::Latency { quantile, .. } => match quantile {
                Quantile::P50 => "FlowLatencyP50",
                Quantile::P90 => "FlowLatencyP90",
                Quantile::P95 => "FlowLatencyP95",
                Quantile::P99 => "FlowLatencyP99",
            },
            When::ErrorRate(_) => "FlowErrorRate",
            When::TimeoutRate(_) => "FlowTimeoutRate",
            When::DeniedRate(_) => "FlowDeniedRate",
            When::RpsBelow(_) => "FlowTrafficLow",
        }
    }

    /// The latency threshold, for latency rules.
    pub fn latency_threshold(&self) -> Option<Duration> {
        match self {
            When::Latency { threshold, .. } => Some(*threshold),
            _ => None,
        }
    }
}

impl FromStr for When {
    type Err = String;

    fn from_str(s: &str) -> Result<When, String> {
        let text = s.trim();
        let grammar = || format!("invalid alert condition {text:?}; {WHEN_FORMS}");
        let split = text.find(['<', '>']).ok_or_else(grammar)?;
        let (subject, op) = (text[..split].trim(), &text[split..split + 1]);
        let operand = &text[split + 1..];
        if operand.starts_with('=') {
            return Err(grammar());
        }
        let explain = |e: String| format!("in alert condition {text:?}: {e}");
        match (subject, op) {
            ("error_rate", ">") => parse_percent(operand).map(When::ErrorRate).map_err(explain),
            ("timeout_rate", ">") => parse_percent(operand)
                .map(When::TimeoutRate)
                .map_err(explain),
            ("denied_rate", ">") => parse_percent(operand)
                .map(When::DeniedRate)
                .map_err(explain),
            ("rps", "<") => parse_rps(operand).map(When::RpsBelow).map_err(explain),
            (q, ">") if Quantile::from_label(q).is_some() => {
                let threshold = parse_positive_duration(operand).map_err(explain)?;
                let quantile = Quantile::from_label(q).ok_or_else(grammar)?;
                Ok(When::Latency {
                    quantile,
                    threshold,
                })
            }
            _ => Err(grammar()),
        }
    }
}

fn parse_rps(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    match text.parse::<f64>() {
        Ok(v) if plain && v > 0.0 => Ok(v),
        _ => Err(format!(
            "invalid rate {text:?}; expected a number of requests per second above 0, e.g. 0.05"
        )),
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Latency {
                quantile,
                threshold,
            } => write!(f, "{} > {}", quantile.label(), format_duration(*threshold)),
            When::ErrorRate(x) => write!(f, "error_rate > {}", format_percent(*x)),
            When::TimeoutRate(x) => write!(f, "timeout_rate > {}", format_percent(*x)),
            When::DeniedRate(x) => write!(f, "denied_rate > {}", format_percent(*x)),
            When::RpsBelow(x) => write!(f, "rps < {x}"),
        }
    }
}

/// How loud an alert is; becomes the `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Needs attention soon (the default).
    #[default]
    Warning,
    /// Wake someone up.
    Page,
}

impl Severity {
    /// The label value: `info`, `warning` or `page`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Page => "page",
        }
    }
}

/// One alert rule of a flow, with every default filled in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawAlertRule")]
pub struct AlertRule {
    /// The condition.
    pub when: When,
    /// Sliding window the condition is evaluated over (default 5m).
    pub over: Duration,
    /// How long the condition must hold before firing (YAML `for`, default 1m).
    pub for_: Duration,
    /// Fewer requests than this in the window make the evaluation Unknown (default 10).
    pub min_requests: u64,
    /// How long Ok must hold before resolving (default `max(for, 1m)`).
    pub keep_firing_for: Duration,
    /// Severity label (default warning).
    pub severity: Severity,
    /// `alertname` label (default from the condition, e.g. `FlowLatencyP95`).
    pub name: String,
    /// The `when` text as written, for messages.
    pub source: String,
}

/// The YAML shape of a rule; optional fields get their defaults in `From`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an alert rule such as { when: \"p95 > 800ms\" }"
)]
struct RawAlertRule {
    #[serde(deserialize_with = "when")]
    when: (When, String),
    #[serde(default, deserialize_with = "opt_positive_duration")]
    over: Option<Duration>,
    #[serde(default, rename = "for", deserialize_with = "opt_duration")]
    for_: Option<Duration>,
    #[serde(default)]
    min_requests: Option<u64>,
    #[serde(default, deserialize_with = "opt_duration")]
    keep_firing_for: Option<Duration>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default, deserialize_with = "alert_name")]
    name: Option<String>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl From<RawAlertRule> for AlertRule {
    fn from(raw: RawAlertRule) -> AlertRule {
        let (when, source) = raw.when;
        let for_ = raw.for_.unwrap_or(MINUTE);
        AlertRule {
            when,
            over: raw.over.unwrap_or(5 * MINUTE),
            for_,
            min_requests: raw.min_requests.unwrap_or(10),
            keep_firing_for: raw.keep_firing_for.unwrap_or(for_.max(MINUTE)),
            severity: raw.severity.unwrap_or_default(),
            name: raw
                .name
                .unwrap_or_else(|| when.default_alert_name().to_string()),
            source,
        }
    }
}

/// Threshold of the default error-rate and timeout-rate alerts: 1 request in 20 failing is
/// clearly wrong for most apps, yet rare enough not to page on a dev server's odd 500.
pub const DEFAULT_ALERT_RATE: f64 = 0.05;

/// Requests the default alerts need in their window: fewer say too little to judge a rate.
pub const DEFAULT_ALERT_MIN_REQUESTS: u64 = 20;

/// The rules `alerting.default_alerts` has unless set: error rate and timeout rate above 5 %
/// over 5 minutes, with at least 20 requests, held for 1 minute (the usual rule defaults).
pub fn default_alerts() -> Vec<AlertRule> {
    [
        When::ErrorRate(DEFAULT_ALERT_RATE),
        When::TimeoutRate(DEFAULT_ALERT_RATE),
    ]
    .into_iter()
    .map(|when| AlertRule {
        min_requests: DEFAULT_ALERT_MIN_REQUESTS,
        ..AlertRule::from(RawAlertRule::new(when))
    })
    .collect()
}

impl RawAlertRule {
    /// A rule with only `when` set, as if written `- when: "..."`.
    fn new(when: When) -> RawAlertRule {
        RawAlertRule {
            when: (when, when.to_string()),
            over: None,
            for_: None,
            min_requests: None,
            keep_firing_for: None,
            severity: None,
            name: None,
        }
    }
}

fn when<'de, D: Deserializer<'de>>(d: D) -> Result<(When, String), D::Error> {
    Parse::new("an alert condition such as \"p95 > 800ms\"", |s| {
        s.parse().map(|w| (w, s.to_string()))
    })
    .one(d)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Parse::new("a duration such as 1m", super::units::parse_duration).optional(d)
}

/// Prometheus requires `alert:` names to be valid metric names, or `redline rules` output
/// would fail `promtool check rules`.
fn alert_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Parse::new("an alert name such as CheckoutSlow", |s| {
        let mut chars = s.chars();
        let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(s.to_string());
        }
        Err(format!(
            "invalid alert name {s:?}; expected letters, digits and _ starting with a letter (e.g. CheckoutSlow)"
        ))
    })
    .optional(d)
}

/// A service level objective for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an SLO such as { objective: 99.5%, latency: 500ms }"
)]
pub struct Slo {
    /// Good-event target as a fraction in (0, 1): `99.5%` is 0.995.
    #[serde(deserialize_with = "objective")]
    pub objective: f64,
    /// Requests slower than this count as bad events too.
    #[serde(default, deserialize_with = "opt_positive_duration")]
    pub latency: Option<Duration>,
}

fn objective<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Parse::new("a percentage such as 99.5%", |s| {
        let x = parse_percent(s)?;
        if x <= 0.0 || x >= 1.0 {
            return Err(format!(
                "SLO objective {:?} must be above 0% and below 100%",
                s.trim()
            ));
        }
        Ok(x)
    })
    .one(d)
}

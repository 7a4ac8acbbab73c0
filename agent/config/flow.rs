//! Critical flows: name, request patterns, ownership, timeout, alerts and SLO.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::access::AccessConfig;
use super::alert::{AlertRule, Slo};
use super::baseline::FlowBaseline;
use super::de::{OneOrMany, Parse, opt_positive_duration};
use crate::flows::Pattern;

/// The flow name given to requests that match no flow.
pub const UNMATCHED_FLOW: &str = "unmatched";

/// One critical flow of the `flows:` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a flow such as { name: checkout, match: \"POST /api/checkout\" }"
)]
pub struct FlowConfig {
    /// `[a-z0-9][a-z0-9_.-]*`, unique, not `unmatched`; becomes the `flow` label.
    #[serde(deserialize_with = "flow_name")]
    pub name: String,
    /// YAML `match`: one pattern or a list, at least one.
    #[serde(rename = "match", deserialize_with = "patterns")]
    pub patterns: Vec<Pattern>,
    /// Team or person; becomes the `owner` alert label.
    #[serde(default)]
    pub owner: Option<String>,
    /// Runbook link; becomes the `runbook_url` annotation.
    #[serde(default)]
    pub runbook: Option<String>,
    /// Upstream timeout for this flow; the global `timeout` when unset.
    #[serde(default, deserialize_with = "opt_positive_duration")]
    pub timeout: Option<Duration>,
    /// Alert rules evaluated on this flow.
    #[serde(default)]
    pub alerts: Vec<AlertRule>,
    /// Optional SLO, which adds burn-rate alerts.
    #[serde(default)]
    pub slo: Option<Slo>,
    /// Most requests of this flow in flight at once; more get 503 `overloaded` (no cap
    /// when unset).
    #[serde(default)]
    pub max_concurrent_requests: Option<NonZeroUsize>,
    /// This flow's adaptive concurrency limit, replacing the global `concurrency:` block.
    #[serde(default)]
    pub concurrency: Option<super::ConcurrencyConfig>,
    /// Requests `redline baseline run --config` sends for this flow; the proxy ignores it.
    #[serde(default)]
    pub baseline: Option<FlowBaseline>,
    /// Who may call this flow (`public`, `authenticated`, roles, or per method); no check
    /// at all when unset.
    #[serde(default)]
    pub access: Option<AccessConfig>,
    /// Write one audit-trail record per request of this flow (denials are always recorded).
    #[serde(default)]
    pub audit: bool,
    /// This flow's retries, replacing the global `retries:` block as a whole (keys it
    /// leaves out take the built-in defaults, not the global block's).
    #[serde(default)]
    pub retries: Option<super::RetryConfig>,
    /// This flow's circuit breaker; none when unset.
    #[serde(default)]
    pub circuit_breaker: Option<super::BreakerConfig>,
    /// What users get when the app fails (stale or static); none when unset.
    #[serde(default)]
    pub fallback: Option<super::FallbackConfig>,
    /// A fault injected into this flow's requests, to rehearse a failure; none when unset.
    #[serde(default)]
    pub fault: Option<super::FaultConfig>,
}

/// Check a flow name; shared with anything that accepts flow names from users.
pub fn validate_flow_name(s: &str) -> Result<(), String> {
    if s == UNMATCHED_FLOW {
        return Err(format!(
            "flow name {s:?} is reserved for requests that match no flow; pick another name"
        ));
    }
    let mut chars = s.chars();
    let lower_or_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let first_ok = chars.next().is_some_and(lower_or_digit);
    if first_ok && chars.all(|c| lower_or_digit(c) || matches!(c, '_' | '.' | '-')) {
        return Ok(());
    }
    Err(format!(
        "invalid flow name {s:?}; expected [a-z0-9][a-z0-9_.-]* (e.g. checkout, search.v2)"
    ))
}

fn flow_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Parse::new("a flow name such as checkout", |s| {
        validate_flow_name(s).map(|()| s.to_string())
    })
    .one(d)
}

fn parse_pattern(s: &str) -> Result<Pattern, String> {
    Pattern::parse(s).map_err(|e| format!("invalid pattern {s:?}: {e}"))
}

fn patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Pattern>, D::Error> {
    d.deserialize_any(OneOrMany {
        item: Parse::new("a pattern such as \"GET /api/orders/{id}\"", parse_pattern),
        noun: "pattern",
    })
}

/// The text form of a pattern, `METHOD /route` or just `/route` for any method.
pub fn pattern_text(p: &Pattern) -> String {
    match &p.method {
        Some(m) => format!("{m} {}", p.route),
        None => p.route.clone(),
    }
}

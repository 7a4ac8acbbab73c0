//! `flows[].circuit_breaker:` (a Redline extension): when a flow's circuit opens, and how long before a probe.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::de::{Parse, positive_duration};
use super::units::parse_percent;
use crate::resilience::BreakerPolicy;
use crate::resilience::breaker::MAX_WINDOW_SECS;

/// `circuit_breaker:`; present means on (an empty mapping takes every default).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { consecutive_failures: 5, error_rate: 50% }"
)]
pub struct BreakerConfig {
    /// Failed requests in a row that open the circuit (default 5; 0 turns this off).
    pub consecutive_failures: u32,
    /// Share of failed requests over `window` that opens it (default 50%; 0% turns it off).
    #[serde(deserialize_with = "percent")]
    pub error_rate: f64,
    /// The window of `error_rate` (default 10s, at most 60s).
    #[serde(deserialize_with = "window")]
    pub window: Duration,
    /// Fewest requests in the window for `error_rate` to count (default 20).
    pub min_requests: u32,
    /// Wait before the first probe, jittered (default 5s); doubles per failed probe.
    #[serde(deserialize_with = "positive_duration")]
    pub open_for: Duration,
    /// Longest wait before a probe (default 60s).
    #[serde(deserialize_with = "positive_duration")]
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            error_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 20,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    /// The policy the proxy runs.
    pub fn policy(&self) -> BreakerPolicy {
        BreakerPolicy {
            consecutive_failures: self.consecutive_failures,
            error_ratio: (self.error_rate > 0.0).then_some(self.error_rate),
            window_secs: u32::try_from(self.window.as_secs()).unwrap_or(1).max(1),
            min_requests: self.min_requests,
            open_for: self.open_for,
            max_open_for: self.max_open_for.max(self.open_for),
        }
    }
}

fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Parse::new("a percentage such as 50%", parse_percent).one(d)
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = super::units::parse_positive_duration(s)?;
    if d < Duration::from_secs(1) || d.as_secs() > MAX_WINDOW_SECS as u64 {
        return Err(format!(
            "window {s:?} must be from 1s to {MAX_WINDOW_SECS}s (counted in whole seconds)"
        ));
    }
    Ok(d)
}

fn window<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Parse::new("a duration from 1s to 60s", parse_window).one(d)
}

//! `concurrency:` (a Redline extension), globally and per flow: the adaptive concurrency limit that finds from latency how many requests the app serves at once.

use std::time::Duration;

use serde::Deserialize;

use super::de::positive_duration;
use crate::resilience::AdaptivePolicy;

/// `concurrency:`. Without `adaptive`, no adaptive limit (the default).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { adaptive: { min: 3, max: 1000 } }"
)]
pub struct ConcurrencyConfig {
    /// The adaptive limit; present means on (an empty mapping takes every default).
    pub adaptive: Option<AdaptiveConfig>,
}

/// `concurrency.adaptive:`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawAdaptive")]
pub struct AdaptiveConfig {
    /// Lowest limit, and the limit while the baseline latency is measured (default 3).
    pub min: u32,
    /// Highest limit (default 1000).
    pub max: u32,
    /// The limit until the first window closes (default 20).
    pub initial: u32,
    /// Latencies gathered before the limit is recomputed (default 1s; 10 requests at least).
    pub window: Duration,
    /// How often the baseline latency is measured again at `min` (default 60s, jittered).
    pub baseline_interval: Duration,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            min: 3,
            max: 1000,
            initial: 20,
            window: Duration::from_secs(1),
            baseline_interval: Duration::from_secs(60),
        }
    }
}

impl AdaptiveConfig {
    /// The policy the proxy runs.
    pub fn policy(&self) -> AdaptivePolicy {
        AdaptivePolicy {
            min: self.min,
            max: self.max,
            initial: self.initial,
            window: self.window,
            baseline_interval: self.baseline_interval,
        }
    }
}

/// `concurrency.adaptive:` as written, checked as a whole by `TryFrom`.
#[derive(Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { min: 3, max: 1000, initial: 20, window: 1s }"
)]
struct RawAdaptive {
    min: u32,
    max: u32,
    initial: u32,
    #[serde(deserialize_with = "positive_duration")]
    window: Duration,
    #[serde(deserialize_with = "positive_duration")]
    baseline_interval: Duration,
}

impl Default for RawAdaptive {
    fn default() -> Self {
        let d = AdaptiveConfig::default();
        RawAdaptive {
            min: d.min,
            max: d.max,
            initial: d.initial,
            window: d.window,
            baseline_interval: d.baseline_interval,
        }
    }
}

impl TryFrom<RawAdaptive> for AdaptiveConfig {
    type Error = String;

    fn try_from(r: RawAdaptive) -> Result<Self, String> {
        if r.min == 0 {
            return Err("concurrency.adaptive.min must be at least 1".into());
        }
        if !(r.min..=r.max).contains(&r.initial) {
            return Err(format!(
                "concurrency.adaptive: need min <= initial <= max, got min {}, initial {}, max {}",
                r.min, r.initial, r.max
            ));
        }
        if r.baseline_interval < r.window {
            return Err(
                "concurrency.adaptive.baseline_interval must be at least one window".into(),
            );
        }
        Ok(AdaptiveConfig {
            min: r.min,
            max: r.max,
            initial: r.initial,
            window: r.window,
            baseline_interval: r.baseline_interval,
        })
    }
}

//! `retries:` (a Redline extension), globally and per flow: how failed tries are repeated, and the budget that keeps retries from multiplying an outage.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::de::{Parse, opt_positive_duration, positive_duration};
use super::units::parse_percent;

/// Most tries of one request, the first included: more would only pile onto a failing app.
pub const MAX_ATTEMPTS: u32 = 10;

/// `retries:`. Off by default (`attempts: 1`): repeating a request is a choice about the
/// app's idempotency and capacity that Redline cannot make for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { attempts: 3, retry_on: [502, 503, 504] }"
)]
pub struct RetryConfig {
    /// Tries in all, the first included (1 = no retries, the default; at most 10).
    #[serde(deserialize_with = "attempts")]
    pub attempts: u32,
    /// Longest wait for one try's response head (default: none, only the flow's timeout,
    /// which bounds all tries together).
    #[serde(deserialize_with = "opt_positive_duration")]
    pub per_try_timeout: Option<Duration>,
    /// Upstream statuses that are tried again, for idempotent methods (default 502, 503, 504).
    #[serde(deserialize_with = "statuses")]
    pub retry_on: Vec<u16>,
    /// The first retry waits a random time up to this (full jitter), doubling per retry (default 25ms).
    #[serde(deserialize_with = "positive_duration")]
    pub backoff_base: Duration,
    /// The longest backoff (default 250ms).
    #[serde(deserialize_with = "positive_duration")]
    pub backoff_max: Duration,
    /// The retry budget.
    pub budget: BudgetConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 1,
            per_try_timeout: None,
            retry_on: vec![502, 503, 504],
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            budget: BudgetConfig::default(),
        }
    }
}

/// `retries.budget:`: per second, at most `min_per_second + ratio × requests` retries.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { ratio: 20%, min_per_second: 10 }"
)]
pub struct BudgetConfig {
    /// Retries per request of the flow (default 20%, linkerd's default).
    #[serde(deserialize_with = "ratio")]
    pub ratio: f64,
    /// Retries per second allowed whatever the traffic (default 10, linkerd's default).
    pub min_per_second: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
        }
    }
}

fn parse_attempts(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_ATTEMPTS).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid attempts {s:?}: tries in all, the first included, from 1 (no retries) to {MAX_ATTEMPTS}"
        )),
    }
}

fn attempts<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Parse::new("a number of tries from 1 to 10", parse_attempts).one(d)
}

fn parse_status(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if (400..600).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid status {s:?} in retry_on: only 4xx and 5xx answers are retried"
        )),
    }
}

fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    Parse::new("a list of statuses such as [502, 503, 504]", parse_status).list(d)
}

fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Parse::new("a percentage such as 20%", parse_percent).one(d)
}

impl RetryConfig {
    /// The policy the proxy runs, or `None` when retries are off (one attempt).
    pub fn policy(&self) -> Option<crate::resilience::RetryPolicy> {
        if self.attempts < 2 {
            return None;
        }
        let mut p = crate::resilience::RetryPolicy::new(
            self.attempts,
            self.per_try_timeout,
            &self.retry_on,
        );
        p.backoff_base = self.backoff_base;
        p.backoff_max = self.backoff_max.max(self.backoff_base);
        p.budget_ratio = self.budget.ratio;
        p.budget_floor = self.budget.min_per_second;
        Some(p)
    }
}

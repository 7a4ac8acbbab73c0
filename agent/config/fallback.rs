//! `flows[].fallback:` (a Redline extension): what a user gets when the app fails, instead of the failure: the last good response (`stale_if_error`) or a static one.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Deserializer};

use super::de::{Parse, opt_positive_duration, positive_duration, size};
use crate::resilience::{FallbackPolicy, StalePolicy, StaticFallback};

/// `fallback:`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { stale_if_error: { max_age: 5m }, static: { status: 503 } }"
)]
pub struct FallbackConfig {
    /// Serve the last good response to the same target (GET and HEAD).
    pub stale_if_error: Option<StaleConfig>,
    /// Serve this response (when there is no stale one).
    #[serde(rename = "static")]
    pub static_response: Option<StaticConfig>,
}

/// `fallback.stale_if_error:`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { max_age: 5m, max_body: 256KiB, max_size: 16MiB }"
)]
pub struct StaleConfig {
    /// Oldest response served (default 5m).
    #[serde(deserialize_with = "positive_duration")]
    pub max_age: Duration,
    /// Largest body kept (default 256KiB); larger responses are passed on, not kept.
    #[serde(deserialize_with = "size")]
    pub max_body: usize,
    /// All responses kept for this flow together (default 16MiB).
    #[serde(deserialize_with = "size")]
    pub max_size: usize,
    /// Keep responses to requests with `Authorization` or `Cookie` too (default false:
    /// RFC 9111 §3.5, a shared cache must not serve one user's answer to another).
    pub allow_credentials: bool,
}

impl Default for StaleConfig {
    fn default() -> Self {
        StaleConfig {
            max_age: Duration::from_secs(300),
            max_body: 256 << 10,
            max_size: 16 << 20,
            allow_credentials: false,
        }
    }
}

/// `fallback.static:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { status: 503, body_file: maintenance.json, retry_after: 30s }"
)]
pub struct StaticConfig {
    /// Status (default 503).
    #[serde(deserialize_with = "status")]
    pub status: u16,
    /// The body, read from this file when the configuration is loaded (default: empty).
    #[serde(deserialize_with = "body_file")]
    pub body_file: Option<Bytes>,
    /// `Content-Type` (default application/json).
    pub content_type: String,
    /// `Retry-After`, in seconds (default: none).
    #[serde(deserialize_with = "opt_positive_duration")]
    pub retry_after: Option<Duration>,
    /// More headers.
    pub headers: BTreeMap<String, String>,
}

impl Default for StaticConfig {
    fn default() -> Self {
        StaticConfig {
            status: 503,
            body_file: None,
            content_type: "application/json".into(),
            retry_after: None,
            headers: BTreeMap::new(),
        }
    }
}

fn parse_status(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if (200..600).contains(&n) => Ok(n),
        _ => Err(format!("invalid status {s:?}: 200 to 599")),
    }
}

fn status<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    Parse::new("a status such as 503", parse_status).one(d)
}

thread_local! {
    /// The directory of the config file being loaded: a relative `body_file` is read from
    /// there, not from wherever Redline was started.
    static BASE: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Run `parse` with relative `body_file`s read from `dir`.
pub(super) fn with_base<T>(dir: Option<&std::path::Path>, parse: impl FnOnce() -> T) -> T {
    BASE.with_borrow_mut(|b| *b = dir.map(std::path::Path::to_path_buf));
    let parsed = parse();
    BASE.with_borrow_mut(|b| *b = None);
    parsed
}

fn read_body(path: &str) -> Result<Bytes, String> {
    let full = BASE.with_borrow(|b| match b {
        Some(dir) => dir.join(path),
        None => std::path::PathBuf::from(path),
    });
    super::read_capped(&full)
        .map(Bytes::from)
        .map_err(|e| format!("cannot read body_file {}: {e}", full.display()))
}

fn body_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
    Parse::new("a file path", read_body).optional(d)
}

impl FallbackConfig {
    /// The policy the proxy runs, or `None` when neither fallback is set.
    pub fn policy(&self) -> Option<FallbackPolicy> {
        let stale = self.stale_if_error.map(|s| StalePolicy {
            max_age_ms: u64::try_from(s.max_age.as_millis()).unwrap_or(u64::MAX),
            max_body: s.max_body,
            max_size: s.max_size,
            allow_credentials: s.allow_credentials,
        });
        let static_response = self.static_response.as_ref().map(StaticConfig::response);
        (stale.is_some() || static_response.is_some()).then_some(FallbackPolicy {
            stale,
            static_response,
        })
    }
}

impl StaticConfig {
    fn response(&self) -> StaticFallback {
        let mut headers = HeaderMap::new();
        // Names and values that are not valid HTTP are left out rather than failing a reload.
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.append(n, v);
            }
        }
        if let Ok(v) = HeaderValue::try_from(self.content_type.as_str()) {
            headers.insert(http::header::CONTENT_TYPE, v);
        }
        if let Some(after) = self.retry_after {
            headers.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(after.as_secs()),
            );
        }
        StaticFallback {
            status: StatusCode::from_u16(self.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            headers,
            body: self.body_file.clone().unwrap_or_default(),
        }
    }
}

/// `flows[].fault:` (a Redline extension): a fault injected into this flow's requests for
/// as long as the configuration says so, to rehearse a failure.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { abort: 503, percent: 10% } or { delay: 2s }"
)]
pub struct FaultConfig {
    /// Wait this long before going upstream (counts toward the flow's timeout).
    #[serde(deserialize_with = "opt_positive_duration")]
    pub delay: Option<Duration>,
    /// Answer with this status instead of calling the app.
    #[serde(deserialize_with = "opt_status")]
    pub abort: Option<u16>,
    /// Share of the flow's requests hit (default 100%).
    #[serde(deserialize_with = "fault_percent")]
    pub percent: f64,
    /// Only requests carrying this header.
    pub header: Option<String>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            delay: None,
            abort: None,
            percent: 1.0,
            header: None,
        }
    }
}

fn opt_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Parse::new("a status such as 503", parse_status).optional(d)
}

fn fault_percent<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Parse::new("a percentage such as 10%", super::units::parse_percent).one(d)
}

impl FaultConfig {
    /// The rule the proxy runs (`None` when it neither delays nor aborts).
    pub fn rule(&self) -> Option<crate::resilience::FaultRule> {
        if self.delay.is_none() && self.abort.is_none() {
            return None;
        }
        Some(crate::resilience::FaultRule {
            id: "config".into(),
            delay: self.delay,
            abort: self.abort,
            ratio: self.percent,
            header: self
                .header
                .as_deref()
                .and_then(|h| HeaderName::try_from(h).ok()),
            expires_ms: None,
        })
    }
}

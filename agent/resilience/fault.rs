//! Fault injection to rehearse failures (Envoy's fault filter, Toxiproxy): a delay or an abort for a share of a flow's requests, optionally only those carrying a header.
//!
//! Rules come from the configuration (`flows[].fault`, for as long as it says so) and
//! from the admin API (`/api/faults`, always with an expiry). The request path reads
//! them without a lock: an `armed` flag first (one load while no fault was ever added),
//! then an `ArcSwap` snapshot of the rules; only the admin API takes the writers' lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderName;

/// One fault rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// `config` for the flow's own, else the id the API gave it.
    pub id: String,
    /// Wait this long before the request goes upstream (it counts toward the timeout).
    pub delay: Option<Duration>,
    /// Answer with this status instead of calling the app.
    pub abort: Option<u16>,
    /// Share of the matching requests hit (0 to 1).
    pub ratio: f64,
    /// Only requests carrying this header (any value).
    pub header: Option<HeaderName>,
    /// When the rule ends (clock milliseconds); `None` for the configuration's.
    pub expires_ms: Option<u64>,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Delay before going upstream.
    pub delay: Option<Duration>,
    /// Status answered instead of the app's.
    pub abort: Option<u16>,
}

impl FaultRule {
    /// This rule's fault for a request with `headers` at `now_ms`, if it hits it.
    pub fn roll(&self, now_ms: u64, headers: &http::HeaderMap) -> Option<Fault> {
        if self.expires_ms.is_some_and(|at| now_ms >= at) {
            return None;
        }
        if self
            .header
            .as_ref()
            .is_some_and(|h| !headers.contains_key(h))
        {
            return None;
        }
        (fastrand::f64() < self.ratio).then_some(Fault {
            delay: self.delay,
            abort: self.abort,
        })
    }
}

/// A flow's faults added through the admin API.
#[derive(Debug, Default)]
pub struct Faults {
    armed: AtomicBool,
    rules: ArcSwap<Vec<FaultRule>>,
    writers: Mutex<()>,
}

/// Ids of API faults, unique across flows for the process's life.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Faults {
    /// Whether any rule was added since the last time all were removed (a cheap check
    /// before reading the clock for [`Faults::pick`]).
    pub fn is_armed(&self) -> bool {
        self.armed.load(Relaxed)
    }

    /// The fault for a request, if an active rule hits it.
    pub fn pick(&self, now_ms: u64, headers: &http::HeaderMap) -> Option<Fault> {
        if !self.armed.load(Relaxed) {
            return None;
        }
        self.rules
            .load()
            .iter()
            .find_map(|r| r.roll(now_ms, headers))
    }

    /// Add `rule` (its id is assigned here, `f1`, `f2`, …); returns it.
    pub fn add(&self, mut rule: FaultRule) -> FaultRule {
        let _w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        rule.id = format!("f{}", NEXT_ID.fetch_add(1, Relaxed));
        let mut rules = Vec::clone(&self.rules.load());
        rules.push(rule.clone());
        self.rules.store(Arc::new(rules));
        self.armed.store(true, Relaxed);
        rule
    }

    /// Remove the rule `id`; whether it was there.
    pub fn remove(&self, id: &str) -> bool {
        let _w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let mut rules = Vec::clone(&self.rules.load());
        let before = rules.len();
        rules.retain(|r| r.id != id);
        let removed = rules.len() != before;
        self.armed.store(!rules.is_empty(), Relaxed);
        self.rules.store(Arc::new(rules));
        removed
    }

    /// The rules still active at `now_ms`; expired ones are dropped.
    pub fn active(&self, now_ms: u64) -> Vec<FaultRule> {
        let _w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let mut rules = Vec::clone(&self.rules.load());
        rules.retain(|r| r.expires_ms.is_none_or(|at| now_ms < at));
        self.armed.store(!rules.is_empty(), Relaxed);
        self.rules.store(Arc::new(rules.clone()));
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ratio: f64, header: Option<&'static str>, expires: Option<u64>) -> FaultRule {
        FaultRule {
            id: String::new(),
            delay: None,
            abort: Some(503),
            ratio,
            header: header.map(HeaderName::from_static),
            expires_ms: expires,
        }
    }

    #[test]
    fn rules_hit_their_share_only_with_their_header_and_until_they_expire() {
        let f = Faults::default();
        let none = http::HeaderMap::new();
        assert_eq!(f.pick(0, &none), None, "nothing armed");
        let added = f.add(rule(1.0, Some("x-fault"), Some(1_000)));
        assert!(added.id.starts_with('f'));
        assert_eq!(f.pick(0, &none), None, "no header");
        let mut with = http::HeaderMap::new();
        with.insert("x-fault", http::HeaderValue::from_static("1"));
        assert_eq!(f.pick(0, &with).and_then(|x| x.abort), Some(503));
        assert_eq!(f.pick(1_000, &with), None, "expired");
        assert!(f.active(1_000).is_empty());
        let half = f.add(rule(0.5, None, None));
        let hits = (0..2000).filter(|_| f.pick(0, &none).is_some()).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert!(f.remove(&half.id) && !f.remove(&half.id));
        assert_eq!(f.pick(0, &none), None);
    }
}

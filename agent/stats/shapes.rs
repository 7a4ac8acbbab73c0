//! A bounded reservoir of request shapes per flow, for `redline baseline record`.
//!
//! Off unless `baseline.record.enabled`; then every request of a flow is counted and a
//! uniform sample of `per_flow` shapes is kept (Algorithm R). Lock-free: a counter, a random
//! draw and, only for the few requests kept, one `ArcSwapOption` store; the shape is built
//! (and allocated) only when it will be kept, so the cost per request is one atomic add and
//! one thread-local random number.
//!
//! The caller builds shapes already redacted; this module only stores them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use http::HeaderName;

/// One request as a workload can replay it: no secrets, no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// HTTP method.
    pub method: String,
    /// Path and query, secret query values already replaced.
    pub path: String,
    /// The kept headers, in the order of the configured list.
    pub headers: Vec<(String, String)>,
}

/// A flow's reservoir.
#[derive(Debug)]
pub struct Shapes {
    seen: AtomicU64,
    slots: Box<[ArcSwapOption<Shape>]>,
    headers: Box<[HeaderName]>,
}

impl Shapes {
    /// A reservoir of `capacity` shapes (at least 1) keeping `headers`.
    pub fn new(capacity: usize, headers: Vec<HeaderName>) -> Shapes {
        Shapes {
            seen: AtomicU64::new(0),
            slots: (0..capacity.max(1))
                .map(|_| ArcSwapOption::empty())
                .collect(),
            headers: headers.into(),
        }
    }

    /// The headers a shape may keep.
    pub fn headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// Count one request and keep its shape with probability `capacity / seen`; `build`
    /// runs only when it is kept.
    pub fn offer(&self, build: impl FnOnce(&[HeaderName]) -> Shape) {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let k = self.slots.len() as u64;
        let slot = if n < k { n } else { fastrand::u64(0..=n) };
        if slot < k {
            self.slots[slot as usize].store(Some(Arc::new(build(&self.headers))));
        }
    }

    /// Requests counted so far.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// The shapes kept now.
    pub fn sample(&self) -> Vec<Arc<Shape>> {
        self.slots.iter().filter_map(|s| s.load_full()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(i: u64) -> Shape {
        Shape {
            method: "GET".into(),
            path: format!("/{i}"),
            headers: vec![],
        }
    }

    #[test]
    fn keeps_at_most_capacity_and_builds_only_what_it_keeps() {
        let shapes = Shapes::new(8, vec![]);
        let mut built = 0;
        for i in 0..10_000 {
            shapes.offer(|_| {
                built += 1;
                shape(i)
            });
        }
        assert_eq!(shapes.seen(), 10_000);
        assert_eq!(shapes.sample().len(), 8);
        // Expected builds: 8 + sum over n of 8/n ≈ 8 (1 + ln(10000/8)) ≈ 65.
        assert!(built < 200, "built {built} shapes for 10,000 requests");
        let late = shapes
            .sample()
            .iter()
            .filter(|s| s.path[1..].parse::<u64>().unwrap() >= 5_000)
            .count();
        assert!(late > 0, "later requests get their chance too");
    }
}

//! A bounded reservoir of request shapes per flow, for `redline baseline record`.
//!
//! Off unless `baseline.record.enabled`; then every request of a flow is counted and a
//! uniform sample of `per_flow` shapes is kept (Algorithm R). Lock-free: a counter, a random
//! draw and, only for the few requests kept, one `ArcSwapOption` store; the shape is built
//! (and allocated) only when it will be kept, so the cost per request is one atomic add and
//! one thread-local random number.
//!
//! The caller builds shapes already redacted; this module stores them, and redacts the small
//! bodies kept with them ([`recordable_body`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use http::HeaderName;

use crate::redact::{REDACTED, Redactor};

/// One request as a workload can replay it: no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// HTTP method.
    pub method: String,
    /// Path and query, secret query values already replaced.
    pub path: String,
    /// The kept headers, in the order of the configured list.
    pub headers: Vec<(String, String)>,
    /// The request body, redacted, once it has passed whole (see [`recordable_body`]).
    pub body: OnceLock<String>,
}

/// A flow's reservoir.
#[derive(Debug)]
pub struct Shapes {
    seen: AtomicU64,
    slots: Box<[ArcSwapOption<Shape>]>,
    headers: Box<[HeaderName]>,
    body_limit: usize,
}

impl Shapes {
    /// A reservoir of `capacity` shapes (at least 1) keeping `headers` and bodies of at most
    /// `body_limit` bytes (0: none).
    pub fn new(capacity: usize, headers: Vec<HeaderName>, body_limit: usize) -> Shapes {
        Shapes {
            seen: AtomicU64::new(0),
            slots: (0..capacity.max(1))
                .map(|_| ArcSwapOption::empty())
                .collect(),
            headers: headers.into(),
            body_limit,
        }
    }

    /// The largest body kept with a shape (0: none).
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The headers a shape may keep.
    pub fn headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// Count one request and keep its shape with probability `capacity / seen`; `build`
    /// runs only when it is kept, and the kept shape is returned so its body can follow.
    pub fn offer(&self, build: impl FnOnce(&[HeaderName]) -> Shape) -> Option<Arc<Shape>> {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let k = self.slots.len() as u64;
        let slot = if n < k { n } else { fastrand::u64(0..=n) };
        if slot >= k {
            return None;
        }
        let shape = Arc::new(build(&self.headers));
        self.slots[slot as usize].store(Some(shape.clone()));
        Some(shape)
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

/// The kinds of body a recording keeps: the ones whose secrets can be found by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` or `application/*+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

impl BodyKind {
    /// The kind a `Content-Type` names, if a recording keeps it.
    pub fn of(content_type: &str) -> Option<BodyKind> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let essence = essence.to_ascii_lowercase();
        if essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
        {
            Some(BodyKind::Json)
        } else if essence == "application/x-www-form-urlencoded" {
            Some(BodyKind::Form)
        } else {
            None
        }
    }
}

/// `body` as a recording keeps it: UTF-8, the values of secret names (`redact.query_params`)
/// replaced by `REDACTED`, at any depth of a JSON document; `None` when it is not UTF-8 or
/// not the JSON it claims to be (it could not be redacted, so it is not kept).
pub fn recordable_body(kind: BodyKind, body: &[u8], redactor: &Redactor) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    match kind {
        BodyKind::Form => Some(redactor.query(text).into_owned()),
        BodyKind::Json => {
            let mut doc: serde_json::Value = serde_json::from_str(text).ok()?;
            redact_json(&mut doc, redactor);
            serde_json::to_string(&doc).ok()
        }
    }
}

fn redact_json(value: &mut serde_json::Value, redactor: &Redactor) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if redactor.is_secret_param(key) {
                    *value = serde_json::Value::String(REDACTED.into());
                } else {
                    redact_json(value, redactor);
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| redact_json(v, redactor));
        }
        _ => {}
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
            body: OnceLock::new(),
        }
    }

    #[test]
    fn keeps_at_most_capacity_and_builds_only_what_it_keeps() {
        let shapes = Shapes::new(8, vec![], 0);
        let mut built = 0;
        for i in 0..10_000 {
            let _ = shapes.offer(|_| {
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

    #[test]
    fn bodies_keep_no_secret_field() {
        let redactor = Redactor::new(&["token".into(), "password".into()], &[]);
        let json = br#"{"q":"shoes","auth":{"Password":"hunter2"},"items":[{"token":"t"}]}"#;
        let kept = recordable_body(BodyKind::Json, json, &redactor).unwrap();
        assert_eq!(
            kept,
            r#"{"q":"shoes","auth":{"Password":"REDACTED"},"items":[{"token":"REDACTED"}]}"#
        );
        let form = recordable_body(BodyKind::Form, b"a=1&token=x", &redactor).unwrap();
        assert_eq!(form, "a=1&token=REDACTED");
        assert_eq!(
            recordable_body(BodyKind::Json, b"{not json", &redactor),
            None
        );
        assert_eq!(
            BodyKind::of("application/merge-patch+json; charset=utf-8"),
            Some(BodyKind::Json)
        );
        assert_eq!(BodyKind::of("text/plain"), None);
    }
}

//! A request's shape for `redline baseline record`: offered to its flow's reservoir at start, its body kept when it has passed.

use std::sync::Arc;

use crate::redact::Redactor;
use crate::stats::shapes::{BodyKind, Shape, Shapes, recordable_body};

/// A kept shape whose body is still on its way.
pub struct PendingBody {
    shape: Arc<Shape>,
    kind: BodyKind,
    limit: usize,
}

impl PendingBody {
    /// The largest body kept.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Keep `body` with the shape if it is small enough and can be redacted.
    pub fn keep(self, body: &[u8], redactor: &Redactor) {
        if body.is_empty() || body.len() > self.limit {
            return;
        }
        if let Some(text) = recordable_body(self.kind, body, redactor) {
            let _ = self.shape.body.set(text);
        }
    }
}

/// Offer the request's shape to its flow's reservoir: method, path with secret query values
/// replaced, and the configured headers (never credentials, see `attach_shapes`). When it is
/// kept and its body may be, the body is awaited: only idempotent methods (a POST or PATCH
/// body is the business data itself, and often a payment or a password), only JSON and form
/// bodies (their secrets can be found by name), only up to `body_limit` bytes.
#[cold]
pub fn record(
    shapes: &Shapes,
    parts: &http::request::Parts,
    redactor: &Redactor,
) -> Option<Box<PendingBody>> {
    let shape = shapes.offer(|names| Shape {
        method: parts.method.as_str().to_string(),
        path: redactor
            .path_and_query(parts.uri.path(), parts.uri.query())
            .into_owned(),
        headers: names
            .iter()
            .filter_map(|n| {
                let v = parts.headers.get(n)?.to_str().ok()?;
                Some((n.as_str().to_string(), v.to_string()))
            })
            .collect(),
        body: Default::default(),
    })?;
    let limit = shapes.body_limit();
    if limit == 0 || !parts.method.is_idempotent() {
        return None;
    }
    let kind = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(BodyKind::of)?;
    Some(Box::new(PendingBody { shape, kind, limit }))
}

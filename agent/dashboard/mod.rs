//! The live dashboard on the admin port: one self-contained page, and the 5 s series behind its charts.
//!
//! The page (HTML, CSS and JavaScript) is compiled into the binary and served as one
//! response, so it works offline and behind any firewall. Its content security policy
//! only lets it talk to the admin listener it came from, which also proves it loads
//! nothing from elsewhere. It polls the admin JSON API; nothing here is on the request path.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::http_json::{error, json_response};
use crate::state::{FlowState, Shared};
use crate::stats::window::SLOT_MS;
use crate::stats::{FlowWindow, SlotSummary};

/// Points in a series: 15 minutes of 5 s slots.
pub const SERIES_POINTS: usize = 180;

const INDEX: &str = include_str!("index.html");
const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");

/// The page with its stylesheet and script inlined, assembled once.
static PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    let html = INDEX
        .replacen("/*@STYLE@*/", STYLE, 1)
        .replacen("/*@SCRIPT@*/", SCRIPT, 1);
    Bytes::from(html)
});

/// Inline code is ours and compiled in; everything else, above all any other origin, is refused.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `GET /`: the dashboard page.
pub fn page() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(PAGE.clone()));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new binary may bring a new page; revalidate instead of showing a stale one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Whether `path` is `/api/flows/{name}/series`.
pub fn is_series_path(path: &str) -> bool {
    series_flow_name(path).is_some()
}

fn series_flow_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/api/flows/")?.strip_suffix("/series")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// `GET /api/flows/{name}/series`: the flow's last 15 minutes in 5 s points, or 404.
pub fn series(shared: &Shared, path: &str) -> Response<Full<Bytes>> {
    let Some(name) = series_flow_name(path) else {
        return error(StatusCode::NOT_FOUND, "no such admin endpoint");
    };
    match current_flow(shared, name) {
        Some(state) => json_response(
            StatusCode::OK,
            &series_json(&state.name, &state.window, shared.clock.now_ms()),
        ),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no flow named {name:?} in the running configuration (see GET /api/flows)"),
        ),
    }
}

/// Only flows of the running configuration: a flow removed by a reload has no page to show.
fn current_flow(shared: &Shared, name: &str) -> Option<Arc<FlowState>> {
    let runtime = shared.runtime.load();
    runtime
        .flows
        .iter()
        .map(|f| &f.state)
        .chain(std::iter::once(&runtime.unmatched.state))
        .find(|s| &*s.name == name)
        .cloned()
}

/// The series document of one flow at `now_ms`: exactly [`SERIES_POINTS`] points, oldest first.
///
/// Slots the window does not hold (before the flow existed, or idle) are zero-request
/// points, so a chart's time axis never has holes.
pub fn series_json(name: &str, window: &FlowWindow, now_ms: u64) -> Value {
    let slots = window.slot_series(now_ms, SERIES_POINTS);
    let first_start = (now_ms / SLOT_MS).saturating_sub(SERIES_POINTS as u64 - 1) * SLOT_MS;
    let missing = SERIES_POINTS.saturating_sub(slots.len());
    let padding = (0..missing as u64).map(|i| SlotSummary {
        start_ms: first_start + i * SLOT_MS,
        ..SlotSummary::default()
    });
    let points: Vec<Value> = padding
        .chain(slots)
        .map(|s| point_json(&s, now_ms))
        .collect();
    json!({
        "flow": name,
        "resolution_s": SLOT_MS / 1000,
        "points": points,
    })
}

fn point_json(slot: &SlotSummary, now_ms: u64) -> Value {
    // The current slot is partial: divide by the time it has run, not by 5 s, so the
    // latest point does not dip. At least 1 s, as in `WindowSummary::rps`.
    let elapsed_ms = now_ms.saturating_sub(slot.start_ms).clamp(1_000, SLOT_MS);
    let rate = |n: u64| {
        if slot.requests == 0 {
            0.0
        } else {
            n as f64 / slot.requests as f64
        }
    };
    json!({
        "t": slot.start_ms,
        "requests": slot.requests,
        "rps": round3(slot.requests as f64 * 1000.0 / elapsed_ms as f64),
        "error_rate": rate(slot.errors),
        "timeout_rate": rate(slot.timeouts),
        "p95_ms": slot.p95.map(|d| round3(d.as_secs_f64() * 1e3)),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::Sample;

    /// A multiple of 5 s.
    const T0: u64 = 1_700_000_000_000;

    fn sample(ms: u64, error: bool, timeout: bool) -> Sample {
        Sample {
            latency: Duration::from_millis(ms),
            error,
            timeout,
            denied: false,
        }
    }

    fn window() -> FlowWindow {
        FlowWindow::new(crate::state::MIN_WINDOW, T0)
    }

    #[test]
    fn series_has_180_points_oldest_first_with_zero_gaps() {
        let w = window();
        let now = T0 + 2_000_000 + 2_500;
        w.record(now - 10_000, sample(100, true, false));
        w.record(now - 10_000, sample(100, false, false));
        w.record(now, sample(40, false, true));
        let doc = series_json("checkout", &w, now);
        assert_eq!(doc["flow"], "checkout");
        assert_eq!(doc["resolution_s"], 5);
        let points = doc["points"].as_array().cloned().unwrap_or_default();
        assert_eq!(points.len(), SERIES_POINTS);
        let ts: Vec<u64> = points.iter().filter_map(|p| p["t"].as_u64()).collect();
        assert!(ts.windows(2).all(|p| p[1] == p[0] + SLOT_MS), "5 s apart");
        assert_eq!(ts[179], (now / SLOT_MS) * SLOT_MS);
        let two_ago = &points[177];
        assert_eq!(two_ago["requests"], 2);
        assert_eq!(two_ago["rps"], 0.4);
        assert_eq!(two_ago["error_rate"], 0.5);
        assert_eq!(two_ago["timeout_rate"], 0.0);
        assert!((two_ago["p95_ms"].as_f64().unwrap_or(0.0) - 100.0).abs() < 2.0);
        let gap = &points[178];
        assert_eq!(
            (gap["requests"].as_u64(), gap["rps"].as_f64()),
            (Some(0), Some(0.0))
        );
        assert!(gap["p95_ms"].is_null());
        // The current slot has run 2.5 s: one request is 0.4 req/s, not 0.2.
        assert_eq!(points[179]["rps"], 0.4);
        assert_eq!(points[179]["timeout_rate"], 1.0);
    }

    #[test]
    fn series_reaches_back_fifteen_minutes() {
        let w = window();
        let now = T0 + 3_600_000;
        let oldest = (now / SLOT_MS - 179) * SLOT_MS;
        w.record(oldest + 1, sample(5, false, false));
        w.record(oldest - SLOT_MS, sample(5, false, false));
        let doc = series_json("f", &w, now);
        assert_eq!(doc["points"][0]["t"], oldest);
        assert_eq!(doc["points"][0]["requests"], 1);
        let total: u64 = (0..SERIES_POINTS)
            .filter_map(|i| doc["points"][i]["requests"].as_u64())
            .sum();
        assert_eq!(total, 1, "the slot before the 15 minutes is left out");
    }

    #[test]
    fn per_flow_window_memory_stays_small() {
        let bytes = window().memory_bytes();
        // 184 slots × (444 histogram buckets × 4 B + 16 B of counters).
        assert!(bytes < 330 * 1024, "{bytes}");
    }

    #[test]
    fn series_paths() {
        assert_eq!(
            series_flow_name("/api/flows/checkout/series"),
            Some("checkout")
        );
        assert_eq!(series_flow_name("/api/flows//series"), None);
        assert_eq!(series_flow_name("/api/flows/a/b/series"), None);
        assert_eq!(series_flow_name("/api/flows/checkout"), None);
    }

    #[test]
    fn page_is_self_contained() {
        let html = std::str::from_utf8(&PAGE).unwrap_or_default().to_string();
        assert!(!html.contains("/*@STYLE@*/") && !html.contains("/*@SCRIPT@*/"));
        for external in [
            "src=\"http",
            "href=\"http",
            "url(",
            "@import",
            "<script src",
            "rel=\"stylesheet",
        ] {
            assert!(!html.contains(external), "page loads {external}");
        }
    }
}

//! The dashboard: the series API over HTTP, and the page itself in headless Chromium (rows, charts, alerts, silences, no console errors, screenshots).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fantoccini::{Client, ClientBuilder, Locator};
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "dash-t0ken";

/// `checkout` fails half the time and alerts within seconds; `catalog` is healthy; half of
/// `search` times out, under a timeout alert. Trace ids link to a (fictitious) Jaeger.
const CONFIG: &str = r#"
flows:
  - name: checkout
    match: "GET /status/{code}"
    owner: payments-team
    alerts:
      - { when: "error_rate > 5%", over: 30s, for: 1s, min_requests: 5 }
  - name: catalog
    match: "GET /catalog/{rest...}"
    owner: storefront-team
    concurrency: { adaptive: { initial: 30 } }
    alerts:
      - { when: "p95 > 800ms" }
  - name: search
    match: "GET /search/{rest...}"
    timeout: 100ms
    alerts:
      - { when: "timeout_rate > 10%", over: 30s, for: 1s, min_requests: 3 }
alerting:
  eval_interval: 1s
telemetry:
  trace_url_template: https://jaeger.example/trace/{trace_id}
"#;

/// Sends ~20 requests/s until dropped: checkout (half 500s), catalog, search (half time out)
/// and unmatched paths.
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(rl: &Redline) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let base = rl.url("");
        tokio::spawn(async move {
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let path = match i % 6 {
                    0 => "/status/500".to_string(),
                    1 => "/status/200".to_string(),
                    2 => format!("/catalog/items/{i}"),
                    3 => "/search/q?sleep_ms=400".to_string(),
                    4 => "/search/q".to_string(),
                    _ => format!("/users/{i}/orders"),
                };
                let _ = client()
                    .request(
                        Request::get(format!("{base}{path}"))
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                    .await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        Traffic(stop)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_api_serves_fifteen_minutes_of_five_second_points() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, CONFIG));
    for _ in 0..3 {
        assert_eq!(get(&rl.url("/status/500")).await.0, 500);
        assert_eq!(get(&rl.url("/status/200")).await.0, 200);
    }
    // A request is recorded as its response ends, which the client may see first.
    let doc = eventually(Duration::from_secs(10), "six requests recorded", || async {
        let doc = rl.json("/api/flows/checkout/series").await;
        let seen: u64 = doc["points"]
            .as_array()?
            .iter()
            .filter_map(|p| p["requests"].as_u64())
            .sum();
        (seen == 6).then_some(doc)
    })
    .await;
    assert_eq!(doc["flow"], "checkout");
    assert_eq!(doc["resolution_s"], 5);
    let points = doc["points"].as_array().expect("points");
    assert_eq!(points.len(), 180);
    let ts: Vec<u64> = points.iter().map(|p| p["t"].as_u64().expect("t")).collect();
    assert!(
        ts.windows(2).all(|w| w[1] - w[0] == 5_000),
        "oldest first, 5 s apart"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now_ms - ts[179] < 10_000 && ts[179] % 5_000 == 0,
        "last point is now"
    );
    let requests: u64 = points.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, 6);
    let busy: Vec<&Value> = points.iter().filter(|p| p["requests"] != 0).collect();
    for p in &busy {
        assert!(p["rps"].as_f64().unwrap() > 0.0);
        assert!(p["p95_ms"].as_f64().unwrap() >= 0.0);
    }
    let errors: f64 = busy
        .iter()
        .map(|p| p["error_rate"].as_f64().unwrap() * p["requests"].as_f64().unwrap())
        .sum();
    assert!((errors - 3.0).abs() < 1e-9, "3 of 6 failed: {errors}");
    let idle = &points[0];
    assert_eq!(
        (idle["requests"].as_u64(), idle["rps"].as_f64()),
        (Some(0), Some(0.0))
    );
    assert!(idle["p95_ms"].is_null());

    let unmatched = rl.json("/api/flows/unmatched/series").await;
    assert_eq!(unmatched["points"].as_array().map(Vec::len), Some(180));
    let (status, _, body) = get(&rl.admin_url("/api/flows/nope/series")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nope"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_page_is_one_self_contained_response() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, CONFIG));
    let (status, headers, body) = get(&rl.admin_url("/")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(body.contains("<title>Redline") && body.contains("prefers-color-scheme"));
    assert!(body.contains("/api/flows") && body.contains("/api/silences"));
    assert!(!body.contains("/*@SCRIPT@*/") && !body.contains("<script src"));
    let head = send(
        Request::head(rl.admin_url("/"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(head.0, 200);
    let post = send(
        Request::post(rl.admin_url("/"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(post.0, 405);
}

/// A chromedriver process, killed on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_browser() -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium chromium-driver)");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile::tempdir().expect("profile dir"),
    };
    let status_url = format!("{}/status", driver.url);
    eventually(Duration::from_secs(20), "chromedriver ready", || async {
        let resp = client()
            .request(
                Request::get(&status_url)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .ok()?;
        resp.status().is_success().then_some(())
    })
    .await;
    let profile = format!("--user-data-dir={}", driver._profile.path().display());
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000", profile,
            ],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let caps = caps.as_object().cloned().expect("capabilities object");
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("WebDriver session");
    (driver, browser)
}

/// Run `script` in the page (its body, with `return`), as JSON.
pub(crate) async fn js(browser: &Client, script: &str) -> Value {
    browser
        .execute(script, vec![])
        .await
        .expect("execute script")
}

/// The browser's console log since the last call (chromedriver's log endpoint).
pub(crate) async fn console_log(driver: &Driver, browser: &Client) -> Vec<Value> {
    let session = browser.session_id().await.unwrap().expect("session id");
    let (status, _, body) = send(
        Request::post(format!("{}/session/{session}/se/log", driver.url))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"type":"browser"}"#)))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["value"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn severe(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn page_errors(browser: &Client) -> Vec<Value> {
    js(
        browser,
        "return window.__redlineErrors || ['collector missing'];",
    )
    .await
    .as_array()
    .cloned()
    .unwrap_or_default()
}

pub(crate) async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(
        png.len() > 10_000,
        "a blank screenshot is tiny: {} bytes",
        png.len()
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.parent().unwrap_or(&dir).join(name);
    std::fs::write(&path, png).expect("write screenshot");
    path
}

/// What the page shows, read in one go so the assertions see one consistent render.
const PROBE: &str = r#"
const text = (sel) => { const el = document.querySelector(sel); return el ? el.textContent : null; };
const row = (name) => document.querySelector('#flows tr[data-flow="' + name + '"]');
const line = document.querySelector('#flow-checkout svg[data-series="rps"] path.line');
const alert = document.querySelector('#alerts tr[data-alertname="FlowErrorRate"][data-flow="checkout"]');
const svg = (flow, kind) => document.querySelector('#flow-' + flow + ' svg[data-series="' + kind + '"]');
const timeouts = svg('search', 'timeout_rate');
const limit = timeouts && timeouts.querySelector('line.threshold[data-value]');
const limitLabel = timeouts && timeouts.querySelector('text.threshold-label');
const rps = svg('checkout', 'rps');
const trace = document.querySelector('#alerts tr[data-flow="checkout"] a.trace');
const limitBadge = (name) => { const b = row(name) && row(name).querySelector('.badge.limit'); return b ? b.textContent : null; };
return {
  rounds: Number(document.body.dataset.rounds || 0),
  catalog_limit: limitBadge('catalog'),
  checkout_limit: limitBadge('checkout'),
  status: text('#status'),
  checkout: row('checkout') ? row('checkout').textContent : null,
  checkout_state: row('checkout') ? row('checkout').dataset.state : null,
  catalog: row('catalog') ? row('catalog').textContent : null,
  unmatched: row('unmatched') ? row('unmatched').textContent : null,
  rps_points: Number((document.querySelector('#flow-checkout svg[data-series="rps"]') || {dataset: {}}).dataset.points || 0),
  error_points: Number((document.querySelector('#flow-checkout svg[data-series="error_rate"]') || {dataset: {}}).dataset.points || 0),
  rps_path: line ? line.getAttribute('d') : '',
  chart_label: (document.querySelector('#flow-checkout svg[data-series="p95_ms"]') || {getAttribute: () => ''}).getAttribute('aria-label'),
  alert: alert ? alert.textContent : null,
  alert_state: alert ? alert.dataset.state : null,
  alert_silenced: Boolean(alert && alert.querySelector('.badge.silenced')),
  routes: text('#routes'),
  alerts_box: text('#alerts'),
  notice: document.getElementById('notice').hidden ? '' : text('#notice'),
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  background: getComputedStyle(document.body).backgroundColor,
  timeout_points: timeouts ? Number(timeouts.dataset.points) : null,
  timeout_limit: limit ? { value: Number(limit.dataset.value), y: Number(limit.getAttribute('y1')) } : null,
  timeout_label: limitLabel ? { text: limitLabel.textContent, y: Number(limitLabel.getAttribute('y')) } : null,
  checkout_timeout_chart: Boolean(svg('checkout', 'timeout_rate')),
  axis: rps ? {
    start: Number(rps.dataset.start),
    span_s: Number(rps.dataset.spanS),
    left: rps.querySelector('text.axis[text-anchor="start"]').textContent,
  } : null,
  trace: trace ? { href: trace.href, id: trace.dataset.traceId, text: trace.textContent } : null,
};
"#;

async fn probe(browser: &Client) -> Value {
    js(browser, PROBE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let (driver, browser) = start_browser().await;

    // An idle Redline: every section says what to do instead of showing nothing.
    let up = app().await;
    let idle = Redline::start(&config_for(up, CONFIG));
    browser
        .goto(&idle.admin_url("/"))
        .await
        .expect("open idle dashboard");
    let seen = eventually(
        Duration::from_secs(20),
        "idle dashboard rendered",
        || async {
            let p = probe(&browser).await;
            (p["rounds"].as_u64() >= Some(1) && p["checkout"].is_string()).then_some(p)
        },
    )
    .await;
    let notice = seen["notice"].as_str().unwrap();
    assert!(
        notice.contains("No traffic yet: send requests to"),
        "{notice}"
    );
    assert!(
        seen["routes"]
            .as_str()
            .unwrap()
            .contains("No unmatched traffic yet"),
        "{seen}"
    );
    assert!(
        seen["alerts_box"].as_str().unwrap().contains("No alerts"),
        "{seen}"
    );
    assert!(
        seen["checkout"].as_str().unwrap().contains("0 req/s"),
        "{seen}"
    );
    // The adaptive concurrency limit of the one flow that has it, as /api/flows gives it.
    assert_eq!(seen["catalog_limit"], "LIMIT 30", "{seen}");
    assert_eq!(seen["checkout_limit"], Value::Null, "{seen}");
    // No data at all: the axis spans the whole 15 minutes (179 steps of 5 s).
    assert_eq!(seen["axis"]["span_s"], 895, "{seen}");
    assert_eq!(seen["axis"]["left"], "−15 min", "{seen}");
    assert!(page_errors(&browser).await.is_empty());
    let log = console_log(&driver, &browser).await;
    assert!(severe(&log).is_empty(), "console errors: {log:?}");
    // Leave before stopping it, or the page's next poll logs a refused connection.
    browser
        .goto("about:blank")
        .await
        .expect("leave idle dashboard");
    drop(idle);
    console_log(&driver, &browser).await;

    // A busy Redline with a firing alert and a token for silences.
    let rl = Redline::start_with(
        &config_for(up, CONFIG),
        &[],
        &[("REDLINE_ADMIN_TOKEN", TOKEN)],
    );
    let _traffic = Traffic::start(&rl);
    eventually(Duration::from_secs(30), "FlowErrorRate firing", || async {
        let alerts = rl.json("/api/alerts").await.to_string();
        (alerts.contains("FlowErrorRate") && alerts.contains("\"firing\"")).then_some(())
    })
    .await;
    browser
        .goto(&rl.admin_url("/"))
        .await
        .expect("open dashboard");
    let seen = eventually(
        Duration::from_secs(30),
        "rows, charts and the alert",
        || async {
            let p = probe(&browser).await;
            let ready = p["checkout"].is_string()
                && p["catalog"].is_string()
                && p["rps_points"].as_u64() >= Some(2)
                && p["error_points"].as_u64() >= Some(2)
                && p["alert_state"] == "firing"
                && p["timeout_points"].as_u64() >= Some(2)
                && p["trace"].is_object()
                && p["routes"]
                    .as_str()
                    .is_some_and(|r| r.contains("/users/{id}/orders"));
            ready.then_some(p)
        },
    )
    .await;

    let checkout = seen["checkout"].as_str().unwrap();
    for part in ["checkout", "payments-team", "FIRING", "req/s", "%", "ms"] {
        assert!(
            checkout.contains(part),
            "flow row lacks {part:?}: {checkout}"
        );
    }
    assert_eq!(seen["checkout_state"], "firing");
    let catalog = seen["catalog"].as_str().unwrap();
    assert!(
        catalog.contains("storefront-team") && catalog.contains("OK"),
        "{catalog}"
    );
    assert!(seen["unmatched"].as_str().unwrap().contains("unmatched"));
    let path = seen["rps_path"].as_str().unwrap();
    assert!(
        path.starts_with('M') && path.contains('L'),
        "chart line: {path}"
    );
    assert!(
        seen["chart_label"]
            .as_str()
            .unwrap()
            .contains("95th percentile latency"),
        "{seen}"
    );
    let alert = seen["alert"].as_str().unwrap();
    for part in [
        "FIRING",
        "FlowErrorRate",
        "checkout",
        "error rate",
        "Silence",
    ] {
        assert!(alert.contains(part), "alert row lacks {part:?}: {alert}");
    }
    assert!(
        seen["status"].as_str().unwrap().starts_with("Live"),
        "{seen}"
    );
    timeout_chart_and_trace_link(&seen);
    axis_starts_at_the_first_data(&rl, &seen).await;
    assert_eq!(seen["overflow"], 0, "no horizontal scrolling on a laptop");
    assert!(page_errors(&browser).await.is_empty());
    let log = console_log(&driver, &browser).await;
    assert!(severe(&log).is_empty(), "console errors: {log:?}");
    let shot = screenshot(&browser, "dashboard.png").await;
    eprintln!("dashboard screenshot: {}", shot.display());

    silence_from_the_page(&driver, &browser, &rl).await;
    phone_and_dark(&driver, &browser).await;

    // Notifications link to `/#flow=NAME`: that flow is highlighted.
    browser
        .goto(&rl.admin_url("/#flow=catalog"))
        .await
        .expect("open deep link");
    eventually(Duration::from_secs(10), "catalog highlighted", || async {
        let script = "return Boolean(document.querySelector('#flow-catalog.highlight') \
                      && document.querySelector('#flows tr.highlight[data-flow=\"catalog\"]'));";
        (js(&browser, script).await == true).then_some(())
    })
    .await;
    assert!(page_errors(&browser).await.is_empty());
    let _ = browser.close().await;
}

/// `search` has a timeout alert: its timeout chart draws the 10 % line, labelled in the top
/// margin (y < 16, where the plot begins) so the label never covers the data. `checkout` has
/// no timeout alert and no such chart. Trace ids link through `trace_url_template`.
fn timeout_chart_and_trace_link(seen: &Value) {
    let limit = &seen["timeout_limit"];
    assert_eq!(limit["value"], 10.0, "{seen}");
    let y = limit["y"].as_f64().unwrap();
    assert!(
        (16.0..=94.0).contains(&y),
        "threshold inside the plot: {seen}"
    );
    let label = &seen["timeout_label"];
    assert_eq!(label["text"], "alert > 10.0 %", "{seen}");
    assert!(
        label["y"].as_f64().unwrap() < 16.0,
        "label above the plot: {seen}"
    );
    assert_eq!(seen["checkout_timeout_chart"], false, "{seen}");
    let trace = &seen["trace"];
    let id = trace["id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{seen}"
    );
    assert_eq!(
        trace["href"],
        format!("https://jaeger.example/trace/{id}"),
        "{seen}"
    );
    assert_eq!(trace["text"], id[..8], "{seen}");
}

/// Redline started moments ago: the charts' time axis starts at the first request (at most
/// a minute before now, the shortest axis), not 15 minutes ago.
async fn axis_starts_at_the_first_data(rl: &Redline, seen: &Value) {
    let flows = rl.json("/api/flows").await;
    let mut first = u64::MAX;
    for flow in flows["flows"].as_array().expect("flows") {
        let name = flow["name"].as_str().expect("name");
        let doc = rl.json(&format!("/api/flows/{name}/series")).await;
        let busy = doc["points"].as_array().expect("points").iter();
        let t = busy
            .filter(|p| p["requests"].as_u64() > Some(0))
            .find_map(|p| p["t"].as_u64());
        first = first.min(t.unwrap_or(u64::MAX));
    }
    let axis = &seen["axis"];
    let start = axis["start"].as_u64().expect("axis start");
    assert!(
        start <= first && start + 60_000 >= first,
        "axis starts at the first data ({first}): {seen}"
    );
    let span = axis["span_s"].as_u64().unwrap();
    assert!((60..300).contains(&span), "{seen}");
    assert_ne!(axis["left"], "−15 min", "{seen}");
}

/// The silence dialog asks for the token: a wrong one is refused, the right one silences.
async fn silence_from_the_page(driver: &Driver, browser: &Client, rl: &Redline) {
    let button =
        r#"#alerts tr[data-alertname="FlowErrorRate"][data-flow="checkout"] button.silence"#;
    browser
        .find(Locator::Css(button))
        .await
        .expect("silence button")
        .click()
        .await
        .expect("click silence");
    let token = browser.find(Locator::Css("#silence-token")).await.unwrap();
    token.send_keys("wrong").await.unwrap();
    browser
        .find(Locator::Css("#silence-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = eventually(Duration::from_secs(10), "refusal shown", || async {
        let t = js(
            browser,
            "return document.getElementById('silence-result').textContent;",
        )
        .await;
        t.as_str()
            .filter(|t| t.starts_with("Not silenced"))
            .map(str::to_string)
    })
    .await;
    assert!(
        result.contains("wrong admin token") || result.contains("403"),
        "{result}"
    );
    token.clear().await.unwrap();
    token.send_keys(TOKEN).await.unwrap();
    browser
        .find(Locator::Css("#silence-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "silence confirmed", || async {
        let t = js(
            browser,
            "return document.getElementById('silence-result').textContent;",
        )
        .await;
        t.as_str().filter(|t| t.starts_with("Silenced")).map(|_| ())
    })
    .await;
    eventually(Duration::from_secs(10), "dialog closed", || async {
        let open = js(
            browser,
            "return document.getElementById('silence-dialog').open;",
        )
        .await;
        (open == false).then_some(())
    })
    .await;
    let silences = rl.json("/api/silences").await;
    let list = silences["silences"].as_array().expect("silences");
    assert!(
        list.iter().any(|s| s.to_string().contains("checkout")
            && s.to_string().contains("FlowErrorRate")
            && s.to_string().contains("silenced from the dashboard")),
        "{silences}"
    );
    eventually(Duration::from_secs(10), "silenced badge", || async {
        probe(browser).await["alert_silenced"]
            .as_bool()
            .filter(|s| *s)
            .map(|_| ())
    })
    .await;
    // The one expected browser error: the 403 answer to the wrong token.
    let unexpected: Vec<String> = severe(&console_log(driver, browser).await)
        .into_iter()
        .filter(|m| !(m.contains("/api/silences") && m.contains("403")))
        .collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:?}");
    assert!(page_errors(browser).await.is_empty());
}

/// Phone width without sideways scrolling, and the dark scheme when the system asks for it.
async fn phone_and_dark(driver: &Driver, browser: &Client) {
    let light = probe(browser).await["background"].clone();
    browser.set_window_size(390, 844).await.expect("phone size");
    let narrow = eventually(Duration::from_secs(10), "phone layout", || async {
        let p = probe(browser).await;
        let width = js(browser, "return window.innerWidth;").await;
        (width.as_u64() <= Some(420)).then_some(p)
    })
    .await;
    assert!(
        narrow["overflow"].as_i64() <= Some(0),
        "page scrolls sideways on a phone: {narrow}"
    );
    screenshot(browser, "dashboard-phone.png").await;

    let session = browser.session_id().await.unwrap().expect("session id");
    let cdp = json!({
        "cmd": "Emulation.setEmulatedMedia",
        "params": { "features": [{ "name": "prefers-color-scheme", "value": "dark" }] },
    });
    let (status, _, body) = send(
        Request::post(format!("{}/session/{session}/goog/cdp/execute", driver.url))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(cdp.to_string())))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    browser
        .set_window_size(1280, 1000)
        .await
        .expect("laptop size");
    let dark = probe(browser).await["background"].clone();
    assert_ne!(light, dark, "dark scheme changes the background");
    screenshot(browser, "dashboard-dark.png").await;
}

/// The proposal section's state, read in one go.
const PROPOSAL: &str = r#"
const el = (id) => document.getElementById(id);
return {
  rounds: Number(document.body.dataset.rounds || 0),
  yaml: el('proposal').hidden ? '' : el('proposal').textContent,
  result: el('proposal-result').textContent,
  copy_shown: !el('proposal-copy').hidden,
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposal_section_shows_the_learned_config_with_a_copy_button() {
    let (driver, browser) = start_browser().await;
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    for i in 0..30 {
        assert_eq!(get(&rl.url(&format!("/api/users/{i}"))).await.0, 200);
    }
    rl.metrics_counting(30.0).await;
    browser
        .goto(&rl.admin_url("/"))
        .await
        .expect("open dashboard");
    eventually(Duration::from_secs(20), "first poll", || async {
        let v = js(&browser, PROPOSAL).await;
        (v["rounds"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    let before = js(&browser, PROPOSAL).await;
    assert_eq!(
        before["yaml"], "",
        "nothing is learned until asked: {before}"
    );

    let load = browser.find(Locator::Css("#proposal-load")).await.unwrap();
    load.click().await.expect("click Propose");
    let seen = eventually(Duration::from_secs(10), "proposal shown", || async {
        let v = js(&browser, PROPOSAL).await;
        v["yaml"]
            .as_str()
            .is_some_and(|y| y.contains("- name: users"))
            .then_some(v)
    })
    .await;
    assert_eq!(
        seen["result"], "1 flow covering 100% of 30 requests seen.",
        "{seen}"
    );
    assert_eq!(seen["copy_shown"], true);
    let yaml = seen["yaml"].as_str().unwrap();
    let config = redline::config::Config::parse(yaml, "proposal").expect("the shown YAML is valid");
    assert_eq!(
        config.flows[0].patterns[0].to_string(),
        "GET /api/users/{id}"
    );

    js(
        &browser,
        "document.getElementById('proposal-h').scrollIntoView(); return null;",
    )
    .await;
    screenshot(&browser, "dashboard-proposal.png").await;

    let copy = browser.find(Locator::Css("#proposal-copy")).await.unwrap();
    copy.click().await.expect("click Copy");
    eventually(Duration::from_secs(5), "copy acknowledged", || async {
        let v = js(&browser, PROPOSAL).await;
        let said = v["result"].as_str().unwrap_or("");
        (said.starts_with("Copied") || said.starts_with("Selected")).then_some(())
    })
    .await;
    assert!(page_errors(&browser).await.is_empty());
    let log = console_log(&driver, &browser).await;
    assert!(severe(&log).is_empty(), "console errors: {log:?}");
    browser.goto("about:blank").await.expect("leave dashboard");
}

//! `redline baseline`: the knee of an app of known capacity, coordinated omission, the
//! loopback guard, the `compare` gate's exit codes, and the HTML report in headless Chromium.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::dashboard::{console_log, js, screenshot, severe, start_browser};
use crate::support::*;

/// Load tests take turns: two at once on a small machine would measure each other.
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.display().to_string()
}

/// `redline baseline run` of `source` (`["--workload", path]` or `["--config", path]`) against
/// `target` at `rates`, reports in `out`, with the `extra` flags.
async fn run_at(
    source: [&str; 2],
    target: &str,
    rates: &str,
    out: &Path,
    extra: &[&str],
) -> (i32, String, String) {
    let out = out.to_str().expect("utf-8 path");
    let mut args = vec![
        "run", source[0], source[1], "--target", target, "--rates", rates,
    ];
    args.extend_from_slice(&["--out", out]);
    args.extend_from_slice(extra);
    baseline(&args).await
}

fn report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("baseline.json")).expect("baseline.json");
    serde_json::from_str(&text).expect("report json")
}

/// Both flows share one worker of ~2 ms per request (≈ 500 req/s in all); only `checkout`
/// has a tight latency rule (from the config), so it is the one that breaks, near 500 req/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knee_of_a_known_capacity_app_and_the_flow_that_broke() {
    let _turn = LOAD.lock().await;
    let app = serial_app(Duration::from_millis(2), None, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "redline.yaml",
        "flows:\n  - name: checkout\n    match: /checkout\n    alerts:\n      - when: \"p95 > 100ms\"\n",
    );
    let workload = write(
        dir.path(),
        "workload.json",
        &json!({
            "version": 1,
            "config": "redline.yaml",
            "flows": [
                { "name": "checkout", "requests": [{ "path": "/checkout" }] },
                { "name": "search", "thresholds": ["error_rate > 50%"],
                  "requests": [{ "path": "/search?q=a" }, { "method": "POST", "path": "/search", "body": "q=b" }] }
            ]
        })
        .to_string(),
    );
    let out = dir.path().join("out");
    let (code, stdout, stderr) = run_at(
        ["--workload", &workload],
        &format!("http://{app}"),
        "200,300,400,450,500,550,600,700,800",
        &out,
        &["--step", "2s", "--refine", "1"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("step 1 of at most 10: 200 req/s offered"),
        "progress: {stderr}"
    );
    let r = report(&out);
    assert_eq!(r["schema"], "redline.baseline/v1");
    assert_eq!(r["stopped"], "threshold", "{stderr}");
    let knee = r["knee_rps"].as_f64().unwrap_or(0.0);
    assert!(
        (400.0..=600.0).contains(&knee),
        "knee {knee} not within 20% of 500: {stderr}"
    );
    assert_eq!(r["first_break"]["flow"], "checkout", "{stderr}");
    assert_eq!(r["first_break"]["rule"], "p95 > 100ms");
    assert!(
        r["flows"][1]["broke"].is_null(),
        "search held its own threshold"
    );
    assert_eq!(r["flows"][0]["thresholds"], json!(["p95 > 100ms"]));
    let suggested = r["flows"][0]["suggested"].as_array().unwrap();
    assert!(
        suggested[0].as_str().unwrap().starts_with("p95 > "),
        "{suggested:?}"
    );
    let rates: Vec<f64> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["offered_rps"].as_f64().unwrap())
        .collect();
    assert!(
        rates.windows(2).all(|w| w[0] < w[1]),
        "steps sorted, the refinement step in place: {rates:?}"
    );
    let listed = [
        200.0, 300.0, 400.0, 450.0, 500.0, 550.0, 600.0, 700.0, 800.0,
    ];
    assert_eq!(
        rates.iter().filter(|x| !listed.contains(x)).count(),
        1,
        "one bisection step between the last rate held and the first broken: {rates:?}"
    );
    let held = &r["steps"][0]["flows"][0];
    assert!(
        (held["achieved_rps"].as_f64().unwrap() - 100.0).abs() < 15.0,
        "{held}"
    );
    assert!(
        stdout.contains("# Performance baseline") && stdout.contains("Knee:"),
        "{stdout}"
    );
    for file in ["baseline.md", "baseline.html"] {
        assert!(out.join(file).is_file(), "{file}");
    }
}

/// A 1 s stall of one request in a 100 req/s step holds up every request due meanwhile:
/// measured from intended starts, about a third of the step is slow, so p99 shows the stall.
/// A closed-loop client would have sent nothing during the stall and seen one slow request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_p99_because_latency_counts_from_the_intended_start() {
    let _turn = LOAD.lock().await;
    let app = serial_app(Duration::ZERO, Some(50), Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let workload = write(
        dir.path(),
        "workload.json",
        r#"{"version":1,"flows":[{"name":"api","requests":[{"path":"/"}]}]}"#,
    );
    let out = dir.path().join("out");
    let (code, _, stderr) = run_at(
        ["--workload", &workload],
        &format!("http://{app}"),
        "100",
        &out,
        &["--step", "3s", "--warmup", "0s"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let step = &report(&out)["steps"][0]["flows"][0];
    let (p50, p99, max) = (
        step["p50_ms"].as_f64().unwrap(),
        step["p99_ms"].as_f64().unwrap(),
        step["max_ms"].as_f64().unwrap(),
    );
    assert!(p99 >= 800.0, "the stall is in p99: {step}");
    assert!(max >= 950.0, "the stalled request waited 1 s: {step}");
    assert!(p50 < 300.0, "most requests were not held up: {step}");
    assert_eq!(
        step["requests"], 300,
        "the schedule kept going during the stall"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_needs_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let workload = write(
        dir.path(),
        "workload.json",
        r#"{"version":1,"flows":[{"name":"api","requests":[{"path":"/"}]}]}"#,
    );
    let (code, _, stderr) = run_at(
        ["--workload", &workload],
        "http://192.0.2.1:80",
        "10",
        &dir.path().join("out"),
        &[],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--allow-remote") && stderr.contains("192.0.2.1"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("out").exists(),
        "nothing was sent or written"
    );
}

/// Every request fails: the run stops within the first step, once 20 have completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abort_limit_stops_the_run_at_once() {
    let _turn = LOAD.lock().await;
    let app = app().await;
    let dir = tempfile::tempdir().unwrap();
    let workload = write(
        dir.path(),
        "workload.json",
        r#"{"version":1,"flows":[{"name":"api","requests":[{"path":"/status/500"}]}]}"#,
    );
    let out = dir.path().join("out");
    let (code, _, stderr) = run_at(
        ["--workload", &workload],
        &format!("http://{app}"),
        "50,100",
        &out,
        &["--step", "2s"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("ABORTED"), "{stderr}");
    let r = report(&out);
    assert_eq!(r["stopped"], "abort");
    assert_eq!(r["steps"].as_array().map(Vec::len), Some(1));
    let sent = r["steps"][0]["flows"][0]["requests"].as_u64().unwrap();
    assert!(
        (20..60).contains(&sent),
        "stopped soon after 20 failures, not after 100: {sent}"
    );
    assert!(r["knee_rps"].is_null());
}

/// Requests slower than the flow's timeout are given up on, counted as timeouts (and errors),
/// and break a `timeout_rate` threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_are_timeouts() {
    let _turn = LOAD.lock().await;
    let app = app().await;
    let dir = tempfile::tempdir().unwrap();
    let workload = write(
        dir.path(),
        "workload.json",
        r#"{"version":1,"flows":[{"name":"api","timeout":"200ms","thresholds":["timeout_rate > 1%"],
            "requests":[{"path":"/?sleep_ms=2000"}]}]}"#,
    );
    let out = dir.path().join("out");
    let (code, _, stderr) = run_at(
        ["--workload", &workload],
        &format!("http://{app}"),
        "10,20",
        &out,
        &["--step", "1s", "--warmup", "0s"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let r = report(&out);
    let step = &r["steps"][0]["flows"][0];
    assert_eq!(
        (step["timeout_rate"].as_f64(), step["error_rate"].as_f64()),
        (Some(1.0), Some(1.0)),
        "{step}"
    );
    let p50 = step["p50_ms"].as_f64().unwrap();
    assert!(
        (190.0..1000.0).contains(&p50),
        "latency of a timeout is the timeout: {step}"
    );
    assert_eq!(r["first_break"]["rule"], "timeout_rate > 1%");
    assert!(r["knee_rps"].is_null());
}

fn fake_report(knee: f64, p95_at_100: f64) -> String {
    let step = |rate: f64, p95: f64| {
        json!({
            "offered_rps": rate, "achieved_rps": rate, "elapsed_s": 1.0, "send_lag_ms": 0.0,
            "aborted": false,
            "flows": [{ "flow": "checkout", "offered_rps": rate, "achieved_rps": rate,
                "requests": 100, "p50_ms": p95 / 2.0, "p90_ms": p95, "p95_ms": p95,
                "p99_ms": p95, "max_ms": p95, "error_rate": 0.0, "timeout_rate": 0.0,
                "breaches": [] }]
        })
    };
    json!({
        "schema": "redline.baseline/v1", "started_at": "2026-12-06T00:00:00Z",
        "target": "http://127.0.0.1:8080", "workload": "w.json", "step_s": 1.0,
        "stopped": "threshold", "knee_rps": knee, "first_break": null,
        "flows": [{ "name": "checkout", "share": 1.0, "thresholds": ["p95 > 100ms"],
            "knee_rps": knee, "knee_flow_rps": knee, "broke": null, "suggested": [] }],
        "steps": [step(100.0, p95_at_100), step(knee, 50.0)]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_exits_1_on_a_knee_drop_or_p95_rise_beyond_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.json", &fake_report(500.0, 20.0));
    let same = write(dir.path(), "same.json", &fake_report(480.0, 21.0));
    let lower = write(dir.path(), "lower.json", &fake_report(400.0, 20.0));
    let slower = write(dir.path(), "slower.json", &fake_report(500.0, 30.0));
    let bad = write(dir.path(), "bad.json", r#"{"schema":"something/v9"}"#);

    let (code, stdout, stderr) = baseline(&["compare", &old, &same]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("| checkout | knee req/s | 500 | 480 | -4.0% | ok |"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS"), "{stdout}");

    let (code, stdout, _) = baseline(&["compare", &old, &lower]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("REGRESSED") && stdout.contains("FAIL"),
        "{stdout}"
    );
    let (code, stdout, _) = baseline(&["compare", &old, &lower, "--tolerance", "25%"]).await;
    assert_eq!(code, 0, "{stdout}");

    let (code, stdout, _) = baseline(&["compare", &old, &slower]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("p95 ms @ 100 req/s | 20 | 30 | +50.0% | REGRESSED"),
        "{stdout}"
    );

    let (code, _, stderr) = baseline(&["compare", &old, &bad]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("redline.baseline/v1"), "{stderr}");
}

const PAGE_PROBE: &str = r#"
const q = (s) => document.querySelectorAll(s);
const p95 = document.querySelector('#flow-checkout svg[data-chart="latency"] path[data-series="p95"]');
return {
  flows: q('section.flow').length,
  latency_charts: q('svg[data-chart="latency"]').length,
  error_charts: q('svg[data-chart="errors"]').length,
  p95_points: p95 ? Number(p95.dataset.points) : 0,
  p95_path: p95 ? p95.getAttribute('d') : '',
  thresholds: Array.from(q('#flow-checkout line.threshold')).map(l => l.dataset.threshold),
  rows: q('#flow-checkout tbody tr').length,
  verdict: document.getElementById('verdict').textContent,
  chart_width: document.querySelector('svg[data-chart="latency"]').getBoundingClientRect().width,
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
};
"#;

/// A short run from a config's `flows[].baseline`, then its HTML page in headless Chromium:
/// both charts per flow with their threshold lines, the step table, no console errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_renders_charts_in_headless_chromium() {
    let _turn = LOAD.lock().await;
    let app = serial_app(Duration::from_millis(1), None, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "order.json", r#"{"sku":"a-1","qty":2}"#);
    let config = write(
        dir.path(),
        "redline.yaml",
        "flows:\n  - name: checkout\n    match: \"POST /checkout\"\n    alerts:\n      - when: \"p95 > 250ms\"\n      - when: \"error_rate > 2%\"\n    baseline:\n      requests:\n        - { method: POST, path: /checkout, headers: { content-type: application/json }, body_file: order.json }\n  - name: browse\n    match: /items/{id}\n    baseline:\n      weight: 3\n      requests: [{ path: /items/1 }, { path: /items/2 }]\n",
    );
    let out = dir.path().join("out");
    let (code, _, stderr) = run_at(
        ["--config", &config],
        &format!("http://{app}"),
        "20,40,60",
        &out,
        &["--step", "1s"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let r = report(&out);
    assert_eq!(r["flows"][1]["share"], 0.75, "browse has weight 3 of 4");

    let (driver, browser) = start_browser().await;
    let url = format!("file://{}", out.join("baseline.html").display());
    browser.goto(&url).await.expect("open report");
    let seen = js(&browser, PAGE_PROBE).await;
    assert_eq!(seen["flows"], 2, "{seen}");
    assert_eq!(
        (
            seen["latency_charts"].as_u64(),
            seen["error_charts"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(seen["p95_points"], 3, "{seen}");
    let path = seen["p95_path"].as_str().unwrap();
    assert!(
        path.starts_with('M') && path.matches('L').count() == 2,
        "{path}"
    );
    assert_eq!(
        seen["thresholds"],
        json!(["p95 > 250ms", "error_rate > 2%"]),
        "{seen}"
    );
    assert_eq!(seen["rows"], 3);
    assert!(
        seen["verdict"]
            .as_str()
            .unwrap()
            .contains("No knee up to 60 req/s"),
        "{seen}"
    );
    assert!(seen["chart_width"].as_f64().unwrap() > 300.0, "{seen}");
    assert!(
        seen["overflow"].as_f64().unwrap() <= 0.0,
        "no horizontal scroll: {seen}"
    );
    let log = console_log(&driver, &browser).await;
    assert!(severe(&log).is_empty(), "console errors (CSP?): {log:?}");
    let shot = screenshot(&browser, "baseline-report.png").await;
    assert!(shot.is_file());
    let _ = browser.close().await;
}

const RECORDING: &str = r#"
flows:
  - name: checkout
    match: "POST /checkout"
    alerts:
      - when: "p95 > 500ms"
  - name: browse
    match: "GET /items/{id}"
    alerts:
      - when: "error_rate > 5%"
baseline:
  record:
    enabled: true
    per_flow: 16
    headers: [accept, x-tenant, x-api-key]
"#;

/// Traffic with credentials goes through a real Redline that records; `record` saves a
/// workload without them; `run` replays it through the same Redline; `compare` reads the
/// reports back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_then_run_then_compare_through_redline_without_secrets() {
    let _turn = LOAD.lock().await;
    let app = serial_app(Duration::from_millis(1), None, Duration::ZERO).await;
    let rl = Redline::start(&config_for(app, RECORDING));
    let secret_get = |i: u32| {
        http::Request::get(rl.url(&format!("/items/{i}?token=s3cr3t&page=2")))
            .header("authorization", "Bearer hunter2")
            .header("cookie", "session=xyzzy")
            .header("x-api-key", "k3y")
            .header("accept", "application/json")
            .header("x-tenant", "shop")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    for i in 0..30 {
        assert_eq!(send(secret_get(i % 3)).await.0, 200);
    }
    for _ in 0..10 {
        let post = http::Request::post(rl.url("/checkout"))
            .header("authorization", "Bearer hunter2")
            .body(http_body_util::Full::new(bytes::Bytes::from("card=4242")))
            .unwrap();
        assert_eq!(send(post).await.0, 200);
    }
    let admin = rl.admin_url("");
    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("workload.json");
    let config = rl.config_path.display().to_string();
    let (code, _, stderr) = baseline(&[
        "record",
        "--admin",
        &admin,
        "--out",
        workload.to_str().unwrap(),
        "--config",
        &config,
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&workload).unwrap();
    for secret in ["hunter2", "xyzzy", "k3y", "s3cr3t", "4242"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let w: Value = serde_json::from_str(&text).unwrap();
    assert!(
        w["note"].as_str().unwrap().contains("never recorded"),
        "{text}"
    );
    let browse = w["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "browse")
        .unwrap();
    assert_eq!(browse["weight"], 30.0, "{text}");
    let request = &browse["requests"][0];
    assert!(
        request["path"]
            .as_str()
            .unwrap()
            .contains("token=REDACTED&page=2"),
        "{text}"
    );
    assert_eq!(
        request["headers"],
        json!({ "accept": "application/json", "x-tenant": "shop" })
    );
    let checkout = w["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "checkout")
        .unwrap();
    assert_eq!(checkout["weight"], 10.0);
    assert_eq!(checkout["requests"][0]["method"], "POST");

    let target = rl.url("");
    let target = target.trim_end_matches('/');
    let mut reports = Vec::new();
    for name in ["a", "b"] {
        let out = dir.path().join(name);
        let (code, _, stderr) = run_at(
            ["--workload", workload.to_str().unwrap()],
            target,
            "20,40",
            &out,
            &["--step", "1s"],
        )
        .await;
        assert_eq!(code, 0, "{stderr}");
        let r = report(&out);
        assert_eq!(r["stopped"], "rates_done", "{stderr}");
        assert_eq!(
            r["flows"][0]["thresholds"],
            json!(["p95 > 500ms"]),
            "from the config"
        );
        reports.push(out.join("baseline.json").display().to_string());
    }
    let (code, stdout, _) = baseline(&["compare", &reports[0], &reports[0]]).await;
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = baseline(&["compare", &reports[0], &reports[1]]).await;
    assert!(code == 0 || code == 1, "{stdout}");
    assert!(
        stdout.contains("| checkout | knee req/s | 40 | 40 |"),
        "{stdout}"
    );
}

const RECORDING_BODIES: &str = r#"
flows:
  - name: search
    match: "PUT /search"
  - name: lookup
    match: "DELETE /lookup"
  - name: checkout
    match: "POST /checkout"
baseline:
  record:
    enabled: true
    body_limit: 64
"#;

/// Small bodies of idempotent requests are recorded, with secret fields redacted, whether
/// the body came with a length (fast path) or chunked (hyper); POST bodies and bodies over
/// the limit are not. `run` then sends the recorded bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_bodies_of_idempotent_requests_are_replayed() {
    let _turn = LOAD.lock().await;
    let seen = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let app = {
        let seen = seen.clone();
        serve(move |req: Request<Incoming>| {
            let seen = seen.clone();
            async move {
                let what = format!("{} {}", req.method(), req.uri().path());
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let body = String::from_utf8_lossy(&body).into_owned();
                seen.lock().unwrap().push((what, body));
                Response::new(full("ok"))
            }
        })
        .await
    };
    let rl = Redline::start(&config_for(app, RECORDING_BODIES));
    let json_put = |body: &'static str| {
        http::Request::put(rl.url("/search"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    let kept = r#"{"q":"shoes","password":"hunter2"}"#;
    assert_eq!(send(json_put(kept)).await.0, 200);
    let too_big = r#"{"q":"a very long query that is well over the sixty-four byte limit"}"#;
    assert_eq!(send(json_put(too_big)).await.0, 200);
    let post = http::Request::post(rl.url("/checkout"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"card":"4242"}"#,
        )))
        .unwrap();
    assert_eq!(send(post).await.0, 200);
    // Chunked: not taken by the fast path, so the body streams through hyper.
    let mut raw = tokio::net::TcpStream::connect(
        rl.url("/")
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    )
    .await
    .unwrap();
    let chunked = "DELETE /lookup HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
                   transfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nid=7&\r\nc\r\ntoken=s3cr3t\r\n0\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut raw, chunked.as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut raw, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("workload.json");
    let (code, _, stderr) = baseline(&[
        "record",
        "--admin",
        &rl.admin_url(""),
        "--out",
        workload.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&workload).unwrap();
    for secret in ["hunter2", "s3cr3t", "4242", "very long"] {
        assert!(!text.contains(secret), "{secret} kept: {text}");
    }
    let w: Value = serde_json::from_str(&text).unwrap();
    let bodies: Vec<&str> = w["flows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["requests"].as_array().unwrap())
        .filter_map(|r| r["body"].as_str())
        .collect();
    let redacted = r#"{"q":"shoes","password":"REDACTED"}"#;
    assert_eq!(bodies.len(), 2, "{text}");
    assert!(bodies.contains(&redacted), "{text}");
    assert!(bodies.contains(&"id=7&token=REDACTED"), "{text}");

    seen.lock().unwrap().clear();
    let out = dir.path().join("out");
    let (code, _, stderr) = run_at(
        ["--workload", workload.to_str().unwrap()],
        rl.url("").trim_end_matches('/'),
        "30",
        &out,
        &["--step", "1s", "--warmup", "0s"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let seen = seen.lock().unwrap().clone();
    let sent = |what: &str, body: &str| seen.iter().filter(|(w, b)| w == what && b == body).count();
    assert!(sent("PUT /search", redacted) > 0, "{seen:?}");
    assert!(
        sent("DELETE /lookup", "id=7&token=REDACTED") > 0,
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(w, b)| w != "POST /checkout" || b.is_empty()),
        "the POST goes without its body: {seen:?}"
    );
}

/// `--target https://…`: a local TLS server whose certificate a test CA signed is loaded
/// with `--ca`; without it the Mozilla roots do not trust that certificate, so every
/// request fails and the run aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_target_is_loaded_and_its_certificate_checked() {
    let _turn = LOAD.lock().await;
    let pki = crate::otlp_tls::Pki::new();
    let acceptor = pki.acceptor(false, b"http/1.1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // Counted only with the Host an HTTP/1.1 client must send.
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let host = req.headers().get("host").and_then(|h| h.to_str().ok());
                    if host == Some(format!("localhost:{port}").as_str()) {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    async { Ok::<_, std::convert::Infallible>(Response::new(full("ok"))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let workload = write(
        dir.path(),
        "workload.json",
        r#"{"version":1,"flows":[{"name":"api","requests":[{"path":"/"}]}]}"#,
    );
    let target = format!("https://localhost:{port}");
    let ca = pki.path("ca.pem").display().to_string();
    let run = |out: &'static str, ca: Option<String>| {
        let (workload, target, out) = (workload.clone(), target.clone(), dir.path().join(out));
        async move {
            let mut args = vec!["run", "--workload", &workload, "--target", &target];
            args.extend(["--rates", "40", "--step", "1s", "--warmup", "0s"]);
            args.extend(["--out", out.to_str().unwrap()]);
            if let Some(ca) = &ca {
                args.extend(["--ca", ca]);
            }
            let (code, _, stderr) = baseline(&args).await;
            assert_eq!(code, 0, "{stderr}");
            report(&out)
        }
    };
    let trusted = run("trusted", Some(ca)).await;
    let step = &trusted["steps"][0]["flows"][0];
    assert_eq!(step["requests"], 40, "{trusted}");
    assert_eq!(step["error_rate"], 0.0, "{trusted}");
    assert_eq!(trusted["stopped"], "rates_done");
    assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), 40);

    let untrusted = run("untrusted", None).await;
    assert_eq!(untrusted["stopped"], "abort", "{untrusted}");
    assert_eq!(untrusted["steps"][0]["flows"][0]["error_rate"], 1.0);
    assert_eq!(
        served.load(std::sync::atomic::Ordering::Relaxed),
        40,
        "no request got through"
    );
}

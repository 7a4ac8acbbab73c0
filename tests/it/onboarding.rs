//! From "my app on :3000" to alerts without writing YAML: default alerts with no flows, `--alert-webhook`, and `redline init` learning flows that hot-reload.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use redline::config::Config;
use redline::flows::router::Router;
use serde_json::Value;

use crate::support::*;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// No flows and no upstream: only the default alerts' timing is shortened (1 m window, 1 s
/// `for`, 200 ms evaluations instead of 5 m, 1 m, 5 s), so the test takes seconds.
const FAST_DEFAULTS: &str = r#"
alerting:
  eval_interval: 200ms
  default_alerts:
    - { when: "error_rate > 5%",   over: 1m, for: 1s, min_requests: 20 }
    - { when: "timeout_rate > 5%", over: 1m, for: 1s, min_requests: 20 }
"#;

/// An app whose `POST /api/orders` fails (500) while `failing` is set; every other path is 200.
async fn flaky_app(failing: Arc<AtomicBool>) -> SocketAddr {
    serve(move |req: Request<Incoming>| {
        let failing = failing.clone();
        async move {
            let broken = req.method() == http::Method::POST && failing.load(Ordering::SeqCst);
            let mut r = Response::new(full("ok"));
            if broken {
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            r
        }
    })
    .await
}

/// One request a webhook got: headers and JSON body.
type Hook = (http::HeaderMap, Value);

/// A webhook receiver recording every delivery.
async fn webhook() -> (String, Arc<Mutex<Vec<Hook>>>) {
    let hits: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let sink = hits.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let sink = sink.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            verify_signature(&parts.headers, &bytes);
            let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            sink.lock().unwrap().push((parts.headers, json));
            Response::new(full(""))
        }
    })
    .await;
    (format!("http://{addr}/hook"), hits)
}

/// Standard Webhooks: `v1,` base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
fn verify_signature(headers: &http::HeaderMap, body: &[u8]) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let (id, ts) = (header("webhook-id"), header("webhook-timestamp"));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(header("webhook-signature"), format!("v1,{want}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts.parse::<u64>().unwrap().abs_diff(now) < 300);
}

/// The first FIRING delivery for `flow` and `alertname`.
fn firing(hits: &Mutex<Vec<Hook>>, flow: &str, alertname: &str) -> Option<Value> {
    hits.lock().unwrap().iter().find_map(|(_, body)| {
        let alert = body["alerts"].as_array()?.first()?.clone();
        let labels = &alert["labels"];
        let hit = body["status"] == "firing"
            && labels["flow"] == flow
            && labels["alertname"] == alertname;
        hit.then_some(alert)
    })
}

async fn post(url: &str) -> u16 {
    send(Request::post(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .0
}

/// A round of app traffic: mostly reads, some order writes, the odd rare page.
async fn round(rl: &Redline, n: usize) {
    for i in 0..n {
        assert_eq!(get(&rl.url(&format!("/api/items/{i}"))).await.0, 200);
        assert_eq!(get(&rl.url("/")).await.0, 200);
        post(&rl.url("/api/orders")).await;
    }
}

/// Run a `redline` subcommand to completion; returns (exit code, stdout, stderr).
fn redline(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(args)
        .env_remove("REDLINE_CONFIG")
        .output()
        .expect("run redline");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Requests per (method, route) of the unmatched flow on `/metrics`.
fn unmatched_counts(scrape: &str) -> Vec<(String, String, f64)> {
    let label = |line: &str, name: &str| -> String {
        let start = line.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
        start
            .and_then(|s| line[s..].find('"').map(|e| line[s..s + e].to_string()))
            .unwrap_or_default()
    };
    scrape
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{flow=\"unmatched\""))
        .map(|l| {
            let n = l
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            (label(l, "http_request_method"), label(l, "http_route"), n)
        })
        .collect()
}

/// The share of `counts` the config's flows match, judged by Redline's own router.
fn coverage(config: &Config, counts: &[(String, String, f64)]) -> f64 {
    let patterns: Vec<_> = config.flows.iter().map(|f| f.patterns.clone()).collect();
    let router = Router::new(&patterns);
    let total: f64 = counts.iter().map(|c| c.2).sum();
    let matched: f64 = counts
        .iter()
        .filter(|(m, route, _)| {
            let method = http::Method::from_bytes(m.as_bytes()).unwrap();
            router.find(&method, route).is_some()
        })
        .map(|c| c.2)
        .sum();
    matched / total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_alerts_fire_then_init_learns_flows_that_fire_only_on_failure() {
    let failing = Arc::new(AtomicBool::new(true));
    let app = flaky_app(failing.clone()).await;
    let (hook, hits) = webhook().await;
    let upstream = format!("http://{app}");
    let rl = Redline::start_with(
        FAST_DEFAULTS,
        &["--upstream", &upstream, "--alert-webhook", &hook],
        &[("REDLINE_WEBHOOK_SECRET", SECRET)],
    );

    // 1. No flows: a third of all requests fail, and the default alert fires at the webhook.
    round(&rl, 20).await;
    let alert = eventually(
        Duration::from_secs(20),
        "default FIRING at the webhook",
        || async { firing(&hits, "unmatched", "FlowErrorRate") },
    )
    .await;
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("> 5%"),
        "{alert}"
    );

    // 2. The app recovers; healthy traffic, plus a rare page that is not busy enough for a flow.
    failing.store(false, Ordering::SeqCst);
    round(&rl, 150).await;
    get(&rl.url("/rare")).await;

    // 3. `redline init` writes into the running Redline's config file, which hot-reloads it.
    let learned = rl.config_path.clone();
    let init = [
        "init".to_string(),
        "--from".into(),
        format!("http://{}", rl.admin),
        "--out".into(),
        learned.display().to_string(),
    ];
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        redline(&init.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("flows cover"), "{err}");
    let yaml = std::fs::read_to_string(&learned).unwrap();
    let config = Config::parse(&yaml, "learned.yaml").unwrap();
    eventually(Duration::from_secs(10), "learned flows loaded", || async {
        let flows = rl.json("/api/config").await["config"]["flows"].clone();
        (flows.as_array().map_or(0, Vec::len) == config.flows.len()).then_some(())
    })
    .await;

    // 4. `redline check` accepts it; its flows cover >= 90 % of what Redline counted.
    let (code, stdout, err) = redline(&["check", "--config", learned.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("orders (TODO"), "{stdout}");
    assert!(yaml.contains("# Learned from"), "{yaml}");
    let counts = unmatched_counts(&rl.metrics().await);
    let share = coverage(&config, &counts);
    assert!(
        share >= 0.9,
        "learned flows cover {share} of {counts:?}\n{yaml}"
    );
    assert!(share < 1.0, "the rare page stays unmatched");

    // 5. Healthy traffic: the learned thresholds hold (several 200 ms evaluations past `for`).
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        round(&rl, 5).await;
        let alerts = rl.json("/api/alerts").await;
        let learned_alerts: Vec<&Value> = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["flow"] != "unmatched")
            .collect();
        assert!(
            learned_alerts.is_empty(),
            "healthy traffic alerted: {learned_alerts:?}\n{yaml}"
        );
    }

    // 6. The failure starts again: the learned error-rate alert of the orders flow fires.
    failing.store(true, Ordering::SeqCst);
    let alert = eventually(
        Duration::from_secs(30),
        "learned FIRING at the webhook",
        || async {
            round(&rl, 5).await;
            firing(&hits, "orders", "FlowErrorRate")
        },
    )
    .await;
    assert_eq!(alert["labels"]["owner"], "TODO", "{alert}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_config_file_the_default_alerts_and_the_flag_webhook_apply() {
    let app = app().await;
    let upstream = format!("http://{app}");
    let rl = Redline::start_without_config(
        &[
            "--upstream",
            &upstream,
            "--alert-webhook",
            "http://127.0.0.1:9/hook",
        ],
        &[],
    );
    let config = rl.json("/api/config").await["config"].clone();
    let receiver = &config["alerting"]["receivers"][0];
    assert_eq!(receiver["name"], "alert-webhook", "{config}");
    assert!(
        receiver.get("secret_env").is_none(),
        "unsigned without REDLINE_WEBHOOK_SECRET"
    );
    let whens: Vec<&str> = config["alerting"]["default_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["when"].as_str().unwrap())
        .collect();
    assert_eq!(whens, ["error_rate > 5%", "timeout_rate > 5%"]);

    // 20 requests, all failing: at the first evaluation (every 5 s) the alert is pending,
    // keyed flow="unmatched" in /api/alerts, /api/flows and /metrics alike.
    for _ in 0..20 {
        assert_eq!(get(&rl.url("/status/503")).await.0, 503);
    }
    let alert = eventually(Duration::from_secs(15), "default alert pending", || async {
        let v = rl.json("/api/alerts").await;
        v["alerts"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(alert["labels"]["flow"], "unmatched");
    assert_eq!(alert["labels"]["alertname"], "FlowErrorRate");
    let flows = rl.json("/api/flows").await;
    let unmatched = flows["flows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        unmatched["alerts"][0]["alertname"], "FlowErrorRate",
        "{unmatched}"
    );
    let gauge =
        r#"redline_alert_state{flow="unmatched",alertname="FlowErrorRate",severity="warning"}"#;
    assert!(sample(&rl.metrics().await, gauge).is_some_and(|v| v >= 1.0));
}

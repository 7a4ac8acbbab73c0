//! Fleet-wide alerting end to end: a real Prometheus scrapes a real Redline under failing traffic and evaluates `redline rules`; it and Redline both deliver the alert to one real Alertmanager, which shows it once.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Alertmanager, Prometheus, Redline, eventually};

const DEADLINE: Duration = Duration::from_secs(40);

/// Requests to `url` every 10 ms until dropped.
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(url: String) -> Traffic {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        tokio::spawn(async move {
            while flag.load(Ordering::Relaxed) {
                let _ = support::get(&url).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Traffic(running)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn redline_config(app: std::net::SocketAddr, alertmanager: &str) -> String {
    support::config_for(
        app,
        &format!(
            "service: shop
flows:
  - name: checkout
    match: \"GET /status/{{code}}\"
    owner: payments-team
    runbook: https://wiki.example/runbooks/checkout
    alerts:
      - {{ when: \"error_rate > 2%\", over: 10s, for: 0s, min_requests: 5, severity: page }}
alerting:
  eval_interval: 1s
  receivers:
    - {{ name: am, type: alertmanager, url: '{alertmanager}' }}
"
        ),
    )
}

fn prometheus_config(redline_admin: std::net::SocketAddr, alertmanager: &str) -> String {
    let am = alertmanager.trim_start_matches("http://");
    format!(
        "global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [redline.rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['{am}']
scrape_configs:
  - job_name: redline
    static_configs:
      - targets: ['{redline_admin}']
"
    )
}

/// `redline rules` for the config a running Redline uses.
fn rules_for(redline: &Redline) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .arg("rules")
        .arg("--config")
        .arg(&redline.config_path)
        .env_remove("OTEL_SERVICE_NAME")
        .output()
        .expect("run redline rules");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn is_checkout_error_alert(labels: &Value) -> bool {
    labels["alertname"] == "FlowErrorRate" && labels["flow"] == "checkout"
}

/// Sum of every sample of `family` in a Prometheus text scrape.
fn family_total(scrape: &str, family: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn prometheus_and_redline_deliver_one_deduplicated_alert() {
    let started = Instant::now();
    let app = support::app().await;
    let am = Alertmanager::start().await;
    let redline = Redline::start_with(
        &redline_config(app, &am.url),
        &[],
        &[("OTEL_SERVICE_NAME", "")],
    );
    let rules = rules_for(&redline);
    let prom = Prometheus::start(
        &prometheus_config(redline.admin, &am.url),
        &[("redline.rules.yml", &rules)],
    )
    .await;
    // The exported file loaded and its rule evaluates without error.
    eventually(
        DEADLINE,
        "redline rules evaluated by prometheus",
        || async {
            let data = prom.api("rules").await;
            let group = &data["groups"][0];
            assert_eq!(group["name"], "redline-flow-checkout", "{data}");
            let health = group["rules"][0]["health"].as_str().unwrap_or_default();
            assert_ne!(health, "err", "{data}");
            (health == "ok").then_some(())
        },
    )
    .await;

    let _failing = Traffic::start(redline.url("/status/500"));

    // The flow's fleet-wide request rate, as Prometheus computes it from Redline's scrape.
    let series = eventually(DEADLINE, "checkout request rate in prometheus", || async {
        let result = prom
            .query("sum by (flow) (rate(http_server_request_duration_seconds_count[10s]))")
            .await;
        result.into_iter().find(|s| {
            let value: f64 = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            s["metric"]["flow"] == "checkout" && value > 0.0
        })
    })
    .await;
    assert_eq!(
        series["metric"].as_object().map(|m| m.len()),
        Some(1),
        "{series}"
    );

    // Prometheus fires the exported rule with exactly the labels of Redline's own alert.
    let local = eventually(DEADLINE, "redline's own alert firing", || async {
        let alerts = redline.json("/api/alerts").await;
        alerts["alerts"]
            .as_array()
            .or_else(|| alerts.as_array())
            .and_then(|list| {
                list.iter()
                    .find(|a| is_checkout_error_alert(&a["labels"]) && a["state"] == "firing")
                    .cloned()
            })
    })
    .await;
    let fleet = eventually(DEADLINE, "FlowErrorRate firing in prometheus", || async {
        let data = prom.api("alerts").await;
        data["alerts"].as_array().and_then(|list| {
            list.iter()
                .find(|a| is_checkout_error_alert(&a["labels"]) && a["state"] == "firing")
                .cloned()
        })
    })
    .await;
    assert_eq!(
        fleet["labels"], local["labels"],
        "same identity in both engines"
    );
    for (name, value) in [
        ("severity", "page"),
        ("owner", "payments-team"),
        ("service", "shop"),
    ] {
        assert_eq!(fleet["labels"][name], value, "{fleet}");
    }
    let summary = fleet["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("checkout: error rate 100% > 2% over 10s ("),
        "{summary}"
    );
    assert_eq!(
        fleet["annotations"]["runbook_url"],
        "https://wiki.example/runbooks/checkout"
    );

    // Both sources delivered it to the same Alertmanager...
    let redline_delivered = eventually(DEADLINE, "redline delivered to alertmanager", || async {
        let scrape = redline.metrics().await;
        support::sample(
            &scrape,
            "redline_notifications_total{receiver=\"am\",result=\"delivered\"}",
        )
        .filter(|v| *v > 0.0)
    })
    .await;
    let prometheus_sent = eventually(DEADLINE, "prometheus sent to alertmanager", || async {
        let (_, _, scrape) = support::get(&format!("{}/metrics", prom.url)).await;
        let sent = family_total(&scrape, "prometheus_notifications_sent_total");
        (sent > 0.0).then_some(sent)
    })
    .await;
    let (_, _, scrape) = support::get(&format!("{}/metrics", prom.url)).await;
    assert_eq!(
        family_total(&scrape, "prometheus_notifications_errors_total"),
        0.0
    );

    dashboard_panels_return_data(&prom).await;

    // ...which holds it once: one label set, one fingerprint.
    let held: Vec<Value> = am
        .alerts()
        .await
        .into_iter()
        .filter(|a| is_checkout_error_alert(&a["labels"]))
        .collect();
    assert_eq!(held.len(), 1, "deduplicated: {held:?}");
    assert_eq!(held[0]["labels"], local["labels"]);
    assert_eq!(held[0]["status"]["state"], "active");
    assert_eq!(held[0]["fingerprint"], local["fingerprint"]);
    eprintln!(
        "fleet: redline delivered {redline_delivered}, prometheus sent {prometheus_sent}, \
         one alert in alertmanager after {:?}",
        started.elapsed()
    );
}

/// Every query of every panel of the Grafana dashboard (deploy/grafana/), with its variables
/// replaced as Grafana would for the `checkout` flow, returns data from this Prometheus; the
/// owner and runbook panel shows the flow's config.
async fn dashboard_panels_return_data(prom: &Prometheus) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/dashboards/redline-flows.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(
        panels.len() >= 6,
        "rate, error %, timeout %, latency, alert state, owner"
    );
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$flow", "checkout");
            assert!(!expr.contains('$'), "{title}: a variable left in {expr}");
            let result = eventually(DEADLINE, title, || async {
                let result = prom.query(&expr).await;
                (!result.is_empty()).then_some(result)
            })
            .await;
            if title.contains("owner") {
                let info = &result[0]["metric"];
                assert_eq!(info["owner"], "payments-team", "{result:?}");
                assert_eq!(info["runbook"], "https://wiki.example/runbooks/checkout");
            }
            if title == "Error %" {
                assert_eq!(
                    result[0]["value"][1], "1",
                    "every request fails: {result:?}"
                );
            }
            if title == "Alert state" {
                assert_eq!(result[0]["value"][1], "2", "firing: {result:?}");
            }
        }
    }
}

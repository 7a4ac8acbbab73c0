//! `/metrics` in both exposition formats: `promtool check metrics` on the plain text, and a real
//! Prometheus scraping OpenMetrics and storing its exemplars, which name traces the collector got.
//!
//! promtool 2.42 (Debian 12's, installed by tests/run.sh) lints only the 0.0.4 text format: on
//! OpenMetrics it stops at the first exemplar (`expected integer as timestamp, got "#"`). So the
//! OpenMetrics output is checked by Prometheus itself, whose OpenMetrics parser is the one that
//! matters: the scrape must be healthy and the exemplars queryable.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::otlp::Collector;
use crate::support::*;

const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";

/// Redline exporting every trace to an in-process collector, after `n` requests to `/echo`.
async fn redline_with_kept_traces(n: usize) -> (Redline, Collector) {
    let collector = Collector::http().await;
    let up = app().await;
    let endpoint = collector.url();
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ],
    );
    for _ in 0..n {
        assert_eq!(get(&rl.url("/echo")).await.0, 200);
    }
    rl.metrics_counting(n as f64).await;
    (rl, collector)
}

async fn scrape(rl: &Redline, accept: &str) -> (String, String) {
    let req = Request::get(rl.admin_url("/metrics"))
        .header("accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, 200);
    let content_type = headers["content-type"].to_str().unwrap().to_string();
    (content_type, body)
}

fn promtool_check_metrics(text: &str) -> std::process::Output {
    let promtool = binary_on_path(&["promtool"], "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The trace ids of the exemplars in an OpenMetrics scrape.
fn exemplar_traces(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_bucket{"))
        .filter_map(|l| l.split_once(" # {trace_id=\"")?.1.get(..32))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_formats_are_valid_and_openmetrics_links_buckets_to_kept_traces() {
    let (rl, collector) = redline_with_kept_traces(3).await;
    let (content_type, plain) = scrape(&rl, "text/plain").await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let lint = promtool_check_metrics(&plain);
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}\n{plain}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(!plain.contains("trace_id"), "exemplars only in OpenMetrics");
    let (content_type, om) = scrape(&rl, OPENMETRICS).await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let traces = exemplar_traces(&om);
    assert!(!traces.is_empty(), "no exemplar: {om}");
    // Each exemplar's trace is one the collector received.
    let exported = eventually(Duration::from_secs(10), "spans exported", || async {
        let ids: Vec<String> = collector
            .spans()
            .iter()
            .map(|s| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        traces.iter().all(|t| ids.contains(t)).then_some(ids)
    })
    .await;
    assert!(!exported.is_empty());
    // Same series, same values, only the presentation differs.
    let count = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(count(&plain), count(&om));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_openmetrics_and_stores_the_exemplars() {
    let (rl, _collector) = redline_with_kept_traces(3).await;
    let (_, om) = scrape(&rl, OPENMETRICS).await;
    let traces = exemplar_traces(&om);
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: redline\n    static_configs:\n      - targets: ['{}']\n",
        rl.admin
    );
    let prom =
        Prometheus::start_with_args(&config, &[], &["--enable-feature=exemplar-storage"]).await;
    let target = eventually(Duration::from_secs(20), "a healthy scrape", || async {
        let data = prom.api("targets").await;
        let target = data["activeTargets"][0].clone();
        let error = target["lastError"].as_str().unwrap_or_default();
        assert!(error.is_empty(), "scrape failed: {target}");
        (target["health"] == "up").then_some(target)
    })
    .await;
    assert_eq!(target["lastError"], "", "{target}");
    let stored = eventually(
        Duration::from_secs(20),
        "exemplars in prometheus",
        || async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let q = percent_encode("http_server_request_duration_seconds_bucket");
            let path = format!(
                "query_exemplars?query={q}&start={}&end={}",
                now - 600,
                now + 60
            );
            let data = prom.api(&path).await;
            let ids: Vec<String> = data
                .as_array()?
                .iter()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_string))
                .collect();
            (!ids.is_empty()).then_some(ids)
        },
    )
    .await;
    assert!(
        stored.iter().all(|id| traces.contains(id)),
        "prometheus {stored:?}, redline {traces:?}"
    );
}

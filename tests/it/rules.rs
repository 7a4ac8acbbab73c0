//! `redline rules`: the exported Prometheus rules pass `promtool check rules` for every example config, the committed rule file is current, and `promtool test rules` proves they fire as the engine does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The committed rule file and the config it is generated from.
const RULES_FILE: &str = "deploy/prometheus/rules/redline.rules.yml";
const RULES_SOURCE: &str = "config/full.yaml";

fn promtool() -> &'static str {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "promtool is missing: apt-get install prometheus (tests/run.sh does this)"
    );
    "promtool"
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `redline rules --config <config>` run in the repository root, without the environment
/// overrides that would change the output (`OTEL_SERVICE_NAME`).
fn redline_rules(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redline"))
        .arg("rules")
        .arg("--config")
        .arg(config)
        .current_dir(REPO)
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("REDLINE_CONFIG")
        .output()
        .expect("run redline rules")
}

fn check_rules(file: &Path) -> Output {
    Command::new(promtool())
        .args(["check", "rules"])
        .arg(file)
        .output()
        .expect("run promtool check rules")
}

fn files_in(dir: &str, ext: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(REPO).join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ext.contains(&x))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_exports_rules_that_promtool_accepts() {
    let dir = tempfile::tempdir().unwrap();
    // Every config in config/ (a new example is covered automatically), plus one whose flows
    // have no alerts at all: that must still be a valid (empty) rule file.
    let mut configs = files_in("config", &["yaml", "yml"]);
    assert!(configs.len() >= 2, "{configs:?}");
    let no_alerts = dir.path().join("no-alerts.yaml");
    std::fs::write(
        &no_alerts,
        "upstream: http://127.0.0.1:3000\nflows:\n  - name: quiet\n    match: /quiet\n",
    )
    .unwrap();
    configs.push(no_alerts);
    for (i, config) in configs.iter().enumerate() {
        let out = redline_rules(config);
        assert!(
            out.status.success(),
            "redline rules --config {}: {}",
            config.display(),
            text(&out)
        );
        let rules = dir.path().join(format!("rules-{i}.yml"));
        std::fs::write(&rules, &out.stdout).unwrap();
        let check = check_rules(&rules);
        assert!(
            check.status.success(),
            "promtool check rules on the rules of {}: {}",
            config.display(),
            text(&check)
        );
        assert!(
            text(&check).contains("SUCCESS"),
            "{}: {}",
            config.display(),
            text(&check)
        );
    }
    let last = dir.path().join(format!("rules-{}.yml", configs.len() - 1));
    let empty = std::fs::read_to_string(last).unwrap();
    assert!(empty.contains("groups: []"), "{empty}");
}

#[test]
fn committed_rule_file_is_the_current_output() {
    let out = redline_rules(Path::new(RULES_SOURCE));
    assert!(out.status.success(), "{}", text(&out));
    let committed = std::fs::read_to_string(Path::new(REPO).join(RULES_FILE))
        .unwrap_or_else(|e| panic!("{RULES_FILE}: {e}"));
    let current = String::from_utf8_lossy(&out.stdout);
    assert!(
        committed == current,
        "{RULES_FILE} is stale; regenerate it from the repository root with:\n  \
         cargo run -q -- rules --config {RULES_SOURCE} > {RULES_FILE}\n\
         and check that deploy/prometheus/tests/ still pass (promtool test rules \
         deploy/prometheus/tests/*.yml)"
    );
    let check = check_rules(&Path::new(REPO).join(RULES_FILE));
    assert!(check.status.success(), "{}", text(&check));
    // The example Prometheus config loads that file (and promtool checks it through it).
    let config = Command::new(promtool())
        .args(["check", "config"])
        .arg(Path::new(REPO).join("deploy/prometheus/prometheus.yml"))
        .output()
        .expect("run promtool check config");
    assert!(config.status.success(), "{}", text(&config));
    assert!(
        text(&config).contains("1 rule files found"),
        "{}",
        text(&config)
    );
}

#[test]
fn promtool_unit_tests_in_deploy_pass() {
    let promtool = promtool();
    let tests = files_in("deploy/prometheus/tests", &["yml", "yaml"]);
    assert!(
        tests.len() >= 4,
        "expected the promtool unit tests in deploy/prometheus/tests: {tests:?}"
    );
    // One process per file, all at once: a failure names its file, and the slow SLO file
    // does not hold the others up.
    let running: Vec<_> = tests
        .iter()
        .map(|file| {
            let child = Command::new(promtool)
                .args(["test", "rules"])
                .arg(file)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run promtool test rules");
            (file, child)
        })
        .collect();
    for (file, child) in running {
        let out = child.wait_with_output().expect("promtool output");
        assert!(
            out.status.success() && text(&out).contains("SUCCESS"),
            "promtool test rules {}:\n{}",
            file.display(),
            text(&out)
        );
    }
}

/// A config of its own: every rule kind on flows other than full.yaml's, including a
/// quantile threshold on the highest histogram boundary, where `histogram_quantile` caps.
const CONFIG: &str = r#"
service: shop
upstream: http://127.0.0.1:3000
flows:
  - name: checkout
    match: "POST /api/checkout"
    owner: payments
    alerts:
      - when: "error_rate > 2%"
      - when: "p99 > 10s"
        for: 0s
    slo: { objective: 99%, latency: 250ms }
  - name: quiet
    match: "GET /quiet"
    alerts:
      - when: "rps < 0.05"
"#;

const SERIES: &str = "http_server_request_duration_seconds";

#[test]
fn exported_rules_pass_promtool_check_and_fire_in_promtool_test() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = redline_rules(&config);
    assert!(out.status.success(), "{}", text(&out));
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, &out.stdout).unwrap();

    let check = check_rules(&rules);
    assert!(check.status.success(), "{}", text(&check));
    // 2 alerts + 2 SLO alerts + 10 recordings on checkout, 1 alert on quiet.
    assert!(
        text(&check).contains("SUCCESS: 15 rules found"),
        "{}",
        text(&check)
    );

    // checkout: 4 ok/s under 250 ms and 0.4 failed/s at 12 s (beyond the last boundary, 10 s):
    // error rate 9.1 %, p99 in the +Inf bucket, 9.1 % bad (burn 9.1x: the 6h/30m pair only
    // once 30 minutes are covered). Nothing at all on `quiet`.
    let labels = |code: &str, error: &str| {
        format!(
            r#"flow="checkout",http_request_method="POST",http_route="/api/checkout",http_response_status_code="{code}",error_type="{error}""#
        )
    };
    let (ok, bad) = (labels("200", ""), labels("500", "500"));
    let mut series = String::new();
    for (l, per_15s) in [(&ok, 60), (&bad, 6)] {
        let fast = if *l == ok { per_15s } else { 0 };
        for (le, n) in [("0.25", fast), ("10", fast), ("+Inf", per_15s)] {
            series.push_str(&format!(
                "      - series: '{SERIES}_bucket{{{l},le=\"{le}\"}}'\n        values: '0+{n}x200'\n"
            ));
        }
        series.push_str(&format!(
            "      - series: '{SERIES}_count{{{l}}}'\n        values: '0+{per_15s}x200'\n"
        ));
    }
    let test = format!(
        r#"rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
{series}    alert_rule_test:
      - eval_time: 30s
        alertname: FlowErrorRate
        exp_alerts: []
      - eval_time: 10m
        alertname: FlowErrorRate
        exp_alerts:
          - exp_labels: {{ flow: checkout, severity: warning, owner: payments, service: shop }}
            exp_annotations: {{ summary: "checkout: error rate 9.091% > 2% over 5m (1320 requests)" }}
      - eval_time: 10m
        alertname: FlowLatencyP99
        exp_alerts:
          - exp_labels: {{ flow: checkout, severity: warning, owner: payments, service: shop }}
            exp_annotations: {{ summary: "checkout: p99 10s > 10s over 5m (1320 requests)" }}
      - eval_time: 10m
        alertname: FlowTrafficLow
        exp_alerts:
          - exp_labels: {{ flow: quiet, severity: warning, service: shop }}
            exp_annotations: {{ summary: "quiet: rps 0 < 0.05 over 5m (0 requests)" }}
      - eval_time: 10m
        alertname: FlowSLOBurnRate
        exp_alerts: []
      - eval_time: 40m
        alertname: FlowSLOBurnRate
        exp_alerts:
          - exp_labels: {{ flow: checkout, severity: page, owner: payments, service: shop }}
            exp_annotations: {{ summary: "checkout: error budget burn rate 9.1x > 14.4x over 1h and 5m, or > 6x over 6h and 30m (SLO 99%)" }}
"#
    );
    let test_file = dir.path().join("test.yml");
    std::fs::write(&test_file, test).unwrap();
    let run = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&test_file)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
}

/// `denied_rate`: refusals by `access` over all requests, with the refusals kept out of the
/// flow's error rate (an error rule that counted them would fire too).
const DENIED_CONFIG: &str = r#"
service: shop
upstream: http://127.0.0.1:3000
auth:
  api_keys: { file: keys.yaml }
flows:
  - name: orders
    match: "GET /api/orders"
    access: authenticated
    alerts:
      - when: "denied_rate > 20%"
        min_requests: 100
      - when: "error_rate > 5%"
"#;

#[test]
fn denied_rate_rule_is_exported_and_fires_in_promtool_test() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, DENIED_CONFIG).unwrap();
    let out = redline_rules(&config);
    assert!(out.status.success(), "{}", text(&out));
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, &out.stdout).unwrap();
    let check = check_rules(&rules);
    assert!(
        text(&check).contains("SUCCESS: 2 rules found"),
        "{}",
        text(&check)
    );

    // Per 15 s: 60 served, 20 unauthenticated, 5 forbidden, 3 failed: 25 of 88 denied
    // (28.4 %), 3 of 88 errors (3.4 %). Before 60 s, fewer than 100 requests in the window.
    let mut series = String::new();
    for (code, error, per_15s) in [
        ("200", "", 60),
        ("401", "unauthenticated", 20),
        ("403", "forbidden", 5),
        ("500", "500", 3),
    ] {
        series.push_str(&format!(
            "      - series: '{SERIES}_count{{flow=\"orders\",http_request_method=\"GET\",http_route=\"/api/orders\",http_response_status_code=\"{code}\",error_type=\"{error}\"}}'\n        values: '0+{per_15s}x40'\n"
        ));
    }
    let test = format!(
        r#"rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
{series}    alert_rule_test:
      - eval_time: 15s
        alertname: FlowDeniedRate
        exp_alerts: []
      - eval_time: 5m
        alertname: FlowDeniedRate
        exp_alerts:
          - exp_labels: {{ flow: orders, severity: warning, service: shop }}
            exp_annotations: {{ summary: "orders: denied rate 28.41% > 20% over 5m (1760 requests)" }}
      - eval_time: 5m
        alertname: FlowErrorRate
        exp_alerts: []
"#
    );
    let test_file = dir.path().join("test.yml");
    std::fs::write(&test_file, test).unwrap();
    let run = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&test_file)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
}

#[test]
fn a_config_error_exits_2_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(&config, "upstream: http://127.0.0.1:3000\nflows: 3\n").unwrap();
    let out = redline_rules(&config);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bad.yaml"), "{}", text(&out));
    assert!(out.stdout.is_empty());
}

//! `redline rules`: the exported Prometheus rules pass `promtool check rules` and fire in `promtool test rules`.

use std::process::Command;

const CONFIG: &str = r#"
service: shop
upstream: http://127.0.0.1:3000
flows:
  - name: checkout
    match: "POST /api/checkout"
    owner: payments
    alerts:
      - when: "error_rate > 2%"
      - when: "p95 > 800ms"
    slo: { objective: 99.5%, latency: 500ms }
  - name: quiet
    match: "GET /quiet"
    alerts:
      - when: "rps < 0.05"
"#;

const SERIES: &str = "http_server_request_duration_seconds_count";

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

#[test]
fn exported_rules_pass_promtool_check_and_fire_in_promtool_test() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redline.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["rules", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, &out.stdout).unwrap();

    let check = Command::new(promtool)
        .args(["check", "rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 5 rules found"),
        "{check:?}"
    );

    // 4 ok/s and 0.4 failed/s on checkout → error rate 0.4 / 4.4 = 9.091 %; nothing on `quiet`.
    let ok = format!(
        r#"{SERIES}{{flow="checkout",http_request_method="POST",http_route="/api/checkout",http_response_status_code="200",error_type=""}}"#
    );
    let bad = format!(
        r#"{SERIES}{{flow="checkout",http_request_method="POST",http_route="/api/checkout",http_response_status_code="500",error_type="500"}}"#
    );
    let test = format!(
        r#"rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: '{ok}'
        values: '0+60x80'
      - series: '{bad}'
        values: '0+6x80'
    alert_rule_test:
      - eval_time: 30s
        alertname: FlowErrorRate
        exp_alerts: []
      - eval_time: 10m
        alertname: FlowErrorRate
        exp_alerts:
          - exp_labels: {{ flow: checkout, severity: warning, owner: payments, service: shop }}
            exp_annotations: {{ summary: "checkout: error rate 9.091% > 2% over 5m" }}
      - eval_time: 10m
        alertname: FlowTrafficLow
        exp_alerts:
          - exp_labels: {{ flow: quiet, severity: warning, service: shop }}
            exp_annotations: {{ summary: "quiet: 0 requests/s < 0.05 over 5m" }}
"#
    );
    let test_file = dir.path().join("test.yml");
    std::fs::write(&test_file, test).unwrap();
    let run = Command::new(promtool)
        .args(["test", "rules", test_file.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

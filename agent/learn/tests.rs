//! Unit tests of the learned config: patterns, coverage, thresholds, and that the YAML parses.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::metrics::DEFAULT_BUCKETS;

/// A route with `n` requests, all in bucket `bucket`, `errors` of them errors.
fn stat(method: &str, route: &str, n: u64, bucket: usize, errors: u64) -> RouteStat {
    let mut counts = vec![0; DEFAULT_BUCKETS.len() + 1];
    counts[bucket] = n;
    RouteStat {
        method: method.into(),
        route: route.into(),
        requests: n,
        errors,
        timeouts: 0,
        counts,
    }
}

fn observed(routes: Vec<RouteStat>, config: &str) -> Observed {
    Observed {
        routes,
        bounds: DEFAULT_BUCKETS.to_vec(),
        window: Duration::from_secs(600),
        at_ms: 1_795_639_765_000,
        config: Arc::new(Config::parse(config, "running").unwrap()),
    }
}

const RUNNING: &str = "upstream: http://127.0.0.1:3000\nlisten: 127.0.0.1:8080\n";

#[test]
fn patterns_rename_repeated_placeholders_and_refuse_the_overflow() {
    assert_eq!(
        pattern_of("GET", "/a/{id}/b/{id}").unwrap(),
        "GET /a/{id}/b/{id2}"
    );
    assert_eq!(pattern_of("POST", "/").unwrap(), "POST /");
    assert_eq!(pattern_of("GET", "/{other}"), None);
    assert_eq!(pattern_of("_OTHER", "/a"), None);
}

#[test]
fn busy_groups_become_flows_and_the_rest_is_reported() {
    let routes = vec![
        stat("GET", "/api/orders/{id}", 600, 3, 6),
        stat("POST", "/api/orders", 200, 7, 0),
        stat("GET", "/health", 150, 0, 0),
        stat("GET", "/rare", 5, 0, 0),
        stat("GET", "/{other}", 40, 0, 0),
    ];
    let p = propose(&observed(routes, RUNNING)).unwrap();
    let names: Vec<&str> = p.flows.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["orders-read", "orders-write", "health"]);
    assert_eq!((p.total, p.covered), (995, 950));
    let left: Vec<&str> = p.uncovered.iter().map(|r| r.route.as_str()).collect();
    assert_eq!(left, ["/{other}", "/rare"]);

    let reads = &p.flows[0];
    assert_eq!(reads.patterns, ["GET /api/orders/{id}"]);
    // All in (25ms, 50ms]: p95 48.75ms, x1.5 = 73ms, below the 100ms floor.
    assert_eq!(reads.latency, Some(Duration::from_millis(100)));
    assert_eq!(reads.error_rate, 0.05, "1% observed, 5% floor");
    assert_eq!(reads.timeout, Duration::from_secs(5));
    // All in (250ms, 500ms]: p95 487.5ms, x1.5 = 731ms -> 750ms.
    assert_eq!(p.flows[1].latency, Some(Duration::from_millis(750)));
}

#[test]
fn the_yaml_parses_keeps_the_running_settings_and_says_where_values_come_from() {
    let running = "service: shop\nupstream: http://127.0.0.1:3000\nlisten: 127.0.0.1:8080\n\
                   admin: { listen: 127.0.0.1:9902 }\nalerting:\n  eval_interval: 1s\n  \
                   default_alerts: [{ when: \"error_rate > 5%\", over: 1m, for: 1s, min_requests: 5 }]\n";
    let routes = vec![stat("GET", "/api/orders/{id}", 100, 3, 30)];
    let p = propose(&observed(routes, running)).unwrap();
    let config = Config::parse(&p.yaml, "learned").unwrap();
    assert_eq!(config.service, "shop");
    assert_eq!(config.admin.listen.port(), 9902);
    assert_eq!(
        config.upstream.unwrap().to_string(),
        "http://127.0.0.1:3000"
    );
    assert_eq!(config.alerting.eval_interval, Duration::from_secs(1));
    let flow = &config.flows[0];
    assert_eq!(flow.owner.as_deref(), Some("TODO"));
    let whens: Vec<String> = flow.alerts.iter().map(|a| a.when.to_string()).collect();
    assert_eq!(
        whens,
        ["p95 > 100ms", "error_rate > 50%", "timeout_rate > 5%"]
    );
    // Timing follows the running default alerts.
    assert!(
        flow.alerts
            .iter()
            .all(|a| a.over == Duration::from_secs(60))
    );
    assert!(flow.alerts.iter().all(|a| a.for_ == Duration::from_secs(1)));
    assert!(flow.alerts.iter().all(|a| a.min_requests == 5));
    for needle in [
        "Learned from 100 unmatched requests over 10m",
        "p95 49ms, 30 errors (30%)",
        "# observed p95 49ms x 1.5, rounded up",
        "cover 100% of them",
    ] {
        assert!(p.yaml.contains(needle), "{needle:?} not in:\n{}", p.yaml);
    }
}

#[test]
fn no_traffic_is_a_valid_file_without_flows() {
    let p = propose(&observed(Vec::new(), RUNNING)).unwrap();
    assert!(p.flows.is_empty());
    assert!(Config::parse(&p.yaml, "learned").unwrap().flows.is_empty());
    assert!(p.yaml.contains("No busy unmatched route yet"));
}

#[test]
fn configured_flows_are_kept_and_their_names_stay_theirs() {
    let running = "upstream: http://127.0.0.1:3000\nflows:\n  - name: orders\n    match: \"POST /checkout\"\n    \
                   owner: payments\n    runbook: https://wiki/x\n    timeout: 2s\n    alerts:\n      \
                   - { when: \"p99 > 1s\", severity: page, name: CheckoutSlow }\n    slo: { objective: 99.5%, latency: 300ms }\n";
    let routes = vec![stat("GET", "/api/orders/{id}", 100, 3, 0)];
    let p = propose(&observed(routes, running)).unwrap();
    let config = Config::parse(&p.yaml, "learned").unwrap();
    let before = Config::parse(running, "running").unwrap();
    assert_eq!(
        config.flows[0], before.flows[0],
        "kept as it was:\n{}",
        p.yaml
    );
    assert_eq!(config.flows[1].name, "orders-2");
}

//! Unit tests of the configuration model.

use std::time::Duration;

use super::*;

fn ok(yaml: &str) -> Config {
    match Config::parse(yaml, "t.yaml") {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got {e}"),
    }
}

fn err(yaml: &str) -> ConfigError {
    match Config::parse(yaml, "t.yaml") {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

/// Asserts the error position and that the message contains `needle`.
fn assert_err(yaml: &str, line: usize, column: usize, needle: &str) -> ConfigError {
    let e = err(yaml);
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "wrong position for: {e}"
    );
    assert!(e.message.contains(needle), "{needle:?} not in: {e}");
    assert_eq!(e.file, "t.yaml");
    e
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------- defaults

#[test]
fn defaults_match_the_contract() {
    let c = Config::default();
    assert_eq!(c.service, "redline");
    assert_eq!(
        c.listen.to_string(),
        "127.0.0.1:8080",
        "loopback by default"
    );
    assert_eq!(c.upstream, None);
    assert_eq!(c.timeout, secs(30));
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9901");
    assert_eq!(c.admin.token_file, None);
    assert!(!c.admin.protect_reads);
    assert!(c.flows.is_empty());
    assert!(c.routes.templating);
    assert_eq!(c.routes.max_templates, 200);
    assert_eq!(c.alerting.eval_interval, secs(5));
    assert_eq!(c.alerting.repeat_interval, secs(4 * 3600));
    assert!(c.alerting.receivers.is_empty());
    assert_eq!(c.telemetry.otlp, None);
    assert_eq!(c.telemetry.traces, TracesConfig::default());
    assert_eq!(c.telemetry.metrics.interval, secs(60));
    assert_eq!(c.telemetry.metrics.buckets, DEFAULT_BUCKETS.to_vec());
    assert_eq!(c.telemetry.access_log, AccessLogFormat::Json);
    assert_eq!(c.redact.headers, DEFAULT_REDACT_HEADERS.to_vec());
    assert_eq!(c.redact.query_params, DEFAULT_REDACT_QUERY_PARAMS.to_vec());
    assert_eq!(c.data_dir, None);
    assert_eq!(c.limits.header_read_timeout, secs(10));
    assert_eq!(c.limits.max_header_bytes, 65536);
    assert_eq!(c.limits.shutdown_grace, secs(30));
    assert_eq!(c.limits.body_read_timeout, secs(60));
    assert_eq!(c.upstream_connections.max_connecting.get(), 4);
    assert_eq!(c.upstream_connections.connect_timeout, secs(5));
    assert_eq!(c.source, None);
}

#[test]
fn upstream_connections_parse_and_refuse_a_zero_opening_cap() {
    let c =
        ok("upstream_connections: { max_connecting: 2, max: 64, queue: 10, queue_timeout: 1s }\n");
    let u = c.upstream_connections;
    assert_eq!((u.max_connecting.get(), u.max, u.queue), (2, 64, 10));
    assert_eq!(u.queue_timeout, secs(1));
    let e = Config::parse("upstream_connections:\n  max_connecting: 0\n", "t.yaml").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn empty_or_comment_only_file_is_the_default_config() {
    assert_eq!(ok(""), Config::default());
    assert_eq!(ok("# nothing yet\n"), Config::default());
    assert_eq!(ok("---\n"), Config::default());
}

#[test]
fn partial_sections_keep_other_defaults() {
    let c = ok("admin: { protect_reads: true }\nlimits: { max_header_bytes: 32KiB }\n");
    assert!(c.admin.protect_reads);
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9901");
    assert_eq!(c.limits.max_header_bytes, 32 * 1024);
    assert_eq!(c.limits.shutdown_grace, secs(30));
}

// ---------------------------------------------------------------- when

#[test]
fn when_forms_parse_and_display_canonically() {
    let cases = [
        ("p50 > 100ms", "p50 > 100ms"),
        ("p90 > 1s", "p90 > 1s"),
        ("p95>800ms", "p95 > 800ms"),
        ("  p99  >   1500ms ", "p99 > 1s500ms"),
        ("error_rate > 2%", "error_rate > 2%"),
        ("error_rate>0.5%", "error_rate > 0.5%"),
        ("timeout_rate > 1 %", "timeout_rate > 1%"),
        ("rps < 0.05", "rps < 0.05"),
        ("rps<3", "rps < 3"),
    ];
    for (text, canonical) in cases {
        let w: When = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(w.to_string(), canonical);
        assert_eq!(canonical.parse::<When>().ok(), Some(w));
    }
}

#[test]
fn when_values() {
    let latency = When::Latency {
        quantile: Quantile::P95,
        threshold: ms(800),
    };
    assert_eq!("p95 > 800ms".parse::<When>(), Ok(latency));
    assert_eq!("error_rate > 2%".parse::<When>(), Ok(When::ErrorRate(0.02)));
    assert_eq!(
        "timeout_rate > 1%".parse::<When>(),
        Ok(When::TimeoutRate(0.01))
    );
    assert_eq!("rps < 0.05".parse::<When>(), Ok(When::RpsBelow(0.05)));
    assert_eq!(
        "denied_rate > 20%".parse::<When>(),
        Ok(When::DeniedRate(0.2))
    );
    assert_eq!(When::DeniedRate(0.2).to_string(), "denied_rate > 20%");
    assert_eq!(Quantile::P95.value(), 0.95);
    assert_eq!(Quantile::P99.label(), "p99");
}

#[test]
fn when_rejects_other_forms_and_lists_the_accepted_ones() {
    for bad in [
        "p95 < 800ms",
        "p95 >= 800ms",
        "p75 > 1s",
        "latency > 1s",
        "rps > 5",
        "error_rate < 2%",
        "p95",
        "",
    ] {
        let e = bad.parse::<When>().expect_err(bad);
        assert!(e.contains("p50|p90|p95|p99 > DURATION"), "{bad}: {e}");
        assert!(e.contains("rps < NUMBER"), "{bad}: {e}");
    }
    let unit = "p95 > 800".parse::<When>().expect_err("no unit");
    assert!(unit.contains("no unit"), "{unit}");
    let pct = "error_rate > 2".parse::<When>().expect_err("no %");
    assert!(pct.contains("no %"), "{pct}");
    assert!("rps < 0".parse::<When>().is_err());
    assert!("rps < -1".parse::<When>().is_err());
    assert!("p95 > 0s".parse::<When>().is_err());
    assert!("error_rate > 200%".parse::<When>().is_err());
}

// ---------------------------------------------------------------- scalars

#[test]
fn durations_parse() {
    let cases = [
        ("250ms", ms(250)),
        ("5s", secs(5)),
        ("1m", secs(60)),
        ("4h", secs(4 * 3600)),
        ("1h30m", secs(5400)),
        ("3d", secs(3 * 86400)),
        ("1w", secs(7 * 86400)),
        ("1.5s", ms(1500)),
        ("0.25s", ms(250)),
        ("1s500ms", ms(1500)),
        ("100us", Duration::from_micros(100)),
        ("10ns", Duration::from_nanos(10)),
        (" 5s ", secs(5)),
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
}

#[test]
fn durations_reject_bad_input() {
    let cases = [
        ("", "empty"),
        ("  ", "empty"),
        ("-5s", "negative"),
        ("5", "no unit"),
        ("1.5", "no unit"),
        ("5x", "unknown unit"),
        ("5 s", "unknown unit"),
        ("ms", "invalid duration"),
        ("1.2.3s", "invalid duration"),
        ("s5", "invalid duration"),
        ("99999999999999999999d", "too large"),
    ];
    for (text, needle) in cases {
        let e = parse_duration(text).expect_err(text);
        assert!(e.contains(needle), "{text}: {e}");
    }
    assert!(parse_positive_duration("0s").is_err());
}

#[test]
fn durations_format_canonically() {
    assert_eq!(format_duration(Duration::ZERO), "0s");
    assert_eq!(format_duration(ms(800)), "800ms");
    assert_eq!(format_duration(secs(90)), "1m30s");
    assert_eq!(format_duration(secs(4 * 3600)), "4h");
    assert_eq!(format_duration(secs(3 * 86400)), "3d");
    assert_eq!(format_duration(ms(1500)), "1s500ms");
    assert_eq!(format_duration(Duration::from_micros(1500)), "1ms500us");
}

#[test]
fn percentages_parse() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(parse_percent("2%").unwrap_or(-1.0), 0.02));
    assert!(close(parse_percent("99.5%").unwrap_or(-1.0), 0.995));
    assert!(close(parse_percent(" 0.1 % ").unwrap_or(-1.0), 0.001));
    assert_eq!(parse_percent("0%"), Ok(0.0));
    assert_eq!(parse_percent("100%"), Ok(1.0));
    for (bad, needle) in [
        ("101%", "above 100%"),
        ("-1%", "negative"),
        ("2", "no %"),
        ("0.02", "no %"),
        ("%", "invalid percentage"),
        ("abc%", "invalid percentage"),
        ("1e1%", "invalid percentage"),
        ("inf%", "invalid percentage"),
    ] {
        let e = parse_percent(bad).expect_err(bad);
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn percentages_format_without_float_noise() {
    assert_eq!(format_percent(0.02), "2%");
    assert_eq!(format_percent(0.07), "7%");
    assert_eq!(format_percent(0.995), "99.5%");
    assert_eq!(format_percent(0.001), "0.1%");
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("64KiB"), Ok(65536));
    assert_eq!(parse_size("64kib"), Ok(65536));
    assert_eq!(parse_size("64KB"), Ok(64000));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert_eq!(parse_size("1 MB"), Ok(1_000_000));
    assert_eq!(parse_size("512B"), Ok(512));
    for bad in ["", "KiB", "64XB", "-1", "1.5KiB"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
}

#[test]
fn listen_addresses_parse() {
    assert_eq!(
        parse_listen(":8080").map(|a| a.to_string()),
        Ok("0.0.0.0:8080".into())
    );
    assert_eq!(
        parse_listen("[::1]:9901").map(|a| a.to_string()),
        Ok("[::1]:9901".into())
    );
    assert!(parse_listen("localhost:80").is_err());
    assert_eq!(ok("listen: :9000\n").listen.to_string(), "0.0.0.0:9000");
    assert!(parse_listen("1.2.3.4").is_err());
}

// ---------------------------------------------------------------- upstream

#[test]
fn upstream_accepts_http_origins() {
    let cases = [
        ("http://127.0.0.1:3000", "127.0.0.1:3000"),
        ("http://127.0.0.1:3000/", "127.0.0.1:3000"),
        ("http://app", "app:80"),
        ("http://[::1]:3000", "[::1]:3000"),
    ];
    for (text, authority) in cases {
        let u = Upstream::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(u.authority, authority);
        assert_eq!(u.scheme, "http");
        assert_eq!(u.uri.to_string(), format!("http://{authority}/"));
        assert_eq!(u.to_string(), format!("http://{authority}"));
    }
}

#[test]
fn upstream_rejects_everything_else_clearly() {
    let cases = [
        ("https://app", "https upstreams are not supported yet"),
        ("http://app/api", "has a path"),
        ("http://app/?x=1", "query string"),
        ("http://user:pw@app", "credentials"),
        ("127.0.0.1:3000", "no scheme"),
        ("ftp://app", "unsupported scheme"),
        ("http://app:0", "invalid port \"0\""),
        ("http://app:99999", "invalid port"),
        ("http://app:abc", "invalid port"),
        ("http://app:", "invalid port"),
        ("http://app#top", "fragment"),
        ("http://", "invalid upstream URL"),
        ("not a url", "invalid upstream URL"),
        ("", "invalid upstream URL"),
    ];
    for (text, needle) in cases {
        let e = Upstream::parse(text).expect_err(text);
        assert!(e.contains(needle), "{text}: {e}");
        assert!(e.contains("http://"), "{text}: {e}");
    }
}

// ---------------------------------------------------------------- errors, with positions

#[test]
fn yaml_syntax_error_is_positioned() {
    let e = assert_err(
        "service: a\n  bad: indent\n",
        2,
        6,
        "mapping values are not allowed",
    );
    assert!(
        !e.message.contains(" at line 2"),
        "position left in message: {e}"
    );
    assert_eq!(e.to_string(), format!("t.yaml:2:6: {}", e.message));
    let quote = assert_err("service: \"abc\n", 2, 1, "unexpected end of stream");
    assert!(
        quote.message.contains("quoted scalar at line 1 column 10"),
        "{quote}"
    );
    assert_err(
        "flows:\n  - name: a\n    match: /a\n  - *x\n",
        4,
        5,
        "unknown anchor",
    );
}

#[test]
fn duplicate_keys_point_at_the_repeated_key() {
    assert_err(
        "timeout: 5s\nservice: a\ntimeout: 6s\n",
        3,
        1,
        "duplicate key `timeout`",
    );
    assert_err(
        "admin: { listen: \"127.0.0.1:1\", listen: \"127.0.0.1:2\" }\n",
        1,
        33,
        "duplicate key `listen`",
    );
    let headers = "telemetry:\n  otlp:\n    endpoint: http://c:4318\n    headers: { a: 1, a: 2 }\n";
    assert_err(headers, 4, 22, "duplicate key `a`");
}

#[test]
fn unknown_keys_are_named_with_the_expected_ones() {
    let e = assert_err(
        "upstream: http://a:1\nlistn: 0.0.0.0:1\n",
        2,
        1,
        "unknown key `listn`; did you mean `listen`?",
    );
    assert!(e.message.contains("expected one of"), "{e}");
    assert!(e.message.contains("`listen`"), "{e}");
    assert_err(
        "admin:\n  tokn_file: x\n",
        2,
        3,
        "unknown key `tokn_file`; did you mean `token_file`?",
    );
    let nested =
        "flows:\n  - name: a\n    match: /a\n    alerts:\n      - when: rps < 1\n        fro: 1m\n";
    assert_err(nested, 6, 9, "unknown key `fro`; did you mean `for`?");
    assert_err(
        "telemetry: { traces: { ratio: 1 } }\n",
        1,
        24,
        "unknown key `ratio` (expected",
    );
    assert_err(
        "flows:\n  - name: a\n    match: /a\n    slo: { objective: 99%, budget: 1 }\n",
        4,
        28,
        "unknown key `budget` (expected",
    );
}

#[test]
fn wrong_types_are_positioned() {
    assert_err("flows: 5\n", 1, 8, "expected a sequence");
    assert_err("admin: [1]\n", 1, 8, "invalid type");
    assert_err("routes: { max_templates: lots }\n", 1, 26, "invalid type");
    assert_err(
        "flows:\n  - name: a\n    match: { GET: /a }\n",
        3,
        12,
        "pattern",
    );
}

#[test]
fn missing_required_key_points_at_the_mapping() {
    assert_err(
        "flows:\n  - name: a\n    owner: me\n",
        2,
        5,
        "missing field `match`",
    );
    assert_err(
        "flows:\n  - name: a\n    match: /a\n    alerts:\n      - over: 5m\n",
        5,
        9,
        "missing field `when`",
    );
}

#[test]
fn bad_durations_are_positioned() {
    assert_err(
        "timeout: 5\n",
        1,
        10,
        "has no unit; add one, e.g. 5s or 5ms",
    );
    assert_err("timeout: 5 minutes\n", 1, 10, "unknown unit");
    assert_err("timeout: 0s\n", 1, 10, "greater than zero");
    assert_err("alerting:\n  eval_interval: -1s\n", 2, 18, "negative");
    let rule =
        "flows:\n  - name: a\n    match: /a\n    alerts:\n      - when: rps < 1\n        for: 5\n";
    assert_err(rule, 6, 14, "no unit");
    assert_err(
        "limits: { shutdown_grace: [1] }\n",
        1,
        27,
        "expected a duration",
    );
}

#[test]
fn bad_percentages_are_positioned() {
    let slo = "flows:\n  - name: a\n    match: /a\n    slo: { objective: 0.995 }\n";
    assert_err(slo, 4, 23, "no %");
    let full = "flows:\n  - name: a\n    match: /a\n    slo: { objective: 100% }\n";
    assert_err(full, 4, 23, "must be above 0% and below 100%");
}

#[test]
fn bad_when_is_positioned() {
    let yaml = "flows:\n  - name: a\n    match: /a\n    alerts:\n      - when: \"p95 >= 1s\"\n";
    let e = assert_err(yaml, 5, 15, "expected one of `p50|p90|p95|p99 > DURATION`");
    assert!(e.message.starts_with("flows[0].alerts[0].when: "), "{e}");
    let pct = "flows:\n  - name: a\n    match: /a\n    alerts:\n      - when: error_rate > 2\n";
    assert_err(pct, 5, 15, "no %");
}

#[test]
fn bad_alert_name_is_positioned() {
    let yaml = "flows:\n  - name: a\n    match: /a\n    alerts:\n      - { when: rps < 1, name: \"Too slow\" }\n";
    assert_err(yaml, 5, 32, "invalid alert name");
}

#[test]
fn bad_patterns_are_positioned_with_the_pattern_message() {
    let one = "flows:\n  - name: a\n    match: api/x\n";
    assert_err(
        one,
        3,
        12,
        "invalid pattern \"api/x\": expected a path starting with '/'",
    );
    let list = "flows:\n  - name: a\n    match: [\"GET /a\", \"GET b\"]\n";
    assert_err(list, 3, 23, "invalid pattern \"GET b\"");
    let empty = "flows:\n  - name: a\n    match: []\n";
    assert_err(empty, 3, 12, "at least one pattern is required");
}

#[test]
fn bad_flow_names_are_positioned() {
    assert_err(
        "flows:\n  - name: Checkout\n    match: /a\n",
        2,
        11,
        "invalid flow name \"Checkout\"; expected [a-z0-9][a-z0-9_.-]*",
    );
    assert_err(
        "flows:\n  - name: -a\n    match: /a\n",
        2,
        11,
        "invalid flow name",
    );
    assert_err(
        "flows:\n  - name: unmatched\n    match: /a\n",
        2,
        11,
        "reserved",
    );
}

#[test]
fn duplicate_flow_names_point_at_the_second() {
    let yaml = "flows:\n  - name: a\n    match: /a\n  - name: b\n    match: /b\n  - { match: /c, name: a }\n";
    assert_err(yaml, 6, 24, "duplicate flow name \"a\" (also flows[0])");
}

#[test]
fn duplicate_alert_identity_points_at_the_rule() {
    let yaml = "flows:\n  - name: a\n    match: /a\n    alerts:\n      - when: p95 > 1s\n      - when: p95 > 2s\n";
    assert_err(
        yaml,
        6,
        9,
        "alert FlowLatencyP95 with severity warning is already defined",
    );
    let distinct = "flows:\n  - name: a\n    match: /a\n    alerts:\n      - when: p95 > 1s\n      - { when: p95 > 2s, severity: page }\n";
    assert_eq!(ok(distinct).flows[0].alerts.len(), 2);
}

#[test]
fn duplicate_receiver_names_point_at_the_second() {
    let yaml = "alerting:\n  receivers:\n    - { name: ops, type: webhook, url: http://h/x }\n    - { name: ops, type: slack, url_env: SLACK }\n";
    assert_err(yaml, 4, 15, "duplicate receiver name \"ops\"");
}

#[test]
fn receivers_missing_their_target_point_at_the_receiver() {
    let flow = "alerting:\n  receivers:\n    - { name: ops, type: webhook }\n";
    assert_err(
        flow,
        3,
        7,
        "receiver \"ops\" (webhook) needs `url` or `url_env`",
    );
    let block = "alerting:\n  receivers:\n    - name: chat\n      type: slack\n";
    assert_err(block, 3, 7, "needs `url` or `url_env`");
    let am = "alerting:\n  receivers:\n    - { name: am, type: alertmanager }\n";
    assert_err(am, 3, 7, "needs `url` or `urls`");
    let pd = "alerting:\n  receivers:\n    - { name: pd, type: pagerduty }\n";
    assert_err(pd, 3, 7, "needs `routing_key_env` or `routing_key_file`");
}

#[test]
fn receiver_keys_of_another_type_point_at_the_key() {
    let stray =
        "alerting:\n  receivers:\n    - { name: c, type: slack, url_env: S, routing_key_env: K }\n";
    assert_err(
        stray,
        3,
        60,
        "`routing_key_env` does not apply to slack receivers",
    );
    let both =
        "alerting:\n  receivers:\n    - { name: o, type: webhook, url: http://h, url_env: U }\n";
    assert_err(both, 3, 57, "set `url` or `url_env`, not both");
    let bad_env = "alerting:\n  receivers:\n    - { name: c, type: slack, url_env: $SLACK }\n";
    assert_err(bad_env, 3, 40, "invalid environment variable name");
    let bad_url =
        "alerting:\n  receivers:\n    - { name: o, type: webhook, url: hooks.internal }\n";
    assert_err(bad_url, 3, 38, "invalid URL");
    let bad_kind = "alerting:\n  receivers:\n    - { name: o, type: email }\n";
    assert_err(bad_kind, 3, 24, "unknown value `email` (expected one of");
}

#[test]
fn invalid_upstream_is_positioned() {
    assert_err(
        "service: s\nupstream: https://app:443\n",
        2,
        11,
        "https upstreams are not supported yet",
    );
    assert_err("upstream: http://app/api\n", 1, 11, "has a path");
}

#[test]
fn sample_ratio_out_of_range_is_positioned() {
    assert_err(
        "telemetry:\n  traces:\n    sample_ratio: 1.5\n",
        3,
        19,
        "out of range; expected 0 to 1",
    );
    assert_err(
        "telemetry: { traces: { sample_ratio: half } }\n",
        1,
        38,
        "expected a number from 0 to 1",
    );
}

#[test]
fn other_value_errors_are_positioned() {
    assert_err("listen: localhost:8080\n", 1, 9, "invalid listen address");
    assert_err("service: \"\"\n", 1, 10, "must not be empty");
    assert_err(
        "routes: { templating: maybe }\n",
        1,
        23,
        "expected auto or off",
    );
    assert_err(
        "limits:\n  max_header_bytes: 1KiB\n",
        2,
        21,
        "use 8KiB to 16MiB",
    );
    assert_err(
        "telemetry: { access_log: xml }\n",
        1,
        26,
        "unknown value `xml` (expected",
    );
    assert_err(
        "telemetry: { otlp: { endpoint: http://c:4317, protocol: http } }\n",
        1,
        57,
        "unknown value `http`; did you mean `http/protobuf`?",
    );
    assert_err(
        "telemetry: { metrics: { buckets: [0.5, 0.1] } }\n",
        1,
        34,
        "strictly increasing",
    );
    assert_err(
        "telemetry: { metrics: { buckets: [0.5, -1] } }\n",
        1,
        40,
        "positive",
    );
    assert_err(
        "redact: { headers: [\"bad header\"] }\n",
        1,
        21,
        "invalid header name",
    );
}

#[test]
fn io_errors_name_the_file() {
    let path = Path::new("/nonexistent/redline.yaml");
    let e = Config::load(path).expect_err("missing file");
    assert_eq!(e.file, "/nonexistent/redline.yaml");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/redline.yaml: cannot read config file"),
        "{e}"
    );
}

#[test]
fn load_records_the_source() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/minimal.yaml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
}

#[test]
fn multi_document_files_are_rejected() {
    let e = err("service: a\n---\nservice: b\n");
    assert!(e.message.contains("more than one document"), "{e}");
    assert!(e.line >= 1, "{e}");
}

// ---------------------------------------------------------------- rules and flows

const ONE_FLOW: &str = "upstream: http://127.0.0.1:3000\nflows:\n  - name: checkout\n    match: [\"POST /api/checkout\", \"GET /api/orders/{id}\"]\n";

fn with_alerts(alerts: &str) -> Config {
    ok(&format!("{ONE_FLOW}    alerts:\n{alerts}"))
}

#[test]
fn alert_defaults() {
    let c = with_alerts("      - when: p95 > 800ms\n");
    let a = &c.flows[0].alerts[0];
    assert_eq!(a.over, secs(300));
    assert_eq!(a.for_, secs(60));
    assert_eq!(a.min_requests, 10);
    assert_eq!(a.keep_firing_for, secs(60));
    assert_eq!(a.severity, Severity::Warning);
    assert_eq!(a.name, "FlowLatencyP95");
    assert_eq!(a.source, "p95 > 800ms");
}

#[test]
fn keep_firing_for_defaults_to_max_of_for_and_one_minute() {
    let c = with_alerts(
        "      - { when: p95 > 1s, for: 30s }\n      - { when: p99 > 1s, for: 5m }\n      - { when: p50 > 1s, for: 5m, keep_firing_for: 10s }\n      - { when: p90 > 1s, for: 0s }\n",
    );
    let keep: Vec<Duration> = c.flows[0]
        .alerts
        .iter()
        .map(|a| a.keep_firing_for)
        .collect();
    assert_eq!(keep, [secs(60), secs(300), secs(10), secs(60)]);
}

#[test]
fn default_alert_names_follow_product_section_6() {
    let c = with_alerts(
        "      - when: p50 > 1s\n      - when: p90 > 1s\n      - when: p95 > 1s\n      - when: p99 > 1s\n      - when: error_rate > 1%\n      - when: timeout_rate > 1%\n      - when: rps < 1\n      - { when: rps < 2, name: Quiet, severity: info }\n",
    );
    let names: Vec<&str> = c.flows[0].alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "FlowLatencyP50",
            "FlowLatencyP90",
            "FlowLatencyP95",
            "FlowLatencyP99",
            "FlowErrorRate",
            "FlowTimeoutRate",
            "FlowTrafficLow",
            "Quiet"
        ]
    );
}

#[test]
fn match_takes_one_pattern_or_a_list() {
    let c =
        ok("flows:\n  - name: a\n    match: GET /a/{id}\n  - name: b\n    match: [/b, POST /c]\n");
    let a = &c.flows[0].patterns;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].method, Some(http::Method::GET));
    assert_eq!(a[0].route, "/a/{id}");
    let b: Vec<String> = c.flows[1].patterns.iter().map(pattern_text).collect();
    assert_eq!(b, ["/b", "POST /c"]);
}

#[test]
fn flow_timeout_falls_back_to_the_global_one() {
    let c = ok(
        "timeout: 10s\nflows:\n  - { name: a, match: /a, timeout: 2s }\n  - { name: b, match: /b }\n",
    );
    assert_eq!(c.flow_timeout(0), secs(2));
    assert_eq!(c.flow_timeout(1), secs(10));
    assert_eq!(c.flow_timeout(99), secs(10));
}

#[test]
fn latency_thresholds_collect_rules_and_slos() {
    let c = ok(concat!(
        "flows:\n",
        "  - name: a\n    match: /a\n    alerts: [{ when: p95 > 800ms }, { when: p99 > 2s }, { when: error_rate > 1% }]\n",
        "    slo: { objective: 99.5%, latency: 500ms }\n",
        "  - name: b\n    match: /b\n    alerts: [{ when: p50 > 800ms }]\n",
    ));
    assert_eq!(c.latency_thresholds(), [ms(500), ms(800), secs(2)]);
    let buckets = c.histogram_buckets();
    assert!(buckets.contains(&0.8) && buckets.contains(&0.5) && buckets.contains(&2.0));
    assert_eq!(
        buckets.len(),
        DEFAULT_BUCKETS.len() + 2,
        "0.5 is already a default boundary"
    );
    assert!(buckets.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn buckets_accept_seconds_or_durations() {
    let c = ok("telemetry: { metrics: { buckets: [0.1, 250ms, 1, 2s] } }\n");
    assert_eq!(c.telemetry.metrics.buckets, [0.1, 0.25, 1.0, 2.0]);
}

#[test]
fn validate_runnable_requires_an_upstream() {
    assert!(ok(ONE_FLOW).validate_runnable().is_ok());
    let e = Config::default()
        .validate_runnable()
        .expect_err("no upstream");
    assert!(e.message.contains("--upstream"), "{e}");
}

#[test]
fn redact_names_are_lowercased_and_templating_can_be_off() {
    let c = ok(
        "redact: { headers: [X-Secret, Authorization], query_params: [Sig] }\nroutes: { templating: off }\n",
    );
    assert_eq!(c.redact.headers, ["x-secret", "authorization"]);
    assert_eq!(c.redact.query_params, ["sig"]);
    assert!(!c.routes.templating);
}

#[test]
fn otlp_section_parses() {
    let c = ok(
        "telemetry:\n  otlp: { endpoint: http://c:4317, protocol: grpc, headers: { api-key: s3cr3t } }\n",
    );
    let otlp = c
        .telemetry
        .otlp
        .as_ref()
        .map(|o| (o.protocol, o.headers.len()));
    assert_eq!(otlp, Some((OtlpProtocol::Grpc, 1)));
    let default = ok("telemetry: { otlp: { endpoint: http://c:4318 } }\n");
    assert_eq!(
        default.telemetry.otlp.map(|o| o.protocol),
        Some(OtlpProtocol::HttpProtobuf)
    );
    let json = ok("telemetry: { otlp: { endpoint: http://c:4318, protocol: http/json } }\n");
    assert_eq!(
        json.telemetry.otlp.map(|o| o.protocol),
        Some(OtlpProtocol::HttpJson)
    );
}

// ---------------------------------------------------------------- views

const SECRETS: &str = concat!(
    "upstream: http://127.0.0.1:3000\n",
    "alerting:\n  receivers:\n",
    "    - { name: ops, type: webhook, url: \"http://user:hunter2@hooks.internal/redline?token=abc&v=2\", secret_env: HOOK_SECRET }\n",
    "    - { name: chat, type: slack, url: \"https://hooks.slack.com/services/T0/B0/xyzzy\" }\n",
    "    - { name: am, type: alertmanager, urls: [\"http://am:9093/?key=k3y\"] }\n",
    "    - { name: pd, type: pagerduty, routing_key_file: /run/secrets/pd }\n",
    "telemetry:\n  otlp: { endpoint: \"http://collector:4318/?apikey=plugh\", headers: { authorization: \"Bearer s3cr3t\" } }\n",
);

#[test]
fn redacted_json_hides_secrets() {
    let json = ok(SECRETS).redacted_json();
    let text = json.to_string();
    for secret in [
        "abc", "hunter2", "user", "xyzzy", "T0", "k3y", "plugh", "s3cr3t",
    ] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
    let receivers = &json["alerting"]["receivers"];
    assert_eq!(
        receivers[0]["url"],
        "http://REDACTED@hooks.internal/redline?token=REDACTED&v=REDACTED"
    );
    assert_eq!(receivers[0]["secret_env"], "HOOK_SECRET");
    assert_eq!(receivers[1]["url"], "https://hooks.slack.com/REDACTED");
    assert_eq!(receivers[2]["urls"][0], "http://am:9093/?key=REDACTED");
    assert_eq!(receivers[3]["routing_key_file"], "/run/secrets/pd");
    assert_eq!(
        json["telemetry"]["otlp"]["headers"]["authorization"],
        REDACTED
    );
}

#[test]
fn redacted_json_shows_effective_values() {
    let json = with_alerts("      - { when: p95 > 800ms, for: 2m }\n").redacted_json();
    assert_eq!(json["upstream"], "http://127.0.0.1:3000");
    assert_eq!(json["timeout"], "30s");
    assert_eq!(json["flows"][0]["timeout"], "30s");
    assert_eq!(json["flows"][0]["match"][1], "GET /api/orders/{id}");
    let rule = &json["flows"][0]["alerts"][0];
    assert_eq!(rule["when"], "p95 > 800ms");
    assert_eq!(rule["keep_firing_for"], "2m");
    assert_eq!(rule["name"], "FlowLatencyP95");
    assert_eq!(json["limits"]["max_header_bytes"], 65536);
}

#[test]
fn describe_mentions_flows_patterns_alerts_and_receivers() {
    let mut text =
        with_alerts("      - { when: error_rate > 2%, severity: page, min_requests: 20 }\n")
            .describe();
    assert!(
        text.contains("upstream:  http://127.0.0.1:3000 (timeout 30s)"),
        "{text}"
    );
    assert!(text.contains("checkout (no owner, timeout 30s)"), "{text}");
    assert!(
        text.contains("match: POST /api/checkout, GET /api/orders/{id}"),
        "{text}"
    );
    assert!(
        text.contains("alert FlowErrorRate: error_rate > 2% over 5m for 1m, min 20 requests, keep firing 1m, severity page"),
        "{text}"
    );
    text = ok(SECRETS).describe();
    assert!(
        text.contains("ops (webhook)") && text.contains("pd (pagerduty)"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("xyzzy"),
        "{text}"
    );
    let full = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/full.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .describe();
    assert!(
        full.contains("slo: 99.5% good, bad = error or slower than 500ms"),
        "{full}"
    );
}

// ---------------------------------------------------------------- shipped examples

#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut seen = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "yaml") {
            if let Err(e) = Config::load(&path) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected minimal.yaml and full.yaml in {}",
        dir.display()
    );
}

/// The load benchmark's configs, with the placeholders `benches/load/run.sh` fills in
/// (`__UPSTREAM__`, `__DATA_DIR__`) replaced as it does.
#[test]
fn every_benchmark_config_parses_once_filled_in() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/load/configs");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let mut seen = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let filled = text
                .replace("__UPSTREAM__", "http://127.0.0.1:18100")
                .replace("__DATA_DIR__", &data_dir.to_string_lossy());
            let copy = work.path().join(path.file_name().unwrap());
            std::fs::write(&copy, filled).unwrap();
            let config = Config::load(&copy).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if path.ends_with("resilience.yaml") {
                // What it is there to measure: retries, breaker and stale fallback on, no faults.
                let flow = &config.flows[0];
                assert_eq!(flow.retries.as_ref().map(|r| r.attempts), Some(3));
                assert!(flow.circuit_breaker.is_some());
                let fallback = flow.fallback.as_ref();
                assert!(fallback.is_some_and(|f| f.stale_if_error.is_some()));
                assert!(config.flows.iter().all(|f| f.fault.is_none()));
            }
            seen += 1;
        }
    }
    assert!(seen >= 1, "expected resilience.yaml in {}", dir.display());
}

#[test]
fn full_example_sets_every_section() {
    let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/full.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.service, "shop-prototype");
    assert_eq!(c.flows[0].alerts.len(), 5);
    assert_eq!(c.flows[0].alerts[0].name, "CheckoutSlow");
    assert_eq!(c.flows[0].alerts[0].keep_firing_for, secs(120));
    let baseline = c.flows[0].baseline.as_ref().expect("flows[0].baseline");
    assert_eq!(baseline.requests.len(), 2);
    assert_eq!(baseline.requests[0].method, "POST");
    assert_eq!(baseline.requests[1].method, "GET");
    assert_eq!(baseline.requests[1].weight, 3.0);
    assert_eq!(
        baseline.requests[0].body_file.as_deref(),
        Some(Path::new("checkout.json"))
    );
    assert_eq!(c.alerting.receivers.len(), 5);
    assert_eq!(c.telemetry.metrics.interval, secs(15));
    assert_eq!(c.telemetry.traces.sample_ratio, Some(1.0));
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.upstream_connections, UpstreamConnections::default());
    assert_eq!(
        c.flows[0].max_concurrent_requests.map(|n| n.get()),
        Some(200)
    );
    assert_eq!(c.baseline, crate::config::BaselineConfig::default());
    assert!(!c.baseline.record.enabled, "recording is off by default");
    assert_eq!(c.retries, RetryConfig::default());
    assert_eq!(c.flows[0].circuit_breaker, Some(BreakerConfig::default()));
    assert_eq!(c.flows[1].circuit_breaker, None);
    let adaptive = c.flows[0].concurrency.and_then(|c| c.adaptive);
    assert_eq!(adaptive, Some(AdaptiveConfig::default()));
    assert_eq!(c.concurrency, ConcurrencyConfig::default(), "off globally");
    let fallback = c.flows[0].fallback.clone().unwrap_or_default();
    let body = fallback.static_response.and_then(|s| s.body_file);
    assert!(
        body.is_some_and(|b| b.starts_with(b"{")),
        "read beside full.yaml"
    );
    assert_eq!(fallback.stale_if_error, Some(StaleConfig::default()));
    let fault = c.flows[0]
        .fault
        .as_ref()
        .and_then(FaultConfig::rule)
        .unwrap();
    assert_eq!((fault.abort, fault.ratio), (Some(503), 0.1));
    assert_eq!(
        fault.header.map(|h| h.to_string()).as_deref(),
        Some("x-redline-rehearsal")
    );
    let retries = c.flows[0].retries.clone().unwrap_or_default();
    assert_eq!(
        (
            retries.attempts,
            retries.per_try_timeout,
            retries.budget.ratio
        ),
        (3, Some(secs(2)), 0.2)
    );
    assert_eq!(c.data_dir.as_deref(), Some(Path::new("/var/lib/redline")));
    assert!(c.flows[0].audit);
    let access = c.flows[0].access.as_ref().unwrap();
    assert_eq!(
        access.rule_for("GET").unwrap().1,
        &crate::config::Rule::Authenticated
    );
    assert_eq!(
        c.flows[1]
            .access
            .as_ref()
            .unwrap()
            .rule_for("GET")
            .unwrap()
            .1,
        &crate::config::Rule::Public
    );
    let jwt = c.auth.jwt.as_ref().unwrap();
    assert_eq!(jwt.roles_claim, "realm_access.roles");
    assert_eq!(jwt.jwks_min_refresh, secs(10));
    assert_eq!(c.audit_trail.max_file_size, 64 * 1024 * 1024);
    assert_eq!(c.policy_tests.len(), 2);
    assert_eq!(
        c.policy_tests[1].expect,
        crate::config::Expect::Unauthenticated
    );
    assert_eq!(jwt.algorithms, ["RS256", "ES256", "EdDSA"]);
    assert_eq!(c.auth.api_keys.as_ref().unwrap().header, "x-api-key");
    assert_eq!(c.auth.forward, crate::config::ForwardConfig::default());
}

#[test]
fn retries_are_off_by_default_and_a_flow_block_replaces_the_global_one() {
    let c = ok(
        "retries: { attempts: 2, retry_on: [503] }\nflows:\n  - name: a\n    match: /a\n    retries: { per_try_timeout: 1s }\n  - name: b\n    match: /b\n",
    );
    assert_eq!(
        c.flow_retries(0),
        None,
        "the flow's own block has attempts 1"
    );
    let b = c.flow_retries(1).expect("the global block");
    assert_eq!(b.attempts, 2);
    assert!(b.retries_status(503) && !b.retries_status(502));
    assert_eq!(ok("flows: []\n").retries.policy(), None);
    for bad in [
        "retries: { attempts: 0 }\n",
        "retries: { attempts: 11 }\n",
        "retries: { retry_on: [200] }\n",
        "retries: { budget: { ratio: 120% } }\n",
        "retries: { tries: 2 }\n",
        "flows: [{ name: a, match: /a, circuit_breaker: { window: 2m } }]\n",
        "flows: [{ name: a, match: /a, circuit_breaker: { error_rate: 150% } }]\n",
    ] {
        assert!(Config::parse(bad, "t.yaml").is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------- trace links

#[test]
fn trace_url_template_needs_its_placeholder_and_a_web_url() {
    let c = ok("telemetry:\n  trace_url_template: https://jaeger.example/trace/{trace_id}\n");
    assert_eq!(
        c.telemetry.trace_url_template.as_deref(),
        Some("https://jaeger.example/trace/{trace_id}")
    );
    assert_eq!(
        c.redacted_json()["telemetry"]["trace_url_template"],
        "https://jaeger.example/trace/{trace_id}"
    );
    assert_eq!(Config::default().telemetry.trace_url_template, None);
    let query = "telemetry: { trace_url_template: \"http://t:16686/search?traceID={trace_id}\" }\n";
    assert!(ok(query).telemetry.trace_url_template.is_some());
    assert_err(
        "telemetry:\n  trace_url_template: https://jaeger.example/trace/\n",
        2,
        23,
        "lacks {trace_id}",
    );
    assert_err(
        "telemetry:\n  trace_url_template: ftp://x/{trace_id}\n",
        2,
        23,
        "expected an http:// or https:// URL",
    );
    assert_err(
        "telemetry:\n  trace_url_template: https://u:p@x/{trace_id}\n",
        2,
        23,
        "must not contain credentials",
    );
}

#[test]
fn access_log_formats_parse_from_flags() {
    assert_eq!("json".parse(), Ok(AccessLogFormat::Json));
    assert_eq!(" TEXT ".parse(), Ok(AccessLogFormat::Text));
    assert_eq!("off".parse(), Ok(AccessLogFormat::Off));
    let e = "xml".parse::<AccessLogFormat>().unwrap_err();
    assert!(e.contains("expected json, text or off"), "{e}");
}

#[test]
fn default_alerts_cover_all_traffic_until_flows_exist() {
    let none = ok("");
    let rules = none.unmatched_alerts();
    let whens: Vec<String> = rules.iter().map(|r| r.when.to_string()).collect();
    assert_eq!(whens, ["error_rate > 5%", "timeout_rate > 5%"]);
    assert!(rules.iter().all(|r| r.min_requests == 20));
    assert!(rules.iter().all(|r| r.over == Duration::from_secs(300)));
    assert_eq!(rules[0].name, "FlowErrorRate");

    let with_flow = ok("flows:\n  - name: a\n    match: /a\n");
    assert!(with_flow.unmatched_alerts().is_empty());

    let off = ok("alerting:\n  default_alerts: []\n");
    assert!(off.unmatched_alerts().is_empty());

    let custom = ok("alerting:\n  default_alerts:\n    - { when: \"p95 > 2s\", for: 0s }\n");
    assert_eq!(custom.unmatched_alerts().len(), 1);
    assert!(custom.histogram_buckets().contains(&2.0));
    assert!(
        custom
            .describe()
            .contains("default alert FlowLatencyP95: p95 > 2s")
    );

    let dup = "alerting:\n  default_alerts:\n    - when: \"error_rate > 1%\"\n    - when: \"error_rate > 2%\"\n";
    assert_err(dup, 4, 7, "already defined by default_alerts[0]");
}

// ---------------------------------------------------------------- access and audit

#[test]
fn access_and_audit_settings_that_cannot_work_are_refused_at_their_line() {
    let flow = "flows:\n  - name: a\n    match: /x\n";
    assert_err(
        &format!("{flow}    access: [admin]\n"),
        4,
        13,
        "configures neither jwt nor api_keys",
    );
    assert!(Config::parse(&format!("{flow}    access: public\n"), "t.yaml").is_ok());
    assert_err(
        &format!("{flow}    audit: true\n"),
        4,
        12,
        "set `data_dir:`",
    );
    assert_err(
        "auth:\n  jwt: { issuer: x }\n",
        2,
        8,
        "exactly one of jwks_file and jwks_url",
    );
    assert_err(
        &format!("{flow}    access: {{ GET: [admin], get: public }}\n"),
        4,
        13,
        "listed twice",
    );
    assert_err(
        &format!("{flow}    access: everyone\n"),
        4,
        13,
        "unknown access rule",
    );
    let denied = "    alerts:\n      - when: \"denied_rate > 20%\"\n";
    assert_err(&format!("{flow}{denied}"), 5, 9, "has none; add `access:`");
    assert!(Config::parse(&format!("{flow}    access: public\n{denied}"), "t.yaml").is_ok());
}

#[test]
fn adaptive_concurrency_is_per_flow_over_a_global_default() {
    let c = ok(
        "concurrency: { adaptive: { max: 50 } }\nflows:\n  - { name: a, match: /a }\n  - { name: b, match: /b, concurrency: { adaptive: { min: 1, initial: 5, window: 250ms } } }\n  - { name: c, match: /c, concurrency: {} }\n",
    );
    let a = c.flow_concurrency(Some(0)).expect("the global block");
    assert_eq!((a.min, a.max, a.initial, a.window), (3, 50, 20, secs(1)));
    let b = c.flow_concurrency(Some(1)).expect("its own block");
    assert_eq!((b.min, b.max, b.initial, b.window), (1, 1000, 5, ms(250)));
    assert_eq!(b.baseline_interval, secs(60));
    assert_eq!(
        c.flow_concurrency(Some(2)),
        None,
        "its own block, without adaptive"
    );
    assert_eq!(c.flow_concurrency(None), Some(a), "unmatched traffic");
    assert_eq!(
        ok("flows: []\n").flow_concurrency(None),
        None,
        "off by default"
    );
}

#[test]
fn adaptive_concurrency_refuses_inconsistent_bounds() {
    let cases = [
        ("concurrency:\n  adaptive: { min: 0 }\n", "at least 1"),
        (
            "concurrency:\n  adaptive: { min: 30 }\n",
            "min <= initial <= max",
        ),
        (
            "concurrency:\n  adaptive: { max: 10 }\n",
            "min <= initial <= max",
        ),
        (
            "concurrency:\n  adaptive: { window: 2m }\n",
            "at least one window",
        ),
        ("concurrency:\n  adaptive: { windw: 1s }\n", "windw"),
    ];
    for (yaml, needle) in cases {
        let e = err(yaml);
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains(needle), "{needle:?} not in: {e}");
    }
}

// ---------------------------------------------------------------- hostile input

/// A hostile or broken file gets an error naming its position, quickly: never a panic,
/// a hang or memory blown up by aliases.
#[test]
fn hostile_yaml_gets_a_positioned_error_quickly() {
    let started = std::time::Instant::now();
    // Billion laughs: nine aliases of nine aliases, eight levels down.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h"]
        .into_iter()
        .zip("abcdefg".chars())
    {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        bomb += &format!("{name}: &{name} [{refs}]\n");
    }
    let e = err(&bomb);
    assert!(e.line > 0 && e.message.contains("repetition limit"), "{e}");
    // Flow collections nested 50 000 deep: refused at the first level too many (the
    // parser's scanner is quadratic in the depth, so it must not see the rest).
    let deep = format!("flows: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    assert_err(&deep, 1, 8 + MAX_DEPTH, "nested more than 128 levels");
    let deep = format!(
        "service: x\nflows: {}1{}\n",
        "{a: ".repeat(50_000),
        "}".repeat(50_000)
    );
    assert_err(&deep, 2, 8 + 4 * MAX_DEPTH, "nested more than 128 levels");
    // Brackets in quoted scalars and comments are text.
    let text = ok(&format!(
        "flows:\n  - name: a\n    match: GET /a\n    owner: \"{}\\\"\" # {}\n",
        "[".repeat(200),
        "{".repeat(200)
    ));
    assert_eq!(text.flows[0].owner.as_deref().unwrap().len(), 201);
    ok(&format!(
        "flows:\n  - name: a\n    match: GET /a\n    owner: 'it''s {}'\n",
        "[".repeat(200)
    ));
    // Deep block nesting stops at the parser's own limit.
    let block: String = (0..200).map(|i| format!("{}-\n", " ".repeat(i))).collect();
    let e = err(&format!("flows:\n{block}"));
    assert!(e.line > 1 && e.message.contains("recursion limit"), "{e}");
    // A number too large for its key says so, not that "any YAML value" was expected.
    let e = assert_err(
        "routes:\n  max_templates: 99999999999999999999999999\n",
        2,
        18,
        "max_templates",
    );
    assert!(!e.message.contains("any YAML value"), "{e}");
    assert_err(
        "admin:\n\tlisten: 127.0.0.1:9901\n",
        2,
        1,
        "cannot start any token",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

const MAX_DEPTH: usize = 128;

#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_first_stray_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    std::fs::write(
        &path,
        b"upstream: http://127.0.0.1:3000\nservice: caf\xe9-shop\n",
    )
    .unwrap();
    let e = Config::load(&path).unwrap_err();
    assert_eq!((e.line, e.column), (2, 13), "{e}");
    assert!(
        e.message.contains("0xe9") && e.message.contains("UTF-8"),
        "{e}"
    );
    // A UTF-8 byte-order mark is fine.
    let path = dir.path().join("bom.yaml");
    std::fs::write(&path, b"\xef\xbb\xbfupstream: http://127.0.0.1:3000\n").unwrap();
    assert!(Config::load(&path).is_ok());
}

#[test]
fn an_endless_or_huge_file_is_refused_without_reading_it_all() {
    // `/dev/zero` never ends: read whole it would exhaust memory.
    let e = Config::load(Path::new("/dev/zero")).unwrap_err();
    assert!(e.message.contains("larger than 4 MiB"), "{e}");
    assert_eq!(e.file, "/dev/zero", "{e}");
    let dir = tempfile::tempdir().unwrap();
    let yaml = "upstream: http://127.0.0.1:3000\nflows:\n  - name: a\n    match: GET /\n    fallback: { static: { body_file: /dev/zero } }\n";
    let path = dir.path().join("redline.yaml");
    std::fs::write(&path, yaml).unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(e.message.contains("larger than 4 MiB"), "{e}");
}

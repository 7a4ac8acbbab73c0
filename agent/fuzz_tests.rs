//! Property-based tests: every parser fed from the outside (config, patterns, `when`, paths, queries, traceparent, request headers) never panics on arbitrary input.
//!
//! Case counts default to 512 per property (CI-friendly); `PROPTEST_CASES=100000`
//! runs the long version.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

use crate::config::{Config, When};
use crate::flows::{Pattern, Router, template_path};
use crate::proxy::headers;
use crate::redact::{REDACTED, Redactor};
use crate::trace::{hex, parse_traceparent};

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A config using most sections, so mutations reach most of the parser.
const VALID: &str = r#"service: shop
listen: 0.0.0.0:8080
upstream: http://127.0.0.1:3000
timeout: 30s
admin:
  listen: 127.0.0.1:9901
  protect_reads: true
flows:
  - name: checkout
    match: ["POST /api/checkout", "GET /api/orders/{id}"]
    owner: payments
    runbook: https://wiki.example/runbooks/checkout
    timeout: 5s
    alerts:
      - when: "p95 > 800ms"
        over: 5m
        for: 1m
        min_requests: 20
        keep_firing_for: 2m
        severity: page
        name: CheckoutSlow
      - when: "error_rate > 2%"
      - when: "rps < 0.05"
    slo: { objective: 99.5%, latency: 500ms }
  - name: assets
    match: "GET /static/{path...}"
routes:
  templating: auto
  max_templates: 200
alerting:
  eval_interval: 5s
  repeat_interval: 4h
  receivers:
    - { name: ops, type: webhook, url: "http://hooks.internal/redline?token=x" }
    - { name: am, type: alertmanager, url: http://alertmanager:9093 }
telemetry:
  traces: { sample_ratio: 1.0, keep_slower_than: 2s }
  metrics: { interval: 15s }
  access_log: json
redact:
  headers: [authorization, cookie]
  query_params: [token, api_key]
limits: { header_read_timeout: 10s, max_header_bytes: 64KiB, shutdown_grace: 30s }
"#;

/// Characters that matter to YAML and to our scalars.
const YAML_ALPHABET: &str = "[a-z0-9 :{}\\[\\],\\-\n#'\"&*!|>%@./_?=<]{0,160}";

/// One edit of the valid document.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = VALID.len();
    prop_oneof![
        (0..n, 1..40usize).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (0..n, YAML_ALPHABET).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (0..n, any::<char>()).prop_map(|(at, c)| Mutation::Replace(at, c)),
        (0..60usize).prop_map(Mutation::DuplicateLine),
        (0..60usize, 0..60usize).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    if n == 0 {
        return text.to_string();
    }
    match m {
        Mutation::Delete(at, len) => {
            let a = floor_boundary(text, *at);
            let b = floor_boundary(text, at + len);
            format!("{}{}", &text[..a], &text[b..])
        }
        Mutation::Insert(at, s) => {
            let a = floor_boundary(text, *at);
            format!("{}{s}{}", &text[..a], &text[a..])
        }
        Mutation::Replace(at, c) => {
            let a = floor_boundary(text, *at);
            let b = floor_boundary(text, a + text[a..].chars().next().map_or(0, char::len_utf8));
            format!("{}{c}{}", &text[..a], &text[b..])
        }
        Mutation::DuplicateLine(i) => {
            let line = lines[i % n];
            lines.insert(i % n, line);
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
    }
}

/// Whatever the parser says, saying it must not panic, and errors must point inside the text.
fn check_config(text: &str) {
    match Config::parse(text, "fuzz.yaml") {
        Ok(c) => {
            let _ = c.describe();
            let _ = c.redacted_json();
            let _ = c.histogram_buckets();
        }
        Err(e) => {
            assert_eq!(e.file, "fuzz.yaml");
            assert!(e.line <= yaml_lines(text), "{e} beyond the text");
            let _ = e.to_string();
        }
    }
}

/// Lines as YAML counts them: `\r`, NEL, LS and PS break lines too, and the end of the
/// stream sits on a line of its own after unterminated last line.
fn yaml_lines(text: &str) -> usize {
    let is_break = |c: char| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let crlf = text.matches("\r\n").count();
    let breaks = text.chars().filter(|c| is_break(*c)).count() - crlf;
    let unterminated = text.chars().next_back().is_some_and(|c| !is_break(c));
    breaks + 1 + usize::from(unterminated)
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn config_parse_never_panics_on_arbitrary_text(text in ".{0,400}") {
        check_config(&text);
    }

    #[test]
    fn config_parse_never_panics_on_yaml_like_text(text in YAML_ALPHABET) {
        check_config(&text);
    }

    #[test]
    fn config_parse_never_panics_on_mutated_valid_yaml(edits in prop::collection::vec(mutation(), 1..4)) {
        let mut text = VALID.to_string();
        for m in &edits {
            text = apply(&text, m);
        }
        check_config(&text);
    }

    #[test]
    fn patterns_parse_or_fail_and_round_trip(
        text in prop_oneof![
            ".{0,60}",
            "((GET|POST|get|PURGE) +)?(/([a-z.]{0,4}|\\{[a-z_.]{0,4}\\}|\\{[a-z]{1,3}\\.\\.\\.\\}|%2F|\\*)){0,5}/?",
        ]
    ) {
        if let Ok(p) = Pattern::parse(&text) {
            prop_assert!(p.route.starts_with('/'));
            let again = Pattern::parse(&p.to_string());
            prop_assert_eq!(again.as_ref(), Ok(&p), "display does not parse back: {}", p);
        }
    }

    #[test]
    fn when_parses_or_fails_and_round_trips(
        text in prop_oneof![
            ".{0,40}",
            " ?(p50|p90|p95|p99|p97|error_rate|timeout_rate|rps|x) ?(<|>|>=|<=|=) ?-?[0-9.]{0,6}(ms|s|m|h|%|us|)? ?",
        ]
    ) {
        if let Ok(w) = text.parse::<When>() {
            let shown = w.to_string();
            prop_assert_eq!(shown.parse::<When>(), Ok(w), "{}", shown);
        }
    }

    #[test]
    fn templates_always_start_with_a_slash_and_drop_queries(path in ".{0,300}") {
        let mut out = String::new();
        template_path(&path, &mut out);
        prop_assert!(out.starts_with('/'));
        prop_assert!(!out.contains('?') && !out.contains('#'), "{}", out);
        let body = path.split(['?', '#']).next().unwrap_or_default();
        let body = body.strip_prefix('/').unwrap_or(body);
        prop_assert_eq!(out.matches('/').count(), body.matches('/').count() + 1);
    }

    #[test]
    fn router_find_is_total_and_in_range(
        path in prop_oneof![".{0,120}", "(/(api|orders|static|[0-9]{1,3}|[a-z]{0,3}|)){0,6}(\\?.{0,10})?"],
        method in prop_oneof![Just(Method::GET), Just(Method::POST), Just(Method::DELETE)],
        extra in prop::collection::vec("(GET |POST )?(/([a-z]{0,3}|\\{[a-z]{1,3}\\}|\\{r\\.\\.\\.\\})){1,4}", 0..4),
    ) {
        let mut flows = vec![
            vec![Pattern::parse("GET /api/orders/{id}").unwrap(), Pattern::parse("POST /api/checkout").unwrap()],
            vec![Pattern::parse("/static/{path...}").unwrap()],
        ];
        flows.push(extra.iter().filter_map(|p| Pattern::parse(p).ok()).collect());
        let router = Router::new(&flows);
        if let Some(m) = router.find(&method, &path) {
            prop_assert!(m.flow < flows.len());
            prop_assert!(m.route < router.routes().len());
            prop_assert_eq!(router.routes()[m.route].flow, m.flow);
        }
    }

    #[test]
    fn redacted_queries_never_hold_secret_values(
        pairs in prop::collection::vec(
            ("(token|TOKEN|api_key|%74oken|page|q|tok|tokens)(\\[\\])?", "[A-Za-z0-9]{6,12}", prop_oneof![Just('&'), Just(';')]),
            0..6,
        ),
        noise in ".{0,40}",
    ) {
        let r = Redactor::new(&["token".into(), "api_key".into()], &[]);
        let mut query = String::new();
        let mut secrets = Vec::new();
        for (name, value, sep) in &pairs {
            let bare = name.trim_end_matches("[]").to_ascii_lowercase();
            if matches!(bare.as_str(), "token" | "api_key" | "%74oken") {
                // Marked so a secret cannot coincide with a public name or value.
                secrets.push(format!("SECRET{value}"));
                query.push_str(&format!("{name}=SECRET{value}{sep}"));
            } else {
                query.push_str(&format!("{name}={value}{sep}"));
            }
        }
        let out = r.query(&query);
        for s in &secrets {
            prop_assert!(!out.contains(s.as_str()), "{} kept in {}", s, out);
        }
        prop_assert_eq!(out.matches(REDACTED).count(), secrets.len());
        // Arbitrary text never panics any redaction entry point.
        let _ = r.query(&noise);
        let _ = r.url(&noise);
        let _ = r.text(&noise);
        let in_text = format!("x?{query}");
        prop_assert!(!r.text(&in_text).contains("SECRET"), "{}", in_text);
    }

    #[test]
    fn traceparent_parses_valid_and_rejects_or_tolerates_the_rest(
        junk in ".{0,80}",
        trace in any::<[u8; 16]>(),
        parent in any::<[u8; 8]>(),
        flags in any::<u8>(),
    ) {
        let _ = parse_traceparent(&junk);
        let header = format!("00-{}-{}-{:02x}", hex(&trace), hex(&parent), flags);
        let parsed = parse_traceparent(&header);
        if trace == [0; 16] || parent == [0; 8] {
            prop_assert!(parsed.is_none());
        } else {
            let t = parsed.unwrap();
            prop_assert_eq!(t.trace_id, trace);
            prop_assert_eq!(t.parent_span_id, Some(parent));
            prop_assert_eq!(t.sampled, Some(flags & 1 == 1));
        }
    }

    #[test]
    fn request_header_handling_is_total(
        entries in prop::collection::vec(
            (
                prop_oneof![
                    Just("connection"), Just("upgrade"), Just("keep-alive"), Just("te"),
                    Just("x-forwarded-for"), Just("x-forwarded-host"), Just("x-request-id"),
                    Just("proxy-connection"), Just("x-custom"), Just("transfer-encoding"),
                ],
                "[ -~]{0,40}",
            ),
            0..10,
        ),
        raw_value in prop::collection::vec(any::<u8>(), 0..40),
        client in any::<[u8; 4]>(),
    ) {
        let mut h = HeaderMap::new();
        for (name, value) in &entries {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.append(*name, v);
            }
        }
        if let Ok(v) = HeaderValue::from_bytes(&raw_value) {
            h.append("x-request-id", v.clone());
            h.append("connection", v);
        }
        let named: Vec<HeaderName> = h
            .get_all("connection")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        let _ = headers::upgrade_protocol(&h);
        let id = headers::request_id(&h);
        prop_assert!(!id.is_empty() && id.len() <= 200);
        prop_assert!(id.as_bytes().iter().all(u8::is_ascii_graphic));
        headers::strip_hop_by_hop(&mut h);
        for gone in ["connection", "upgrade", "keep-alive", "te", "proxy-connection", "transfer-encoding"] {
            prop_assert!(!h.contains_key(gone), "{} survived", gone);
        }
        for n in named {
            prop_assert!(!h.contains_key(&n), "{} named by Connection survived", n);
        }
        let ip = std::net::IpAddr::from(client);
        let host = HeaderValue::from_static("shop");
        headers::set_forwarded(&mut h, ip, Some(&host));
        let xff = h.get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or_default();
        prop_assert!(xff.ends_with(&ip.to_string()), "{}", xff);
    }
}

use super::*;
use crate::metrics::ErrorType;

#[test]
fn label_values_are_escaped() {
    let mut out = String::new();
    write_labels(&mut out, [("a", "x\"y\\z\n")]);
    assert_eq!(out, r#"{a="x\"y\\z\n"}"#);
}

#[test]
fn openmetrics_is_asked_for_by_accept() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(
        Format::negotiate(Some("Application/OpenMetrics-Text")),
        Format::OpenMetrics
    );
    for plain in [
        None,
        Some("text/plain"),
        Some("*/*"),
        Some("application/openmetrics-text;q=0"),
        Some("application/openmetrics-text-x"),
    ] {
        assert_eq!(Format::negotiate(plain), Format::Text, "{plain:?}");
    }
    assert!(
        Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text")
    );
}

fn registry_with_a_kept_trace() -> Registry {
    let reg = Registry::new(&[0.1, 1.0]);
    let r = reg.route(&"checkout".into(), &"/pay".into());
    let kept = Exemplar {
        trace_id: [0xab; 16],
        span_id: [0x01; 8],
        seconds: 0.25,
        unix_ms: 1_700_000_000_123,
    };
    r.record(0, 200, ErrorType::None, 0.05, None);
    r.record(0, 200, ErrorType::None, 0.25, Some(kept));
    reg.telemetry_dropped.add(&["traces"], 3.0);
    reg
}

#[test]
fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
    let text = registry_with_a_kept_trace().render_as(Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE redline_telemetry_dropped counter\n"));
    assert!(text.contains("redline_telemetry_dropped_total{signal=\"traces\"} 3\n"));
    assert!(text.contains("# TYPE redline_access_log_dropped counter\n"));
    assert!(text.contains("# UNIT http_server_request_duration_seconds seconds\n"));
    assert!(text.contains("# TYPE redline_build_info gauge\n"));
    let plain = registry_with_a_kept_trace().render();
    assert!(plain.contains("# TYPE redline_telemetry_dropped_total counter\n"));
    assert!(!plain.contains("# EOF") && !plain.contains("# UNIT") && !plain.contains("trace_id"));
}

#[test]
fn the_bucket_of_a_kept_trace_carries_it_as_an_exemplar() {
    let text = registry_with_a_kept_trace().render_as(Format::OpenMetrics);
    let bucket = |le: &str| {
        let head = format!(
            r#"http_server_request_duration_seconds_bucket{{flow="checkout",http_request_method="GET",http_route="/pay",http_response_status_code="200",error_type="",le="{le}"}} "#
        );
        text.lines()
            .find_map(|l| l.strip_prefix(head.as_str()))
            .unwrap_or_else(|| panic!("no bucket {le}: {text}"))
            .to_string()
    };
    assert_eq!(bucket("0.1"), "1", "no kept trace in that bucket");
    let trace = "ab".repeat(16);
    assert_eq!(
        bucket("1"),
        format!(r#"2 # {{trace_id="{trace}",span_id="0101010101010101"}} 0.25 1700000000.123"#)
    );
    assert_eq!(bucket("+Inf"), "2");
}

//! Small formatting helpers shared by the receiver payloads: timestamps and well-known labels.

use std::time::SystemTime;

use super::event::{AlertEvent, AlertStatus};

/// How Alertmanager serialises "no end yet" (Go's zero `time.Time`).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 in UTC with whole seconds, as Alertmanager and PagerDuty accept.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `firing` or `resolved`.
pub fn status_str(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    }
}

/// A label value, or `""` when the evaluator did not set it.
pub fn label<'a>(event: &'a AlertEvent, name: &str) -> &'a str {
    event.labels.get(name).map(String::as_str).unwrap_or("")
}

/// An annotation value, or `""`.
pub fn annotation<'a>(event: &'a AlertEvent, name: &str) -> &'a str {
    event
        .annotations
        .get(name)
        .map(String::as_str)
        .unwrap_or("")
}

/// The one-line human summary: the `summary` annotation, else `flow: alertname`.
pub fn summary(event: &AlertEvent) -> String {
    match annotation(event, "summary") {
        "" => format!("{}: {}", label(event, "flow"), label(event, "alertname")),
        s => s.to_string(),
    }
}

/// Scheme and authority of `url` (`http://host:9901`), the root Redline is reachable at.
pub fn origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_utc_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_787_392_860_250);
        assert_eq!(rfc3339(t), "2026-08-22T10:01:00Z");
    }

    #[test]
    fn origin_keeps_scheme_and_authority_only() {
        assert_eq!(
            origin("http://127.0.0.1:9901/api/alerts?x=1"),
            "http://127.0.0.1:9901"
        );
        assert_eq!(origin("https://redline.example"), "https://redline.example");
        assert_eq!(origin("not a url"), "");
    }
}

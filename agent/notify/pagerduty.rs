//! The `pagerduty` receiver body: Events API v2 `trigger` / `resolve` with a deterministic `dedup_key`.

use serde_json::{Map, Value, json};

use super::event::{AlertEvent, AlertStatus};
use super::wire::{annotation, label, rfc3339, summary};

/// PagerDuty's documented ingestion endpoint; a receiver `url` overrides it.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty rejects longer summaries.
const MAX_SUMMARY: usize = 1024;

/// Build the Events API v2 body for `event`.
///
/// `dedup_key` is the alert fingerprint: the same for trigger and resolve, and for
/// every replica, so no key has to be stored to resolve later.
pub fn message(routing_key: &str, event: &AlertEvent) -> Value {
    match event.status {
        AlertStatus::Firing => trigger(routing_key, event),
        AlertStatus::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": event.fingerprint,
        }),
    }
}

fn trigger(routing_key: &str, event: &AlertEvent) -> Value {
    let mut details = Map::new();
    for (k, v) in event.labels.iter().chain(event.annotations.iter()) {
        details.insert(k.clone(), json!(v));
    }
    details.insert("value".into(), json!(event.value));
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": event.fingerprint,
        "payload": {
            "summary": truncate(&summary(event), MAX_SUMMARY),
            "source": label(event, "service"),
            "severity": severity(label(event, "severity")),
            "timestamp": rfc3339(event.starts_at),
            "component": label(event, "flow"),
            "group": label(event, "owner"),
            "class": label(event, "alertname"),
            "custom_details": details,
        },
        "client": "Redline",
        "client_url": event.generator_url,
    });
    let links = links(event);
    if !links.is_empty() {
        body["links"] = Value::Array(links);
    }
    body
}

/// Redline severities onto PagerDuty's `critical|error|warning|info`.
fn severity(redline: &str) -> &'static str {
    match redline {
        "page" => "critical",
        "info" => "info",
        _ => "warning",
    }
}

fn links(event: &AlertEvent) -> Vec<Value> {
    [("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")]
        .into_iter()
        .filter(|(key, _)| !annotation(event, key).is_empty())
        .map(|(key, text)| json!({"href": annotation(event, key), "text": text}))
        .collect()
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::tests::example_event;

    #[test]
    fn trigger_has_the_events_v2_shape() {
        let msg = message("R0UT1NGKEY", &example_event());
        assert_eq!(msg["routing_key"], "R0UT1NGKEY");
        assert_eq!(msg["event_action"], "trigger");
        assert_eq!(msg["dedup_key"], "c6eadffa33fcdf37");
        let p = &msg["payload"];
        assert_eq!(
            p["summary"],
            "checkout: error rate 8.6% > 2% over 5m (412 requests)"
        );
        assert_eq!(p["source"], "shop-prototype");
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["timestamp"], "2026-08-22T10:01:00Z");
        assert_eq!(p["component"], "checkout");
        assert_eq!(p["group"], "payments-team");
        assert_eq!(p["class"], "FlowErrorRate");
        assert_eq!(p["custom_details"]["value"], 0.086);
        assert_eq!(p["custom_details"]["flow"], "checkout");
        assert_eq!(msg["client"], "Redline");
        assert_eq!(msg["client_url"], "http://127.0.0.1:9901/api/alerts");
        assert_eq!(
            msg["links"],
            json!([{"href": "https://wiki.example/runbooks/checkout", "text": "Runbook"}])
        );
    }

    #[test]
    fn resolve_reuses_the_dedup_key_and_nothing_else() {
        let mut event = example_event();
        event.status = AlertStatus::Resolved;
        let msg = message("K", &event);
        assert_eq!(
            msg,
            json!({"routing_key": "K", "event_action": "resolve", "dedup_key": "c6eadffa33fcdf37"})
        );
        let again = message("K", &event);
        assert_eq!(msg["dedup_key"], again["dedup_key"]);
    }

    #[test]
    fn severities_map_and_summaries_are_capped() {
        assert_eq!(severity("page"), "critical");
        assert_eq!(severity("warning"), "warning");
        assert_eq!(severity("info"), "info");
        let mut event = example_event();
        event.annotations.insert("summary".into(), "x".repeat(5000));
        let msg = message("K", &event);
        assert_eq!(
            msg["payload"]["summary"].as_str().unwrap().len(),
            MAX_SUMMARY
        );
    }
}

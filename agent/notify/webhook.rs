//! The `webhook` receiver body: Alertmanager's webhook JSON (version "4"), one message per alertname + flow.

use std::collections::BTreeMap;

use serde::Serialize;

use super::event::AlertEvent;
use super::wire::{ZERO_TIME, label, origin, rfc3339, status_str};

/// Labels a message is grouped by; one alert per group since each event is one alertname + flow.
const GROUP_BY: [&str; 2] = ["alertname", "flow"];

/// Alertmanager's `notify/webhook` `Message`, minus the fields newer versions add optionally.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message<'a> {
    version: &'static str,
    group_key: String,
    truncated_alerts: u64,
    status: &'static str,
    receiver: &'a str,
    group_labels: BTreeMap<&'a str, &'a str>,
    common_labels: &'a BTreeMap<String, String>,
    common_annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: String,
    alerts: [Alert<'a>; 1],
}

/// One entry of `alerts[]`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Alert<'a> {
    status: &'static str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: &'a str,
}

/// Build the message `receiver` gets for `event`.
pub fn message<'a>(receiver: &'a str, event: &'a AlertEvent) -> Message<'a> {
    let group_labels: BTreeMap<&str, &str> = GROUP_BY
        .iter()
        .map(|name| (*name, label(event, name)))
        .collect();
    let status = status_str(event.status);
    Message {
        version: "4",
        group_key: group_key(&group_labels),
        truncated_alerts: 0,
        status,
        receiver,
        group_labels,
        common_labels: &event.labels,
        common_annotations: &event.annotations,
        external_url: origin(&event.generator_url),
        alerts: [Alert {
            status,
            labels: &event.labels,
            annotations: &event.annotations,
            starts_at: rfc3339(event.starts_at),
            // Alertmanager hides an end that has not happened yet behind Go's zero time.
            ends_at: event.ends_at.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
            generator_url: &event.generator_url,
            fingerprint: &event.fingerprint,
        }],
    }
}

/// The serialised body, exactly the bytes that get signed.
pub fn body(receiver: &str, event: &AlertEvent) -> Vec<u8> {
    serde_json::to_vec(&message(receiver, event)).unwrap_or_default()
}

/// Alertmanager's `{route key}:{group labels}`, with the root route's empty key.
fn group_key(group_labels: &BTreeMap<&str, &str>) -> String {
    let pairs: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{}}:{{{}}}", pairs.join(", "))
}

/// Go's `%q` for the label values Redline produces (JSON string escaping is the same there).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::notify::event::AlertStatus;
    use std::time::{Duration, SystemTime};

    /// The §2.1 example of `research/alerting.md` as a Redline event.
    pub(crate) fn example_event() -> AlertEvent {
        let labels = [
            ("alertname", "FlowErrorRate"),
            ("flow", "checkout"),
            ("owner", "payments-team"),
            ("service", "shop-prototype"),
            ("severity", "page"),
        ];
        let annotations = [
            (
                "summary",
                "checkout: error rate 8.6% > 2% over 5m (412 requests)",
            ),
            ("runbook_url", "https://wiki.example/runbooks/checkout"),
        ];
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        AlertEvent {
            status: AlertStatus::Firing,
            labels: map(&labels),
            annotations: map(&annotations),
            starts_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_787_392_860),
            ends_at: None,
            generator_url: "http://127.0.0.1:9901/api/alerts".into(),
            fingerprint: "c6eadffa33fcdf37".into(),
            sequence: 1,
            value: 0.086,
        }
    }

    #[test]
    fn firing_message_matches_the_alertmanager_v4_example() {
        let event = example_event();
        let got: serde_json::Value = serde_json::from_slice(&body("ops", &event)).unwrap();
        let labels = serde_json::json!({"alertname": "FlowErrorRate", "flow": "checkout", "owner": "payments-team", "service": "shop-prototype", "severity": "page"});
        let annotations = serde_json::json!({"summary": "checkout: error rate 8.6% > 2% over 5m (412 requests)", "runbook_url": "https://wiki.example/runbooks/checkout"});
        let want = serde_json::json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"FlowErrorRate\", flow=\"checkout\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops",
            "groupLabels": {"alertname": "FlowErrorRate", "flow": "checkout"},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "http://127.0.0.1:9901",
            "alerts": [{
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-08-22T10:01:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9901/api/alerts",
                "fingerprint": "c6eadffa33fcdf37"
            }]
        });
        assert_eq!(got, want);
        // Field order follows Alertmanager's struct order, so diffs against real payloads read well.
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        let order = [
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        ];
        assert_eq!(keys, order);
    }

    #[test]
    fn resolved_message_carries_the_real_end() {
        let mut event = example_event();
        event.status = AlertStatus::Resolved;
        event.ends_at = Some(event.starts_at + Duration::from_secs(372));
        let got: serde_json::Value = serde_json::from_slice(&body("ops", &event)).unwrap();
        assert_eq!(got["status"], "resolved");
        assert_eq!(got["alerts"][0]["status"], "resolved");
        assert_eq!(got["alerts"][0]["endsAt"], "2026-08-22T10:07:12Z");
    }
}

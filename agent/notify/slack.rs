//! The `slack` receiver body: an incoming-webhook message in Block Kit with a plain `text` fallback.

use serde_json::{Value, json};

use super::event::{AlertEvent, AlertStatus};
use super::wire::{annotation, label, rfc3339, summary};

/// Build the incoming-webhook JSON for `event`.
pub fn message(event: &AlertEvent) -> Value {
    let (icon, word) = match event.status {
        AlertStatus::Firing => ("🔥", "FIRING"),
        AlertStatus::Resolved => ("✅", "RESOLVED"),
    };
    let (alertname, flow) = (label(event, "alertname"), label(event, "flow"));
    let text = format!("[{word}] {alertname} {}", summary(event));
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("{icon} {word}: {alertname} ({flow})")}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&summary(event))}}),
        json!({"type": "section", "fields": fields(event)}),
    ];
    if let Some(context) = links(event) {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
    }
    json!({"text": escape(&text), "blocks": blocks})
}

fn fields(event: &AlertEvent) -> Vec<Value> {
    let mut pairs = vec![
        ("Severity", label(event, "severity").to_string()),
        ("Owner", label(event, "owner").to_string()),
        ("Service", label(event, "service").to_string()),
        ("Started", rfc3339(event.starts_at)),
    ];
    if let Some(end) = event.ends_at {
        pairs.push(("Resolved", rfc3339(end)));
    }
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", escape(&v))}))
        .collect()
}

/// Runbook, dashboard and trace ids as one context line, if there is anything to link.
fn links(event: &AlertEvent) -> Option<String> {
    let mut parts = Vec::new();
    for (key, text) in [("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")] {
        let url = annotation(event, key);
        if !url.is_empty() {
            parts.push(format!("<{}|{text}>", escape(url)));
        }
    }
    let traces = annotation(event, "trace_ids");
    if !traces.is_empty() {
        parts.push(format!("traces: {}", escape(traces)));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// Slack's three control characters in mrkdwn and plain text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::tests::example_event;

    #[test]
    fn block_kit_with_plain_text_fallback() {
        let mut event = example_event();
        event.annotations.insert(
            "trace_ids".into(),
            "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        );
        let msg = message(&event);
        assert_eq!(
            msg["text"],
            "[FIRING] FlowErrorRate checkout: error rate 8.6% &gt; 2% over 5m (412 requests)"
        );
        let blocks = msg["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(
            blocks[0]["text"]["text"],
            "🔥 FIRING: FlowErrorRate (checkout)"
        );
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        let fields = blocks[2]["fields"].as_array().unwrap();
        assert_eq!(fields[0]["text"], "*Severity*\npage");
        assert_eq!(fields[1]["text"], "*Owner*\npayments-team");
        assert_eq!(fields[3]["text"], "*Started*\n2026-08-22T10:01:00Z");
        assert_eq!(blocks[3]["type"], "context");
        let context = blocks[3]["elements"][0]["text"].as_str().unwrap();
        assert!(context.contains("<https://wiki.example/runbooks/checkout|Runbook>"));
        assert!(context.contains("traces: 4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn resolved_messages_say_so_and_show_the_end() {
        let mut event = example_event();
        event.status = AlertStatus::Resolved;
        event.ends_at = Some(event.starts_at + std::time::Duration::from_secs(60));
        let msg = message(&event);
        assert!(
            msg["text"]
                .as_str()
                .unwrap()
                .starts_with("[RESOLVED] FlowErrorRate")
        );
        let fields = msg["blocks"][2]["fields"].as_array().unwrap();
        assert_eq!(
            fields.last().unwrap()["text"],
            "*Resolved*\n2026-08-22T10:02:00Z"
        );
    }
}

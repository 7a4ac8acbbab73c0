//! The `console` receiver: one human line per notification on stdout (used by `redline demo`).

use std::io::Write;

use super::event::{AlertEvent, AlertStatus};
use super::wire::{annotation, label, summary};

/// `[redline] FIRING FlowErrorRate checkout: error rate 8.6% > 2% over 5m (412 requests)`.
pub fn line(event: &AlertEvent) -> String {
    let word = match event.status {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "RESOLVED",
    };
    let mut out = format!(
        "[redline] {word} {} {}",
        label(event, "alertname"),
        summary(event)
    );
    let lasted = annotation(event, "duration");
    if event.status == AlertStatus::Resolved && !lasted.is_empty() {
        out.push_str(&format!(" (after {lasted})"));
    }
    out
}

/// Print the line with one write, so it never interleaves with access-log lines.
pub fn print(event: &AlertEvent) -> std::io::Result<()> {
    let mut text = line(event);
    text.push('\n');
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::tests::example_event;

    #[test]
    fn one_human_line() {
        let mut event = example_event();
        assert_eq!(
            line(&event),
            "[redline] FIRING FlowErrorRate checkout: error rate 8.6% > 2% over 5m (412 requests)"
        );
        event.status = AlertStatus::Resolved;
        event.annotations.insert("duration".into(), "6m12s".into());
        assert!(line(&event).starts_with("[redline] RESOLVED FlowErrorRate checkout:"));
        assert!(line(&event).ends_with("(after 6m12s)"));
    }
}

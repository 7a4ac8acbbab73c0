//! Event building: what one evaluation of an alert decides to send (firing, resolved, removed), with its labels and annotations.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fingerprint::fingerprint;
use super::model::{Instance, Scope};
use super::rules::{AlertKey, Evaluation, RuleDef};
use super::state_machine::{Phase, Reason, Transition};
use super::system_time;
use crate::config::format_duration;
use crate::notify::{AlertEvent, AlertStatus};

/// How many offending trace ids an alert carries.
const TRACE_IDS: usize = 3;

/// One alert's evaluation: step its state, refresh what it says, and return the event due.
pub(super) fn step(
    inst: &mut Instance,
    rule: &RuleDef,
    eval: &Evaluation,
    silenced: bool,
    scope: &Scope<'_>,
) -> Option<AlertEvent> {
    let now = scope.now_ms;
    let transition = inst.state.step(eval.verdict, now, &rule.timing);
    if let Some(v) = eval.value {
        inst.value = Some(v);
        inst.value_text = Some(rule.format_value(v));
    }
    inst.requests = eval.requests;
    let was_silenced = std::mem::replace(&mut inst.silenced, silenced);
    let resolved = matches!(transition, Transition::Resolved { .. });
    if inst.state.phase == Phase::Inactive && !resolved {
        return None;
    }
    inst.labels = labels(&inst.key, scope);
    inst.annotations = annotations(rule, eval, scope, resolved);
    match transition {
        Transition::Resolved {
            reason,
            fired_at_ms,
        } => {
            inst.account(rule, scope.flow, now, true);
            resolve(inst, reason, fired_at_ms, now, scope.base_url)
        }
        Transition::Fired => {
            inst.notified = false;
            inst.affected = 0;
            let slot = rule.slot_ms().max(1);
            let window_start = now.saturating_sub(millis(rule.over));
            inst.accounted_to_ms = window_start / slot * slot;
            inst.account(rule, scope.flow, now, false);
            firing_due(inst, silenced, was_silenced, scope)
        }
        _ if inst.state.phase == Phase::Firing => {
            inst.account(rule, scope.flow, now, false);
            firing_due(inst, silenced, was_silenced, scope)
        }
        _ => None,
    }
}

/// A firing notification, when due: first of the episode, a silence just ended, or
/// `repeat_interval` since the last one. Never while silenced.
fn firing_due(
    inst: &mut Instance,
    silenced: bool,
    was_silenced: bool,
    scope: &Scope<'_>,
) -> Option<AlertEvent> {
    let now = scope.now_ms;
    let repeat_due = inst
        .last_sent_ms
        .is_some_and(|t| u128::from(now.saturating_sub(t)) >= scope.repeat.as_millis());
    if silenced || (inst.notified && !was_silenced && !repeat_due) {
        return None;
    }
    inst.notified = true;
    inst.last_sent_ms = Some(now);
    let sequence = inst.next_sequence(now);
    Some(event(
        inst,
        AlertStatus::Firing,
        inst.annotations.clone(),
        None,
        sequence,
        scope.base_url,
    ))
}

/// The resolved notification of an episode, if its firing was ever notified: a receiver that
/// never heard of the alert needs no resolve, one that did must get it even during a silence.
fn resolve(
    inst: &mut Instance,
    reason: Reason,
    fired_at_ms: u64,
    now_ms: u64,
    base_url: &str,
) -> Option<AlertEvent> {
    let notified = std::mem::replace(&mut inst.notified, false);
    inst.last_sent_ms = None;
    if !notified {
        return None;
    }
    let mut annotations = inst.annotations.clone();
    let duration = Duration::from_millis(now_ms.saturating_sub(fired_at_ms) / 1000 * 1000);
    annotations.insert(
        "value".into(),
        inst.value_text.clone().unwrap_or_else(|| "no data".into()),
    );
    annotations.insert("duration".into(), format_duration(duration));
    annotations.insert("requests_affected".into(), inst.affected.to_string());
    annotations.insert("reason".into(), reason.as_str().into());
    let sequence = inst.next_sequence(now_ms);
    let mut ev = event(
        inst,
        AlertStatus::Resolved,
        annotations,
        Some(now_ms),
        sequence,
        base_url,
    );
    ev.starts_at = system_time(fired_at_ms);
    Some(ev)
}

/// An alert whose rule left the configuration: resolve it if it was firing.
pub(super) fn removed(inst: &mut Instance, now_ms: u64, base_url: &str) -> Option<AlertEvent> {
    match inst.state.force_resolve(Reason::RuleRemoved, now_ms) {
        Transition::Resolved {
            reason,
            fired_at_ms,
        } => {
            let summary = format!(
                "{}: alert {} was removed from the configuration",
                inst.key.flow, inst.key.alertname
            );
            inst.annotations.insert("summary".into(), summary);
            resolve(inst, reason, fired_at_ms, now_ms, base_url)
        }
        _ => None,
    }
}

fn event(
    inst: &Instance,
    status: AlertStatus,
    annotations: BTreeMap<String, String>,
    ends_at_ms: Option<u64>,
    sequence: u64,
    base_url: &str,
) -> AlertEvent {
    AlertEvent {
        status,
        labels: inst.labels.clone(),
        annotations,
        starts_at: system_time(inst.state.fired_at_ms.unwrap_or_default()),
        ends_at: ends_at_ms.map(system_time),
        generator_url: format!("{base_url}/api/alerts"),
        fingerprint: fingerprint(&inst.labels),
        sequence,
        value: inst.value.unwrap_or(0.0),
    }
}

/// `alertname, flow, severity, owner, service`; `owner` only when the flow has one.
fn labels(key: &AlertKey, scope: &Scope<'_>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), key.alertname.clone()),
        ("flow".to_string(), key.flow.clone()),
        ("severity".to_string(), key.severity.clone()),
        ("service".to_string(), scope.service.to_string()),
    ]);
    if let Some(owner) = scope.flow_cfg.owner.as_ref().filter(|o| !o.is_empty()) {
        labels.insert("owner".into(), owner.clone());
    }
    labels
}

/// `summary`, `runbook_url` (when the flow has one), `dashboard_url`, `trace_ids` (when any).
fn annotations(
    rule: &RuleDef,
    eval: &Evaluation,
    scope: &Scope<'_>,
    resolved: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("summary".into(), rule.summary(eval, resolved));
    if let Some(runbook) = &scope.flow_cfg.runbook {
        out.insert("runbook_url".into(), runbook.clone());
    }
    out.insert(
        "dashboard_url".into(),
        format!("{}/#flow={}", scope.base_url, rule.key.flow),
    );
    let since = scope.now_ms.saturating_sub(millis(rule.over));
    let traces = scope.flow.exemplars.recent(since, TRACE_IDS);
    if !traces.is_empty() {
        out.insert("trace_ids".into(), traces.join(","));
    }
    out
}

pub(super) fn log_event(event: &AlertEvent) {
    let label = |k: &str| event.labels.get(k).map_or("", String::as_str);
    let note = |k: &str| event.annotations.get(k).map_or("", String::as_str);
    let status = match event.status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    };
    tracing::info!(
        alert_status = status,
        alertname = label("alertname"),
        flow = label("flow"),
        severity = label("severity"),
        fingerprint = %event.fingerprint,
        summary = note("summary"),
        reason = note("reason"),
        duration = note("duration"),
        requests_affected = note("requests_affected"),
        "Alert notification queued."
    );
    export_event(event);
}

/// An alert's change as an OTLP log record `redline.alert` (when logs are exported): the
/// console receiver's line as its body, labels and state as attributes.
fn export_event(event: &AlertEvent) {
    use crate::telemetry::logs::{self, Severity};
    let (status, severity) = match event.status {
        AlertStatus::Firing => ("firing", Severity::Warn),
        AlertStatus::Resolved => ("resolved", Severity::Info),
    };
    let value = event.value.to_string();
    let mut attributes: Vec<(&str, &str)> = event
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    attributes.push(("status", status));
    attributes.push(("value", &value));
    attributes.push(("fingerprint", &event.fingerprint));
    if let Some(runbook) = event.annotations.get("runbook_url") {
        attributes.push(("runbook_url", runbook));
    }
    let body = crate::notify::console::line(event);
    logs::event("redline.alert", severity, &body, &attributes);
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

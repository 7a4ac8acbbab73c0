//! The alert event: what the evaluator hands to the notifier, one per firing, repeat or resolve.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// Firing or resolved, as in Alertmanager's payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The alert is firing (first notification or a repeat).
    Firing,
    /// The alert resolved (Ok held for `keep_firing_for`, or no data for 3 × `over`).
    Resolved,
}

/// One notification-worthy change of one alert (one alertname + flow).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertEvent {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// `alertname, flow, severity, owner, service` (PRODUCT.md §6); never a replica id.
    pub labels: BTreeMap<String, String>,
    /// `summary`, `runbook_url`, `dashboard_url`, `trace_ids` (comma-separated, up to 3),
    /// and on resolve `value`, `duration`, `requests_affected`, and `reason` (`no_data` when so).
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing.
    pub starts_at: SystemTime,
    /// Resolution time for resolved events; `None` while firing.
    pub ends_at: Option<SystemTime>,
    /// Link back to Redline (the dashboard or `/api/alerts`).
    pub generator_url: String,
    /// Alertmanager's fingerprint of `labels`: FNV-64a over the sorted label set, 16 hex digits.
    pub fingerprint: String,
    /// Monotonic per alert; a higher sequence supersedes an undelivered lower one.
    pub sequence: u64,
    /// The measured value that triggered (or resolved) the alert, in the rule's unit
    /// (seconds for latency, a fraction for rates, requests/s for rps).
    pub value: f64,
}

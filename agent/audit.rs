//! The audit trail: one structured log line per reload and per admin mutation, marked `audit = true`.
//!
//! Lines go through `tracing` under the target [`TARGET`], so with
//! `REDLINE_LOG_FORMAT=json` every field below is a top-level JSON field and
//! `REDLINE_LOG=redline::audit=info` selects the trail alone. Lists are
//! comma-separated strings: flow and setting names never contain commas. No
//! function here takes a header or a token, so none can be written.

use std::net::SocketAddr;

/// The `tracing` target of every audit line.
pub const TARGET: &str = "redline::audit";

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The watched config file (or its ConfigMap `..data` link) changed.
    File,
    /// SIGHUP.
    Signal,
    /// `POST /api/reload`.
    Api,
    /// The slow safety-net poll saw different file contents.
    Poll,
}

impl Trigger {
    /// The `trigger` field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
            Trigger::Poll => "poll",
        }
    }
}

/// What a successful reload changed, as the audit line and `POST /api/reload` report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadChanges {
    /// Flows in the new config only.
    pub flows_added: Vec<String>,
    /// Flows in the old config only.
    pub flows_removed: Vec<String>,
    /// Flows in both whose settings differ.
    pub flows_changed: Vec<String>,
    /// Settings that differ from what the process started with and only apply on restart.
    pub needs_restart: Vec<&'static str>,
}

/// A reload that applied.
pub fn reload_applied(trigger: Trigger, changes: &ReloadChanges) {
    tracing::info!(
        target: TARGET,
        audit = true,
        event = "reload",
        trigger = trigger.as_str(),
        result = "success",
        flows_added = %changes.flows_added.join(","),
        flows_removed = %changes.flows_removed.join(","),
        flows_changed = %changes.flows_changed.join(","),
        needs_restart = %changes.needs_restart.join(","),
        "Configuration reloaded."
    );
    if !changes.needs_restart.is_empty() {
        tracing::warn!(
            needs_restart = %changes.needs_restart.join(","),
            "Some changed settings only take effect after a restart; the running values stay."
        );
    }
}

/// A reload that was rejected; `error` must already be redacted.
pub fn reload_rejected(trigger: Trigger, error: &str) {
    tracing::error!(
        target: TARGET,
        audit = true,
        event = "reload",
        trigger = trigger.as_str(),
        result = "failure",
        error,
        "Configuration rejected; keeping the running one."
    );
}

/// One admin API mutation (anything but GET/HEAD), allowed or not.
///
/// `resource` is the request path only: queries and headers never reach the trail.
pub fn admin_action(client: SocketAddr, method: &http::Method, resource: &str, status: u16) {
    tracing::info!(
        target: TARGET,
        audit = true,
        event = "admin",
        client = %client,
        action = method.as_str(),
        resource,
        result = admin_result(status),
        status,
        "Admin API mutation."
    );
}

/// A silence created through the admin API.
///
/// `comment` is free text from the client: it goes in as a `&str` field, which the text
/// format quotes and escapes (`\n`, `\u{1b}`), so no comment can end the line and start a
/// forged one; JSON escapes it anyway.
pub fn silence_created(
    client: SocketAddr,
    id: &str,
    flow: Option<&str>,
    alertname: Option<&str>,
    ends_at: &str,
    comment: &str,
) {
    tracing::info!(
        target: TARGET,
        audit = true,
        event = "silence_created",
        client = %client,
        id,
        flow = flow.unwrap_or("*"),
        alertname = alertname.unwrap_or("*"),
        ends_at,
        comment,
        "Silence created."
    );
}

/// A fault injected through the admin API (`delay` empty and `abort` 0 when not set).
pub fn fault_injected(
    client: SocketAddr,
    id: &str,
    flow: &str,
    delay: &str,
    abort: u16,
    percent: &str,
    expires_in: &str,
) {
    tracing::info!(
        target: TARGET,
        audit = true,
        event = "fault_injected",
        client = %client,
        id,
        flow,
        delay,
        abort,
        percent,
        expires_in,
        "Fault injected."
    );
}

/// A fault removed through the admin API before its expiry.
pub fn fault_removed(client: SocketAddr, id: &str, flow: &str) {
    tracing::info!(
        target: TARGET,
        audit = true,
        event = "fault_removed",
        client = %client,
        id,
        flow,
        "Fault removed."
    );
}

/// A silence deleted through the admin API.
pub fn silence_deleted(client: SocketAddr, id: &str) {
    tracing::info!(
        target: TARGET,
        audit = true,
        event = "silence_deleted",
        client = %client,
        id,
        "Silence deleted."
    );
}

/// `ok`, `denied` (401/403), `rejected` (other 4xx) or `error` (5xx).
fn admin_result(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        401 | 403 => "denied",
        400..=499 => "rejected",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_results_by_status() {
        assert_eq!(admin_result(200), "ok");
        assert_eq!(admin_result(204), "ok");
        assert_eq!(admin_result(401), "denied");
        assert_eq!(admin_result(403), "denied");
        assert_eq!(admin_result(413), "rejected");
        assert_eq!(admin_result(500), "error");
    }

    #[test]
    fn triggers_have_stable_names() {
        let all = [Trigger::File, Trigger::Signal, Trigger::Api, Trigger::Poll];
        let names: Vec<_> = all.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["file", "signal", "api", "poll"]);
    }
}

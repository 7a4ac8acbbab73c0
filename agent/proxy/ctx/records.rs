//! The records a finished request leaves: the stdout access log line, the OTLP log record
//! and the audit-trail entry.

use std::time::{Duration, SystemTime};

use super::{RequestCtx, unix_ms};
use crate::access_log::Entry;
use crate::error::ErrorType;
use crate::telemetry::Telemetry;

impl RequestCtx {
    /// The access record as an OTLP log record, linked to the request's trace and SERVER
    /// span (`kept`: its spans were exported, so the record's sampled flag is set).
    pub(super) fn log_otlp(
        &self,
        telemetry: &Telemetry,
        status: u16,
        duration: Duration,
        error: ErrorType,
        kept: bool,
    ) {
        let redactor = &self.runtime.redactor;
        let query = self.uri.query().map(|q| redactor.query(q));
        let error = error.label(status);
        let client = self.client.ip().to_string();
        telemetry.log_access(&crate::telemetry::logs::AccessRecord {
            time_ns: unix_ns(self.started_wall),
            observed_ns: unix_ns(SystemTime::now()),
            severity: severity(status, error.is_empty()),
            method: self.method.as_str(),
            path: self.uri.path(),
            query: query.as_deref().unwrap_or(""),
            route: &self.route_metrics.route,
            flow: &self.flow().state.name,
            status,
            error: &error,
            duration_ms: (duration.as_secs_f64() * 1e6).round() / 1e3,
            client: &client,
            request_id: self.request_id.to_str().unwrap_or(""),
            trace_id: self.trace.trace_id,
            span_id: self.trace.span_id,
            sampled: kept,
        });
    }

    /// This request's audit record: who, from where, what, and the decision.
    pub(super) fn audit_entry(&self, status: u16) -> crate::audit_trail::Entry {
        let id = self.identity.as_deref();
        crate::audit_trail::Entry {
            time_ms: unix_ms(self.started_wall),
            flow: self.flow().state.name.to_string(),
            subject: id.map(|i| i.subject.clone()),
            roles: id.map(|i| i.roles.clone()).unwrap_or_default(),
            client: self.client.to_string(),
            method: self.method.to_string(),
            route: self.route_metrics.route.to_string(),
            path: (self.runtime.redactor)
                .path_and_query(self.uri.path(), self.uri.query())
                .into_owned(),
            status,
            request_id: self.request_id.to_str().unwrap_or("").to_string(),
            trace_id: self.trace.trace_id_hex(),
            decision: self
                .decision
                .as_ref()
                .map_or("allow", |d| d.verdict.as_str()),
            rule: self
                .decision
                .as_ref()
                .map_or_else(|| "none".into(), |d| d.rule.clone()),
        }
    }

    /// The stdout access log line of this request.
    pub(super) fn log(&self, status: u16, duration: Duration, error: ErrorType) {
        let entry = Entry {
            ts: self.started_wall,
            method: self.method.clone(),
            uri: self.uri.clone(),
            route: self.route_metrics.route.clone(),
            flow: self.flow().state.name.clone(),
            status,
            duration,
            upstream: self.upstream,
            bytes_in: self.bytes_in.as_ref().map_or(0, |p| p.bytes()),
            bytes_out: self.bytes_out,
            client: self.client,
            request_id: self.request_id.clone(),
            error,
            redactor: self.runtime.redactor.clone(),
        };
        self.shared.access_log.emit(entry, &self.shared.registry);
    }
}

/// An access record's severity: a failure (5xx, Redline's own) is an error, a 4xx or a
/// client's failure a warning, the rest information.
fn severity(status: u16, no_error: bool) -> crate::telemetry::logs::Severity {
    use crate::telemetry::logs::Severity;
    match status {
        500.. => Severity::Error,
        400.. => Severity::Warn,
        _ if no_error => Severity::Info,
        _ => Severity::Warn,
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

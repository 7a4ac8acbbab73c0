//! JSON views of the engine for the admin API: alerts, one flow's alerts, silences.

use serde_json::{Value, json};

use super::engine::Engine;
use super::fingerprint::fingerprint;
use super::model::Instance;
use super::rfc3339;
use super::silences::Silence;
use super::state_machine::Phase;

impl Engine {
    /// `GET /api/alerts`: every alert not inactive.
    pub fn alerts_json(&self, now_ms: u64) -> Value {
        let inner = self.lock();
        let alerts: Vec<Value> = inner
            .alerts
            .values()
            .filter(|i| i.state.phase != Phase::Inactive)
            .map(|i| alert_json(i, &inner.silences.matching(&i.key, now_ms)))
            .collect();
        json!({ "alerts": alerts })
    }

    /// The alerts of one flow, inactive included, for `GET /api/flows`.
    pub fn flow_alerts_json(&self, flow: &str, now_ms: u64) -> Value {
        let inner = self.lock();
        let alerts: Vec<Value> = inner
            .alerts
            .values()
            .filter(|i| i.key.flow == flow)
            .map(|i| {
                json!({
                    "alertname": i.key.alertname,
                    "severity": i.key.severity,
                    "state": i.state.phase.as_str(),
                    "value": i.value,
                    "summary": i.annotations.get("summary"),
                    "active_since": i.state.active_since_ms.map(rfc3339),
                    "starts_at": i.state.fired_at_ms.map(rfc3339),
                    "silenced": !inner.silences.matching(&i.key, now_ms).is_empty(),
                })
            })
            .collect();
        Value::Array(alerts)
    }

    /// `GET /api/silences`: active silences.
    pub fn silences_json(&self, now_ms: u64) -> Value {
        let inner = self.lock();
        let list: Vec<Value> = inner
            .silences
            .list()
            .iter()
            .filter(|s| s.is_active(now_ms))
            .map(Silence::to_json)
            .collect();
        json!({ "silences": list })
    }
}

fn alert_json(inst: &Instance, silenced_by: &[String]) -> Value {
    json!({
        "labels": inst.labels,
        "annotations": inst.annotations,
        "state": inst.state.phase.as_str(),
        "active_since": inst.state.active_since_ms.map(rfc3339),
        "starts_at": inst.state.fired_at_ms.map(rfc3339),
        "value": inst.value,
        "requests": inst.requests,
        "silenced": !silenced_by.is_empty(),
        "silenced_by": silenced_by,
        "fingerprint": fingerprint(&inst.labels),
    })
}

//! The evaluator: judges every rule of the current config, steps each alert, decides notifications.
//!
//! One [`Engine`] per process. [`Engine::evaluate`] runs on the background evaluator task
//! every `eval_interval`; the admin API reads and changes it between evaluations. Its mutex is
//! never taken on the request path. Events are kept in an outbox that is persisted with the
//! alert states before being handed to the notifier, so a crash re-sends rather than loses.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::fingerprint::fingerprint;
use super::persist::{Snapshot, Store};
use super::rules::{AlertKey, Evaluation, RuleDef, compile};
use super::silences::{NewSilence, Silence, SilenceError, Silences};
use super::state_machine::{AlertState, Phase, Reason, Transition};
use super::{rfc3339, system_time};
use crate::config::{Config, FlowConfig, format_duration};
use crate::metrics::Registry;
use crate::notify::{AlertEvent, AlertStatus};
use crate::state::{FlowState, Runtime, Shared};

/// Events kept at most while the notifier does not take them; the oldest go first.
const OUTBOX_CAP: usize = 1_000;

/// How many offending trace ids an alert carries.
const TRACE_IDS: usize = 3;

/// One alert: its lifecycle and what was last measured and said about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Identity.
    pub key: AlertKey,
    /// Lifecycle.
    pub state: AlertState,
    /// A firing notification went out for the current episode.
    pub notified: bool,
    /// Muted at the last evaluation.
    pub silenced: bool,
    /// When the last firing notification went out.
    pub last_sent_ms: Option<u64>,
    /// Sequence of the last event.
    pub sequence: u64,
    /// Last measured value, in the rule's unit.
    pub value: Option<f64>,
    /// That value as people read it (`8.6%`).
    pub value_text: Option<String>,
    /// Requests in the window at the last evaluation.
    pub requests: u64,
    /// Bad requests counted since the episode started firing.
    pub affected: u64,
    /// Bad requests before this instant (a slot start) are in `affected`.
    pub accounted_to_ms: u64,
    /// Labels at the last evaluation.
    pub labels: BTreeMap<String, String>,
    /// Annotations at the last evaluation.
    pub annotations: BTreeMap<String, String>,
}

impl Instance {
    fn new(key: AlertKey) -> Self {
        Instance {
            key,
            ..Instance::default()
        }
    }

    fn gauge_labels(&self) -> [&str; 3] {
        [&self.key.flow, &self.key.alertname, &self.key.severity]
    }

    /// Add the bad requests of the whole slots since the last accounting; `to_now` includes
    /// the current, partial slot (at resolution).
    fn account(&mut self, rule: &RuleDef, flow: &FlowState, now_ms: u64, to_now: bool) {
        let slot = rule.slot_ms().max(1);
        let current = now_ms / slot * slot;
        let (until, next) = if to_now {
            (now_ms, now_ms.saturating_add(1))
        } else if current > self.accounted_to_ms {
            (current - 1, current)
        } else {
            return;
        };
        if until >= self.accounted_to_ms {
            self.affected += rule.bad_in(flow, self.accounted_to_ms, until);
            self.accounted_to_ms = next;
        }
    }

    fn next_sequence(&mut self, now_ms: u64) -> u64 {
        // Wall-clock based, so it keeps growing across restarts without data_dir too.
        self.sequence = self.sequence.saturating_add(1).max(now_ms);
        self.sequence
    }
}

/// What one evaluation needs to know besides the rule.
struct Scope<'a> {
    now_ms: u64,
    flow_cfg: &'a FlowConfig,
    flow: &'a FlowState,
    service: &'a str,
    base_url: &'a str,
    repeat: Duration,
}

/// Mutable engine state, behind one mutex.
#[derive(Debug, Default)]
struct Inner {
    alerts: BTreeMap<AlertKey, Instance>,
    silences: Silences,
    outbox: VecDeque<AlertEvent>,
    /// Bumped per snapshot taken, so the store writes snapshots in order.
    generation: u64,
}

impl Inner {
    /// Step one alert with its evaluation; true when something durable changed.
    fn apply(
        &mut self,
        rule: &RuleDef,
        eval: &Evaluation,
        scope: &Scope<'_>,
        registry: &Registry,
        events: &mut Vec<AlertEvent>,
    ) -> bool {
        let silenced = !self.silences.matching(&rule.key, scope.now_ms).is_empty();
        let inst = self
            .alerts
            .entry(rule.key.clone())
            .or_insert_with(|| Instance::new(rule.key.clone()));
        let before = (inst.state.phase, inst.notified, inst.silenced);
        events.extend(step(inst, rule, eval, silenced, scope));
        registry
            .alert_state
            .set(&inst.gauge_labels(), inst.state.phase.gauge());
        before != (inst.state.phase, inst.notified, inst.silenced)
    }

    /// Drop alerts whose rule left the configuration, resolving firing ones.
    fn retire(
        &mut self,
        live: &HashSet<&AlertKey>,
        now_ms: u64,
        base_url: &str,
        registry: &Registry,
        events: &mut Vec<AlertEvent>,
    ) -> bool {
        let gone: Vec<AlertKey> = self
            .alerts
            .keys()
            .filter(|k| !live.contains(k))
            .cloned()
            .collect();
        for key in &gone {
            if let Some(mut inst) = self.alerts.remove(key) {
                registry.alert_state.remove(&inst.gauge_labels());
                events.extend(removed(&mut inst, now_ms, base_url));
            }
        }
        !gone.is_empty()
    }

    /// Queue events for the notifier, dropping the oldest beyond the cap.
    fn enqueue(&mut self, events: Vec<AlertEvent>) {
        for event in events {
            log_event(&event);
            if self.outbox.len() >= OUTBOX_CAP {
                self.outbox.pop_front();
                tracing::warn!("Alert outbox full: the oldest undelivered event was dropped.");
            }
            self.outbox.push_back(event);
        }
    }
}

/// One rule of one flow, judged.
struct Judged<'a> {
    flow_cfg: &'a FlowConfig,
    flow: &'a FlowState,
    rule: RuleDef,
    eval: Evaluation,
}

/// Judge every rule of every configured flow at `now_ms`, outside the engine's lock.
fn judge_all(runtime: &Runtime, now_ms: u64) -> Vec<Judged<'_>> {
    let mut judged = Vec::new();
    for (flow_cfg, flow) in runtime.config.flows.iter().zip(runtime.flows.iter()) {
        if let Some(slo) = flow.state.slo.get() {
            slo.counter().advance(now_ms);
        }
        for rule in compile(flow_cfg) {
            let eval = rule.evaluate(&flow.state, now_ms);
            judged.push(Judged {
                flow_cfg,
                flow: &flow.state,
                rule,
                eval,
            });
        }
    }
    judged
}

/// The alert engine; shared with the admin API through [`Shared::alerts`].
#[derive(Debug)]
pub struct Engine {
    inner: Mutex<Inner>,
    store: Option<Store>,
    /// Default base URL of links (the bound admin listener); `alerting.external_url` wins.
    admin_url: String,
    wake: tokio::sync::Notify,
}

impl Engine {
    /// An engine with no alerts yet; `store` persists its state when set.
    pub fn new(store: Option<Store>, admin_url: String) -> Self {
        Engine {
            inner: Mutex::new(Inner::default()),
            store,
            admin_url,
            wake: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way worse
        // than a skipped evaluation; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Load the snapshot from the store, if any: firing alerts keep their `startsAt` and
    /// their "already notified" mark, so a restart neither re-pages nor forgets to resolve.
    pub fn restore(&self, registry: &Registry, now_ms: u64) {
        let Some(store) = &self.store else {
            return;
        };
        let snapshot = match store.load() {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "Alert state not restored; starting with no active alerts.");
                return;
            }
        };
        let mut inner = self.lock();
        for mut inst in snapshot.alerts {
            inst.state.restart_holds();
            registry
                .alert_state
                .set(&inst.gauge_labels(), inst.state.phase.gauge());
            inner.alerts.insert(inst.key.clone(), inst);
        }
        inner.silences = Silences::from_list(snapshot.silences);
        inner.silences.prune(now_ms);
        inner.outbox = snapshot.outbox.into();
        tracing::info!(
            alerts = inner.alerts.len(),
            silences = inner.silences.list().len(),
            pending_events = inner.outbox.len(),
            path = %store.path().display(),
            "Alert state restored."
        );
    }

    /// Judge every rule of the current runtime at the clock's now, step every alert, queue
    /// notifications. True when something durable changed (the state should be persisted).
    pub fn evaluate(&self, shared: &Shared) -> bool {
        let runtime = shared.runtime.load();
        let now_ms = shared.clock.now_ms();
        let config = &runtime.config;
        let judged = judge_all(&runtime, now_ms);
        let service = service_name(config);
        let base_url = config
            .alerting
            .external_url
            .clone()
            .unwrap_or_else(|| self.admin_url.clone());
        let registry = &shared.registry;
        let mut inner = self.lock();
        let mut changed = inner.silences.prune(now_ms);
        let mut events = Vec::new();
        for j in &judged {
            let scope = Scope {
                now_ms,
                flow_cfg: j.flow_cfg,
                flow: j.flow,
                service: &service,
                base_url: &base_url,
                repeat: config.alerting.repeat_interval,
            };
            changed |= inner.apply(&j.rule, &j.eval, &scope, registry, &mut events);
        }
        let live: HashSet<&AlertKey> = judged.iter().map(|j| &j.rule.key).collect();
        changed |= inner.retire(&live, now_ms, &base_url, registry, &mut events);
        changed |= !events.is_empty();
        inner.enqueue(events);
        changed
    }

    /// Hand queued events to the notifier without waiting; true when the outbox changed.
    pub fn flush_outbox(&self, tx: &mpsc::Sender<AlertEvent>) -> bool {
        let mut inner = self.lock();
        let mut sent = false;
        while let Some(event) = inner.outbox.pop_front() {
            match tx.try_send(event) {
                Ok(()) => sent = true,
                // The notifier is behind: keep the event queued (and persisted) for later.
                Err(TrySendError::Full(event)) => {
                    inner.outbox.push_front(event);
                    break;
                }
                // No notifier (it failed to start): replaying stale events later helps nobody.
                Err(TrySendError::Closed(_)) => {
                    let dropped = inner.outbox.len() + 1;
                    inner.outbox.clear();
                    tracing::warn!(
                        dropped,
                        "No alert notifier is running; notifications dropped."
                    );
                    sent = true;
                    break;
                }
            }
        }
        sent
    }

    /// Events waiting for the notifier.
    pub fn outbox_len(&self) -> usize {
        self.lock().outbox.len()
    }

    /// Write the current state to `data_dir` (no-op without one), off the async threads.
    pub async fn persist(self: &Arc<Self>) {
        if self.store.is_none() {
            return;
        }
        let (generation, bytes) = match self.snapshot_bytes() {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(%error, "Cannot encode the alert state.");
                return;
            }
        };
        let engine = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            engine
                .store
                .as_ref()
                .map_or(Ok(()), |s| s.write(generation, &bytes))
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "Cannot persist the alert state."),
            Err(error) => tracing::error!(%error, "Alert state writer failed."),
        }
    }

    /// The current state, encoded, with its generation.
    pub fn snapshot_bytes(&self) -> Result<(u64, Vec<u8>), serde_json::Error> {
        let mut inner = self.lock();
        inner.generation += 1;
        let alerts = inner
            .alerts
            .values()
            .filter(|i| i.state.phase != Phase::Inactive)
            .cloned()
            .collect();
        let snapshot = Snapshot::new(
            alerts,
            inner.silences.list().to_vec(),
            inner.outbox.iter().cloned().collect(),
        );
        Ok((inner.generation, serde_json::to_vec(&snapshot)?))
    }

    /// Ask the evaluator to run now (after a silence change).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`wake`](Self::wake) was called.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

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

    /// Add a silence; it mutes notifications from the next evaluation on.
    pub fn add_silence(&self, new: NewSilence, now_ms: u64) -> Result<Silence, SilenceError> {
        let silence = new.into_silence(now_ms)?;
        self.lock().silences.add(silence.clone(), now_ms)?;
        Ok(silence)
    }

    /// Delete a silence by id; false when there is no such active silence.
    pub fn remove_silence(&self, id: &str, now_ms: u64) -> bool {
        self.lock().silences.remove(id, now_ms)
    }
}

/// One alert's evaluation: step its state, refresh what it says, and return the event due.
fn step(
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
fn removed(inst: &mut Instance, now_ms: u64, base_url: &str) -> Option<AlertEvent> {
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

fn log_event(event: &AlertEvent) {
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
}

/// `service` label: `OTEL_SERVICE_NAME` when set, else the config's `service`.
fn service_name(config: &Config) -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| config.service.clone())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

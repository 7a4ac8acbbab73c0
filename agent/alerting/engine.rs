//! The evaluator: judges every rule of the current config, steps each alert, decides notifications.
//!
//! One [`Engine`] per process. [`Engine::evaluate`] runs on the background evaluator task
//! every `eval_interval`; the admin API reads and changes it between evaluations. Its mutex is
//! never taken on the request path. Events are kept in an outbox that is persisted with the
//! alert states before being handed to the notifier, so a crash re-sends rather than loses.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::events::{log_event, removed, step};
use super::model::{Instance, Scope};
use super::persist::{Snapshot, Store};
use super::rules::{AlertKey, Evaluation, RuleDef, compile};
use super::silences::{NewSilence, Silence, SilenceError, Silences};
use super::state_machine::Phase;
use crate::config::{Config, FlowConfig};
use crate::metrics::Registry;
use crate::notify::AlertEvent;
use crate::state::{FlowState, Runtime, Shared};

/// Events kept at most while the notifier does not take them; the oldest go first.
const OUTBOX_CAP: usize = 1_000;

/// Mutable engine state, behind one mutex.
#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) alerts: BTreeMap<AlertKey, Instance>,
    pub(super) silences: Silences,
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

/// Judge every rule of every configured flow, then the `unmatched` flow's (see
/// [`unmatched_flow`]), at `now_ms`, outside the engine's lock.
fn judge_all<'a>(runtime: &'a Runtime, unmatched: &'a FlowConfig, now_ms: u64) -> Vec<Judged<'a>> {
    let mut judged = Vec::new();
    let configured = runtime.config.flows.iter().zip(runtime.flows.iter());
    let all = configured.chain(std::iter::once((unmatched, &runtime.unmatched)));
    for (flow_cfg, flow) in all {
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

/// The `unmatched` flow as alerts see it: no owner or runbook, and `alerting.default_alerts`
/// while no flows are configured (then it is all traffic). Its alerts carry
/// `flow="unmatched"`, the label its requests have on `/metrics`.
fn unmatched_flow(config: &Config) -> FlowConfig {
    FlowConfig {
        name: crate::config::UNMATCHED_FLOW.to_string(),
        patterns: Vec::new(),
        owner: None,
        runbook: None,
        timeout: None,
        alerts: config.unmatched_alerts().to_vec(),
        slo: None,
        max_concurrent_requests: None,
        concurrency: None,
        baseline: None,
        access: None,
        audit: false,
        retries: None,
        circuit_breaker: None,
        fallback: None,
        fault: None,
    }
}

/// The alert engine; `app::run` hands it to the admin API (`Admin::new`).
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

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
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
        let unmatched = unmatched_flow(config);
        let judged = judge_all(&runtime, &unmatched, now_ms);
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

/// `service` label: `OTEL_SERVICE_NAME` when set, else the config's `service`.
fn service_name(config: &Config) -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| config.service.clone())
}

//! The alert record the engine keeps, persists and reports: [`Instance`], and the [`Scope`] of one evaluation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::{AlertKey, RuleDef};
use super::state_machine::AlertState;
use crate::config::FlowConfig;
use crate::state::FlowState;

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
    pub(super) fn new(key: AlertKey) -> Self {
        Instance {
            key,
            ..Instance::default()
        }
    }

    pub(super) fn gauge_labels(&self) -> [&str; 3] {
        [&self.key.flow, &self.key.alertname, &self.key.severity]
    }

    /// Add the bad requests of the whole slots since the last accounting; `to_now` includes
    /// the current, partial slot (at resolution).
    pub(super) fn account(&mut self, rule: &RuleDef, flow: &FlowState, now_ms: u64, to_now: bool) {
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

    pub(super) fn next_sequence(&mut self, now_ms: u64) -> u64 {
        // Wall-clock based, so it keeps growing across restarts without data_dir too.
        self.sequence = self.sequence.saturating_add(1).max(now_ms);
        self.sequence
    }
}

/// What one evaluation needs to know besides the rule.
pub(super) struct Scope<'a> {
    pub(super) now_ms: u64,
    pub(super) flow_cfg: &'a FlowConfig,
    pub(super) flow: &'a FlowState,
    pub(super) service: &'a str,
    pub(super) base_url: &'a str,
    pub(super) repeat: Duration,
}

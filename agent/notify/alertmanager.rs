//! The `alertmanager` receiver: keep the active set and push it to `/api/v2/alerts` on every URL.
//!
//! Like Prometheus: firing alerts are re-pushed every minute with `endsAt` a few
//! minutes ahead (so Alertmanager resolves them by itself if Redline disappears);
//! a resolved alert is pushed with `endsAt` = resolution time and re-pushed for five
//! minutes, so a restarted Alertmanager still learns about it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::ReceiverKind;
use crate::shutdown::Watch;

use super::Timing;
use super::deliver::Ctx;
use super::event::{AlertEvent, AlertStatus};
use super::retry::Verdict;
use super::store::{self, Store};
use super::wire::rfc3339;

/// The alerts one receiver keeps pushing, by fingerprint.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ActiveSet {
    /// Receiver name.
    pub receiver: String,
    /// Latest event per alert.
    pub alerts: BTreeMap<String, AlertEvent>,
    #[serde(skip)]
    version: u64,
}

impl ActiveSet {
    /// Record `event` unless an equal or newer one for the alert is already known.
    pub fn apply(&mut self, event: AlertEvent) -> bool {
        let newer = self
            .alerts
            .get(&event.fingerprint)
            .is_none_or(|known| known.sequence < event.sequence);
        if newer {
            self.alerts.insert(event.fingerprint.clone(), event);
            self.version += 1;
        }
        newer
    }

    /// Forget resolved alerts that have been re-sent for long enough.
    pub fn prune(&mut self, now: SystemTime, resolved_for: Duration) -> usize {
        let before = self.alerts.len();
        self.alerts.retain(|_, e| match (e.status, e.ends_at) {
            (AlertStatus::Resolved, Some(end)) => end + resolved_for > now,
            (AlertStatus::Resolved, None) => false,
            (AlertStatus::Firing, _) => true,
        });
        let pruned = before - self.alerts.len();
        if pruned > 0 {
            self.version += 1;
        }
        pruned
    }

    /// The `POST /api/v2/alerts` body at `now`; `None` when there is nothing to push.
    pub fn body(&self, now: SystemTime, ends_ahead: Duration) -> Option<Vec<u8>> {
        if self.alerts.is_empty() {
            return None;
        }
        let alerts: Vec<Value> = self
            .alerts
            .values()
            .map(|e| postable(e, now, ends_ahead))
            .collect();
        serde_json::to_vec(&alerts).ok()
    }
}

/// One `postableAlert`.
pub fn postable(event: &AlertEvent, now: SystemTime, ends_ahead: Duration) -> Value {
    let ends_at = match (event.status, event.ends_at) {
        (AlertStatus::Resolved, Some(end)) => end,
        _ => now + ends_ahead,
    };
    json!({
        "labels": event.labels,
        "annotations": event.annotations,
        "startsAt": rfc3339(event.starts_at),
        "endsAt": rfc3339(ends_at),
        "generatorURL": event.generator_url,
    })
}

/// `base` + `/api/v2/alerts`, keeping any path prefix Alertmanager is served under.
pub fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// One alertmanager receiver's state, shared by the dispatcher and its pusher.
pub struct AmQueue {
    /// Receiver name.
    pub name: String,
    set: Mutex<ActiveSet>,
    wake: Notify,
    store: Option<Arc<Store>>,
    /// Held from a change to its save, and while a body is rendered: what is pushed has
    /// been saved first, so a hard stop never makes the next start push an older state.
    saving: tokio::sync::Mutex<()>,
}

impl AmQueue {
    /// A queue around `set`, persisted to `store` when there is a `data_dir`.
    pub fn new(name: &str, mut set: ActiveSet, store: Option<Store>) -> AmQueue {
        set.receiver = name.to_string();
        AmQueue {
            name: name.to_string(),
            set: Mutex::new(set),
            wake: Notify::new(),
            store: store.map(Arc::new),
            saving: tokio::sync::Mutex::new(()),
        }
    }

    /// Take `event` into the active set and push soon.
    pub async fn push(&self, event: AlertEvent, ctx: &Ctx) {
        let saving = self.saving.lock().await;
        if !self.with(|s| s.apply(event)) {
            ctx.count(&self.name, "dropped");
            return;
        }
        self.persist().await;
        drop(saving);
        self.wake.notify_one();
    }

    /// Alerts still being pushed (firing, or resolved less than the re-send period ago).
    pub fn len(&self) -> usize {
        self.with(|s| s.alerts.len())
    }

    /// Whether nothing is being pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut ActiveSet) -> R) -> R {
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut set)
    }

    async fn persist(&self) {
        let Some(store) = &self.store else { return };
        let (version, bytes) = self.with(|s| (s.version, serde_json::to_vec(&*s)));
        match bytes {
            Ok(bytes) => store::save(store.clone(), version, bytes).await,
            Err(error) => tracing::error!(%error, "Cannot serialise the alertmanager set."),
        }
    }

    /// Prune, persist if that changed anything, and render the body to push.
    async fn prepare(&self, timing: &Timing) -> Option<Vec<u8>> {
        let _saving = self.saving.lock().await;
        let now = SystemTime::now();
        if self.with(|s| s.prune(now, timing.am_resolved_for)) > 0 {
            self.persist().await;
        }
        self.with(|s| s.body(now, timing.am_ends_ahead))
    }
}

/// When each URL is next pushed to, and how often it failed in a row.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    failures: u32,
}

/// Push the active set until `stop`; then push once more to URLs that are due and return.
pub async fn run(queue: Arc<AmQueue>, ctx: Arc<Ctx>, stop: Watch) {
    let mut due: HashMap<String, Due> = HashMap::new();
    loop {
        let stopping = stop.is_signaled();
        let urls = match ctx.receiver(&queue.name, ReceiverKind::Alertmanager) {
            Some(config) => config.all_urls().into_iter().map(String::from).collect(),
            None => Vec::new(),
        };
        due.retain(|url, _| urls.contains(url));
        if let Some(body) = queue.prepare(&ctx.timing).await {
            push_round(&queue.name, &urls, &body, &mut due, &ctx).await;
        }
        if stopping {
            return;
        }
        let wait = match queue.is_empty() {
            true => None,
            false => due.values().map(|d| d.at).min(),
        };
        tokio::select! {
            _ = sleep_until(wait) => {}
            _ = queue.wake.notified() => due.clear(),
            () = stop.signaled() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// POST `body` to every URL that is due, concurrently, and schedule each one's next push.
async fn push_round(
    name: &str,
    urls: &[String],
    body: &[u8],
    due: &mut HashMap<String, Due>,
    ctx: &Arc<Ctx>,
) {
    let now = Instant::now();
    let mut sends = JoinSet::new();
    for url in urls
        .iter()
        .filter(|u| due.get(*u).is_none_or(|d| d.at <= now))
    {
        let (ctx, url, body, name) = (ctx.clone(), url.clone(), body.to_vec(), name.to_string());
        sends.spawn(async move {
            let verdict = ctx.post(&name, &alerts_url(&url), &[], body).await;
            (url, verdict)
        });
    }
    while let Some(Ok((url, verdict))) = sends.join_next().await {
        let failures = due.get(&url).map_or(0, |d| d.failures);
        let next = schedule(verdict, failures, ctx);
        ctx.count(name, result(verdict));
        due.insert(url, next);
    }
}

fn schedule(verdict: Verdict, failures: u32, ctx: &Ctx) -> Due {
    let resend = ctx.timing.am_resend;
    match verdict {
        Verdict::Delivered | Verdict::Fail => Due {
            at: Instant::now() + resend,
            failures: 0,
        },
        // The periodic re-push is itself a retry, so never wait longer than it.
        Verdict::Retry { after } => Due {
            at: Instant::now() + ctx.delay(failures, after).min(resend),
            failures: failures + 1,
        },
    }
}

fn result(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Delivered => "delivered",
        Verdict::Retry { .. } => "retried",
        Verdict::Fail => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::tests::example_event;

    #[test]
    fn firing_alerts_end_ahead_and_resolved_ones_at_resolution() {
        let firing = example_event();
        let now = firing.starts_at + Duration::from_secs(120);
        let v = postable(&firing, now, Duration::from_secs(240));
        assert_eq!(v["startsAt"], "2026-08-22T10:01:00Z");
        assert_eq!(v["endsAt"], "2026-08-22T10:07:00Z");
        assert_eq!(v["generatorURL"], "http://127.0.0.1:9901/api/alerts");
        assert_eq!(v["labels"]["alertname"], "FlowErrorRate");
        assert_eq!(
            v["annotations"]["runbook_url"],
            "https://wiki.example/runbooks/checkout"
        );
        let mut resolved = firing.clone();
        resolved.status = AlertStatus::Resolved;
        resolved.ends_at = Some(firing.starts_at + Duration::from_secs(60));
        let v = postable(&resolved, now, Duration::from_secs(240));
        assert_eq!(v["endsAt"], "2026-08-22T10:02:00Z");
    }

    #[test]
    fn resolved_alerts_are_resent_for_a_while_then_forgotten() {
        let mut set = ActiveSet::default();
        let mut event = example_event();
        assert!(set.apply(event.clone()));
        assert!(!set.apply(event.clone()), "same sequence is stale");
        event.sequence = 2;
        event.status = AlertStatus::Resolved;
        let end = event.starts_at + Duration::from_secs(60);
        event.ends_at = Some(end);
        assert!(set.apply(event));
        let five = Duration::from_secs(300);
        assert_eq!(set.prune(end + Duration::from_secs(299), five), 0);
        assert!(set.body(end, five).is_some());
        assert_eq!(set.prune(end + five, five), 1);
        assert!(set.body(end, five).is_none());
    }

    #[test]
    fn urls_keep_their_prefix() {
        assert_eq!(alerts_url("http://am:9093"), "http://am:9093/api/v2/alerts");
        assert_eq!(alerts_url("http://h/am/"), "http://h/am/api/v2/alerts");
    }
}

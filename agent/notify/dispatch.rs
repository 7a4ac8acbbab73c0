//! The dispatcher: fans each alert event out to every configured receiver's queue, and restores queues on start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::ReceiverKind;
use crate::shutdown::{self, Signal, Watch};

use super::alertmanager::{self, ActiveSet, AmQueue};
use super::deliver::Ctx;
use super::event::AlertEvent;
use super::outbox::{Outbox, Snapshot};
use super::store::{self, Store};
use super::worker::{self, EventQueue};

/// Sub-directory of `data_dir` for event receivers' outboxes.
const OUTBOX_DIR: &str = "outbox";
/// Sub-directory of `data_dir` for alertmanager receivers' active sets.
const ACTIVE_DIR: &str = "alertmanager";

/// A receiver's queue, by how it delivers.
enum Queue {
    Events(Arc<EventQueue>),
    Alertmanager(Arc<AmQueue>),
}

impl Queue {
    async fn push(&self, event: AlertEvent, ctx: &Ctx) {
        match self {
            Queue::Events(q) => q.push(event, ctx).await,
            Queue::Alertmanager(q) => q.push(event, ctx).await,
        }
    }

    fn len(&self) -> usize {
        match self {
            Queue::Events(q) => q.len(),
            Queue::Alertmanager(q) => q.len(),
        }
    }
}

/// Owns the receiver queues and their worker tasks.
pub struct Dispatcher {
    ctx: Arc<Ctx>,
    data_dir: Option<PathBuf>,
    queues: HashMap<(String, ReceiverKind), Queue>,
    workers: JoinSet<()>,
    /// Drained in `finish`; every worker holds a clone of `worker_stop`.
    stop_workers: Signal,
    worker_stop: Watch,
}

impl Dispatcher {
    /// A dispatcher with no queues yet.
    pub fn new(ctx: Arc<Ctx>, data_dir: Option<PathBuf>) -> Dispatcher {
        let (stop_workers, worker_stop) = shutdown::channel();
        Dispatcher {
            ctx,
            data_dir,
            queues: HashMap::new(),
            workers: JoinSet::new(),
            stop_workers,
            worker_stop,
        }
    }

    /// Route events until `stop`, drain what is already queued, then let workers flush.
    pub async fn run(mut self, mut events: mpsc::Receiver<AlertEvent>, stop: Watch) {
        self.restore().await;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.route(event).await,
                    None => { stop.signaled().await; break; }
                },
                () = stop.signaled() => break,
            }
        }
        // Events the evaluator sent before shutdown still belong in the outbox.
        while let Ok(event) = events.try_recv() {
            self.route(event).await;
        }
        self.finish().await;
    }

    async fn route(&mut self, event: AlertEvent) {
        let (receivers, ctx) = ((self.ctx.receivers)(), self.ctx.clone());
        for receiver in receivers {
            let queue = self.queue(&receiver.name, receiver.kind, None);
            queue.push(event.clone(), &ctx).await;
        }
    }

    /// The queue for a receiver, creating it (and its worker) on first use.
    fn queue(&mut self, name: &str, kind: ReceiverKind, restored: Option<Restored>) -> &Queue {
        let key = (name.to_string(), kind);
        if !self.queues.contains_key(&key) {
            let queue = self.spawn(name, kind, restored);
            self.queues.insert(key.clone(), queue);
        }
        &self.queues[&key]
    }

    fn spawn(&mut self, name: &str, kind: ReceiverKind, restored: Option<Restored>) -> Queue {
        let (ctx, stop) = (self.ctx.clone(), self.worker_stop.clone());
        let capacity = self.ctx.timing.queue_capacity;
        if kind == ReceiverKind::Alertmanager {
            let set = match restored {
                Some(Restored::Active(set)) => set,
                _ => ActiveSet::default(),
            };
            let queue = Arc::new(AmQueue::new(name, set, self.store(ACTIVE_DIR, name)));
            self.workers
                .spawn(alertmanager::run(queue.clone(), ctx, stop));
            return Queue::Alertmanager(queue);
        }
        let outbox = match restored {
            Some(Restored::Outbox(snapshot)) => Outbox::restore(capacity, snapshot),
            _ => Outbox::new(capacity),
        };
        let queue = Arc::new(EventQueue::new(
            name,
            kind,
            outbox,
            self.store(OUTBOX_DIR, name),
        ));
        self.workers.spawn(worker::run(queue.clone(), ctx, stop));
        Queue::Events(queue)
    }

    fn store(&self, sub: &str, name: &str) -> Option<Store> {
        let dir = self.data_dir.as_ref()?.join(sub);
        Some(Store::new(&dir, name))
    }

    /// Pick up what an earlier process left undelivered, for receivers that still exist.
    async fn restore(&mut self) {
        let Some(dir) = self.data_dir.clone() else {
            return;
        };
        let found = tokio::task::spawn_blocking(move || read_saved(&dir))
            .await
            .unwrap_or_default();
        let receivers = (self.ctx.receivers)();
        for (name, saved) in found {
            let kind = receivers.iter().find(|r| r.name == name).map(|r| r.kind);
            let fits = match (&saved, kind) {
                (Restored::Active(_), Some(k)) => k == ReceiverKind::Alertmanager,
                (Restored::Outbox(_), Some(k)) => k != ReceiverKind::Alertmanager,
                (_, None) => false,
            };
            match kind {
                Some(kind) if fits => self.adopt(&name, kind, saved),
                _ => self.abandon(&name, saved),
            }
        }
    }

    fn adopt(&mut self, name: &str, kind: ReceiverKind, saved: Restored) {
        let count = saved.len();
        self.queue(name, kind, Some(saved));
        if count > 0 {
            tracing::info!(
                receiver = name,
                pending = count,
                "Restored undelivered alert notifications."
            );
        }
    }

    fn abandon(&self, name: &str, saved: Restored) {
        if saved.len() > 0 {
            tracing::warn!(
                receiver = name,
                dropped = saved.len(),
                "Saved notifications belong to a receiver that is no longer configured; dropping them."
            );
            self.ctx.count_n(name, "dropped", saved.len());
        }
        if let Some(dir) = &self.data_dir {
            let sub = match saved {
                Restored::Outbox(_) => OUTBOX_DIR,
                Restored::Active(_) => ACTIVE_DIR,
            };
            let _ = std::fs::remove_file(dir.join(sub).join(format!("{name}.json")));
        }
    }

    /// Tell workers to flush what is due and wait for them (the caller bounds the wait).
    async fn finish(self) {
        drop(self.worker_stop);
        self.stop_workers.drain().await;
        let left: usize = self.queues.values().map(Queue::len).sum();
        match (&self.data_dir, left) {
            (_, 0) => tracing::info!("Alert outbox flushed."),
            (Some(dir), n) => tracing::info!(
                pending = n,
                dir = %dir.display(),
                "Undelivered alert notifications saved for the next start."
            ),
            (None, n) => tracing::warn!(
                lost = n,
                "Undelivered alert notifications are lost: set `data_dir` to keep them across restarts."
            ),
        }
    }
}

/// A saved queue read back from `data_dir`.
enum Restored {
    Outbox(Snapshot),
    Active(ActiveSet),
}

impl Restored {
    fn len(&self) -> usize {
        match self {
            Restored::Outbox(snapshot) => snapshot.items.len(),
            Restored::Active(set) => set.alerts.len(),
        }
    }
}

/// Parse every saved queue; unreadable files are moved aside with a loud log line.
fn read_saved(data_dir: &Path) -> Vec<(String, Restored)> {
    let mut out = Vec::new();
    for (stem, bytes) in store::read_all(&data_dir.join(OUTBOX_DIR)) {
        match serde_json::from_slice::<Snapshot>(&bytes) {
            // Kept even when empty: `seen` still guards against re-sent duplicates.
            Ok(s) => out.push((s.receiver.clone(), Restored::Outbox(s))),
            Err(error) => corrupt(data_dir, OUTBOX_DIR, &stem, &error),
        }
    }
    for (stem, bytes) in store::read_all(&data_dir.join(ACTIVE_DIR)) {
        match serde_json::from_slice::<ActiveSet>(&bytes) {
            Ok(s) if !s.alerts.is_empty() => out.push((s.receiver.clone(), Restored::Active(s))),
            Ok(_) => {}
            Err(error) => corrupt(data_dir, ACTIVE_DIR, &stem, &error),
        }
    }
    out
}

fn corrupt(data_dir: &Path, sub: &str, stem: &str, error: &serde_json::Error) {
    let path = data_dir.join(sub).join(format!("{stem}.json"));
    tracing::error!(path = %path.display(), %error, "Saved alert outbox is unreadable; moving it aside.");
    store::quarantine(&path);
}

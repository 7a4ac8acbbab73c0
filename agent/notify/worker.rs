//! The per-receiver delivery loop for event receivers: take what is due, send, settle, persist.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ReceiverKind;
use crate::shutdown::Watch;

use super::deliver::{Attempt, Ctx};
use super::event::AlertEvent;
use super::outbox::{Next, Outbox, Pending, new_id};
use super::retry::Verdict;
use super::store::{self, Store};

/// One event receiver's queue, shared by the dispatcher (push) and its worker (deliver).
pub struct EventQueue {
    /// Receiver name (metric label, file name).
    pub name: String,
    /// Receiver type this queue delivers as.
    pub kind: ReceiverKind,
    outbox: Mutex<Outbox>,
    wake: Notify,
    store: Option<Arc<Store>>,
}

impl EventQueue {
    /// A queue around `outbox`, persisted to `store` when there is a `data_dir`.
    pub fn new(name: &str, kind: ReceiverKind, outbox: Outbox, store: Option<Store>) -> Self {
        EventQueue {
            name: name.to_string(),
            kind,
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            store: store.map(Arc::new),
        }
    }

    /// Queue `event`, persist, and wake the worker.
    pub async fn push(&self, event: AlertEvent, ctx: &Ctx) {
        let admission = self.with(|o| o.push(event, new_id(), SystemTime::now()));
        if !admission.queued {
            tracing::debug!(receiver = %self.name, "Stale alert event ignored.");
            ctx.count(&self.name, "dropped");
            return;
        }
        ctx.count_n(&self.name, "dropped", admission.superseded);
        if admission.overflowed > 0 {
            tracing::warn!(receiver = %self.name, dropped = admission.overflowed, "Alert outbox full; dropped the oldest notifications.");
            ctx.count_n(&self.name, "dropped", admission.overflowed);
        }
        self.persist().await;
        self.wake.notify_one();
    }

    /// Undelivered notifications.
    pub fn len(&self) -> usize {
        self.with(|o| o.len())
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut Outbox) -> R) -> R {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut outbox)
    }

    async fn persist(&self) {
        let Some(store) = &self.store else { return };
        let (version, bytes) = self.with(|o| (o.version(), o.snapshot(&self.name)));
        store::save(store.clone(), version, bytes).await;
    }

    /// Apply the outcome of an attempt at `pending`.
    async fn settle(&self, pending: &Pending, attempt: Attempt, ctx: &Ctx) {
        let result = match attempt {
            Attempt::Sent(Verdict::Delivered) => self.finish(pending, "delivered"),
            Attempt::Sent(Verdict::Fail) => self.finish(pending, "failed"),
            Attempt::Gone => self.finish(pending, "dropped"),
            Attempt::Sent(Verdict::Retry { after }) => self.reschedule(pending, after, ctx),
        };
        ctx.count(&self.name, result);
        self.persist().await;
    }

    fn finish(&self, pending: &Pending, result: &'static str) -> &'static str {
        self.with(|o| o.remove(&pending.id));
        result
    }

    fn reschedule(
        &self,
        pending: &Pending,
        after: Option<std::time::Duration>,
        ctx: &Ctx,
    ) -> &'static str {
        let delay = ctx.delay(pending.attempts, after);
        let horizon = pending.queued_at + ctx.timing.give_up_after;
        // `Retry-After` is the receiver's to choose: one past what a clock can hold is
        // past the horizon too, not an overflow that would end this worker.
        let past_horizon = SystemTime::now()
            .checked_add(delay)
            .is_none_or(|at| at > horizon);
        if past_horizon {
            tracing::error!(receiver = %self.name, attempts = pending.attempts + 1, "Giving up on an alert notification.");
            return self.finish(pending, "failed");
        }
        self.with(|o| o.retry_at(&pending.id, Instant::now() + delay));
        "retried"
    }

    /// Drop everything: the receiver no longer exists.
    async fn drop_all(&self, ctx: &Ctx) {
        let dropped = self.with(|o| o.clear_idle());
        if dropped > 0 {
            tracing::warn!(receiver = %self.name, dropped, "Receiver removed from the config; dropped its undelivered notifications.");
            ctx.count_n(&self.name, "dropped", dropped);
            self.persist().await;
        }
    }
}

/// Deliver until `stop`; then deliver what is due right now and return.
pub async fn run(queue: Arc<EventQueue>, ctx: Arc<Ctx>, stop: Watch) {
    loop {
        let stopping = stop.is_signaled();
        if !stopping && ctx.receiver(&queue.name, queue.kind).is_none() {
            queue.drop_all(&ctx).await;
        }
        match queue.with(|o| o.next(Instant::now())) {
            Next::Ready(pending) => {
                let attempt = ctx.attempt(&queue.name, queue.kind, &pending).await;
                queue.settle(&pending, attempt, &ctx).await;
            }
            _ if stopping => return,
            Next::Wait(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = queue.wake.notified() => {}
                    () = stop.signaled() => {}
                }
            }
            Next::Idle => {
                tokio::select! {
                    _ = queue.wake.notified() => {}
                    () = stop.signaled() => {}
                }
            }
        }
    }
}

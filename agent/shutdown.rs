//! The one shutdown primitive: a drain channel, after linkerd2-proxy's `drain` crate.
//!
//! [`channel`] gives a [`Signal`] and a [`Watch`]. Every task, thread or connection that
//! must stop on shutdown holds a clone of the `Watch`: it learns that draining began from
//! [`Watch::signaled`] (or [`Watch::is_signaled`], a single atomic load, for the request
//! path) and finishes its work. [`Signal::drain`] starts the drain and resolves once every
//! `Watch` clone and every [`ReleaseShutdown`] handle is dropped, so "signal, then wait
//! for everyone" is one call, and the holders need no done-channel of their own.
//!
//! Dropping a `Signal` without `drain` also starts the drain, with nobody waiting.
//!
//! Built like the crate (a `watch` channel for the signal, an `mpsc` channel whose
//! closing counts the holders) rather than depending on it: its `signaled(self)`
//! consumes the watch, so it can neither be checked without waiting nor awaited again
//! in a loop, and its `watch` wants an `Unpin` future, which would box every hyper
//! connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};

use tokio::sync::{mpsc, watch};

/// A new drain channel: `drain()` the [`Signal`]; hand clones of the [`Watch`] out.
pub fn channel() -> (Signal, Watch) {
    let (signal_tx, signal_rx) = watch::channel(());
    let (held_tx, held_rx) = mpsc::channel(1);
    (Signal { signal_tx, held_rx }, Watch { signal_rx, held_tx })
}

/// Starts a drain and waits for it: see [`Signal::drain`].
#[derive(Debug)]
pub struct Signal {
    signal_tx: watch::Sender<()>,
    /// Never receives: it resolves to `None` once every holder's sender is dropped.
    held_rx: mpsc::Receiver<Infallible>,
}

/// Learns that draining began, and keeps [`Signal::drain`] waiting while it is alive.
///
/// Cheap to clone (two reference counts); take one per task or connection, never per request.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Never marked seen (only clones of it wait), so `has_changed` stays a pure load.
    signal_rx: watch::Receiver<()>,
    held_tx: mpsc::Sender<Infallible>,
}

/// Keeps [`Signal::drain`] waiting until dropped, without watching for the signal.
#[must_use = "dropping the handle releases the drain at once"]
#[derive(Debug, Clone)]
pub struct ReleaseShutdown {
    _held: mpsc::Sender<Infallible>,
}

// === impl Signal ===

impl Signal {
    /// Tell every [`Watch`] that draining began, then resolve once every `Watch` and
    /// [`ReleaseShutdown`] is dropped. Bound it with a timeout where a grace period applies.
    pub async fn drain(mut self) {
        let _ = self.signal_tx.send(());
        // `Infallible`: only `None` (every holder gone) can come back.
        let _ = self.held_rx.recv().await;
    }
}

// === impl Watch ===

impl Watch {
    /// Whether draining has begun (or the [`Signal`] is gone). One atomic load, no lock.
    pub fn is_signaled(&self) -> bool {
        self.signal_rx.has_changed().unwrap_or(true)
    }

    /// Resolves once draining has begun (or the [`Signal`] is gone). Cancel-safe, and may
    /// be awaited again and again (in a `select!` loop); it does not release the drain.
    pub async fn signaled(&self) {
        // A clone waits, so this watch never marks the signal seen.
        let mut rx = self.signal_rx.clone();
        let _ = rx.changed().await;
    }

    /// Stop watching, but keep [`Signal::drain`] waiting until the handle is dropped: for
    /// work that must finish after its task stops watching (a thread's last flush).
    pub fn ignore_signaled(self) -> ReleaseShutdown {
        ReleaseShutdown {
            _held: self.held_tx,
        }
    }

    /// Run `future` to completion; when draining begins, call `on_drain` on it once (to
    /// start its own graceful shutdown) and keep polling it. The drain waits for it.
    pub async fn watch<F, D>(self, future: F, on_drain: D) -> F::Output
    where
        F: Future,
        D: FnOnce(Pin<&mut F>),
    {
        let mut future = pin!(future);
        tokio::select! {
            // The signal first, as hyper-util's graceful shutdown does: a future that
            // starts after the drain began is told before its first poll.
            biased;
            () = self.signaled() => {}
            output = future.as_mut() => return output,
        }
        on_drain(future.as_mut());
        let output = future.await;
        drop(self);
        output
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tokio::sync::oneshot;
    use tokio::time::{sleep, timeout};

    use super::*;

    /// Whether `f` is still pending after a paused-clock second of other tasks running.
    async fn pending_for_a_second<F: Future + Unpin>(f: &mut F) -> bool {
        timeout(Duration::from_secs(1), f).await.is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn every_watch_sees_the_signal_and_can_check_it_again() {
        let (signal, watch) = channel();
        let early = watch.clone();
        assert!(!watch.is_signaled());
        let mut waiting = tokio::spawn({
            let watch = watch.clone();
            async move {
                watch.signaled().await;
                // Seen once, still seen: loops may await it again.
                watch.signaled().await;
                watch.is_signaled()
            }
        });
        assert!(pending_for_a_second(&mut waiting).await, "no signal yet");
        drop(watch);
        let mut drain = tokio::spawn(signal.drain());
        assert!(waiting.await.unwrap());
        assert!(early.is_signaled());
        // A clone made after the signal sees it too.
        let late = early.clone();
        assert!(late.is_signaled());
        late.signaled().await;
        assert!(pending_for_a_second(&mut drain).await, "two watches left");
        drop((early, late));
        timeout(Duration::from_secs(1), drain)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_every_release_handle_and_dropping_releases() {
        let (signal, watch) = channel();
        let handle = watch.clone().ignore_signaled();
        let second = handle.clone();
        let mut drain = tokio::spawn(signal.drain());
        // The task that held `watch` stopped at the signal; its handles still hold.
        let stopped = tokio::spawn(async move { watch.signaled().await });
        stopped.await.unwrap();
        assert!(pending_for_a_second(&mut drain).await, "two handles left");
        drop(handle);
        assert!(pending_for_a_second(&mut drain).await, "one handle left");
        drop(second);
        timeout(Duration::from_millis(1), drain)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn drain_with_no_watch_left_resolves_at_once_and_a_dropped_signal_signals() {
        let (signal, watch) = channel();
        drop(watch);
        timeout(Duration::from_millis(1), signal.drain())
            .await
            .unwrap();

        let (signal, watch) = channel();
        drop(signal);
        assert!(watch.is_signaled());
        timeout(Duration::from_millis(1), watch.signaled())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn watch_calls_on_drain_once_and_keeps_the_drain_waiting_for_the_future() {
        let (signal, watch) = channel();
        let told = Arc::new(AtomicBool::new(false));
        let (finish, finished) = oneshot::channel::<()>();
        let mut watched = tokio::spawn(watch.watch(finished, {
            let told = told.clone();
            move |_| assert!(!told.swap(true, Ordering::SeqCst), "called twice")
        }));
        sleep(Duration::from_secs(1)).await;
        assert!(!told.load(Ordering::SeqCst), "no drain yet");
        let mut drain = tokio::spawn(signal.drain());
        assert!(
            pending_for_a_second(&mut drain).await,
            "the future is not done"
        );
        assert!(told.load(Ordering::SeqCst));
        assert!(pending_for_a_second(&mut watched).await);
        finish.send(()).unwrap();
        assert!(watched.await.unwrap().is_ok());
        timeout(Duration::from_millis(1), drain)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn watch_of_a_future_that_ends_first_never_calls_on_drain() {
        let (signal, watch) = channel();
        let out = watch.watch(async { 7 }, |_| panic!("not draining")).await;
        assert_eq!(out, 7);
        timeout(Duration::from_millis(1), signal.drain())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn watch_started_after_the_signal_calls_on_drain_before_the_first_poll() {
        let (signal, watch) = channel();
        let held = watch.clone();
        let _drain = tokio::spawn(signal.drain());
        tokio::task::yield_now().await;
        let polled = Arc::new(AtomicBool::new(false));
        let told_before_poll = Arc::new(AtomicBool::new(false));
        let future = {
            let polled = polled.clone();
            std::future::poll_fn(move |_| {
                polled.store(true, Ordering::SeqCst);
                std::task::Poll::Ready(())
            })
        };
        watch
            .watch(future, {
                let (polled, told) = (polled.clone(), told_before_poll.clone());
                move |_| told.store(!polled.load(Ordering::SeqCst), Ordering::SeqCst)
            })
            .await;
        assert!(told_before_poll.load(Ordering::SeqCst));
        drop(held);
    }
}

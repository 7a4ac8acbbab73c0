//! Upstream connection limits both engines open through: connections being opened at once, connections open in all, and the bounded queue of requests waiting for one.
//!
//! A burst of requests on cold connections used to open one upstream connection each, all
//! at once. The kernel completes a TCP connect before the app accepts it, so a dev server
//! listening with a backlog of 5 saw a hundred connections arrive in its accept queue; the
//! overflow was dropped, and those requests hung until the flow's timeout. Here a new
//! connection counts as *being opened* until its first response head arrives, it fails,
//! or [`PROVING`] passes ([`proving`]): only an answer proves that the app accepted it,
//! and the bound keeps a slow first answer (a long poll) from holding the slot. At most
//! `upstream_connections.max_connecting` are, and `max` (when set) caps the connections
//! open in all. A request that finds no idle connection and no free slot waits in a queue
//! of at most `queue` requests for at most `queue_timeout`; past either it is refused with
//! 503 `overloaded` (nothing was sent, so the app never saw it).
//!
//! The counters are atomics; a request only touches the [`Notify`] (a lock inside tokio)
//! when it has to wait, or when it frees a slot while others wait. The limits are read
//! from the runtime's config at each use, so a reload applies them to the next request.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::UpstreamConnections;
use crate::error::{Error, ErrorType, Retry};
use crate::metrics::{Family, Kind, Series, Source, describe};

/// Connection counters of one upstream, shared by every proxy thread.
#[derive(Debug, Default)]
pub struct Gate {
    /// Connections open (high 32 bits) and being opened (low 32 bits), in one word so a
    /// slot is taken in one step: taking one and giving it back would wake waiters for
    /// nothing, the taker among them.
    slots: AtomicU64,
    queued: AtomicUsize,
    /// The last `max` a request saw: a connection released while it is reached and
    /// requests wait is closed, so a waiter on any thread can open one.
    cap: AtomicUsize,
    /// Woken when a slot frees (one waiter) or an idle connection returns (all of them).
    freed: Notify,
}

/// Permission to open one connection.
#[derive(Debug)]
pub struct Permit {
    /// Held until the connection's first response head arrives (or it fails).
    pub opening: Opening,
    /// Held for the connection's whole life.
    pub open: Open,
}

/// A connection being opened; dropping it frees the slot.
#[derive(Debug)]
pub struct Opening(Arc<Gate>);

/// An open connection; dropping it (the connection closed) frees its place in `max`.
#[derive(Debug)]
pub struct Open(Arc<Gate>);

/// What to do with a connection whose exchange ended cleanly.
#[derive(Debug)]
pub enum Returning {
    /// Keep it idle.
    Park,
    /// Keep it idle, then wake the waiters: one on this thread may take it.
    ParkAndWake,
    /// Close it: `max` is reached and requests wait, perhaps on other threads.
    Close,
}

impl Gate {
    /// A gate with nothing open.
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// A request's place in the queue, taken only if it has to wait.
    pub fn waiter<'g>(self: &'g Arc<Self>, limits: &UpstreamConnections) -> Waiter<'g> {
        Waiter {
            gate: self,
            limits: *limits,
            deadline: None,
        }
    }

    /// Connections open now (idle ones included), and being opened now.
    pub fn counts(&self) -> (u64, u64) {
        split(self.slots.load(SeqCst))
    }

    /// Take a slot if one is free now, without waiting.
    fn try_open(self: &Arc<Self>, limits: &UpstreamConnections) -> Option<Permit> {
        if self.cap.load(SeqCst) != limits.max {
            self.cap.store(limits.max, SeqCst);
        }
        let opening_cap = limits.max_connecting.get() as u64;
        let open_cap = if limits.max == 0 {
            u64::MAX
        } else {
            limits.max as u64
        };
        let free = |s| {
            let (open, opening) = split(s);
            (opening < opening_cap && open < open_cap).then_some(s + OPEN + OPENING)
        };
        self.slots.fetch_update(SeqCst, SeqCst, free).ok()?;
        Some(Permit {
            opening: Opening(self.clone()),
            open: Open(self.clone()),
        })
    }

    fn release(&self, slot: u64) {
        self.slots.fetch_sub(slot, SeqCst);
        // SeqCst pairs with the waiter's count-then-retry: either it sees the free slot,
        // or this sees it queued and wakes it.
        if self.queued.load(SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    /// A connection's exchange ended cleanly: keep it idle or close it (see [`Returning`]).
    pub fn returning(&self) -> Returning {
        if self.queued.load(SeqCst) == 0 {
            return Returning::Park;
        }
        let cap = self.cap.load(SeqCst) as u64;
        if cap > 0 && self.counts().0 >= cap {
            Returning::Close
        } else {
            Returning::ParkAndWake
        }
    }

    /// Wake every waiter to look at its thread's idle connections.
    pub fn wake_waiters(&self) {
        self.freed.notify_waiters();
    }
}

const CONNECTIONS: Family = describe(
    "redline_upstream_connections",
    "redline.upstream.connections",
    "{connection}",
    Kind::UpDownCounter,
    "Upstream connections: open (idle included) and opening (not yet answered).",
);

const QUEUE: Family = describe(
    "redline_upstream_queue_requests",
    "redline.upstream.queue.requests",
    "{request}",
    Kind::UpDownCounter,
    "Requests waiting for an upstream connection.",
);

/// The gate's gauges, for `/metrics` and OTLP.
impl Source for Gate {
    fn families(&self) -> Vec<Family> {
        let (open, opening) = self.counts();
        let state = |name: &str, value: u64| Series {
            labels: vec![("state", name.to_string())],
            value: value as f64,
        };
        let mut connections = CONNECTIONS;
        connections.series = vec![state("open", open), state("opening", opening)];
        vec![connections, QUEUE.single(self.queued.load(SeqCst) as f64)]
    }
}

/// Longest a new connection counts as being opened once connected: an app answers most
/// requests faster, so its accept queue never holds more than `max_connecting` of ours;
/// a slower first answer (a long poll, a slow report) frees the slot after this, so cold
/// slow requests still open `max_connecting` connections every quarter second.
pub const PROVING: Duration = Duration::from_millis(250);

/// Run a new connection's first exchange, holding `opening` until it ends or
/// [`PROVING`] passes. The timer is armed once per new connection, never per request.
pub async fn proving<F: Future>(opening: Opening, first_exchange: F) -> F::Output {
    let mut opening = Some(opening);
    let mut exchange = pin!(first_exchange);
    let mut grace = pin!(tokio::time::sleep(PROVING));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if opening.is_some() && grace.as_mut().poll(cx).is_ready() {
            opening = None;
        }
        Poll::Pending
    })
    .await
}

/// One open connection in [`Gate::slots`].
const OPEN: u64 = 1 << 32;
/// One connection being opened in [`Gate::slots`].
const OPENING: u64 = 1;

/// (open, being opened) from [`Gate::slots`].
fn split(slots: u64) -> (u64, u64) {
    (slots >> 32, slots & 0xffff_ffff)
}

impl Open {
    /// The gate this connection counts in.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.0
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.release(OPENING);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.release(OPEN);
    }
}

/// One request's wait for a connection slot.
#[derive(Debug)]
pub struct Waiter<'g> {
    gate: &'g Arc<Gate>,
    limits: UpstreamConnections,
    /// Set when the request joins the queue.
    deadline: Option<tokio::time::Instant>,
}

impl Waiter<'_> {
    /// A slot to open a connection (`Some`), or `None` once something was freed: look at
    /// this thread's idle connections, then call again. Fails with `overloaded` when the
    /// queue is full or the wait passes `queue_timeout`.
    pub async fn next(&mut self) -> Result<Option<Permit>, Error> {
        let mut freed = pin!(self.gate.freed.notified());
        // Registered before looking, so a slot freed in between still wakes this request.
        freed.as_mut().enable();
        if let Some(permit) = self.gate.try_open(&self.limits) {
            return Ok(Some(permit));
        }
        let deadline = match self.deadline {
            Some(deadline) => deadline,
            None => {
                if self.gate.queued.fetch_add(1, SeqCst) >= self.limits.queue {
                    self.gate.queued.fetch_sub(1, SeqCst);
                    return Err(overloaded("the queue for upstream connections is full"));
                }
                let deadline = tokio::time::Instant::now() + self.limits.queue_timeout;
                self.deadline = Some(deadline);
                // Counted as queued now: a slot freed before that woke nobody.
                if let Some(permit) = self.gate.try_open(&self.limits) {
                    return Ok(Some(permit));
                }
                deadline
            }
        };
        match tokio::time::timeout_at(deadline, freed).await {
            Ok(()) => Ok(None),
            Err(_) => Err(overloaded("no upstream connection came free in time")),
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.deadline.is_some() && self.gate.queued.fetch_sub(1, SeqCst) > 1 {
            // This request may have been the one woken for a slot it no longer needs
            // (it found an idle connection, or gave up): pass the wake-up on.
            self.gate.freed.notify_one();
        }
    }
}

/// Redline refused the request to protect the upstream; nothing was sent.
fn overloaded(what: &'static str) -> Error {
    Error::new(ErrorType::Overloaded, what).retry(Retry::Always)
}

#[cfg(test)]
mod tests;

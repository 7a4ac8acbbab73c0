//! Timeouts without a timer per request: one task per proxy worker closes idle client
//! connections and gives real timers only to upstream waits that are already slow.
//!
//! Every request used to arm two tokio timers — hyper's header-read limit and the flow's
//! upstream timeout — and drop both unfired: a timer-wheel insert, a locked removal and
//! clock reads in the driver, about 2,500 of 39,000 instructions a request (callgrind,
//! benches/RESULTS.md). Here a connection is registered once, a request marks it busy and
//! idle again, and an upstream wait is a slab entry that the watchdog escalates to a real
//! timer after [`ESCALATE_AFTER`], so the millisecond exchanges that are nearly all
//! traffic never touch the wheel. The watchdog task sleeps while nothing is registered,
//! and otherwise wakes about every [`MAX_TICK`] or when a registered wait falls due.
//!
//! Limits this keeps, with the same user-visible meaning as before:
//! - an HTTP/1 client connection with no request in progress is closed once it has been
//!   idle for `limits.header_read_timeout` (so a request's header must be complete by
//!   then; a slow body or a slow reader of a long response is not cut), checked every
//!   quarter of that limit, at most every second — a 10 s limit closes after 10–11 s. HTTP/2
//!   connections are exempt once their first request arrives, as they were with hyper;
//! - a flow's upstream timeout fires at its exact deadline: the escalated wait's timer is
//!   set to the request's start plus the timeout.
//!
//! The state is thread-local: it exists only on threads that [`install`] it (the proxy
//! workers, each a single-threaded runtime whose connections never move). Elsewhere
//! [`active`] is false and callers use plain timers.
//!
//! Time is read from tokio's clock (`tokio::time::Instant`), the one its timers follow, so
//! tests can pause and advance it and check exact deadlines. Without tokio's `test-util`
//! feature (never in a release build) its `now()` is exactly `std::time::Instant::now()`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// An upstream wait still pending after this long (or half its timeout, if shorter) gets a
/// real timer for its deadline.
pub const ESCALATE_AFTER: Duration = Duration::from_millis(100);
/// Timeouts this short get a real timer at once: the watchdog's own lateness would matter.
const SHORT_TIMEOUT: Duration = Duration::from_millis(40);
/// Longest sleep while any connection is registered (shorter for short idle limits).
pub const MAX_TICK: Duration = Duration::from_secs(1);
/// Shortest sleep between sweeps.
const MIN_TICK: Duration = Duration::from_millis(5);

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

struct Watch {
    idle_limit: Duration,
    tick: Duration,
    conns: Slab<Conn>,
    waits: Slab<Wait>,
    generation: u64,
    /// When the watchdog will next sweep; `None` while it sleeps until poked.
    next_sweep: Option<Instant>,
    poked: bool,
    task: Option<Waker>,
}

struct Conn {
    generation: u64,
    busy: u32,
    /// HTTP/2: streams come and go on a long-lived connection; hyper never timed its idle
    /// spells either, and gRPC-style clients keep idle channels open on purpose.
    multiplexed: bool,
    idle_since: Instant,
    abort: Option<AbortHandle>,
}

struct Wait {
    due: Instant,
    waker: Waker,
    escalated: bool,
}

/// Turn the watchdog on for this thread and return its task (spawn it on this thread's
/// runtime). Connections idle for `idle_limit` are closed.
pub fn install(idle_limit: Duration) -> impl Future<Output = ()> + Send + 'static {
    let watch = Watch {
        idle_limit,
        tick: (idle_limit / 4).clamp(MIN_TICK, MAX_TICK),
        conns: Slab::new(),
        waits: Slab::new(),
        generation: 0,
        next_sweep: None,
        poked: false,
        task: None,
    };
    WATCH.with(|w| *w.borrow_mut() = Some(watch));
    Watchdog { sleep: None }
}

/// Turn the watchdog off for this thread (before its runtime goes away); whatever is still
/// registered is forgotten.
pub fn uninstall() {
    let watch = WATCH.with(|w| w.borrow_mut().take());
    drop(watch);
}

/// Whether this thread has a watchdog.
pub fn active() -> bool {
    WATCH.with(|w| w.borrow().is_some())
}

/// `f` on this thread's watchdog, if there is one and it is not already borrowed (so a
/// drop running inside a sweep can never panic).
fn with_watch<R>(f: impl FnOnce(&mut Watch) -> R) -> Option<R> {
    WATCH
        .try_with(|w| w.try_borrow_mut().ok()?.as_mut().map(f))
        .ok()
        .flatten()
}

impl Watch {
    /// Wake the watchdog now if it would otherwise look later than `due`.
    fn poke_before(&mut self, due: Instant) {
        if self.next_sweep.is_some_and(|next| next <= due) {
            return;
        }
        self.next_sweep = Some(due);
        self.poked = true;
        if let Some(task) = &self.task {
            task.wake_by_ref();
        }
    }

    /// Close overdue idle connections, escalate overdue waits, and say when to look again.
    fn sweep(&mut self, now: Instant) -> Option<Instant> {
        let mut next = (!self.conns.is_empty()).then(|| now + self.tick);
        let mut earliest = |due: Instant| next = Some(next.map_or(due, |n| n.min(due)));
        for (_, conn) in self.conns.iter_mut() {
            if conn.busy > 0 || conn.multiplexed {
                continue;
            }
            let due = conn.idle_since + self.idle_limit;
            if due > now {
                earliest(due);
            } else if let Some(abort) = conn.abort.take() {
                // Dropping the connection's task closes it; its entry goes with the task.
                abort.abort();
            }
        }
        for (_, wait) in self.waits.iter_mut().filter(|(_, w)| !w.escalated) {
            if wait.due > now {
                earliest(wait.due);
            } else {
                wait.escalated = true;
                wait.waker.wake_by_ref();
            }
        }
        self.next_sweep = next;
        next
    }
}

/// The watchdog's task: sweep, sleep until the next due time or a poke, repeat.
struct Watchdog {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for Watchdog {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let poked = with_watch(|w| {
                if !w.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                    w.task = Some(cx.waker().clone());
                }
                std::mem::take(&mut w.poked)
            });
            let Some(poked) = poked else {
                return Poll::Ready(()); // uninstalled
            };
            if let (false, Some(sleep)) = (poked, self.sleep.as_mut())
                && sleep.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
            let now = Instant::now();
            match with_watch(|w| w.sweep(now)).flatten() {
                None => {
                    self.sleep = None;
                    return Poll::Pending;
                }
                Some(next) => {
                    let at = next.max(now + MIN_TICK);
                    match self.sleep.as_mut() {
                        Some(sleep) => sleep.as_mut().reset(at),
                        None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
                    }
                }
            }
        }
    }
}

/// A client connection known to this thread's watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnKey {
    index: usize,
    generation: u64,
}

/// Register a new client connection, idle from now; `None` without a watchdog.
pub fn conn_opened() -> Option<ConnKey> {
    with_watch(|w| {
        w.generation += 1;
        let generation = w.generation;
        let now = Instant::now();
        let index = w.conns.insert(Conn {
            generation,
            busy: 0,
            multiplexed: false,
            idle_since: now,
            abort: None,
        });
        let tick = w.tick;
        w.poke_before(now + tick);
        ConnKey { index, generation }
    })
}

impl ConnKey {
    fn with_conn<R>(self, f: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        with_watch(|w| {
            w.conns
                .get_mut(self.index)
                .filter(|c| c.generation == self.generation)
                .map(f)
        })
        .flatten()
    }

    /// How to close the connection when it idles too long: abort the task serving it.
    pub fn set_abort(self, abort: AbortHandle) {
        self.with_conn(|c| c.abort = Some(abort));
    }

    /// A request is in progress on this connection until the returned guard drops.
    /// A `multiplexed` (HTTP/2) connection is never closed for idling.
    pub fn busy(self, multiplexed: bool) -> Busy {
        self.with_conn(|c| {
            c.busy += 1;
            c.multiplexed |= multiplexed;
        });
        Busy(self)
    }

    /// Forget the connection when the returned guard (held by its task) drops.
    pub fn registration(self) -> Registration {
        Registration(self)
    }
}

/// Marks a connection busy while it lives (a request and its response body).
#[derive(Debug)]
pub struct Busy(ConnKey);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.with_conn(|c| {
            c.busy = c.busy.saturating_sub(1);
            if c.busy == 0 {
                c.idle_since = Instant::now();
            }
        });
    }
}

/// Removes a connection from the watchdog when its task ends (or is aborted).
#[derive(Debug)]
pub struct Registration(ConnKey);

impl Drop for Registration {
    fn drop(&mut self) {
        let key = self.0;
        with_watch(|w| {
            if w.conns
                .get(key.index)
                .is_some_and(|c| c.generation == key.generation)
            {
                w.conns.remove(key.index);
            }
        });
    }
}

/// Run `work` until it finishes (`Some`) or `timeout` after `started` passes (`None`, and
/// `work` is dropped). `work` is polled first, so a ready result always wins, as with
/// `tokio::time::timeout`. On a thread with a watchdog, a real timer is armed only if
/// `work` is still pending after [`ESCALATE_AFTER`]. `started` is read on tokio's clock:
/// the system's, except in tests that pause it (take it from
/// `tokio::time::Instant::now().into_std()` there).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::{Duration, Instant};
/// let slow = tokio::time::sleep(Duration::from_secs(5));
/// let out = redline::watchdog::limit(Instant::now(), Duration::from_millis(10), slow).await;
/// assert!(out.is_none(), "the timeout came first");
/// # }
/// ```
pub fn limit<F: Future>(started: std::time::Instant, timeout: Duration, work: F) -> Limit<F> {
    let started = Instant::from_std(started);
    Limit {
        work,
        deadline: Deadline {
            at: started + timeout,
            escalate_at: started + ESCALATE_AFTER.min(timeout / 2),
            slot: None,
            timer: None,
            watched: timeout > SHORT_TIMEOUT,
        },
    }
}

pin_project_lite::pin_project! {
    /// The future [`limit`] returns. A struct rather than an `async fn`, so the work
    /// future (a kilobyte or so) is moved once fewer on every request.
    pub struct Limit<F> {
        #[pin]
        work: F,
        deadline: Deadline,
    }
}

impl<F: Future> Future for Limit<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.work.poll(cx) {
            return Poll::Ready(Some(out));
        }
        this.deadline.poll(cx).map(|()| None)
    }
}

/// An upstream wait's deadline: a watchdog entry first, a real timer once escalated.
struct Deadline {
    at: Instant,
    escalate_at: Instant,
    slot: Option<usize>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    watched: bool,
}

impl Deadline {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.timer.is_none() && !(self.watched && self.check_in(cx)) {
            self.timer = Some(Box::pin(tokio::time::sleep_until(self.at)));
        }
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// Leave the wait to the watchdog (`true`), or not: none here, or it escalated the wait.
    fn check_in(&mut self, cx: &mut Context<'_>) -> bool {
        let escalate_at = self.escalate_at;
        let left_to_watchdog = with_watch(|w| match self.slot {
            None => {
                let waker = cx.waker().clone();
                let entry = Wait {
                    due: escalate_at,
                    waker,
                    escalated: false,
                };
                self.slot = Some(w.waits.insert(entry));
                w.poke_before(escalate_at);
                true
            }
            Some(slot) => match w.waits.get_mut(slot) {
                Some(wait) if !wait.escalated => {
                    if !wait.waker.will_wake(cx.waker()) {
                        wait.waker = cx.waker().clone();
                    }
                    true
                }
                _ => {
                    w.waits.try_remove(slot);
                    false
                }
            },
        });
        if left_to_watchdog != Some(true) {
            self.watched = false;
            self.slot = None;
        }
        left_to_watchdog == Some(true)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            with_watch(|w| w.waits.try_remove(slot));
        }
    }
}

#[cfg(test)]
mod tests;

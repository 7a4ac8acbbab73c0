//! Proxy worker threads: one single-threaded runtime per core, fed connections by one acceptor.
//!
//! The request path is the hot part of Redline, so it runs like an nginx worker:
//! each thread serves the connections dealt to it and keeps its own upstream
//! keep-alive connections (see `proxy::upstream`), with no work stealing, no
//! cross-thread wake-ups and no shared pool. Admin, alerting, export and
//! reload stay on the main runtime, off these threads.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::Poll;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::fdlimit::Throttle;
use crate::server::Connections;
use crate::shutdown::Watch;

/// Accepted connections each worker's queue holds: eight times the kernel's own accept
/// queue for the listener (tokio binds through mio with a backlog of 128), so a burst the
/// kernel took never waits here; the queue fills only when a worker has stopped taking
/// connections. When every worker's queue is full the acceptor waits for room, and new
/// connections wait in the kernel's queue instead of in memory (a file descriptor each).
pub const QUEUE: usize = 1024;

/// How many proxy threads to run: `TOKIO_WORKER_THREADS` (as for the main runtime), else one per core.
pub fn count() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<NonZeroUsize>().ok())
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
}

/// Errors starting the workers.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The listening socket could not be shared or a thread/runtime could not start.
    #[error("cannot start proxy worker threads: {0}")]
    Start(#[from] std::io::Error),
}

/// Start `n` proxy threads, each running `serve` on its own current-thread runtime, and an
/// acceptor on the calling runtime that deals accepted connections out to them in turn
/// until `stop` is signaled (then it closes the listener).
///
/// Each thread gets a clone of `stop` for `serve`, and holds the drain until its
/// runtime is gone and its spans are handed over: the `Signal`'s drain resolves once
/// every worker has drained and stopped.
///
/// Dealing, rather than letting every thread accept on the shared socket, keeps the
/// threads evenly loaded: a thread that wakes first would otherwise take a whole burst of
/// new connections, and with no work stealing they would all queue behind it.
pub fn start<F, Fut>(
    listener: TcpListener,
    n: usize,
    stop: Watch,
    serve: F,
) -> Result<(), WorkerError>
where
    F: Fn(Connections, Watch) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let n = n.max(1);
    let mut queues = Vec::with_capacity(n);
    for i in 0..n {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (conn_tx, conn_rx) = mpsc::channel(QUEUE);
        let (serve, watch) = (serve.clone(), stop.clone());
        let held = stop.clone().ignore_signaled();
        std::thread::Builder::new()
            .name(format!("redline-proxy-{i}"))
            .spawn(move || {
                runtime.block_on(serve(Connections::Handed(conn_rx), watch));
                // Dropped on its own thread: ends whatever connection tasks outlived the grace.
                drop(runtime);
                // Their spans too were encoded here: hand them over before releasing the
                // drain, since the exporters' final flush starts once it resolves.
                crate::telemetry::flush_this_thread();
                drop(held);
            })?;
        queues.push(conn_tx);
    }
    tokio::spawn(deal(listener, queues, stop));
    Ok(())
}

/// Accept connections and hand them to the workers round-robin until `stop` is signaled.
/// A connection whose descriptor falls in the reserve (`fdlimit::admit`) is closed at
/// once, so admin, health and upstream connections still open at the limit.
async fn deal(listener: TcpListener, queues: Vec<Sender>, stop: Watch) {
    let mut next = 0;
    let mut failures = 0;
    let mut failed_log = Throttle::new(LOG_EVERY);
    let mut shed_log = Throttle::new(LOG_EVERY);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.signaled() => break,
        };
        match accepted.and_then(|(stream, peer)| Ok((stream.into_std()?, peer))) {
            Ok((stream, peer)) => {
                failures = 0;
                if !admitted(&stream) {
                    shed(stream, &mut shed_log);
                    continue;
                }
                if let Err((_, peer)) = hand_over(&queues, &mut next, (stream, peer)).await {
                    // Every worker is gone: only at shutdown, when the listener closes next.
                    tracing::debug!(%peer, "No proxy worker left; closing the connection.");
                }
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                failures += 1;
                if let Some(n) = failed_log.note(std::time::Instant::now()) {
                    tracing::warn!(%error, failures = n, "Accept failed; backing off.");
                }
                tokio::time::sleep(crate::fdlimit::accept_backoff(failures)).await;
            }
        }
    }
    // Closing the listener at once makes new connections fail fast instead of queueing.
    drop(listener);
}

/// A shed or failed accept is logged at most this often, with how many it stands for.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(unix)]
fn admitted(stream: &std::net::TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    u64::try_from(stream.as_raw_fd()).is_ok_and(crate::fdlimit::admit)
}

#[cfg(not(unix))]
fn admitted(_: &std::net::TcpStream) -> bool {
    true
}

/// Close a connection taken in the descriptor reserve, count it, and say so now and then.
fn shed(stream: std::net::TcpStream, log: &mut Throttle) {
    drop(stream);
    crate::fdlimit::count_shed();
    if let Some(n) = log.note(std::time::Instant::now()) {
        tracing::warn!(
            shed = n,
            total = crate::fdlimit::shed_total(),
            "Shedding new client connections: open file descriptors are near the limit."
        );
    }
}

type Sender = mpsc::Sender<(std::net::TcpStream, std::net::SocketAddr)>;

/// Give `item` to the worker whose turn it is (`next`, then round-robin), or, if its queue
/// is full, to the next one with room; if every queue is full, wait for room in any of
/// them. Never blocks the thread, and never drops `item` while a worker is left: a worker
/// that is gone (only at shutdown) misses its turns. `Err` gives `item` back once every
/// worker is gone.
async fn hand_over<T: Send>(
    queues: &[mpsc::Sender<T>],
    next: &mut usize,
    mut item: T,
) -> Result<(), T> {
    let n = queues.len();
    for i in (0..n).map(|k| (*next + k) % n) {
        match queues[i].try_send(item) {
            Ok(()) => {
                *next = (i + 1) % n;
                return Ok(());
            }
            Err(TrySendError::Full(back) | TrySendError::Closed(back)) => item = back,
        }
    }
    // Back-pressure: every queue is full, so stop accepting (new connections wait in the
    // kernel's queue) until some worker takes one. Rare, so the boxes do not matter.
    type Reserve<'a, T> = Pin<
        Box<
            dyn Future<Output = Result<mpsc::Permit<'a, T>, mpsc::error::SendError<()>>>
                + Send
                + 'a,
        >,
    >;
    let mut waits: Vec<(usize, Reserve<'_, T>)> = queues
        .iter()
        .enumerate()
        .map(|(i, q)| (i, Box::pin(q.reserve()) as Reserve<'_, T>))
        .collect();
    let room = std::future::poll_fn(|cx| {
        let mut k = 0;
        while k < waits.len() {
            match waits[k].1.as_mut().poll(cx) {
                Poll::Ready(Ok(permit)) => return Poll::Ready(Some((waits[k].0, permit))),
                // That worker is gone.
                Poll::Ready(Err(_)) => drop(waits.swap_remove(k)),
                Poll::Pending => k += 1,
            }
        }
        if waits.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    })
    .await;
    match room {
        Some((i, permit)) => {
            permit.send(item);
            *next = (i + 1) % n;
            Ok(())
        }
        None => Err(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `f` once: `Some` if it finished at once.
    fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn hand_over_deals_round_robin_skips_full_and_gone_queues_and_waits_for_room() {
        let (a_tx, mut a) = mpsc::channel(2);
        let (b_tx, mut b) = mpsc::channel(2);
        let (c_tx, c) = mpsc::channel(2);
        let queues = [a_tx, b_tx, c_tx];
        let mut next = 0;
        drop(c); // a worker that is gone misses its turns
        for item in 0..4 {
            hand_over(&queues, &mut next, item).await.unwrap();
        }
        let drained = |rx: &mut mpsc::Receiver<i32>| {
            std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
        };
        assert_eq!((drained(&mut a), drained(&mut b)), (vec![0, 2], vec![1, 3]));

        // `a` full: its turn goes to `b`.
        for item in [10, 11] {
            queues[0].try_send(item).unwrap();
        }
        next = 0;
        hand_over(&queues, &mut next, 12).await.unwrap();
        assert_eq!(drained(&mut b), vec![12]);
        assert_eq!(next, 2, "the turn after b's");

        // Everything full: the hand-over waits (the acceptor stops accepting), and the
        // first worker to take a connection gets the waiting one. Nothing is dropped.
        queues[1].try_send(13).unwrap();
        queues[1].try_send(14).unwrap();
        let mut waiting = Box::pin(hand_over(&queues, &mut next, 15));
        assert!(now_or_never(waiting.as_mut()).is_none(), "waits for room");
        assert_eq!(b.recv().await, Some(13));
        waiting.await.unwrap();
        assert_eq!(drained(&mut b), vec![14, 15]);
        assert_eq!(drained(&mut a), vec![10, 11]);

        // Every worker gone: the item comes back to the caller instead of vanishing.
        drop((a, b));
        let mut next = 0;
        assert_eq!(hand_over(&queues, &mut next, 16).await, Err(16));
    }
}

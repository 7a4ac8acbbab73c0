//! Proxy worker threads: one single-threaded runtime per core, fed connections by one acceptor.
//!
//! The request path is the hot part of Redline, so it runs like an nginx worker:
//! each thread serves the connections dealt to it and keeps its own upstream
//! keep-alive connections (see `proxy::upstream`), with no work stealing, no
//! cross-thread wake-ups and no shared pool. Admin, alerting, export and
//! reload stay on the main runtime, off these threads.

use std::future::Future;
use std::num::NonZeroUsize;

use tokio::net::TcpListener;

use crate::server::Connections;
use crate::shutdown::{ShutdownRx, stopped};

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

/// The running proxy threads.
#[derive(Debug)]
pub struct Workers {
    done: Vec<tokio::sync::oneshot::Receiver<()>>,
}

/// Start `n` proxy threads, each running `serve` on its own current-thread runtime, and an
/// acceptor on the calling runtime that deals accepted connections out to them in turn
/// until `stop` fires (then it closes the listener).
///
/// Dealing, rather than letting every thread accept on the shared socket, keeps the
/// threads evenly loaded: a thread that wakes first would otherwise take a whole burst of
/// new connections, and with no work stealing they would all queue behind it.
pub fn start<F, Fut>(
    listener: TcpListener,
    n: usize,
    stop: ShutdownRx,
    serve: F,
) -> Result<Workers, WorkerError>
where
    F: Fn(Connections) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let n = n.max(1);
    let mut done = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    for i in 0..n {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (conn_tx, conn_rx) = tokio::sync::mpsc::unbounded_channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = serve.clone();
        std::thread::Builder::new()
            .name(format!("redline-proxy-{i}"))
            .spawn(move || {
                runtime.block_on(serve(Connections::Handed(conn_rx)));
                // Dropped on its own thread: ends whatever connection tasks outlived the grace.
                drop(runtime);
                // Their spans too were encoded here: hand them over before saying done,
                // since the exporters' final flush starts once every worker is done.
                crate::telemetry::flush_this_thread();
                let _ = done_tx.send(());
            })?;
        queues.push(conn_tx);
        done.push(done_rx);
    }
    tokio::spawn(deal(listener, queues, stop));
    Ok(Workers { done })
}

/// Accept connections and hand them to the workers round-robin until `stop` fires.
async fn deal(listener: TcpListener, queues: Vec<Sender>, mut stop: ShutdownRx) {
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        match accepted.and_then(|(stream, peer)| Ok((stream.into_std()?, peer))) {
            Ok(conn) => {
                // A worker that is gone (only at shutdown) simply misses its turn.
                let _ = queues[next].send(conn);
                next = (next + 1) % queues.len();
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "Accept failed.");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    // Closing the listener at once makes new connections fail fast instead of queueing.
    drop(listener);
}

type Sender = tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, std::net::SocketAddr)>;

impl Workers {
    /// Resolves once every worker has drained and stopped.
    pub async fn join(self) {
        for rx in self.done {
            let _ = rx.await;
        }
    }
}

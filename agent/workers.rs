//! Proxy worker threads: one single-threaded runtime per core, all accepting on one socket.
//!
//! The request path is the hot part of Redline, so it runs like an nginx worker:
//! each thread accepts, serves its connections, and keeps its own upstream
//! keep-alive connections (see `proxy::upstream`), with no work stealing, no
//! cross-thread wake-ups and no shared pool. Admin, alerting, export and
//! reload stay on the main runtime, off these threads.

use std::future::Future;
use std::num::NonZeroUsize;

use tokio::net::TcpListener;

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

/// Start `serve(listener)` on `n` threads, each with its own current-thread runtime and its
/// own handle on the same listening socket (the kernel hands each connection to one of them).
pub fn start<F, Fut>(listener: TcpListener, n: usize, serve: F) -> Result<Workers, WorkerError>
where
    F: Fn(TcpListener) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let std_listener = listener.into_std()?;
    let mut done = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let socket = std_listener.try_clone()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve = serve.clone();
        std::thread::Builder::new()
            .name(format!("redline-proxy-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(socket) {
                        Ok(listener) => serve(listener).await,
                        Err(error) => tracing::error!(%error, "Proxy worker cannot listen."),
                    }
                });
                // Dropped on its own thread: ends whatever connection tasks outlived the grace.
                drop(runtime);
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    Ok(Workers { done })
}

impl Workers {
    /// Resolves once every worker has drained and stopped.
    pub async fn join(self) {
        for rx in self.done {
            let _ = rx.await;
        }
    }
}

//! The shutdown signal every long-running task and listener watches: a flag that flips to `true` once.

use tokio::sync::watch;

/// Shutdown signal shared by listeners and background tasks: flips to `true` once.
pub type ShutdownRx = watch::Receiver<bool>;

/// The sending side of [`ShutdownRx`]: `send(true)` starts the shutdown.
pub type ShutdownTx = watch::Sender<bool>;

/// A new, not yet fired shutdown signal.
pub fn channel() -> (ShutdownTx, ShutdownRx) {
    watch::channel(false)
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(rx: &mut ShutdownRx) {
    let _ = rx.wait_for(|stop| *stop).await;
}

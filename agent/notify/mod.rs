//! Notifications: alert events from the evaluator, delivered to receivers off the request path.
//!
//! The evaluator sends [`AlertEvent`]s into a bounded channel. The [`Notifier`]'s
//! dispatcher copies each event into every configured receiver's queue; one worker per
//! receiver delivers it ([`worker`] for webhook, Slack, PagerDuty and console,
//! [`alertmanager`] for the Alertmanager push). Transient failures are retried with
//! full-jitter backoff ([`retry`]); with `data_dir` every queue is a file that
//! survives `kill -9` ([`store`]), and the same `webhook-id` is reused after a restart.

pub mod alertmanager;
pub mod console;
pub mod deliver;
pub mod dispatch;
pub mod event;
pub mod http;
pub mod outbox;
pub mod pagerduty;
pub mod retry;
pub mod sign;
pub mod slack;
pub mod store;
pub mod target;
pub mod webhook;
pub mod wire;
pub mod worker;

pub use event::{AlertEvent, AlertStatus};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::ReceiverConfig;
use crate::metrics::Registry;
use crate::shutdown::{self, Signal};
use crate::state::Shared;

/// The receivers to deliver to, read at each delivery so reloads apply without a restart.
pub type ReceiverSource = Arc<dyn Fn() -> Vec<ReceiverConfig> + Send + Sync>;

/// Delivery timings; [`Timing::default`] is the product's, tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Whole request, connect to last response byte (10 s).
    pub request_timeout: Duration,
    /// Backoff base (1 s).
    pub retry_base: Duration,
    /// Backoff cap (60 s).
    pub retry_cap: Duration,
    /// A notification still undelivered this long after it was queued is failed (1 h).
    pub give_up_after: Duration,
    /// Slack accepts about one message per second per webhook URL (1 s).
    pub slack_interval: Duration,
    /// The Alertmanager active set is re-pushed this often (1 min).
    pub am_resend: Duration,
    /// Firing alerts are pushed with `endsAt` this far ahead (4 min, as Prometheus).
    pub am_ends_ahead: Duration,
    /// Resolved alerts keep being re-pushed this long (5 min).
    pub am_resolved_for: Duration,
    /// Undelivered notifications kept per receiver before the oldest is dropped (1024).
    pub queue_capacity: usize,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            request_timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
            slack_interval: Duration::from_secs(1),
            am_resend: Duration::from_secs(60),
            am_ends_ahead: Duration::from_secs(4 * 60),
            am_resolved_for: Duration::from_secs(5 * 60),
            queue_capacity: 1024,
        }
    }
}

/// What the notifier needs from the rest of Redline.
#[derive(Clone)]
pub struct Options {
    /// Current receivers.
    pub receivers: ReceiverSource,
    /// Where `redline_notifications_total` is counted.
    pub registry: Arc<Registry>,
    /// Makes queues durable; read once at start.
    pub data_dir: Option<PathBuf>,
    /// Delivery timings.
    pub timing: Timing,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("data_dir", &self.data_dir)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options that follow the running config of `shared` (receivers are re-read per delivery).
    pub fn from_shared(shared: &Arc<Shared>) -> Options {
        let source = shared.clone();
        let receivers: ReceiverSource =
            Arc::new(move || source.runtime.load().config.alerting.receivers.clone());
        Options {
            receivers,
            registry: shared.registry.clone(),
            data_dir: shared.runtime.load().config.data_dir.clone(),
            timing: Timing::default(),
        }
    }
}

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The TLS client for https receivers could not be built.
    #[error("cannot set up TLS for alert receivers: {0}")]
    Tls(#[from] rustls::Error),
}

/// The running notifier; call [`Notifier::shutdown`] to flush it.
#[derive(Debug)]
pub struct Notifier {
    stop: Signal,
    task: JoinHandle<()>,
}

impl Notifier {
    /// Start delivering the events that arrive on `events`.
    pub fn start(
        options: Options,
        events: mpsc::Receiver<AlertEvent>,
    ) -> Result<Notifier, NotifyError> {
        let client = http::client()?;
        let ctx = deliver::Ctx::new(client, options.registry, options.receivers, options.timing);
        let dispatcher = dispatch::Dispatcher::new(Arc::new(ctx), options.data_dir);
        let (stop, stop_rx) = shutdown::channel();
        let task = tokio::spawn(dispatcher.run(events, stop_rx));
        Ok(Notifier { stop, task })
    }

    /// Stop taking events, deliver what is due, and persist the rest; waits at most `deadline`.
    ///
    /// Anything still in flight at the deadline stays in the saved outbox and is sent
    /// again (same `webhook-id`) on the next start.
    pub async fn shutdown(self, deadline: Duration) {
        let abort = self.task.abort_handle();
        // The dispatcher holds its watch until the outbox is flushed and persisted.
        if tokio::time::timeout(deadline, self.stop.drain())
            .await
            .is_err()
        {
            abort.abort();
            tracing::warn!("Alert outbox flush timed out; pending notifications stay queued.");
        }
    }
}

/// Start the notifier for a running Redline; logs and returns `None` if it cannot start.
pub fn spawn(shared: &Arc<Shared>, events: mpsc::Receiver<AlertEvent>) -> Option<Notifier> {
    match Notifier::start(Options::from_shared(shared), events) {
        Ok(notifier) => Some(notifier),
        Err(error) => {
            tracing::error!(%error, "Alert notifications are disabled.");
            None
        }
    }
}

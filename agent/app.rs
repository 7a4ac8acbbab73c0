//! Process lifecycle: bind listeners, start background tasks, handle signals, drain and exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::access_log::{AccessLog, Format};
use crate::admin::Admin;
use crate::config::{AccessLogFormat, Config};
use crate::proxy::Proxy;
use crate::reload::ReloadState;
use crate::server::{self, ConnLimits};
use crate::shutdown::{self, Watch};
use crate::state::{BuildError, Shared};
use crate::stats::{Clock, SystemClock};

/// Why Redline could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener address is taken, most often by another Redline or the app itself.
    #[error(
        "cannot listen on {addr} for the {what}: the address is already in use (another Redline, \
         or the app itself?); choose a free one with {flag} ADDR, e.g. {flag} {example} \
         (port 0 takes any free port; the start-up line names it)"
    )]
    AddrInUse {
        /// What the listener is for.
        what: &'static str,
        /// Address asked for.
        addr: SocketAddr,
        /// The flag that sets this listener.
        flag: &'static str,
        /// The same address one port up, as a hint.
        example: SocketAddr,
    },
    /// A listener address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// What the listener is for.
        what: &'static str,
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The configuration does not make a runnable proxy.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The proxy worker threads could not start.
    #[error(transparent)]
    Workers(#[from] crate::workers::WorkerError),
}

/// Loads and validates the config file again on reload, re-applying flags and environment.
pub type Reloader = Arc<dyn Fn(&std::path::Path) -> Result<Config, String> + Send + Sync>;

/// Hooks that let tests and `redline demo` observe a running instance.
#[derive(Default)]
pub struct Hooks {
    /// Receives the bound (proxy, admin) addresses once listening.
    pub bound: Option<tokio::sync::oneshot::Sender<(SocketAddr, SocketAddr)>>,
    /// Starts the shutdown like SIGTERM does, once signaled.
    pub shutdown: Option<Watch>,
    /// File re-read on SIGHUP; overrides are re-applied by `reload`.
    pub config_path: Option<PathBuf>,
    /// Re-applied to every reloaded file (flag/env values win over the file).
    pub reload: Option<Reloader>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// Run Redline until SIGTERM/SIGINT (or `hooks.shutdown`), then drain and return.
pub async fn run(config: Config, hooks: Hooks) -> Result<(), RunError> {
    let signals = Signals::install();
    raise_fd_limit();
    let access_log = match config.telemetry.access_log {
        AccessLogFormat::Json => AccessLog::start(Format::Json, Box::new(std::io::stdout())),
        AccessLogFormat::Text => AccessLog::start(Format::Text, Box::new(std::io::stdout())),
        AccessLogFormat::Off => AccessLog::off(),
    };
    let limits = ConnLimits {
        header_read_timeout: config.limits.header_read_timeout,
        max_header_bytes: config.limits.max_header_bytes,
    };
    let grace = config.limits.shutdown_grace;
    let (listen, admin_addr) = (config.listen, config.admin.listen);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shared = Shared::new(config, clock, access_log.clone())?;
    // Trace propagation, sampling and span export: the proxy holds the request-path handle.
    // The upstream gate's gauges go out over OTLP with the registry's families.
    let gate = crate::proxy::gate::Gate::new();
    let protection = crate::proxy::protection::Protection::new(shared.clone());
    let sources: Vec<Arc<dyn crate::metrics::Source>> = vec![gate.clone(), Arc::new(protection)];
    let (tracing, telemetry) =
        crate::telemetry::start(&shared, &|name| std::env::var(name).ok(), sources);
    let proxy_listener = bind("proxy", listen).await?;
    let admin_listener = bind("admin", admin_addr).await?;
    let bound = (
        local_addr(&proxy_listener, listen),
        local_addr(&admin_listener, admin_addr),
    );
    // Everything that must stop before the final flushes holds a clone of `stop_rx`.
    let (stop, stop_rx) = shutdown::channel();
    let spans_on = tracing.exports_spans();
    let proxy = Proxy::with_gate(shared.clone(), Some(tracing), gate.clone());
    let fast = proxy.clone();
    let handler = move |req, peer| {
        let proxy = proxy.clone();
        // Boxed per request: hyper keeps room for the handler's future in every connection
        // for its whole life (~2 KiB each), idle keep-alive connections included.
        Box::pin(async move { proxy.handle(req, peer).await })
    };
    let serve = move |listener, stop| {
        let serving = server::serve(
            listener,
            limits,
            handler.clone(),
            stop,
            grace,
            Some(fast.clone()),
        );
        async move {
            // Idle connections and slow upstream waits are this thread's watchdog's job.
            let watchdog = tokio::spawn(crate::watchdog::install(limits.header_read_timeout));
            // Spans are encoded on this thread; a tick hands over what a quiet spell leaves.
            let flusher = spans_on.then(|| {
                tokio::spawn(crate::telemetry::flush_this_thread_every(
                    crate::telemetry::WORKER_FLUSH,
                ))
            });
            serving.await;
            if let Some(flusher) = flusher {
                flusher.abort();
            }
            watchdog.abort();
            crate::watchdog::uninstall();
        }
    };
    crate::workers::start(
        proxy_listener,
        crate::workers::count(),
        stop_rx.clone(),
        serve,
    )?;
    announce(bound, &shared.runtime.load().config);
    crate::proxy::reach::spawn(shared.clone(), stop_rx.clone());
    if let Some(tx) = hooks.bound {
        let _ = tx.send(bound);
    }

    tokio::spawn(tick_windows(shared.clone(), stop_rx.clone()));
    crate::auth::warn_at_startup(&shared.runtime.load().config.admin, bound.1);
    let listeners = crate::reload::Listeners {
        proxy: bound.0,
        admin: bound.1,
    };
    let reload = Arc::new(ReloadState::default());
    crate::reload::start(
        &shared,
        &reload,
        hooks.config_path,
        hooks.reload,
        listeners,
        crate::reload::Options::default(),
        stop_rx.clone(),
    );
    let signaled = tokio::spawn(watch_signals(
        signals,
        shared.clone(),
        reload.clone(),
        hooks.shutdown,
    ));

    // Alert events flow evaluator → notifier on a bounded queue, off the request path.
    let (alert_tx, alert_rx) = tokio::sync::mpsc::channel::<crate::notify::AlertEvent>(1024);
    let alerts = crate::alerting::spawn(&shared, alert_tx, bound.1, stop_rx);
    let notifier = crate::notify::spawn(&shared, alert_rx);

    let admin = Admin::new(shared.clone(), reload, alerts, gate);
    let (admin_stop, admin_stop_rx) = shutdown::channel();
    tokio::spawn(server::serve(
        server::Connections::Listener(admin_listener),
        limits,
        move |req, peer| {
            let admin = admin.clone();
            async move { admin.handle(req, peer).await }
        },
        admin_stop_rx,
        Duration::from_secs(1),
        None,
    ));

    // Until SIGTERM/SIGINT (or the hook); /readyz answers 503 from then on.
    let _ = signaled.await;
    // The listener closes, in-flight requests finish within the grace and each worker
    // hands its spans over; the alert engine flushes its state and queued events.
    stop.drain().await;
    tracing::info!("Proxy drained; flushing.");
    telemetry.flush(Duration::from_secs(5)).await;
    // After the engine: its last events are queued, so the outbox flush includes them.
    if let Some(notifier) = notifier {
        notifier.shutdown(Duration::from_secs(5)).await;
    }
    admin_stop.drain().await;
    tokio::task::spawn_blocking(move || access_log.drain(Duration::from_secs(2)))
        .await
        .ok();
    Ok(())
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() != std::io::ErrorKind::AddrInUse {
            return RunError::Bind { what, addr, source };
        }
        let flag = if what == "admin" {
            "--admin"
        } else {
            "--listen"
        };
        let example = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
        RunError::AddrInUse {
            what,
            addr,
            flag,
            example,
        }
    })
}

/// The start-up line: where to send requests, where they go, where to watch. The fields
/// repeat it for JSON logs (tests and scripts read `proxy` and `admin` from them).
fn announce(bound: (SocketAddr, SocketAddr), config: &Config) {
    let upstream = config
        .upstream
        .as_ref()
        .map_or_else(|| "no upstream".to_string(), ToString::to_string);
    let dashboard = dashboard_url(bound.1, config.alerting.external_url.as_deref());
    // `external_url` may carry credentials for a proxy in front of the dashboard.
    let dashboard = crate::config::redact_url(&dashboard, false);
    // Loopback is the default since a dev server bound to localhost must not be exposed by
    // the proxy in front of it; say so, since "it works here but not from my phone" follows.
    let scope = if bound.0.ip().is_loopback() {
        " (this machine only; --listen 0.0.0.0:PORT accepts other hosts)"
    } else {
        ""
    };
    let version = env!("CARGO_PKG_VERSION");
    tracing::info!(
        proxy = %bound.0, admin = %bound.1, %upstream, %dashboard, version,
        "Redline {version}: proxy http://{} -> upstream {upstream}{scope}; dashboard {dashboard}",
        bound.0
    );
}

/// Where a person opens the dashboard: `alerting.external_url` if set, else the admin
/// address, with a wildcard bind shown as loopback (a browser cannot open `0.0.0.0`).
pub fn dashboard_url(admin: SocketAddr, external_url: Option<&str>) -> String {
    if let Some(base) = external_url {
        return format!("{}/", base.trim_end_matches('/'));
    }
    let mut shown = admin;
    if admin.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match admin {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        shown.set_ip(loopback);
    }
    format!("http://{shown}/")
}

fn local_addr(listener: &TcpListener, asked: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(asked)
}

/// Pre-clear upcoming window slots every second, so the request path rarely resets one,
/// and retire the flows a reload removed once their windows are empty.
async fn tick_windows(shared: Arc<Shared>, stop: Watch) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut dropped = DroppedSamples::default();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.signaled() => return,
        }
        let now = shared.clock.now_ms();
        for flow in shared.all_flows() {
            flow.window.advance(now);
        }
        shared.retire_flows(now);
        dropped.warn_of_new();
    }
}

/// Says in the log, at most every 10 s, that `redline_stats_dropped_total` went up: an alert
/// that did not fire may have missed those requests.
struct DroppedSamples {
    seen: u64,
    log: crate::fdlimit::Throttle,
}

impl Default for DroppedSamples {
    fn default() -> Self {
        DroppedSamples {
            seen: crate::stats::dropped_total(),
            log: crate::fdlimit::Throttle::new(Duration::from_secs(10)),
        }
    }
}

impl DroppedSamples {
    fn warn_of_new(&mut self) {
        let total = crate::stats::dropped_total();
        let new = total.saturating_sub(self.seen);
        self.seen = total;
        if new == 0 {
            return;
        }
        if let Some(n) = self.log.note_many(std::time::Instant::now(), new) {
            tracing::warn!(
                dropped = n,
                total,
                "Requests left out of the flows' alerting windows: a thread stalled while \
                 resetting a window slot (the machine is overloaded) or the clock went back."
            );
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught from the start of [`run`]: a supervisor that signals
/// as soon as the "listening" line appears must never meet the default action (exit)
/// because the handlers were not installed yet.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Some(Signals { term, int, hup }),
            _ => {
                tracing::error!(
                    "Cannot install signal handlers: SIGTERM and SIGHUP keep their default action."
                );
                None
            }
        }
    }
}

/// SIGHUP reloads the config file; returns at SIGTERM/SIGINT (or when `external` is
/// signaled), once `/readyz` answers 503: the caller drains then.
async fn watch_signals(
    signals: Option<Signals>,
    shared: Arc<Shared>,
    reload: Arc<ReloadState>,
    external: Option<Watch>,
) {
    // Without an external trigger, keep its sender alive so the branch never fires.
    let (_keep, fallback) = shutdown::channel();
    let external = external.unwrap_or(fallback);
    match signals {
        Some(Signals {
            mut term,
            mut int,
            mut hup,
        }) => loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                () = external.signaled() => break,
                _ = hup.recv() => crate::reload::request(&reload, crate::audit::Trigger::Signal),
            }
        },
        None => external.signaled().await,
    }
    tracing::info!("Shutting down: draining in-flight requests.");
    shared.ready.store(false, Ordering::SeqCst);
}

/// Raise the open-file soft limit to the hard limit (as the Go runtime does): each client
/// and upstream connection costs a descriptor, and the common default of 1,024 is far
/// below what a proxy needs. The acceptor sheds clients near the limit (`fdlimit`).
fn raise_fd_limit() {
    match crate::fdlimit::raise() {
        Ok(r) if r.now != r.before => {
            tracing::info!(from = r.before, to = r.now, "Raised the open-file limit.");
        }
        Ok(r) => tracing::debug!(limit = r.now, "Open-file limit already at its hard limit."),
        Err(error) => {
            tracing::warn!(%error, "Cannot read the open-file limit; no descriptor reserve.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_url_is_one_a_browser_can_open() {
        let any: SocketAddr = "0.0.0.0:9901".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dashboard_url(any, None), "http://127.0.0.1:9901/");
        let any6: SocketAddr = "[::]:9901".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dashboard_url(any6, None), "http://[::1]:9901/");
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dashboard_url(local, None), "http://127.0.0.1:9/");
        let shared = dashboard_url(local, Some("https://redline.example/"));
        assert_eq!(shared, "https://redline.example/");
    }

    #[tokio::test]
    async fn an_address_in_use_names_the_flag_that_moves_it() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let Err(proxy) = bind("proxy", addr).await else {
            panic!("bound twice")
        };
        let text = proxy.to_string();
        assert!(text.contains("already in use"), "{text}");
        assert!(text.contains("--listen ADDR"), "{text}");
        let Err(admin) = bind("admin", addr).await else {
            panic!("bound twice")
        };
        assert!(admin.to_string().contains("--admin ADDR"), "{admin}");
    }
}

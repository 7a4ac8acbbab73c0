//! Hot reload: the config file watcher, SIGHUP/API/poll triggers, atomic apply, rejection and needs-restart detection.
//!
//! Every trigger ends in [`reload_now`], which reads the file, checks that the new
//! config would run, builds a [`Runtime`](crate::state::Runtime) and swaps it in with
//! one atomic store. Requests hold the runtime they started with, so nothing on the
//! request path waits; a rejected config leaves the running one untouched. Reloads
//! run one at a time on blocking threads, fed by a small bounded queue.
//!
//! The file is watched through its **directory**: editors save by writing a new file
//! and renaming it over the old one, and a Kubernetes ConfigMap update swaps the
//! `..data` symlink next to the file; a watch on the file itself would die with its
//! first inode. A slow poll compares a hash of the contents for filesystems that send
//! no events (NFS, some container mounts).
//!
//! Here: the reload state, the triggers and [`reload_now`]; `watch` has the file watcher,
//! the catch-up read and the reload task, `apply` loads, checks, swaps and diffs, `api`
//! serves `POST /api/reload`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::audit::{self, ReloadChanges, Trigger};
use crate::config::Config;
use crate::shutdown::Watch;
use crate::state::Shared;

pub use api::handle_api;
use apply::{apply, load_file};
pub use apply::{check_usable, restart_only_changes};
use watch::{catch_up, file_hash, reload_loop, watch_file};

/// Quiet time after the last file event before reloading, so one save is one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Safety-net poll interval.
pub const POLL_EVERY: Duration = Duration::from_secs(30);

/// The symlink kubelet swaps atomically when a mounted ConfigMap changes.
const CONFIGMAP_DATA_LINK: &str = "..data";

/// Reload requests waiting for the reload task; more are dropped, as a pending
/// reload will read the newest file anyway.
const QUEUE: usize = 16;

/// Reads the config file again and re-applies flags and environment (`app::Reloader`).
pub type LoadFn = Arc<dyn Fn(&Path) -> Result<Config, String> + Send + Sync>;

/// Timing of the watcher and the poll; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// See [`DEBOUNCE`].
    pub debounce: Duration,
    /// See [`POLL_EVERY`].
    pub poll_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            debounce: DEBOUNCE,
            poll_every: POLL_EVERY,
        }
    }
}

/// The addresses the process actually listens on (a reload cannot move them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    /// Proxy listener.
    pub proxy: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
}

/// Why a reload did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// There is no file to reload from.
    #[error("Redline was started without a config file: there is nothing to reload")]
    NoConfigFile,
    /// The new config is invalid or would not run; the message is redacted and names
    /// file:line:column where the problem has a position.
    #[error("{0}")]
    Rejected(String),
}

/// What one reload request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A file event or poll found the same contents as last time: nothing to do.
    Unchanged,
    /// The new config is running.
    Applied(ReloadChanges),
}

/// Reload machinery and status, one per process; `app::run` hands it to the admin API.
#[derive(Default)]
pub struct ReloadState {
    source: OnceLock<Source>,
    startup: OnceLock<Arc<Config>>,
    listeners: OnceLock<Listeners>,
    queue: OnceLock<mpsc::Sender<Trigger>>,
    /// Hash of the file contents last read; the lock also makes reloads one at a time.
    applying: Mutex<Option<u64>>,
    status: Mutex<Status>,
}

impl std::fmt::Debug for ReloadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadState")
            .field("path", &self.source.get().map(|s| &s.path))
            .field("listeners", &self.listeners.get())
            .finish_non_exhaustive()
    }
}

struct Source {
    path: PathBuf,
    load: LoadFn,
}

#[derive(Debug, Default)]
struct Status {
    last: Option<LastReload>,
    needs_restart: Vec<&'static str>,
}

#[derive(Debug)]
struct LastReload {
    at: SystemTime,
    trigger: Trigger,
    error: Option<String>,
}

impl ReloadState {
    /// The error of the latest reload attempt when it failed (cleared by a success).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.status).last.as_ref()?.error.clone()
    }

    /// Settings changed in the file that only apply after a restart.
    pub fn needs_restart(&self) -> Vec<&'static str> {
        lock(&self.status).needs_restart.clone()
    }

    /// The admin listener actually bound, once Redline is listening.
    pub fn admin_listener(&self) -> Option<SocketAddr> {
        self.listeners.get().map(|l| l.admin)
    }

    /// `last_reload`, `last_reload_error` and `needs_restart` for `GET /api/config`.
    pub fn status_json(&self) -> Value {
        let status = lock(&self.status);
        let last = status.last.as_ref().map(|l| {
            json!({
                "at": humantime::format_rfc3339_millis(l.at).to_string(),
                "trigger": l.trigger.as_str(),
                "result": if l.error.is_some() { "failure" } else { "success" },
            })
        });
        json!({
            "last_reload": last,
            "last_reload_error": status.last.as_ref().and_then(|l| l.error.clone()),
            "needs_restart": status.needs_restart,
        })
    }

    fn record(&self, shared: &Shared, trigger: Trigger, result: &Result<ReloadChanges, String>) {
        let mut status = lock(&self.status);
        let error = match result {
            Ok(changes) => {
                shared.registry.config_reloads.inc(&["success"]);
                status.needs_restart = changes.needs_restart.clone();
                audit::reload_applied(trigger, changes);
                None
            }
            Err(error) => {
                shared.registry.config_reloads.inc(&["failure"]);
                audit::reload_rejected(trigger, error);
                Some(error.clone())
            }
        };
        status.last = Some(LastReload {
            at: SystemTime::now(),
            trigger,
            error,
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Start reloading: remember the listeners, and with a config file start its watcher,
/// the poll and the reload task (which ends when `stop` fires).
///
/// `load` re-applies flags and environment; without it the file alone is loaded.
pub fn start(
    shared: &Arc<Shared>,
    state: &Arc<ReloadState>,
    path: Option<PathBuf>,
    load: Option<LoadFn>,
    listeners: Listeners,
    options: Options,
    stop: Watch,
) {
    let _ = state.listeners.set(listeners);
    let _ = state.startup.set(shared.runtime.load().config.clone());
    let Some(path) = path else {
        return;
    };
    *lock(&state.applying) = file_hash(&path);
    let load = load.unwrap_or_else(|| Arc::new(load_file));
    let (tx, rx) = mpsc::channel(QUEUE);
    let watcher = watch_file(&path, tx.clone(), options.debounce);
    let _ = state.source.set(Source { path, load });
    let _ = state.queue.set(tx);
    // One small file read at start-up, before anything can queue a reload.
    catch_up(shared, state);
    tokio::spawn(reload_loop(
        shared.clone(),
        state.clone(),
        rx,
        options.poll_every,
        stop,
        watcher,
    ));
}

/// Ask the reload task for a reload (used for SIGHUP); never waits.
pub fn request(state: &ReloadState, trigger: Trigger) {
    match state.queue.get() {
        // A full queue already holds reloads that will read the newest file.
        Some(queue) => {
            let _ = queue.try_send(trigger);
        }
        None => tracing::warn!(
            trigger = trigger.as_str(),
            "Reload ignored: Redline was started without a config file."
        ),
    }
}

/// Reload the config file now, on the calling (blocking) thread.
///
/// File and poll triggers skip the reload when the contents have not changed since they
/// were last read; SIGHUP and the API always reload. Every attempt that runs is
/// counted in `redline_config_reloads_total`, audited, and shown by `GET /api/config`.
pub fn reload_now(
    shared: &Shared,
    state: &ReloadState,
    trigger: Trigger,
) -> Result<Outcome, ReloadError> {
    let Some(source) = state.source.get() else {
        return Err(ReloadError::NoConfigFile);
    };
    let mut last_hash = lock(&state.applying);
    // Hashed before loading: if the file changes in between, the next event or poll
    // sees a difference and loads it again.
    let hash = file_hash(&source.path);
    if matches!(trigger, Trigger::File | Trigger::Poll) && hash == *last_hash {
        tracing::debug!(
            trigger = trigger.as_str(),
            "Config file unchanged; not reloading."
        );
        return Ok(Outcome::Unchanged);
    }
    *last_hash = hash;
    let result = apply(shared, state, source);
    state.record(shared, trigger, &result);
    result.map(Outcome::Applied).map_err(ReloadError::Rejected)
}

mod api;
mod apply;
#[cfg(test)]
mod tests;
mod watch;

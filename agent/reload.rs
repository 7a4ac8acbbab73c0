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

use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use notify_debouncer_full::notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::audit::{self, ReloadChanges, Trigger};
use crate::auth::{self, Token};
use crate::config::{Config, DEFAULT_REDACT_HEADERS, DEFAULT_REDACT_QUERY_PARAMS};
use crate::redact::Redactor;
use crate::shutdown::ShutdownRx;
use crate::state::Shared;

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
    stop: ShutdownRx,
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

/// Load, check and swap in the new config; the error is redacted.
fn apply(shared: &Shared, state: &ReloadState, source: &Source) -> Result<ReloadChanges, String> {
    let running = shared.runtime.load_full();
    let scrub = |e: String| scrubber(&running.config).text(&e).into_owned();
    let config = (source.load)(&source.path).map_err(scrub)?;
    check_usable(&config, state.listeners.get()).map_err(scrub)?;
    let startup = state
        .startup
        .get()
        .cloned()
        .unwrap_or_else(|| running.config.clone());
    let changes = changes(&running.config, &config, &startup);
    let runtime = shared
        .build_runtime(config)
        .map_err(|e| scrub(e.to_string()))?;
    shared.runtime.store(Arc::new(runtime));
    Ok(changes)
}

/// Redacts error messages with the running config's names plus the defaults: the new
/// config's own list is unknown when it does not parse.
fn scrubber(running: &Config) -> Redactor {
    let mut params = running.redact.query_params.clone();
    params.extend(DEFAULT_REDACT_QUERY_PARAMS.map(String::from));
    let mut headers = running.redact.headers.clone();
    headers.extend(DEFAULT_REDACT_HEADERS.map(String::from));
    Redactor::new(&params, &headers)
}

fn load_file(path: &Path) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    config.validate_runnable().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Checks for a config that parses but would break the running proxy.
pub fn check_usable(config: &Config, listeners: Option<&Listeners>) -> Result<(), String> {
    let origin = config
        .source
        .as_ref()
        .map_or_else(|| "configuration".to_string(), |p| p.display().to_string());
    let Some(upstream) = &config.upstream else {
        return Err(format!(
            "{origin}: no upstream: set `upstream:` (or --upstream / REDLINE_UPSTREAM)"
        ));
    };
    if let Some(l) = listeners {
        for (what, addr) in [("proxy", l.proxy), ("admin", l.admin)] {
            if points_at(&upstream.uri, addr) {
                return Err(format!(
                    "{origin}: upstream {upstream} is Redline's own {what} listener ({addr}): \
                     every request would loop back into Redline"
                ));
            }
        }
    }
    if let (Token::Unavailable(reason), Some(_)) =
        (auth::admin_token(&config.admin), &config.admin.token_file)
    {
        return Err(format!(
            "{origin}: admin.token_file cannot be used ({reason}): \
             the admin API would refuse every mutation"
        ));
    }
    Ok(())
}

/// Whether `uri` names this machine's `listener` (loopback, `localhost` or the bound IP).
fn points_at(uri: &http::Uri, listener: SocketAddr) -> bool {
    let port = uri.port_u16().unwrap_or(80);
    let Some(host) = uri.host() else {
        return false;
    };
    if port != listener.port() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified() || ip == listener.ip())
}

/// What differs between the running and the new config, and what only a restart applies
/// (compared with the config the process started with, so it stays listed until then).
fn changes(old: &Config, new: &Config, startup: &Config) -> ReloadChanges {
    let names = |c: &Config| c.flows.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    let (old_names, new_names) = (names(old), names(new));
    let flows_changed = new
        .flows
        .iter()
        .filter(|f| old.flows.iter().any(|o| o.name == f.name && o != *f))
        .map(|f| f.name.clone())
        .collect();
    ReloadChanges {
        flows_added: new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .cloned()
            .collect(),
        flows_removed: old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect(),
        flows_changed,
        needs_restart: restart_only_changes(startup, new),
    }
}

/// Settings read once at start-up: listeners, connection limits, the access log writer,
/// the route template table, histogram boundaries, and the telemetry pipeline and
/// outbox built from them.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (running, new);
    let checks = [
        ("listen", a.listen != b.listen),
        ("admin.listen", a.admin.listen != b.admin.listen),
        (
            "limits.header_read_timeout",
            a.limits.header_read_timeout != b.limits.header_read_timeout,
        ),
        (
            "limits.max_header_bytes",
            a.limits.max_header_bytes != b.limits.max_header_bytes,
        ),
        (
            "limits.shutdown_grace",
            a.limits.shutdown_grace != b.limits.shutdown_grace,
        ),
        ("routes", a.routes != b.routes),
        (
            "telemetry.access_log",
            a.telemetry.access_log != b.telemetry.access_log,
        ),
        (
            "histogram_buckets",
            a.histogram_buckets() != b.histogram_buckets(),
        ),
        ("service", a.service != b.service),
        ("telemetry.otlp", a.telemetry.otlp != b.telemetry.otlp),
        ("telemetry.traces", a.telemetry.traces != b.telemetry.traces),
        (
            "telemetry.metrics.interval",
            a.telemetry.metrics.interval != b.telemetry.metrics.interval,
        ),
        ("data_dir", a.data_dir != b.data_dir),
    ];
    checks
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
}

fn file_hash(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

type FileWatcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// Watch the file's directory; events naming the file or `..data` queue a file reload.
fn watch_file(
    path: &Path,
    queue: mpsc::Sender<Trigger>,
    debounce: Duration,
) -> Option<FileWatcher> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name()?.to_os_string();
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events.iter().any(|e| concerns(&e.event, &name)) {
                let _ = queue.try_send(Trigger::File);
            }
        }
        Err(errors) => {
            for error in errors {
                tracing::warn!(%error, "Config file watcher error.");
            }
        }
    };
    let watched = new_debouncer(debounce, None, handler).and_then(|mut d| {
        d.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(d)
    });
    match watched {
        Ok(debouncer) => Some(debouncer),
        Err(error) => {
            tracing::warn!(
                %error,
                dir = %dir.display(),
                "Cannot watch the config directory; reloads come from SIGHUP, POST /api/reload and the 30 s poll."
            );
            None
        }
    }
}

/// Whether an event may have changed the config: it names the file or the ConfigMap
/// link, and is not a mere read (our own reads raise open/close events too).
fn concerns(event: &notify_debouncer_full::notify::Event, name: &OsString) -> bool {
    let read_only = matches!(event.kind, EventKind::Access(kind)
        if kind != AccessKind::Close(AccessMode::Write));
    !read_only
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n == name.as_os_str() || n == CONFIGMAP_DATA_LINK)
        })
}

/// Reload when the file changed between the first load and the start of the watch,
/// which no event reports. Runs after the watch is in place, so nothing falls between.
fn catch_up(shared: &Shared, state: &ReloadState) {
    let Some(source) = state.source.get() else {
        return;
    };
    let running = shared.runtime.load_full();
    if (source.load)(&source.path).is_ok_and(|c| c == *running.config) {
        return;
    }
    *lock(&state.applying) = None;
    let _ = reload_now(shared, state, Trigger::File);
}

/// Runs queued reloads one at a time, plus the poll, until `stop` fires.
async fn reload_loop(
    shared: Arc<Shared>,
    state: Arc<ReloadState>,
    mut queue: mpsc::Receiver<Trigger>,
    poll_every: Duration,
    mut stop: ShutdownRx,
    // Held so the watch lives exactly as long as this task.
    _watcher: Option<FileWatcher>,
) {
    let first = tokio::time::Instant::now() + poll_every;
    let mut poll = tokio::time::interval_at(first, poll_every);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            next = queue.recv() => match next {
                Some(trigger) => trigger,
                None => return,
            },
            _ = poll.tick() => Trigger::Poll,
            _ = crate::shutdown::stopped(&mut stop) => return,
        };
        let (shared, state) = (shared.clone(), state.clone());
        // File reads and parsing block; keep them off the async workers.
        let _ = tokio::task::spawn_blocking(move || reload_now(&shared, &state, trigger)).await;
    }
}

/// `POST /api/reload`: reload now and answer with what changed, or why not.
///
/// The body must be empty or `{}`: anything else is a client mistake worth a 4xx
/// rather than being silently ignored.
pub async fn handle_api(
    shared: Arc<Shared>,
    state: Arc<ReloadState>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    use http_body::Body as _;
    if !req.body().is_end_stream() {
        if let Err(refused) = crate::http_json::read_json::<ReloadRequest>(req).await {
            return refused;
        }
    }
    let task = tokio::task::spawn_blocking(move || reload_now(&shared, &state, Trigger::Api));
    match task.await {
        Ok(Ok(Outcome::Applied(changes))) => {
            let mut body = serde_json::to_value(&changes).unwrap_or_default();
            body["result"] = json!("success");
            crate::http_json::json_response(StatusCode::OK, &body)
        }
        Ok(Ok(Outcome::Unchanged)) => {
            crate::http_json::json_response(StatusCode::OK, &json!({ "result": "unchanged" }))
        }
        Ok(Err(ReloadError::NoConfigFile)) => {
            crate::http_json::error(StatusCode::CONFLICT, &ReloadError::NoConfigFile.to_string())
        }
        Ok(Err(ReloadError::Rejected(error))) => crate::http_json::json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "result": "failure", "error": error }),
        ),
        Err(_) => crate::http_json::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the reload task failed; the running config is unchanged",
        ),
    }
}

/// The only accepted `POST /api/reload` body: `{}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::AccessLog;
    use crate::stats::SystemClock;

    const BASE: &str = "upstream: http://127.0.0.1:3000\nflows:\n  - name: checkout\n    match: POST /api/checkout\n";

    fn shared_from(dir: &Path, yaml: &str) -> (Arc<Shared>, PathBuf) {
        let path = dir.join("redline.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = Config::load(&path).unwrap();
        let shared = Shared::new(config, Arc::new(SystemClock), AccessLog::off()).unwrap();
        (shared, path)
    }

    fn listeners() -> Listeners {
        Listeners {
            proxy: "127.0.0.1:8080".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
        }
    }

    fn reloads(shared: &Shared, result: &str) -> f64 {
        let scrape = shared.registry.render();
        let series = format!("redline_config_reloads_total{{result=\"{result}\"}} ");
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    }

    #[tokio::test]
    async fn valid_applies_invalid_is_rejected_and_unchanged_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, path) = shared_from(dir.path(), BASE);
        let state = Arc::new(ReloadState::default());
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let quiet = Options {
            debounce: DEBOUNCE,
            poll_every: Duration::from_secs(3600),
        };
        start(
            &shared,
            &state,
            Some(path.clone()),
            None,
            listeners(),
            quiet,
            stop,
        );

        assert_eq!(
            reload_now(&shared, &state, Trigger::Poll),
            Ok(Outcome::Unchanged)
        );
        let added = format!("{BASE}  - name: search\n    match: GET /search\n");
        std::fs::write(&path, &added).unwrap();
        let Ok(Outcome::Applied(c)) = reload_now(&shared, &state, Trigger::Signal) else {
            panic!("valid config must apply");
        };
        assert_eq!(c.flows_added, ["search"]);
        assert!(c.needs_restart.is_empty());
        assert_eq!(shared.runtime.load().config.flows.len(), 2);

        std::fs::write(&path, format!("{added}bogus_key: 1\n")).unwrap();
        let Err(ReloadError::Rejected(e)) = reload_now(&shared, &state, Trigger::Api) else {
            panic!("unknown key must be rejected");
        };
        assert!(e.contains(&format!("{}:7:1", path.display())), "{e}");
        assert_eq!(state.last_error().as_deref(), Some(e.as_str()));
        assert_eq!(
            shared.runtime.load().config.flows.len(),
            2,
            "running config stays"
        );
        assert_eq!(
            (reloads(&shared, "success"), reloads(&shared, "failure")),
            (1.0, 1.0)
        );
    }

    #[tokio::test]
    async fn a_change_before_the_watch_starts_is_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, path) = shared_from(dir.path(), BASE);
        let state = Arc::new(ReloadState::default());
        std::fs::write(&path, BASE.replace("checkout", "late")).unwrap();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        start(
            &shared,
            &state,
            Some(path),
            None,
            listeners(),
            Options::default(),
            stop,
        );
        assert_eq!(shared.runtime.load().config.flows[0].name, "late");
        assert_eq!(state.status_json()["last_reload"]["trigger"], "file");
        assert_eq!(reloads(&shared, "success"), 1.0);
    }

    #[test]
    fn configs_that_would_break_the_proxy_are_unusable() {
        let parse = |y: &str| Config::parse(y, "c.yaml").unwrap();
        let l = listeners();
        assert!(check_usable(&parse("upstream: http://127.0.0.1:3000\n"), Some(&l)).is_ok());
        for looped in [
            "upstream: http://127.0.0.1:8080\n",
            "upstream: http://localhost:8080\n",
            "upstream: http://0.0.0.0:8080\n",
            "upstream: http://127.0.0.1:9901\n",
        ] {
            let e = check_usable(&parse(looped), Some(&l)).unwrap_err();
            assert!(e.contains("loop"), "{looped}: {e}");
        }
        assert!(check_usable(&parse("flows: []\n"), Some(&l)).is_err());
        if std::env::var(auth::TOKEN_ENV).is_err() {
            let missing =
                "upstream: http://127.0.0.1:3000\nadmin: { token_file: /nonexistent/token }\n";
            let e = check_usable(&parse(missing), Some(&l)).unwrap_err();
            assert!(e.contains("token_file"), "{e}");
        }
    }

    #[test]
    fn restart_only_settings_are_listed() {
        let a = Config::parse("upstream: http://127.0.0.1:3000\n", "a").unwrap();
        let b = Config::parse(
            "upstream: http://127.0.0.1:3001\nlisten: 127.0.0.1:1\nlimits: { max_header_bytes: 32KiB }\n",
            "b",
        )
        .unwrap();
        assert_eq!(
            restart_only_changes(&a, &b),
            ["listen", "limits.max_header_bytes"]
        );
        assert!(restart_only_changes(&a, &a).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn poll_picks_up_changes_without_file_events() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, path) = shared_from(dir.path(), BASE);
        let state = Arc::new(ReloadState::default());
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        // A debounce far longer than the test: only the poll can deliver the change.
        let poll_only = Options {
            debounce: Duration::from_secs(3600),
            poll_every: Duration::from_millis(100),
        };
        start(
            &shared,
            &state,
            Some(path.clone()),
            None,
            listeners(),
            poll_only,
            stop,
        );
        std::fs::write(&path, BASE.replace("checkout", "payments")).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while shared.runtime.load().config.flows[0].name != "payments" {
            assert!(std::time::Instant::now() < until, "poll did not reload");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = state.status_json();
        assert_eq!(status["last_reload"]["trigger"], "poll");
        assert_eq!(reloads(&shared, "success"), 1.0);
    }

    #[test]
    fn error_messages_are_redacted() {
        let running = Config::parse("upstream: http://127.0.0.1:3000\n", "a").unwrap();
        let msg = r#"c.yaml:3:8: invalid upstream URL "http://u:pw@h/?token=hunter2""#;
        let out = scrubber(&running).text(msg).into_owned();
        assert!(!out.contains("hunter2") && !out.contains("pw@"), "{out}");
        assert!(out.starts_with("c.yaml:3:8:"), "{out}");
    }
}

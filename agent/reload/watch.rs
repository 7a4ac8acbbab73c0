//! Watch sources: the config directory watcher, the catch-up read at start, and the reload task with its poll.

use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_full::notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use super::{CONFIGMAP_DATA_LINK, ReloadState, lock, reload_now};
use crate::audit::Trigger;
use crate::shutdown::Watch;
use crate::state::Shared;

pub(super) fn file_hash(path: &Path) -> Option<u64> {
    let bytes = crate::config::read_capped(path).ok()?;
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

type FileWatcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// Watch the file's directory; events naming the file or `..data` queue a file reload.
pub(super) fn watch_file(
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
pub(super) fn catch_up(shared: &Shared, state: &ReloadState) {
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
pub(super) async fn reload_loop(
    shared: Arc<Shared>,
    state: Arc<ReloadState>,
    mut queue: mpsc::Receiver<Trigger>,
    poll_every: Duration,
    stop: Watch,
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
            () = stop.signaled() => return,
        };
        let (shared, state) = (shared.clone(), state.clone());
        // File reads and parsing block; keep them off the async workers.
        let _ = tokio::task::spawn_blocking(move || reload_now(&shared, &state, trigger)).await;
    }
}

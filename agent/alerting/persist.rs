//! Durable alert state in `data_dir`: one JSON snapshot, replaced atomically (temp file, fsync, rename, fsync dir).
//!
//! Written from the evaluator task through `spawn_blocking`, never from the request path. A
//! generation number makes a slow older write unable to replace a newer one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::model::Instance;
use super::silences::Silence;
use crate::notify::AlertEvent;

/// File name of the snapshot inside `data_dir`.
pub const FILE: &str = "alert-state.json";

/// Format version; a file of another version is ignored with a warning.
const VERSION: u32 = 1;

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// Alerts not inactive.
    pub alerts: Vec<Instance>,
    /// Active silences.
    pub silences: Vec<Silence>,
    /// Events decided but not yet handed to the notifier.
    pub outbox: Vec<AlertEvent>,
}

impl Snapshot {
    /// A snapshot in the current format.
    pub fn new(alerts: Vec<Instance>, silences: Vec<Silence>, outbox: Vec<AlertEvent>) -> Self {
        Snapshot {
            version: VERSION,
            alerts,
            silences,
            outbox,
        }
    }
}

/// Why the snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The snapshot did not encode.
    #[error("cannot encode the alert state: {0}")]
    Encode(#[from] serde_json::Error),
    /// The file is not a snapshot.
    #[error("{path} is not a Redline alert state file: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Parser error.
        source: serde_json::Error,
    },
    /// The file was written by another format version.
    #[error("{path} has format version {found}, this Redline reads version {VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
}

/// The snapshot file of one `data_dir`.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    /// Generation of the last snapshot written; the mutex also serialises writers.
    written: Mutex<u64>,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PersistError {
    let path = path.to_path_buf();
    move |source| PersistError::Io { what, path, source }
}

impl Store {
    /// The snapshot in `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        Store {
            dir: dir.to_path_buf(),
            path: dir.join(FILE),
            written: Mutex::new(0),
        }
    }

    /// The snapshot file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last snapshot, or `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Snapshot>, PersistError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &self.path)(e)),
        };
        let snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|source| PersistError::Decode {
                path: self.path.clone(),
                source,
            })?;
        if snapshot.version != VERSION {
            return Err(PersistError::Version {
                path: self.path.clone(),
                found: snapshot.version,
            });
        }
        Ok(Some(snapshot))
    }

    /// Replace the snapshot with `bytes` of `generation`, unless a newer one was written.
    /// Blocking: call it from `spawn_blocking`.
    pub fn write(&self, generation: u64, bytes: &[u8]) -> Result<(), PersistError> {
        // A poisoned lock only means an earlier write panicked; the file is still whole.
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if generation <= *written {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(io("cannot create", &self.dir))?;
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
        file.write_all(bytes).map_err(io("cannot write", &tmp))?;
        file.sync_all().map_err(io("cannot fsync", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(io("cannot rename onto", &self.path))?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("cannot fsync", &self.dir))?;
        *written = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_no_snapshot_and_writes_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("nested"));
        assert!(store.load().unwrap().is_none());
        let snap = Snapshot::new(Vec::new(), Vec::new(), Vec::new());
        store.write(1, &serde_json::to_vec(&snap).unwrap()).unwrap();
        assert_eq!(store.load().unwrap().unwrap().version, VERSION);
        // An older generation never replaces a newer one.
        store.write(1, b"garbage").unwrap();
        assert!(store.load().is_ok());
        assert!(
            !dir.path()
                .join("nested")
                .join("alert-state.json.tmp")
                .exists()
        );
    }

    #[test]
    fn corrupt_or_foreign_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(PersistError::Decode { .. })));
        std::fs::write(
            store.path(),
            br#"{"version":99,"alerts":[],"silences":[],"outbox":[]}"#,
        )
        .unwrap();
        assert!(matches!(
            store.load(),
            Err(PersistError::Version { found: 99, .. })
        ));
    }
}

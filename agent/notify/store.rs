//! Durable snapshots under `data_dir`: write a temp file, fsync, rename over the old one, fsync the directory.
//!
//! Snapshots carry a version so that two racing writers can never leave an older
//! state on disk after a newer one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One snapshot file.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    written: Mutex<u64>,
}

impl Store {
    /// A store at `dir/name.json`; `dir` is created on first write.
    pub fn new(dir: &Path, name: &str) -> Store {
        Store {
            path: dir.join(format!("{name}.json")),
            written: Mutex::new(0),
        }
    }

    /// Where the snapshot lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replace the snapshot with `bytes` unless a newer `version` is already on disk. Blocking.
    pub fn write(&self, version: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if version <= *written {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        // The rename itself must reach the disk, or a crash can bring the old file back.
        std::fs::File::open(dir)?.sync_all()?;
        *written = version;
        Ok(())
    }
}

/// Write off the async threads; failures are logged, the in-memory queue stays authoritative.
pub async fn save(store: Arc<Store>, version: u64, bytes: Vec<u8>) {
    let path = store.path().to_path_buf();
    let result = tokio::task::spawn_blocking(move || store.write(version, &bytes)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(path = %path.display(), %error, "Cannot persist the alert outbox.")
        }
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "Outbox writer task failed.")
        }
    }
}

/// Every `*.json` snapshot in `dir` as (stem, bytes); a missing directory is empty.
pub fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        match std::fs::read(&path) {
            Ok(bytes) => out.push((stem.to_string(), bytes)),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "Cannot read a saved outbox.")
            }
        }
    }
    out.sort();
    out
}

/// Move an unreadable snapshot aside so it is kept for inspection but not retried forever.
pub fn quarantine(path: &Path) {
    let aside = path.with_extension("json.corrupt");
    if let Err(error) = std::fs::rename(path, &aside) {
        tracing::error!(path = %path.display(), %error, "Cannot move a corrupt outbox aside.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_win_and_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("outbox");
        let store = Store::new(&sub, "ops");
        store.write(2, b"two").unwrap();
        store.write(1, b"one").unwrap();
        assert_eq!(std::fs::read(store.path()).unwrap(), b"two");
        store.write(3, b"three").unwrap();
        std::fs::write(sub.join("ignored.tmp"), b"x").unwrap();
        let all = read_all(&sub);
        assert_eq!(all, vec![("ops".to_string(), b"three".to_vec())]);
        quarantine(store.path());
        assert!(read_all(&sub).is_empty());
        assert!(sub.join("ops.json.corrupt").exists());
        assert!(read_all(&dir.path().join("missing")).is_empty());
    }
}

//! The writer thread: chains, writes, fsyncs in batches and rotates the audit files.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Dropped, Entry, QUEUE, SYNC_EVERY, SYNC_RECORDS};

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The name of the `index`th file.
pub fn file_name(index: u32) -> String {
    format!("audit-{index:06}.jsonl")
}

/// A record as written: chain fields first, then the body.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    seq: u64,
    prev: &'a str,
    kind: &'static str,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct Gap {
    dropped: u64,
}

struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    file: Option<BufWriter<File>>,
    size: u64,
    index: u32,
    seq: u64,
    prev: String,
    dropped: Arc<Dropped>,
    unsynced: usize,
    last_sync: Instant,
}

/// Resume the chain in `dir` and start the writer thread.
pub fn start(dir: PathBuf, max_bytes: u64, dropped: Arc<Dropped>) -> io::Result<SyncSender<Entry>> {
    let (index, seq, prev) = resume(&dir)?;
    let (tx, rx) = sync_channel(QUEUE);
    let writer = Writer {
        dir,
        max_bytes,
        file: None,
        size: 0,
        index,
        seq,
        prev,
        dropped,
        unsynced: 0,
        last_sync: Instant::now(),
    };
    std::thread::Builder::new()
        .name("audit-trail".into())
        .spawn(move || run(&rx, writer))?;
    Ok(tx)
}

/// The last file's index, and the last record's seq and hash. A last line the process
/// did not finish writing (killed mid-write) is cut off; the new records go to a new file.
fn resume(dir: &Path) -> io::Result<(u32, u64, String)> {
    let Some((index, path)) = last_file(dir)? else {
        return Ok((0, 0, GENESIS.into()));
    };
    let mut text = std::fs::read(&path)?;
    if !text.is_empty() && text.last() != Some(&b'\n') {
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        tracing::warn!(file = %path.display(), "Cutting off an unfinished last audit record.");
        OpenOptions::new()
            .write(true)
            .open(&path)?
            .set_len(keep as u64)?;
        text.truncate(keep);
    }
    let last = text.split(|&b| b == b'\n').rfind(|l| !l.is_empty());
    let Some(last) = last else {
        return Ok((index, 0, GENESIS.into()));
    };
    let v: serde_json::Value = serde_json::from_slice(last).map_err(io::Error::other)?;
    let seq = v["seq"].as_u64().unwrap_or(0);
    let hash = v["hash"].as_str().unwrap_or(GENESIS).to_string();
    Ok((index, seq, hash))
}

/// The highest-numbered `audit-NNNNNN.jsonl` in `dir`.
pub fn last_file(dir: &Path) -> io::Result<Option<(u32, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let index = name.to_str().and_then(|n| {
            n.strip_prefix("audit-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        });
        if let Some(i) = index {
            if best.as_ref().is_none_or(|(b, _)| i > *b) {
                best = Some((i, entry.path()));
            }
        }
    }
    Ok(best)
}

fn run(rx: &Receiver<Entry>, mut w: Writer) {
    loop {
        match rx.recv_timeout(SYNC_EVERY) {
            Ok(entry) => {
                w.append(&entry);
                // Drain what else is queued into the same batch.
                let mut batch = 1;
                while batch < SYNC_RECORDS {
                    let Ok(entry) = rx.try_recv() else { break };
                    w.append(&entry);
                    batch += 1;
                }
                // Into the kernel now: a kill -9 loses nothing written past this point.
                w.flush();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                w.sync();
                return;
            }
        }
        if w.unsynced > 0 && (w.last_sync.elapsed() >= SYNC_EVERY || w.unsynced >= SYNC_RECORDS) {
            w.sync();
        }
    }
}

impl Writer {
    fn append(&mut self, entry: &Entry) {
        let gap = self.dropped.unmarked.swap(0, Relaxed);
        if gap > 0 {
            self.write_line("gap", Gap { dropped: gap });
        }
        self.write_line("request", entry);
    }

    /// Chain, hash and write one record; a failure drops it (counted, and marked as a gap
    /// by the next record that can be written).
    fn write_line<T: Serialize>(&mut self, kind: &'static str, body: T) {
        let seq = self.seq + 1;
        let line = Line {
            seq,
            prev: &self.prev,
            kind,
            body,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            self.dropped.add("unserialisable record");
            return;
        };
        let (full, hash) = seal(&text);
        if let Err(e) = self.write_bytes(full.as_bytes()) {
            tracing::error!(error = %e, "Cannot write the audit trail.");
            self.file = None;
            self.dropped.add("disk error");
            return;
        }
        self.seq = seq;
        self.prev = hash;
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let full = self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes;
        if self.file.is_none() || full {
            self.rotate()?;
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("no file"))?;
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        self.unsynced += 1;
        Ok(())
    }

    /// Close the current file (fsynced) and start the next one.
    fn rotate(&mut self) -> io::Result<()> {
        self.sync();
        std::fs::create_dir_all(&self.dir)?;
        self.index += 1;
        let path = self.dir.join(file_name(self.index));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        self.file = Some(BufWriter::with_capacity(64 * 1024, file));
        self.size = 0;
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.flush() {
                tracing::error!(error = %e, "Cannot write the audit trail.");
            }
        }
    }

    fn sync(&mut self) {
        self.flush();
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.get_ref().sync_data() {
                tracing::error!(error = %e, "Cannot fsync the audit trail.");
            }
        }
        self.unsynced = 0;
        self.last_sync = Instant::now();
    }
}

/// The record's line with its own hash appended, and that hash: SHA-256 (hex) of the JSON
/// text up to the closing brace, which `verify` recomputes the same way.
pub fn seal(text: &str) -> (String, String) {
    let hash = hex(&Sha256::digest(text.as_bytes()));
    let body = text.strip_suffix('}').unwrap_or(text);
    (format!("{body},\"hash\":\"{hash}\"}}\n"), hash)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

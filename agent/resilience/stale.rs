//! The stale store of a flow (`stale_if_error`, RFC 5861's meaning): the last good response per request target, served when the app fails.
//!
//! Bounded: each entry's body is at most the flow's `max_body`, and all entries of a flow
//! together at most `max_size` bytes. A full store takes a new target only after
//! dropping expired entries; a target already stored is always refreshed. Sharded
//! (`DashMap`), so there is no store-wide lock: a capture and a lookup lock one shard.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use dashmap::DashMap;
use http::{HeaderName, HeaderValue};

/// A good response kept for a failure.
#[derive(Debug)]
pub struct StaleEntry {
    /// The status it came with (200).
    pub status: u16,
    /// Its end-to-end headers (no hop-by-hop, no framing: the body's length is known).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The whole body.
    pub body: Bytes,
    /// When it was stored (the clock's milliseconds).
    pub stored_ms: u64,
}

impl StaleEntry {
    fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        self.body.len() + headers + 64
    }
}

/// One flow's stale responses, keyed by request target (path and query).
#[derive(Debug, Default)]
pub struct StaleStore {
    entries: DashMap<Box<str>, Arc<StaleEntry>>,
    bytes: AtomicUsize,
}

impl StaleStore {
    /// Keep `entry` for `target`, within `max_size` bytes; entries older than
    /// `max_age_ms` make room first. Returns whether it was kept.
    pub fn put(&self, target: &str, entry: StaleEntry, max_size: usize, max_age_ms: u64) -> bool {
        let size = entry.size();
        if size > max_size {
            return false;
        }
        let now = entry.stored_ms;
        let replaced = self.entries.get(target).map_or(0, |e| e.size());
        if self.bytes.load(Relaxed) + size - replaced.min(size) > max_size {
            self.purge(now, max_age_ms);
            if replaced == 0 && self.bytes.load(Relaxed) + size > max_size {
                return false;
            }
        }
        self.bytes.fetch_add(size, Relaxed);
        if let Some(old) = self.entries.insert(target.into(), Arc::new(entry)) {
            self.bytes.fetch_sub(old.size(), Relaxed);
        }
        true
    }

    /// The entry for `target` if it is younger than `max_age_ms` at `now_ms`.
    pub fn get(&self, target: &str, now_ms: u64, max_age_ms: u64) -> Option<Arc<StaleEntry>> {
        let entry = self.entries.get(target)?.clone();
        (now_ms.saturating_sub(entry.stored_ms) <= max_age_ms).then_some(entry)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    fn purge(&self, now_ms: u64, max_age_ms: u64) {
        self.entries.retain(|_, e| {
            let keep = now_ms.saturating_sub(e.stored_ms) <= max_age_ms;
            if !keep {
                self.bytes.fetch_sub(e.size(), Relaxed);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &'static str, at: u64) -> StaleEntry {
        StaleEntry {
            status: 200,
            headers: Vec::new(),
            body: Bytes::from_static(body.as_bytes()),
            stored_ms: at,
        }
    }

    #[test]
    fn bounded_by_size_and_age() {
        let s = StaleStore::default();
        assert!(s.put("/a", entry("aaaa", 0), 100, 1_000));
        assert!(!s.put("/b", entry("bbbb", 10), 100, 1_000), "full");
        assert!(
            s.put("/a", entry("AAAA", 20), 100, 1_000),
            "a target is refreshed"
        );
        assert_eq!(&s.get("/a", 500, 1_000).unwrap().body[..], b"AAAA");
        assert!(s.get("/a", 1_100, 1_000).is_none(), "too old to serve");
        // Once /a has expired it makes room.
        assert!(s.put("/b", entry("bbbb", 2_000), 100, 1_000));
        assert!(s.get("/a", 2_000, 1_000).is_none());
        assert_eq!(s.bytes(), 68);
        assert!(
            !s.put("/big", entry("x", 0), 10, 1_000),
            "larger than the store"
        );
    }
}

//! Verified JWT identities by token hash, until the token expires.
//!
//! A verification costs a signature check (tens of microseconds for RSA); a cached one a
//! SHA-256 and a sharded map read. Bounded: when full, expired entries are dropped, and
//! if it is still full new tokens are verified every time rather than evicting at random.

use std::sync::Arc;

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::Identity;

/// Entries kept at most.
pub const CAPACITY: usize = 10_000;

/// Token hash → (identity, `exp` in Unix seconds).
#[derive(Debug, Default)]
pub struct IdentityCache {
    map: DashMap<[u8; 32], (Arc<Identity>, u64)>,
}

/// The cache key of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl IdentityCache {
    /// The cached identity of a token that has not expired at `now` (Unix seconds).
    pub fn get(&self, hash: &[u8; 32], now: u64) -> Option<Arc<Identity>> {
        let entry = self.map.get(hash)?;
        let (identity, exp) = entry.value();
        (*exp > now).then(|| identity.clone())
    }

    /// Remember a verified identity until `exp`.
    pub fn put(&self, hash: [u8; 32], identity: Arc<Identity>, exp: u64, now: u64) {
        // Past `exp` but within the leeway: valid now, not worth remembering.
        if exp <= now {
            return;
        }
        if self.map.len() >= CAPACITY {
            self.map.retain(|_, (_, e)| *e > now);
            if self.map.len() >= CAPACITY {
                return;
            }
        }
        self.map.insert(hash, (identity, exp));
    }

    /// Entries held (for tests and the admin API).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

//! API keys: a file of SHA-256 hashes with a name and roles each; the keys themselves are
//! never stored, so the file can be read by more people than the keys.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AccessError, Identity};

/// One entry of the keys file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    /// Hex SHA-256 of the key.
    sha256: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Keys by the SHA-256 of their value.
#[derive(Debug, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Arc<Identity>>,
}

impl ApiKeys {
    /// Read the YAML list at `path`.
    pub fn load(path: &Path) -> Result<ApiKeys, AccessError> {
        let bad = |message: String| AccessError::ApiKeys {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let entries: Vec<Entry> = yaml_serde::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut by_hash = HashMap::new();
        for e in entries {
            let hash = parse_hex(&e.sha256)
                .ok_or_else(|| bad(format!("{}: sha256 must be 64 hex digits", e.name)))?;
            let identity = Identity::new(e.name.clone(), e.roles).map_err(bad)?;
            if by_hash.insert(hash, Arc::new(identity)).is_some() {
                return Err(bad(format!(
                    "{}: the same key hash is listed twice",
                    e.name
                )));
            }
        }
        Ok(ApiKeys { by_hash })
    }

    /// The identity of a presented key. Looked up by its hash: a timing difference can
    /// only reveal a digest prefix, which does not help find a key.
    pub fn find(&self, key: &[u8]) -> Option<Arc<Identity>> {
        let hash: [u8; 32] = Sha256::digest(key).into();
        self.by_hash.get(&hash).cloned()
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

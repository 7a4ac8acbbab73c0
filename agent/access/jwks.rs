//! Where the JWT verification keys come from: a JWKS file, or the issuer's JWKS URL.
//!
//! The URL's set is held in an `ArcSwap`, so verifying reads it without a lock. It is
//! fetched at start, again in the background once it is older than `jwks_refresh`, and on
//! demand when a token names a `kid` the set lacks (the issuer rotated its keys) — at most
//! once per `jwks_min_refresh`, so made-up `kid`s cannot turn Redline into a flood of
//! requests to the issuer. A failed fetch keeps the last good set.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest, Sha256};

use super::AccessError;
use crate::config::JwtConfig;

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Longest a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One usable key of a JWKS.
pub struct Key {
    /// `kid`, when the JWKS gives one.
    pub kid: Option<String>,
    /// The key's own `alg`, when the JWKS pins one.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The current key set and, for a URL, how to fetch it again.
pub struct KeySource {
    keys: ArcSwap<Vec<Key>>,
    remote: Option<Remote>,
    /// For a file: the SHA-256 of the text its keys came from, so a reload can tell
    /// whether the file changed.
    file_digest: Option<[u8; 32]>,
}

struct Remote {
    url: http::Uri,
    client: HttpsClient,
    refresh: Duration,
    min_refresh: Duration,
    epoch: Instant,
    /// When the last fetch started (ms since `epoch`, +1 so 0 means never).
    last_attempt: AtomicU64,
    /// When the set was last replaced (ms since `epoch`).
    fetched: AtomicU64,
    /// Bumped on every replacement: a waiter can tell a fetch happened meanwhile.
    generation: AtomicU64,
    background: AtomicBool,
    /// One fetch at a time; others wait for it and use its result.
    fetching: tokio::sync::Mutex<()>,
}

impl KeySource {
    /// The file's keys, or an empty set for a URL (fetched now in the background when a
    /// runtime is running, else on the first token).
    pub fn new(config: &JwtConfig) -> Result<Arc<KeySource>, AccessError> {
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(path), None) => {
                let text = read_file(path)?;
                KeySource {
                    keys: ArcSwap::from_pointee(parse_file(path, &text)?),
                    remote: None,
                    file_digest: Some(Sha256::digest(&text).into()),
                }
            }
            (None, Some(url)) => KeySource {
                keys: ArcSwap::from_pointee(Vec::new()),
                remote: Some(Remote::new(url, config)?),
                file_digest: None,
            },
            _ => return Err(AccessError::JwksSource),
        };
        let source = Arc::new(source);
        if source.remote.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            source.refresh_in_background();
        }
        Ok(source)
    }

    /// The keys now; starts a background fetch when the URL's set is due.
    pub fn current(self: &Arc<Self>) -> arc_swap::Guard<Arc<Vec<Key>>> {
        if let Some(remote) = &self.remote {
            let age = remote.now_ms().saturating_sub(remote.fetched.load(Relaxed));
            if age > remote.refresh.as_millis() as u64 {
                self.refresh_in_background();
            }
        }
        self.keys.load()
    }

    fn refresh_in_background(self: &Arc<Self>) {
        let Some(remote) = &self.remote else { return };
        if remote.background.swap(true, Relaxed) {
            return;
        }
        let source = self.clone();
        tokio::spawn(async move {
            source.refresh(None).await;
            if let Some(r) = &source.remote {
                r.background.store(false, Relaxed);
            }
        });
    }

    /// Whether a reload may keep this set: always for a URL (the set follows the issuer on
    /// its own), for a file when the file still holds the same text.
    pub fn unchanged(&self, config: &JwtConfig) -> Result<bool, AccessError> {
        match (&config.jwks_file, self.file_digest) {
            (Some(path), Some(digest)) => {
                let now: [u8; 32] = Sha256::digest(read_file(path)?).into();
                Ok(now == digest)
            }
            _ => Ok(true),
        }
    }

    /// Keys held now (no fetch is started).
    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    /// A token named a key the set lacks: fetch again unless a fetch was made too
    /// recently. `true` when the set may have changed since `seen` (try again).
    pub async fn refresh_for_unknown_key(&self, seen: u64) -> bool {
        self.refresh(Some(seen)).await
    }

    /// Generation of the set now, to pass to [`KeySource::refresh_for_unknown_key`].
    pub fn generation(&self) -> u64 {
        self.remote
            .as_ref()
            .map_or(0, |r| r.generation.load(Relaxed))
    }

    async fn refresh(&self, seen: Option<u64>) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let _one = remote.fetching.lock().await;
        if seen.is_some_and(|g| g != remote.generation.load(Relaxed)) {
            return true;
        }
        let now = remote.now_ms() + 1;
        let last = remote.last_attempt.load(Relaxed);
        if last != 0 && now - last < remote.min_refresh.as_millis() as u64 {
            return false;
        }
        remote.last_attempt.store(now, Relaxed);
        match remote.fetch().await {
            Ok(keys) => {
                self.keys.store(Arc::new(keys));
                remote.fetched.store(remote.now_ms(), Relaxed);
                remote.generation.fetch_add(1, Relaxed);
                true
            }
            Err(e) => {
                // Rate-limited by `min_refresh`, like the fetches themselves.
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the last good key set.");
                false
            }
        }
    }
}

impl Remote {
    fn new(url: &str, config: &JwtConfig) -> Result<Remote, AccessError> {
        let bad = |why: &str| AccessError::JwksUrl(format!("{url}: {why}"));
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err(bad("must be https (http only to a loopback address)")),
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| bad(&e.to_string()))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Remote {
            url: uri,
            client: Client::builder(TokioExecutor::new()).build(https),
            refresh: config.jwks_refresh,
            min_refresh: config.jwks_min_refresh,
            epoch: Instant::now(),
            last_attempt: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            background: AtomicBool::new(false),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let request = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            if resp.status() != http::StatusCode::OK {
                return Err(format!("status {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES);
            let bytes = body.collect().await.map_err(|e| e.to_string())?;
            parse(&bytes.to_bytes()).map_err(|e| e.to_string())
        };
        tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))?
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, AccessError> {
    std::fs::read(path).map_err(|source| AccessError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_file(path: &Path, text: &[u8]) -> Result<Vec<Key>, AccessError> {
    parse(text).map_err(|message| AccessError::Jwks {
        path: path.to_path_buf(),
        message,
    })
}

/// The usable keys of a JWKS document.
fn parse(text: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    set.keys
        .iter()
        .map(|jwk| {
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| format!("key {:?}: {e}", jwk.common.key_id))?;
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| Algorithm::from_str(&a.to_string()).ok());
            Ok(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            })
        })
        .collect()
}

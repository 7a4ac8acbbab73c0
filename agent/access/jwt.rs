//! Bearer JWT verification against a JWKS, with `jsonwebtoken` doing the cryptography.
//!
//! What is ours is key selection and the claims' shape: a token's `alg` must be one the
//! operator allowed *and* belong to the family of the key it names, so an RSA public key
//! can never be used as an HMAC secret (the HS/RS confusion attack). `alg: none` cannot
//! even be parsed into a header. `exp` is required and, like `nbf`, must be a number:
//! the typed [`Claims`] refuse a string where a date belongs.

use std::str::FromStr;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{Key, KeySource};
use super::{AccessError, Identity};
use crate::config::JwtConfig;

/// Verifies tokens against one JWKS and one set of claim requirements.
pub struct Verifier {
    /// The settings it was built from: a reload with the same ones keeps it.
    config: JwtConfig,
    keys: Arc<KeySource>,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    roles_claim: Vec<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The registered claims Redline reads; everything else stays in `rest` for the roles.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    /// Typed so that `"exp": "never"` is refused instead of skipped.
    exp: u64,
    #[serde(default)]
    #[allow(dead_code)] // present only so a non-numeric nbf fails to deserialize
    nbf: Option<u64>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl Verifier {
    /// Load the JWKS file and check the configured algorithms.
    pub fn new(config: &JwtConfig) -> Result<Verifier, AccessError> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| Algorithm::from_str(a).map_err(|_| AccessError::Algorithm(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier {
            config: config.clone(),
            keys: KeySource::new(config)?,
            algorithms,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway.as_secs(),
            roles_claim: config.roles_claim.split('.').map(String::from).collect(),
        })
    }

    /// Verify `token`, fetching the issuer's keys again (rate-limited) when it names a
    /// key the set lacks. The reason is for logs, never for the client.
    pub async fn verify(&self, token: &str) -> Result<(Identity, u64), String> {
        let seen = self.keys.generation();
        match self.verify_now(token) {
            Err(Failure::UnknownKey(why)) => {
                // Boxed: the fetch's state would otherwise sit in every request's future.
                if Box::pin(self.keys.refresh_for_unknown_key(seen)).await {
                    return self.verify_now(token).map_err(Failure::into_reason);
                }
                Err(why)
            }
            other => other.map_err(Failure::into_reason),
        }
    }

    fn verify_now(&self, token: &str) -> Result<(Identity, u64), Failure> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Failure::Invalid(format!("bad header: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            let why = format!("algorithm {:?} is not accepted", header.alg);
            return Err(Failure::Invalid(why));
        }
        let keys = self.keys.current();
        let key = key_for(&keys, header.alg, header.kid.as_deref()).ok_or_else(|| {
            Failure::UnknownKey(format!(
                "no key for kid {:?} and {:?}",
                header.kid, header.alg
            ))
        })?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(header.alg))
            .map_err(|e| Failure::Invalid(format!("rejected: {e}")))?;
        let claims = data.claims;
        let mut all = claims.rest;
        if let Some(sub) = claims.sub {
            all.insert("sub".into(), Value::String(sub));
        }
        let identity = identity_from_claims(&all, &self.roles_claim).map_err(Failure::Invalid)?;
        Ok((identity, claims.exp))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.leeway;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Whether this verifier judges tokens exactly as one built from `config` would: same
    /// settings, and the same JWKS file text (a URL's set is kept as fetched).
    pub fn serves(&self, config: &JwtConfig) -> Result<bool, AccessError> {
        Ok(self.config == *config && self.keys.unchanged(config)?)
    }

    /// The dotted path of the roles claim, as split at start.
    pub fn roles_claim(&self) -> &[String] {
        &self.roles_claim
    }
}

/// The identity in a set of claims: `sub`, and roles from the dotted `roles_claim` path
/// (a list, or a space-separated string) plus the scopes of `scope`.
pub fn identity_from_claims(
    claims: &Map<String, Value>,
    roles_claim: &[String],
) -> Result<Identity, String> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or("no `sub` claim")?;
    let mut roles = Vec::new();
    let mut at = claims.get(roles_claim.first().map_or("roles", |s| s.as_str()));
    for part in roles_claim.iter().skip(1) {
        at = at.and_then(|v| v.get(part));
    }
    push_roles(&mut roles, at);
    push_roles(&mut roles, claims.get("scope"));
    Identity::new(subject.to_string(), roles)
}

/// Why a token did not verify.
enum Failure {
    /// It names no key of the current set: the issuer may have rotated.
    UnknownKey(String),
    /// Anything else.
    Invalid(String),
}

impl Failure {
    fn into_reason(self) -> String {
        match self {
            Failure::UnknownKey(why) | Failure::Invalid(why) => why,
        }
    }
}

/// The key a token names: same family as its `alg` (never an RSA key for HS256), the
/// key's pinned `alg` if any, and its `kid` when the token gives one.
fn key_for<'k>(keys: &'k [Key], alg: Algorithm, kid: Option<&str>) -> Option<&'k Key> {
    keys.iter().find(|k| {
        k.key.family().algorithms().contains(&alg)
            && k.alg.is_none_or(|a| a == alg)
            && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid))
    })
}

fn push_roles(out: &mut Vec<String>, v: Option<&Value>) {
    let mut push = |s: &str| {
        if !s.is_empty() && !out.iter().any(|r| r == s) {
            out.push(s.to_string());
        }
    };
    match v {
        Some(Value::String(s)) => s.split(' ').for_each(&mut push),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(push),
        _ => {}
    }
}

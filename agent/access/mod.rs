//! Per-flow access control: who is calling (a bearer JWT or an API key) and whether the
//! flow's `access` rule lets them in.
//!
//! Not the admin API's token (the `auth` module): this guards the app's own traffic. The
//! decision ([`decide`]) is a pure function of the rule, the method and the verified
//! identity, so `redline check --explain` and `policy_tests` run the very code the proxy
//! runs.

mod cache;
mod explain;
mod jwks;
pub mod jwt;
mod keys;

use std::path::PathBuf;
use std::sync::Arc;

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::config::{AccessConfig, AuthConfig, Rule};
pub use cache::IdentityCache;
pub use explain::{Explained, explain, run_policy_tests};

/// A caller whose credential was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// JWT `sub`, or the API key's name.
    pub subject: String,
    /// Roles and scopes.
    pub roles: Vec<String>,
    /// `subject` as a header value, built once (cached identities are reused).
    pub subject_value: HeaderValue,
    /// `roles` comma-separated, as a header value.
    pub roles_value: HeaderValue,
}

impl Identity {
    /// An identity whose subject and roles can travel in a header; refused otherwise, so a
    /// claim cannot smuggle a line break into the app's request.
    pub fn new(subject: String, roles: Vec<String>) -> Result<Identity, String> {
        let subject_value = HeaderValue::from_str(&subject)
            .map_err(|_| "the subject is not a valid header value".to_string())?;
        let roles_value = HeaderValue::from_str(&roles.join(","))
            .map_err(|_| "a role is not a valid header value".to_string())?;
        Ok(Identity {
            subject,
            roles,
            subject_value,
            roles_value,
        })
    }
}

/// Why an `auth:` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The JWKS is not a usable key set.
    #[error("JWKS {path}: {message}")]
    Jwks {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Neither or both of `jwks_file` and `jwks_url`.
    #[error("auth.jwt needs exactly one of jwks_file and jwks_url")]
    JwksSource,
    /// The JWKS URL cannot be used.
    #[error("auth.jwt.jwks_url {0}")]
    JwksUrl(String),
    /// An algorithm name jsonwebtoken does not know.
    #[error("unknown JWT algorithm {0:?}; expected RS256, ES256, EdDSA or HS256")]
    Algorithm(String),
    /// The API keys file is not a list of `{ name, sha256, roles }`.
    #[error("API keys file {path}: {message}")]
    ApiKeys {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A forward header name is not a header name.
    #[error("invalid header name {0:?} in auth")]
    Header(String),
}

/// What a request's credential turned out to be.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No `Authorization: Bearer` and no API key header.
    Missing,
    /// A credential that did not verify (the reason is for logs, not for the client).
    Invalid(String),
    /// A verified caller.
    Valid(Arc<Identity>),
}

/// Identification for one runtime: verifiers, the identity cache, the forward headers.
#[derive(Debug)]
pub struct Access {
    /// Shared with the runtime before a reload when the JWT settings did not change.
    jwt: Option<Arc<jwt::Verifier>>,
    keys: Option<(HeaderName, keys::ApiKeys)>,
    /// Goes with `jwt`: identities verified by that verifier.
    cache: Arc<IdentityCache>,
    /// Header the verified subject goes upstream in (always stripped from clients).
    pub subject_header: HeaderName,
    /// Header the verified roles go upstream in (always stripped from clients).
    pub roles_header: HeaderName,
}

fn header_name(s: &str) -> Result<HeaderName, AccessError> {
    HeaderName::from_bytes(s.as_bytes()).map_err(|_| AccessError::Header(s.to_string()))
}

impl Access {
    /// Load the JWKS and key files `config` names.
    pub fn new(config: &AuthConfig) -> Result<Access, AccessError> {
        Access::renewed(config, None)
    }

    /// `new` for a reload: `previous`'s JWT verifier (its JWKS, as fetched) and its cache of
    /// verified identities are kept when the JWT settings and the JWKS file's text are the
    /// same, so a reload neither fetches the issuer's keys again nor verifies every cached
    /// token again. Anything changed builds both afresh: a cached identity is only as good
    /// as the settings that verified it. API keys are read again either way.
    pub fn renewed(config: &AuthConfig, previous: Option<&Access>) -> Result<Access, AccessError> {
        let kept = match (&config.jwt, previous) {
            (Some(jwt), Some(p)) => match &p.jwt {
                Some(v) if v.serves(jwt)? => Some((v.clone(), p.cache.clone())),
                _ => None,
            },
            _ => None,
        };
        let (jwt, cache) = match kept {
            Some((v, cache)) => (Some(v), cache),
            None => {
                let jwt = config.jwt.as_ref().map(jwt::Verifier::new).transpose()?;
                (jwt.map(Arc::new), Arc::default())
            }
        };
        let keys = match &config.api_keys {
            Some(k) => Some((header_name(&k.header)?, keys::ApiKeys::load(&k.file)?)),
            None => None,
        };
        Ok(Access {
            jwt,
            keys,
            cache,
            subject_header: header_name(&config.forward.subject_header)?,
            roles_header: header_name(&config.forward.roles_header)?,
        })
    }

    /// Whether any way to identify callers is configured.
    pub fn can_identify(&self) -> bool {
        self.jwt.is_some() || self.keys.is_some()
    }

    /// Identify the caller of a request at `now` (Unix seconds): a bearer token first,
    /// then an API key. Without `auth.jwt`, `Authorization` is the app's business and is
    /// not looked at.
    pub async fn identify(&self, headers: &HeaderMap, now: u64) -> Credential {
        if let Some(verifier) = &self.jwt {
            if let Some(token) = bearer(headers) {
                return match token {
                    Some(token) => self.verify_jwt(verifier, token, now).await,
                    None => Credential::Invalid("malformed Authorization header".into()),
                };
            }
        }
        if let Some((name, keys)) = &self.keys {
            if let Some(key) = headers.get(name) {
                return match keys.find(key.as_bytes()) {
                    Some(id) => Credential::Valid(id),
                    None => Credential::Invalid("unknown API key".into()),
                };
            }
        }
        Credential::Missing
    }

    async fn verify_jwt(&self, verifier: &jwt::Verifier, token: &str, now: u64) -> Credential {
        let hash = cache::token_hash(token);
        if let Some(id) = self.cache.get(&hash, now) {
            return Credential::Valid(id);
        }
        match verifier.verify(token).await {
            Ok((identity, exp)) => {
                let identity = Arc::new(identity);
                self.cache.put(hash, identity.clone(), exp, now);
                Credential::Valid(identity)
            }
            Err(reason) => Credential::Invalid(reason),
        }
    }

    /// The JWT roles claim path (`roles` when no JWT is configured), for `--explain`.
    pub fn roles_claim(&self) -> Vec<String> {
        self.jwt
            .as_ref()
            .map_or_else(|| vec!["roles".into()], |v| v.roles_claim().to_vec())
    }

    /// Identities cached now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// A flow that restricts access needs a way to identify callers: the name of the first
/// flow that has none.
pub fn check_identification(config: &crate::config::Config, access: &Access) -> Result<(), String> {
    if access.can_identify() {
        return Ok(());
    }
    let restricted = |a: &AccessConfig| a.rules.iter().any(|(_, r)| *r != Rule::Public);
    match config
        .flows
        .iter()
        .find(|f| f.access.as_ref().is_some_and(restricted))
    {
        Some(f) => Err(f.name.clone()),
        None => Ok(()),
    }
}

/// `Some(Some(token))` for `Authorization: Bearer <token>`, `Some(None)` for an
/// Authorization header that is not a usable bearer token, `None` without one. Any other
/// scheme (Basic…) is left to the app: `None`.
fn bearer(headers: &HeaderMap) -> Option<Option<&str>> {
    let value = headers.get(AUTHORIZATION)?;
    let bytes = value.as_bytes();
    if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(
        std::str::from_utf8(&bytes[7..])
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty()),
    )
}

/// The outcome of a flow's rule for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let through.
    Allow,
    /// 401: no credential (`token_given` false) or one that did not verify.
    Unauthenticated {
        /// A credential was presented (RFC 6750 `error="invalid_token"`).
        token_given: bool,
    },
    /// 403: verified, but the rule does not admit this caller.
    Forbid,
}

impl Verdict {
    /// `allow`, `unauthenticated` or `forbidden`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Unauthenticated { .. } => "unauthenticated",
            Verdict::Forbid => "forbidden",
        }
    }
}

/// A verdict and the rule that made it, e.g. `DELETE: any of [admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub verdict: Verdict,
    /// Which rule, as text for the audit trail and `--explain`.
    pub rule: String,
}

/// Whether `access` admits a `method` request from `who`. A method with no rule is
/// forbidden (deny by default) — even to a caller with no credential, since no
/// credential would help.
pub fn decide(access: &AccessConfig, method: &str, who: &Credential) -> Decision {
    let Some((key, rule)) = access.rule_for(method) else {
        return Decision {
            verdict: Verdict::Forbid,
            rule: format!("{method}: no rule (denied by default)"),
        };
    };
    let verdict = match (rule, who) {
        (Rule::Public, _) => Verdict::Allow,
        (_, Credential::Missing) => Verdict::Unauthenticated { token_given: false },
        (_, Credential::Invalid(_)) => Verdict::Unauthenticated { token_given: true },
        (Rule::Authenticated, Credential::Valid(_)) => Verdict::Allow,
        (Rule::AnyRole(roles), Credential::Valid(id)) => {
            if id.roles.iter().any(|r| roles.contains(r)) {
                Verdict::Allow
            } else {
                Verdict::Forbid
            }
        }
    };
    Decision {
        verdict,
        rule: format!("{key}: {rule}"),
    }
}

#[cfg(test)]
mod tests;

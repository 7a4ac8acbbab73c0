//! `auth:` (who a caller is: JWTs, API keys) and `flows[].access` (who may call a flow).
//!
//! Only the model and its parsing live here; verification and decisions are the `access` module's.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::de::{Parse, duration};

/// `auth:`: how callers prove who they are.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { jwt: { jwks_file: jwks.json, issuer: ..., audience: ... } }"
)]
pub struct AuthConfig {
    /// Bearer JWTs (`Authorization: Bearer …`).
    pub jwt: Option<JwtConfig>,
    /// API keys, stored as SHA-256 hashes.
    pub api_keys: Option<ApiKeysConfig>,
    /// Headers the verified identity reaches the app in.
    pub forward: ForwardConfig,
}

/// `audit_trail:`: the hash-chained audit files under `data_dir/audit/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { max_file_size: 64MiB }"
)]
pub struct AuditTrailConfig {
    /// A file past this size is closed and the next one started (default 64MiB).
    #[serde(deserialize_with = "file_size")]
    pub max_file_size: u64,
}

impl Default for AuditTrailConfig {
    fn default() -> Self {
        AuditTrailConfig {
            max_file_size: 64 * 1024 * 1024,
        }
    }
}

fn file_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Parse::new("a size such as 64MiB", |s| {
        let n = super::units::parse_size(s)? as u64;
        if n < 1024 {
            return Err(format!("{s} is too small for an audit file; at least 1KiB"));
        }
        Ok(n)
    })
    .one(d)
}

/// One of `policy_tests:`: a request, who sends it, and the decision expected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a test such as { request: \"DELETE /api/users/5\", claims: { sub: a, roles: [viewer] }, expect: forbidden }"
)]
pub struct PolicyTest {
    /// Shown in the report; `#N` when unset.
    #[serde(default)]
    pub name: Option<String>,
    /// `METHOD /path`.
    pub request: String,
    /// The caller's claims (`sub`, roles at `auth.jwt.roles_claim`, `scope`); none for an
    /// anonymous caller.
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
    /// `allow`, `unauthenticated` or `forbidden`.
    pub expect: Expect,
}

/// The decision a policy test expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Forwarded to the app.
    Allow,
    /// 401.
    Unauthenticated,
    /// 403.
    Forbidden,
}

impl Expect {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Unauthenticated => "unauthenticated",
            Expect::Forbidden => "forbidden",
        }
    }
}

/// `auth.jwt:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping such as { jwks_file: jwks.json, issuer: https://id.example.com, audience: orders }"
)]
pub struct JwtConfig {
    /// A JWKS (RFC 7517 `{"keys": [...]}`) file; read at start and on every reload.
    /// Exactly one of `jwks_file` and `jwks_url`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The issuer's JWKS URL (https; plain http only to a loopback address, for tests and
    /// local identity providers). Fetched at start, again every `jwks_refresh`, and when a
    /// token names an unknown `kid` (at most once per `jwks_min_refresh`); the last good
    /// set is kept while the issuer is unreachable.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the URL's key set is fetched again (default 5m).
    #[serde(default = "default_refresh", deserialize_with = "duration")]
    pub jwks_refresh: Duration,
    /// Fewest time between two fetches (default 10s): a flood of tokens with made-up
    /// `kid`s costs the issuer one request per this interval.
    #[serde(default = "default_min_refresh", deserialize_with = "duration")]
    pub jwks_min_refresh: Duration,
    /// Required `iss`; any issuer when unset.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` (one of them); any audience when unset.
    #[serde(default)]
    pub audience: Option<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA). HS256 is for development only
    /// and must be listed explicitly, with a `kty: oct` key in the JWKS.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 30s).
    #[serde(default = "default_leeway", deserialize_with = "duration")]
    pub leeway: Duration,
    /// Dotted path of the roles claim (default `roles`; Keycloak: `realm_access.roles`).
    /// A list of strings, or one space-separated string. The `scope` claim (space-separated,
    /// RFC 8693) is read too: its scopes count as roles.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA"].map(String::from).to_vec()
}

fn default_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_min_refresh() -> Duration {
    Duration::from_secs(10)
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_roles_claim() -> String {
    "roles".into()
}

/// `auth.api_keys:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping such as { file: api-keys.yaml }"
)]
pub struct ApiKeysConfig {
    /// YAML list of `{ name, sha256, roles }`: the key's SHA-256 in hex, never the key.
    pub file: PathBuf,
    /// Request header carrying the key (default `x-api-key`).
    #[serde(default = "default_key_header")]
    pub header: String,
}

fn default_key_header() -> String {
    "x-api-key".into()
}

/// `auth.forward:`: the headers the app reads the verified identity from. Incoming copies
/// are always removed, on every flow, so a client cannot claim an identity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { subject_header: x-redline-subject }"
)]
pub struct ForwardConfig {
    /// Verified `sub` (or API key name); default `x-redline-subject`.
    pub subject_header: String,
    /// Verified roles and scopes, comma-separated; default `x-redline-roles`.
    pub roles_header: String,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            subject_header: "x-redline-subject".into(),
            roles_header: "x-redline-roles".into(),
        }
    }
}

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Anyone; no credential is looked at.
    Public,
    /// Any verified caller.
    Authenticated,
    /// A verified caller holding at least one of these roles or scopes.
    AnyRole(Vec<String>),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Public => f.write_str("public"),
            Rule::Authenticated => f.write_str("authenticated"),
            Rule::AnyRole(roles) => write!(f, "any of [{}]", roles.join(", ")),
        }
    }
}

/// `flows[].access`: one rule, or rules per method (`"*"` for the others; a method with
/// no rule and no `"*"` is forbidden: deny by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Rules by upper-case method; `"*"` is the fallback.
    pub rules: Vec<(String, Rule)>,
}

impl AccessConfig {
    /// The rule for `method` and the key it was found under (`None`: no rule, deny).
    pub fn rule_for(&self, method: &str) -> Option<(&str, &Rule)> {
        let exact = self.rules.iter().find(|(m, _)| m == method);
        exact
            .or_else(|| self.rules.iter().find(|(m, _)| m == "*"))
            .map(|(m, r)| (m.as_str(), r))
    }
}

impl fmt::Display for AccessConfig {
    /// `GET: authenticated, DELETE: any of [admin]` (`*` for the other methods).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (method, rule)) in self.rules.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{method}: {rule}")?;
        }
        Ok(())
    }
}

const EXPECTING: &str =
    "public, authenticated, a list of roles, or a mapping of method to one of those";

impl<'de> Deserialize<'de> for AccessConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AccessVisitor)
    }
}

struct AccessVisitor;

impl<'de> Visitor<'de> for AccessVisitor {
    type Value = AccessConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AccessConfig, E> {
        RuleVisitor.visit_str(v).map(all_methods)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AccessConfig, A::Error> {
        RuleVisitor.visit_seq(seq).map(all_methods)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AccessConfig, A::Error> {
        let mut rules: Vec<(String, Rule)> = Vec::new();
        while let Some(method) = map.next_key::<String>()? {
            let method = method.to_ascii_uppercase();
            let valid = method == "*" || method.bytes().all(|b| b.is_ascii_uppercase());
            if !valid || method.is_empty() {
                return Err(de::Error::custom(format!(
                    "invalid method {method:?} in access; expected e.g. GET, DELETE or \"*\""
                )));
            }
            if rules.iter().any(|(m, _)| *m == method) {
                return Err(de::Error::custom(format!("method {method} listed twice")));
            }
            let rule = map.next_value_seed(RuleSeed)?;
            rules.push((method, rule));
        }
        Ok(AccessConfig { rules })
    }
}

fn all_methods(rule: Rule) -> AccessConfig {
    AccessConfig {
        rules: vec![("*".into(), rule)],
    }
}

struct RuleSeed;

impl<'de> de::DeserializeSeed<'de> for RuleSeed {
    type Value = Rule;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Rule, D::Error> {
        d.deserialize_any(RuleVisitor)
    }
}

struct RuleVisitor;

impl<'de> Visitor<'de> for RuleVisitor {
    type Value = Rule;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("public, authenticated or a list of roles")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Rule, E> {
        match v {
            "public" => Ok(Rule::Public),
            "authenticated" => Ok(Rule::Authenticated),
            other => Err(E::custom(format!(
                "unknown access rule {other:?}; expected public, authenticated or a list of roles such as [admin]"
            ))),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rule, A::Error> {
        let mut roles = Vec::new();
        while let Some(role) = seq.next_element::<String>()? {
            if role.is_empty() || role.contains([' ', ',']) {
                return Err(de::Error::custom(format!(
                    "invalid role {role:?}: no spaces or commas"
                )));
            }
            roles.push(role);
        }
        if roles.is_empty() {
            return Err(de::Error::custom(
                "an empty role list admits no one; write the roles, or `authenticated`",
            ));
        }
        Ok(Rule::AnyRole(roles))
    }
}

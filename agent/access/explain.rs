//! The policy as a testable function: `redline check --explain` and `policy_tests:`.
//!
//! Both run [`decide`](super::decide) — the proxy's own decision — on a request line and a set
//! of claims, after matching the request to a flow with the proxy's own router. No key and no
//! signature is involved: what is tested is who may do what, given who they are.

use std::fmt::Write as _;
use std::sync::Arc;

use http::Method;
use serde_json::{Map, Value};

use super::jwt::identity_from_claims;
use super::{Credential, Verdict, decide};
use crate::config::{Config, PolicyTest};
use crate::flows::router::Router;

/// What the policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// The flow the request belongs to (`unmatched` when none).
    pub flow: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The rule that made it.
    pub rule: String,
}

impl Explained {
    /// One line: `DELETE /api/users/5 → flow users-admin, rule "DELETE: any of [admin]": forbidden (403)`.
    pub fn render(&self, request: &str) -> String {
        let status = match self.verdict {
            Verdict::Allow => "forwarded to the app",
            Verdict::Unauthenticated { .. } => "401",
            Verdict::Forbid => "403",
        };
        format!(
            "{request} -> flow {}, rule \"{}\": {} ({status})",
            self.flow,
            self.rule,
            self.verdict.as_str()
        )
    }
}

/// Judge `request` (`METHOD /path`) from a caller with `claims` (`None`: no credential).
pub fn explain(
    config: &Config,
    request: &str,
    claims: Option<&Value>,
) -> Result<Explained, String> {
    let (method, path) = request
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("{request:?}: expected \"METHOD /path\""))?;
    let method: Method = method
        .parse()
        .map_err(|_| format!("{request:?}: invalid method"))?;
    let patterns: Vec<_> = config.flows.iter().map(|f| f.patterns.clone()).collect();
    let Some(found) = Router::new(&patterns).find(&method, path.trim()) else {
        return Ok(Explained {
            flow: crate::config::UNMATCHED_FLOW.into(),
            verdict: Verdict::Allow,
            rule: "no flow matches: no access rule".into(),
        });
    };
    let flow = &config.flows[found.flow];
    let Some(access) = &flow.access else {
        return Ok(Explained {
            flow: flow.name.clone(),
            verdict: Verdict::Allow,
            rule: "no access rule".into(),
        });
    };
    let who = credential(config, claims)?;
    let decision = decide(access, method.as_str(), &who);
    Ok(Explained {
        flow: flow.name.clone(),
        verdict: decision.verdict,
        rule: decision.rule,
    })
}

/// The identity in `claims`, read with the configured roles claim.
fn credential(config: &Config, claims: Option<&Value>) -> Result<Credential, String> {
    let Some(claims) = claims else {
        return Ok(Credential::Missing);
    };
    let empty = Map::new();
    let map = match claims {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err("claims must be a JSON object such as {\"sub\": \"a\"}".into()),
    };
    if map.is_empty() {
        return Ok(Credential::Missing);
    }
    let path: Vec<String> = config
        .auth
        .jwt
        .as_ref()
        .map_or("roles", |j| j.roles_claim.as_str())
        .split('.')
        .map(String::from)
        .collect();
    let identity = identity_from_claims(map, &path).map_err(|e| format!("claims: {e}"))?;
    Ok(Credential::Valid(Arc::new(identity)))
}

/// Run the `policy_tests:` of `config`: a report line per test, and how many failed.
pub fn run_policy_tests(config: &Config) -> (String, usize) {
    let mut out = String::new();
    let mut failed = 0;
    for (i, test) in config.policy_tests.iter().enumerate() {
        let name = test.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
        match check_one(config, test) {
            Ok(line) => {
                let _ = writeln!(out, "ok    {name}: {line}");
            }
            Err(line) => {
                failed += 1;
                let _ = writeln!(out, "FAIL  {name}: {line}");
            }
        }
    }
    (out, failed)
}

fn check_one(config: &Config, test: &PolicyTest) -> Result<String, String> {
    let got = explain(config, &test.request, test.claims.as_ref())?;
    let line = got.render(&test.request);
    if got.verdict.as_str() == test.expect.as_str() {
        Ok(line)
    } else {
        Err(format!("expected {}, got {line}", test.expect.as_str()))
    }
}

//! Checks that span several nodes (uniqueness, per-type receiver rules), located in the source.

use std::collections::HashMap;

use super::locate::{Step, locate};
use super::{Config, ConfigError};

/// A failed check: where in the document, and why.
struct Failure<'a> {
    path: Vec<Step<'a>>,
    message: String,
}

/// Run every cross-node check; `text` is the source the config was parsed from.
pub(super) fn check(config: &Config, text: &str, origin: &str) -> Result<(), ConfigError> {
    let failure = unique_flow_names(config)
        .or_else(|| unique_alerts(config))
        .or_else(|| unique_default_alerts(config))
        .or_else(|| unique_receiver_names(config))
        .or_else(|| receiver_rules(config))
        .or_else(|| access_needs_identification(config))
        .or_else(|| audit_needs_data_dir(config))
        .or_else(|| jwks_source(config))
        .or_else(|| denied_rate_needs_access(config));
    match failure {
        None => Ok(()),
        Some(f) => {
            let (line, column) = locate(text, &f.path).unwrap_or((1, 1));
            Err(ConfigError::at(origin, line, column, f.message))
        }
    }
}

/// A rule other than `public` cannot be met without a way to identify callers.
fn access_needs_identification(config: &Config) -> Option<Failure<'static>> {
    if config.auth.jwt.is_some() || config.auth.api_keys.is_some() {
        return None;
    }
    let public = |a: &super::AccessConfig| a.rules.iter().all(|(_, r)| *r == super::Rule::Public);
    let (i, flow) = config
        .flows
        .iter()
        .enumerate()
        .find(|(_, f)| f.access.as_ref().is_some_and(|a| !public(a)))?;
    Some(Failure {
        path: vec![Step::Key("flows"), Step::Index(i), Step::Key("access")],
        message: format!(
            "flows[{i}].access: flow {:?} restricts access, but `auth:` configures neither jwt nor api_keys, so no caller could be admitted",
            flow.name
        ),
    })
}

/// The audit trail lives under `data_dir`: `audit: true` without one would record nothing.
fn audit_needs_data_dir(config: &Config) -> Option<Failure<'static>> {
    if config.data_dir.is_some() {
        return None;
    }
    let i = config.flows.iter().position(|f| f.audit)?;
    Some(Failure {
        path: vec![Step::Key("flows"), Step::Index(i), Step::Key("audit")],
        message: format!(
            "flows[{i}].audit: the audit trail is written under data_dir; set `data_dir:`"
        ),
    })
}

/// Only an `access` rule denies: a `denied_rate` rule elsewhere could never fire.
fn denied_rate_needs_access(config: &Config) -> Option<Failure<'static>> {
    let denied = |a: &super::AlertRule| matches!(a.when, super::When::DeniedRate(_));
    let (i, j) = config.flows.iter().enumerate().find_map(|(i, f)| {
        let j = f.alerts.iter().position(denied)?;
        f.access.is_none().then_some((i, j))
    })?;
    Some(Failure {
        path: vec![
            Step::Key("flows"),
            Step::Index(i),
            Step::Key("alerts"),
            Step::Index(j),
        ],
        message: format!(
            "flows[{i}].alerts[{j}]: a denied_rate rule counts requests refused by the flow's `access` rule, and flow {:?} has none; add `access:` or remove the rule",
            config.flows[i].name
        ),
    })
}

/// Keys come from exactly one place.
fn jwks_source(config: &Config) -> Option<Failure<'static>> {
    let jwt = config.auth.jwt.as_ref()?;
    if jwt.jwks_file.is_some() != jwt.jwks_url.is_some() {
        return None;
    }
    Some(Failure {
        path: vec![Step::Key("auth"), Step::Key("jwt")],
        message: "auth.jwt: set exactly one of jwks_file and jwks_url".into(),
    })
}

/// Index of the first item whose key was already seen, with the first index.
fn first_duplicate<K: std::hash::Hash + Eq>(
    keys: impl Iterator<Item = K>,
) -> Option<(usize, usize)> {
    let mut seen: HashMap<K, usize> = HashMap::new();
    for (i, key) in keys.enumerate() {
        if let Some(first) = seen.insert(key, i) {
            return Some((first, i));
        }
    }
    None
}

fn unique_flow_names(config: &Config) -> Option<Failure<'static>> {
    let (first, dup) = first_duplicate(config.flows.iter().map(|f| &f.name))?;
    Some(Failure {
        path: vec![Step::Key("flows"), Step::Index(dup), Step::Key("name")],
        message: format!(
            "flows[{dup}].name: duplicate flow name {:?} (also flows[{first}]); flow names must be unique",
            config.flows[dup].name
        ),
    })
}

/// Two rules of one flow with the same name and severity would share one alert identity.
fn unique_alerts(config: &Config) -> Option<Failure<'static>> {
    config.flows.iter().enumerate().find_map(|(i, flow)| {
        let keys = flow.alerts.iter().map(|a| (&a.name, a.severity));
        let (first, dup) = first_duplicate(keys)?;
        let rule = &flow.alerts[dup];
        Some(Failure {
            path: vec![
                Step::Key("flows"),
                Step::Index(i),
                Step::Key("alerts"),
                Step::Index(dup),
            ],
            message: format!(
                "flows[{i}].alerts[{dup}]: alert {} with severity {} is already defined by alerts[{first}] \
                 of flow {:?}; give this rule a distinct `name` or `severity`",
                rule.name,
                rule.severity.as_str(),
                flow.name
            ),
        })
    })
}

/// `alerting.default_alerts` share the `unmatched` flow, so the same identity rule applies.
fn unique_default_alerts(config: &Config) -> Option<Failure<'static>> {
    let rules = &config.alerting.default_alerts;
    let (first, dup) = first_duplicate(rules.iter().map(|a| (&a.name, a.severity)))?;
    Some(Failure {
        path: vec![
            Step::Key("alerting"),
            Step::Key("default_alerts"),
            Step::Index(dup),
        ],
        message: format!(
            "alerting.default_alerts[{dup}]: alert {} with severity {} is already defined by \
             default_alerts[{first}]; give this rule a distinct `name` or `severity`",
            rules[dup].name,
            rules[dup].severity.as_str(),
        ),
    })
}

fn receiver_path(i: usize) -> Vec<Step<'static>> {
    vec![
        Step::Key("alerting"),
        Step::Key("receivers"),
        Step::Index(i),
    ]
}

fn unique_receiver_names(config: &Config) -> Option<Failure<'static>> {
    let receivers = &config.alerting.receivers;
    let (first, dup) = first_duplicate(receivers.iter().map(|r| &r.name))?;
    let mut path = receiver_path(dup);
    path.push(Step::Key("name"));
    Some(Failure {
        path,
        message: format!(
            "alerting.receivers[{dup}].name: duplicate receiver name {:?} (also receivers[{first}]); \
             receiver names must be unique",
            receivers[dup].name
        ),
    })
}

fn receiver_rules(config: &Config) -> Option<Failure<'static>> {
    config
        .alerting
        .receivers
        .iter()
        .enumerate()
        .find_map(|(i, r)| {
            let (key, message) = r.check().err()?;
            let mut path = receiver_path(i);
            path.extend(key.map(Step::Key));
            let at = key.map(|k| format!(".{k}")).unwrap_or_default();
            Some(Failure {
                path,
                message: format!("alerting.receivers[{i}]{at}: {message}"),
            })
        })
}

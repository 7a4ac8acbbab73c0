//! Where a receiver delivers: its config resolved against environment and secret files at send time.
//!
//! Secrets (signing keys, routing keys, URLs that embed tokens) live only in the
//! resolved [`Target`]; errors name the variable or file, never the value, and logs
//! show a URL's host only ([`host`]).

use std::path::{Path, PathBuf};

use crate::config::{ReceiverConfig, ReceiverKind};

use super::pagerduty;
use super::sign::{SecretError, Signer};

/// A receiver ready to send to.
#[derive(Debug, Clone)]
pub enum Target {
    /// Alertmanager webhook JSON, signed when a secret is configured.
    Webhook {
        /// Destination.
        url: String,
        /// Standard Webhooks signer.
        signer: Option<Signer>,
    },
    /// Slack incoming webhook.
    Slack {
        /// Destination (its path is the secret).
        url: String,
    },
    /// PagerDuty Events API v2.
    Pagerduty {
        /// Events endpoint.
        url: String,
        /// Integration key.
        routing_key: String,
    },
    /// Alertmanager API; every URL gets every alert.
    Alertmanager {
        /// Base URLs (`http://am:9093`).
        urls: Vec<String>,
    },
    /// Lines on stdout.
    Console,
}

/// Why a receiver cannot be resolved. Names where a secret lives, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A referenced environment variable is unset or empty.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// A secret file could not be read.
    #[error("cannot read {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A secret file holds nothing.
    #[error("{0} is empty")]
    EmptyFile(PathBuf),
    /// A URL taken from the environment is not `http(s)://host…`.
    #[error("the URL in {0} is not an http:// or https:// URL")]
    BadUrl(String),
    /// Config validation normally prevents this.
    #[error("receiver has no URL")]
    NoUrl,
    /// The signing secret is malformed.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Resolve `config` now (secrets may rotate, so this runs per delivery).
pub fn resolve(config: &ReceiverConfig) -> Result<Target, TargetError> {
    match config.kind {
        ReceiverKind::Webhook => Ok(Target::Webhook {
            url: url(config)?,
            signer: signer(config)?,
        }),
        ReceiverKind::Slack => Ok(Target::Slack { url: url(config)? }),
        ReceiverKind::Pagerduty => Ok(Target::Pagerduty {
            url: config
                .url
                .clone()
                .unwrap_or_else(|| pagerduty::DEFAULT_URL.to_string()),
            routing_key: secret(
                config.routing_key_env.as_deref(),
                config.routing_key_file.as_deref(),
            )?
            .unwrap_or_default(),
        }),
        ReceiverKind::Alertmanager => Ok(Target::Alertmanager {
            urls: config.all_urls().into_iter().map(String::from).collect(),
        }),
        ReceiverKind::Console => Ok(Target::Console),
    }
}

/// The host of `url`, the only part of a receiver URL that may appear in logs.
pub fn host(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_else(|| "<invalid url>".to_string())
}

fn url(config: &ReceiverConfig) -> Result<String, TargetError> {
    if let Some(url) = &config.url {
        return Ok(url.clone());
    }
    let name = config.url_env.as_deref().ok_or(TargetError::NoUrl)?;
    let value = env(name)?;
    let ok = value
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !ok {
        return Err(TargetError::BadUrl(name.to_string()));
    }
    Ok(value)
}

fn signer(config: &ReceiverConfig) -> Result<Option<Signer>, TargetError> {
    let secret = secret(config.secret_env.as_deref(), config.secret_file.as_deref())?;
    Ok(secret.map(|s| Signer::from_secret(&s)).transpose()?)
}

/// The value of `env` or the first line of `file`, whichever is configured.
fn secret(env_name: Option<&str>, file: Option<&Path>) -> Result<Option<String>, TargetError> {
    if let Some(name) = env_name {
        return env(name).map(Some);
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| TargetError::SecretFile {
        path: path.to_path_buf(),
        source,
    })?;
    let first = text.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return Err(TargetError::EmptyFile(path.to_path_buf()));
    }
    Ok(Some(first.to_string()))
}

fn env(name: &str) -> Result<String, TargetError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(TargetError::MissingEnv(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(kind: ReceiverKind) -> ReceiverConfig {
        ReceiverConfig {
            name: "r".into(),
            kind,
            url: None,
            urls: vec![],
            url_env: None,
            secret_env: None,
            secret_file: None,
            routing_key_env: None,
            routing_key_file: None,
        }
    }

    #[test]
    fn hosts_only_in_logs() {
        assert_eq!(
            host("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "hooks.slack.com"
        );
        assert_eq!(host("http://127.0.0.1:9093/"), "127.0.0.1");
        assert_eq!(host("::nonsense"), "<invalid url>");
    }

    #[test]
    fn secrets_come_from_files_and_errors_never_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pd");
        std::fs::write(&file, "SUPERSECRETKEY\nignored\n").unwrap();
        let mut pd = receiver(ReceiverKind::Pagerduty);
        pd.routing_key_file = Some(file.clone());
        match resolve(&pd).unwrap() {
            Target::Pagerduty { url, routing_key } => {
                assert_eq!(url, pagerduty::DEFAULT_URL);
                assert_eq!(routing_key, "SUPERSECRETKEY");
            }
            other => panic!("{other:?}"),
        }
        let mut hook = receiver(ReceiverKind::Webhook);
        hook.url = Some("http://h/x".into());
        hook.secret_file = Some(file);
        let err = resolve(&hook).unwrap_err().to_string();
        assert!(!err.contains("SUPERSECRETKEY"), "{err}");
        hook.secret_file = Some(dir.path().join("missing"));
        assert!(resolve(&hook).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn env_urls_are_checked_without_echoing_them() {
        let mut slack = receiver(ReceiverKind::Slack);
        slack.url_env = Some("REDLINE_TEST_UNSET_SLACK_URL".into());
        let err = resolve(&slack).unwrap_err().to_string();
        assert_eq!(
            err,
            "environment variable REDLINE_TEST_UNSET_SLACK_URL is not set"
        );
        // PATH is always set and is not a URL; the message names the variable only.
        slack.url_env = Some("PATH".into());
        let err = resolve(&slack).unwrap_err().to_string();
        assert_eq!(err, "the URL in PATH is not an http:// or https:// URL");
    }
}

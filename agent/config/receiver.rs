//! Alert receivers (`alerting.receivers`) and the per-type rules for their keys.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::de::{Parse, http_urls, opt_env_name, opt_http_url, parse_http_url};

/// What a receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// Alertmanager webhook JSON, optionally signed per Standard Webhooks.
    Webhook,
    /// Slack incoming webhook.
    Slack,
    /// Alertmanager `/api/v2/alerts`.
    Alertmanager,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// One human line per notification on stdout (`redline demo`).
    Console,
}

impl ReceiverKind {
    /// The YAML `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Slack => "slack",
            ReceiverKind::Alertmanager => "alertmanager",
            ReceiverKind::Pagerduty => "pagerduty",
            ReceiverKind::Console => "console",
        }
    }

    /// Optional keys this type accepts besides `name` and `type`.
    fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            ReceiverKind::Webhook => &["url", "url_env", "secret_env", "secret_file"],
            ReceiverKind::Slack => &["url", "url_env"],
            ReceiverKind::Alertmanager => &["url", "urls"],
            ReceiverKind::Pagerduty => &["url", "routing_key_env", "routing_key_file"],
            ReceiverKind::Console => &[],
        }
    }
}

impl fmt::Display for ReceiverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `alerting.receivers`.
///
/// Secrets are referenced by environment variable or file name, never inlined, so the
/// config can be shown and committed. A PagerDuty `url` overrides the Events API endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a receiver such as { name: ops, type: webhook, url: http://hooks.internal/redline }"
)]
pub struct ReceiverConfig {
    /// Unique name; becomes the `receiver` metric label.
    #[serde(deserialize_with = "receiver_name")]
    pub name: String,
    /// YAML `type`.
    #[serde(rename = "type")]
    pub kind: ReceiverKind,
    /// Target URL.
    #[serde(default, deserialize_with = "opt_http_url")]
    pub url: Option<String>,
    /// Alertmanager only: several instances, each gets every alert.
    #[serde(default, deserialize_with = "http_urls")]
    pub urls: Vec<String>,
    /// Environment variable holding the URL (for URLs that embed a secret, like Slack's).
    #[serde(default, deserialize_with = "opt_env_name")]
    pub url_env: Option<String>,
    /// Webhook only: environment variable holding the `whsec_…` signing secret.
    #[serde(default, deserialize_with = "opt_env_name")]
    pub secret_env: Option<String>,
    /// Webhook only: file holding the signing secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// PagerDuty only: environment variable holding the routing key.
    #[serde(default, deserialize_with = "opt_env_name")]
    pub routing_key_env: Option<String>,
    /// PagerDuty only: file holding the routing key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
}

/// A receiver rule violation: the offending key (`None` for the receiver as a whole).
pub(super) type Violation = (Option<&'static str>, String);

/// Name of the webhook receiver that `redline run --alert-webhook URL` adds.
pub const FLAG_WEBHOOK_NAME: &str = "alert-webhook";

/// Environment variable holding that receiver's signing secret (`whsec_…`), if set.
pub const FLAG_WEBHOOK_SECRET_ENV: &str = "REDLINE_WEBHOOK_SECRET";

impl ReceiverConfig {
    /// A webhook receiver given on the command line rather than in a file; signed with the
    /// secret in env `secret_env` when given. Errors say what is wrong with the URL.
    pub fn webhook(
        name: &str,
        url: &str,
        secret_env: Option<String>,
    ) -> Result<ReceiverConfig, String> {
        Ok(ReceiverConfig {
            name: name.to_string(),
            kind: ReceiverKind::Webhook,
            url: Some(parse_http_url(url)?),
            urls: Vec::new(),
            url_env: None,
            secret_env,
            secret_file: None,
            routing_key_env: None,
            routing_key_file: None,
        })
    }

    /// Every URL to deliver to (`url` then `urls`); env-provided URLs are resolved at runtime.
    pub fn all_urls(&self) -> Vec<&str> {
        self.url
            .iter()
            .chain(self.urls.iter())
            .map(String::as_str)
            .collect()
    }

    /// Per-type rules that serde cannot express.
    pub(super) fn check(&self) -> Result<(), Violation> {
        self.check_allowed_keys()?;
        match self.kind {
            ReceiverKind::Webhook | ReceiverKind::Slack => {
                self.exactly_one(
                    ("url", self.url.is_some()),
                    ("url_env", self.url_env.is_some()),
                )?;
                at_most_one(
                    ("secret_env", self.secret_env.is_some()),
                    ("secret_file", self.secret_file.is_some()),
                )
            }
            ReceiverKind::Alertmanager if self.all_urls().is_empty() => Err((
                None,
                format!(
                    "receiver {:?} (alertmanager) needs `url` or `urls`",
                    self.name
                ),
            )),
            ReceiverKind::Alertmanager => Ok(()),
            ReceiverKind::Pagerduty => self.exactly_one(
                ("routing_key_env", self.routing_key_env.is_some()),
                ("routing_key_file", self.routing_key_file.is_some()),
            ),
            // Prints to stdout: needs no target, and `check_allowed_keys` rejects any.
            ReceiverKind::Console => Ok(()),
        }
    }

    fn exactly_one(
        &self,
        a: (&'static str, bool),
        b: (&'static str, bool),
    ) -> Result<(), Violation> {
        at_most_one(a, b)?;
        if !a.1 && !b.1 {
            let (name, kind) = (&self.name, self.kind);
            return Err((
                None,
                format!("receiver {name:?} ({kind}) needs `{}` or `{}`", a.0, b.0),
            ));
        }
        Ok(())
    }

    fn present_keys(&self) -> [(&'static str, bool); 7] {
        [
            ("url", self.url.is_some()),
            ("urls", !self.urls.is_empty()),
            ("url_env", self.url_env.is_some()),
            ("secret_env", self.secret_env.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("routing_key_env", self.routing_key_env.is_some()),
            ("routing_key_file", self.routing_key_file.is_some()),
        ]
    }

    fn check_allowed_keys(&self) -> Result<(), Violation> {
        let allowed = self.kind.allowed_keys();
        let stray = self
            .present_keys()
            .into_iter()
            .find(|(key, present)| *present && !allowed.contains(key));
        let takes = match allowed {
            [] => "no keys besides `name` and `type`".to_string(),
            keys => format!("`{}`", keys.join("`, `")),
        };
        match stray {
            Some((key, _)) => Err((
                Some(key),
                format!(
                    "`{key}` does not apply to {} receivers; they take {takes}",
                    self.kind
                ),
            )),
            None => Ok(()),
        }
    }
}

fn at_most_one(a: (&'static str, bool), b: (&'static str, bool)) -> Result<(), Violation> {
    if a.1 && b.1 {
        return Err((Some(b.0), format!("set `{}` or `{}`, not both", a.0, b.0)));
    }
    Ok(())
}

fn receiver_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Parse::new("a receiver name such as ops", |s| {
        let mut chars = s.chars();
        let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        if first && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Ok(s.to_string());
        }
        Err(format!(
            "invalid receiver name {s:?}; expected letters, digits, _ . - (e.g. ops, oncall)"
        ))
    })
    .one(d)
}

#[cfg(test)]
mod console_tests {
    use crate::config::{Config, ReceiverKind};

    #[test]
    fn console_receivers_need_no_url_and_take_no_other_keys() {
        let yaml = "alerting:\n  receivers:\n    - { name: demo, type: console }\n";
        let config = Config::parse(yaml, "t.yaml").expect("console receiver is valid");
        assert_eq!(config.alerting.receivers[0].kind, ReceiverKind::Console);
        assert_eq!(config.alerting.receivers[0].kind.as_str(), "console");

        let stray = "alerting:\n  receivers:\n    - { name: demo, type: console, url: http://h }\n";
        let e = Config::parse(stray, "t.yaml").expect_err("url does not apply");
        assert_eq!((e.line, e.column), (3, 41), "{e}");
        assert!(
            e.message
                .contains("`url` does not apply to console receivers"),
            "{e}"
        );
        assert!(
            e.message.contains("no keys besides `name` and `type`"),
            "{e}"
        );

        let unknown = "alerting:\n  receivers:\n    - { name: demo, type: console, colour: red }\n";
        let e = Config::parse(unknown, "t.yaml").expect_err("unknown key");
        assert!(e.message.contains("colour"), "{e}");
    }
}

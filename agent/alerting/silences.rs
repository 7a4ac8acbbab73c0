//! Silences: mute an alert's notifications by flow and/or alertname for a while; its state keeps evolving.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::rfc3339;
use super::rules::AlertKey;
use crate::config::{parse_positive_duration, validate_flow_name};

/// Longest silence accepted: a year is already a rule that should be deleted instead.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3_600);

/// Active silences kept at most, so a script in a loop cannot grow memory and the state file.
const MAX_SILENCES: usize = 1_000;

/// One silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Random id, for `DELETE /api/silences/{id}`.
    pub id: String,
    /// Flow matched exactly; any flow when `None`.
    pub flow: Option<String>,
    /// Alert name matched exactly; any alert when `None`.
    pub alertname: Option<String>,
    /// Why, as given by its author.
    pub comment: String,
    /// Creation time.
    pub starts_ms: u64,
    /// Expiry time.
    pub ends_ms: u64,
}

impl Silence {
    /// Whether this silence mutes `key` at `now_ms`.
    pub fn matches(&self, key: &AlertKey, now_ms: u64) -> bool {
        self.is_active(now_ms)
            && self.flow.as_ref().is_none_or(|f| *f == key.flow)
            && self.alertname.as_ref().is_none_or(|a| *a == key.alertname)
    }

    /// Not yet expired.
    pub fn is_active(&self, now_ms: u64) -> bool {
        now_ms < self.ends_ms
    }

    /// The API form.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "flow": self.flow,
            "alertname": self.alertname,
            "comment": self.comment,
            "starts_at": rfc3339(self.starts_ms),
            "ends_at": rfc3339(self.ends_ms),
        })
    }
}

/// The body of `POST /api/silences`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Flow to silence.
    #[serde(default)]
    pub flow: Option<String>,
    /// Alert name to silence.
    #[serde(default)]
    pub alertname: Option<String>,
    /// How long, e.g. `1h`.
    pub duration: String,
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// Neither flow nor alertname: that would mute everything.
    #[error("a silence needs `flow`, `alertname` or both")]
    NoMatcher,
    /// The duration does not parse or is out of range.
    #[error("invalid `duration`: {0}")]
    Duration(String),
    /// The flow name is not a valid flow name.
    #[error("invalid `flow`: {0}")]
    Flow(String),
    /// The alert name is not a valid alert name.
    #[error("invalid `alertname` {0:?}; expected letters, digits and _ (e.g. FlowErrorRate)")]
    AlertName(String),
    /// Too many active silences.
    #[error("too many active silences ({MAX_SILENCES}); delete some first")]
    TooMany,
}

impl NewSilence {
    /// Validate and turn into a silence starting at `now_ms`.
    pub fn into_silence(self, now_ms: u64) -> Result<Silence, SilenceError> {
        if self.flow.is_none() && self.alertname.is_none() {
            return Err(SilenceError::NoMatcher);
        }
        if let Some(flow) = &self.flow {
            validate_flow_name(flow).map_err(SilenceError::Flow)?;
        }
        if let Some(name) = &self.alertname {
            let mut chars = name.chars();
            let first = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(SilenceError::AlertName(name.clone()));
            }
        }
        let duration = parse_positive_duration(&self.duration).map_err(SilenceError::Duration)?;
        if duration > MAX_DURATION {
            return Err(SilenceError::Duration(format!(
                "{:?} is longer than 366 days",
                self.duration
            )));
        }
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Ok(Silence {
            id: format!("{:016x}", fastrand::u64(..)),
            flow: self.flow,
            alertname: self.alertname,
            comment: self.comment.unwrap_or_default(),
            starts_ms: now_ms,
            ends_ms: now_ms.saturating_add(millis),
        })
    }
}

/// Every silence not yet expired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silences {
    list: Vec<Silence>,
}

impl Silences {
    /// Silences restored from disk.
    pub fn from_list(list: Vec<Silence>) -> Self {
        Silences { list }
    }

    /// All of them, expired ones included until the next [`prune`](Self::prune).
    pub fn list(&self) -> &[Silence] {
        &self.list
    }

    /// Add one, unless there are too many active already.
    pub fn add(&mut self, silence: Silence, now_ms: u64) -> Result<(), SilenceError> {
        self.prune(now_ms);
        if self.list.len() >= MAX_SILENCES {
            return Err(SilenceError::TooMany);
        }
        self.list.push(silence);
        Ok(())
    }

    /// Remove by id; false when there is no such active silence.
    pub fn remove(&mut self, id: &str, now_ms: u64) -> bool {
        self.prune(now_ms);
        let before = self.list.len();
        self.list.retain(|s| s.id != id);
        self.list.len() != before
    }

    /// Drop expired silences; true when any was dropped.
    pub fn prune(&mut self, now_ms: u64) -> bool {
        let before = self.list.len();
        self.list.retain(|s| s.is_active(now_ms));
        self.list.len() != before
    }

    /// Ids of the silences muting `key` now.
    pub fn matching(&self, key: &AlertKey, now_ms: u64) -> Vec<String> {
        self.list
            .iter()
            .filter(|s| s.matches(key, now_ms))
            .map(|s| s.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn new(flow: Option<&str>, alertname: Option<&str>, duration: &str) -> NewSilence {
        NewSilence {
            flow: flow.map(String::from),
            alertname: alertname.map(String::from),
            duration: duration.into(),
            comment: Some("deploying".into()),
        }
    }

    fn key(flow: &str, alertname: &str) -> AlertKey {
        AlertKey {
            flow: flow.into(),
            alertname: alertname.into(),
            severity: "page".into(),
        }
    }

    #[test]
    fn matches_by_flow_alertname_or_both_until_expiry() {
        let by_both = new(Some("checkout"), Some("FlowErrorRate"), "1h")
            .into_silence(T0)
            .unwrap();
        assert_eq!(by_both.ends_ms, T0 + 3_600_000);
        assert_eq!(by_both.id.len(), 16);
        assert!(by_both.matches(&key("checkout", "FlowErrorRate"), T0));
        assert!(!by_both.matches(&key("checkout", "FlowLatencyP95"), T0));
        assert!(!by_both.matches(&key("search", "FlowErrorRate"), T0));
        assert!(!by_both.matches(&key("checkout", "FlowErrorRate"), T0 + 3_600_000));
        let by_flow = new(Some("checkout"), None, "1m").into_silence(T0).unwrap();
        assert!(by_flow.matches(&key("checkout", "FlowLatencyP95"), T0));
        let by_name = new(None, Some("FlowErrorRate"), "1m")
            .into_silence(T0)
            .unwrap();
        assert!(by_name.matches(&key("search", "FlowErrorRate"), T0));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            new(None, None, "1h").into_silence(T0),
            Err(SilenceError::NoMatcher)
        );
        assert!(matches!(
            new(Some("Check Out"), None, "1h").into_silence(T0),
            Err(SilenceError::Flow(_))
        ));
        assert!(matches!(
            new(None, Some("bad-name"), "1h").into_silence(T0),
            Err(SilenceError::AlertName(_))
        ));
        for d in ["0s", "soon", "400d", "-1h"] {
            assert!(
                matches!(
                    new(Some("x"), None, d).into_silence(T0),
                    Err(SilenceError::Duration(_))
                ),
                "{d}"
            );
        }
        let body = r#"{"flow":"checkout","duration":"1h","extra":1}"#;
        assert!(serde_json::from_str::<NewSilence>(body).is_err());
    }

    #[test]
    fn add_remove_prune() {
        let mut s = Silences::default();
        let a = new(Some("a"), None, "1m").into_silence(T0).unwrap();
        let b = new(Some("b"), None, "1h").into_silence(T0).unwrap();
        s.add(a.clone(), T0).unwrap();
        s.add(b.clone(), T0).unwrap();
        assert_eq!(s.matching(&key("a", "X"), T0), vec![a.id.clone()]);
        assert!(s.prune(T0 + 60_000));
        assert_eq!(s.list(), std::slice::from_ref(&b));
        assert!(!s.remove(&a.id, T0 + 60_000));
        assert!(s.remove(&b.id, T0 + 60_000));
        assert!(s.list().is_empty());
    }
}

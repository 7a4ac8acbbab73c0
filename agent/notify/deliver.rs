//! One delivery attempt of one notification to one event receiver (webhook, Slack, PagerDuty, console).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::config::{ReceiverConfig, ReceiverKind};
use crate::metrics::Registry;

use super::event::AlertEvent;
use super::http::{self, HttpClient};
use super::outbox::Pending;
use super::retry::{self, Verdict};
use super::target::{self, Target};
use super::{ReceiverSource, Timing, console, pagerduty, slack, webhook};

/// Everything a worker needs to deliver; shared by all receivers.
pub struct Ctx {
    /// Pooled HTTP(S) client.
    pub client: HttpClient,
    /// `redline_notifications_total`.
    pub registry: Arc<Registry>,
    /// The receivers of the current config.
    pub receivers: ReceiverSource,
    /// Timeouts, backoff and intervals.
    pub timing: Timing,
    /// Per-URL send slots for rate-limited receivers (Slack).
    pacer: Pacer,
}

/// What became of an attempt, beyond the HTTP verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered, to be retried, or failed for good.
    Sent(Verdict),
    /// The receiver is no longer configured (or changed type): drop the notification.
    Gone,
}

impl Ctx {
    /// A context around a built client.
    pub fn new(
        client: HttpClient,
        registry: Arc<Registry>,
        receivers: ReceiverSource,
        timing: Timing,
    ) -> Ctx {
        Ctx {
            client,
            registry,
            receivers,
            timing,
            pacer: Pacer::default(),
        }
    }

    /// The current config of receiver `name`, if it still exists with this `kind`.
    pub fn receiver(&self, name: &str, kind: ReceiverKind) -> Option<ReceiverConfig> {
        (self.receivers)()
            .into_iter()
            .find(|r| r.name == name && r.kind == kind)
    }

    /// Count one `redline_notifications_total{receiver, result}`.
    pub fn count(&self, receiver: &str, result: &str) {
        self.registry.notifications.inc(&[receiver, result]);
    }

    /// Count `n` results at once.
    pub fn count_n(&self, receiver: &str, result: &str, n: usize) {
        if n > 0 {
            self.registry
                .notifications
                .add(&[receiver, result], n as f64);
        }
    }

    /// One attempt at `pending` for receiver `name` of `kind`.
    pub async fn attempt(&self, name: &str, kind: ReceiverKind, pending: &Pending) -> Attempt {
        let Some(config) = self.receiver(name, kind) else {
            return Attempt::Gone;
        };
        let target = match target::resolve(&config) {
            Ok(t) => t,
            Err(error) => {
                tracing::error!(receiver = name, %error, "Cannot deliver an alert notification: receiver misconfigured.");
                return Attempt::Sent(Verdict::Fail);
            }
        };
        Attempt::Sent(self.send(name, target, pending).await)
    }

    async fn send(&self, name: &str, target: Target, pending: &Pending) -> Verdict {
        let event = &pending.event;
        let (url, headers, body) = match target {
            Target::Console => return print(event).await,
            Target::Alertmanager { .. } => return Verdict::Fail,
            Target::Webhook { url, signer } => {
                let body = webhook::body(name, event);
                let ts = unix_now();
                let mut headers = vec![
                    ("webhook-id", pending.id.clone()),
                    ("webhook-timestamp", ts.to_string()),
                ];
                if let Some(signer) = signer {
                    headers.push(("webhook-signature", signer.sign(&pending.id, ts, &body)));
                }
                (url, headers, body)
            }
            Target::Slack { url } => {
                let slot = self.pacer.reserve(&url, self.timing.slack_interval);
                tokio::time::sleep_until(slot).await;
                (url, Vec::new(), json_bytes(&slack::message(event)))
            }
            Target::Pagerduty { url, routing_key } => {
                let body = json_bytes(&pagerduty::message(&routing_key, event));
                (url, Vec::new(), body)
            }
        };
        self.post(name, &url, &headers, body).await
    }

    /// POST and classify (a failure by its `crate::error::Error` retry verdict, in
    /// `retry.rs`); logs show the host, never the URL.
    pub async fn post(
        &self,
        name: &str,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Verdict {
        let host = target::host(url);
        let timeout = self.timing.request_timeout;
        match http::post_json(&self.client, url, headers, body, timeout).await {
            Ok(reply) => {
                let verdict = retry::classify(
                    reply.status,
                    reply.retry_after.as_deref(),
                    SystemTime::now(),
                );
                if verdict != Verdict::Delivered {
                    tracing::warn!(receiver = name, %host, status = reply.status, "Alert receiver refused a notification.");
                }
                verdict
            }
            Err(error) => {
                tracing::warn!(receiver = name, %host, error = %error.chain(), "Alert receiver unreachable.");
                retry::verdict(&error, None)
            }
        }
    }

    /// Delay before attempt number `attempts + 1`: the receiver's `Retry-After`, else full jitter.
    pub fn delay(&self, attempts: u32, after: Option<Duration>) -> Duration {
        let t = &self.timing;
        after.unwrap_or_else(|| retry::backoff(attempts, t.retry_base, t.retry_cap))
    }
}

/// Hands out send slots at most one per interval per URL.
#[derive(Default)]
struct Pacer {
    next: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// The instant this send may start; later callers get later slots.
    fn reserve(&self, url: &str, interval: Duration) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.get(url).map_or(now, |n| (*n).max(now));
        next.insert(url.to_string(), slot + interval);
        slot
    }
}

async fn print(event: &AlertEvent) -> Verdict {
    let event = event.clone();
    // stdout may be a slow pipe; keep the async workers free.
    match tokio::task::spawn_blocking(move || console::print(&event)).await {
        Ok(Ok(())) => Verdict::Delivered,
        _ => Verdict::Fail,
    }
}

fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_sends_to_one_url_only() {
        let pacer = Pacer::default();
        let gap = Duration::from_secs(1);
        let a1 = pacer.reserve("https://hooks.slack.com/a", gap);
        let a2 = pacer.reserve("https://hooks.slack.com/a", gap);
        let a3 = pacer.reserve("https://hooks.slack.com/a", gap);
        let b1 = pacer.reserve("https://hooks.slack.com/b", gap);
        assert!(a2 - a1 >= gap && a3 - a2 >= gap);
        assert!(b1 < a2);
    }
}

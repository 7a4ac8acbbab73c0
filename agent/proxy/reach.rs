//! Tells the operator when the upstream is down: a TCP connect probe at start, then a warning
//! at most once a minute while requests (or probes) find it down, and a note when it answers
//! again.
//!
//! Nothing here is on the request path: a request only adds one to
//! `Shared::upstream_unavailable` (see `RequestCtx::finish`); this task reads that count
//! every few seconds, and probes only while the upstream is believed down or after a
//! reload changed it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shutdown::Watch;
use crate::state::Shared;

/// How often the failure count is read (and a down upstream probed).
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// At most one "down" warning per this long, however many requests fail.
pub const WARN_EVERY_MS: u64 = 60_000;
/// A probe that has not connected by then counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one check has to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Nothing new, or a warning given less than a minute ago.
    Quiet,
    /// Down: `failed` requests got 502 since the last warning.
    Down {
        /// Requests answered `upstream_unavailable` since the last warning.
        failed: u64,
    },
    /// Answering again after being down.
    Up,
}

/// The rate limiter, apart from the I/O so it can be tested with plain numbers.
#[derive(Debug, Default)]
pub struct Reach {
    seen: u64,
    unwarned: u64,
    down: bool,
    last_warned_ms: Option<u64>,
}

impl Reach {
    /// One check at `now_ms`: `failures` is the running count of `upstream_unavailable`
    /// answers, `probe` whether a connect just succeeded (`None`: no probe this time).
    pub fn step(&mut self, now_ms: u64, failures: u64, probe: Option<bool>) -> Notice {
        let new = failures.saturating_sub(self.seen);
        self.seen = failures;
        self.unwarned += new;
        if new > 0 || probe == Some(false) {
            self.down = true;
        } else if probe == Some(true) && self.down {
            self.down = false;
            self.unwarned = 0;
            return Notice::Up;
        }
        let due = self
            .last_warned_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= WARN_EVERY_MS);
        if !self.down || !due {
            return Notice::Quiet;
        }
        self.last_warned_ms = Some(now_ms);
        Notice::Down {
            failed: std::mem::take(&mut self.unwarned),
        }
    }

    /// Whether the upstream is believed down (then each check probes it).
    pub fn is_down(&self) -> bool {
        self.down
    }
}

/// Start watching the upstream of the running config; stops when `stop` is signaled.
pub fn spawn(shared: Arc<Shared>, stop: Watch) {
    tokio::spawn(async move {
        tokio::select! {
            () = watch(&shared) => {}
            () = stop.signaled() => {}
        }
    });
}

async fn watch(shared: &Shared) {
    let mut reach = Reach::default();
    let mut target = upstream_authority(shared);
    let mut probed = Some(probe(&target).await);
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let failures = shared.upstream_unavailable.load(Ordering::Relaxed);
        let ok = probed.as_ref().map(Result::is_ok);
        let notice = reach.step(shared.clock.now_ms(), failures, ok);
        tell(shared, notice, probed.and_then(Result::err));
        every.tick().await;
        // A reload may point Redline elsewhere: probe the new upstream as at start.
        let now = upstream_authority(shared);
        let moved = now != target;
        target = now;
        probed = None;
        if reach.is_down() || moved {
            probed = Some(probe(&target).await);
        }
    }
}

fn upstream_authority(shared: &Shared) -> http::uri::Authority {
    shared.runtime.load().upstream_authority.clone()
}

/// A TCP connect to the upstream, closed at once without a request.
async fn probe(authority: &http::uri::Authority) -> Result<(), String> {
    let connect = tokio::net::TcpStream::connect(authority.as_str());
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}

fn tell(shared: &Shared, notice: Notice, probe_error: Option<String>) {
    let runtime = shared.runtime.load();
    let upstream = format!(
        "{}://{}",
        runtime.upstream_scheme, runtime.upstream_authority
    );
    let why = probe_error.unwrap_or_else(|| "connection failed".into());
    match notice {
        Notice::Quiet => {}
        Notice::Up => tracing::info!(%upstream, "Upstream {upstream} is reachable again."),
        Notice::Down { failed: 0 } => tracing::warn!(
            %upstream, error = %why,
            "Upstream {upstream} is not reachable ({why}): requests get 502 until it is. \
             Is the app running, and is --upstream right?"
        ),
        Notice::Down { failed } => tracing::warn!(
            %upstream, failed,
            "Upstream {upstream} is not reachable: {failed} request(s) got 502 \
             upstream_unavailable since the last warning (warned at most once a minute)."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_at_once_then_at_most_once_a_minute_while_down() {
        let mut r = Reach::default();
        assert_eq!(r.step(0, 0, Some(true)), Notice::Quiet, "up at start");
        assert_eq!(r.step(5_000, 3, None), Notice::Down { failed: 3 });
        assert!(r.is_down());
        assert_eq!(
            r.step(10_000, 10, Some(false)),
            Notice::Quiet,
            "rate-limited"
        );
        assert_eq!(r.step(50_000, 12, Some(false)), Notice::Quiet);
        assert_eq!(r.step(65_000, 12, Some(false)), Notice::Down { failed: 9 });
        assert_eq!(r.step(70_000, 12, Some(true)), Notice::Up);
        assert!(!r.is_down());
        assert_eq!(r.step(75_000, 12, None), Notice::Quiet, "up stays quiet");
    }

    #[test]
    fn down_at_start_is_told_at_once_and_again_a_minute_later() {
        let mut r = Reach::default();
        assert_eq!(r.step(0, 0, Some(false)), Notice::Down { failed: 0 });
        assert_eq!(r.step(30_000, 0, Some(false)), Notice::Quiet);
        assert_eq!(r.step(60_000, 0, Some(false)), Notice::Down { failed: 0 });
    }

    #[test]
    fn a_new_failure_while_the_probe_succeeds_keeps_it_down_until_a_clean_check() {
        let mut r = Reach::default();
        assert_eq!(r.step(0, 0, Some(true)), Notice::Quiet);
        assert_eq!(r.step(5_000, 1, Some(true)), Notice::Down { failed: 1 });
        assert_eq!(r.step(10_000, 1, Some(true)), Notice::Up);
    }
}

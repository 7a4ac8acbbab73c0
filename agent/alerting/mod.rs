//! The alert engine: rules and SLO burn rates evaluated off the request path, with silences and durable state.
//!
//! - [`rules`]: alert rules compiled from a flow's config and judged over its windows.
//! - [`slo`]: the per-flow SLO counter (the only request-path part) and burn-rate pairs.
//! - [`state_machine`]: inactive → pending → firing → resolved, per alert.
//! - [`engine`]: evaluates every `eval_interval`, decides notifications ([`AlertEvent`]s);
//!   [`events`] builds them, [`views`] is its JSON for the admin API, [`model`] the alert record.
//! - [`silences`], [`persist`], [`api`]: muting, `data_dir` durability, admin endpoints.
//!
//! [`spawn`] starts it from `app::run`, which hands the engine to the admin API.

pub mod api;
pub mod engine;
pub mod events;
pub mod fingerprint;
pub mod model;
pub mod persist;
pub mod rules;
pub mod silences;
pub mod slo;
pub mod state_machine;
pub mod views;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

pub use engine::Engine;
pub use fingerprint::fingerprint;

use crate::notify::AlertEvent;
use crate::shutdown::Watch;
use crate::state::Shared;

/// Build the engine (restoring `data_dir` state) and run it until `stop` is signaled;
/// events go to `events`. Returns the engine (for the admin API). The task holds `stop`
/// until the last state and the queued events are flushed, so draining waits for them.
pub fn spawn(
    shared: &Arc<Shared>,
    events: mpsc::Sender<AlertEvent>,
    admin: SocketAddr,
    stop: Watch,
) -> Arc<Engine> {
    let engine = start(shared, admin);
    tokio::spawn(run(engine.clone(), shared.clone(), events, stop));
    engine
}

/// A new engine for `shared`, its state restored from `data_dir`.
pub fn start(shared: &Shared, admin: SocketAddr) -> Arc<Engine> {
    let data_dir = shared.runtime.load().config.data_dir.clone();
    let store = data_dir.as_deref().map(persist::Store::new);
    let engine = Arc::new(Engine::new(store, admin_url(admin)));
    engine.restore(&shared.registry, shared.clock.now_ms());
    engine
}

async fn run(
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    events: mpsc::Sender<AlertEvent>,
    stop: Watch,
) {
    // Events restored from a crash go out first.
    engine.flush_outbox(&events);
    loop {
        // Read per round, so a reload's eval_interval applies at once.
        let every = shared.runtime.load().config.alerting.eval_interval;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = engine.woken() => {}
            () = stop.signaled() => break,
        }
        tick(&engine, &shared, &events).await;
    }
    engine.flush_outbox(&events);
    engine.persist().await;
    tracing::info!(
        undelivered = engine.outbox_len(),
        "Alert engine stopped; state flushed."
    );
}

/// One evaluation: persist before notifying, so a crash in between re-sends instead of
/// forgetting (at-least-once; receivers deduplicate by fingerprint).
pub async fn tick(engine: &Arc<Engine>, shared: &Shared, events: &mpsc::Sender<AlertEvent>) {
    if engine.evaluate(shared) {
        engine.persist().await;
    }
    if engine.flush_outbox(events) {
        engine.persist().await;
    }
}

/// Base URL of links to this Redline: the admin listener, with a wildcard address replaced by
/// loopback (set `alerting.external_url` for links that work from elsewhere).
fn admin_url(admin: SocketAddr) -> String {
    let ip = match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, admin.port()))
}

/// Milliseconds since the epoch as a `SystemTime`.
pub fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

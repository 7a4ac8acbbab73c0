//! Apply and diff: load the new config, check that it would run, swap it in, and say what changed.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::{Listeners, ReloadState, Source};
use crate::audit::ReloadChanges;
use crate::auth::{self, Token};
use crate::config::{Config, DEFAULT_REDACT_HEADERS, DEFAULT_REDACT_QUERY_PARAMS};
use crate::redact::Redactor;
use crate::state::Shared;

/// Load, check and swap in the new config; the error is redacted.
pub(super) fn apply(
    shared: &Shared,
    state: &ReloadState,
    source: &Source,
) -> Result<ReloadChanges, String> {
    let running = shared.runtime.load_full();
    let scrub = |e: String| scrubber(&running.config).text(&e).into_owned();
    let config = (source.load)(&source.path).map_err(scrub)?;
    check_usable(&config, state.listeners.get()).map_err(scrub)?;
    let startup = state
        .startup
        .get()
        .cloned()
        .unwrap_or_else(|| running.config.clone());
    let changes = changes(&running.config, &config, &startup);
    let runtime = shared
        .build_runtime(config)
        .map_err(|e| scrub(e.to_string()))?;
    shared.install(runtime);
    Ok(changes)
}

/// Redacts error messages with the running config's names plus the defaults: the new
/// config's own list is unknown when it does not parse.
pub(super) fn scrubber(running: &Config) -> Redactor {
    let mut params = running.redact.query_params.clone();
    params.extend(DEFAULT_REDACT_QUERY_PARAMS.map(String::from));
    let mut headers = running.redact.headers.clone();
    headers.extend(DEFAULT_REDACT_HEADERS.map(String::from));
    Redactor::new(&params, &headers)
}

pub(super) fn load_file(path: &Path) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    config.validate_runnable().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Checks for a config that parses but would break the running proxy.
pub fn check_usable(config: &Config, listeners: Option<&Listeners>) -> Result<(), String> {
    let origin = config
        .source
        .as_ref()
        .map_or_else(|| "configuration".to_string(), |p| p.display().to_string());
    let Some(upstream) = &config.upstream else {
        return Err(format!(
            "{origin}: no upstream: set `upstream:` (or --upstream / REDLINE_UPSTREAM)"
        ));
    };
    if let Some(l) = listeners {
        for (what, addr) in [("proxy", l.proxy), ("admin", l.admin)] {
            if points_at(&upstream.uri, addr) {
                return Err(format!(
                    "{origin}: upstream {upstream} is Redline's own {what} listener ({addr}): \
                     every request would loop back into Redline"
                ));
            }
        }
    }
    if let (Token::Unavailable(reason), Some(_)) =
        (auth::admin_token(&config.admin), &config.admin.token_file)
    {
        return Err(format!(
            "{origin}: admin.token_file cannot be used ({reason}): \
             the admin API would refuse every mutation"
        ));
    }
    Ok(())
}

/// Whether `uri` names this machine's `listener` (loopback, `localhost` or the bound IP).
fn points_at(uri: &http::Uri, listener: SocketAddr) -> bool {
    let port = uri.port_u16().unwrap_or(80);
    let Some(host) = uri.host() else {
        return false;
    };
    if port != listener.port() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified() || ip == listener.ip())
}

/// What differs between the running and the new config, and what only a restart applies
/// (compared with the config the process started with, so it stays listed until then).
fn changes(old: &Config, new: &Config, startup: &Config) -> ReloadChanges {
    let names = |c: &Config| c.flows.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    let (old_names, new_names) = (names(old), names(new));
    let flows_changed = new
        .flows
        .iter()
        .filter(|f| old.flows.iter().any(|o| o.name == f.name && o != *f))
        .map(|f| f.name.clone())
        .collect();
    ReloadChanges {
        flows_added: new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .cloned()
            .collect(),
        flows_removed: old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect(),
        flows_changed,
        needs_restart: restart_only_changes(startup, new),
    }
}

/// Settings read once at start-up: listeners, connection limits, the access log writer,
/// the route template table, histogram boundaries, and the telemetry pipeline and
/// outbox built from them.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (running, new);
    let checks = [
        ("listen", a.listen != b.listen),
        ("admin.listen", a.admin.listen != b.admin.listen),
        (
            "limits.header_read_timeout",
            a.limits.header_read_timeout != b.limits.header_read_timeout,
        ),
        (
            "limits.max_header_bytes",
            a.limits.max_header_bytes != b.limits.max_header_bytes,
        ),
        (
            "limits.shutdown_grace",
            a.limits.shutdown_grace != b.limits.shutdown_grace,
        ),
        ("routes", a.routes != b.routes),
        (
            "telemetry.access_log",
            a.telemetry.access_log != b.telemetry.access_log,
        ),
        (
            "histogram_buckets",
            a.histogram_buckets() != b.histogram_buckets(),
        ),
        ("service", a.service != b.service),
        ("baseline.record", a.baseline.record != b.baseline.record),
        ("telemetry.otlp", a.telemetry.otlp != b.telemetry.otlp),
        ("telemetry.traces", a.telemetry.traces != b.telemetry.traces),
        (
            "telemetry.metrics.interval",
            a.telemetry.metrics.interval != b.telemetry.metrics.interval,
        ),
        ("data_dir", a.data_dir != b.data_dir),
    ];
    checks
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
}

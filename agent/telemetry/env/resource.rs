//! The OTLP resource: `service.*`, `host.name` and `OTEL_RESOURCE_ATTRIBUTES`, and the percent-encoded `key=value,…` lists it and the exporter headers are written in.

use super::Env;
use crate::config::Config;

/// `service.name` (OTEL_SERVICE_NAME > OTEL_RESOURCE_ATTRIBUTES > config `service`), then
/// Redline's own attributes, then the rest of OTEL_RESOURCE_ATTRIBUTES (which win on clashes).
pub(super) fn resource(env: &mut Env<'_>, config: &Config) -> Vec<(String, String)> {
    let attrs = match env.var("OTEL_RESOURCE_ATTRIBUTES") {
        Some(v) => parse_pairs(&v).unwrap_or_else(|bad| {
            env.warn(format!(
                "OTEL_RESOURCE_ATTRIBUTES: entry {bad:?} is not key=value (percent-encoded); the whole variable is ignored"
            ));
            Vec::new()
        }),
        None => Vec::new(),
    };
    let from_attrs = attrs
        .iter()
        .rev()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    let service = env
        .var("OTEL_SERVICE_NAME")
        .or(from_attrs)
        .unwrap_or_else(|| config.service.clone());
    let mut out: Vec<(String, String)> = vec![
        ("service.name".into(), service),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("service.instance.id".into(), instance_id()),
        ("host.name".into(), host_name()),
        ("telemetry.sdk.name".into(), "redline".into()),
        ("telemetry.sdk.language".into(), "rust".into()),
        (
            "telemetry.sdk.version".into(),
            env!("CARGO_PKG_VERSION").into(),
        ),
    ];
    for (k, v) in attrs {
        if k == "service.name" {
            continue;
        }
        match out.iter_mut().find(|(existing, _)| *existing == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// A random UUID (version 4 layout), new for every process.
fn instance_id() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::trace::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// `k1=v1,k2=v2` with percent-encoded values (W3C Baggage syntax, no properties); `Err` names the bad entry.
pub fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (k, v) = entry.split_once('=').ok_or_else(|| entry.to_string())?;
        let key = k.trim();
        let value = percent_decode(v.trim()).ok_or_else(|| entry.to_string())?;
        if key.is_empty() {
            return Err(entry.to_string());
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The valid entries only, for headers (where one bad entry should not lose an API key).
pub(super) fn parse_pairs_lenient(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|e| parse_pairs(e).ok())
        .flatten()
        .collect()
}

/// Strict percent-decoding: `None` on a broken escape or invalid UTF-8. `+` stays `+`.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

//! Scalar value syntaxes of the config file: durations, percentages, byte sizes, listen addresses.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Units in the order `format_duration` emits them; `w` is accepted on input only.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", NANOS_PER_MS),
    ("us", 1_000),
    ("ns", 1),
];

/// Parse a duration such as `250ms`, `5s`, `1m`, `4h`, `1h30m`, `3d` or `1.5s`.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`, `w`. A bare `0` is zero; any
/// other number without a unit is rejected, because `timeout: 5` is ambiguous.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration; expected e.g. 250ms, 5s, 1m or 4h".into());
    }
    if text.starts_with('-') {
        return Err(format!(
            "duration {text:?} is negative; it must be 0 or more"
        ));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "duration {text:?} has no unit; add one, e.g. {text}s or {text}ms"
        ));
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (number, after) = split_prefix(rest, |c| c.is_ascii_digit() || c == '.');
        let (unit, next) = split_prefix(after, |c| !(c.is_ascii_digit() || c == '.'));
        let per = unit_nanos(unit).ok_or_else(|| bad_unit(text, unit))?;
        let part = scaled(number, per).ok_or_else(|| bad_duration(text))?;
        total = total.checked_add(part).ok_or_else(|| too_large(text))?;
        rest = next;
    }
    u64::try_from(total)
        .map(Duration::from_nanos)
        .map_err(|_| too_large(text))
}

/// Like [`parse_duration`], but zero is rejected: used where zero would disable the feature.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("duration {:?} must be greater than zero", s.trim()));
    }
    Ok(d)
}

fn split_prefix(s: &str, keep: impl Fn(char) -> bool) -> (&str, &str) {
    let end = s.find(|c: char| !keep(c)).unwrap_or(s.len());
    s.split_at(end)
}

fn unit_nanos(unit: &str) -> Option<u128> {
    match unit {
        "w" => Some(7 * 86_400 * NANOS_PER_SEC),
        "µs" => Some(1_000),
        _ => DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, per)| *per),
    }
}

/// `number` × `per`, where `number` may carry a decimal fraction (`1.5`).
fn scaled(number: &str, per: u128) -> Option<u128> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits_ok(whole) || !digits_ok(frac) || whole.len() + frac.len() > 24 {
        return None;
    }
    let mantissa: u128 = format!("{whole}{frac}").parse().ok()?;
    let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    Some(mantissa.checked_mul(per)? / scale)
}

fn bad_unit(text: &str, unit: &str) -> String {
    if unit.is_empty() {
        return bad_duration(text);
    }
    format!(
        "unknown unit {unit:?} in duration {text:?}; use ms, s, m, h or d (e.g. 250ms, 5s, 1m, 4h)"
    )
}

fn bad_duration(text: &str) -> String {
    format!("invalid duration {text:?}; expected e.g. 250ms, 5s, 1m, 4h or 1h30m")
}

fn too_large(text: &str) -> String {
    format!("duration {text:?} is too large")
}

/// Canonical text of a duration, largest units first (`1h30m`, `800ms`, `0s`).
///
/// The output is also valid Prometheus duration syntax whenever the value is a whole
/// number of milliseconds, which is what `redline rules` relies on.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut nanos = d.as_nanos();
    let mut out = String::new();
    for (unit, per) in DURATION_UNITS {
        let count = nanos / per;
        if count > 0 {
            let _ = write!(out, "{count}{unit}");
            nanos %= per;
        }
    }
    out
}

/// Parse a percentage such as `2%` or `99.5%` into a fraction (`0.02`, `0.995`).
///
/// The `%` is mandatory: a bare `0.02` could mean 2% or 0.02%.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let expected = "expected a percentage such as 2% or 99.5%";
    let Some(number) = text.strip_suffix('%').map(str::trim) else {
        return Err(format!("{text:?} has no %; {expected}"));
    };
    if number.starts_with('-') {
        return Err(format!(
            "percentage {text:?} is negative; it must be 0% to 100%"
        ));
    }
    let plain = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.');
    let value: f64 = match number.parse() {
        Ok(v) if plain => v,
        _ => return Err(format!("invalid percentage {text:?}; {expected}")),
    };
    if value > 100.0 {
        return Err(format!("percentage {text:?} is above 100%"));
    }
    Ok(value / 100.0)
}

/// Canonical text of a fraction as a percentage (`0.02` → `2%`, `0.995` → `99.5%`).
pub fn format_percent(fraction: f64) -> String {
    format!("{}%", trim_decimal(fraction * 100.0))
}

/// A float with up to 6 decimals and no trailing zeros, hiding binary rounding noise.
pub(crate) fn trim_decimal(value: f64) -> String {
    let fixed = format!("{value:.6}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" { "0" } else { trimmed }.to_string()
}

/// Parse a byte size: `65536`, `64KiB`, `64KB`, `1MiB`, `1MB` (case-insensitive).
///
/// `KB`/`MB` are decimal (1000) and `KiB`/`MiB` binary (1024), as in Caddy and Kubernetes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let text = s.trim();
    let (number, unit) = split_prefix(text, |c| c.is_ascii_digit());
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        _ => return Err(bad_size(text)),
    };
    let count: usize = number.parse().map_err(|_| bad_size(text))?;
    count
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn bad_size(text: &str) -> String {
    format!("invalid size {text:?}; expected bytes such as 65536, 64KiB or 1MiB")
}

/// Parse a listen address: `IP:PORT`, `[IPv6]:PORT`, or `:PORT` for all IPv4 interfaces.
///
/// Host names are refused on purpose: resolving them at load time would make a config
/// valid or not depending on DNS.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let text = s.trim();
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse().map_err(|_| {
        format!("invalid listen address {text:?}; expected IP:PORT such as 0.0.0.0:8080, [::]:8080 or :8080")
    })
}

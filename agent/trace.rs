//! W3C trace context: the trace a request belongs to, continued from `traceparent` or started here.

use http::HeaderMap;

/// The trace identity of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16-byte trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The caller's span id, when the request came with a valid `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    /// The caller's sampled flag (`01`), when it sent one.
    pub sampled: Option<bool>,
    /// Redline's SERVER span for this request.
    pub span_id: [u8; 8],
    /// Redline's CLIENT span for the upstream call: the parent the upstream is told about.
    pub client_span_id: [u8; 8],
    /// The head sampling decision, sent upstream as the `sampled` flag.
    pub recorded: bool,
}

impl TraceContext {
    /// Continue the incoming `traceparent`, or start a new random trace.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
            .unwrap_or_else(Self::new_root)
    }

    /// A new trace with no parent.
    pub fn new_root() -> Self {
        let mut id = fastrand::u128(1..).to_be_bytes();
        if id == [0; 16] {
            id[15] = 1;
        }
        Self::continued(id, None, None)
    }

    /// Redline's spans inside trace `trace_id`, under the caller's span when there is one.
    pub fn continued(trace_id: [u8; 16], parent: Option<[u8; 8]>, sampled: Option<bool>) -> Self {
        TraceContext {
            trace_id,
            parent_span_id: parent,
            sampled,
            span_id: new_span_id(),
            client_span_id: new_span_id(),
            recorded: sampled.unwrap_or(true),
        }
    }

    /// The `traceparent` the upstream receives: this trace, parented by the CLIENT span.
    pub fn traceparent(&self) -> String {
        String::from_utf8_lossy(&self.traceparent_bytes()).into_owned()
    }

    /// [`Self::traceparent`] without a heap allocation (it is built on every proxied request).
    pub fn traceparent_bytes(&self) -> [u8; 55] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut out[3..35], &self.trace_id);
        hex_into(&mut out[36..52], &self.client_span_id);
        if self.recorded {
            out[54] = b'1';
        }
        out
    }

    /// The trace id as 32 lowercase hex characters.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

/// Length of a version-00 `traceparent`: `vv-{32 hex}-{16 hex}-ff`.
const TRACEPARENT_LEN: usize = 55;

/// Parse `version-traceid-parentid-flags` (W3C Trace Context §3.2, levels 1 and 2).
///
/// Every field is lowercase hex of its exact length; version `ff` and all-zero ids are
/// invalid. Version `00` is exactly 55 characters. A higher (future) version is read by its
/// first 55 characters, which must be followed by the end or a `-` (§3.2.4): what a
/// later version appends is ignored. Works on the bytes, allocation-free (every request).
pub fn parse_traceparent(s: &str) -> Option<TraceContext> {
    let b = s.trim().as_bytes();
    if b.len() < TRACEPARENT_LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let [version] = unhex::<1>(&b[..2])?;
    let tail_ok = match version {
        0xff => false,
        0 => b.len() == TRACEPARENT_LEN,
        _ => b.len() == TRACEPARENT_LEN || b[TRACEPARENT_LEN] == b'-',
    };
    let trace_id: [u8; 16] = unhex(&b[3..35])?;
    let parent: [u8; 8] = unhex(&b[36..52])?;
    let [flags] = unhex::<1>(&b[53..55])?;
    if !tail_ok || trace_id == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some(TraceContext::continued(
        trace_id,
        Some(parent),
        Some(flags & 1 == 1),
    ))
}

/// Most list-members a `tracestate` may carry (W3C Trace Context §3.3.1.1).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// Whether `list` is a valid `tracestate` value (W3C Trace Context level 2, §3.3.1).
///
/// Empty and whitespace-only members are allowed (they appear when several header lines
/// are combined) and do not count toward the 32-member limit. A key is `(lcalpha / DIGIT)
/// 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")` (level 2, which accepts every
/// level-1 key); a value is 1 to 256 printable ASCII characters other than `,` and `=`,
/// not ending in a space. Allocation-free (every request that has the header).
pub fn valid_tracestate(list: &[u8]) -> bool {
    let mut members = 0;
    for member in list.split(|&c| c == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        members += 1;
        let valid = member
            .iter()
            .position(|&c| c == b'=')
            .is_some_and(|eq| valid_key(&member[..eq]) && valid_value(&member[eq + 1..]));
        if !valid || members > TRACESTATE_MAX_MEMBERS {
            return false;
        }
    }
    true
}

/// Without the spaces and tabs (HTTP's optional whitespace) around it.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn valid_key(key: &[u8]) -> bool {
    let lower_or_digit = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    matches!(key.first(), Some(c) if lower_or_digit(c))
        && key.len() <= 256
        && key
            .iter()
            .all(|c| lower_or_digit(c) || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@'))
}

fn valid_value(value: &[u8]) -> bool {
    // A trailing space was already trimmed as whitespace around the member.
    !value.is_empty()
        && value.len() <= 256
        && value
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

/// A random, non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    fastrand::u64(1..).to_be_bytes()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// Write lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[(b >> 4) as usize];
        pair[1] = HEX[(b & 0xf) as usize];
    }
}

/// Lowercase hex only, as the spec requires: `N` bytes from exactly `2 * N` digits.
fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (b, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *b = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparent_is_continued() {
        let t =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.sampled, Some(true));
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn invalid_traceparents_are_rejected() {
        for s in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0z-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "+0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        ] {
            assert!(parse_traceparent(s).is_none(), "{s}");
        }
    }

    #[test]
    fn future_versions_are_read_by_their_first_55_characters() {
        for s in [
            format!("01-{TRACE}-00f067aa0ba902b7-01"),
            format!("01-{TRACE}-00f067aa0ba902b7-09-future"),
            format!("fe-{TRACE}-00f067aa0ba902b7-01-"),
        ] {
            let t = parse_traceparent(&s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(t.trace_id_hex(), TRACE);
            assert_eq!(t.sampled, Some(true), "{s}");
        }
        let t = parse_traceparent(&format!("cc-{TRACE}-00f067aa0ba902b7-fe-x")).unwrap();
        assert_eq!(t.sampled, Some(false), "unknown flags are ignored");
    }

    #[test]
    fn tracestate_lists_follow_the_grammar() {
        let ok = [
            "",
            "congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            " a=1 ,\tb=2\t, ,, ",
            "0tenant@vendor=x,a_-*/b=v a l,k=~!\"#$%&'()*+-./:;<>?@[]^_`{|}",
        ];
        for s in ok {
            assert!(valid_tracestate(s.as_bytes()), "{s:?}");
        }
        let bad = [
            "a", "=1", "a=", "A=1", "_a=1", "a b=1", "a=1=2", "a=\t1", "a=\u{e9}",
        ];
        for s in bad {
            assert!(!valid_tracestate(s.as_bytes()), "{s:?}");
        }
        let members = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        assert!(valid_tracestate(members(32).join(",").as_bytes()));
        assert!(valid_tracestate(members(32).join(",,").as_bytes()));
        assert!(!valid_tracestate(members(33).join(",").as_bytes()));
        let long = format!("{}={}", "k".repeat(256), "v".repeat(256));
        assert!(valid_tracestate(long.as_bytes()));
        assert!(!valid_tracestate(format!("k{long}").as_bytes()));
        assert!(!valid_tracestate(format!("{long}v").as_bytes()));
    }

    #[test]
    fn new_roots_are_random_and_nonzero() {
        let (a, b) = (TraceContext::new_root(), TraceContext::new_root());
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.trace_id, [0; 16]);
        assert_ne!(a.span_id, [0; 8]);
        assert_ne!(a.span_id, a.client_span_id);
    }

    #[test]
    fn traceparent_sent_upstream_names_the_client_span() {
        let mut t =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let sent = t.traceparent();
        let span = hex(&t.client_span_id);
        assert_eq!(
            sent,
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span}-01")
        );
        let back = parse_traceparent(&sent).unwrap();
        assert_eq!(back.parent_span_id, Some(t.client_span_id));
        t.recorded = false;
        assert!(t.traceparent().ends_with("-00"));
    }
}

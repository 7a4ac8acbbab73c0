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

/// Parse `version-traceid-parentid-flags` (W3C Trace Context §3.2), rejecting all-zero ids
/// and the forbidden version `ff`; unknown future versions are read by their first four fields.
pub fn parse_traceparent(s: &str) -> Option<TraceContext> {
    let mut parts = s.trim().split('-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version.eq_ignore_ascii_case("ff")
        || (version == "00" && parts.next().is_some())
    {
        return None;
    }
    let trace_id: [u8; 16] = unhex(trace)?;
    let parent: [u8; 8] = unhex(parent)?;
    let flags: [u8; 1] = unhex(flags)?;
    if trace_id == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some(TraceContext::continued(
        trace_id,
        Some(parent),
        Some(flags[0] & 1 == 1),
    ))
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

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Lowercase only, as the spec requires.
    if s.len() != N * 2
        || !s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
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

    #[test]
    fn invalid_traceparents_are_rejected() {
        for s in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(s).is_none(), "{s}");
        }
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future")
                .is_some()
        );
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

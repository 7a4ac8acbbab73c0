//! `OTEL_PROPAGATORS`: which headers carry the trace in (extract) and out to the upstream (inject).
//!
//! W3C `traceparent`/`tracestate` (`tracecontext`), `baggage` (passed through
//! untouched, as every header is), Zipkin B3 single (`b3`) and multi-header
//! (`b3multi`) forms, or `none`. As in the OpenTelemetry composite propagator,
//! each configured format is tried in order and the last one that finds a
//! context wins; every configured format is injected.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::trace::{TraceContext, hex, parse_traceparent, valid_tracestate};

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
static B3: HeaderName = HeaderName::from_static("b3");
static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// One trace header format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// W3C Trace Context.
    TraceContext,
    /// W3C Baggage: nothing to do for a proxy, the header is forwarded as is.
    Baggage,
    /// Zipkin B3, injected as the single `b3` header.
    B3,
    /// Zipkin B3, injected as the `X-B3-*` headers.
    B3Multi,
}

/// The configured formats, in `OTEL_PROPAGATORS` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagators {
    formats: Vec<Format>,
}

impl Default for Propagators {
    /// `tracecontext,baggage`, the specification's default.
    fn default() -> Self {
        Propagators {
            formats: vec![Format::TraceContext, Format::Baggage],
        }
    }
}

/// The caller's span, as some incoming header described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    /// Trace id (a 64-bit B3 id is left-padded with zeros).
    pub trace_id: [u8; 16],
    /// The caller's span id.
    pub span_id: [u8; 8],
    /// The caller's sampling decision, when it sent one.
    pub sampled: Option<bool>,
    /// Whether this came from a valid `traceparent`, so `tracestate` belongs with it.
    pub from_traceparent: bool,
}

impl Propagators {
    /// Parse an `OTEL_PROPAGATORS` value; unsupported names are reported in `warnings` and skipped.
    pub fn parse(value: &str, warnings: &mut Vec<String>) -> Propagators {
        let names: Vec<String> = value
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().any(|n| n == "none") {
            if names.len() > 1 {
                warnings.push(format!(
                    "OTEL_PROPAGATORS={value:?} mixes `none` with other propagators; using none"
                ));
            }
            return Propagators {
                formats: Vec::new(),
            };
        }
        let mut formats = Vec::new();
        for name in &names {
            let format = match name.as_str() {
                "tracecontext" => Format::TraceContext,
                "baggage" => Format::Baggage,
                "b3" => Format::B3,
                "b3multi" => Format::B3Multi,
                other => {
                    warnings.push(format!(
                        "OTEL_PROPAGATORS: {other:?} is not supported (use tracecontext, baggage, b3, b3multi or none); ignored"
                    ));
                    continue;
                }
            };
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        Propagators { formats }
    }

    /// The configured formats, in order.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    /// The `OTEL_PROPAGATORS` spelling, for the start-up log line.
    pub fn describe(&self) -> String {
        if self.formats.is_empty() {
            return "none".into();
        }
        let names: Vec<&str> = self
            .formats
            .iter()
            .map(|f| match f {
                Format::TraceContext => "tracecontext",
                Format::Baggage => "baggage",
                Format::B3 => "b3",
                Format::B3Multi => "b3multi",
            })
            .collect();
        names.join(",")
    }

    /// The caller's span from the incoming headers; the last format that finds one wins.
    pub fn extract(&self, headers: &HeaderMap) -> Option<Remote> {
        let mut found = None;
        for format in &self.formats {
            let remote = match format {
                Format::TraceContext => extract_traceparent(headers),
                // Both B3 propagators read both encodings, the single header first (OTel B3 spec).
                Format::B3 | Format::B3Multi => {
                    extract_b3_single(headers).or_else(|| extract_b3_multi(headers))
                }
                Format::Baggage => None,
            };
            if remote.is_some() {
                found = remote;
            }
        }
        found
    }

    /// Write the trace into the upstream request's headers, parented by Redline's CLIENT span.
    ///
    /// `tracestate` (see [`tracestate`]) is forwarded when the trace continues the
    /// caller's `traceparent`, and removed when Redline started a new trace (W3C §3.3).
    pub fn inject(
        &self,
        headers: &mut HeaderMap,
        trace: &TraceContext,
        tracestate: Option<&HeaderValue>,
    ) {
        for format in &self.formats {
            match format {
                Format::TraceContext => inject_traceparent(headers, trace, tracestate),
                Format::B3 => {
                    let b3 = format!(
                        "{}-{}-{}",
                        hex(&trace.trace_id),
                        hex(&trace.client_span_id),
                        if trace.recorded { "1" } else { "0" }
                    );
                    insert(headers, &B3, &b3);
                }
                Format::B3Multi => inject_b3_multi(headers, trace),
                Format::Baggage => {}
            }
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    // Hex digits and dashes are always a valid header value.
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), v);
    }
}

fn inject_traceparent(
    headers: &mut HeaderMap,
    trace: &TraceContext,
    tracestate: Option<&HeaderValue>,
) {
    if let Ok(v) = HeaderValue::from_bytes(&trace.traceparent_bytes()) {
        headers.insert(TRACEPARENT.clone(), v);
    }
    match tracestate {
        Some(state) => {
            headers.insert(TRACESTATE.clone(), state.clone());
        }
        None => {
            headers.remove(&TRACESTATE);
        }
    }
}

fn inject_b3_multi(headers: &mut HeaderMap, trace: &TraceContext) {
    insert(headers, &B3_TRACE_ID, &hex(&trace.trace_id));
    insert(headers, &B3_SPAN_ID, &hex(&trace.client_span_id));
    insert(headers, &B3_SAMPLED, if trace.recorded { "1" } else { "0" });
    // The caller's values describe the previous hop, not Redline's span.
    headers.remove(&B3_PARENT_SPAN_ID);
    headers.remove(&B3_FLAGS);
}

/// The incoming `tracestate`, when it belongs to the trace being continued and is valid.
///
/// Several `tracestate` lines are one list (RFC 9110 §5.3, W3C Trace Context §3.3.1):
/// they are joined with `,` and forwarded as one line. A list that breaks the grammar or
/// has more than 32 members is dropped whole (the `traceparent` is still continued), as
/// the spec asks of a vendor that cannot parse it. One line, the usual case, is checked
/// and shared, not copied.
pub fn tracestate(headers: &HeaderMap, remote: Option<&Remote>) -> Option<HeaderValue> {
    if !remote.is_some_and(|r| r.from_traceparent) {
        return None;
    }
    let mut lines = headers.get_all(&TRACESTATE).iter();
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return valid_tracestate(first.as_bytes()).then(|| first.clone());
    };
    let mut joined = Vec::with_capacity(first.len() + second.len() + 1);
    joined.extend_from_slice(first.as_bytes());
    for line in std::iter::once(second).chain(lines) {
        joined.push(b',');
        joined.extend_from_slice(line.as_bytes());
    }
    if !valid_tracestate(&joined) {
        return None;
    }
    HeaderValue::from_bytes(&joined).ok()
}

fn extract_traceparent(headers: &HeaderMap) -> Option<Remote> {
    let value = headers.get(&TRACEPARENT)?.to_str().ok()?;
    let t = parse_traceparent(value)?;
    Some(Remote {
        trace_id: t.trace_id,
        span_id: t.parent_span_id?,
        sampled: t.sampled,
        from_traceparent: true,
    })
}

/// `b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]`; a lone `0`/`1`/`d` carries no ids.
fn extract_b3_single(headers: &HeaderMap) -> Option<Remote> {
    let value = headers.get(&B3)?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let trace_id = b3_trace_id(parts.next()?)?;
    let span_id = b3_span_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => None,
        Some(flag) => Some(b3_sampled(flag)?),
    };
    Some(Remote {
        trace_id,
        span_id,
        sampled,
        from_traceparent: false,
    })
}

fn extract_b3_multi(headers: &HeaderMap) -> Option<Remote> {
    let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let trace_id = b3_trace_id(get(&B3_TRACE_ID)?)?;
    let span_id = b3_span_id(get(&B3_SPAN_ID)?)?;
    let debug = get(&B3_FLAGS).is_some_and(|f| f.trim() == "1");
    let sampled = if debug {
        Some(true)
    } else {
        match get(&B3_SAMPLED) {
            None => None,
            Some(v) => Some(b3_sampled(v)?),
        }
    };
    Some(Remote {
        trace_id,
        span_id,
        sampled,
        from_traceparent: false,
    })
}

fn b3_sampled(flag: &str) -> Option<bool> {
    match flag.trim().to_ascii_lowercase().as_str() {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// 32 or 16 hex digits; a 64-bit id is left-padded to 128 bits as the B3 spec says.
fn b3_trace_id(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    let bytes: [u8; 16] = match s.len() {
        32 => unhex(s)?,
        16 => {
            let low: [u8; 8] = unhex(s)?;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&low);
            id
        }
        _ => return None,
    };
    (bytes != [0; 16]).then_some(bytes)
}

fn b3_span_id(s: &str) -> Option<[u8; 8]> {
    let id: [u8; 8] = unhex(s.trim())?;
    (id != [0; 8]).then_some(id)
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
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

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn parse(s: &str) -> (Propagators, Vec<String>) {
        let mut w = Vec::new();
        (Propagators::parse(s, &mut w), w)
    }

    #[test]
    fn parse_keeps_order_and_reports_unsupported_names() {
        let (p, w) = parse("b3multi, TraceContext,jaeger");
        assert_eq!(p.formats(), &[Format::B3Multi, Format::TraceContext]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(parse("none").0.formats(), &[]);
        assert_eq!(parse("none,b3").0.describe(), "none");
        assert_eq!(Propagators::default().describe(), "tracecontext,baggage");
    }

    #[test]
    fn tracecontext_round_trip_keeps_trace_and_tracestate() {
        let h = headers(&[
            ("traceparent", TP),
            ("tracestate", "congo=t61rcWkgMzE,rojo=1"),
        ]);
        let p = Propagators::default();
        let remote = p.extract(&h).unwrap();
        assert_eq!(hex(&remote.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&remote.span_id), "00f067aa0ba902b7");
        let state = tracestate(&h, Some(&remote));
        let trace = TraceContext::continued(remote.trace_id, Some(remote.span_id), remote.sampled);
        let mut out = h.clone();
        p.inject(&mut out, &trace, state.as_ref());
        assert_eq!(out["traceparent"], trace.traceparent());
        assert_eq!(out["tracestate"], "congo=t61rcWkgMzE,rojo=1");
    }

    #[test]
    fn several_tracestate_lines_are_one_list_and_an_invalid_list_is_dropped() {
        let p = Propagators::default();
        let state = |lines: &[&str]| {
            let mut pairs = vec![("traceparent", TP)];
            pairs.extend(lines.iter().map(|l| ("tracestate", *l)));
            let h = headers(&pairs);
            let remote = p.extract(&h).expect("the traceparent is continued");
            tracestate(&h, Some(&remote))
        };
        assert_eq!(state(&["a=1", "b=2, c=3"]).unwrap(), "a=1,b=2, c=3");
        assert_eq!(state(&["a=1", ""]).unwrap(), "a=1,");
        assert_eq!(state(&["a=1"]).unwrap(), "a=1");
        assert_eq!(state(&[]), None);
        assert_eq!(
            state(&["a=1", "B=2"]),
            None,
            "one bad member spoils the list"
        );
        assert_eq!(state(&["a"]), None);
        let many: Vec<String> = (0..17).map(|i| format!("k{i}=v,j{i}=w")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(state(&many), None, "34 members across lines");
        assert!(state(&many[..16]).is_some(), "32 members");
        let mut out = HeaderMap::new();
        let trace = TraceContext::new_root();
        p.inject(&mut out, &trace, state(&["a=1", "b=2"]).as_ref());
        assert_eq!(out.get_all("tracestate").iter().count(), 1);
    }

    #[test]
    fn a_new_trace_drops_a_stale_tracestate() {
        let h = headers(&[("traceparent", "garbage"), ("tracestate", "a=1")]);
        let p = Propagators::default();
        assert!(p.extract(&h).is_none());
        let mut out = h.clone();
        p.inject(
            &mut out,
            &TraceContext::new_root(),
            tracestate(&h, None).as_ref(),
        );
        assert!(out.get("tracestate").is_none());
    }

    #[test]
    fn b3_single_header_is_read_and_written() {
        let (p, _) = parse("b3");
        let h = headers(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]);
        let r = p.extract(&h).unwrap();
        assert_eq!(hex(&r.trace_id), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(hex(&r.span_id), "e457b5a2e4d86bd1");
        assert_eq!(r.sampled, Some(true));
        let short = headers(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]);
        let r = p.extract(&short).unwrap();
        assert_eq!(hex(&r.trace_id), "000000000000000064fe8b2a57d3eff7");
        assert_eq!(r.sampled, Some(false));
        for bad in [
            "1",
            "d",
            "0",
            "xyz-e457b5a2e4d86bd1",
            "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000",
        ] {
            assert!(p.extract(&headers(&[("b3", bad)])).is_none(), "{bad}");
        }
        let trace = TraceContext::continued(r.trace_id, Some(r.span_id), Some(true));
        let mut out = HeaderMap::new();
        p.inject(&mut out, &trace, None);
        assert_eq!(
            out["b3"],
            format!(
                "000000000000000064fe8b2a57d3eff7-{}-1",
                hex(&trace.client_span_id)
            )
            .as_str()
        );
        assert!(out.get("traceparent").is_none());
    }

    #[test]
    fn b3_multi_headers_are_read_and_written() {
        let (p, _) = parse("b3multi");
        let h = headers(&[
            ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("X-B3-SpanId", "e457b5a2e4d86bd1"),
            ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"),
            ("X-B3-Flags", "1"),
        ]);
        let r = p.extract(&h).unwrap();
        assert_eq!(r.sampled, Some(true), "debug flag means sampled");
        let mut trace = TraceContext::continued(r.trace_id, Some(r.span_id), r.sampled);
        trace.recorded = false;
        let mut out = h.clone();
        p.inject(&mut out, &trace, None);
        assert_eq!(out["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(out["x-b3-spanid"], hex(&trace.client_span_id).as_str());
        assert_eq!(out["x-b3-sampled"], "0");
        assert!(out.get("x-b3-parentspanid").is_none());
        assert!(out.get("x-b3-flags").is_none());
    }

    #[test]
    fn the_last_format_that_finds_a_context_wins() {
        let h = headers(&[
            ("traceparent", TP),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ]);
        let (p, _) = parse("tracecontext,b3");
        assert_eq!(
            hex(&p.extract(&h).unwrap().trace_id),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        let (p, _) = parse("b3,tracecontext");
        assert_eq!(
            hex(&p.extract(&h).unwrap().trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn none_neither_reads_nor_writes() {
        let (p, _) = parse("none");
        let h = headers(&[("traceparent", TP)]);
        assert!(p.extract(&h).is_none());
        let mut out = h.clone();
        p.inject(&mut out, &TraceContext::new_root(), None);
        assert_eq!(out, h);
    }
}

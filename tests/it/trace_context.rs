//! Oracle: Redline's W3C trace-context extraction against the OpenTelemetry SDK's `TraceContextPropagator`.
//!
//! A proptest strategy generates a `traceparent` (valid ones of version `00` and of future
//! versions, some with an appended suffix, and hostile mutations of them: uppercase, a
//! character replaced, a field shortened or signed, `ff`/`zz`/one- or three-digit versions,
//! all-zero ids, a trailing `-`, whitespace around; plus arbitrary text) and zero to three
//! `tracestate` lines (valid members, and hostile ones: empty keys or values, uppercase
//! keys, tabs, `@` keys, more than 32 members). Redline's side is what the proxy does:
//! `Propagators::default().extract` and `propagation::tracestate` on a `HeaderMap`. The
//! SDK's side is `TraceContextPropagator::extract` over the same headers, its `tracestate`
//! given as the lines joined with `,` (RFC 9110 §5.3; the SDK's own `HeaderExtractor` in
//! `opentelemetry-http` reads only the first line, which is the slip this repo fixed).
//!
//! Property: both continue the same trace (trace id, parent span id, sampled flag) or both
//! start a new one, and both keep the same `tracestate` members in the same order (or
//! none), except where the SDK departs from the W3C Trace Context specification. Those
//! cases must be explained by one of the documented differences below, and there Redline
//! must give the spec's answer (the test fails on any unexplained disagreement):
//!
//! `traceparent` (all: the SDK accepts what the spec refuses; Redline refuses):
//! * `Field`: a field of the wrong length or with a sign (`0-…`, `000-…`, a 31-digit trace
//!   id, flags `1` or `+1`): the SDK parses fields with `u8/u64/u128::from_str_radix`, which
//!   takes any length up to the type and a leading `+`. The spec fixes every length.
//! * `UpperVersion`: an uppercase version (`0A-…`): the SDK checks trace id, span id and
//!   flags for uppercase, not the version. The spec: lowercase hex only.
//! * `Version00Tail`: version `00` followed by `-` (`…-01-`): the SDK splits with
//!   `split_terminator`, which drops a trailing empty field. The spec: version 00 is
//!   exactly 55 characters.
//!
//! `tracestate` (W3C Trace Context level 2 §3.3.1):
//! * `TooMany`: more than 32 members: the SDK keeps the first 32 and drops the rest
//!   silently; the spec's `list` has at most 32 members, so Redline drops the header (and
//!   keeps the `traceparent`).
//! * `Pieces`: more than 32 comma-separated pieces, counting empty ones: the SDK reads only
//!   the first 32 pieces, so it loses members after them and never checks them. The spec
//!   counts only non-empty members (empty ones appear when lines are combined), so Redline
//!   keeps or refuses the whole list; the SDK's answer must be its answer for the first 32
//!   pieces.
//! * `EmptyValue` / `EmptyKey`: `a=` and `=v`: the SDK accepts an empty value or key; the
//!   spec's `value` and `key` have at least one character.
//! * `TabInValue`: a tab inside a value: the SDK only refuses `,` and `=`; the spec allows
//!   printable ASCII and space.
//! * `TenantKey`: keys with `@`: the SDK applies level 1's multi-tenant rules (one `@`, a
//!   lowercase letter or digit after it, and at most 13 characters after it where level 1
//!   allowed 14); level 2 allows `@` anywhere after the first character. Here the SDK is
//!   the stricter one and drops the whole list; Redline forwards it.
//!
//! `PROPTEST_CASES` overrides the default of 2,000 cases (well under a second). Recorded run:
//! `PROPTEST_CASES=30000 cargo test --test it trace_context`, debug build, 2 shared cores:
//! 9.6 s, no unexplained difference. The slips fixed on this branch (a `zz` version was
//! continued, only the first `tracestate` line was forwarded) are pinned by the examples in
//! `the_documented_differences_are_real`.

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use proptest::prelude::*;
use redline::telemetry::propagation::{self, Propagators};

/// What a side made of the headers: the continued trace and the kept `tracestate` members.
#[derive(Debug, PartialEq, Eq)]
struct Extracted {
    trace: Option<([u8; 16], [u8; 8], bool)>,
    tracestate: Vec<String>,
}

/// The `tracestate` members as the SDK prints them: trimmed, empty ones left out.
fn members(list: &str) -> Vec<String> {
    list.split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

fn redline(headers: &HeaderMap) -> Extracted {
    let remote = Propagators::default().extract(headers);
    let state = propagation::tracestate(headers, remote.as_ref());
    Extracted {
        trace: remote.map(|r| (r.trace_id, r.span_id, r.sampled.unwrap_or(false))),
        tracestate: state
            .map(|s| members(s.to_str().expect("forwarded tracestate is ASCII")))
            .unwrap_or_default(),
    }
}

/// The SDK reads headers through this: the first `traceparent`, all `tracestate` lines joined.
struct Joined<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<String>,
}

impl Extractor for Joined<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

fn sdk(headers: &HeaderMap) -> Extracted {
    let lines: Vec<&str> = headers
        .get_all("tracestate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let carrier = Joined {
        traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()),
        tracestate: (!lines.is_empty()).then(|| lines.join(",")),
    };
    let cx = TraceContextPropagator::new().extract(&carrier);
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return Extracted {
            trace: None,
            tracestate: Vec::new(),
        };
    }
    Extracted {
        trace: Some((
            sc.trace_id().to_bytes(),
            sc.span_id().to_bytes(),
            sc.is_sampled(),
        )),
        tracestate: members(&sc.trace_state().header()),
    }
}

/// A documented place where the SDK departs from the W3C spec (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Field,
    UpperVersion,
    Version00Tail,
    TooMany,
    Pieces,
    EmptyValue,
    EmptyKey,
    TabInValue,
    TenantKey,
}

/// The `traceparent` differences that apply to `tp`.
fn traceparent_differences(tp: &str) -> Vec<Known> {
    let tp = tp.trim();
    let parts: Vec<&str> = tp.split('-').collect();
    let mut found = Vec::new();
    let lengths = [2, 32, 16, 2];
    if parts.len() < 4
        || parts
            .iter()
            .zip(lengths)
            .any(|(p, n)| p.len() != n || p.starts_with('+'))
    {
        found.push(Known::Field);
    }
    if parts[0].bytes().any(|c| c.is_ascii_uppercase()) {
        found.push(Known::UpperVersion);
    }
    if parts[0] == "00" && tp.len() > 55 {
        found.push(Known::Version00Tail);
    }
    found
}

/// The `tracestate` differences that apply to the joined list.
fn tracestate_differences(list: &str) -> Vec<Known> {
    let mut found = Vec::new();
    if list.split_terminator(',').count() > 32 {
        found.push(Known::Pieces);
    }
    if members(list).len() > 32 {
        found.push(Known::TooMany);
    }
    for m in members(list) {
        let (key, value) = m.split_once('=').unwrap_or((&m, "x"));
        if value.is_empty() {
            found.push(Known::EmptyValue);
        }
        if key.is_empty() {
            found.push(Known::EmptyKey);
        }
        if value.contains('\t') {
            found.push(Known::TabInValue);
        }
        if key.contains('@') {
            found.push(Known::TenantKey);
        }
    }
    found
}

/// Where the sides differ, check the difference is a documented one and Redline follows the spec.
fn judge(headers: &HeaderMap) -> Result<(), TestCaseError> {
    let (ours, theirs) = (redline(headers), sdk(headers));
    if ours == theirs {
        return Ok(());
    }
    let tp = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ours.trace != theirs.trace {
        let known = traceparent_differences(tp);
        prop_assert!(
            ours.trace.is_none() && !known.is_empty(),
            "traceparent {:?}: Redline {:?}, SDK {:?}, no documented difference explains it",
            tp,
            ours,
            theirs
        );
        return Ok(());
    }
    let lines: Vec<&str> = headers
        .get_all("tracestate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let list = lines.join(",");
    let known = tracestate_differences(&list);
    let refused_by_spec = |k: &Known| {
        matches!(
            k,
            Known::TooMany | Known::EmptyValue | Known::EmptyKey | Known::TabInValue
        )
    };
    let explained = if known.contains(&Known::Pieces) {
        let first: Vec<&str> = list.split_terminator(',').take(32).collect();
        let truncated = headers_with(tp, &[first.join(",")]);
        (ours.tracestate.is_empty() || ours.tracestate == members(&list))
            && sdk(&truncated).tracestate == theirs.tracestate
    } else if known.iter().any(refused_by_spec) {
        ours.tracestate.is_empty()
    } else {
        known.contains(&Known::TenantKey)
            && theirs.tracestate.is_empty()
            && ours.tracestate == members(&list)
    };
    prop_assert!(
        explained,
        "tracestate {:?}: Redline {:?}, SDK {:?}, differences {:?}",
        lines,
        ours.tracestate,
        theirs.tracestate,
        known
    );
    Ok(())
}

fn headers_with(traceparent: &str, tracestate: &[String]) -> HeaderMap {
    headers(traceparent, tracestate).expect("valid header values")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A valid `traceparent`, mostly version 00, sometimes a future version with a suffix.
fn valid_traceparent() -> impl Strategy<Value = String> {
    let id16 = prop_oneof![9 => any::<[u8; 16]>(), 1 => Just([0u8; 16])];
    let id8 = prop_oneof![9 => any::<[u8; 8]>(), 1 => Just([0u8; 8])];
    let version = prop_oneof![4 => Just(0u8), 1 => 1u8..=0xfe];
    let suffix = prop_oneof![3 => Just(String::new()), 1 => "-[ -~]{0,12}"];
    (version, id16, id8, any::<u8>(), suffix).prop_map(|(v, t, s, f, suffix)| {
        let suffix = if v == 0 { String::new() } else { suffix };
        format!("{v:02x}-{}-{}-{f:02x}{suffix}", hex(&t), hex(&s))
    })
}

/// One hostile change to a valid `traceparent`.
fn mutate(tp: String, how: u8, at: usize, with: char) -> String {
    let mut chars: Vec<char> = tp.chars().collect();
    let at = at % chars.len();
    match how % 10 {
        0 => chars[at] = chars[at].to_ascii_uppercase(),
        1 => chars[at] = with,
        2 => {
            chars.remove(at);
        }
        3 => chars.insert(at, with),
        4 => return format!("ff{}", &tp[2..]),
        5 => return format!("zz{}", &tp[2..]),
        6 => return format!("{}{}", ["0", "000", "+0", "0A", "A0"][at % 5], &tp[2..]),
        7 => return format!("{tp}-"),
        8 => return format!(" {tp}\t"),
        _ => return tp.replace('-', ["_", "--", " -"][at % 3]),
    }
    chars.into_iter().collect()
}

fn traceparent() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => valid_traceparent(),
        5 => (valid_traceparent(), any::<u8>(), any::<usize>(), proptest::char::range(' ', '~'))
            .prop_map(|(tp, how, at, with)| mutate(tp, how, at, with)),
        1 => "[ -~]{0,70}",
    ]
}

/// A `tracestate` list-member: mostly valid, sometimes one of the hostile shapes.
fn member() -> impl Strategy<Value = String> {
    let key = "[a-z0-9][a-z0-9_*/-]{0,8}";
    let value = "[!-+\\--<>-~][ !-+\\--<>-~]{0,10}[!-+\\--<>-~]";
    prop_oneof![
        12 => (key, value).prop_map(|(k, v)| format!("{k}={v}")),
        1 => (key, "[a-z][a-z0-9]{0,15}", value).prop_map(|(t, s, v)| format!("{t}@{s}={v}")),
        1 => "[a-z]{1,4}=".prop_map(String::from),
        1 => "=[a-z]{1,4}".prop_map(String::from),
        1 => "[A-Z_][a-z]{0,3}=v".prop_map(String::from),
        1 => "[a-z]{1,3}=a\tb".prop_map(String::from),
        1 => "[a-z]{1,4}".prop_map(String::from),
        1 => Just(String::new()),
        1 => Just(" ".to_string()),
    ]
}

fn tracestate_lines() -> impl Strategy<Value = Vec<String>> {
    let line = prop_oneof![
        8 => proptest::collection::vec(member(), 0..6).prop_map(|m| m.join(",")),
        1 => proptest::collection::vec(member(), 20..40).prop_map(|m| m.join(" , ")),
    ];
    proptest::collection::vec(line, 0..4)
}

fn headers(traceparent: &str, tracestate: &[String]) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_str(traceparent).ok()?);
    for line in tracestate {
        h.append("tracestate", HeaderValue::from_str(line).ok()?);
    }
    Some(h)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn extraction_agrees_with_the_sdk_or_a_documented_spec_difference(
        tp in traceparent(),
        lines in tracestate_lines(),
    ) {
        if let Some(h) = headers(&tp, &lines) {
            judge(&h)?;
        }
    }
}

/// Each documented difference, pinned by one example, so the list above stays true.
#[test]
fn the_documented_differences_are_real() {
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let differs = |tp: &str, lines: &[&str]| {
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let h = headers(tp, &lines).unwrap();
        judge(&h).unwrap();
        redline(&h) != sdk(&h)
    };
    for tp in [
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
    ] {
        assert!(differs(tp, &[]), "{tp}");
    }
    let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert!(differs(TP, &[&many.join(",")]), "33 members");
    for list in ["a=", "=v", "a=x\ty", "t@vendor_is_long=v", "a@b@c=v"] {
        assert!(differs(TP, &[list]), "{list}");
    }
    // And where the spec and the SDK agree, so does Redline: "zz" and "ff" versions too.
    for tp in [
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-follows",
    ] {
        assert!(!differs(tp, &["a=1", "b=2"]), "{tp}");
    }
}

/// The proxy itself, on both HTTP/1.1 engines: what the upstream receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_one_combined_tracestate_and_no_continued_bad_version() {
    use crate::support::{Redline, app, config_for, send};
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let up = app().await;
    for engine in ["fast", "hyper"] {
        let rl = Redline::start_with(
            &config_for(up, ""),
            &[],
            &[("REDLINE_HTTP1_ENGINE", engine)],
        );
        let upstream = |traceparent: &str, tracestate: &[&str]| {
            let mut req = http::Request::get(rl.url("/echo")).header("traceparent", traceparent);
            for line in tracestate {
                req = req.header("tracestate", *line);
            }
            let req = req
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            async move {
                let (status, _, body) = send(req).await;
                assert_eq!(status, 200, "{engine}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v["headers"].clone()
            }
        };
        let h = upstream(TP, &["a=1", "b=2,c=3"]).await;
        assert_eq!(
            h["traceparent"], TP,
            "{engine}: continued, caller stays parent"
        );
        assert_eq!(h["tracestate"], "a=1,b=2,c=3", "{engine}: lines joined");
        let h = upstream(TP, &["a=1", "Bad=2"]).await;
        assert_eq!(h["traceparent"], TP, "{engine}");
        assert!(
            h.get("tracestate").is_none(),
            "{engine}: invalid list dropped: {h}"
        );
        let zz = format!("zz{}", &TP[2..]);
        let h = upstream(&zz, &["a=1"]).await;
        let sent = h["traceparent"].as_str().unwrap();
        assert!(
            !sent.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{engine}: {sent}"
        );
        assert!(
            h.get("tracestate").is_none(),
            "{engine}: new trace, no tracestate"
        );
    }
}

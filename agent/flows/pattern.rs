//! Flow path patterns such as `POST /api/orders/{id}`: parsing, validation and display.
//!
//! Grammar: `[METHOD ]/path`, where the path is `/`-separated segments, each one of
//! - a literal, matched byte for byte against the raw (not percent-decoded) request path;
//!   it may be empty, so `/a//b` and the trailing slash of `/a/` are literal empty segments;
//! - `{name}`: exactly one non-empty segment;
//! - `{name...}`: everything after the preceding `/`, i.e. one or more segments that may
//!   be empty, so `/static/{p...}` matches `/static/` and `/static/a/b` but not `/static`.
//!   Only allowed as the last segment.
//!
//! Names match `[A-Za-z_][A-Za-z0-9_]*` and are unique within a pattern. The method is a
//! token of uppercase ASCII letters (`GET`, `PURGE`, …); without one the pattern matches every
//! method. A trailing slash is significant: `/api/x/` and `/api/x` are distinct routes,
//! as in Caddy and axum, because many apps serve different things at the two.

use std::fmt;
use std::str::FromStr;

/// One `/`-separated piece of a pattern's path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this raw text; may be empty.
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param(String),
    /// `{name...}`: the rest of the path (one or more segments, possibly empty); always last.
    Rest(String),
}

/// A parsed flow pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// `None` matches any method.
    pub method: Option<http::Method>,
    /// The path part as written, which becomes `http.route`, e.g. `/api/orders/{id}`.
    pub route: String,
    /// The path split on `/` (the leading `/` excluded), so `/` is one empty literal.
    pub segments: Vec<Segment>,
}

/// Why a pattern was rejected; the message quotes the pattern and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

impl Pattern {
    /// Parse `"[METHOD ]/path"`; surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let fail = |msg: String| PatternError(format!("invalid pattern {s:?}: {msg}"));
        let input = s.trim();
        if input.is_empty() {
            return Err(fail(
                "expected \"[METHOD ]/path\", e.g. \"GET /api/orders/{id}\", found an empty pattern"
                    .into(),
            ));
        }
        let (method, path) = if input.starts_with('/') {
            (None, input)
        } else {
            match input.split_once(char::is_whitespace) {
                Some((m, rest)) => (Some(parse_method(m).map_err(fail)?), rest.trim_start()),
                None if is_method_token(input) => {
                    return Err(fail(format!(
                        "expected a path starting with '/' after the method {input}"
                    )));
                }
                None => {
                    return Err(fail(format!(
                        "expected a path starting with '/', found {input:?}"
                    )));
                }
            }
        };
        if !path.starts_with('/') {
            return Err(fail(format!(
                "expected a path starting with '/' after the method, found {path:?}"
            )));
        }
        let segments = parse_path(path).map_err(fail)?;
        Ok(Pattern {
            method,
            route: path.to_string(),
            segments,
        })
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

/// Writes the canonical form `[METHOD ]route`, which parses back to an equal pattern.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(m) => write!(f, "{m} {}", self.route),
            None => f.write_str(&self.route),
        }
    }
}

fn is_method_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn parse_method(m: &str) -> Result<http::Method, String> {
    if !is_method_token(m) {
        return Err(format!(
            "expected an uppercase HTTP method such as GET or POST before the path, found {m:?}"
        ));
    }
    http::Method::from_bytes(m.as_bytes())
        .map_err(|_| format!("expected an HTTP method such as GET or POST, found {m:?}"))
}

fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    if let Some(c) = path.chars().find(|c| c.is_whitespace()) {
        return Err(format!(
            "expected no whitespace inside the path, found {c:?} in {path:?}"
        ));
    }
    if path.contains('?') {
        return Err(format!(
            "expected a path without a query string ('?'): the query is never matched, found {path:?}"
        ));
    }
    if path.contains('#') {
        return Err(format!(
            "expected a path without a fragment ('#'): clients never send it, found {path:?}"
        ));
    }
    if path.contains(';') {
        return Err(format!(
            "expected a path without path parameters (';'): requests are matched without them, found {path:?}"
        ));
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(format!(
            "expected printable characters in the path, found {c:?}"
        ));
    }
    let raw: Vec<&str> = path[1..].split('/').collect();
    let last = raw.len() - 1;
    let mut segments = Vec::with_capacity(raw.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, seg) in raw.iter().copied().enumerate() {
        if !seg.contains(['{', '}']) {
            segments.push(Segment::Literal(seg.to_string()));
            continue;
        }
        let inner = seg
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|s| !s.contains(['{', '}']))
            .ok_or_else(|| {
                format!(
                    "expected a parameter to fill a whole segment, like \"/{{name}}\", found {seg:?}"
                )
            })?;
        let (name, rest) = match inner.strip_suffix("...") {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if name.is_empty() {
            let example = if rest { "{path...}" } else { "{id}" };
            return Err(format!(
                "expected a parameter name inside {seg:?}, e.g. {example:?}"
            ));
        }
        if !is_valid_name(name) {
            return Err(format!(
                "expected a parameter name matching [A-Za-z_][A-Za-z0-9_]*, found {name:?}"
            ));
        }
        if names.contains(&name) {
            return Err(format!(
                "duplicate parameter name {name:?}: expected each name at most once"
            ));
        }
        names.push(name);
        if rest {
            if i != last {
                let after = raw[i + 1..].join("/");
                return Err(format!(
                    "expected {seg:?} to be the last segment, found \"/{after}\" after it"
                ));
            }
            segments.push(Segment::Rest(name.to_string()));
        } else {
            segments.push(Segment::Param(name.to_string()));
        }
    }
    Ok(segments)
}

fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }

    fn err(s: &str) -> String {
        Pattern::parse(s).expect_err(s).to_string()
    }

    #[test]
    fn parses_method_and_segments() {
        let p = Pattern::parse("GET /api/orders/{id}").unwrap();
        assert_eq!(p.method, Some(http::Method::GET));
        assert_eq!(p.route, "/api/orders/{id}");
        assert_eq!(
            p.segments,
            vec![lit("api"), lit("orders"), Segment::Param("id".into())]
        );
    }

    #[test]
    fn parses_without_method_and_rest() {
        let p: Pattern = "/static/{path...}".parse().unwrap();
        assert_eq!(p.method, None);
        assert_eq!(
            p.segments,
            vec![lit("static"), Segment::Rest("path".into())]
        );
        assert_eq!(p.to_string(), "/static/{path...}");
    }

    #[test]
    fn custom_method_and_extra_spaces() {
        let p = Pattern::parse("  PURGE   /cache/{key}  ").unwrap();
        assert_eq!(p.method.as_ref().map(|m| m.as_str()), Some("PURGE"));
        assert_eq!(p.route, "/cache/{key}");
        assert_eq!(p.to_string(), "PURGE /cache/{key}");
    }

    #[test]
    fn root_trailing_slash_and_empty_segments() {
        assert_eq!(Pattern::parse("/").unwrap().segments, vec![lit("")]);
        assert_eq!(
            Pattern::parse("/a/").unwrap().segments,
            vec![lit("a"), lit("")]
        );
        assert_eq!(
            Pattern::parse("/a//b").unwrap().segments,
            vec![lit("a"), lit(""), lit("b")]
        );
        assert_ne!(
            Pattern::parse("/a/").unwrap(),
            Pattern::parse("/a").unwrap()
        );
    }

    #[test]
    fn raw_percent_encoding_is_kept() {
        let p = Pattern::parse("/files/a%20b").unwrap();
        assert_eq!(p.segments[1], lit("a%20b"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["POST /api/checkout", "/", "/a/{b}/{c...}", "DELETE /x/"] {
            let p = Pattern::parse(s).unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(Pattern::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn rejects_with_expectations() {
        let cases = [
            ("", "found an empty pattern"),
            ("   ", "expected \"[METHOD ]/path\""),
            ("api/x", "expected a path starting with '/'"),
            (
                "GET",
                "expected a path starting with '/' after the method GET",
            ),
            (
                "GET api/x",
                "expected a path starting with '/' after the method",
            ),
            ("get /x", "expected an uppercase HTTP method"),
            ("G3T /x", "expected an uppercase HTTP method"),
            ("/a/{}", "expected a parameter name inside \"{}\""),
            ("/a/{...}", "expected a parameter name inside \"{...}\""),
            ("/{a...}/b", "expected \"{a...}\" to be the last segment"),
            ("/a{b}", "expected a parameter to fill a whole segment"),
            ("/{b}.json", "expected a parameter to fill a whole segment"),
            ("/{a{b}}", "expected a parameter to fill a whole segment"),
            ("/a/}", "expected a parameter to fill a whole segment"),
            ("/{1x}", "expected a parameter name matching"),
            ("/{a-b}", "expected a parameter name matching"),
            ("/{id}/x/{id}", "duplicate parameter name \"id\""),
            ("/{id}/{id...}", "duplicate parameter name \"id\""),
            ("/a b", "expected no whitespace inside the path"),
            ("GET /a\tb", "expected no whitespace inside the path"),
            ("/a?b=1", "expected a path without a query string"),
            ("/a#top", "expected a path without a fragment"),
            ("/cart;v=1", "expected a path without path parameters (';')"),
        ];
        for (input, want) in cases {
            let msg = err(input);
            assert!(msg.contains(want), "{input:?}: {msg:?} lacks {want:?}");
            assert!(msg.starts_with("invalid pattern"), "{msg}");
        }
    }

    #[test]
    fn error_quotes_the_pattern() {
        assert_eq!(
            err("/a{b}"),
            "invalid pattern \"/a{b}\": expected a parameter to fill a whole segment, \
             like \"/{name}\", found \"a{b}\""
        );
    }
}

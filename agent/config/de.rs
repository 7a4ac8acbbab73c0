//! Serde glue that parses scalars inside the visitor, so yaml_serde pins errors to the value.
//!
//! An error created after `deserialize_str` returns would be reported at the enclosing
//! mapping; one returned from `visit_str` carries the line and column of the scalar itself.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

use super::units::{parse_duration, parse_listen, parse_positive_duration, parse_size};

/// A string parser plugged into serde; also usable as a seed for sequence elements.
pub(super) struct Parse<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Parse<T> {
    pub(super) const fn new(expecting: &'static str, parse: fn(&str) -> Result<T, String>) -> Self {
        Parse { expecting, parse }
    }

    /// Deserialize one scalar with this parser.
    pub(super) fn one<'de, D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_str(self)
    }

    /// Deserialize an optional scalar; YAML `null`/`~` is `None`.
    pub(super) fn optional<'de, D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_option(Optional(self))
    }

    /// Deserialize a list of scalars.
    pub(super) fn list<'de, D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(List(self))
    }
}

impl<T> Clone for Parse<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Parse<T> {}

impl<'de, T> Visitor<'de> for Parse<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

impl<'de, T> DeserializeSeed<'de> for Parse<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_str(self)
    }
}

struct Optional<T>(Parse<T>);

impl<'de, T> Visitor<'de> for Optional<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0.expecting)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_str(self.0).map(Some)
    }
}

struct List<T>(Parse<T>);

impl<'de, T> Visitor<'de> for List<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of {}", self.0.expecting)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(self.0)? {
            out.push(item);
        }
        Ok(out)
    }
}

/// One scalar or a non-empty list of scalars, e.g. a flow's `match`.
pub(super) struct OneOrMany<T> {
    pub(super) item: Parse<T>,
    /// Noun for the "at least one" error, e.g. "pattern".
    pub(super) noun: &'static str,
}

impl<'de, T> Visitor<'de> for OneOrMany<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} or a list of them", self.item.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
        self.item.visit_str(v).map(|one| vec![one])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
        let all = List(self.item).visit_seq(seq)?;
        if all.is_empty() {
            return Err(de::Error::custom(format!(
                "at least one {} is required",
                self.noun
            )));
        }
        Ok(all)
    }
}

const DURATION: &str = "a duration such as 250ms, 5s, 1m or 4h";

/// Any duration, zero included.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Parse::new(DURATION, parse_duration).one(d)
}

/// A duration greater than zero.
pub(super) fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Parse::new(DURATION, parse_positive_duration).one(d)
}

/// An optional duration greater than zero.
pub(super) fn opt_positive_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    Parse::new(DURATION, parse_positive_duration).optional(d)
}

/// A listen address.
pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    Parse::new("an address such as 0.0.0.0:8080", parse_listen).one(d)
}

/// A byte size.
pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Parse::new("a size such as 65536 or 64KiB", parse_header_limit).one(d)
}

/// hyper refuses header buffers under 8 KiB (it panics), so the floor is checked here.
fn parse_header_limit(s: &str) -> Result<usize, String> {
    const FLOOR: usize = 8 << 10;
    const CEILING: usize = 16 << 20;
    let n = parse_size(s)?;
    if !(FLOOR..=CEILING).contains(&n) {
        return Err(format!("{n} bytes is out of range; use 8KiB to 16MiB"));
    }
    Ok(n)
}

/// A non-empty string.
pub(super) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Parse::new("a non-empty string", |s| {
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(s.to_string())
    })
    .one(d)
}

/// An environment variable name, checked so a typo such as `$FOO` fails at load time.
pub(super) fn opt_env_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Parse::new("an environment variable name", parse_env_name).optional(d)
}

fn parse_env_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(s.to_string());
    }
    Err(format!(
        "invalid environment variable name {s:?}; expected letters, digits and _ (e.g. SLACK_WEBHOOK_URL)"
    ))
}

/// An absolute `http://` or `https://` URL with a host.
pub(super) fn parse_http_url(s: &str) -> Result<String, String> {
    let text = s.trim();
    let bad = || format!("invalid URL {text:?}; expected http://HOST[:PORT][/PATH] or https://…");
    let uri: http::Uri = text.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok {
        return Err(bad());
    }
    Ok(text.to_string())
}

/// An optional http(s) URL.
pub(super) fn opt_http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Parse::new("an http(s) URL", parse_http_url).optional(d)
}

/// A list of http(s) URLs.
pub(super) fn http_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Parse::new("an http(s) URL", parse_http_url).list(d)
}

/// An http(s) URL.
pub(super) fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Parse::new("an http(s) URL", parse_http_url).one(d)
}

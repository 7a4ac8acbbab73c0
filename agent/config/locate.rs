//! Positions of YAML nodes for checks that serde alone cannot pin down: locating a node by
//! path after deserialization, and finding repeated keys.
//!
//! yaml_serde keeps no spans, but it does stamp a position on any error raised while a node
//! is being visited. So the source is walked again and an error is raised on purpose at the
//! wanted node; its location is the answer.

use std::collections::HashSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step into the document: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step<'a> {
    /// Value of this key in a mapping.
    Key(&'a str),
    /// Element at this index in a sequence.
    Index(usize),
}

/// 1-based (line, column) of the node at `path`, or of the deepest node on the way when the
/// path goes further than the document does. `None` only if the text does not parse.
pub(super) fn locate(text: &str, path: &[Step<'_>]) -> Option<(usize, usize)> {
    let de = yaml_serde::Deserializer::from_str(text);
    match Seek(path).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| (l.line(), l.column())),
    }
}

/// Walks to the target and fails there; returns `Ok` when the target does not exist.
struct Seek<'p, 'a>(&'p [Step<'a>]);

impl<'de> DeserializeSeed<'de> for Seek<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the node being located")
    }

    // Every scalar lands in one of these; failing marks the scalar's position.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom("here"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom("here"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom("here"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("here"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom("here"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("here"))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("here"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(want), rest)) = self.0.split_first() else {
            return Err(de::Error::custom("here"));
        };
        while let Some(key) = map.next_key::<KeyText>()? {
            if key.0.as_deref() == Some(*want) {
                return map.next_value_seed(Seek(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom("here"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(want), rest)) = self.0.split_first() else {
            return Err(de::Error::custom("here"));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("here"));
            }
        }
        match seq.next_element_seed(Seek(rest))? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom("here")),
        }
    }
}

/// A mapping key as text when it is a scalar, so non-string keys do not abort the walk.
struct KeyText(Option<String>);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
        Ok(KeyText(Some(v.to_string())))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<KeyText, E> {
        Ok(KeyText(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<KeyText, E> {
        Ok(KeyText(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<KeyText, E> {
        Ok(KeyText(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<KeyText, E> {
        Ok(KeyText(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
        Ok(KeyText(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<KeyText, A::Error> {
        Ok(KeyText(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<KeyText, A::Error> {
        Ok(KeyText(None))
    }
}

/// Flow collections (`[`, `{`) nested deeper than this are refused before parsing; the
/// parser itself gives up at 128 levels of any kind.
pub(super) const MAX_FLOW_DEPTH: usize = 128;

/// 1-based (line, column) of the first `[` or `{` nested deeper than [`MAX_FLOW_DEPTH`].
///
/// The parser refuses such a document as well, but only after scanning all of it, and its
/// scanner spends time proportional to the open depth on every token: 100 KB of `[` took
/// tens of seconds, twice (a config is parsed twice). This pass is linear. It skips quoted
/// scalars and comments; a bracket inside a plain scalar still counts, which can only fail
/// early a document with over a hundred brackets left open.
pub(super) fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
        } else if let Some(q) = quote {
            // `\"` in double quotes and `''` in single quotes do not close the scalar.
            let escaped = match q {
                '"' => c == '\\' && chars.peek().is_some_and(|&n| n != '\n'),
                _ => c == '\'' && chars.peek() == Some(&'\''),
            };
            if escaped {
                chars.next();
                column += 1;
            } else if c == q {
                quote = None;
            }
        } else if !comment {
            match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',') => {
                    quote = Some(c);
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some((line, column));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
    }
    None
}

/// Fail at the first mapping key that repeats an earlier key of the same mapping.
///
/// Serde's own "duplicate field" error points at the mapping, and maps such as OTLP
/// `headers` would silently keep the last value; this walk names the repeated key itself.
pub(super) fn check_duplicate_keys(text: &str) -> Result<(), yaml_serde::Error> {
    Walk.deserialize(yaml_serde::Deserializer::from_str(text))
}

/// Visits every node, checking each mapping's keys.
struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    // Out-of-range integers are the typed pass's to report, as out of range for the key.
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Ok(())
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while map.next_key_seed(UniqueKey(&mut seen))?.is_some() {
            map.next_value_seed(Walk)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk)?.is_some() {}
        Ok(())
    }
}

/// A mapping key that must not be in `seen`; fails inside the key's own visit, so the error
/// carries the key's position. Non-scalar keys are walked but not compared.
struct UniqueKey<'s>(&'s mut HashSet<String>);

impl<'de> DeserializeSeed<'de> for UniqueKey<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKey<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.0.insert(v.to_string()) {
            return Ok(());
        }
        Err(E::custom(format!(
            "duplicate key `{v}`; a key may appear only once in a mapping"
        )))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_str("null")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Walk.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Walk.visit_seq(seq)
    }
}

//! Route templates grouped into flows (by leading path segments, reads apart from writes) and named from their paths.

use std::collections::{BTreeMap, HashSet};

use crate::config::{UNMATCHED_FLOW, validate_flow_name};

/// Whether a method reads or changes state: a slow or failing write (checkout, signup) is
/// a different incident from a slow read, so they never share a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// GET, HEAD, OPTIONS.
    Read,
    /// POST, PUT, PATCH, DELETE.
    Write,
}

impl Class {
    /// The class of a method label; `None` for methods a pattern cannot name usefully
    /// (`_OTHER`, CONNECT, TRACE), which stay unmatched.
    pub fn of(method: &str) -> Option<Class> {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Some(Class::Read),
            "POST" | "PUT" | "PATCH" | "DELETE" => Some(Class::Write),
            _ => None,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
        }
    }
}

/// Leading segments that say nothing about what a route does, so they are kept in the
/// grouping key (`/api/orders` and `/orders` stay apart) but left out of names.
fn is_prefix(segment: &str) -> bool {
    let version = segment.len() > 1
        && segment.starts_with('v')
        && segment[1..].bytes().all(|b| b.is_ascii_digit());
    matches!(segment, "api" | "rest") || version
}

/// The grouping key of a route template: its leading literal segments up to and including
/// the first one that is not a prefix (`/api/v1/orders/{id}/items` → `api/v1/orders`).
/// Placeholders end the key, so `/{id}` and `/` share the empty key.
pub fn key(route: &str) -> String {
    let mut taken: Vec<&str> = Vec::new();
    for segment in route.trim_start_matches('/').split('/') {
        if segment.is_empty() || segment.starts_with('{') {
            break;
        }
        taken.push(segment);
        if !is_prefix(segment) {
            break;
        }
    }
    taken.join("/")
}

/// A flow name from a grouping key: its non-prefix segments (all of them if that leaves
/// nothing), lowercased, other characters as `-`; `root` for the empty key.
pub fn base_name(key: &str) -> String {
    let segments: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
    let meaningful: Vec<&str> = segments.iter().copied().filter(|s| !is_prefix(s)).collect();
    let chosen = if meaningful.is_empty() {
        segments
    } else {
        meaningful
    };
    let mut name = String::new();
    for c in chosen.join("-").chars().flat_map(char::to_lowercase) {
        let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-');
        let c = if ok { c } else { '-' };
        // One separator at a time, and a name starts with a letter or digit.
        if c == '-' && (name.is_empty() || name.ends_with('-')) {
            continue;
        }
        name.push(c);
    }
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() { "root".into() } else { name }
}

/// The members of one learned flow, before thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<T> {
    /// The flow name: valid, not `unmatched`, unique among the groups.
    pub name: String,
    /// Grouping key and class, for ordering and tests.
    pub key: (String, Class),
    /// The route templates (with their data) in this group.
    pub members: Vec<T>,
}

/// Group `(method, route, item)` triples by key and class. Names get `-read` / `-write`
/// only where one key has both, and `-2`, `-3`… where two keys would share a name or a
/// name is `reserved` (the flows already configured).
pub fn group<T>(routes: Vec<(String, String, T)>, reserved: &[String]) -> Vec<Group<T>> {
    let mut by_key: BTreeMap<(String, Class), Vec<T>> = BTreeMap::new();
    for (method, route, item) in routes {
        if let Some(class) = Class::of(&method) {
            by_key.entry((key(&route), class)).or_default().push(item);
        }
    }
    let both: HashSet<String> = by_key
        .keys()
        .filter(|(k, c)| *c == Class::Read && by_key.contains_key(&(k.clone(), Class::Write)))
        .map(|(k, _)| k.clone())
        .collect();
    let mut taken: HashSet<String> = reserved.iter().cloned().collect();
    by_key
        .into_iter()
        .map(|((key, class), members)| {
            let mut name = base_name(&key);
            if both.contains(&key) {
                name = format!("{name}-{}", class.suffix());
            }
            let name = unique(name, &mut taken);
            Group {
                name,
                key: (key, class),
                members,
            }
        })
        .collect()
}

/// `name`, or `name-2`, `name-3`… if taken (or reserved, or somehow invalid).
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    let usable = |n: &str, taken: &HashSet<String>| {
        n != UNMATCHED_FLOW && !taken.contains(n) && validate_flow_name(n).is_ok()
    };
    let mut candidate = name.clone();
    let mut n = 2;
    while !usable(&candidate, taken) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(routes: &[(&str, &str)]) -> Vec<(String, Vec<String>)> {
        let input = routes
            .iter()
            .map(|(m, r)| (m.to_string(), r.to_string(), format!("{m} {r}")))
            .collect();
        let reserved = ["health".to_string()];
        group(input, &reserved)
            .into_iter()
            .map(|g| (g.name, g.members))
            .collect()
    }

    #[test]
    fn keys_take_prefixes_and_one_meaningful_segment() {
        assert_eq!(key("/api/orders/{id}"), "api/orders");
        assert_eq!(key("/api/v2/orders/{id}/items"), "api/v2/orders");
        assert_eq!(key("/static/app.js"), "static");
        assert_eq!(key("/users/{id}"), "users");
        assert_eq!(key("/"), "");
        assert_eq!(key("/{id}"), "");
        assert_eq!(key("/api"), "api");
    }

    #[test]
    fn names_are_valid_and_readable() {
        assert_eq!(base_name("api/orders"), "orders");
        assert_eq!(base_name("api/v2/Search_Results"), "search_results");
        assert_eq!(base_name("api"), "api");
        assert_eq!(base_name(""), "root");
        assert_eq!(base_name("favicon.ico"), "favicon.ico");
        assert_eq!(base_name("%7Euser"), "7euser");
        assert_eq!(base_name("--"), "root");
        assert_eq!(
            base_name("unmatched"),
            "unmatched",
            "made unique by group()"
        );
    }

    #[test]
    fn writes_are_apart_from_reads_and_names_unique_and_not_reserved() {
        let got = names(&[
            ("GET", "/api/orders"),
            ("GET", "/api/orders/{id}"),
            ("POST", "/api/orders"),
            ("DELETE", "/api/orders/{id}"),
            ("POST", "/api/checkout"),
            ("GET", "/orders"),
            ("GET", "/unmatched"),
            ("_OTHER", "/api/orders"),
            ("HEAD", "/"),
            ("GET", "/health"),
        ]);
        let expected = [
            ("root", vec!["HEAD /"]),
            ("checkout", vec!["POST /api/checkout"]),
            (
                "orders-read",
                vec!["GET /api/orders", "GET /api/orders/{id}"],
            ),
            (
                "orders-write",
                vec!["POST /api/orders", "DELETE /api/orders/{id}"],
            ),
            ("health-2", vec!["GET /health"]),
            ("orders", vec!["GET /orders"]),
            ("unmatched-2", vec!["GET /unmatched"]),
        ];
        let expected: Vec<(String, Vec<String>)> = expected
            .iter()
            .map(|(n, m)| (n.to_string(), m.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert_eq!(got, expected);
    }
}

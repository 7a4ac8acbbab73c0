//! Route templates for unmatched traffic (`/users/123` → `/users/{id}`), kept in a capped concurrent table.
//!
//! A path segment becomes `{id}` when it is (ASCII only):
//! - all digits: `123`;
//! - a UUID, `8-4-4-4-12` hex digits in any case;
//! - at least 16 hex digits: `9f8e7d6c5b4a3f2e`;
//! - token-like: at least 20 characters of `[A-Za-z0-9_-]` including a digit
//!   (base64url ids, long slugs with numbers);
//! - at least 32 characters of `[A-Za-z0-9+=_-]` (base64, with or without digits).
//!
//! Anything else stays literal, so words and short mixed tokens such as `orders`, `v2`,
//! `api`, `user-profile`, `2fa` or `a1b2` are kept, as are empty segments. A segment
//! containing `{` or `}` becomes `{other}`, so a request can never forge a placeholder.
//! The query, the fragment and path parameters (`;name=value` after a segment, as in
//! `/cart;jsessionid=…/items`) are dropped, and an empty path is `/`.
//!
//! Example paths keep literal and numeric segments, but opaque ids and `;` path
//! parameters become `REDACTED`: reset links, signed URLs and `;jsessionid=` carry
//! credentials there, and the admin API must not hand them out.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::redact::REDACTED;

/// The route of the overflow entry, used when the table is full or templating is off.
pub const OTHER_ROUTE: &str = "/{other}";

/// Templates longer than this go to [`OTHER_ROUTE`], bounding the memory a client can pin.
pub const MAX_TEMPLATE_LEN: usize = 512;

/// Example paths kept per template.
pub const MAX_EXAMPLES: usize = 3;
/// Every request of a template is a candidate example up to this count; after it, powers of two.
const EXAMPLE_EVERY_REQUEST_UNTIL: u64 = 64;

/// Example paths are cut to this many bytes (on a character boundary).
pub const MAX_EXAMPLE_LEN: usize = 256;

/// Write the route template of a raw request path into `out`, replacing its contents.
///
/// `"/users/123/orders/9f8e7d6c5b4a3f2e?x=1"` → `"/users/{id}/orders/{id}"`; see the
/// module docs for the exact rules. A path without a leading `/` is treated as if it had one.
pub fn template_path(path: &str, out: &mut String) {
    out.clear();
    let path = strip_query(path);
    let body = path.strip_prefix('/').unwrap_or(path);
    // Path parameters go, like the query: `;jsessionid=…` is a credential, and every
    // session would otherwise be a route of its own. One scan of the whole path first:
    // cutting each segment costs more than classifying it (criterion, benches/RESULTS.md).
    let params = body.contains(';');
    for segment in body.split('/') {
        let segment = match params {
            true => segment.split_once(';').map_or(segment, |(head, _)| head),
            false => segment,
        };
        out.push('/');
        out.push_str(classify(segment));
    }
}

/// The segment itself, or the placeholder replacing it.
fn classify(segment: &str) -> &str {
    let s = segment.as_bytes();
    // One table-driven pass: `all` keeps the classes every byte has, `any` those some byte has.
    let (mut all, mut any) = (u8::MAX, 0u8);
    for &b in s {
        let c = CLASS[b as usize];
        all &= c;
        any |= c;
    }
    let n = s.len();
    if any & BRACE != 0 {
        "{other}"
    } else if n > 0
        && (all & DIGIT != 0
            || (all & HEX != 0 && n >= 16)
            || (all & B64URL != 0 && any & DIGIT != 0 && n >= 20)
            || (all & B64 != 0 && n >= 32)
            || is_uuid(s))
    {
        "{id}"
    } else {
        segment
    }
}

const DIGIT: u8 = 1;
const HEX: u8 = 2;
const B64URL: u8 = 4;
const B64: u8 = 8;
const BRACE: u8 = 16;

/// Character classes per byte, for [`classify`].
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_digit() {
            c |= DIGIT;
        }
        if b.is_ascii_hexdigit() {
            c |= HEX;
        }
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            c |= B64URL | B64;
        }
        if b == b'+' || b == b'=' {
            c |= B64;
        }
        if b == b'{' || b == b'}' {
            c |= BRACE;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn strip_query(path: &str) -> &str {
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    &path[..end]
}

/// One template: its request count and a few distinct example paths.
#[derive(Debug)]
pub struct TemplateEntry {
    /// The template, e.g. `/users/{id}`; the `http.route` label of unmatched requests.
    pub route: Arc<str>,
    count: AtomicU64,
    /// Filled in order and never changed once set, so readers need no lock and
    /// a full entry costs only a few atomic loads and string compares per request.
    examples: [OnceLock<Box<str>>; MAX_EXAMPLES],
}

impl TemplateEntry {
    fn new(route: Arc<str>) -> Self {
        TemplateEntry {
            route,
            count: AtomicU64::new(0),
            examples: Default::default(),
        }
    }

    /// Requests observed for this template.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Up to [`MAX_EXAMPLES`] distinct example paths, in order of first sight.
    pub fn examples(&self) -> Vec<String> {
        self.examples
            .iter()
            .map_while(|slot| slot.get().map(|e| e.to_string()))
            .collect()
    }

    fn add_example(&self, path: &str) {
        // Once full nothing can change, so most requests skip the masking below.
        if self.examples[MAX_EXAMPLES - 1].get().is_some() {
            return;
        }
        // A path seen before is usually stored as it came (nothing in it to mask): finding
        // it first skips the masking, which cost ~500 ns per request on a template that
        // keeps seeing the same few paths (benches/router.rs `templates/observe_existing`).
        if self
            .examples
            .iter()
            .any(|slot| slot.get().is_some_and(|e| &**e == path))
        {
            return;
        }
        let safe = example_of(path);
        let path = truncate(&safe, MAX_EXAMPLE_LEN);
        for slot in &self.examples {
            // Slots before this one were checked and differ from `path`; set slots are
            // immutable, so a path can only land in one slot and examples stay distinct.
            if &**slot.get_or_init(|| path.into()) == path {
                return;
            }
        }
    }
}

/// `path` with segments that may be credentials replaced by `REDACTED`.
fn example_of(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.split('/').any(|s| s.contains(';') || is_opaque(s)) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let (head, params) = match segment.split_once(';') {
            Some((head, _)) => (head, true),
            None => (segment, false),
        };
        out.push_str(if is_opaque(head) { REDACTED } else { head });
        if params {
            out.push(';');
            out.push_str(REDACTED);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// An id that is not a plain number: a UUID, long hex or a base64-ish token.
fn is_opaque(segment: &str) -> bool {
    classify(segment) == "{id}" && !segment.bytes().all(|b| b.is_ascii_digit())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A point-in-time copy of one template, for `GET /api/routes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TemplateSnapshot {
    /// The template, e.g. `/users/{id}`.
    pub route: String,
    /// Requests observed.
    pub count: u64,
    /// Up to [`MAX_EXAMPLES`] distinct example paths (no query).
    pub examples: Vec<String>,
}

/// The capped table of route templates seen for unmatched traffic, shared by all request tasks.
///
/// Holds at most `max_templates` distinct templates, exactly, even under concurrent
/// inserts; further templates count towards the [`OTHER_ROUTE`] entry, which is not part
/// of the cap. Looking up an existing template does not allocate.
#[derive(Debug)]
pub struct RouteTemplates {
    map: DashMap<Arc<str>, Arc<TemplateEntry>>,
    /// Distinct templates in `map`; only grows, under the shard lock of the inserted key.
    distinct: AtomicUsize,
    max_templates: usize,
    templating: bool,
    other: Arc<TemplateEntry>,
}

thread_local! {
    /// Reused per thread so that templating a path for lookup does not allocate.
    static TEMPLATE_BUF: RefCell<String> = RefCell::new(String::with_capacity(128));
}

impl RouteTemplates {
    /// A table of at most `max_templates` templates; with `templating` off every
    /// request goes to [`OTHER_ROUTE`].
    pub fn new(max_templates: usize, templating: bool) -> Self {
        RouteTemplates {
            map: DashMap::new(),
            distinct: AtomicUsize::new(0),
            max_templates,
            templating,
            other: Arc::new(TemplateEntry::new(OTHER_ROUTE.into())),
        }
    }

    /// Count one request for `path` (query ignored) and return its template entry, or the
    /// [`OTHER_ROUTE`] entry when the table is full, templating is off, the template is
    /// longer than [`MAX_TEMPLATE_LEN`] or is `/{other}` itself.
    pub fn observe(&self, path: &str) -> Arc<TemplateEntry> {
        let path = strip_query(path);
        let entry = if self.templating {
            TEMPLATE_BUF.with_borrow_mut(|buf| {
                template_path(path, buf);
                self.entry_for(buf)
            })
        } else {
            Arc::clone(&self.other)
        };
        let n = entry.count.fetch_add(1, Ordering::Relaxed) + 1;
        // Examples come from a template's first requests, then ever more sparsely (powers of
        // two): a busy template keeps finding new ones without paying the masking each time.
        if n <= EXAMPLE_EVERY_REQUEST_UNTIL || n.is_power_of_two() {
            entry.add_example(path);
        }
        entry
    }

    fn entry_for(&self, template: &str) -> Arc<TemplateEntry> {
        if template.len() > MAX_TEMPLATE_LEN || template == OTHER_ROUTE {
            return Arc::clone(&self.other);
        }
        if let Some(e) = self.map.get(template) {
            return Arc::clone(e.value());
        }
        if self.distinct.load(Ordering::Relaxed) >= self.max_templates {
            return Arc::clone(&self.other);
        }
        match self.map.entry(Arc::from(template)) {
            Entry::Occupied(e) => Arc::clone(e.get()),
            Entry::Vacant(v) => {
                // Reserving a slot while holding the shard lock makes the cap exact: every
                // insert has a successful increment, and increments never pass the cap.
                let reserved = self
                    .distinct
                    .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                        (n < self.max_templates).then_some(n + 1)
                    })
                    .is_ok();
                if reserved {
                    let entry = Arc::new(TemplateEntry::new(Arc::clone(v.key())));
                    v.insert(Arc::clone(&entry));
                    entry
                } else {
                    Arc::clone(&self.other)
                }
            }
        }
    }

    /// All templates with their counts and examples, plus `/{other}` if it was used,
    /// sorted by count (descending) then route.
    pub fn snapshot(&self) -> Vec<TemplateSnapshot> {
        let mut out: Vec<TemplateSnapshot> =
            self.map.iter().map(|e| snapshot_of(e.value())).collect();
        if self.other.count() > 0 {
            out.push(snapshot_of(&self.other));
        }
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.route.cmp(&b.route)));
        out
    }

    /// Distinct templates stored, not counting `/{other}`; never above `max_templates`.
    pub fn len(&self) -> usize {
        self.distinct.load(Ordering::Acquire)
    }

    /// True when no template is stored yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn snapshot_of(e: &TemplateEntry) -> TemplateSnapshot {
    TemplateSnapshot {
        route: e.route.to_string(),
        count: e.count(),
        examples: e.examples(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(path: &str) -> String {
        let mut out = String::from("garbage");
        template_path(path, &mut out);
        out
    }

    #[test]
    fn ids_become_placeholders() {
        let cases = [
            (
                "/users/123/orders/9f8e7d6c5b4a3f2e",
                "/users/{id}/orders/{id}",
            ),
            ("/u/550e8400-e29b-41d4-a716-446655440000", "/u/{id}"),
            ("/u/550E8400-E29B-41D4-A716-446655440000/x", "/u/{id}/x"),
            ("/blob/0123456789abcdefABCDEF", "/blob/{id}"),
            ("/t/dGhpc2lzYXRva2VuMTIz_-x", "/t/{id}"),
            ("/t/abcdefghijklmnopqrstuvwxyzABCDEF", "/t/{id}"),
            ("/t/aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=", "/t/{id}"),
            ("/0", "/{id}"),
        ];
        for (path, want) in cases {
            assert_eq!(tpl(path), want, "{path}");
        }
    }

    #[test]
    fn words_are_kept() {
        let cases = [
            "/api/v2/orders",
            "/user-profile/settings",
            "/auth/2fa",
            "/a1b2/c",
            "/deadbeef",
            "/9f8e7d6c5b4a3f2",
            "/how-to-cook-pasta-quickly",
            "/abcdefghijklmnopqrstuvwxyz",
            "/u/550e8400-e29b",
            "/files/report.pdf",
            "/a%20b",
        ];
        for path in cases {
            assert_eq!(tpl(path), path);
        }
    }

    #[test]
    fn query_root_slashes_and_braces() {
        assert_eq!(tpl(""), "/");
        assert_eq!(tpl("/"), "/");
        assert_eq!(tpl("?a=1"), "/");
        assert_eq!(tpl("/users/42?token=secret"), "/users/{id}");
        assert_eq!(tpl("/a/#x"), "/a/");
        assert_eq!(tpl("/a//1/"), "/a//{id}/");
        assert_eq!(tpl("/x/{id}"), "/x/{other}");
        assert_eq!(tpl("/{other}"), "/{other}");
        assert_eq!(tpl("users/7"), "/users/{id}");
    }

    #[test]
    fn busy_templates_sample_examples_sparsely_after_the_first_requests() {
        let t = RouteTemplates::new(10, true);
        for _ in 0..100 {
            t.observe("/u/1");
        }
        // Request 101 is neither among the first 64 nor a power of two: not sampled.
        t.observe("/u/2");
        for _ in 102..128 {
            t.observe("/u/1");
        }
        // Request 128 is.
        let e = t.observe("/u/3");
        assert_eq!(e.count(), 128);
        assert_eq!(e.examples(), vec!["/u/1", "/u/3"]);
    }

    #[test]
    fn counts_and_distinct_examples() {
        let t = RouteTemplates::new(10, true);
        for p in ["/u/1", "/u/1?x=2", "/u/2", "/u/1", "/u/3", "/u/4", "/v"] {
            t.observe(p);
        }
        let e = t.observe("/u/5");
        assert_eq!(&*e.route, "/u/{id}");
        assert_eq!(e.count(), 7);
        assert_eq!(e.examples(), vec!["/u/1", "/u/2", "/u/3"]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.snapshot(),
            vec![
                TemplateSnapshot {
                    route: "/u/{id}".into(),
                    count: 7,
                    examples: vec!["/u/1".into(), "/u/2".into(), "/u/3".into()],
                },
                TemplateSnapshot {
                    route: "/v".into(),
                    count: 1,
                    examples: vec!["/v".into()],
                },
            ]
        );
    }

    #[test]
    fn cap_sends_new_templates_to_other() {
        let t = RouteTemplates::new(3, true);
        for p in ["/a", "/b", "/c"] {
            assert_eq!(&*t.observe(p).route, p);
        }
        assert_eq!(&*t.observe("/d").route, OTHER_ROUTE);
        assert_eq!(&*t.observe("/a").route, "/a");
        assert_eq!(t.len(), 3);
        let snap = t.snapshot();
        assert_eq!(snap.len(), 4);
        assert_eq!(snap[0].route, "/a");
        assert_eq!(snap[0].count, 2);
        assert!(snap.iter().any(|s| s.route == OTHER_ROUTE && s.count == 1));
    }

    #[test]
    fn templating_off_and_zero_cap_use_other() {
        for t in [RouteTemplates::new(10, false), RouteTemplates::new(0, true)] {
            let e = t.observe("/users/1");
            assert_eq!(&*e.route, OTHER_ROUTE);
            assert!(t.is_empty());
            assert_eq!(t.snapshot().len(), 1);
        }
    }

    #[test]
    fn oversized_and_forged_templates_use_other() {
        let t = RouteTemplates::new(10, true);
        let long = format!("/{}", "~".repeat(MAX_TEMPLATE_LEN));
        assert_eq!(&*t.observe(&long).route, OTHER_ROUTE);
        assert_eq!(&*t.observe("/{other}").route, OTHER_ROUTE);
        let e = t.observe("/{other}");
        assert_eq!(e.count(), 3);
        assert!(e.examples().iter().all(|x| x.len() <= MAX_EXAMPLE_LEN));
        assert!(t.is_empty());
    }

    #[test]
    fn path_parameters_never_reach_the_template() {
        let t = RouteTemplates::new(10, true);
        let cases = [
            ("/cart;jsessionid=S3CRET/items/42", "/cart/items/{id}"),
            ("/cart;jsessionid=A1B2C3D4E5F6A7B8C9D0/items", "/cart/items"),
            ("/x;jsessionid=0123456789abcdef0123456789abcdef", "/x"),
            ("/a;b;c/d", "/a/d"),
            ("/;p/orders/9f8e7d6c5b4a3f2e1d0c;v=2", "//orders/{id}"),
        ];
        for (path, route) in cases {
            assert_eq!(&*t.observe(path).route, route, "{path}");
        }
        let mut out = String::new();
        template_path("/cart;jsessionid=S3CRET/items?x=1", &mut out);
        assert_eq!(out, "/cart/items");
    }

    #[test]
    fn examples_hide_opaque_ids_and_path_parameters() {
        let t = RouteTemplates::new(10, true);
        t.observe("/reset/9f8e7d6c5b4a3f2e1d0c?token=abc");
        t.observe("/cart;jsessionid=S3CRET/items/42");
        t.observe("/u/550e8400-e29b-41d4-a716-446655440000/x");
        let all: Vec<String> = t.snapshot().into_iter().flat_map(|s| s.examples).collect();
        assert!(all.contains(&"/reset/REDACTED".to_string()), "{all:?}");
        assert!(
            all.contains(&"/cart;REDACTED/items/42".to_string()),
            "{all:?}"
        );
        assert!(all.contains(&"/u/REDACTED/x".to_string()), "{all:?}");
        for secret in ["9f8e7d6c", "S3CRET", "abc", "550e8400"] {
            assert!(all.iter().all(|e| !e.contains(secret)), "{secret}: {all:?}");
        }
    }

    #[test]
    fn truncates_examples_on_char_boundary() {
        let s = "é".repeat(MAX_EXAMPLE_LEN);
        let cut = truncate(&s, MAX_EXAMPLE_LEN - 1);
        assert!(cut.len() < MAX_EXAMPLE_LEN && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn concurrent_observe_keeps_cap_and_counts_exact() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 2_000;
        const CAP: usize = 50;
        for _round in 0..5 {
            let t = RouteTemplates::new(CAP, true);
            std::thread::scope(|s| {
                for th in 0..THREADS {
                    let t = &t;
                    s.spawn(move || {
                        for i in 0..PER_THREAD {
                            // 200 distinct words, interleaved differently per thread.
                            let word = (i * (th + 1) * 7) % 200;
                            t.observe(&format!("/w/word{word}x/{i}"));
                        }
                    });
                }
            });
            assert_eq!(t.len(), CAP);
            let snap = t.snapshot();
            assert_eq!(snap.len(), CAP + 1);
            let total: u64 = snap.iter().map(|s| s.count).sum();
            assert_eq!(total, (THREADS * PER_THREAD) as u64);
            for s in &snap {
                let mut ex = s.examples.clone();
                ex.sort();
                ex.dedup();
                assert_eq!(ex.len(), s.examples.len());
                assert!(s.examples.len() <= MAX_EXAMPLES);
            }
        }
    }

    #[test]
    fn shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RouteTemplates>();
        assert_send_sync::<TemplateEntry>();
    }
}

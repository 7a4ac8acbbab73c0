//! Request → flow router: a segment trie over every flow pattern, where the most specific match wins.
//!
//! Precedence, for the patterns that match a request:
//! 1. segment by segment from the left, a literal beats `{x}`, which beats `{x...}`;
//! 2. for the same path shape, a pattern with a method beats one without;
//! 3. then config order: earlier flow, then earlier pattern within the flow.
//!
//! Methods match exactly (a `GET` pattern does not match `HEAD`). Paths are matched raw
//! (no percent-decoding), anything from `?` or `#` on is ignored, an empty path is `/`,
//! and a path not starting with `/` (e.g. `*`) matches nothing. Path parameters
//! (`;jsessionid=…` after a segment) are not part of a segment's name: `/cart;v=2`
//! matches `/cart`, as the route templates drop them too.
//!
//! A lookup does not allocate and has no depth limit: instead of splitting the path into
//! an array up front, the search peels one segment at a time while it walks the trie, so
//! its recursion depth is bounded by the deepest pattern, never by the request path.
//! Each trie node is visited at most once per lookup, so backtracking stays linear in the
//! size of the trie.

use std::collections::HashMap;

use http::Method;

use super::pattern::{Pattern, Segment};

/// One distinct `(flow, route)` pair; its position in [`Router::routes`] is its route index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Index of the flow in the config's `flows` list.
    pub flow: usize,
    /// The pattern's path as written, used as the `http.route` label.
    pub route: String,
}

/// The result of [`Router::find`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the matched flow.
    pub flow: usize,
    /// Index into [`Router::routes`].
    pub route: usize,
}

/// Immutable request router built from all flows' patterns; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Router {
    root: Node,
    routes: Vec<RouteInfo>,
}

#[derive(Debug, Default)]
struct Node {
    /// Sorted by key for binary search: fan-out is small, and this beats hashing short keys.
    literals: Vec<(Box<str>, Node)>,
    param: Option<Box<Node>>,
    /// Patterns ending in `{x...}` right after this node.
    rest: Vec<Terminal>,
    /// Patterns ending exactly at this node.
    terminals: Vec<Terminal>,
}

#[derive(Debug)]
struct Terminal {
    method: Option<Method>,
    /// Global config order, the final tie-break.
    order: usize,
    hit: RouteMatch,
}

impl Router {
    /// Build from `flows[i]` = the patterns of flow `i`, in config order.
    pub fn new(flows: &[Vec<Pattern>]) -> Router {
        let mut router = Router::default();
        let mut route_ids: HashMap<(usize, &str), usize> = HashMap::new();
        let mut order = 0;
        for (flow, patterns) in flows.iter().enumerate() {
            for pattern in patterns {
                let route = *route_ids
                    .entry((flow, pattern.route.as_str()))
                    .or_insert_with(|| {
                        router.routes.push(RouteInfo {
                            flow,
                            route: pattern.route.clone(),
                        });
                        router.routes.len() - 1
                    });
                let terminal = Terminal {
                    method: pattern.method.clone(),
                    order,
                    hit: RouteMatch { flow, route },
                };
                router.root.insert(&pattern.segments, terminal);
                order += 1;
            }
        }
        router.root.sort_terminals();
        router
    }

    /// Every distinct `(flow, route)`, in order of first appearance in the config.
    pub fn routes(&self) -> &[RouteInfo] {
        &self.routes
    }

    /// True when no flow has any pattern, so every request is unmatched.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The most specific pattern matching `method` and the raw request `path`, if any.
    pub fn find(&self, method: &Method, path: &str) -> Option<RouteMatch> {
        let end = path
            .bytes()
            .position(|b| b == b'?' || b == b'#')
            .unwrap_or(path.len());
        let path = &path[..end];
        let remaining = if path.is_empty() {
            ""
        } else {
            path.strip_prefix('/')?
        };
        // One scan of the whole path, so that segments are cut at `;` only when some have one
        // (a cut per segment cost 45 % on the route templates' benchmark).
        let params = remaining.contains(';');
        self.root.find(method, Some(remaining), params)
    }
}

impl Node {
    fn insert(&mut self, segments: &[Segment], terminal: Terminal) {
        match segments.split_first() {
            None => self.terminals.push(terminal),
            Some((Segment::Literal(lit), rest)) => {
                let i = match self
                    .literals
                    .binary_search_by(|(k, _)| (**k).cmp(lit.as_str()))
                {
                    Ok(i) => i,
                    Err(i) => {
                        self.literals
                            .insert(i, (lit.as_str().into(), Node::default()));
                        i
                    }
                };
                self.literals[i].1.insert(rest, terminal);
            }
            Some((Segment::Param(_), rest)) => self
                .param
                .get_or_insert_with(Box::default)
                .insert(rest, terminal),
            // The parser guarantees a rest parameter is last; anything after it would be unreachable.
            Some((Segment::Rest(_), _)) => self.rest.push(terminal),
        }
    }

    fn sort_terminals(&mut self) {
        let key = |t: &Terminal| (t.method.is_none(), t.order);
        self.terminals.sort_by_key(key);
        self.rest.sort_by_key(key);
        for (_, child) in &mut self.literals {
            child.sort_terminals();
        }
        if let Some(p) = &mut self.param {
            p.sort_terminals();
        }
    }

    /// `remaining` is the path after the `/` that ends this node's segment; `None` once
    /// the path is exhausted. `Some("")` is an empty segment (trailing slash or `//`).
    /// `params`: the path has a `;` somewhere, so segments must be cut there.
    fn find(&self, method: &Method, remaining: Option<&str>, params: bool) -> Option<RouteMatch> {
        let Some(remaining) = remaining else {
            return pick(&self.terminals, method);
        };
        let (segment, next) = match remaining.find('/') {
            Some(i) => (&remaining[..i], Some(&remaining[i + 1..])),
            None => (remaining, None),
        };
        let segment = match params {
            true => segment.split_once(';').map_or(segment, |(name, _)| name),
            false => segment,
        };
        if let Ok(i) = self.literals.binary_search_by(|(k, _)| (**k).cmp(segment)) {
            if let Some(m) = self.literals[i].1.find(method, next, params) {
                return Some(m);
            }
        }
        if !segment.is_empty() {
            if let Some(m) = self
                .param
                .as_ref()
                .and_then(|p| p.find(method, next, params))
            {
                return Some(m);
            }
        }
        pick(&self.rest, method)
    }
}

/// `terminals` is sorted best first, so the first one accepting the method wins.
fn pick(terminals: &[Terminal], method: &Method) -> Option<RouteMatch> {
    terminals
        .iter()
        .find(|t| t.method.as_ref().is_none_or(|m| m == method))
        .map(|t| t.hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(flows: &[&[&str]]) -> Router {
        let flows: Vec<Vec<Pattern>> = flows
            .iter()
            .map(|ps| ps.iter().map(|p| Pattern::parse(p).unwrap()).collect())
            .collect();
        Router::new(&flows)
    }

    /// The route string matched for a request like "GET /a/b", or None.
    fn route(r: &Router, req: &str) -> Option<String> {
        let (m, p) = req.split_once(' ').unwrap();
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        r.find(&m, p).map(|hit| {
            let info = &r.routes()[hit.route];
            assert_eq!(info.flow, hit.flow);
            format!("{}:{}", hit.flow, info.route)
        })
    }

    fn check(r: &Router, cases: &[(&str, Option<&str>)]) {
        for (req, want) in cases {
            assert_eq!(route(r, req).as_deref(), *want, "{req}");
        }
    }

    #[test]
    fn router_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Router>();
    }

    #[test]
    fn literal_beats_param_beats_rest() {
        let r = router(&[&["/a/{x...}"], &["/a/{x}"], &["/a/b"], &["/{x}/c"]]);
        check(
            &r,
            &[
                ("GET /a/b", Some("2:/a/b")),
                ("GET /a/z", Some("1:/a/{x}")),
                ("GET /a/b/c", Some("0:/a/{x...}")),
                ("GET /a/c", Some("1:/a/{x}")),
                ("GET /q/c", Some("3:/{x}/c")),
                ("GET /q/d", None),
                ("GET /a", None),
            ],
        );
    }

    #[test]
    fn leftmost_segment_decides() {
        // `/a/{x}/{y}` is more specific than `/{x}/b/c` for `/a/b/c`: first segment decides.
        let r = router(&[&["/{x}/b/c"], &["/a/{x}/{y}"]]);
        check(&r, &[("GET /a/b/c", Some("1:/a/{x}/{y}"))]);
    }

    #[test]
    fn backtracks_out_of_dead_ends() {
        let r = router(&[&["/a/{x}/d"], &["/{y}/b/c"]]);
        check(
            &r,
            &[
                ("GET /a/b/c", Some("1:/{y}/b/c")),
                ("GET /a/b/d", Some("0:/a/{x}/d")),
            ],
        );
        let r = router(&[&["/a/b/c/d"], &["/a/{x}/c/e"], &["/{z...}"]]);
        check(
            &r,
            &[
                ("GET /a/b/c/e", Some("1:/a/{x}/c/e")),
                ("GET /a/b/c/f", Some("2:/{z...}")),
            ],
        );
    }

    #[test]
    fn method_specific_beats_any_for_same_shape() {
        let r = router(&[
            &["/orders/{id}"],
            &["GET /orders/{id}"],
            &["POST /orders/{x}"],
        ]);
        check(
            &r,
            &[
                ("GET /orders/1", Some("1:/orders/{id}")),
                ("POST /orders/1", Some("2:/orders/{x}")),
                ("DELETE /orders/1", Some("0:/orders/{id}")),
            ],
        );
    }

    #[test]
    fn shape_beats_method() {
        // A method-less literal is more specific than a method-specific param.
        let r = router(&[&["GET /orders/{id}"], &["/orders/new"]]);
        check(&r, &[("GET /orders/new", Some("1:/orders/new"))]);
    }

    #[test]
    fn method_mismatch_backtracks() {
        let r = router(&[&["POST /a/b"], &["GET /a/{x}"], &["/{x...}"]]);
        check(
            &r,
            &[
                ("POST /a/b", Some("0:/a/b")),
                ("GET /a/b", Some("1:/a/{x}")),
                ("PUT /a/b", Some("2:/{x...}")),
                ("HEAD /a/b", Some("2:/{x...}")),
            ],
        );
    }

    #[test]
    fn config_order_breaks_ties() {
        let r = router(&[&["/x", "/a/{x}"], &["/a/{y}", "GET /a/{z}"], &["/a/{x}"]]);
        check(
            &r,
            &[
                ("GET /a/1", Some("1:/a/{z}")),
                ("POST /a/1", Some("0:/a/{x}")),
            ],
        );
        // Within one flow, the earlier pattern wins.
        let r = router(&[&["/a/{first}", "/a/{second}"]]);
        check(&r, &[("GET /a/1", Some("0:/a/{first}"))]);
    }

    #[test]
    fn rest_matches_one_or_more_possibly_empty_segments() {
        let r = router(&[&["/static/{p...}"]]);
        check(
            &r,
            &[
                ("GET /static/", Some("0:/static/{p...}")),
                ("GET /static/a", Some("0:/static/{p...}")),
                ("GET /static/a/b/c.css", Some("0:/static/{p...}")),
                ("GET /static", None),
                ("GET /staticx/a", None),
            ],
        );
        let r = router(&[&["/{all...}"]]);
        check(
            &r,
            &[
                ("GET /", Some("0:/{all...}")),
                ("GET /a//b", Some("0:/{all...}")),
            ],
        );
    }

    #[test]
    fn trailing_slash_and_empty_segments_are_literal() {
        let r = router(&[&["/a"], &["/a/"], &["/a/{x}"], &["/b//c"]]);
        check(
            &r,
            &[
                ("GET /a", Some("0:/a")),
                ("GET /a/", Some("1:/a/")),
                ("GET /a/z", Some("2:/a/{x}")),
                ("GET /b//c", Some("3:/b//c")),
                ("GET /b/c", None),
                ("GET /a//", None),
            ],
        );
        let r = router(&[&["/{x}/c"]]);
        check(&r, &[("GET //c", None)]);
    }

    #[test]
    fn root_query_and_odd_paths() {
        let r = router(&[&["/"], &["/a/{x}"]]);
        check(
            &r,
            &[
                ("GET /", Some("0:/")),
                ("GET /?q=1", Some("0:/")),
                ("GET /a/1?next=/a/b/c", Some("1:/a/{x}")),
                ("GET /a/1#frag", Some("1:/a/{x}")),
                ("OPTIONS *", None),
            ],
        );
        assert_eq!(r.find(&Method::GET, ""), r.find(&Method::GET, "/"));
    }

    #[test]
    fn path_parameters_are_not_part_of_the_segment() {
        let r = router(&[&["/cart", "/cart/items"], &["/a/{id}/b"]]);
        check(
            &r,
            &[
                ("GET /cart;jsessionid=AB12", Some("0:/cart")),
                ("GET /cart;a=1;b=2/items", Some("0:/cart/items")),
                ("GET /cart/items;v=3?x=;y", Some("0:/cart/items")),
                ("GET /a/7;rev=2/b", Some("1:/a/{id}/b")),
                // Only parameters: an empty name, which `{id}` does not match.
                ("GET /a/;rev=2/b", None),
                ("GET /cartx;v=1", None),
            ],
        );
    }

    #[test]
    fn percent_encoding_matched_raw() {
        let r = router(&[&["/files/a%20b"], &["/files/{name}"]]);
        check(
            &r,
            &[
                ("GET /files/a%20b", Some("0:/files/a%20b")),
                ("GET /files/a%2Fb", Some("1:/files/{name}")),
                ("GET /files/a b", Some("1:/files/{name}")),
            ],
        );
    }

    #[test]
    fn routes_are_distinct_per_flow_and_route() {
        let r = router(&[&["GET /a/{id}", "POST /a/{id}", "/b"], &["/a/{id}"]]);
        assert_eq!(
            r.routes(),
            &[
                RouteInfo {
                    flow: 0,
                    route: "/a/{id}".into()
                },
                RouteInfo {
                    flow: 0,
                    route: "/b".into()
                },
                RouteInfo {
                    flow: 1,
                    route: "/a/{id}".into()
                },
            ]
        );
        assert_eq!(
            r.find(&Method::POST, "/a/1"),
            Some(RouteMatch { flow: 0, route: 0 })
        );
        assert_eq!(
            r.find(&Method::PUT, "/a/1"),
            Some(RouteMatch { flow: 1, route: 2 })
        );
    }

    #[test]
    fn deep_paths_have_no_limit() {
        let deep = format!("/d{}", "/x".repeat(200));
        let r = router(&[&["/d/{tail...}"], &[deep.as_str()]]);
        check(&r, &[(&format!("GET {deep}"), Some(&format!("1:{deep}")))]);
        let deeper = format!("{deep}/y");
        check(&r, &[(&format!("GET {deeper}"), Some("0:/d/{tail...}"))]);
    }

    #[test]
    fn empty_router_matches_nothing() {
        let r = Router::new(&[]);
        assert!(r.is_empty());
        assert_eq!(r.find(&Method::GET, "/"), None);
    }
}

//! The module graph stays one-way: checks `agent/`'s `crate::` references against the layer
//! list in `agent/lib.rs`, and the size of every non-test source file.
//!
//! The rules (see ARCHITECTURE.md):
//! - every top-level module of `agent/` is in one layer of the list;
//! - a module names (`use crate::x`, `crate::x::…` paths, `crate::{x, y}` groups) only modules
//!   of its own layer or lower, and modules of one layer never name each other in a circle;
//! - a non-test source file has at most [`MAX_LINES`] lines of code before its first
//!   `#[cfg(test)]` (files named `tests.rs` or `*_tests.rs`, or under a `tests/` directory, are
//!   test code). `/work/shared/tools/modgraph.py`-style counting: newlines before that line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most lines of non-test code a source file may have.
const MAX_LINES: usize = 600;

/// One `crate::x` reference: the file and line it is on, and `x`.
#[derive(Debug, Clone)]
struct Ref {
    file: String,
    line: usize,
    target: String,
}

/// The layers written in `lib` (a fenced block after a `# Layers` heading in its `//!` doc),
/// lowest first; each line names the modules of one layer, separated by `/`, `,` or spaces.
fn parse_layers(lib: &str) -> Result<Vec<Vec<String>>, String> {
    let doc: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let heading = doc
        .iter()
        .position(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == "Layers")
        .ok_or("agent/lib.rs has no `//! ## Layers` heading")?;
    let open = doc[heading..]
        .iter()
        .position(|l| l.starts_with("```"))
        .ok_or("agent/lib.rs: no fenced layer list after `## Layers`")?
        + heading;
    let mut layers = Vec::new();
    for line in &doc[open + 1..] {
        if line.starts_with("```") {
            return Ok(layers);
        }
        let names: Vec<String> = line
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if !names.is_empty() {
            layers.push(names);
        }
    }
    Err("agent/lib.rs: the layer list's fence is not closed".into())
}

/// `rel` (a path under `agent/`, `/`-separated) as (top-level module, is test code).
fn classify(rel: &str) -> (String, bool) {
    let parts: Vec<&str> = rel.split('/').collect();
    let file = parts[parts.len() - 1];
    let top = match parts.as_slice() {
        [only] => only.trim_end_matches(".rs").to_string(),
        [dir, ..] => dir.to_string(),
        [] => String::new(),
    };
    let test = file == "tests.rs"
        || file.ends_with("_tests.rs")
        || (parts.len() > 2 && parts[1..parts.len() - 1].contains(&"tests"));
    (top, test)
}

/// The code before the first `#[cfg(test)]` line.
fn non_test_code(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("#[cfg(test)]") {
            return &text[..at];
        }
        at += line.len();
    }
    text
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every `crate::x` in `code`: paths, and the first name of each item of `crate::{…}` groups.
fn references(file: &str, code: &str) -> Vec<Ref> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `redline_crate::` and the like are not this crate.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let start = at + "crate::".len();
        if let Some(group) = rest.strip_prefix('{') {
            // Names at the group's first level: after `{` and after each `,` at depth 1.
            let mut depth = 1;
            let mut expect_name = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if expect_name && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                        expect_name = false;
                        let name = ident(&group[i..]);
                        if name != "self" {
                            out.push(Ref {
                                file: file.to_string(),
                                line: line_of(start + 1 + i),
                                target: name.to_string(),
                            });
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push(Ref {
                    file: file.to_string(),
                    line: line_of(at),
                    target: name.to_string(),
                });
            }
        }
    }
    out
}

/// Every rule broken by `files` (path under `agent/`, contents) against the layer list in `lib`.
fn problems(lib: &str, files: &[(String, String)]) -> Vec<String> {
    let layers = match parse_layers(lib) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    let mut layer_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, names) in layers.iter().enumerate() {
        for name in names {
            if layer_of.insert(name, i).is_some() {
                out.push(format!("agent/lib.rs: `{name}` is in the layer list twice"));
            }
        }
    }
    let mut modules: BTreeMap<String, String> = BTreeMap::new(); // module -> a file of it
    // Edges between top-level modules, with the first reference that makes each.
    let mut edges: BTreeMap<(String, String), Ref> = BTreeMap::new();
    for (rel, text) in files {
        let (top, test) = classify(rel);
        if top == "lib" || top == "main" || test {
            continue;
        }
        modules.entry(top.clone()).or_insert_with(|| rel.clone());
        let code = non_test_code(text);
        let lines = code.matches('\n').count();
        if lines > MAX_LINES {
            out.push(format!(
                "agent/{rel}: {lines} lines of non-test code (more than {MAX_LINES}): split it"
            ));
        }
        for r in references(&format!("agent/{rel}"), code) {
            if r.target != top {
                edges.entry((top.clone(), r.target.clone())).or_insert(r);
            }
        }
    }
    for (module, file) in &modules {
        if !layer_of.contains_key(module.as_str()) {
            out.push(format!(
                "agent/{file}: module `{module}` is not in the layer list of agent/lib.rs: add it to the layer it belongs to"
            ));
        }
    }
    for name in layer_of.keys() {
        if !modules.contains_key(*name) {
            out.push(format!(
                "agent/lib.rs: the layer list names `{name}`, which is not a module under agent/"
            ));
        }
    }
    let mut same_layer: BTreeMap<&str, Vec<(&str, &Ref)>> = BTreeMap::new();
    for ((from, to), r) in &edges {
        let (Some(&lf), Some(&lt)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
        else {
            continue; // unknown modules are reported above; `crate::X` items are not modules
        };
        if lt > lf {
            out.push(format!(
                "{}:{}: `{from}` (layer {}) names `crate::{to}` (layer {}): a module may only name modules of its own layer or lower",
                r.file,
                r.line,
                lf + 1,
                lt + 1
            ));
        } else if lt == lf {
            same_layer.entry(from).or_default().push((to, r));
        }
    }
    for cycle in cycles(&same_layer) {
        let steps: Vec<String> = cycle
            .iter()
            .map(|(from, to, r)| format!("{}:{}: `{from}` names `crate::{to}`", r.file, r.line))
            .collect();
        out.push(format!(
            "modules of one layer import each other in a circle: {}",
            steps.join("; ")
        ));
    }
    out
}

type Edge<'a> = (&'a str, &'a str, &'a Ref);

/// One circle per module that starts one (depth-first), as its edges.
fn cycles<'a>(graph: &BTreeMap<&'a str, Vec<(&'a str, &'a Ref)>>) -> Vec<Vec<Edge<'a>>> {
    fn walk<'a>(
        graph: &BTreeMap<&'a str, Vec<(&'a str, &'a Ref)>>,
        at: &'a str,
        path: &mut Vec<Edge<'a>>,
        done: &mut BTreeSet<&'a str>,
        found: &mut Vec<Vec<Edge<'a>>>,
    ) {
        for &(to, r) in graph.get(at).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(i) = path.iter().position(|(from, _, _)| *from == to) {
                let mut cycle = path[i..].to_vec();
                cycle.push((at, to, r));
                found.push(cycle);
            } else if to == path.first().map_or(at, |e| e.0) {
                let mut cycle = path.clone();
                cycle.push((at, to, r));
                found.push(cycle);
            } else if !done.contains(to) {
                path.push((at, to, r));
                walk(graph, to, path, done, found);
                path.pop();
            }
        }
        done.insert(at);
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for &start in graph.keys() {
        if !done.contains(start) {
            walk(graph, start, &mut Vec::new(), &mut done, &mut found);
        }
    }
    // The same circle found from two of its modules is reported once.
    let mut seen = BTreeSet::new();
    found.retain(|c| {
        let mut key: Vec<&str> = c.iter().map(|e| e.0).collect();
        key.sort_unstable();
        seen.insert(key)
    });
    found
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under agent/");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            out.push((rel, text));
        }
    }
}

#[test]
fn modules_only_name_lower_layers_and_files_stay_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("agent");
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("agent/lib.rs");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let found = problems(&lib, &files);
    assert!(
        found.is_empty(),
        "the module graph or a file size breaks the rules of agent/lib.rs's `## Layers` (see ARCHITECTURE.md):\n  {}",
        found.join("\n  ")
    );
}

mod check {
    use super::*;

    const LIB: &str = "//! Doc.\n//!\n//! ## Layers\n//!\n//! ```text\n//! low / leaf\n//! mid\n//! high\n//! ```\n\npub mod low;\n";

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn the_check_catches_each_broken_rule() {
        let ok = files(&[
            ("lib.rs", LIB),
            ("low.rs", "use crate::leaf::X;\n"),
            ("leaf.rs", "\n"),
            ("mid/mod.rs", "use crate::{low::{self, A}, leaf};\n"),
            ("mid/tests.rs", "use crate::high;\n"),
            (
                "high.rs",
                "fn f() { crate::mid::g(); }\n#[cfg(test)]\nuse crate::high;\n",
            ),
        ]);
        assert_eq!(problems(LIB, &ok), Vec::<String>::new());

        let mut upward = ok.clone();
        upward.push((
            "mid/deep.rs".into(),
            "\n\nuse crate::{leaf, high};\n".into(),
        ));
        assert_eq!(
            problems(LIB, &upward),
            [
                "agent/mid/deep.rs:3: `mid` (layer 2) names `crate::high` (layer 3): a module may only name modules of its own layer or lower"
            ]
        );

        let mut circle = ok.clone();
        circle.push(("leaf.rs".into(), "pub use crate::low::Y;\n".into()));
        let found = problems(LIB, &circle);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("in a circle")
                && found[0].contains("agent/leaf.rs:1: `leaf` names `crate::low`")
                && found[0].contains("agent/low.rs:1: `low` names `crate::leaf`"),
            "{found:?}"
        );

        let mut unlisted = ok.clone();
        unlisted.push(("stray.rs".into(), "\n".into()));
        assert!(problems(LIB, &unlisted)[0].contains("module `stray` is not in the layer list"));

        let mut long = ok.clone();
        long.push(("mid/big.rs".into(), "\n".repeat(MAX_LINES + 1)));
        long.push((
            "mid/tested.rs".into(),
            format!("\n#[cfg(test)]{}", "\n".repeat(900)),
        ));
        assert_eq!(
            problems(LIB, &long),
            [format!(
                "agent/mid/big.rs: {} lines of non-test code (more than {MAX_LINES}): split it",
                MAX_LINES + 1
            )]
        );
    }
}

//! No import cycles between modules anywhere in the workspace (issue 11),
//! and the API edge depends on neither storage nor providers.
//!
//! For every workspace member (read from the root `Cargo.toml`) this walks
//! `src/`, takes each file's non-test code (comments, string and character
//! literals, and `#[cfg(test)]` items removed; a file declared as a
//! `#[cfg(test)] mod name;` is left out) and builds the graph of the
//! `crate::` paths it names, as the cycle script used for issue 11 does,
//! and also through grouped imports (`use crate::{a, b::c}`) and the crate
//! root's re-exports (`crate::sender_for` is `registry`'s). Modules are
//! compared at the top level (`registry`) and two levels deep
//! (`registry::lookup`); a path names the longest module it starts with.
//! Any strongly connected component of more than one module is a cycle,
//! printed by its modules.
//!
//! Std only, no build of the crates it reads: it is about their text.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use source::{crate_paths, root_reexports, strip_comments_and_literals, strip_test_items};

#[path = "layering/source.rs"]
mod source;

/// Crates whose module graph still has a cycle. Debt to remove: each entry
/// goes once its cycles are gone (the test then fails until it is removed,
/// so a crate cannot slide back).
const KNOWN_CYCLES: &[&str] = &[];

/// Whether `super::` paths count too: yes, so sibling modules that reach each
/// other through their parent are seen (the two such cycles, domain
/// `resilience::backoff` ↔ `retry` and loadtest `scenario::report` ↔ `run`,
/// were removed before this was turned on).
const FOLLOW_SUPER: bool = true;

/// The module depths compared: top-level modules, then one level below.
const LEVELS: [usize; 2] = [1, 2];

/// A module path (`registry::lookup`; the crate root is empty) to the
/// cleaned code of the files that make it up.
type Modules = BTreeMap<String, String>;
/// A module to the modules it names, at one level.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    let engine = Path::new(env!("CARGO_MANIFEST_DIR"));
    engine
        .parent()
        .map_or_else(|| engine.into(), Path::to_path_buf)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `src/` directories of the workspace's members (`members = [...]`).
fn crate_sources(root: &Path) -> Vec<String> {
    let manifest = read(&root.join("Cargo.toml"));
    let list = manifest
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("no `members = [...]` in the root Cargo.toml"));
    let members: Vec<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| format!("{m}/src"))
        .collect();
    assert!(members.len() > 1, "members not read: {list}");
    members
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found.sort();
}

/// A file's module path: `registry/mod.rs` is `registry`, `lib.rs` and
/// `main.rs` are the crate root (empty).
fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
        parts.clear();
    } else if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// A crate's modules, test-only module files left out.
fn modules(src: &Path) -> Modules {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut modules = Modules::new();
    let mut test_modules = BTreeSet::new();
    for file in &files {
        let module = module_path(src, file);
        let (code, tests) = strip_test_items(&strip_comments_and_literals(&read(file)));
        for name in tests {
            test_modules.insert(join(&module, &name));
        }
        let text = modules.entry(module).or_default();
        text.push_str(&code);
        text.push('\n');
    }
    modules.retain(|m, _| {
        !test_modules
            .iter()
            .any(|t| m == t || m.starts_with(&format!("{t}::")))
    });
    modules
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}::{child}")
    }
}

/// The module graph of a crate at `level`: each module (cut to `level`
/// segments) to the modules its paths name, each path naming the longest
/// module (of at most `level` segments) it starts with.
fn graph(modules: &Modules, level: usize, follow_super: bool) -> Graph {
    let cut = |m: &str| m.split("::").take(level).collect::<Vec<_>>().join("::");
    let known: BTreeSet<String> = modules.keys().map(|m| cut(m)).collect();
    let reexports = root_reexports(modules.get("").map_or("", String::as_str));
    let mut graph = Graph::new();
    for (module, code) in modules {
        let from = cut(module);
        let targets = graph.entry(from.clone()).or_default();
        for mut path in crate_paths(module, code, follow_super) {
            if let Some(real) = path.first().and_then(|p| reexports.get(p)) {
                path.splice(0..1, real.iter().cloned());
            }
            let named = (1..=level.min(path.len()))
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| known.contains(m));
            if let Some(to) = named.filter(|to| *to != from && !to.is_empty()) {
                targets.insert(to);
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        next: usize,
        index: BTreeMap<&'g str, (usize, usize)>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(w: &mut Walk<'g>, v: &'g str) {
        w.index.insert(v, (w.next, w.next));
        w.next += 1;
        w.stack.push(v);
        for to in w.graph.get(v).into_iter().flatten() {
            let low = match w.index.get(to.as_str()) {
                None => {
                    visit(w, to);
                    w.index[to.as_str()].1
                }
                Some(&(index, _)) if w.stack.contains(&to.as_str()) => index,
                Some(_) => continue,
            };
            let entry = w.index.entry(v).or_default();
            entry.1 = entry.1.min(low);
        }
        if w.index[v].0 == w.index[v].1 {
            let at = w.stack.iter().rposition(|m| *m == v).unwrap_or(0);
            let mut component: Vec<String> = w.stack.drain(at..).map(str::to_owned).collect();
            component.sort();
            if component.len() > 1 {
                w.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        next: 0,
        index: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

/// `src`'s cycles at every level, in words; empty when it has none.
fn crate_cycles(root: &Path, src: &str) -> Vec<String> {
    let modules = modules(&root.join(src));
    let mut found = Vec::new();
    for level in LEVELS {
        for cycle in cycles(&graph(&modules, level, FOLLOW_SUPER)) {
            found.push(format!("{src} level {level}: [{}]", cycle.join(", ")));
        }
    }
    found
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let root = workspace_root();
    let sources = crate_sources(&root);
    for known in KNOWN_CYCLES {
        assert!(
            sources.iter().any(|s| s == known),
            "{known} is not a workspace crate"
        );
    }
    let mut failures = Vec::new();
    for src in &sources {
        let found = crate_cycles(&root, src);
        match (KNOWN_CYCLES.contains(&src.as_str()), found.is_empty()) {
            (false, false) => failures.extend(found),
            (true, true) => failures.push(format!(
                "{src} has no cycle any more: remove it from KNOWN_CYCLES so none comes back"
            )),
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles between modules:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_api_depends_on_neither_storage_nor_providers() {
    let manifest = read(&workspace_root().join("api/Cargo.toml"));
    let mut section = String::new();
    let mut named = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
        }
        let regular = section == "dependencies" || section.starts_with("dependencies.");
        let target = section.starts_with("target.") && section.ends_with(".dependencies");
        if !(regular || target) {
            continue;
        }
        for forbidden in ["msgengine-storage", "msgengine-providers"] {
            let key = line.split(['=', '.']).next().map(str::trim);
            let renamed = line.contains(&format!("\"{forbidden}\""));
            if key == Some(forbidden) || renamed || section == format!("dependencies.{forbidden}") {
                named.push(format!("[{section}] {line}"));
            }
        }
    }
    assert!(named.is_empty(), "api/Cargo.toml depends on: {named:?}");
}

#[test]
fn the_graph_sees_grouped_imports_super_and_reexports_but_not_tests_or_comments() {
    let mut modules = Modules::new();
    let code = |src: &str| strip_test_items(&strip_comments_and_literals(src)).0;
    modules.insert("".into(), code("pub use c::helper;"));
    modules.insert(
        "a".into(),
        code("use crate::{b::{self, X}, z};\n// crate::c\n"),
    );
    modules.insert("b".into(), code("fn f() { crate::helper(); }"));
    modules.insert(
        "c".into(),
        code(r##"let s = "crate::a"; let r = br#"crate::a "x""#; /* crate::a */"##),
    );
    modules.insert(
        "c::d".into(),
        code("#[cfg(test)]\nmod t { use crate::a; }\nuse super::e::E;"),
    );
    modules.insert(
        "c::e".into(),
        code("fn g<'a>(x: &'a str) -> char { crate::c::d::h(); '{' }"),
    );
    let level1 = graph(&modules, 1, true);
    assert_eq!(level1["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(level1["b"], BTreeSet::from(["c".to_owned()]));
    assert!(level1["c"].is_empty(), "{level1:?}");
    assert!(cycles(&level1).is_empty());
    let level2 = graph(&modules, 2, true);
    assert_eq!(
        cycles(&level2),
        [vec!["c::d".to_owned(), "c::e".to_owned()]]
    );
}

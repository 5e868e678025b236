//! The module import graph of `src/` (docs/architecture.md, "Layers"): support modules below the
//! core, the core below the front-ends, no cycle, and no front-end importing another. Read from
//! the source text (every `crate::<module>` a module's non-test code names), so a new import
//! that breaks the layering fails here with the edge that does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. A module may import modules of its own layer (acyclically) and of layers
/// below; front-ends only their own group, the core and support.
const SUPPORT: &[&str] =
    &["cni", "netconf", "settings", "k8s", "legacy", "logging", "node_paths", "rbac", "stdout", "heap"];
const CORE: &[&str] = &["plan", "state", "steps", "pipeline"];
/// Each group is one front-end; groups never import each other.
const FRONT_ENDS: &[(&str, &[&str])] = &[
    ("CNI verbs", &["verbs"]),
    ("reconciler and operator CLI", &["reconcile", "cli"]),
    ("DRA kubelet plugin", &["dra"]),
];
/// The binary's composition root: dispatches to a front-end.
const TOP: &[&str] = &["entry"];

fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (!matches!(name.as_str(), "main" | "lib" | "bin")).then_some(name)
}

/// Non-test code of a file: everything before its `#[cfg(test)]` module.
fn non_test(text: &str) -> &str {
    text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text)
}

/// The `crate::<module>` names a text refers to (also inside `use crate::{a, b::c}`).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            for item in inner.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let Some(module) = top_module(&src, &path) else { continue };
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let targets = edges.entry(module.clone()).or_default();
            targets.extend(referenced(non_test(&text)).into_iter().filter(|t| *t != module));
        }
    }
    edges
}

fn layer_of(module: &str) -> Option<usize> {
    if SUPPORT.contains(&module) {
        Some(0)
    } else if CORE.contains(&module) {
        Some(1)
    } else if FRONT_ENDS.iter().any(|(_, ms)| ms.contains(&module)) {
        Some(2)
    } else if TOP.contains(&module) {
        Some(3)
    } else {
        None
    }
}

fn front_end_of(module: &str) -> Option<&'static str> {
    FRONT_ENDS.iter().find(|(_, ms)| ms.contains(&module)).map(|(name, _)| *name)
}

#[test]
fn every_module_has_a_layer() {
    for module in graph().keys() {
        assert!(
            layer_of(module).is_some(),
            "src/{module} is in no layer: add it to SUPPORT, CORE, FRONT_ENDS or TOP in tests/layers.rs and \
             docs/architecture.md"
        );
    }
}

#[test]
fn imports_only_point_down_and_front_ends_never_import_each_other() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, targets) in &g {
        let Some(lf) = layer_of(from) else { continue };
        for to in targets {
            let Some(lt) = layer_of(to) else { continue };
            if lt > lf {
                bad.push(format!("{from} (layer {lf}) imports {to} (layer {lt}): upwards"));
            }
            if lf == 2 && lt == 2 && front_end_of(from) != front_end_of(to) {
                bad.push(format!("front-end {from} imports front-end {to}"));
            }
        }
    }
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // Depth-first search with colours; report the first cycle found.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, &g, &mut state, &mut Vec::new()) {
                panic!("import cycle: {}", c.join(" -> "));
            }
        }
    }
}

#[test]
fn the_reader_sees_every_form_of_import() {
    let text = "use crate::plan::Record;\nuse crate::{state, steps::x};\nlet a = crate::k8s::Budget;";
    let got: Vec<String> = referenced(text).into_iter().collect();
    assert_eq!(got, ["k8s", "plan", "state", "steps"]);
    assert_eq!(non_test("a\n#[cfg(test)]\nmod tests { use crate::verbs; }"), "a\n");
}

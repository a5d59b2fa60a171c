//! The core's layers stay layers: every `crate::core::…` path in `rust/core` names a layer at
//! or below the file's own (units → market → book → policy → engine → persist), and the
//! modules within a layer import each other without a cycle. A parent module and the files
//! that extend it (`engine/mod.rs` and `engine/undo.rs`, …) count as one module.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const LAYERS: [&str; 6] = ["units", "market", "book", "policy", "engine", "persist"];

/// (layer, module) of a file under `rust/core`: `policy/score.rs` → ("policy", "score");
/// the folder's `mod.rs` and the engine's files → (layer, layer).
fn module_of(rel: &Path) -> (String, String) {
    let layer = rel.iter().next().unwrap().to_string_lossy().to_string();
    let stem = rel.file_stem().unwrap().to_string_lossy().to_string();
    let module = if stem == "mod" || layer == "engine" { layer.clone() } else { stem };
    (layer, module)
}

/// `source` with comments, string and char literals blanked (so `//` in a string or a path
/// in a comment is not read as code).
fn code_only(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let (mut out, mut i) = (String::with_capacity(source.len()), 0);
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' && (c.get(i + 2) == Some(&'\'') || (next == Some('\\') && c.get(i + 3) == Some(&'\''))) {
            i += if next == Some('\\') { 4 } else { 3 }; // a char literal; a lifetime has no closing quote
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The leaf paths of a use tree starting at `s` (after `crate::core::`): `a::b::{c, d::e}` gives
/// `a::b::c` and `a::b::d::e`, each as its segments.
fn use_tree(s: &str) -> Vec<Vec<String>> {
    fn parse(s: &[char], at: &mut usize) -> Vec<Vec<String>> {
        let skip = |at: &mut usize| {
            while *at < s.len() && s[*at].is_whitespace() {
                *at += 1;
            }
        };
        skip(at);
        if *at < s.len() && s[*at] == '{' {
            *at += 1;
            let mut all = Vec::new();
            loop {
                skip(at);
                if *at >= s.len() || s[*at] == '}' {
                    *at += 1;
                    return all;
                }
                all.extend(parse(s, at));
                skip(at);
                if *at < s.len() && s[*at] == ',' {
                    *at += 1;
                }
            }
        }
        let start = *at;
        while *at < s.len() && (s[*at].is_alphanumeric() || s[*at] == '_' || s[*at] == '*') {
            *at += 1;
        }
        let head: String = s[start..*at].iter().collect();
        if s.get(*at) == Some(&':') && s.get(*at + 1) == Some(&':') {
            *at += 2;
            return parse(s, at)
                .into_iter()
                .map(|mut p| {
                    p.insert(0, head.clone());
                    p
                })
                .collect();
        }
        vec![vec![head]]
    }
    let chars: Vec<char> = s.chars().collect();
    parse(&chars, &mut 0)
}

/// Every `crate::core::<layer>::<module>` path in `source` (use trees expanded), as (layer,
/// module); a path naming a layer's re-export counts as its `mod.rs`, and the engine's files
/// as one module.
fn imports(source: &str, file: &str) -> Vec<(String, String)> {
    let code = code_only(source);
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::core::") {
        for path in use_tree(&code[at + "crate::core::".len()..]) {
            let layer = path[0].as_str();
            assert!(
                LAYERS.contains(&layer),
                "{file}: `crate::core::{}` is not a layer path (use crate::core::<layer>::<module>)",
                path.join("::")
            );
            let module = path.get(1).filter(|m| m.chars().next().is_some_and(|c| c.is_lowercase()));
            let module = match module {
                Some(m) if layer != "engine" => m.clone(),
                _ => layer.to_string(),
            };
            out.push((layer.to_string(), module));
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn imports_go_down_the_layers_and_never_round_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust/core");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut graph: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    let mut checked = 0;
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap();
        if rel.components().count() == 1 {
            continue; // rust/core/mod.rs: the curated re-exports
        }
        let (layer, module) = module_of(rel);
        let rank = LAYERS.iter().position(|l| *l == layer).unwrap_or_else(|| panic!("{rel:?} is in no layer"));
        let source = fs::read_to_string(path).unwrap();
        // Relative paths would escape the check: only `use super::*` (unit tests) is allowed.
        let relative = code_only(&source).replace("use super::*;", "");
        assert!(!relative.contains("super::"), "{rel:?}: use crate::core::<layer>::<module> paths, not super::");
        for (to_layer, to_module) in imports(&source, &rel.to_string_lossy()) {
            let to_rank = LAYERS.iter().position(|l| *l == to_layer).unwrap();
            assert!(to_rank <= rank, "{rel:?} ({layer}) imports crate::core::{to_layer}::{to_module}, a higher layer");
            if to_layer == layer && to_module != module {
                graph.entry((layer.clone(), module.clone())).or_default().insert((to_layer, to_module));
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} import paths found: is the parser still reading the tree?");
    // Depth-first search for a back edge within a layer.
    fn visit(
        node: &(String, String),
        graph: &BTreeMap<(String, String), BTreeSet<(String, String)>>,
        state: &mut BTreeMap<(String, String), u8>,
        path: &mut Vec<String>,
    ) {
        match state.get(node) {
            Some(1) => panic!("import cycle: {} -> {}::{}", path.join(" -> "), node.0, node.1),
            Some(2) => return,
            _ => {}
        }
        state.insert(node.clone(), 1);
        path.push(format!("{}::{}", node.0, node.1));
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, state, path);
        }
        path.pop();
        state.insert(node.clone(), 2);
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        visit(node, &graph, &mut state, &mut Vec::new());
    }
}

#[test]
fn the_parser_sees_paths_layers_and_re_exports() {
    let src = "use crate::core::policy::score::{Lights, Policy}; // crate::core::engine::Engine\n\
               let x = crate::core::market::MarketSpec::default();";
    let ps = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(imports(src, "x.rs"), ps(&[("policy", "score"), ("policy", "score"), ("market", "market")]));
    // Use trees over several lines and layers; strings and char literals are not code.
    let tree = "use crate::core::{\n    book::cross::CrossBook,\n    policy::{alloc::Take, kernel},\n};\n\
                let s = \"// crate::core::persist::oplog\"; let q = '\"'; let r: &'static str = \"crate::core::x\";";
    assert_eq!(imports(tree, "x.rs"), ps(&[("book", "cross"), ("policy", "alloc"), ("policy", "kernel")]));
    assert_eq!(module_of(Path::new("engine/undo.rs")), ("engine".into(), "engine".into()));
    assert_eq!(module_of(Path::new("book/cross.rs")), ("book".into(), "cross".into()));
}

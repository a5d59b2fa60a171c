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

/// Every `crate::core::<layer>::<module>` path in `source`, comments excluded.
fn imports(source: &str, file: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap();
        for (at, _) in code.match_indices("crate::core::") {
            let rest = &code[at + "crate::core::".len()..];
            let parts: Vec<&str> = rest.split("::").take(2).collect();
            let layer = parts[0].trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_');
            assert!(LAYERS.contains(&layer), "{file}: `crate::core::{layer}` is not a layer path (use crate::core::<layer>::<module>)");
            let module: String =
                parts.get(1).map(|m| m.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()).unwrap_or_default();
            // `crate::core::market::MarketSpec` names the layer's own re-export: the layer's mod.rs.
            let is_module = !module.is_empty() && module.chars().next().unwrap().is_lowercase();
            let module = if is_module && layer != "engine" { module } else { layer.to_string() };
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
        for (to_layer, to_module) in imports(&fs::read_to_string(path).unwrap(), &rel.to_string_lossy()) {
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
    assert_eq!(imports(src, "x.rs"), vec![("policy".into(), "score".into()), ("market".into(), "market".into())]);
    assert_eq!(module_of(Path::new("engine/undo.rs")), ("engine".into(), "engine".into()));
    assert_eq!(module_of(Path::new("book/cross.rs")), ("book".into(), "cross".into()));
}

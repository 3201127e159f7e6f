//! The layering ARCHITECTURE.md promises, checked on the source: which
//! top-level module of `src/` imports which (`crate::…` paths outside
//! comments and `#[cfg(test)]` items), no cycle between them, and the
//! invariants phrased as absences.
//!
//! Reads the text rather than parsing Rust: the code is rustfmt-formatted,
//! so a `#[cfg(test)]` module ends at the first `}` in column 0 after it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The producers and consumers of values and commands, as ARCHITECTURE.md
/// names them.
/// Modules that import nothing of ours: the vocabulary and two text
/// helpers that config checks with (a sensor's regex and JSON path).
const LEAVES: &[&str] = &["vocab", "pattern", "json_path"];

const SOURCES: &[&str] = &["sources"];
const SINKS: &[&str] = &["mqtt", "web"];
const PRODUCERS: &[&str] = &["sources", "automations", "outputs"];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of `text` without comments and `#[cfg(test)]` items.
fn production_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut skipping: Option<&str> = None;
    let mut after_cfg_test = false;
    for line in text.lines() {
        if let Some(end) = skipping {
            if line == end || (end == ";" && line.trim_end().ends_with(';')) {
                skipping = None;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            after_cfg_test = true;
            continue;
        }
        if after_cfg_test {
            after_cfg_test = false;
            let indent = &line[..line.len() - trimmed.len()];
            if trimmed.ends_with(';') {
                continue;
            }
            skipping = Some(if trimmed.ends_with('{') {
                // The item's closing brace, at the item's indentation.
                Box::leak(format!("{indent}}}").into_boxed_str())
            } else {
                ";"
            });
            continue;
        }
        // A trailing comment (`x // see crate::y`) names no import.
        let code = match line.find("// ") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        lines.push(code);
    }
    lines
}

/// The top-level modules `crate::…` paths in `lines` name, including the
/// ones in `use crate::{a, b::c}` groups.
fn imported(lines: &[&str]) -> BTreeSet<String> {
    let text = lines.join("\n");
    let mut modules = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `majortom_crate::`, not ours
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() && name != "self" {
                    modules.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                modules.insert(name);
            }
        }
    }
    modules
}

/// The graph of `src/`: every top-level module and what it imports.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("below src");
        let first = relative.components().next().expect("a component").as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_owned();
        // The crate root only declares modules; the binary uses the library
        // from outside.
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        let lines = production_lines(&text);
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imported(&lines).into_iter().filter(|m| *m != module));
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Every broken rule of the layering, in words.
fn violations(graph: &Graph) -> Vec<String> {
    let mut broken = Vec::new();
    if let Some(cycle) = find_cycle(graph) {
        broken.push(format!("an import cycle: {}", cycle.join(" → ")));
    }
    let imports = |module: &str| graph.get(module).cloned().unwrap_or_default();
    let only = |module: &str, allowed: &[&str], rule: &str, broken: &mut Vec<String>| {
        for import in imports(module) {
            if !allowed.contains(&import.as_str()) {
                broken.push(format!("{module} imports {import}: {rule}"));
            }
        }
    };
    for leaf in LEAVES {
        only(leaf, &[], "a leaf imports nothing of ours", &mut broken);
    }
    only(
        "config",
        LEAVES,
        "config imports nothing but the leaves (the vocabulary, pattern, json_path)",
        &mut broken,
    );
    only(
        "fleet",
        &["hub", "vocab", "time"],
        "the fleet table reads the hub (and keeps the tick grid of `time`) and does no MQTT or HTTP itself (the sinks carry it)",
        &mut broken,
    );
    only(
        "hub",
        &["vocab"],
        "the hub imports no producer or consumer (only the vocabulary)",
        &mut broken,
    );
    for source in SOURCES {
        for sink in SINKS.iter().chain(&["sim_panel", "app"]) {
            if imports(source).contains(*sink) {
                broken.push(format!("{source} imports {sink}: sources never import sinks"));
            }
        }
    }
    for sink in SINKS {
        for forbidden in PRODUCERS.iter().chain(&["hal", "app"]) {
            if imports(sink).contains(*forbidden) {
                broken.push(format!(
                    "{sink} imports {forbidden}: sinks send commands and never reach producers or the hal"
                ));
            }
        }
    }
    broken
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_modules_should_keep_the_layering_of_architecture_md() {
    let graph = graph(&src());
    for module in ["vocab", "config", "hub", "sources", "mqtt", "web", "app"] {
        assert!(
            graph.contains_key(module),
            "no module `{module}` found in src/: {graph:?}"
        );
    }
    assert!(
        graph["app"].contains("hub") && graph["sources"].contains("hub"),
        "the scan finds no imports at all: {graph:?}"
    );
    for (module, imports) in &graph {
        println!("{module} → {}", imports.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let broken = violations(&graph);
    assert!(broken.is_empty(), "the layering is broken:\n  {}", broken.join("\n  "));
}

#[test]
fn only_the_rppal_backend_should_import_rppal() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let uses_rppal = production_lines(&text).iter().any(|l| l.contains("rppal::"));
        let allowed = file.ends_with("hal/rpi.rs");
        assert!(!uses_rppal || allowed, "{} imports rppal", file.display());
    }
}

#[test]
fn the_checker_should_see_cycles_broken_rules_and_skip_tests_and_comments() {
    let source = "//! See crate::web.\nuse crate::{hub, vocab::Press};\nuse crate::mqtt::x; // crate::app\n\
                  fn f() { crate::config::load(); }\n#[cfg(test)]\nmod tests {\n    use crate::web;\n}\n\
                  #[cfg(test)]\nuse crate::outputs;\n";
    let found = imported(&production_lines(source));
    let expected: BTreeSet<String> = ["config", "hub", "mqtt", "vocab"].map(String::from).into();
    assert_eq!(found, expected);

    let mut graph = Graph::new();
    let mut edge = |from: &str, to: &str| {
        graph.entry(from.to_owned()).or_default().insert(to.to_owned());
    };
    edge("config", "sources");
    edge("sources", "config");
    edge("sources", "web");
    edge("hub", "vocab");
    let broken = violations(&graph);
    assert!(broken.iter().any(|b| b.contains("cycle")), "{broken:?}");
    assert!(
        broken.iter().any(|b| b.starts_with("config imports sources")),
        "{broken:?}"
    );
    assert!(
        broken.iter().any(|b| b.starts_with("sources imports web")),
        "{broken:?}"
    );
    assert_eq!(broken.len(), 3, "{broken:?}");
}

//! Dependencies run one way. Each top-level module of `src/` has a layer, and a
//! module may name (`crate::x`) only modules of lower layers: the engine knows
//! nothing of the window, a backend nothing of the engine that drives it, and a
//! kernel nothing at all. A plain scan of the source, so that a forbidden `use`
//! that comes back fails here, with the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lowest first. The README's "How it is built" draws the same picture.
const LAYERS: &[(&str, u32)] = &[
    ("workload", 0),
    ("metrics", 0),
    ("spec", 1),
    ("latency_server", 1),
    ("wire", 2),
    ("report", 2),
    ("backends", 3),
    ("engine", 4),
    ("reliability", 5),
    ("measure", 5),
    ("server", 5),
    ("gui", 6),
    ("cli", 6),
];

/// Types a module may not reach into even when the layers would allow it.
const FORBIDDEN_PATHS: &[(&str, &str, &str)] = &[(
    "backends::gil",
    "backends",
    "the GIL's report types live in report::gil; only the backends use the emulator",
)];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module a file belongs to: `src/engine/mod.rs` → `engine`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` a line of code names, `use crate::{a, b::c}` included.
fn named_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// What is wrong with `module`'s line `code`, if anything.
fn violations(module: &str, code: &str) -> Vec<String> {
    let code = code.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let Some(own) = layer(module) else {
        return vec![format!("module `{module}` has no layer in tests/layers.rs")];
    };
    for other in named_modules(code) {
        if other == module {
            continue;
        }
        match layer(&other) {
            None => out.push(format!("`{other}` has no layer in tests/layers.rs")),
            Some(l) if l >= own => out.push(format!(
                "`{module}` (layer {own}) names `{other}` (layer {l}): dependencies run downwards only"
            )),
            _ => {}
        }
    }
    for (path, owner, why) in FORBIDDEN_PATHS {
        if module != *owner && code.contains(path) {
            out.push(format!("`{module}` names `{path}`: {why}"));
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn dependencies_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut found = Vec::new();
    let mut edges: BTreeMap<(String, String), usize> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for v in violations(&module, line) {
                found.push(format!("{}:{}: {v}", file.display(), n + 1));
            }
            for other in named_modules(line.split("//").next().unwrap_or("")) {
                if other != module {
                    *edges.entry((module.clone(), other)).or_default() += 1;
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "one-way dependencies broken:\n{}",
        found.join("\n")
    );
    // The scan must have seen the graph it checks, not an empty tree.
    assert!(
        edges.contains_key(&("engine".into(), "backends".into())),
        "{edges:?}"
    );
    assert!(
        edges.contains_key(&("backends".into(), "workload".into())),
        "{edges:?}"
    );
}

#[test]
fn the_scan_catches_what_it_forbids() {
    assert!(violations("backends", "use crate::engine::RunContext;")[0].contains("downwards"));
    assert!(!violations("workload", "use crate::{spec::RunSpec, wire};").is_empty());
    assert_eq!(
        violations("workload", "use crate::{spec::RunSpec, wire};").len(),
        2
    );
    assert!(violations("gui", "use crate::backends::gil::GilHold;")[0].contains("report::gil"));
    assert!(violations("report", "let x = crate::gui::app::X;").len() == 1);
    assert!(violations("newthing", "use crate::spec::RunSpec;")[0].contains("no layer"));
    // Allowed: downwards, within the module, and in comments.
    assert!(violations("engine", "use crate::backends::context::RunContext;").is_empty());
    assert!(violations("backends", "use crate::backends::gil::GilEmulator;").is_empty());
    assert!(violations("spec", "// unlike crate::engine, this is data").is_empty());
}

//! The house rule, checked: data flow one way through procmem's modules, as the README's layout
//! says — generate → model → train → embed → memory → dense → eval → app, with the shared base
//! modules below all of them — and the CLI never reaches into the app. Each `crate::<module>`
//! path in a module's files is an edge; an edge to a later stage fails this test (the way
//! import-linter's "layers" contract guards Python projects).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Shared utilities: usable by every stage, using no stage.
const BASE: [&str; 11] = [
    "error",
    "rng",
    "hash",
    "fsio",
    "linalg",
    "imageio",
    "palette",
    "paths",
    "resample",
    "datasets",
    "test_support",
];

/// The stages in the order data flow through them; a stage may use the base and earlier stages.
const STAGES: [&str; 8] = [
    "generate", "model", "train", "embed", "memory", "dense", "eval", "app",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The top-level modules a source text names: `crate::x…` paths and `use crate::{x, y…}` groups.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// Where a module may reach: the base, and for a stage the stages before it.
fn allowed(from: &str, to: &str) -> bool {
    if from == to || BASE.contains(&to) {
        return true;
    }
    let rank = |m: &str| STAGES.iter().position(|s| *s == m);
    match (rank(from), rank(to)) {
        (Some(a), Some(b)) => b < a,
        // A base module uses no stage.
        (None, Some(_)) => false,
        _ => true,
    }
}

#[test]
fn every_top_level_module_has_a_room() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
        })
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let placed: BTreeSet<String> = BASE
        .iter()
        .chain(STAGES.iter())
        .map(|m| m.to_string())
        .collect();
    assert_eq!(
        declared, placed,
        "lib.rs's modules and this test's table must list the same modules"
    );
}

#[test]
fn data_flow_one_way_through_the_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for module in BASE.iter().chain(STAGES.iter()) {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        rust_files(&src.join(format!("{module}.rs")), &mut files);
        assert!(!files.is_empty(), "no source for module `{module}`");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for to in named_modules(&text) {
                if !allowed(module, &to) {
                    violations.push(format!(
                        "{} ({module}) uses crate::{to}",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "backward edges:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_cli_never_reaches_into_the_app() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("cli"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("procmem::app"),
            "{} uses the app's code; shared code belongs in the library's stages",
            file.display()
        );
    }
}

#[test]
fn the_parser_finds_paths_and_groups() {
    let text = "use crate::error::{Error, Result};\nuse crate::{memory::Memory, rng::Rng};\nlet x = crate::hash::fnv1a(b);";
    let found: Vec<String> = named_modules(text).into_iter().collect();
    assert_eq!(found, ["error", "hash", "memory", "rng"]);
    assert!(
        !allowed("memory", "eval")
            && allowed("eval", "memory")
            && !allowed("rng", "generate")
            && allowed("app", "rng")
    );
}

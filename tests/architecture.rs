//! The layering of docs/ARCHITECTURE.md, checked: every `crate::…` path in sepo-core's library code
//! (test code excluded) names a module of a strictly lower layer, so the import graph is a DAG and data
//! flows one way. A new module must be given a layer here and in the document.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of each top-level module of sepo-core (0 = leaf).
const LAYERS: &[(&str, usize)] = &[
    ("error", 0),
    ("categorical", 1),
    ("check", 1),
    ("schedule", 1),
    ("graph", 2),
    ("nn", 2),
    ("sequences", 2),
    ("data", 2),
    ("weight", 2),
    ("diffusion", 3),
    ("reward", 3),
    ("score", 3),
    ("sample", 4),
    ("flow", 4),
    ("loss", 5),
    ("text", 5),
    ("policy", 6),
    ("train", 7),
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library part of a source file: test modules, test-only files and comments removed.
fn library_code(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let in_tests_dir = path.components().any(|c| c.as_os_str() == "tests");
    if in_tests_dir || name.ends_with("tests.rs") || name == "testing.rs" {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let mut code = String::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        // An inline test module ends the library part; `mod tests;` (a file of its own, skipped
        // above) does not.
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod ") && !next.ends_with(';') {
            break;
        }
        let line = line.split("//").next().unwrap_or("");
        code.push_str(line);
        code.push('\n');
    }
    Some(code)
}

#[test]
fn every_import_runs_down_the_layers() {
    let layers: BTreeMap<&str, usize> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let module = first.trim_end_matches(".rs");
        if module == "lib" {
            continue;
        }
        seen.insert(module.to_string());
        let Some(&own) = layers.get(module) else {
            violations.push(format!("{module} (from {}) has no layer", rel.display()));
            continue;
        };
        let Some(code) = library_code(file) else {
            continue;
        };
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let target: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if target.is_empty() || target == module {
                continue;
            }
            match layers.get(target.as_str()) {
                Some(&t) if t < own => {}
                Some(&t) => violations.push(format!(
                    "{} (layer {own}) imports {target} (layer {t})",
                    rel.display()
                )),
                None => {
                    violations.push(format!("{} imports unknown module {target}", rel.display()))
                }
            }
        }
    }
    for (name, _) in LAYERS {
        assert!(
            seen.contains(*name),
            "layer table names {name}, which is not a module"
        );
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
}

/// Every host upload of library code goes through `nn::upload` / `nn::upload_f64s` (a wrong length or
/// a failed allocation is a typed error), never dfdx's panicking `tensor_from_vec`; and no function
/// needs a `too_many_arguments` allowance (docs/ARCHITECTURE.md, "Signatures").
#[test]
fn library_code_uploads_through_nn_and_keeps_signatures_narrow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut found = Vec::new();
    for file in &files {
        let Some(code) = library_code(file) else {
            continue;
        };
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        for (at, _) in code.match_indices("tensor_from_vec") {
            if !code[..at].ends_with("try_") {
                found.push(format!("{rel}: tensor_from_vec"));
            }
        }
        if code.contains("too_many_arguments") {
            found.push(format!("{rel}: too_many_arguments"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

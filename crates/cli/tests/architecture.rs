//! ARCHITECTURE.md against the tree: the code map names every crate and every source
//! file there is, and nothing else; every `crates/…` path the documentation mentions
//! exists. Needs no binary and no network.
//!
//! The code map's convention (stated in ARCHITECTURE.md above the map): inside the
//! first fenced block after `## Code map`, after the line `crates/`,
//! - a line indented by exactly two spaces, `name/   package — role`, is the crate
//!   `crates/name` whose package is `package`;
//! - a line indented by exactly four spaces names a file of that crate by its first
//!   word, a path relative to `src/` ending in `.rs`;
//! - deeper lines continue a description; a line at the left margin ends the crates
//!   and names a top-level path of the repository (its first word must exist).
//!
//! Test-only files (`tests.rs`, anything under a `tests/` directory) are not listed.
//!
//! CONTRIBUTING.md's crate table has a row per crate too, with its package name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// One crate of the code map: its package name and the files listed under it.
#[derive(Debug, Default, PartialEq)]
struct Listed {
    package: String,
    files: Vec<String>,
}

/// What the code map says: crates by directory name, and the top-level paths.
#[derive(Debug, Default)]
struct CodeMap {
    crates: BTreeMap<String, Listed>,
    top_level: Vec<String>,
    problems: Vec<String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Reads the code map block of `doc` (the text of ARCHITECTURE.md).
fn code_map(doc: &str) -> CodeMap {
    let mut map = CodeMap::default();
    let mut lines = doc.lines().enumerate();
    if !lines.by_ref().any(|(_, l)| l.trim_end() == "## Code map") {
        map.problems
            .push("ARCHITECTURE.md has no `## Code map` heading".into());
        return map;
    }
    if !lines.by_ref().any(|(_, l)| l.trim_end() == "```") {
        map.problems
            .push("the code map has no fenced block after its heading".into());
        return map;
    }
    let mut in_crates = false;
    let mut current: Option<String> = None;
    for (i, line) in lines {
        let n = i + 1;
        if line.trim_end() == "```" {
            return map;
        }
        let Some(first) = line.split_whitespace().next() else {
            continue;
        };
        match indent(line) {
            0 => {
                current = None;
                in_crates = first == "crates/";
                if !in_crates {
                    map.top_level.push(first.to_string());
                }
            }
            2 if in_crates => {
                let words: Vec<&str> = line.split_whitespace().collect();
                match (first.strip_suffix('/'), words.get(1), words.get(2)) {
                    (Some(name), Some(package), Some(&"—")) => {
                        if map.crates.contains_key(name) {
                            map.problems.push(format!(
                                "ARCHITECTURE.md:{n}: the crate `{name}/` is listed twice; remove one"
                            ));
                        }
                        map.crates.insert(
                            name.to_string(),
                            Listed {
                                package: package.to_string(),
                                files: Vec::new(),
                            },
                        );
                        current = Some(name.to_string());
                    }
                    _ => map.problems.push(format!(
                        "ARCHITECTURE.md:{n}: a crate line is `  name/   package — role`, not {line:?}"
                    )),
                }
            }
            4 if in_crates => match (&current, first.ends_with(".rs")) {
                (Some(name), true) => {
                    let files = &mut map.crates.get_mut(name).expect("current crate").files;
                    if files.iter().any(|f| f == first) {
                        map.problems.push(format!(
                            "ARCHITECTURE.md:{n}: `{first}` is listed twice under `{name}/`; remove one"
                        ));
                    }
                    files.push(first.to_string());
                }
                _ => map.problems.push(format!(
                    "ARCHITECTURE.md:{n}: a four-space line names a crate's file (`path.rs`), not {line:?}"
                )),
            },
            _ => {}
        }
    }
    map.problems
        .push("the code map's fenced block is never closed".into());
    map
}

/// The package name of `crates/<dir>/Cargo.toml`.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}

/// Whether a path under `src/` is a test-only file.
fn test_only(rel: &str) -> bool {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let file = parts.pop();
    file == Some("tests.rs") || parts.contains(&"tests")
}

/// Every non-test `.rs` file under `dir`, relative to it, with `/` separators.
fn sources(dir: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let path = entry.path();
            if path.is_dir() {
                walk(&path, &format!("{rel}/"), out);
            } else if name.ends_with(".rs") && !test_only(&rel) {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, "", &mut out);
    out
}

/// The crates of the tree: directory name → (package name, non-test sources).
fn tree(root: &Path) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut crates = BTreeMap::new();
    for entry in fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        let dir = entry.path();
        let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let package = package_name(&manifest).unwrap_or_default();
        crates.insert(name, (package, sources(&dir.join("src"))));
    }
    crates
}

/// What differs between the code map and the tree, each as what to add or remove.
fn differences(
    map: &CodeMap,
    tree: &BTreeMap<String, (String, BTreeSet<String>)>,
    root: &Path,
) -> Vec<String> {
    let mut out = map.problems.clone();
    for (name, (package, files)) in tree {
        let Some(listed) = map.crates.get(name) else {
            out.push(format!(
                "add to the code map: the crate line `  {name}/   {package} — <role>` and its files {}",
                files.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        if &listed.package != package {
            out.push(format!(
                "in the code map, `{name}/` names the package `{}`; crates/{name}/Cargo.toml says `{package}`",
                listed.package
            ));
        }
        for f in files {
            if !listed.files.contains(f) {
                out.push(format!(
                    "add to the code map under `{name}/`: `    {f}` (crates/{name}/src/{f})"
                ));
            }
        }
        for f in &listed.files {
            if !files.contains(f) {
                let why = if test_only(f) {
                    "a test-only file"
                } else {
                    "no such file"
                };
                out.push(format!(
                    "remove from the code map under `{name}/`: `{f}` (crates/{name}/src/{f}: {why})"
                ));
            }
        }
    }
    for name in map.crates.keys() {
        if !tree.contains_key(name) {
            out.push(format!(
                "remove from the code map: the crate `{name}/` (there is no crates/{name}/Cargo.toml)"
            ));
        }
    }
    for path in &map.top_level {
        if !root.join(path).exists() {
            out.push(format!(
                "remove from the code map: the top-level `{path}` (it does not exist)"
            ));
        }
    }
    out
}

/// Every `crates/…` path written in `text`, with its line number. A path ends at
/// the first character that cannot be part of one; trailing dots end a sentence.
/// Paths with a placeholder or a wildcard (`crates/*/src`, `crates/<name>`) and
/// URLs (`https://crates.io/crates/x`) are not paths of this repository.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let part = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find("crates/") {
            let start = from + at;
            from = start + "crates/".len();
            if line[..start].chars().next_back().is_some_and(part) {
                continue;
            }
            let len = line[start..]
                .find(|c: char| !part(c))
                .unwrap_or(line.len() - start);
            let next = line[start + len..].chars().next();
            if matches!(next, Some('*' | '<' | '{')) {
                continue;
            }
            let path = line[start..start + len].trim_end_matches('.');
            out.push((i + 1, path.to_string()));
        }
    }
    out
}

/// The documents whose `crates/…` paths must exist.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = ["ARCHITECTURE.md", "README.md", "CONTRIBUTING.md"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let mut more: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

#[test]
fn the_code_map_lists_every_crate_and_source_file_and_nothing_else() {
    let root = repo_root();
    let doc = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let diff = differences(&code_map(&doc), &tree(&root), &root);
    assert!(
        diff.is_empty(),
        "ARCHITECTURE.md's code map and the tree disagree:\n- {}",
        diff.join("\n- ")
    );
}

#[test]
fn every_crates_path_in_the_documentation_exists() {
    let root = repo_root();
    let mut missing = Vec::new();
    for doc in documents(&root) {
        let text = fs::read_to_string(&doc).expect("a document");
        let shown = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        for (line, path) in crate_paths(&text) {
            if !root.join(&path).exists() {
                missing.push(format!("{shown}:{line}: `{path}` does not exist"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths in the documentation that are not in the tree (fix or remove them):\n- {}",
        missing.join("\n- ")
    );
}

/// CONTRIBUTING.md's crate table: rows `| \`crates/<dir>\` (\`<package>\`) | job |`,
/// as (dir, package).
fn contributing_crates(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("| `crates/")?;
            let (dir, rest) = rest.split_once('`')?;
            let package = rest.trim_start().strip_prefix("(`")?.split_once('`')?.0;
            Some((dir.to_string(), package.to_string()))
        })
        .collect()
}

#[test]
fn contributing_lists_every_crate_with_its_package() {
    let root = repo_root();
    let text = fs::read_to_string(root.join("CONTRIBUTING.md")).expect("CONTRIBUTING.md");
    let listed: BTreeMap<String, String> = contributing_crates(&text).into_iter().collect();
    let mut wrong = Vec::new();
    for (dir, (package, _)) in tree(&root) {
        match listed.get(&dir) {
            None => wrong.push(format!(
                "add to CONTRIBUTING.md's crate table: | `crates/{dir}` (`{package}`) | <its job> |"
            )),
            Some(p) if p != &package => wrong.push(format!(
                "in CONTRIBUTING.md's crate table, `crates/{dir}` is (`{p}`); its package is `{package}`"
            )),
            Some(_) => {}
        }
    }
    for dir in listed.keys() {
        if !root.join("crates").join(dir).join("Cargo.toml").exists() {
            wrong.push(format!(
                "remove from CONTRIBUTING.md's crate table: `crates/{dir}` (no such crate)"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checks_name_what_to_add_and_what_to_remove() {
    let doc = "## Code map\n\n```\ncrates/\n  a/          pkg-a — role\n    lib.rs      the crate\n                (continued)\n    gone.rs     a file that went\n  old/        pkg-old — a crate that went\nREADME.md     the readme\n```\n";
    let map = code_map(doc);
    assert!(map.problems.is_empty(), "{:?}", map.problems);
    let mut tree = BTreeMap::new();
    tree.insert(
        "a".to_string(),
        (
            "pkg-a".to_string(),
            BTreeSet::from(["lib.rs".to_string(), "new/mod.rs".to_string()]),
        ),
    );
    tree.insert(
        "b".to_string(),
        ("pkg-b".to_string(), BTreeSet::from(["lib.rs".to_string()])),
    );
    let diff = differences(&map, &tree, &repo_root());
    assert_eq!(
        diff,
        [
            "add to the code map under `a/`: `    new/mod.rs` (crates/a/src/new/mod.rs)",
            "remove from the code map under `a/`: `gone.rs` (crates/a/src/gone.rs: no such file)",
            "add to the code map: the crate line `  b/   pkg-b — <role>` and its files `lib.rs`",
            "remove from the code map: the crate `old/` (there is no crates/old/Cargo.toml)",
        ]
    );
    assert!(test_only("journal/tests.rs") && test_only("tests/x.rs") && !test_only("lib.rs"));
    assert_eq!(
        crate_paths("see `crates/lb/src/h1.rs`. and https://crates.io/crates/s3s or crates/*/src"),
        [(1, "crates/lb/src/h1.rs".to_string())]
    );
}

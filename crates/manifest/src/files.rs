//! Finds the files of a Pantstack monorepo in the seed's layout:
//!
//! ```text
//! stack/infra/foundation/{Pulumi.yaml, Pulumi.<stack>.yaml, pantstack.yaml}
//! modules/<service>/infrastructure/{Pulumi.yaml, Pulumi.<stack>.yaml, pantstack.yaml}
//! ```
//!
//! Synchronous `std::fs` reads only; every file is size-checked before it is read.

use crate::diag::{Diagnostic, Span};
use std::path::{Path, PathBuf};

pub const FOUNDATION_DIR: &str = "stack/infra/foundation";
pub const MODULES_DIR: &str = "modules";
pub const INFRA_DIR: &str = "infrastructure";
pub const PROJECT_FILE: &str = "Pulumi.yaml";
pub const MANIFEST_FILE: &str = "pantstack.yaml";
/// Files larger than this are refused without being read.
pub const MAX_FILE_BYTES: u64 = 512 * 1024;

/// One file's text, with its path relative to the monorepo root (`/`-separated).
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// The three kinds of file in a layer directory.
#[derive(Clone, Debug, Default)]
pub struct LayerFiles {
    /// Directory relative to the root, e.g. `modules/api/infrastructure`.
    pub dir: String,
    pub project: Option<SourceFile>,
    /// `(stack name, file)` for each `Pulumi.<stack>.yaml`, sorted by name.
    pub stacks: Vec<(String, SourceFile)>,
    pub manifest: Option<SourceFile>,
}

/// Every file of the monorepo that Pantstack reads.
#[derive(Clone, Debug, Default)]
pub struct RepoFiles {
    pub root: PathBuf,
    pub foundation: LayerFiles,
    /// `(service directory name, files)`, sorted by name.
    pub services: Vec<(String, LayerFiles)>,
}

impl RepoFiles {
    /// The text of a file by its relative path, for rendering diagnostics.
    pub fn text_of(&self, path: &str) -> Option<&str> {
        std::iter::once(&self.foundation)
            .chain(self.services.iter().map(|(_, l)| l))
            .flat_map(|l| {
                l.project
                    .iter()
                    .chain(l.manifest.iter())
                    .chain(l.stacks.iter().map(|(_, f)| f))
            })
            .find(|f| f.path == path)
            .map(|f| f.text.as_str())
    }
}

/// Walks up from `start` to the first directory that holds `stack/infra/foundation`.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join(FOUNDATION_DIR).is_dir() {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    None
}

/// Reads every Pantstack file under `root`. Problems reading files (missing
/// directories, unreadable or oversized files) come back as diagnostics; the files
/// that could be read are returned regardless.
pub fn load(root: &Path) -> (RepoFiles, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut repo = RepoFiles {
        root: root.to_path_buf(),
        ..RepoFiles::default()
    };
    if !root.join(FOUNDATION_DIR).is_dir() {
        diags.push(
            Diagnostic::error(
                "missing-foundation",
                FOUNDATION_DIR,
                Span::default(),
                "",
                format!(
                    "no foundation directory `{FOUNDATION_DIR}` under {}",
                    root.display()
                ),
            )
            .with_help(
                "run `pantstack init DIR` to create a monorepo, or pass --root to point at one",
            ),
        );
    }
    repo.foundation = load_layer(root, FOUNDATION_DIR, &mut diags);
    let modules = root.join(MODULES_DIR);
    if let Ok(entries) = std::fs::read_dir(&modules) {
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            let dir = format!("{MODULES_DIR}/{name}/{INFRA_DIR}");
            if !root.join(&dir).is_dir() {
                diags.push(
                    Diagnostic::warning(
                        "module-without-infrastructure",
                        &format!("{MODULES_DIR}/{name}"),
                        Span::default(),
                        "",
                        format!(
                            "module `{name}` has no `{INFRA_DIR}/` directory and is not deployed"
                        ),
                    )
                    .with_help(format!("run `pantstack new {name} --kind http` to add one")),
                );
                continue;
            }
            let layer = load_layer(root, &dir, &mut diags);
            repo.services.push((name, layer));
        }
    }
    (repo, diags)
}

fn load_layer(root: &Path, dir: &str, diags: &mut Vec<Diagnostic>) -> LayerFiles {
    let mut layer = LayerFiles {
        dir: dir.to_string(),
        ..LayerFiles::default()
    };
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return layer;
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let rel = format!("{dir}/{name}");
        if name == PROJECT_FILE {
            layer.project = read_file(root, &rel, diags);
        } else if name == MANIFEST_FILE {
            layer.manifest = read_file(root, &rel, diags);
        } else if let Some(stack) = name
            .strip_prefix("Pulumi.")
            .and_then(|n| n.strip_suffix(".yaml"))
        {
            if let Some(f) = read_file(root, &rel, diags) {
                layer.stacks.push((stack.to_string(), f));
            }
        } else if name.ends_with(".yml")
            && (name.starts_with("Pulumi") || name.starts_with("pantstack"))
        {
            diags.push(
                Diagnostic::warning(
                    "ignored-file",
                    &rel,
                    Span::default(),
                    "",
                    format!("`{name}` is ignored"),
                )
                .with_help("Pantstack reads `.yaml` files; rename it with a `.yaml` extension"),
            );
        }
    }
    layer
}

fn read_file(root: &Path, rel: &str, diags: &mut Vec<Diagnostic>) -> Option<SourceFile> {
    let full = root.join(rel);
    match std::fs::metadata(&full) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            diags.push(
                Diagnostic::error(
                    "file-too-large",
                    rel,
                    Span::default(),
                    "",
                    format!(
                        "file is {} bytes; manifests are limited to {MAX_FILE_BYTES} bytes",
                        m.len()
                    ),
                )
                .with_help("split the file, or remove generated content from it"),
            );
            return None;
        }
        Ok(_) => {}
        Err(e) => {
            diags.push(unreadable(rel, &e));
            return None;
        }
    }
    match std::fs::read(&full) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(SourceFile {
                path: rel.to_string(),
                text,
            }),
            Err(e) => {
                diags.push(Diagnostic::error(
                    "not-utf8",
                    rel,
                    Span::default(),
                    "",
                    format!(
                        "file is not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                ));
                None
            }
        },
        Err(e) => {
            diags.push(unreadable(rel, &e));
            None
        }
    }
}

fn unreadable(rel: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::error(
        "unreadable-file",
        rel,
        Span::default(),
        "",
        format!("cannot read: {e}"),
    )
}

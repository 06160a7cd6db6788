//! The seed's Pulumi-style files, read as they appear in the seed:
//! `Pulumi.yaml` (`name`, `runtime`, `description`) and `Pulumi.<stack>.yaml`
//! (`config:` with namespaced keys such as `aws:region` or `pantstack:minCapacity`).

use crate::diag::Span;
use crate::read::{Reader, join};
use crate::yaml::Node;

/// Keys Pulumi documents for a project file; others are reported as unknown.
const PROJECT_KEYS: &[&str] = &[
    "name",
    "runtime",
    "description",
    "main",
    "config",
    "backend",
    "options",
    "template",
    "stackConfigDir",
    "plugins",
    "author",
    "license",
    "website",
];
const RUNTIMES: &[&str] = &["python", "nodejs", "go", "dotnet", "java", "yaml"];
const STACK_KEYS: &[&str] = &[
    "config",
    "secretsprovider",
    "encryptedkey",
    "encryptionsalt",
    "environment",
];

/// `Pulumi.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectFile {
    pub name: Option<(String, Span)>,
    pub runtime: Option<String>,
    pub description: Option<String>,
}

/// `namespace:key: value` of a stack file's `config:`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigEntry {
    pub namespace: String,
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// `Pulumi.<stack>.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct StackFile {
    pub stack: String,
    pub config: Vec<ConfigEntry>,
}

impl StackFile {
    pub fn get(&self, namespace: &str, key: &str) -> Option<&ConfigEntry> {
        self.config
            .iter()
            .find(|e| e.namespace == namespace && e.key == key)
    }
}

pub fn read_project(r: &mut Reader<'_>, node: &Node) -> ProjectFile {
    let mut out = ProjectFile {
        name: None,
        runtime: None,
        description: None,
    };
    let Some(f) = r.map(node, "", PROJECT_KEYS) else {
        return out;
    };
    match f.get("name") {
        Some(n) => out.name = r.string(n, "name").map(|s| (s, n.span)),
        None => {
            r.error(
                "missing-key",
                f.span,
                "name",
                "`name` is required in Pulumi.yaml",
            )
            .help = Some("add `name: <project-name>`".into());
        }
    }
    match f.get("runtime") {
        Some(n) => {
            // `runtime: python` or `runtime: {name: python, options: {...}}`
            let name_node = n.get("name").unwrap_or(n);
            out.runtime = r.one_of(name_node, "runtime", RUNTIMES);
        }
        None => {
            r.error(
                "missing-key",
                f.span,
                "runtime",
                "`runtime` is required in Pulumi.yaml",
            )
            .help = Some(format!(
                "add `runtime: python` (one of {})",
                RUNTIMES.join(", ")
            ));
        }
    }
    if let Some(n) = f.get("description") {
        out.description = r.text(n, "description");
    }
    out
}

pub fn read_stack(r: &mut Reader<'_>, stack: &str, node: &Node) -> StackFile {
    let mut out = StackFile {
        stack: stack.to_string(),
        config: Vec::new(),
    };
    let Some(f) = r.map(node, "", STACK_KEYS) else {
        return out;
    };
    let Some(config) = f.get("config") else {
        return out;
    };
    let Some(entries) = r.named_map(config, "config") else {
        return out;
    };
    for (key, key_node, value) in entries.entries() {
        let field = join("config", &key);
        match key.split_once(':') {
            Some((ns, k)) if !ns.is_empty() && !k.is_empty() => out.config.push(ConfigEntry {
                namespace: ns.to_string(),
                key: k.to_string(),
                key_span: key_node.span,
                value: value.clone(),
            }),
            _ => {
                r.error(
                    "invalid-config-key",
                    key_node.span,
                    &field,
                    format!("config key `{key}` has no namespace"),
                )
                .help = Some(format!("write it as `pantstack:{key}` (or `aws:{key}`)"));
            }
        }
    }
    out
}

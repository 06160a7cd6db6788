//! The foundation layer: `stack/infra/foundation/pantstack.yaml` (project slug,
//! registry, GitHub repository for OIDC trust, VPC layout, environments, previews).

use crate::names;
use crate::service::Located;
use crate::settings::Layer;
use crate::values::settings_section;
use pantstack_manifest::read::join;
use pantstack_manifest::{Node, Reader, Span};

#[derive(Clone, Debug, PartialEq)]
pub struct Github {
    pub owner: String,
    pub repo: String,
}

/// Where an environment runs when a command names it (`--env prod`) without
/// `--target` or `PANTSTACK_TARGET`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// The local cloud on this machine (the default).
    #[default]
    Local,
    /// AWS, through CloudFormation (`bootstrap` first).
    Aws,
}

/// A long-lived environment and the branches that deploy to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Environment {
    pub name: String,
    /// Exact branch names, or prefixes ending in `*` (`release/*`).
    pub branches: Vec<String>,
    /// `target:`; applies when a command names the environment.
    pub target: Target,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Foundation {
    pub manifest_file: String,
    pub project: Located<String>,
    pub description: Option<String>,
    /// Default region; a stack file's `aws:region` overrides it per environment.
    pub region: Option<Located<String>>,
    pub registry: String,
    pub github: Option<Github>,
    pub environments: Vec<Environment>,
    pub previews_enabled: bool,
    pub settings: Layer,
}

const TOP_KEYS: &[&str] = &[
    "project",
    "description",
    "region",
    "registry",
    "github",
    "environments",
    "previews",
];

/// Pull-request environments are named `preview-<pr>`; their settings come from
/// `Pulumi.preview.yaml`.
pub const PREVIEW_PREFIX: &str = "preview-";
pub const PREVIEW_STACK: &str = "preview";

/// AWS region names: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`.
pub fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts[0].len() == 2
        && parts.last().is_some_and(|p| p.parse::<u8>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{region}` is not an AWS region name (like `us-east-1` or `eu-west-2`)"
        ))
    }
}

/// A branch name as git accepts it (`git check-ref-format --branch`), without the
/// characters that would need quoting in a workflow (`'`, `"`, `#`, spaces), with
/// `*` allowed only as the last character (a prefix pattern).
pub fn check_branch(b: &str) -> Result<(), String> {
    let name = b.strip_suffix('*').unwrap_or(b);
    if name.is_empty() {
        return Err(if b.is_empty() {
            "is empty".into()
        } else {
            "`*` alone would match every branch; name a prefix (`feature/*`)".into()
        });
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "~^:?[\\'\"#*".contains(*c))
    {
        return Err(if c == '*' {
            "`*` may only end a prefix pattern (`release/*`)".into()
        } else {
            format!(
                "contains `{}`, which a branch name cannot (or a workflow would have to quote)",
                c.escape_debug()
            )
        });
    }
    if name.starts_with(['-', '/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("/.")
        || name.contains("@{")
        || name.starts_with("refs/")
        || (b == name && (name.ends_with('/') || name.ends_with('.')))
    {
        return Err("is not a valid git branch name (see `git check-ref-format --branch`)".into());
    }
    Ok(())
}

pub fn read_foundation(
    r: &mut Reader<'_>,
    node: &Node,
    fallback_project: Option<&str>,
) -> Foundation {
    let file = r.file.to_string();
    let mut f = Foundation {
        manifest_file: file.clone(),
        project: Located {
            value: fallback_project.unwrap_or("pantstack").to_string(),
            file: file.clone(),
            span: Span::default(),
        },
        description: None,
        region: None,
        registry: String::new(),
        github: None,
        environments: Vec::new(),
        previews_enabled: true,
        settings: Layer::default(),
    };
    let mut layer = Layer::default();
    let Some(top) = settings_section(r, node, "", TOP_KEYS, true, &mut layer) else {
        return f;
    };
    match top.get("project") {
        Some(n) => {
            if let Some(p) = r.string(n, "project") {
                if let Err(why) = names::check_label(&p, "project", names::MAX_PROJECT_NAME) {
                    r.error("invalid-name", n.span, "project", why).help = Some(format!(
                        "try `{}`",
                        names::suggest_label(&p, names::MAX_PROJECT_NAME)
                    ));
                }
                f.project = Located {
                    value: p,
                    file: file.clone(),
                    span: n.span,
                };
            }
        }
        None => {
            r.error(
                "missing-key",
                top.span,
                "project",
                "`project` is required: the slug used in every resource name",
            )
            .help = Some("add `project: <slug>` (lowercase letters, digits, `-`)".into());
        }
    }
    if let Some(n) = top.get("description") {
        f.description = r.text(n, "description");
    }
    if let Some(n) = top.get("region")
        && let Some(reg) = r.string(n, "region")
    {
        match check_region(&reg) {
            Ok(()) => {
                f.region = Some(Located {
                    value: reg,
                    file: file.clone(),
                    span: n.span,
                })
            }
            Err(why) => {
                r.error("invalid-value", n.span, "region", why);
            }
        }
    }
    f.registry = f.project.value.clone();
    if let Some(n) = top.get("registry")
        && let Some(rf) = settings_section(r, n, "registry", &["name"], true, &mut layer)
        && let Some(nn) = rf.get("name")
        && let Some(name) = r.string(nn, "registry.name")
    {
        let ok = !name.is_empty()
            && name.len() <= 256
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c));
        if ok {
            f.registry = name;
        } else {
            r.error(
                            "invalid-name",
                            nn.span,
                            "registry.name",
                            format!("`{name}` is not a valid ECR repository name (lowercase letters, digits, `-`, `_`, `.`, `/`)"),
                        );
        }
    }
    if let Some(n) = top.get("github")
        && let Some(gf) = r.map(n, "github", &["owner", "repo"])
    {
        let github_span = top.key_span("github").unwrap_or(n.span);
        let mut part = |key: &str| -> Option<String> {
            let Some(v) = gf.get(key) else {
                r.error(
                    "missing-key",
                    github_span,
                    &join("github", key),
                    format!("`github.{key}` is required for OIDC trust"),
                );
                return None;
            };
            let s = r.string(v, &join("github", key))?;
            let ok = !s.is_empty()
                && s.len() <= 100
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                r.error(
                    "invalid-value",
                    v.span,
                    &join("github", key),
                    format!("`{s}` is not a GitHub {key} name (letters, digits, `-`, `_`, `.`)"),
                );
                return None;
            }
            Some(s)
        };
        let owner = part("owner");
        let repo = part("repo");
        if let (Some(owner), Some(repo)) = (owner, repo) {
            f.github = Some(Github { owner, repo });
        }
    }
    match top.get("environments") {
        Some(n) => f.environments = read_environments(r, n),
        None => {
            r.error(
                "missing-key",
                top.span,
                "environments",
                "`environments` is required",
            )
            .help = Some(
                "add `environments: { test: { branch: dev }, prod: { branch: main } }`".into(),
            );
        }
    }
    if let Some(n) = top.get("previews")
        && let Some(pf) = settings_section(r, n, "previews", &["enabled"], true, &mut layer)
        && let Some(e) = pf.get("enabled")
    {
        f.previews_enabled = r.boolean(e, "previews.enabled").unwrap_or(true);
    }
    f.settings = layer;
    f
}

fn read_environments(r: &mut Reader<'_>, node: &Node) -> Vec<Environment> {
    let mut out: Vec<Environment> = Vec::new();
    let Some(entries) = r.named_map(node, "environments") else {
        return out;
    };
    if entries.is_empty() {
        r.error(
            "missing-key",
            node.span,
            "environments",
            "at least one environment is required",
        );
    }
    for (name, key, value) in entries.entries() {
        let field = join("environments", &name);
        if let Err(why) = names::check_label(&name, "environment", names::MAX_ENV_NAME) {
            r.error("invalid-name", key.span, &field, why);
            continue;
        }
        if name.starts_with("preview") {
            r.error(
                "reserved-name",
                key.span,
                &field,
                format!("`{name}`: environment names starting with `preview` are reserved for pull-request previews"),
            )
            .help = Some("preview environments are `preview-<pr>`; configure them with `previews:` and Pulumi.preview.yaml".into());
            continue;
        }
        // `test` and `test-eu`: `{project}-test-eu-api` would name both test's
        // service `eu-api` and test-eu's `api`, and test's IAM scope
        // `{project}-test-*` would cover test-eu's stacks, roles and data.
        if let Some(other) = out.iter().find(|e| {
            name.starts_with(&format!("{}-", e.name)) || e.name.starts_with(&format!("{name}-"))
        }) {
            let (short, long) = if name.len() < other.name.len() {
                (name.as_str(), other.name.as_str())
            } else {
                (other.name.as_str(), name.as_str())
            };
            r.error(
                "colliding-environments",
                key.span,
                &field,
                format!(
                    "environments `{short}` and `{long}` collide: every physical name of `{long}` (`{{project}}-{long}-…`) is also one `{short}` may use, and `{short}`'s AWS permissions would reach `{long}`'s resources"
                ),
            )
            .help = Some(format!(
                "rename one so that neither name is the other's followed by `-` (for example `{}`)",
                long.replace('-', "")
            ));
            continue;
        }
        let Some(ef) = r.map(value, &field, &["branch", "branches", "target"]) else {
            continue;
        };
        let target = match ef.get("target") {
            Some(t) => match r
                .one_of(t, &join(&field, "target"), &["local", "aws"])
                .as_deref()
            {
                Some("aws") => Target::Aws,
                _ => Target::Local,
            },
            None => Target::Local,
        };
        let mut branches = Vec::new();
        for key in ["branch", "branches"] {
            if let Some(b) = ef.get(key) {
                branches.extend(r.string_list(b, &join(&field, key)).unwrap_or_default());
            }
        }
        for b in &branches {
            if let Err(why) = check_branch(b) {
                r.error("invalid-branch", key.span, &field, format!("branch `{}`: {why}", b.escape_debug()))
                    .help = Some("a git branch name (`dev`, `release/1.x`), or a prefix ending in `*` (`release/*`)".into());
            }
            if let Some(other) = out.iter().find(|e| e.branches.contains(b)) {
                r.error(
                    "duplicate-branch",
                    key.span,
                    &field,
                    format!(
                        "branch `{b}` is mapped to both `{}` and `{name}`",
                        other.name
                    ),
                )
                .help =
                    Some("a branch deploys to one environment; remove it from one of them".into());
            }
        }
        out.push(Environment {
            name,
            branches,
            target,
            span: key.span,
        });
    }
    out
}

impl Foundation {
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    pub fn env_names(&self) -> Vec<&str> {
        self.environments.iter().map(|e| e.name.as_str()).collect()
    }
}

#[cfg(test)]
mod branch_tests {
    use super::check_branch;

    #[test]
    fn branch_names_are_what_git_and_a_workflow_accept() {
        for ok in [
            "dev",
            "main",
            "release/*",
            "feature/x-1",
            "v1+2",
            "release/1.x",
        ] {
            assert!(check_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*",
            "**",
            "feature/**",
            "release-*-x",
            "a b",
            "a #b",
            "x: y",
            "it's",
            "a\nb",
            "-x",
            "refs/heads/x",
            "a..b",
            "x.lock",
            "x/",
            "a//b",
            "${{ github.token }}",
            "a~1",
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
    }
}

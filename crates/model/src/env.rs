//! Which environment a branch or pull request deploys to.
//!
//! `dev` → `test`, `main` → `prod`, pull request N → `preview-N` (the mapping is the
//! foundation manifest's `environments:`). Any other branch gets a clear "none",
//! never a guess.

use crate::foundation::{Foundation, PREVIEW_PREFIX};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The branch matched an environment's `branch:` entry (exact or `prefix/*`).
    Branch {
        branch: String,
        pattern: String,
    },
    PullRequest {
        number: u64,
    },
    /// `--env` named it directly.
    Named,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedEnv {
    pub name: String,
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvError {
    UnmappedBranch {
        branch: String,
        mappings: Vec<(String, String)>,
    },
    PreviewsDisabled {
        number: u64,
    },
    InvalidPr(String),
    UnknownEnvironment {
        name: String,
        known: Vec<String>,
    },
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvError::UnmappedBranch { branch, mappings } => {
                write!(f, "branch `{branch}` deploys to no environment")?;
                if mappings.is_empty() {
                    write!(f, "; no branch is mapped to an environment")?;
                } else {
                    let list: Vec<String> =
                        mappings.iter().map(|(b, e)| format!("{b} → {e}")).collect();
                    write!(f, " (mapped: {})", list.join(", "))?;
                }
                write!(
                    f,
                    "\nhelp: open a pull request and use `--pr N` for a preview environment, pass `--env NAME`, or map the branch under `environments:` in stack/infra/foundation/pantstack.yaml"
                )
            }
            EnvError::PreviewsDisabled { number } => write!(
                f,
                "pull request {number} has no preview environment: previews are disabled (`previews.enabled: false` in stack/infra/foundation/pantstack.yaml)"
            ),
            EnvError::InvalidPr(s) => write!(
                f,
                "`{s}` is not a pull request number (expected a positive integer)"
            ),
            EnvError::UnknownEnvironment { name, known } => {
                write!(
                    f,
                    "environment `{name}` is not defined (defined: {})",
                    known.join(", ")
                )?;
                if let Some(s) = pantstack_manifest::diag::did_you_mean(
                    name,
                    &known.iter().map(String::as_str).collect::<Vec<_>>(),
                ) {
                    write!(f, "\nhelp: did you mean `{s}`?")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for EnvError {}

fn matches(pattern: &str, branch: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => branch.starts_with(prefix) && branch.len() > prefix.len(),
        None => pattern == branch,
    }
}

/// Resolves the environment for a branch.
pub fn for_branch(f: &Foundation, branch: &str) -> Result<ResolvedEnv, EnvError> {
    // Exact names win over prefix patterns.
    let exact = f
        .environments
        .iter()
        .find(|e| e.branches.iter().any(|b| b == branch));
    let found = exact.map(|e| (e, branch.to_string())).or_else(|| {
        f.environments.iter().find_map(|e| {
            e.branches
                .iter()
                .find(|b| matches(b, branch))
                .map(|b| (e, b.clone()))
        })
    });
    match found {
        Some((env, pattern)) => Ok(ResolvedEnv {
            name: env.name.clone(),
            reason: Reason::Branch {
                branch: branch.to_string(),
                pattern,
            },
        }),
        None => Err(EnvError::UnmappedBranch {
            branch: branch.to_string(),
            mappings: f
                .environments
                .iter()
                .flat_map(|e| e.branches.iter().map(move |b| (b.clone(), e.name.clone())))
                .collect(),
        }),
    }
}

/// Resolves the preview environment of a pull request.
pub fn for_pr(f: &Foundation, number: u64) -> Result<ResolvedEnv, EnvError> {
    if number == 0 {
        return Err(EnvError::InvalidPr("0".into()));
    }
    if !f.previews_enabled {
        return Err(EnvError::PreviewsDisabled { number });
    }
    Ok(ResolvedEnv {
        name: format!("{PREVIEW_PREFIX}{number}"),
        reason: Reason::PullRequest { number },
    })
}

/// Checks an environment named on the command line (`test`, `prod`, `preview-42`).
pub fn named(f: &Foundation, name: &str) -> Result<ResolvedEnv, EnvError> {
    if let Some(n) = name.strip_prefix(PREVIEW_PREFIX) {
        let number: u64 = n.parse().map_err(|_| EnvError::InvalidPr(n.to_string()))?;
        return for_pr(f, number);
    }
    if f.environment(name).is_some() {
        return Ok(ResolvedEnv {
            name: name.to_string(),
            reason: Reason::Named,
        });
    }
    Err(EnvError::UnknownEnvironment {
        name: name.to_string(),
        known: f.env_names().iter().map(|s| s.to_string()).collect(),
    })
}

/// Reads a pull request number from a CI ref such as GitHub's
/// `refs/pull/42/merge`.
pub fn pr_from_ref(git_ref: &str) -> Option<u64> {
    let rest = git_ref.strip_prefix("refs/pull/")?;
    let (num, _) = rest.split_once('/')?;
    num.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::Environment;
    use crate::service::Located;
    use crate::settings::Layer;
    use pantstack_manifest::Span;

    fn foundation() -> Foundation {
        Foundation {
            manifest_file: "f".into(),
            project: Located {
                value: "p".into(),
                file: "f".into(),
                span: Span::default(),
            },
            description: None,
            region: None,
            registry: "p".into(),
            github: None,
            environments: vec![
                Environment {
                    name: "test".into(),
                    branches: vec!["dev".into()],
                    target: Default::default(),
                    span: Span::default(),
                },
                Environment {
                    name: "prod".into(),
                    branches: vec!["main".into()],
                    target: Default::default(),
                    span: Span::default(),
                },
                Environment {
                    name: "staging".into(),
                    branches: vec!["release/*".into()],
                    target: Default::default(),
                    span: Span::default(),
                },
            ],
            previews_enabled: true,
            settings: Layer::default(),
        }
    }

    #[test]
    fn seed_mapping() {
        let f = foundation();
        assert_eq!(for_branch(&f, "dev").unwrap().name, "test");
        assert_eq!(for_branch(&f, "main").unwrap().name, "prod");
        assert_eq!(for_branch(&f, "release/1.2").unwrap().name, "staging");
        assert_eq!(for_pr(&f, 42).unwrap().name, "preview-42");
        assert!(matches!(
            for_branch(&f, "feature/x"),
            Err(EnvError::UnmappedBranch { .. })
        ));
        assert!(for_branch(&f, "release/").is_err());
        assert_eq!(named(&f, "preview-7").unwrap().name, "preview-7");
        assert!(
            named(&f, "prd")
                .unwrap_err()
                .to_string()
                .contains("did you mean `prod`")
        );
        assert_eq!(pr_from_ref("refs/pull/42/merge"), Some(42));
        assert_eq!(pr_from_ref("refs/heads/main"), None);
    }
}

//! The few facts read from git: current branch, HEAD commit, and in CI the pull
//! request being built.

use crate::Failure;
use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| {
            Failure::Resolve(format!("cannot run git ({e}); pass the value explicitly"))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Failure::Resolve(format!(
            "`git {}` failed: {}; pass the value explicitly",
            args.join(" "),
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The current branch. In GitHub Actions, `GITHUB_HEAD_REF` (pull requests) or
/// `GITHUB_REF_NAME` is used before git.
pub fn branch(root: &Path) -> Result<String, Failure> {
    for var in ["GITHUB_HEAD_REF", "GITHUB_REF_NAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
            && !v.ends_with("/merge")
        {
            return Ok(v);
        }
    }
    let b = git(root, &["rev-parse", "--abbrev-ref", "HEAD"])?;
    if b == "HEAD" {
        return Err(Failure::Resolve(
            "git is on a detached HEAD: no branch to resolve; pass --branch".into(),
        ));
    }
    Ok(b)
}

pub fn head_sha(root: &Path) -> Result<String, Failure> {
    git(root, &["rev-parse", "HEAD"]).map_err(|e| match e {
        Failure::Resolve(m) => Failure::Resolve(format!("{m} (--sha)")),
        other => other,
    })
}

/// The pull request number when running in CI for a pull request
/// (`GITHUB_REF=refs/pull/N/merge`).
pub fn ci_pull_request() -> Option<u64> {
    std::env::var("GITHUB_REF")
        .ok()
        .and_then(|r| pantstack_model::env::pr_from_ref(&r))
}

/// Whether the working tree under `root` has uncommitted changes (ignored files
/// and the tool's own `.pantstack/` aside).
pub fn dirty(root: &Path) -> Result<bool, Failure> {
    let out = git(
        root,
        &["status", "--porcelain", "--", ".", ":(exclude).pantstack"],
    )?;
    Ok(!out.is_empty())
}

//! Image tags, exactly as the seed's strategy:
//! `{service}-{branch}-{sha}`, `{service}-v{version}`, `{service}-worker-{branch}-{sha}`.

/// Docker's limit on a tag's length.
pub const MAX_TAG: usize = 128;
pub const SHORT_SHA: usize = 7;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagError {
    Sha(String),
    Version(String),
    Branch(String),
}

impl std::fmt::Display for TagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagError::Sha(m) | TagError::Version(m) | TagError::Branch(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TagError {}

/// Makes a branch name valid inside a Docker tag: lowercase; every run of characters
/// other than `a-z 0-9 _ .` becomes one `-`; no leading or trailing `-` or `.`.
/// `feature/Login` → `feature-login`.
pub fn sanitize_branch(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Checks and shortens a commit hash to 7 lowercase hex digits.
pub fn short_sha(sha: &str) -> Result<String, TagError> {
    let sha = sha.trim();
    if sha.len() < SHORT_SHA || sha.len() > 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TagError::Sha(format!(
            "`{sha}` is not a commit hash: expected at least {SHORT_SHA} hexadecimal digits (e.g. from `git rev-parse HEAD`)"
        )));
    }
    Ok(sha[..SHORT_SHA].to_ascii_lowercase())
}

/// A tag for a branch build. The branch part is shortened so the tag fits 128
/// characters; the service and sha are never cut.
pub fn branch_tag(
    service: &str,
    worker: bool,
    branch: &str,
    sha: &str,
) -> Result<String, TagError> {
    let sha = short_sha(sha)?;
    let clean = sanitize_branch(branch);
    if clean.is_empty() {
        return Err(TagError::Branch(format!(
            "branch `{branch}` has no characters usable in an image tag (letters, digits, `_`, `.`)"
        )));
    }
    let prefix = if worker {
        format!("{service}-worker-")
    } else {
        format!("{service}-")
    };
    let room = MAX_TAG.saturating_sub(prefix.len() + 1 + sha.len());
    let mut branch_part: String = clean.chars().take(room).collect();
    while branch_part.ends_with(['-', '.']) {
        branch_part.pop();
    }
    Ok(format!("{prefix}{branch_part}-{sha}"))
}

/// A tag for a release: `{service}-v{version}` (or `{service}-worker-v{version}`).
/// The version must be semver (`1.2.3`, `1.2.3-rc.1`, `1.2.3+build.5`); a leading
/// `v` is accepted. Docker tags cannot hold `+`, so build metadata is joined with `_`.
pub fn version_tag(service: &str, worker: bool, version: &str) -> Result<String, TagError> {
    let v = version.strip_prefix('v').unwrap_or(version);
    check_semver(v)?;
    let v = v.replace('+', "_");
    let tag = if worker {
        format!("{service}-worker-v{v}")
    } else {
        format!("{service}-v{v}")
    };
    if tag.len() > MAX_TAG {
        return Err(TagError::Version(format!(
            "tag `{tag}` is {} characters; image tags are limited to {MAX_TAG}",
            tag.len()
        )));
    }
    Ok(tag)
}

/// Semantic Versioning 2.0.0.
pub fn check_semver(v: &str) -> Result<(), TagError> {
    let bad = |why: &str| {
        Err(TagError::Version(format!(
            "`{v}` is not a semantic version ({why}); expected MAJOR.MINOR.PATCH such as `1.2.3` or `1.2.3-rc.1`"
        )))
    };
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 {
        return bad("it needs exactly three numbers");
    }
    for n in &nums {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return bad("each number must be digits only");
        }
        if n.len() > 1 && n.starts_with('0') {
            return bad("numbers must not have leading zeros");
        }
    }
    let ident_ok =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if !ident_ok(id) {
                return bad("the pre-release part must be dot-separated alphanumeric identifiers");
            }
            if id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()) {
                return bad("numeric pre-release identifiers must not have leading zeros");
            }
        }
    }
    if let Some(build) = build
        && !build.split('.').all(ident_ok)
    {
        return bad("the build part must be dot-separated alphanumeric identifiers");
    }
    Ok(())
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_docker_tag(tag: &str) -> bool {
    tag.len() <= MAX_TAG
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_examples() {
        assert_eq!(
            branch_tag("api", false, "dev", "abc1234def").unwrap(),
            "api-dev-abc1234"
        );
        assert_eq!(version_tag("api", false, "1.2.3").unwrap(), "api-v1.2.3");
        assert_eq!(version_tag("api", false, "v1.2.3").unwrap(), "api-v1.2.3");
        assert_eq!(
            branch_tag("api", true, "dev", "ABCDEF0123").unwrap(),
            "api-worker-dev-abcdef0"
        );
    }

    #[test]
    fn branches_are_sanitized() {
        assert_eq!(sanitize_branch("feature/Login"), "feature-login");
        assert_eq!(sanitize_branch("--weird//name__x.."), "weird-name__x");
        assert_eq!(sanitize_branch("fix/ÜBER ✓ thing"), "fix-ber-thing");
        assert!(branch_tag("api", false, "///", "abcdef0").is_err());
    }

    #[test]
    fn long_branches_fit_128() {
        let branch = "feature/".to_string() + &"x".repeat(300);
        let tag = branch_tag("api", true, &branch, "0123456789abcdef").unwrap();
        assert_eq!(tag.len(), MAX_TAG);
        assert!(tag.ends_with("-0123456"));
        assert!(is_valid_docker_tag(&tag));
    }

    #[test]
    fn semver() {
        for ok in [
            "0.0.0",
            "1.2.3",
            "10.20.30-rc.1",
            "1.0.0-alpha-1",
            "1.0.0+build.7",
            "1.0.0-0.3.7",
        ] {
            assert!(check_semver(ok).is_ok(), "{ok}");
        }
        for bad in [
            "1.2", "1.2.3.4", "01.2.3", "1.2.x", "1.2.3-", "1.2.3-01", "1.2.3+", "",
        ] {
            assert!(check_semver(bad).is_err(), "{bad}");
        }
        assert_eq!(
            version_tag("api", false, "1.0.0+build.7").unwrap(),
            "api-v1.0.0_build.7"
        );
    }

    #[test]
    fn bad_shas() {
        assert!(short_sha("abc").is_err());
        assert!(short_sha("zzzzzzzz").is_err());
    }
}

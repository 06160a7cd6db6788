//! The ECR lifecycle policy of the project's one repository, written against the
//! seed's tag strategy (`pantstack_model::tag`): `{service}[-worker]-{branch}-{sha7}`
//! for branch builds, `{service}[-worker]-v{semver}` for releases.
//!
//! Invariants:
//! - an image an environment may run (a release, or a build of a long-lived
//!   environment's branch) is never expired: it is decided by a rule that only
//!   expires what lies beyond the newest [`KEEP_ALL`] images of its pattern, and
//!   [`policy`] checks that against a sample tag of every service, role and
//!   environment branch, dropping any earlier expiring rule that would decide it;
//! - every other tagged image expires `days` after push;
//! - the policy has a fixed number of rules whatever the number of services
//!   (ECR's limit is 30,720 characters).
//!
//! ECR patterns have one wildcard, `*`, matching any run of characters (`-`
//! included), and the image a rule matches can never be expired by a later rule.
//! The keep rule of an environment branch `b` is `*-{b}-*`, which alone also
//! keeps every feature branch containing `b` between dashes (`fix/main-page` →
//! `api-fix-main-page-<sha>`) forever. A commit hash holds no `-`, so an
//! expiring rule `*-{b}-*-*` placed before it takes exactly the tags with more
//! after `-{b}-` than a hash: feature branches that start with `b-` or hold
//! `-b-` (`main-menu`, `fix/main-page`), never a build of `b` itself.
//!
//! The patterns are of any service (`*-`), never anchored on each one: the
//! shared stack holding the policy is deployed by `bootstrap` only, so a service
//! added since must still have its environment builds kept, and the policy stays
//! one size whatever the number of services. What cannot be told apart from a
//! build of `b` by pattern stays kept: a feature branch ending in `-{b}`
//! (`hotfix-main` → `api-hotfix-main-<sha>`, the same shape as a service
//! `api-hotfix`'s build of `main`). An expiring rule that would take a build of
//! `b` of a service of the monorepo (a service named `my-main-api`) is left out.

use serde_json::{Value, json};

/// The `countNumber` of the rules that keep images: "expire all but the newest
/// 10,000" of a pattern, half of ECR's default 20,000 images per repository. An
/// image matched by such a rule can never be expired by a later rule.
pub const KEEP_ALL: i64 = 10_000;

/// A rule between "untagged images" and "every other tagged image".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Never expired (beyond the newest [`KEEP_ALL`]).
    Keep(String),
    /// Expired `days` after push: a feature branch that looks like an
    /// environment branch's build to the keep rule after it.
    Expire(String),
}

impl Rule {
    pub fn pattern(&self) -> &str {
        match self {
            Rule::Keep(p) | Rule::Expire(p) => p,
        }
    }
}

/// An environment branch as it appears in tags: sanitized, and whether it is a
/// glob (`release/*` → `release`, every `release-…` branch).
fn env_branches(environments: &[(String, Vec<String>)]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for (_, branches) in environments {
        for b in branches {
            let glob = b.ends_with('*');
            let clean = pantstack_model::tag::sanitize_branch(b.trim_end_matches('*'));
            if clean.is_empty() || out.iter().any(|(c, g)| *c == clean && *g == glob) {
                continue;
            }
            out.push((clean, glob));
        }
    }
    // Globs first: an expiring rule of `main` must never take a build of `main/*`.
    out.sort_by_key(|(_, glob)| !*glob);
    out
}

/// The tag prefixes of every image role (`api-`, `api-worker-`).
fn role_prefixes(services: &[(String, bool)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, worker) in services {
        out.push(format!("{name}-"));
        if *worker {
            out.push(format!("{name}-worker-"));
        }
    }
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    out.dedup();
    out
}

/// The rules, releases first.
fn rules_for(branches: &[(String, bool)]) -> Vec<Rule> {
    let mut rules = vec![Rule::Keep("*-v*.*.*".to_string())];
    for (b, glob) in branches {
        if !glob {
            rules.push(Rule::Expire(format!("*-{b}-*-*")));
        }
        rules.push(Rule::Keep(format!("*-{b}-*")));
    }
    rules
}

/// ECR's `*` matching.
pub fn glob(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = match (parts.first(), parts.last()) {
        (Some(f), Some(l)) if parts.len() > 1 => (*f, *l),
        _ => return pattern == tag,
    };
    if tag.len() < first.len() + last.len() || !tag.starts_with(first) || !tag.ends_with(last) {
        return false;
    }
    let mut rest = &tag[first.len()..tag.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A tag of every image an environment may run: each role's releases and its
/// builds of each environment branch (a glob's with branch parts of its own).
fn running_samples(services: &[(String, bool)], branches: &[(String, bool)]) -> Vec<String> {
    let sha = "0123abc";
    let mut out = Vec::new();
    for p in role_prefixes(services) {
        out.push(format!("{p}v1.2.3"));
        out.push(format!("{p}v1.2.3-rc.1_build.5"));
        for (b, glob) in branches {
            out.push(format!("{p}{b}-{sha}"));
            if *glob {
                out.push(format!("{p}{b}-2026.1-{sha}"));
                out.push(format!("{p}{b}-x-y-{sha}"));
            }
        }
    }
    out
}

/// Drops every expiring rule that would decide an image an environment may run
/// (a service name that contains another's tag shape).
fn make_safe(mut rules: Vec<Rule>, samples: &[String]) -> Vec<Rule> {
    loop {
        let unsafe_rule = samples.iter().find_map(|t| {
            let i = rules.iter().position(|r| glob(r.pattern(), t))?;
            matches!(rules[i], Rule::Expire(_)).then_some(i)
        });
        match unsafe_rule {
            Some(i) => {
                rules.remove(i);
            }
            None => return rules,
        }
    }
}

fn render(rules: &[Rule], days: i64) -> String {
    let mut out: Vec<Value> = vec![json!({
        "rulePriority": 1,
        "description": "expire untagged images after 1 day",
        "selection": { "tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1 },
        "action": { "type": "expire" }
    })];
    for r in rules {
        out.push(match r {
            Rule::Keep(p) => json!({
                "rulePriority": out.len() + 1,
                "description": format!("keep {p}: a release or environment branch"),
                "selection": { "tagStatus": "tagged", "tagPatternList": [p], "countType": "imageCountMoreThan", "countNumber": KEEP_ALL },
                "action": { "type": "expire" }
            }),
            Rule::Expire(p) => json!({
                "rulePriority": out.len() + 1,
                "description": format!("expire {p} {days} days after push: a feature branch"),
                "selection": { "tagStatus": "tagged", "tagPatternList": [p], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days },
                "action": { "type": "expire" }
            }),
        });
    }
    out.push(json!({
        "rulePriority": out.len() + 1,
        "description": format!("expire branch and pull request images {days} days after push"),
        "selection": { "tagStatus": "tagged", "tagPatternList": ["*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days },
        "action": { "type": "expire" }
    }));
    serde_json::to_string(&json!({ "rules": out })).unwrap_or_default()
}

/// The rules between "untagged" and "everything else", checked against the
/// builds every service of the monorepo (`services`: name, has a worker image)
/// may run.
pub fn rules(services: &[(String, bool)], environments: &[(String, Vec<String>)]) -> Vec<Rule> {
    let branches = env_branches(environments);
    make_safe(rules_for(&branches), &running_samples(services, &branches))
}

/// The policy:
/// 1. untagged images expire after a day;
/// 2. [`rules`]: releases and environment-branch builds kept, feature branches
///    that look like them expiring `days` after push;
/// 3. every other tagged image (feature branches, pull requests, previews)
///    expires `days` days after it was pushed.
pub fn policy(
    services: &[(String, bool)],
    environments: &[(String, Vec<String>)],
    days: i64,
) -> String {
    render(&rules(services, environments), days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs() -> Vec<(String, Vec<String>)> {
        vec![
            ("test".to_string(), vec!["dev".to_string()]),
            (
                "prod".to_string(),
                vec!["main".to_string(), "release/*".to_string()],
            ),
        ]
    }

    /// Whether `tag` is kept forever (decided by a keep rule).
    fn kept(rules: &[Rule], tag: &str) -> bool {
        matches!(
            rules.iter().find(|r| glob(r.pattern(), tag)),
            Some(Rule::Keep(_))
        )
    }

    #[test]
    fn feature_branches_holding_an_environment_branch_expire() {
        let svcs = vec![("api".to_string(), true), ("web".to_string(), false)];
        let r = rules(&svcs, &envs());
        assert_eq!(
            r,
            [
                Rule::Keep("*-v*.*.*".into()),
                Rule::Keep("*-release-*".into()),
                Rule::Expire("*-dev-*-*".into()),
                Rule::Keep("*-dev-*".into()),
                Rule::Expire("*-main-*-*".into()),
                Rule::Keep("*-main-*".into()),
            ]
        );
        for tag in [
            "api-main-0123abc",
            "api-worker-main-0123abc",
            "api-dev-0123abc",
            "web-main-0123abc",
            "api-release-2026.1-0123abc",
            "api-release-hotfix-x-0123abc",
            "api-v1.2.3",
            "api-worker-v10.0.0-rc.1_build.5",
        ] {
            assert!(kept(&r, tag), "{tag} must be kept");
        }
        for tag in [
            "api-fix-main-page-0123abc",
            "api-main-menu-0123abc",
            "api-feature-dev-tools-0123abc",
            "api-worker-dev-x-0123abc",
            "web-feature-login-0123abc",
            "api-prerelease-notes-0123abc",
        ] {
            assert!(!kept(&r, tag), "{tag} must expire");
        }
        let v: Value = serde_json::from_str(&policy(&svcs, &envs(), 14)).expect("json");
        let all = v["rules"].as_array().expect("rules");
        assert_eq!(all.len(), 8);
        for (i, rule) in all.iter().enumerate() {
            assert_eq!(rule["rulePriority"], i + 1);
            for p in rule["selection"]["tagPatternList"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let stars = p.as_str().unwrap_or("").matches('*').count();
                assert!(stars <= 4, "ECR allows four wildcards: {p}");
            }
        }
        assert_eq!(all[3]["selection"]["countNumber"], 14);
        assert_eq!(all[7]["selection"]["countNumber"], 14);
    }

    #[test]
    fn a_service_named_like_a_feature_branch_is_never_expired() {
        // `x-main-y`'s build of main is `x-main-y-main-<sha>`, which `*-main-*-*`
        // would take: that rule is left out, `*-dev-*-*` stays.
        let svcs = vec![("x-main-y".to_string(), false)];
        let r = rules(&svcs, &envs());
        assert!(kept(&r, "x-main-y-main-0123abc"), "{r:?}");
        assert!(kept(&r, "x-main-y-dev-0123abc"), "{r:?}");
        assert!(!r.contains(&Rule::Expire("*-main-*-*".into())));
        assert!(r.contains(&Rule::Expire("*-dev-*-*".into())));
        assert!(!kept(&r, "x-main-y-feature-dev-tools-0123abc"));
    }
}

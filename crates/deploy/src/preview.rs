//! Preview environments of pull requests (`preview-<pr>`) on AWS: finding them
//! from their stacks, the cap (`previews.max`), the TTL of inactivity
//! (`previews.ttl`) and their secrets.
//!
//! A preview is the set of stacks named `{project}-preview-<pr>-…` and its
//! activity stamp in the template bucket (`crate::slots`: written when its slot
//! is claimed, before any stack, and by every deploy of it, even one that
//! changes nothing); its last activity is the latest creation or update among
//! its stacks and its stamp. The deciding functions
//! (`cap`, `expired`) are pure and take the clock as an argument; `now()` reads
//! `PANTSTACK_NOW` (RFC 3339 or Unix seconds) before the system clock, so tests
//! and dry runs can judge at another time.

use crate::{Clients, service_error, why};
use pantstack_model::physical::Names;
use pantstack_synth::plan::SecretParameter;
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    pub pr: u64,
    /// Its stacks, sorted.
    pub stacks: Vec<String>,
    /// Unix seconds of its last activity: the latest creation or update among
    /// its stacks, or its stamp if later.
    pub last_change: i64,
}

impl Preview {
    pub fn to_value(&self, ttl: i64, now: i64) -> Value {
        json!({
            "pr": self.pr,
            "environment": format!("{}{}", pantstack_model::foundation::PREVIEW_PREFIX, self.pr),
            "stacks": self.stacks,
            "last_change": iso8601(self.last_change),
            "idle_seconds": (now - self.last_change).max(0),
            "expires": iso8601(self.last_change + ttl),
            "expired": self.last_change + ttl <= now,
        })
    }
}

/// `2026-12-04T10:00:00Z`.
pub fn iso8601(secs: i64) -> String {
    crate::lock::rfc3339(secs.max(0) as u64)
}

/// The clock previews are judged by: `PANTSTACK_NOW`, else the system's.
pub fn now() -> Result<i64, String> {
    match std::env::var("PANTSTACK_NOW") {
        Ok(v) if !v.trim().is_empty() => parse_time(v.trim()).ok_or_else(|| {
            format!(
                "PANTSTACK_NOW={v}: give Unix seconds or an RFC 3339 time (2026-12-04T10:00:00Z)"
            )
        }),
        _ => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()),
    }
}

fn parse_time(v: &str) -> Option<i64> {
    if let Ok(n) = v.parse::<i64>() {
        return Some(n);
    }
    aws_smithy_types::DateTime::from_str(v, aws_smithy_types::date_time::Format::DateTime)
        .ok()
        .map(|d| d.secs())
}

/// The pull request a stack belongs to, if it is a preview's service stack.
pub fn pr_of(project: &str, stack: &str) -> Option<u64> {
    let rest = stack.strip_prefix(&format!(
        "{project}-{}",
        pantstack_model::foundation::PREVIEW_PREFIX
    ))?;
    let (num, tail) = rest.split_once('-')?;
    if tail.is_empty() || num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse().ok()
}

/// Groups `(stack, last change)` into previews, sorted by pull request.
pub fn group(project: &str, stacks: &[(String, i64)]) -> Vec<Preview> {
    let mut out: Vec<Preview> = Vec::new();
    for (name, t) in stacks {
        let Some(pr) = pr_of(project, name) else {
            continue;
        };
        match out.iter_mut().find(|p| p.pr == pr) {
            Some(p) => {
                p.stacks.push(name.clone());
                p.last_change = p.last_change.max(*t);
            }
            None => out.push(Preview {
                pr,
                stacks: vec![name.clone()],
                last_change: *t,
            }),
        }
    }
    for p in &mut out {
        p.stacks.sort();
    }
    out.sort_by_key(|p| p.pr);
    out
}

/// Whether one more preview (of `pr`) fits under `max`.
#[derive(Debug, PartialEq, Eq)]
pub enum Cap<'a> {
    /// It exists already, or there is room.
    Fits,
    /// `max` previews exist; the one idle the longest.
    Full { oldest: Option<&'a Preview> },
}

pub fn cap(previews: &[Preview], pr: u64, max: i64) -> Cap<'_> {
    if previews.iter().any(|p| p.pr == pr) || (previews.len() as i64) < max {
        return Cap::Fits;
    }
    Cap::Full {
        oldest: previews.iter().min_by_key(|p| (p.last_change, p.pr)),
    }
}

/// The previews idle for `ttl` seconds or more at `now`.
pub fn expired(previews: &[Preview], ttl: i64, now: i64) -> Vec<&Preview> {
    previews
        .iter()
        .filter(|p| p.last_change + ttl <= now)
        .collect()
}

/// Adds the activity stamps `(pr, at)` to the previews found from stacks: a
/// later stamp is the last activity, a stamp with no stack yet is a preview
/// (a claimed slot).
pub fn with_stamps(mut previews: Vec<Preview>, stamps: &[(u64, i64)]) -> Vec<Preview> {
    for (pr, at) in stamps {
        match previews.iter_mut().find(|p| p.pr == *pr) {
            Some(p) => p.last_change = p.last_change.max(*at),
            None => previews.push(Preview {
                pr: *pr,
                stacks: Vec::new(),
                last_change: *at,
            }),
        }
    }
    previews.sort_by_key(|p| p.pr);
    previews
}

/// Every preview of the project, from CloudFormation's stack list and, with the
/// template bucket, the previews' stamps.
pub async fn list(
    c: &Clients,
    project: &str,
    bucket: Option<&str>,
) -> Result<Vec<Preview>, String> {
    let stacks: Vec<(String, i64)> = crate::stack::listed(c)
        .await?
        .into_iter()
        // Only a change set (`diff --pr`) that never created it: not a preview's.
        .filter(|s| s.status != "REVIEW_IN_PROGRESS")
        .map(|s| (s.name, s.last_change))
        .collect();
    let stamps = match bucket {
        Some(b) => crate::slots::stamps(c, b, project).await?,
        None => Vec::new(),
    };
    Ok(with_stamps(group(project, &stacks), &stamps))
}

/// One preview as it is now (its stacks from CloudFormation's list, its stamp
/// read again): `None` when it has neither. `preview gc` asks again under the
/// preview's deploy lock before tearing it down.
pub async fn one(
    c: &Clients,
    project: &str,
    bucket: &str,
    pr: u64,
) -> Result<Option<Preview>, String> {
    let stacks: Vec<(String, i64)> = crate::stack::listed(c)
        .await?
        .into_iter()
        .filter(|s| s.status != "REVIEW_IN_PROGRESS" && pr_of(project, &s.name) == Some(pr))
        .map(|s| (s.name, s.last_change))
        .collect();
    let stamp = crate::slots::stamp(c, bucket, project, pr).await?;
    let stamps: Vec<(u64, i64)> = stamp.map(|at| (pr, at)).into_iter().collect();
    Ok(with_stamps(group(project, &stacks), &stamps).pop())
}

/// The pull request of a preview environment's name (`preview-42` → 42).
pub fn pr_of_env(env: &str) -> Option<u64> {
    let n = env.strip_prefix(pantstack_model::foundation::PREVIEW_PREFIX)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Where an administrator keeps a secret's value for every preview:
/// `/{project}/preview/{service}/{NAME}` (`secrets set --target aws --env preview`).
pub fn declared_value_path(project: &str, s: &SecretParameter) -> String {
    let names = Names::new(project, pantstack_model::foundation::PREVIEW_STACK);
    format!("{}/{}", names.ssm_path(&s.service), s.variable)
}

/// Gives a preview the secrets it lacks, copied from the declared preview values
/// (the values pass through memory only). Returns the parameters it created; an
/// error names each secret with no preview value and the command that sets it.
pub async fn give_secrets(
    c: &Clients,
    project: &str,
    wanted: &[SecretParameter],
) -> Result<Vec<String>, String> {
    let paths: Vec<String> = wanted.iter().map(|s| s.path.clone()).collect();
    let lacking = crate::secrets::missing(c, &paths).await?;
    let mut created = Vec::new();
    let mut undeclared = Vec::new();
    for s in wanted.iter().filter(|s| lacking.contains(&s.path)) {
        let from = declared_value_path(project, s);
        let value = match c
            .ssm
            .get_parameter()
            .name(&from)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(r) => r.parameter().and_then(|p| p.value()).map(str::to_string),
            Err(e) => match service_error(&e) {
                Some((code, _)) if code == "ParameterNotFound" => None,
                _ => return Err(format!("cannot read {from}: {}", why(&e))),
            },
        };
        let Some(value) = value else {
            undeclared.push(s);
            continue;
        };
        crate::secrets::set(
            c,
            &s.path,
            &value,
            &s.kms_key_alias,
            None,
            s.description.as_deref(),
        )
        .await?;
        created.push(s.path.clone());
    }
    if !undeclared.is_empty() {
        let cmds: Vec<String> = undeclared
            .iter()
            .map(|s| {
                format!(
                    "  pantstack secrets set --target aws --env preview {} {}",
                    s.service, s.variable
                )
            })
            .collect();
        return Err(format!(
            "{} secret(s) have no value for previews; an administrator sets each once (every preview copies it):\n{}",
            undeclared.len(),
            cmds.join("\n")
        ));
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(pr: u64, t: i64) -> Preview {
        Preview {
            pr,
            stacks: vec![format!("shop-preview-{pr}-api")],
            last_change: t,
        }
    }

    #[test]
    fn stacks_name_their_pull_request() {
        assert_eq!(pr_of("shop", "shop-preview-42-api"), Some(42));
        assert_eq!(pr_of("shop", "shop-preview-42-api-replica"), Some(42));
        assert_eq!(pr_of("shop", "shop-preview-foundation"), None);
        assert_eq!(pr_of("shop", "shop-preview-42"), None);
        assert_eq!(pr_of("shop", "shop-test-api"), None);
        assert_eq!(pr_of("shop", "other-preview-42-api"), None);
        let g = group(
            "shop",
            &[
                ("shop-preview-7-api".into(), 10),
                ("shop-preview-7-reports".into(), 30),
                ("shop-preview-3-api".into(), 20),
                ("shop-preview-foundation".into(), 99),
            ],
        );
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].pr, g[0].last_change), (3, 20));
        assert_eq!((g[1].pr, g[1].last_change, g[1].stacks.len()), (7, 30, 2));
    }

    #[test]
    fn the_cap_names_the_oldest_and_never_counts_the_same_preview_twice() {
        let ps = vec![p(1, 300), p(2, 100), p(3, 200)];
        assert_eq!(cap(&ps, 2, 3), Cap::Fits);
        assert_eq!(cap(&ps, 4, 4), Cap::Fits);
        assert_eq!(
            cap(&ps, 4, 3),
            Cap::Full {
                oldest: Some(&ps[1])
            }
        );
        assert_eq!(cap(&[], 4, 0), Cap::Full { oldest: None });
    }

    #[test]
    fn a_stamp_is_activity_and_a_claimed_slot_counts() {
        let ps = vec![p(1, 1_000), p(2, 5_000)];
        // A no-op deploy of 1 at 9,000 (its stacks unchanged); 3 claimed, no stack yet.
        let all = with_stamps(ps, &[(1, 9_000), (2, 4_000), (3, 6_000)]);
        assert_eq!(
            all.iter()
                .map(|p| (p.pr, p.last_change, p.stacks.len()))
                .collect::<Vec<_>>(),
            [(1, 9_000, 1), (2, 5_000, 1), (3, 6_000, 0)]
        );
        assert!(expired(&all, 3_600, 10_000).iter().all(|p| p.pr != 1));
        assert_eq!(
            cap(&all, 4, 3),
            Cap::Full {
                oldest: Some(&all[1])
            }
        );
        assert_eq!(pr_of_env("preview-42"), Some(42));
        assert_eq!(pr_of_env("preview-"), None);
        assert_eq!(pr_of_env("test"), None);
    }

    #[test]
    fn the_ttl_is_inactivity() {
        let ps = vec![p(1, 1_000), p(2, 5_000)];
        assert!(expired(&ps, 3_600, 4_599).is_empty());
        assert_eq!(expired(&ps, 3_600, 4_600), vec![&ps[0]]);
        assert_eq!(expired(&ps, 3_600, 9_000).len(), 2);
        assert_eq!(parse_time("2026-12-04T10:00:00Z"), Some(1_796_378_400));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}

//! The previews' own records in the template bucket: the previews-wide lock that
//! makes `preview up`'s cap check and the claim of a new preview's slot one step,
//! and each preview's activity stamp.
//!
//! Invariants:
//! - The previews' lock is `{project}-preview-slots-deploy-lock.json`, taken
//!   with the deploy lock's conditional writes (`crate::lock`): of two `preview
//!   up` runs at once, one counts the previews and claims its slot while the
//!   other waits (`--lock-wait`) or is refused naming the holder; a stale one
//!   (past its expiry, or of a process gone on this machine) is taken over. No
//!   environment is named `preview-slots` (a preview's name is a number), and the
//!   preview CI role may write and delete `{project}-preview-*-deploy-lock.json`.
//! - A preview's stamp `{project}-preview-activity-<pr>.json` is written when its
//!   slot is claimed (before any of its stacks exists, so a concurrent run counts
//!   it) and by every deploy of it, changed or not; `preview down` deletes it.
//!   A preview exists while it has a stack or a stamp, and its last activity is
//!   the latest of its stacks' changes and its stamp.

use crate::{Clients, lock, why};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The previews-wide lock object.
pub fn lock_key(project: &str) -> String {
    lock::key(&format!("{project}-preview-slots"))
}

/// What every stamp's key starts with.
pub fn stamp_prefix(project: &str) -> String {
    format!("{project}-preview-activity-")
}

/// A preview's activity stamp.
pub fn stamp_key(project: &str, pr: u64) -> String {
    format!("{}{pr}.json", stamp_prefix(project))
}

/// A preview's last activity, as its stamp records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    pub pr: u64,
    /// Unix seconds (the previews' clock, `PANTSTACK_NOW` when set).
    pub at: i64,
    /// Who (`crate::lock::owner`) and what (`claim`, `deploy`, `touch`).
    pub by: String,
    pub verb: String,
}

/// Takes the previews' lock, waiting up to `wait`.
pub async fn acquire(
    c: &Clients,
    bucket: &str,
    project: &str,
    wait: Duration,
) -> Result<lock::Held, String> {
    let key = lock_key(project);
    let refusal = |who: &str| {
        format!(
            "the previews of `{project}` are locked by {who}: another `preview up` is counting the previews against previews.max and claiming its slot. Wait for it with --lock-wait DURATION (e.g. --lock-wait 15m); if that run is gone, its lock s3://{bucket}/{key} expires by itself, or remove it with `pantstack unlock --previews`"
        )
    };
    lock::acquire_with(c, bucket, &key, "preview up", wait, &refusal).await
}

/// Writes a preview's stamp (claims its slot, or marks it active).
pub async fn touch(
    c: &Clients,
    bucket: &str,
    project: &str,
    pr: u64,
    at: i64,
    verb: &str,
) -> Result<(), String> {
    let key = stamp_key(project, pr);
    let stamp = Stamp {
        pr,
        at,
        by: lock::owner(),
        verb: verb.to_string(),
    };
    let body = serde_json::to_vec(&stamp).map_err(|e| e.to_string())?;
    c.s3.put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/json")
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .map_err(|e| format!("cannot write s3://{bucket}/{key}: {}", why(&e)))?;
    Ok(())
}

/// A preview's stamp time, read now (`None`: no stamp). An unreadable stamp
/// counts as the epoch, as in [`stamps`].
pub async fn stamp(
    c: &Clients,
    bucket: &str,
    project: &str,
    pr: u64,
) -> Result<Option<i64>, String> {
    let key = stamp_key(project, pr);
    let o = match c.s3.get_object().bucket(bucket).key(&key).send().await {
        Ok(o) => o,
        Err(e)
            if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot read s3://{bucket}/{key}: {}", why(&e))),
    };
    let body = o
        .body
        .collect()
        .await
        .map_err(|e| format!("cannot read s3://{bucket}/{key}: {e}"))?
        .into_bytes();
    Ok(Some(
        serde_json::from_slice::<Stamp>(&body)
            .map(|s| s.at)
            .unwrap_or(0),
    ))
}

/// Deletes a preview's stamp (every version: the bucket is versioned, and an
/// older version left would bring the stamp back). One listing answers at most
/// 1,000 versions (a pull request pushed to that often): deleted in rounds.
pub async fn forget(c: &Clients, bucket: &str, project: &str, pr: u64) -> Result<(), String> {
    let key = stamp_key(project, pr);
    for _ in 0..20 {
        lock::delete_all(c, bucket, &key).await?;
        let left =
            c.s3.list_object_versions()
                .bucket(bucket)
                .prefix(&key)
                .send()
                .await
                .map_err(|e| format!("cannot list s3://{bucket}/{key}: {}", why(&e)))?;
        let any = left
            .versions()
            .iter()
            .any(|v| v.key() == Some(key.as_str()))
            || left
                .delete_markers()
                .iter()
                .any(|m| m.key() == Some(key.as_str()));
        if !any {
            return Ok(());
        }
    }
    Err(format!(
        "s3://{bucket}/{key} still has versions after 20 rounds of deletion"
    ))
}

/// The pull request of a stamp's key.
pub fn pr_of_key(project: &str, key: &str) -> Option<u64> {
    let n = key
        .strip_prefix(&stamp_prefix(project))?
        .strip_suffix(".json")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Every preview's stamp: `(pr, at)`. Listed through object versions (the
/// permission the preview CI role has on the bucket), the current ones read.
pub async fn stamps(c: &Clients, bucket: &str, project: &str) -> Result<Vec<(u64, i64)>, String> {
    let prefix = stamp_prefix(project);
    let failed = |e: String| format!("cannot list s3://{bucket}/{prefix}*: {e}");
    let mut keys: Vec<String> = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page =
            c.s3.list_object_versions()
                .bucket(bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| failed(why(&e)))?;
        for v in page.versions() {
            if v.is_latest() == Some(true)
                && let Some(k) = v.key()
                && !keys.iter().any(|x| x == k)
            {
                keys.push(k.to_string());
            }
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        if key_marker.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for key in keys {
        let Some(pr) = pr_of_key(project, &key) else {
            continue;
        };
        let o = match c.s3.get_object().bucket(bucket).key(&key).send().await {
            Ok(o) => o,
            // Deleted since it was listed (a teardown): no preview.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => continue,
            Err(e) => return Err(format!("cannot read s3://{bucket}/{key}: {}", why(&e))),
        };
        let body = o
            .body
            .collect()
            .await
            .map_err(|e| format!("cannot read s3://{bucket}/{key}: {e}"))?
            .into_bytes();
        // An unreadable stamp still claims its slot; its time is the epoch, so
        // the next gc tears that preview down.
        let at = serde_json::from_slice::<Stamp>(&body)
            .map(|s| s.at)
            .unwrap_or(0);
        out.push((pr, at));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_pull_request_and_match_the_ci_roles_permissions() {
        assert_eq!(stamp_key("shop", 42), "shop-preview-activity-42.json");
        assert_eq!(pr_of_key("shop", "shop-preview-activity-42.json"), Some(42));
        assert_eq!(pr_of_key("shop", "shop-preview-activity-x.json"), None);
        assert_eq!(pr_of_key("shop", "shop-preview-activity-42.json.bak"), None);
        assert_eq!(pr_of_key("other", "shop-preview-activity-42.json"), None);
        // `{project}-preview-*-deploy-lock.json`, and no environment's lock.
        assert_eq!(lock_key("shop"), "shop-preview-slots-deploy-lock.json");
        assert_ne!(lock_key("shop"), lock::key("shop-preview"));
    }
}

//! The deploy lock of an environment: one object in the template bucket,
//! `{project}-{env}-deploy-lock.json`, created with a conditional write
//! (`If-None-Match: *`), so of two deploys or destroys of one environment
//! started at once exactly one holds it. The other waits (`--lock-wait`) or is
//! refused with who holds it, doing what, since when. A lock past its expiry
//! (its holder crashed or was cancelled) is taken over with `If-Match` on the
//! stale lock's ETag, so two takers cannot both win; `pantstack unlock` removes
//! one by hand.
//!
//! The holder records who it is (`PANTSTACK_LOCK_OWNER`, else the GitHub
//! Actions run, else `user@host`), the verb, the time and the expiry. A lock
//! lasts `PANTSTACK_LOCK_TTL_S` seconds (default 15 min, `Clients::lock_ttl`)
//! and its holder renews it every third of that while it runs (`If-Match` on
//! its own ETag: [`hold_while`]), so a long deploy keeps it and the lock of a
//! run that was killed or cancelled (a CI job past its timeout) expires within
//! the TTL. A run whose renewal finds the lock another's is told (`Kept::lost`)
//! and leaves that lock alone; a renewal never writes a lock that is gone.
//!
//! The same mechanism serves other lock objects ([`acquire_with`] words their
//! refusal): the previews' lock (`crate::slots`), renewed by [`Renewing`] while
//! its holder works synchronously.

use crate::{Clients, why};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who holds an environment's lock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub verb: String,
    /// Seconds since the epoch.
    pub since: u64,
    pub expires: u64,
}

impl Holder {
    /// `alice@laptop (deploy) since 2026-12-04T10:00:00Z`
    pub fn describe(&self) -> String {
        format!(
            "{} ({}) since {}",
            self.owner,
            self.verb,
            rfc3339(self.since)
        )
    }
}

/// A lock this process holds.
#[derive(Clone, Debug)]
pub struct Held {
    pub bucket: String,
    pub key: String,
    etag: String,
    me: Holder,
    /// The stale holder it replaced, if it took one over.
    pub took_over: Option<Holder>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-12-04T10:00:00Z` (also the previews' times).
pub(crate) fn rfc3339(secs: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    let full = pantstack_rt::clock::rfc3339_micros(t);
    // `…T10:00:00.000000Z` → `…T10:00:00Z`
    match full.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => full,
    }
}

/// Who this process is, for the lock's record.
pub fn owner() -> String {
    if let Ok(o) = std::env::var("PANTSTACK_LOCK_OWNER")
        && !o.trim().is_empty()
    {
        return o.trim().to_string();
    }
    if let (Ok(actor), Ok(run)) = (
        std::env::var("GITHUB_ACTOR"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        return format!("{actor} (GitHub Actions run {run})");
    }
    format!("{} (pid {})", me(), std::process::id())
}

/// `user@host` of this process.
fn me() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".into());
    format!("{user}@{host}")
}

/// Whether a lock was taken on this machine, by this user, by a process that
/// is gone (a deploy interrupted with Ctrl-C): then it is stale at once.
fn holder_died_here(h: &Holder) -> bool {
    let Some(pid) = h
        .owner
        .strip_prefix(&format!("{} (pid ", me()))
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// How often a holder renews its lock: a third of the TTL
/// (`Clients::lock_ttl`).
pub fn renew_every(c: &Clients) -> Duration {
    Duration::from_secs((c.lock_ttl.as_secs() / 3).max(1))
}

/// Renews a held lock (a new expiry, `If-Match` on its ETag). `Ok(false)`: the
/// lock is no longer this run's (it expired and another run took it over, or
/// it was removed): nothing is written then, so a renewal never brings a
/// released or removed lock back.
pub async fn renew(c: &Clients, held: &mut Held) -> Result<bool, String> {
    let mut me = held.me.clone();
    me.expires = now() + c.lock_ttl.as_secs();
    match write(c, &held.bucket, &held.key, &me, Some(&held.etag)).await? {
        Some(etag) => {
            held.etag = etag;
            held.me = me;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// What became of a lock held around a run ([`hold_while`]).
#[derive(Debug, Default)]
pub struct Kept {
    /// A renewal found the lock taken over (or removed): the run went on
    /// without it, and it was not released (it is another run's now).
    pub lost: bool,
    /// The last renewal failed (the lock may have expired meanwhile).
    pub renew_error: Option<String>,
    /// The release failed (the lock expires by itself).
    pub release_error: Option<String>,
}

/// Runs `run` holding `held`: renewed every [`renew_every`] while it goes on
/// (so a long run keeps its lock, a killed one's expires within the TTL), then
/// released, whatever `run` returned, unless it was lost meanwhile.
pub async fn hold_while<T>(
    c: &Clients,
    mut held: Held,
    run: impl std::future::Future<Output = T>,
) -> (T, Kept) {
    let mut run = std::pin::pin!(run);
    let mut kept = Kept::default();
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            () = tokio::time::sleep(renew_every(c)), if !kept.lost => {
                match renew(c, &mut held).await {
                    Ok(true) => kept.renew_error = None,
                    Ok(false) => kept.lost = true,
                    Err(m) => kept.renew_error = Some(m),
                }
            }
        }
    };
    if !kept.lost {
        kept.release_error = release(c, &held).await.err();
    }
    (result, kept)
}

/// The lock object's key for an environment (`{project}-{env}`).
pub fn key(prefix: &str) -> String {
    format!("{prefix}-deploy-lock.json")
}

/// The current holder and the lock object's ETag, if the lock is taken.
pub async fn holder(
    c: &Clients,
    bucket: &str,
    key: &str,
) -> Result<Option<(Holder, String)>, String> {
    match c.s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => {
            let etag = o.e_tag().unwrap_or_default().to_string();
            let body = o
                .body
                .collect()
                .await
                .map_err(|e| format!("cannot read the lock s3://{bucket}/{key}: {e}"))?
                .into_bytes();
            // A lock that is not ours to read (damaged) counts as held by
            // someone unknown and stale, so it can be taken over.
            let h = serde_json::from_slice(&body).unwrap_or(Holder {
                owner: "an unreadable lock".into(),
                verb: "unknown".into(),
                since: 0,
                expires: 0,
            });
            Ok(Some((h, etag)))
        }
        Err(e) => {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
            {
                Ok(None)
            } else {
                Err(format!(
                    "cannot read the lock s3://{bucket}/{key}: {}",
                    why(&e)
                ))
            }
        }
    }
}

/// Writes the lock: `If-None-Match: *` when free, `If-Match` on the stale
/// lock's ETag when taking one over. `Ok(None)`: someone else won the race.
async fn write(
    c: &Clients,
    bucket: &str,
    key: &str,
    me: &Holder,
    replacing: Option<&str>,
) -> Result<Option<String>, String> {
    let body = serde_json::to_vec(me).map_err(|e| e.to_string())?;
    let mut put =
        c.s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(body));
    put = match replacing {
        None => put.if_none_match("*"),
        Some(etag) => put.if_match(etag),
    };
    match put.send().await {
        Ok(o) => Ok(Some(o.e_tag().unwrap_or_default().to_string())),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            // 412: taken (or changed) meanwhile; 409: a concurrent conditional
            // write (ConditionalRequestConflict); 404: the stale lock was removed.
            if matches!(status, Some(412 | 409 | 404)) {
                Ok(None)
            } else {
                Err(format!(
                    "cannot write the lock s3://{bucket}/{key}: {}",
                    why(&e)
                ))
            }
        }
    }
}

/// Takes the lock for `verb`, waiting up to `wait` for its holder to release
/// it (polling every `poll`).
pub async fn acquire(
    c: &Clients,
    bucket: &str,
    key: &str,
    verb: &str,
    wait: Duration,
    env: &str,
) -> Result<Held, String> {
    acquire_with(c, bucket, key, verb, wait, &|who| {
        format!(
            "environment `{env}` is locked by {who}: another deploy or destroy is running on it. Wait for it with --lock-wait DURATION (e.g. --lock-wait 15m); if that run is gone, its lock expires by itself, or remove it with `pantstack unlock --target aws --env {env}`"
        )
    })
    .await
}

/// [`acquire`] of any lock object: `refusal` words the error once `wait` is
/// over, given who holds the lock (`alice@laptop (deploy) since …`).
pub async fn acquire_with(
    c: &Clients,
    bucket: &str,
    key: &str,
    verb: &str,
    wait: Duration,
    refusal: &(dyn Fn(&str) -> String + Sync),
) -> Result<Held, String> {
    try_acquire(c, bucket, key, verb, wait)
        .await?
        .map_err(|who| refusal(&who))
}

/// Takes a lock object, waiting up to `wait` (polling every `Clients::poll`,
/// 5 s at most): `Ok(Err(who))` when another run still holds it then
/// (`alice@laptop (deploy) since …`); `Err` when S3 could not be asked.
pub async fn try_acquire(
    c: &Clients,
    bucket: &str,
    key: &str,
    verb: &str,
    wait: Duration,
) -> Result<Result<Held, String>, String> {
    let deadline = std::time::Instant::now() + wait;
    let poll = c
        .poll
        .min(Duration::from_secs(5))
        .max(Duration::from_millis(100));
    let who = owner();
    loop {
        let t = now();
        let me = Holder {
            owner: who.clone(),
            verb: verb.to_string(),
            since: t,
            expires: t + c.lock_ttl.as_secs(),
        };
        if let Some(etag) = write(c, bucket, key, &me, None).await? {
            return Ok(Ok(Held {
                bucket: bucket.to_string(),
                key: key.to_string(),
                etag,
                me,
                took_over: None,
            }));
        }
        let current = holder(c, bucket, key).await?;
        if let Some((h, etag)) = &current
            && (h.expires <= now() || holder_died_here(h))
            && let Some(new) = write(c, bucket, key, &me, Some(etag)).await?
        {
            return Ok(Ok(Held {
                bucket: bucket.to_string(),
                key: key.to_string(),
                etag: new,
                me,
                took_over: Some(h.clone()),
            }));
        }
        if std::time::Instant::now() >= deadline {
            let who = current
                .map(|(h, _)| h.describe())
                .unwrap_or_else(|| "another run (it was just released)".into());
            return Ok(Err(who));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        tokio::time::sleep(poll.min(left)).await;
    }
}

/// A held lock renewed on a runtime's worker threads while its holder does
/// synchronous work (the previews' lock around `preview up`'s cap check, which
/// may tear down the oldest preview with `--replace-oldest`).
pub struct Renewing {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    held: std::sync::Arc<std::sync::Mutex<(Held, bool)>>,
}

impl Renewing {
    pub fn start(rt: &tokio::runtime::Handle, c: &Clients, held: Held) -> Renewing {
        let shared = std::sync::Arc::new(std::sync::Mutex::new((held, false)));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (c, mine) = (c.clone(), shared.clone());
        let task = rt.spawn(async move {
            loop {
                // Stopping never cuts a renewal short: one in flight when
                // `stop` is asked completes, so the ETag kept is the lock's.
                tokio::select! {
                    () = tokio::time::sleep(renew_every(&c)) => {}
                    _ = stopped.changed() => return,
                }
                let Ok(mut h) = mine.lock().map(|h| h.0.clone()) else {
                    return;
                };
                let kept = renew(&c, &mut h).await;
                let lost = matches!(kept, Ok(false));
                if let Ok(mut slot) = mine.lock() {
                    *slot = (h, lost);
                }
                // Lost (another run took it over after it expired): stop.
                if lost {
                    return;
                }
            }
        });
        Renewing {
            task,
            stop,
            held: shared,
        }
    }

    /// Stops renewing (after a renewal in flight, if any); the lock as last
    /// renewed, to release, or `None` when a renewal found it lost.
    pub async fn stop(self) -> Option<Held> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let (held, lost) = match self.held.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        (!lost).then_some(held)
    }
}

/// Deletes every version (and delete marker) of the lock object. The template
/// bucket is versioned: a plain delete would leave a delete marker, and
/// deleting only the current version would bring a stale lock under it back.
pub(crate) async fn delete_all(c: &Clients, bucket: &str, key: &str) -> Result<(), String> {
    let failed = |e: String| format!("cannot remove the lock s3://{bucket}/{key}: {e}");
    let listed =
        c.s3.list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| failed(why(&e)))?;
    let mut versions: Vec<Option<String>> = listed
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| v.version_id().map(str::to_string))
        .chain(
            listed
                .delete_markers()
                .iter()
                .filter(|m| m.key() == Some(key))
                .map(|m| m.version_id().map(str::to_string)),
        )
        .collect();
    if versions.is_empty() {
        // Nothing listed (an unversioned bucket): the object itself.
        versions.push(None);
    }
    for v in versions {
        c.s3.delete_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(v.filter(|id| id != "null"))
            .send()
            .await
            .map_err(|e| failed(why(&e)))?;
    }
    Ok(())
}

/// Releases a lock this process holds, unless another took it over since
/// (after it expired): then that one is left alone.
pub async fn release(c: &Clients, held: &Held) -> Result<(), String> {
    match holder(c, &held.bucket, &held.key).await? {
        Some((_, etag)) if etag == held.etag => {}
        _ => return Ok(()),
    }
    delete_all(c, &held.bucket, &held.key).await
}

/// What [`remove`] found.
#[derive(Debug)]
pub enum Removed {
    /// The lock shown was removed.
    Removed(Holder),
    /// No lock was there any more.
    Gone,
    /// Another lock than the one shown (by its ETag) holds the environment now:
    /// left alone.
    ChangedHands(Holder),
}

/// Removes an environment's lock (`pantstack unlock`), only if it is still the
/// one whose ETag the user was shown (`expected`): a run that took the lock
/// since is never unlocked by a confirmation given for another.
pub async fn remove(
    c: &Clients,
    bucket: &str,
    key: &str,
    expected: &str,
) -> Result<Removed, String> {
    let Some((h, etag)) = holder(c, bucket, key).await? else {
        return Ok(Removed::Gone);
    };
    if etag != expected {
        return Ok(Removed::ChangedHands(h));
    }
    delete_all(c, bucket, key).await?;
    Ok(Removed::Removed(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_of_a_gone_process_of_this_user_here_is_stale() {
        let gone = Holder {
            owner: format!("{} (pid 4000000)", me()),
            verb: "deploy".into(),
            since: now(),
            expires: now() + 3600,
        };
        assert!(holder_died_here(&gone));
        let alive = Holder {
            owner: format!("{} (pid 1)", me()),
            ..gone.clone()
        };
        assert!(!holder_died_here(&alive), "pid 1 runs");
        let elsewhere = Holder {
            owner: "someone@elsewhere (pid 4000000)".into(),
            ..gone
        };
        assert!(!holder_died_here(&elsewhere));
    }

    #[test]
    fn a_holder_says_who_what_and_since_when() {
        let h = Holder {
            owner: "alice@laptop (pid 7)".into(),
            verb: "deploy".into(),
            since: 1_764_842_400,
            expires: 1_764_849_600,
        };
        assert_eq!(
            h.describe(),
            "alice@laptop (pid 7) (deploy) since 2025-12-04T10:00:00Z"
        );
        assert_eq!(key("shop-test"), "shop-test-deploy-lock.json");
    }
}

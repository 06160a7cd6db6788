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
//! the TTL. A run whose renewal finds the lock another's is told (`Kept::lost`,
//! and `Watch::lost` at once, which stops its stack operations) and leaves that
//! lock alone; a renewal never writes a lock that is gone. Expiry is judged by
//! S3's clock (the object's Last-Modified plus the TTL its writer wrote, against
//! the response's Date); removal deletes only the version read (or written)
//! and older ones; a missing bucket is an error naming it.
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
    /// The version of the lock object this run wrote last (the template bucket
    /// is versioned): a release deletes it and older ones, never a newer one.
    version: Option<String>,
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
        Some(w) => {
            held.etag = w.etag;
            held.version = w.version;
            held.me = me;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// What became of a lock held around a run ([`hold_while`]).
#[derive(Debug, Default)]
pub struct Kept {
    /// The lock stopped being this run's while it ran: a renewal found it
    /// taken over or removed, or it expired because renewals failed. The run
    /// was told at once (`Watch::lost`) and started no stack operation after.
    pub lost: bool,
    /// Who holds it now, when a renewal found it another run's.
    pub lost_to: Option<Holder>,
    /// The last renewal failed (the lock may have expired meanwhile).
    pub renew_error: Option<String>,
    /// The release failed (the lock expires by itself).
    pub release_error: Option<String>,
}

impl Kept {
    /// What a report says of a lost lock (`None` when it was kept).
    pub fn lost_message(&self) -> Option<String> {
        if !self.lost {
            return None;
        }
        Some(match (&self.lost_to, &self.renew_error) {
            (Some(h), _) => format!(
                "this run lost its deploy lock while it ran: {} took it over (this run could not renew it in time)",
                h.describe()
            ),
            (None, Some(m)) => {
                format!("this run lost its deploy lock while it ran: it expired unrenewed ({m})")
            }
            (None, None) => {
                "this run lost its deploy lock while it ran: it was removed (`pantstack unlock`)"
                    .to_string()
            }
        })
    }
}

/// The locks runs hold through one set of clients (shared by their clones,
/// so by every task of a run): whether one was lost, which the run checks
/// before each stack operation (`crate::stack`) and stops at.
#[derive(Clone, Debug, Default)]
pub struct Watch(std::sync::Arc<std::sync::Mutex<Vec<Watched>>>);

/// A lock held (by its id), and why it was lost, once it was.
type Watched = (u64, Option<String>);

impl Watch {
    fn enter(&self) -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut w) = self.0.lock() {
            w.push((id, None));
        }
        id
    }

    fn lose(&self, id: u64, why: String) {
        if let Ok(mut w) = self.0.lock()
            && let Some(e) = w.iter_mut().find(|e| e.0 == id)
        {
            e.1 = Some(why);
        }
    }

    fn leave(&self, id: u64) {
        if let Ok(mut w) = self.0.lock() {
            w.retain(|e| e.0 != id);
        }
    }

    /// Why a lock held now through these clients was lost, if one was.
    pub fn lost(&self) -> Option<String> {
        let w = match self.0.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        w.iter().find_map(|e| e.1.clone())
    }
}

/// Runs `run` holding `held`: renewed every [`renew_every`] while it goes on
/// (so a long run keeps its lock, a killed one's expires within the TTL), then
/// released, whatever `run` returned, unless another run took it over
/// meanwhile. A lost lock (taken over, removed, or expired because renewals
/// failed) is marked on `c.lock_watch` at once, so the run starts no further
/// stack operation.
pub async fn hold_while<T>(
    c: &Clients,
    mut held: Held,
    run: impl std::future::Future<Output = T>,
) -> (T, Kept) {
    let watch = c.lock_watch.clone();
    let id = watch.enter();
    let mut run = std::pin::pin!(run);
    let mut kept = Kept::default();
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            () = tokio::time::sleep(renew_every(c)), if !kept.lost => {
                match renew(c, &mut held).await {
                    Ok(true) => kept.renew_error = None,
                    Ok(false) => {
                        kept.lost = true;
                        kept.lost_to = holder(c, &held.bucket, &held.key)
                            .await
                            .ok()
                            .flatten()
                            .map(|(h, _)| h);
                    }
                    Err(m) => {
                        kept.renew_error = Some(m);
                        // Past its expiry (by this run's own clock, which
                        // wrote it): another run may take it any moment.
                        kept.lost = now() >= held.me.expires;
                    }
                }
                if let Some(why) = kept.lost_message() {
                    watch.lose(id, why);
                }
            }
        }
    };
    watch.leave(id);
    if kept.lost_to.is_none() {
        // Only this run's own version (and older ones) goes: a lock another
        // run took meanwhile is left alone.
        kept.release_error = release(c, &held).await.err();
    }
    (result, kept)
}

/// The lock object's key for an environment (`{project}-{env}`).
pub fn key(prefix: &str) -> String {
    format!("{prefix}-deploy-lock.json")
}

/// What a missing template bucket is called in errors.
fn no_bucket(bucket: &str, key: &str) -> String {
    format!(
        "the template bucket {bucket} (it holds the lock s3://{bucket}/{key}) does not exist: an administrator runs `pantstack bootstrap` for this environment to create it again"
    )
}

/// The S3 error code of a failed request (`NoSuchKey`, `NoSuchBucket`, …).
fn code<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> Option<String> {
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string)
}

/// A lock as read: who holds it, the object's ETag and version, and whether
/// it is past its expiry.
#[derive(Clone, Debug)]
pub struct Found {
    pub holder: Holder,
    pub etag: String,
    pub version: Option<String>,
    /// Past its expiry: judged by S3's own clock when the response says it
    /// (the object's Last-Modified plus the TTL its writer wrote, against the
    /// response's Date), else by this machine's clock against `expires`.
    pub stale: bool,
}

/// What a lock object holds besides its [`Holder`]: the TTL its writer
/// renews it within, and a random nonce (two runs writing the same owner,
/// verb and second still write different bodies, so different ETags).
#[derive(Serialize, Deserialize)]
struct Body<H> {
    #[serde(flatten)]
    holder: H,
    #[serde(default)]
    ttl_s: Option<u64>,
    #[serde(default)]
    nonce: String,
}

/// Records the `Date` header of a response: S3's clock.
#[derive(Debug)]
struct ServerDate(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl aws_sdk_s3::config::Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "ServerDate"
    }

    fn read_before_deserialization(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(d) = ctx.response().headers().get("date")
            && let Ok(mut slot) = self.0.lock()
        {
            *slot = Some(d.to_string());
        }
        Ok(())
    }
}

/// The current holder and the lock object's ETag, if the lock is taken.
pub async fn holder(
    c: &Clients,
    bucket: &str,
    key: &str,
) -> Result<Option<(Holder, String)>, String> {
    Ok(read(c, bucket, key).await?.map(|f| (f.holder, f.etag)))
}

/// The lock object as it is now, if there is one. A missing bucket is an
/// error naming it, not a free lock.
pub async fn read(c: &Clients, bucket: &str, key: &str) -> Result<Option<Found>, String> {
    let date = std::sync::Arc::new(std::sync::Mutex::new(None));
    let got =
        c.s3.get_object()
            .bucket(bucket)
            .key(key)
            .customize()
            .interceptor(ServerDate(date.clone()))
            .send()
            .await;
    let o = match got {
        Ok(o) => o,
        Err(e) => {
            return match code(&e).as_deref() {
                Some("NoSuchKey") => Ok(None),
                Some("NoSuchBucket") => Err(no_bucket(bucket, key)),
                _ => Err(format!(
                    "cannot read the lock s3://{bucket}/{key}: {}",
                    why(&e)
                )),
            };
        }
    };
    let etag = o.e_tag().unwrap_or_default().to_string();
    let version = o.version_id().map(str::to_string);
    let modified = o.last_modified().map(|t| t.secs().max(0) as u64);
    let body = o
        .body
        .collect()
        .await
        .map_err(|e| format!("cannot read the lock s3://{bucket}/{key}: {e}"))?
        .into_bytes();
    let server_now = date
        .lock()
        .ok()
        .and_then(|d| d.clone())
        .and_then(|d| {
            aws_smithy_types::DateTime::from_str(&d, aws_smithy_types::date_time::Format::HttpDate)
                .ok()
        })
        .map(|t| t.secs().max(0) as u64);
    // A lock that is not ours to read (damaged) counts as held by someone
    // unknown and stale, so it can be taken over.
    let Ok(parsed) = serde_json::from_slice::<Body<Holder>>(&body) else {
        return Ok(Some(Found {
            holder: Holder {
                owner: "an unreadable lock".into(),
                verb: "unknown".into(),
                since: 0,
                expires: 0,
            },
            etag,
            version,
            stale: true,
        }));
    };
    let ttl = parsed.ttl_s.unwrap_or(c.lock_ttl.as_secs());
    let stale = match (modified, server_now) {
        (Some(m), Some(n)) => n >= m.saturating_add(ttl),
        _ => now() >= parsed.holder.expires,
    };
    Ok(Some(Found {
        holder: parsed.holder,
        etag,
        version,
        stale,
    }))
}

/// A lock object written: its ETag and version.
struct Written {
    etag: String,
    version: Option<String>,
}

/// A random nonce for a lock's body (the standard library's per-process
/// random hash keys over the time and a counter).
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u64(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Writes the lock: `If-None-Match: *` when free, `If-Match` on the stale
/// lock's ETag when taking one over. `Ok(None)`: someone else won the race.
async fn write(
    c: &Clients,
    bucket: &str,
    key: &str,
    me: &Holder,
    replacing: Option<&str>,
) -> Result<Option<Written>, String> {
    let body = serde_json::to_vec(&Body {
        holder: me,
        ttl_s: Some(c.lock_ttl.as_secs()),
        nonce: nonce(),
    })
    .map_err(|e| e.to_string())?;
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
        Ok(o) => Ok(Some(Written {
            etag: o.e_tag().unwrap_or_default().to_string(),
            version: o.version_id().map(str::to_string),
        })),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            match (status, code(&e).as_deref()) {
                (_, Some("NoSuchBucket")) => Err(no_bucket(bucket, key)),
                // 412: taken (or changed) meanwhile; 409: a concurrent
                // conditional write; 404 NoSuchKey: the stale lock was removed.
                (Some(412), _)
                | (Some(409), Some("ConditionalRequestConflict") | None)
                | (Some(404), Some("NoSuchKey")) => Ok(None),
                _ => Err(format!(
                    "cannot write the lock s3://{bucket}/{key}: {}",
                    why(&e)
                )),
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
        if let Some(w) = write(c, bucket, key, &me, None).await? {
            return Ok(Ok(Held {
                bucket: bucket.to_string(),
                key: key.to_string(),
                etag: w.etag,
                version: w.version,
                me,
                took_over: None,
            }));
        }
        let current = read(c, bucket, key).await?;
        if let Some(f) = &current
            && (f.stale || holder_died_here(&f.holder))
            && let Some(w) = write(c, bucket, key, &me, Some(&f.etag)).await?
        {
            return Ok(Ok(Held {
                bucket: bucket.to_string(),
                key: key.to_string(),
                etag: w.etag,
                version: w.version,
                me,
                took_over: Some(f.holder.clone()),
            }));
        }
        if std::time::Instant::now() >= deadline {
            let who = current
                .map(|f| f.holder.describe())
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
    let listed = versions_of(c, bucket, key).await?;
    let mut versions: Vec<Option<String>> = listed
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| v.version_id())
        .chain(
            listed
                .delete_markers()
                .iter()
                .filter(|m| m.key() == Some(key))
                .map(|m| m.version_id()),
        )
        // `null`: the version written while the bucket was unversioned, which
        // a delete without a version id removes.
        .map(|id| id.filter(|id| *id != "null").map(str::to_string))
        .collect();
    if versions.is_empty() {
        // Nothing listed (an unversioned bucket): the object itself.
        versions.push(None);
    }
    delete_versions(c, bucket, key, versions).await
}

/// The listing of the lock object's versions and delete markers.
async fn versions_of(
    c: &Clients,
    bucket: &str,
    key: &str,
) -> Result<aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput, String> {
    c.s3.list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .map_err(|e| removal_failed(bucket, key, &why(&e)))
}

/// Deletes these versions of the lock object (`None`: without a version id).
async fn delete_versions(
    c: &Clients,
    bucket: &str,
    key: &str,
    versions: Vec<Option<String>>,
) -> Result<(), String> {
    for v in versions {
        c.s3.delete_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(v)
            .send()
            .await
            .map_err(|e| removal_failed(bucket, key, &why(&e)))?;
    }
    Ok(())
}

fn removal_failed(bucket: &str, key: &str, e: &str) -> String {
    format!("cannot remove the lock s3://{bucket}/{key}: {e}")
}

/// Deletes one version of the lock object and every older version and
/// delete marker of it, never a newer one: a lock another run wrote after the
/// one shown stays. `version` is gone already: nothing is deleted. On an
/// unversioned bucket (no version ids) the object itself is deleted.
pub async fn delete_through(
    c: &Clients,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<(), String> {
    let Some(version) = version.filter(|v| *v != "null") else {
        return delete_all(c, bucket, key).await;
    };
    let listed = versions_of(c, bucket, key).await?;
    let mine: Vec<_> = listed
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .collect();
    let Some(shown) = mine.iter().find(|v| v.version_id() == Some(version)) else {
        return Ok(());
    };
    // Older than the shown version: everything listed when it is the latest
    // (a lock written after the listing is not in it); else only what was
    // written strictly before it (a version of the same second may be newer).
    // Judged by the flags and times S3 lists, not by the listing's order.
    let latest = shown.is_latest() == Some(true);
    let shown_at = shown.last_modified().map(|t| t.secs());
    let older = |t: Option<&aws_smithy_types::DateTime>| {
        latest
            || match (t, shown_at) {
                (Some(t), Some(s)) => t.secs() < s,
                _ => false,
            }
    };
    let doomed: Vec<Option<String>> = mine
        .iter()
        .filter(|v| v.version_id() == Some(version) || older(v.last_modified()))
        .filter_map(|v| v.version_id())
        .chain(
            listed
                .delete_markers()
                .iter()
                .filter(|m| m.key() == Some(key) && older(m.last_modified()))
                .filter_map(|m| m.version_id()),
        )
        .map(|v| Some(v.to_string()))
        .collect();
    delete_versions(c, bucket, key, doomed).await
}

/// Releases a lock this process holds, unless another took it over since
/// (after it expired): then that one is left alone. Only the version this
/// run wrote last and older ones are deleted.
pub async fn release(c: &Clients, held: &Held) -> Result<(), String> {
    match read(c, &held.bucket, &held.key).await? {
        Some(f) if f.etag == held.etag => {}
        _ => return Ok(()),
    }
    delete_through(c, &held.bucket, &held.key, held.version.as_deref()).await
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
/// since is never unlocked by a confirmation given for another. Only the
/// version read (and older ones) is deleted, so a lock written between the
/// read and the delete stays.
pub async fn remove(
    c: &Clients,
    bucket: &str,
    key: &str,
    expected: &str,
) -> Result<Removed, String> {
    let Some(f) = read(c, bucket, key).await? else {
        return Ok(Removed::Gone);
    };
    if f.etag != expected {
        return Ok(Removed::ChangedHands(f.holder));
    }
    delete_through(c, bucket, key, f.version.as_deref()).await?;
    Ok(Removed::Removed(f.holder))
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

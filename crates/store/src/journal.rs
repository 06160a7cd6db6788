//! Group commit around the durable record log, in the style of an event loop that
//! syncs before it sleeps: requests frame their records into one pending buffer,
//! and the endpoint's loop thread writes and `fdatasync`s everything pending once
//! it has run every request that is ready, then wakes the requests it covered. A
//! request answers its client only after its records are on disk.
//!
//! No thread hop: the loop thread that parsed a request also syncs it, so a commit
//! costs one write and one sync for the whole group, with no wake-ups between
//! threads. Callers on other threads (the supervisor's control socket, the CLI with
//! no local cloud running) sync what is pending themselves.
//!
//! Records are submitted while the caller still holds the lock of the state they
//! change, so the log's order is the order the changes were applied in, and replaying
//! the log rebuilds exactly the acknowledged state.
//!
//! Group size: a sync costs the same whatever it carries (~90 µs of CPU on the VMs
//! we measure on), so the flusher waits for the writers it expects, as PostgreSQL's
//! `commit_delay`/`commit_siblings` do. A writer is a connection's task (its tokio
//! task id); the writers of the last two groups are expected again. Until they all
//! have submitted, the flusher waits for the next submission, at most
//! `STRAGGLER_WAIT`. A writer that does not come within it is forgotten, so a
//! connection that went quiet delays at most one group.

use crate::{Log, Recovery};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use tokio::sync::Notify;

/// How many times the flusher lets ready requests run before it syncs, at most:
/// it syncs as soon as a round adds no record.
const MAX_ROUNDS: usize = 8;
/// Failed groups remembered for requests that have not looked yet.
const KEEP_FAILURES: usize = 64;
/// The longest a group waits for an expected writer (tokio's timers tick in
/// milliseconds: the wait ends within one or two).
const STRAGGLER_WAIT: std::time::Duration = std::time::Duration::from_millis(1);
/// Writers remembered per group (more than this many at once need no waiting:
/// their groups are large anyway).
const MAX_WRITERS: usize = 64;

#[derive(Default)]
struct Pending {
    /// Framed records not yet written.
    buf: Vec<u8>,
    /// Sequence number of the last record submitted (the first is 1).
    last: u64,
    /// The distinct writers (connection tasks) of the pending records.
    writers: Vec<tokio::task::Id>,
}

#[derive(Default)]
struct Done {
    /// Every record up to this one is resolved: written, or its group failed.
    upto: u64,
    /// Groups whose write failed: (first, last, why).
    failures: Vec<(u64, u64, String)>,
}

struct Inner {
    pending: Mutex<Pending>,
    /// Held for a whole write + sync, so groups reach the disk in order.
    log: Mutex<Log>,
    done: Mutex<Done>,
    /// Wakes the loop thread's flusher when records arrive (or a background
    /// rewrite has its image ready).
    work: Arc<Notify>,
    /// A rewrite whose image is being built off the loop thread.
    background: Mutex<Option<Background>>,
    /// Wakes requests waiting for durability after each group.
    flushed: Notify,
    /// The thread whose flusher task syncs for it (the endpoint's loop).
    loop_thread: Mutex<Option<ThreadId>>,
    /// Groups written, and the submissions they carried.
    groups: AtomicU64,
    grouped: AtomicU64,
    /// Groups synced without an expected writer (it did not come in time).
    timeouts: AtomicU64,
    /// Bytes in the log, and what it held after it was opened or last rewritten
    /// (compaction is due when it has grown enough past that).
    len: AtomicU64,
    base: AtomicU64,
    /// Rewrites done.
    rewrites: AtomicU64,
    /// Why a group's write failed: from then on nothing is written or answered
    /// (fail-stop, as PostgreSQL stops on a failed fsync).
    failed: Mutex<Option<String>>,
    /// `inject_write_failure` was called.
    inject: Mutex<bool>,
}

#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

/// A submitted group of records; `wait` resolves once they are durable.
#[must_use = "a change is acknowledged only after `wait`"]
pub struct Durable {
    journal: Journal,
    seq: u64,
    err: Option<String>,
}

/// Where a rewrite is written before it is renamed over the log: beside it, named
/// for this process and rewrite, so that no two writers ever share one.
fn rewrite_path(log: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = log.as_os_str().to_owned();
    name.push(format!(
        ".rewrite-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    PathBuf::from(name)
}

/// Writes a new log at `path` with `fill` (framed records; it returns how many
/// bytes it wrote), syncs it, reads it back (every record checked) and opens it
/// for appends. On failure `path` is removed.
pub fn write_log(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> Result<u64, String>,
) -> Result<Log, String> {
    let written = (|| {
        let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let len = fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error().to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        drop(file);
        let (log, _) = Log::open(path, |_| {}).map_err(|e| e.to_string())?;
        if log.len() != len {
            return Err(format!("it read back as {} of {len} bytes", log.len()));
        }
        Ok(log)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Syncs the directory of `path` (a rename in it is durable after this).
fn sync_dir(path: &Path) -> Result<(), String> {
    path.parent()
        .map_or(Ok(()), |dir| {
            std::fs::File::open(dir).and_then(|d| d.sync_all())
        })
        .map_err(|e| format!("cannot sync the directory of {}: {e}", path.display()))
}

/// Removes what interrupted rewrites left beside the log.
fn remove_rewrites(log: &Path) {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return;
    };
    let mut prefix = name.to_owned();
    prefix.push(".rewrite-");
    let prefix = prefix.to_string_lossy().into_owned();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Where a background rewrite's worker leaves its image and the log's byte it
/// reaches to (or why it failed).
type ImageSlot = Arc<Mutex<Option<Result<(Log, u64), String>>>>;

/// A rewrite in progress off the loop thread: the image of the log's first
/// `upto` bytes is being written to `tmp`; what is appended meanwhile is copied
/// after it when it is done.
struct Background {
    upto: u64,
    tmp: PathBuf,
    /// Rewrites done when it started (another rewrite in between voids it).
    generation: u64,
    started: std::time::Instant,
    /// Filled by the worker: the image, written, synced and opened for appends,
    /// and how far into the log it reaches (the worker copies what was appended
    /// while it built the image).
    done: ImageSlot,
}

/// What the worker of a background rewrite gets: where to read the log's state
/// from and where to write its image, and how to hand the result back.
pub struct RewriteJob {
    pub log: PathBuf,
    pub upto: u64,
    pub tmp: PathBuf,
    done: ImageSlot,
    wake: Arc<Notify>,
}

impl RewriteJob {
    /// Hands the image back (`Log::open` of `tmp` and the log's byte it reaches
    /// to, at least `upto`; or why it failed); the loop thread puts it in place
    /// after its next group. The job holds no handle of the journal, so a worker
    /// that outlives its endpoint cannot touch the log.
    pub fn finish(self, image: Result<(Log, u64), String>) {
        *guard(&self.done) = Some(image);
        self.wake.notify_one();
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything can panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Journal {
    /// Opens the log at `path`, calling `each` for every record in order.
    pub fn open(path: &Path, each: impl FnMut(&[u8])) -> Result<(Journal, Recovery), String> {
        // Rewrites that a crash interrupted before their rename: the log they
        // were to replace is still whole.
        remove_rewrites(path);
        let (log, recovery) =
            Log::open(path, each).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let len = log.len();
        Ok((
            Journal {
                inner: Arc::new(Inner {
                    pending: Mutex::new(Pending::default()),
                    log: Mutex::new(log),
                    done: Mutex::new(Done::default()),
                    work: Arc::new(Notify::new()),
                    background: Mutex::new(None),
                    flushed: Notify::new(),
                    loop_thread: Mutex::new(None),
                    groups: AtomicU64::new(0),
                    grouped: AtomicU64::new(0),
                    timeouts: AtomicU64::new(0),
                    len: AtomicU64::new(len),
                    base: AtomicU64::new(len),
                    rewrites: AtomicU64::new(0),
                    failed: Mutex::new(None),
                    inject: Mutex::new(false),
                }),
            },
            recovery,
        ))
    }

    /// Why the journal stopped (a group's write failed), if it did. Once it has,
    /// every submission fails: the state in memory may hold changes that are not
    /// on disk, and nothing of it may be shown or built on (fail-stop).
    pub fn failure(&self) -> Option<String> {
        guard(&self.inner.failed).clone()
    }

    /// Stops the journal (fail-stop) for a reason found outside a write: a change
    /// applied in memory that cannot be journaled.
    pub fn fail(&self, why: impl Into<String>) {
        guard(&self.inner.failed).get_or_insert_with(|| why.into());
    }

    /// Makes the next group's write fail as a full disk would, before anything of
    /// it is written (fault injection for tests of the endpoint's failure path).
    #[doc(hidden)]
    pub fn inject_write_failure(&self) {
        *guard(&self.inner.inject) = true;
    }

    /// Queues records for the next group commit. Call it while holding the lock of
    /// the state the records describe; `wait` on the result without it.
    ///
    /// With no records it is a read barrier: `wait` resolves once every record
    /// submitted so far is durable, so a read taken under the same lock answers
    /// only what is on disk.
    pub fn submit(&self, records: Vec<Vec<u8>>) -> Durable {
        if let Some(why) = self.failure() {
            return Durable {
                journal: self.clone(),
                seq: 0,
                err: Some(why),
            };
        }
        let mut err = None;
        let seq = {
            let mut p = guard(&self.inner.pending);
            if records.is_empty() {
                // A barrier: the last record submitted, unless it is resolved.
                let upto = guard(&self.inner.done).upto;
                let seq = if p.last > upto { p.last } else { 0 };
                return Durable {
                    journal: self.clone(),
                    seq,
                    err: None,
                };
            }
            let start = p.buf.len();
            for r in &records {
                if let Err(e) = crate::frame(r, &mut p.buf) {
                    p.buf.truncate(start);
                    err = Some(e.to_string());
                    break;
                }
            }
            if err.is_some() {
                0
            } else {
                if let Some(id) = tokio::task::try_id()
                    && p.writers.len() < MAX_WRITERS
                    && !p.writers.contains(&id)
                {
                    p.writers.push(id);
                }
                p.last += 1;
                p.last
            }
        };
        if seq > 0 {
            self.inner.work.notify_one();
        }
        Durable {
            journal: self.clone(),
            seq,
            err,
        }
    }

    /// Writes and syncs everything pending (one group). Blocks for the sync.
    pub fn flush(&self) {
        self.flush_group();
    }

    /// `flush`, returning the group's writers.
    fn flush_group(&self) -> Vec<tokio::task::Id> {
        let mut log = guard(&self.inner.log);
        let (buf, first, last, writers) = {
            let mut p = guard(&self.inner.pending);
            let done = guard(&self.inner.done).upto;
            (
                std::mem::take(&mut p.buf),
                done + 1,
                p.last,
                std::mem::take(&mut p.writers),
            )
        };
        if last < first {
            return writers;
        }
        if let Some(why) = self.failure() {
            // Never append after a failed write: the log's tail may be torn, and
            // records after it would be cut with it on the next open.
            let mut d = guard(&self.inner.done);
            d.upto = d.upto.max(last);
            d.failures.push((first, last, why));
            let n = d.failures.len();
            if n > KEEP_FAILURES {
                d.failures.drain(..n - KEEP_FAILURES);
            }
            drop(d);
            drop(log);
            self.inner.flushed.notify_waiters();
            return writers;
        }
        self.inner.groups.fetch_add(1, Ordering::Relaxed);
        self.inner
            .grouped
            .fetch_add(last + 1 - first, Ordering::Relaxed);
        let injected = std::mem::take(&mut *guard(&self.inner.inject));
        let result = if injected {
            Err(format!(
                "cannot write {}: No space left on device (os error 28) (injected)",
                log.path().display()
            ))
        } else {
            log.append_framed(&buf)
                .map_err(|e| format!("cannot write {}: {e}", log.path().display()))
        };
        self.inner.len.store(log.len(), Ordering::Relaxed);
        {
            // Resolved before the log is released, so the next group starts after.
            let mut d = guard(&self.inner.done);
            d.upto = d.upto.max(last);
            if let Err(e) = result {
                guard(&self.inner.failed).get_or_insert_with(|| e.clone());
                d.failures.push((first, last, e));
                let n = d.failures.len();
                if n > KEEP_FAILURES {
                    d.failures.drain(..n - KEEP_FAILURES);
                }
            }
        }
        drop(log);
        self.inner.flushed.notify_waiters();
        writers
    }

    /// Whether the log has grown past `min` bytes and to at least twice what it
    /// held after it was opened or last rewritten (Redis's rewrite rule with
    /// `auto-aof-rewrite-percentage 100`).
    pub fn rewrite_due(&self, min: u64) -> bool {
        if guard(&self.inner.background).is_some() || self.failure().is_some() {
            return false;
        }
        let len = self.inner.len.load(Ordering::Relaxed);
        len >= min && len >= 2 * self.inner.base.load(Ordering::Relaxed)
    }

    /// Not now: the next rewrite is due when the log has doubled from here.
    pub fn rewrite_postpone(&self) {
        self.inner
            .base
            .store(self.inner.len.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Bytes in the log, and rewrites done so far.
    pub fn size(&self) -> (u64, u64) {
        (
            self.inner.len.load(Ordering::Relaxed),
            self.inner.rewrites.load(Ordering::Relaxed),
        )
    }

    /// Replaces the log with `image` (framed records): written and synced beside
    /// it, then renamed over it (the directory synced), so a crash leaves the old
    /// log or the new one, whole. Every record submitted so far is resolved as
    /// written: the caller holds the locks of all the state the log describes, so
    /// the image already holds their changes. On failure the old log stays and the
    /// pending records are written to it as usual.
    pub fn rewrite(&self, image: &[u8]) -> Result<u64, String> {
        let mut log = guard(&self.inner.log);
        if let Some(why) = self.failure() {
            return Err(why);
        }
        if guard(&self.inner.background).is_some() {
            return Err("a compaction of the journal is already running".into());
        }
        let mut p = guard(&self.inner.pending);
        let path = log.path().to_path_buf();
        let tmp = rewrite_path(&path);
        let fresh = write_log(&tmp, |out| {
            out.write_all(image)
                .map(|()| image.len() as u64)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("cannot rewrite {}: {e}", path.display()))?;
        let len = self.install(&mut log, fresh, &tmp)?;
        let synced = sync_dir(&path);
        p.buf.clear();
        p.writers.clear();
        {
            let mut d = guard(&self.inner.done);
            d.upto = d.upto.max(p.last);
        }
        drop(p);
        drop(log);
        self.inner.flushed.notify_waiters();
        synced.map(|()| len)
    }

    /// Renames the image `fresh` (opened at `tmp`) over the log and appends to it
    /// from then on; returns its length. Only a failed rename leaves the log as
    /// it was (and removes `tmp`). The caller syncs the directory.
    fn install(&self, log: &mut Log, mut fresh: Log, tmp: &Path) -> Result<u64, String> {
        let path = log.path().to_path_buf();
        if let Err(e) = std::fs::rename(tmp, &path) {
            drop(fresh);
            let _ = std::fs::remove_file(tmp);
            return Err(format!(
                "cannot rename {} over the journal: {e}",
                tmp.display()
            ));
        }
        // From here the file at `path` is the image: appends must go to it.
        fresh.renamed(&path);
        let old = std::mem::replace(log, fresh);
        // Closing the replaced file frees all its blocks (tens of milliseconds
        // for hundreds of MiB): not on the loop thread. (Should no thread start,
        // the closure and the file go here.)
        let _ = std::thread::Builder::new()
            .name("pantstack-unlink".into())
            .spawn(move || drop(old));
        let len = log.len();
        self.inner.len.store(len, Ordering::Relaxed);
        self.inner.base.store(len, Ordering::Relaxed);
        self.inner.rewrites.fetch_add(1, Ordering::Relaxed);
        Ok(len)
    }

    /// Starts a rewrite off the loop thread, unless one is running: the caller's
    /// worker rebuilds the state from the log's first `upto` bytes (as `open`
    /// does), writes its image to `tmp`, and calls `RewriteJob::finish`.
    pub fn rewrite_begin(&self) -> Option<RewriteJob> {
        let log = guard(&self.inner.log);
        let mut bg = guard(&self.inner.background);
        if bg.is_some() {
            return None;
        }
        let done = Arc::new(Mutex::new(None));
        let job = RewriteJob {
            log: log.path().to_path_buf(),
            upto: log.len(),
            tmp: rewrite_path(log.path()),
            done: done.clone(),
            wake: self.inner.work.clone(),
        };
        *bg = Some(Background {
            upto: job.upto,
            tmp: job.tmp.clone(),
            generation: self.inner.rewrites.load(Ordering::Relaxed),
            started: std::time::Instant::now(),
            done,
        });
        Some(job)
    }

    /// Forgets a background rewrite whose worker never started.
    pub fn rewrite_abandon(&self) {
        if let Some(bg) = guard(&self.inner.background).take() {
            let _ = std::fs::remove_file(&bg.tmp);
        }
    }

    /// Puts a finished background rewrite in place: copies what was appended
    /// since it started after the image (one write and sync), renames the image
    /// over the log and appends to it from then on. None while none is finished;
    /// otherwise the log's size before and after, and how long since the rewrite
    /// began. Pending records are not touched: the next group goes to the new log.
    pub fn rewrite_finish(&self) -> Option<Result<(u64, u64, std::time::Duration), String>> {
        if let Some(why) = self.failure() {
            self.rewrite_abandon();
            return Some(Err(why));
        }
        // Checked before the log's lock: this runs after every group commit.
        let ready =
            |slot: &Option<Background>| slot.as_ref().is_some_and(|b| guard(&b.done).is_some());
        if !ready(&guard(&self.inner.background)) {
            return None;
        }
        let mut log = guard(&self.inner.log);
        let bg = {
            let mut slot = guard(&self.inner.background);
            if !ready(&slot) {
                return None;
            }
            slot.take()?
        };
        let image = guard(&bg.done).take()?;
        let result = (|| -> Result<(u64, u64, std::time::Duration), String> {
            let (mut fresh, reached) = image?;
            if bg.generation != self.inner.rewrites.load(Ordering::Relaxed) {
                return Err("the journal was rewritten meanwhile".into());
            }
            let before = log.len();
            if reached < bg.upto || reached > before {
                return Err(format!(
                    "the image reaches byte {reached} of a journal of {before} bytes"
                ));
            }
            crate::read_range(log.path(), reached, before)
                .and_then(|tail| fresh.append_framed(&tail))
                .map_err(|e| format!("cannot copy the journal's tail: {e}"))?;
            let after = self.install(&mut log, fresh, &bg.tmp)?;
            sync_dir(log.path())?;
            Ok((before, after, bg.started.elapsed()))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&bg.tmp);
        }
        Some(result)
    }

    /// The flusher of the calling thread's event loop (a current-thread runtime):
    /// whenever records are pending, it lets every request that is ready run (and
    /// the I/O driver be polled) until a round adds nothing, then syncs the group
    /// on this thread. Requests submitted on this thread rely on it.
    pub async fn run_flusher(&self) {
        self.run_flusher_then(|| {}).await
    }

    /// `run_flusher`, calling `after_group` on the loop thread after each group
    /// (the endpoint compacts the log there when it is due).
    pub async fn run_flusher_then(&self, after_group: impl Fn()) {
        *guard(&self.inner.loop_thread) = Some(std::thread::current().id());
        // The writers of the last two groups.
        let mut recent: [Vec<tokio::task::Id>; 2] = Default::default();
        loop {
            self.inner.work.notified().await;
            let mut seen = self.pending_last();
            for _ in 0..MAX_ROUNDS {
                // Deferred until the ready tasks ran and the driver was polled.
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                let now = self.pending_last();
                if now == seen {
                    break;
                }
                seen = now;
            }
            let all_came = self.await_writers(&recent).await;
            let writers = self.flush_group();
            after_group();
            recent = if all_came {
                [writers, std::mem::take(&mut recent[0])]
            } else {
                // Whoever did not come is not expected again.
                [writers, Vec::new()]
            };
        }
    }

    /// Waits until every writer in `recent` has records pending, at most
    /// `STRAGGLER_WAIT`; false if one did not come.
    async fn await_writers(&self, recent: &[Vec<tokio::task::Id>; 2]) -> bool {
        if guard(&self.inner.pending).buf.is_empty() {
            // A wake-up left over from the last group: nothing to hold back.
            return true;
        }
        let missing = || {
            let p = guard(&self.inner.pending);
            recent.iter().flatten().any(|id| !p.writers.contains(id))
        };
        if !missing() {
            return true;
        }
        let deadline = tokio::time::Instant::now() + STRAGGLER_WAIT;
        loop {
            tokio::select! {
                _ = self.inner.work.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    self.inner.timeouts.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
            // Let the request that submitted (and any other ready one) finish.
            tokio::task::yield_now().await;
            if !missing() {
                return true;
            }
        }
    }

    /// Groups written so far, the submissions they carried, and the groups that
    /// stopped waiting for an expected writer.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.inner.groups.load(Ordering::Relaxed),
            self.inner.grouped.load(Ordering::Relaxed),
            self.inner.timeouts.load(Ordering::Relaxed),
        )
    }

    fn pending_last(&self) -> u64 {
        guard(&self.inner.pending).last
    }

    fn on_loop_thread(&self) -> bool {
        *guard(&self.inner.loop_thread) == Some(std::thread::current().id())
    }

    /// The status of record `seq`: None while unresolved.
    fn status(&self, seq: u64) -> Option<Result<(), String>> {
        let d = guard(&self.inner.done);
        if d.upto < seq {
            return None;
        }
        Some(
            match d.failures.iter().find(|(a, b, _)| *a <= seq && seq <= *b) {
                Some((_, _, e)) => Err(e.clone()),
                None => Ok(()),
            },
        )
    }
}

impl Durable {
    /// Resolves once the records are on disk (or their write failed).
    pub async fn wait(self) -> Result<(), String> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let j = &self.journal;
        loop {
            let notified = j.inner.flushed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = j.status(self.seq) {
                return r;
            }
            if j.on_loop_thread() {
                notified.await;
            } else {
                // No flusher runs on this thread: sync the group now.
                j.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests;

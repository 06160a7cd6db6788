//! The local cloud's AWS-compatible endpoint: SQS (JSON and query protocols), S3
//! (through s3s) and SSM Parameter Store (JSON 1.1) on one port, for any AWS SDK or
//! the AWS CLI pointed at it with `--endpoint-url` / `AWS_ENDPOINT_URL`.
//!
//! - SQS and SSM requests are routed by `X-Amz-Target` (JSON protocols) or the
//!   form's `Action` (SQS query protocol); every request must carry a valid SigV4
//!   signature of a credential this local cloud issued (one per service unit and one
//!   for people, see `keys`).
//! - State lives in memory and in one journal (`pantstack_store::journal`): a change is answered
//!   only after its record is on disk, and replaying the journal on start rebuilds
//!   exactly the acknowledged state.
//! - `Core` is usable without the HTTP server (the `secrets` command works on a
//!   stopped local cloud); a lock file keeps two processes from opening one state.

#![forbid(unsafe_code)]

pub mod backup;
pub mod builtin;
pub mod cloudwatch;
pub mod error;
#[doc(hidden)]
pub use crate::http::fuzzing;
pub mod http;
pub mod iam;
pub mod keys;
pub mod policy_doc;
pub mod query;
pub mod request;
pub mod s3;
pub mod sqs;
pub mod ssm;

pub use pantstack_store::journal;

pub use builtin::QueueMetrics;
use error::ApiError;
use journal::Journal;
use keys::{Credentials, Keyring};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The account id of the local cloud (as LocalStack and moto use).
pub const ACCOUNT: &str = "000000000000";
/// The principal a person's shell uses (`pantstack aws-env`).
pub const USER: &str = "user";

/// One journal record.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // short-lived: built, serialized, dropped
pub(crate) enum Record {
    #[serde(rename = "sqs")]
    Sqs(sqs::Op),
    #[serde(rename = "ssm")]
    Ssm(ssm::Op),
    #[serde(rename = "s3")]
    S3(s3::Op),
    #[serde(rename = "cw")]
    Metrics(cloudwatch::Op),
}

/// The answer to every request once the journal could not be written: the state
/// in memory may hold changes that are not on disk, so none of it is shown (a
/// request whose write failed may or may not have taken effect, as with AWS's 500).
pub fn stopped_error(why: &str) -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        format!(
            "the local cloud stopped serving: its journal could not be written ({why}). Nothing acknowledged is lost. Free space, then restart it (`pantstack down` and `pantstack up`): it comes back with exactly what was acknowledged."
        ),
    )
}

/// The state a journal describes, rebuilt record by record (on start, and by a
/// background compaction from the journal's first bytes).
struct Replay {
    sqs: sqs::Sqs,
    ssm: ssm::Params,
    s3: s3::State,
    metrics: cloudwatch::Metrics,
    /// The first record that did not parse or apply.
    bad: Option<String>,
    /// Records seen so far.
    seen: u64,
}

impl Replay {
    fn new(region: &str) -> Replay {
        Replay {
            sqs: sqs::Sqs::new(region, ACCOUNT),
            ssm: ssm::Params::new(region, ACCOUNT),
            s3: s3::State::default(),
            metrics: cloudwatch::Metrics::default(),
            bad: None,
            seen: 0,
        }
    }

    /// Applies one record. Only ops that succeeded were journaled, so one that
    /// does not parse or apply now means the journal is damaged (or from another
    /// version): replay stops there rather than skip it and rebuild a state that
    /// was never acknowledged.
    fn record(&mut self, rec: &[u8]) {
        self.seen += 1;
        if self.bad.is_some() {
            return;
        }
        let n = self.seen;
        let failed = match serde_json::from_slice::<Record>(rec) {
            Ok(Record::Sqs(op)) => self.sqs.apply(&op).err().map(|e| e.message),
            Ok(Record::Ssm(op)) => self.ssm.apply(&op).err().map(|e| e.message),
            Ok(Record::S3(op)) => {
                self.s3.apply(&op);
                None
            }
            Ok(Record::Metrics(op)) => {
                self.metrics.apply(&op);
                None
            }
            Err(e) => Some(format!("it does not parse: {e}")),
        };
        if let Some(e) = failed {
            self.bad = Some(format!("record {n}: {e}"));
        }
    }

    fn finish(self, log: &Path) -> Result<State, String> {
        match self.bad {
            Some(e) => Err(format!(
                "{}: cannot replay {e}. Nothing was changed; keep the file for a bug report, and move it aside to start with an empty local cloud",
                log.display()
            )),
            None => Ok((self.sqs, self.ssm, self.s3, self.metrics)),
        }
    }
}

/// A replayed state: queues, parameters, buckets, metrics.
type State = (sqs::Sqs, ssm::Params, s3::State, cloudwatch::Metrics);

/// Writes the journal image of a state (framed records) to `out`; returns its
/// length. The same state gives the same bytes.
fn write_image(
    q: &sqs::Sqs,
    p: &ssm::Params,
    o: &s3::State,
    m: &cloudwatch::Metrics,
    out: &mut (impl std::io::Write + ?Sized),
) -> Result<u64, String> {
    let mut framed = Vec::new();
    let mut len = 0u64;
    let mut err = None;
    let mut push = |r: Record| {
        if err.is_some() {
            return;
        }
        framed.clear();
        let written = serde_json::to_vec(&r)
            .map_err(|e| e.to_string())
            .and_then(|b| pantstack_store::frame(&b, &mut framed).map_err(|e| e.to_string()))
            .and_then(|()| out.write_all(&framed).map_err(|e| e.to_string()));
        match written {
            Ok(()) => len += framed.len() as u64,
            Err(e) => err = Some(e),
        }
    };
    q.image(&mut |op| push(Record::Sqs(op)));
    for op in p.image() {
        push(Record::Ssm(op));
    }
    o.image(&mut |op| push(Record::S3(op)));
    for op in m.image() {
        push(Record::Metrics(op));
    }
    match err {
        Some(e) => Err(format!("cannot write the journal's image: {e}")),
        None => Ok(len),
    }
}

/// A background compaction's worker: rebuilds the state from the log's first
/// `upto` bytes, writes its image beside the log followed by the records appended
/// since (as far as they are whole now), syncs it and reads it back. Returns the
/// image and the log's byte it reaches; the loop copies the rest.
fn build_image(
    region: &str,
    job: &journal::RewriteJob,
) -> Result<(pantstack_store::Log, u64), String> {
    let mut replay = Replay::new(region);
    pantstack_store::read_prefix(&job.log, job.upto, |rec| replay.record(rec))
        .map_err(|e| format!("cannot read {}: {e}", job.log.display()))?;
    let (q, p, o, m) = replay.finish(&job.log)?;
    let mut image = journal::write_log(&job.tmp, |out| write_image(&q, &p, &o, &m, out))?;
    drop((q, p, o, m));
    // What came meanwhile, as far as it is whole now (appended as the log
    // appends, space preallocated here), so that the loop has little to copy.
    let since = pantstack_store::read_records_from(&job.log, job.upto)
        .map_err(|e| format!("cannot read {}: {e}", job.log.display()))?;
    image
        .append_framed(&since)
        .map_err(|e| format!("cannot write {}: {e}", job.tmp.display()))?;
    Ok((image, job.upto + since.len() as u64))
}

pub struct Config {
    /// Where the journal and lock live (`.pantstack/local/<env>/aws`).
    pub dir: PathBuf,
    /// The master key file (outside the project tree).
    pub key_file: PathBuf,
    pub region: String,
    /// Who may call: unit names (each gets its own credentials) besides `user`.
    pub principals: Vec<String>,
    /// Identity-based policies by principal: a principal listed here may do only
    /// what its policy allows (a unit: its task role's). Unlisted principals, and
    /// `user`, may do anything.
    pub policies: HashMap<String, iam::Policy>,
    /// The journal is compacted once it holds at least this many bytes and twice
    /// what it held after its last compaction (`DEFAULT_COMPACT_MIN`).
    pub compact_min_bytes: u64,
}

/// The policies that restrict someone (`user` is never restricted).
fn restricting(policies: &HashMap<String, iam::Policy>) -> HashMap<String, Arc<iam::Policy>> {
    policies
        .iter()
        .filter(|(p, _)| p.as_str() != USER)
        .map(|(p, pol)| (p.clone(), Arc::new(pol.clone())))
        .collect()
}

/// Journals smaller than this are never compacted (Redis's
/// `auto-aof-rewrite-min-size`).
pub const DEFAULT_COMPACT_MIN: u64 = 64 << 20;

/// The endpoint's state: queues, parameters, keys, credentials, journal.
pub struct Core {
    pub region: String,
    sqs: Mutex<sqs::Sqs>,
    ssm: Mutex<ssm::Params>,
    keys: RwLock<Keyring>,
    pub(crate) s3: Mutex<s3::State>,
    /// Custom metrics (CloudWatch).
    metrics: Mutex<cloudwatch::Metrics>,
    /// Object data: one blob file per object version and upload part.
    pub(crate) objects_dir: PathBuf,
    /// Access key → (principal, secret).
    creds: HashMap<String, (String, String)>,
    /// Replaced whole by `set_policies` when a deploy changes what a service may do.
    policies: RwLock<HashMap<String, Arc<iam::Policy>>>,
    pub(crate) journal: Journal,
    /// Held while this process owns the state directory.
    _lock: std::fs::File,
    /// `http://127.0.0.1:PORT` once serving (queue URLs are built from it).
    base_url: RwLock<String>,
    /// SigV4 signing keys by access key/day/region/service.
    signing_keys: Mutex<HashMap<String, Arc<[u8]>>>,
    compact_min: u64,
    /// Parsed queue policies by queue, with the text each was parsed from.
    queue_policies: Mutex<HashMap<String, (String, Arc<policy_doc::PolicyDoc>)>>,
    /// How long a "day" of S3 lifecycle rules lasts, in ms (AWS: a day).
    lifecycle_day: std::sync::atomic::AtomicU64,
}

/// Standard base64 (SecureString blobs, S3 checksums, inline objects).
pub(crate) fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Decodes standard base64; None when it is not.
pub(crate) fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// A day in ms: S3 lifecycle rules count days.
pub const DAY_MS: u64 = 86_400_000;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves state that was valid before the panicking
    // op (ops check before they change); keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The path of the state directory's lock file.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}

impl Core {
    /// Opens (or creates) the state in `cfg.dir`: takes the lock, opens the key file,
    /// replays the journal. Fails if another process holds the state.
    pub fn open(cfg: &Config) -> Result<Core, String> {
        std::fs::create_dir_all(&cfg.dir)
            .map_err(|e| format!("cannot create {}: {e}", cfg.dir.display()))?;
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(&cfg.dir))
            .map_err(|e| format!("cannot open {}: {e}", lock_path(&cfg.dir).display()))?;
        if lock_file.try_lock().is_err() {
            return Err(format!(
                "{} is in use by another pantstack process",
                cfg.dir.display()
            ));
        }
        let keys = keys::open_bound(&cfg.dir, &cfg.key_file)?;
        let mut creds = HashMap::new();
        for p in std::iter::once(USER).chain(cfg.principals.iter().map(String::as_str)) {
            let c = keys.credentials(p);
            creds.insert(c.access_key, (p.to_string(), c.secret_key));
        }
        let log = cfg.dir.join("journal.log");
        let mut replay = Replay::new(&cfg.region);
        let (journal, _) = Journal::open(&log, |rec| replay.record(rec))?;
        let (q, p, o, m) = replay.finish(&log)?;
        // Blobs no version or part names: written before a crash cut their record,
        // or freed by an op whose cleanup did not run.
        let objects_dir = cfg.dir.join("objects");
        std::fs::create_dir_all(&objects_dir)
            .map_err(|e| format!("cannot create {}: {e}", objects_dir.display()))?;
        let referenced = o.referenced();
        if let Ok(entries) = std::fs::read_dir(&objects_dir) {
            for e in entries.flatten() {
                if !referenced.contains(e.file_name().to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(Core {
            region: cfg.region.clone(),
            s3: Mutex::new(o),
            metrics: Mutex::new(m),
            objects_dir,
            sqs: Mutex::new(q),
            ssm: Mutex::new(p),
            keys: RwLock::new(keys),
            creds,
            policies: RwLock::new(restricting(&cfg.policies)),
            journal,
            _lock: lock_file,
            base_url: RwLock::new(String::new()),
            signing_keys: Mutex::new(HashMap::new()),
            compact_min: cfg.compact_min_bytes,
            lifecycle_day: std::sync::atomic::AtomicU64::new(DAY_MS),
            queue_policies: Mutex::new(HashMap::new()),
        })
        .inspect(Core::compact_on_open)
    }

    /// On start, nothing is waiting yet: a journal past the minimum is compacted in
    /// place when its image is at most half of it (the replay just paid for far
    /// more than building the image costs).
    fn compact_on_open(&self) {
        let (len, _) = self.journal.size();
        if len < self.compact_min {
            return;
        }
        let image = match self.image() {
            Ok(image) if image.len() as u64 * 2 <= len => image,
            Ok(_) => return,
            Err(e) => return eprintln!("pantstack: {e}"),
        };
        match self.journal.rewrite(&image) {
            Ok(after) => {
                eprintln!("pantstack: compacted the AWS journal from {len} to {after} bytes")
            }
            Err(e) => eprintln!("pantstack: {e}"),
        }
    }

    /// Rewrites the journal as an image of the current state (every queue with its
    /// messages in their full state, every bucket's versions and uploads, every
    /// parameter's kept versions), replacing the log atomically. Returns the
    /// journal's size before and after. Requests wait while it runs (all state
    /// locks are held so that the image and the log agree).
    pub fn compact(&self) -> Result<(u64, u64), String> {
        let q = lock(&self.sqs);
        let p = lock(&self.ssm);
        let o = lock(&self.s3);
        let m = lock(&self.metrics);
        let before = self.journal.size().0;
        let mut image = Vec::new();
        write_image(&q, &p, &o, &m, &mut image)?;
        let after = self.journal.rewrite(&image)?;
        Ok((before, after))
    }

    /// About how many bytes the journal image of the current state has (a walk
    /// over the state, nothing copied).
    pub fn image_estimate(&self) -> u64 {
        let q = lock(&self.sqs).image_estimate();
        let p = lock(&self.ssm).image_estimate();
        let o = lock(&self.s3).image_estimate();
        let m = lock(&self.metrics).image_estimate();
        q + p + o + m
    }

    /// The journal image of the current state: the framed records `compact`
    /// writes. The same state gives the same bytes.
    pub fn image(&self) -> Result<Vec<u8>, String> {
        let mut image = Vec::new();
        write_image(
            &lock(&self.sqs),
            &lock(&self.ssm),
            &lock(&self.s3),
            &lock(&self.metrics),
            &mut image,
        )?;
        Ok(image)
    }

    /// Compacts the journal when it has grown enough (`Config::compact_min_bytes`),
    /// off the loop thread: a worker thread rebuilds the state from the journal's
    /// bytes so far and writes its image; the loop, after a later group commit,
    /// appends what came since and renames the image over the journal. The endpoint's
    /// loop calls this after each group commit. Failures leave the journal as it
    /// was and are reported on standard error.
    pub fn compact_if_due(&self) {
        let pause = std::time::Instant::now();
        match self.journal.rewrite_finish() {
            Some(Ok((before, after, took))) => eprintln!(
                "pantstack: compacted the AWS journal from {before} to {after} bytes in {} ms (requests paused {} ms)",
                took.as_millis(),
                pause.elapsed().as_millis()
            ),
            Some(Err(e)) => eprintln!("pantstack: {e}"),
            None => {}
        }
        if !self.journal.rewrite_due(self.compact_min) {
            return;
        }
        // Only when at least half the journal is history: a journal of sends
        // nobody received yet would be rewritten as large as it is.
        let (len, _) = self.journal.size();
        if self.image_estimate() * 2 > len {
            self.journal.rewrite_postpone();
            return;
        }
        let Some(job) = self.journal.rewrite_begin() else {
            return;
        };
        let region = self.region.clone();
        let spawned = std::thread::Builder::new()
            .name("pantstack-compact".into())
            .spawn(move || {
                let image = build_image(&region, &job);
                job.finish(image);
            });
        if let Err(e) = spawned {
            // The job went with the closure: nothing will finish it.
            eprintln!("pantstack: cannot start compacting the AWS journal: {e}");
            self.journal.rewrite_abandon();
        }
    }

    /// The journal's size in bytes and how many times it was compacted.
    pub fn journal_size(&self) -> (u64, u64) {
        self.journal.size()
    }

    pub fn set_base_url(&self, url: String) {
        if let Ok(mut b) = self.base_url.write() {
            *b = url;
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// Shortens (or restores) the day of S3 lifecycle rules, so a local cloud
    /// shows a rule acting within minutes (`PANTSTACK_S3_LIFECYCLE_DAY_SECONDS`
    /// in the supervisor's environment). Rules are then applied every
    /// twenty-fourth of that day (at least every 50 ms, at most every hour).
    pub fn set_lifecycle_day(&self, day: Duration) {
        let ms = (day.as_millis() as u64).max(1);
        self.lifecycle_day
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn lifecycle_day(&self) -> Duration {
        Duration::from_millis(
            self.lifecycle_day
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The credentials of a principal (`user` or a unit name).
    pub fn credentials(&self, principal: &str) -> Credentials {
        match self.keys.read() {
            Ok(k) => k.credentials(principal),
            Err(e) => e.into_inner().credentials(principal),
        }
    }

    /// The policy that limits what `principal` may do, if one does (`user` and
    /// unlisted principals: none).
    pub fn policy(&self, principal: &str) -> Option<Arc<iam::Policy>> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(principal)
            .cloned()
    }

    /// Replaces the policies of the principals (a deploy changed a task role or a
    /// grant): requests from then on are authorized by the new ones. Principals
    /// (and so credentials) are fixed when the endpoint opens.
    pub fn set_policies(&self, policies: &HashMap<String, iam::Policy>) {
        *self.policies.write().unwrap_or_else(|e| e.into_inner()) = restricting(policies);
    }

    /// The principal and secret of an access key.
    pub fn secret_of(&self, access_key: &str) -> Option<(&str, &str)> {
        self.creds
            .get(access_key)
            .map(|(p, s)| (p.as_str(), s.as_str()))
    }

    /// The SigV4 signing key of `secret` for a signature's day, region and service,
    /// derived once per day (four HMACs saved per request).
    pub(crate) fn signing_key(
        &self,
        signed: &pantstack_awsproto::sigv4::Signed,
        secret: &str,
    ) -> Arc<[u8]> {
        let mut id = String::with_capacity(64);
        for part in [
            &signed.access_key,
            "/",
            &signed.date,
            "/",
            &signed.region,
            "/",
            &signed.service,
        ] {
            id.push_str(part);
        }
        let mut cache = lock(&self.signing_keys);
        if let Some(k) = cache.get(&id) {
            return k.clone();
        }
        let key: Arc<[u8]> = pantstack_awsproto::sigv4::signing_key(
            secret,
            &signed.date,
            &signed.region,
            &signed.service,
        )
        .into();
        // A day's keys for a handful of principals; old days are dropped wholesale.
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(id, key.clone());
        key
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The journal's group commits so far: groups, submissions they carried, and
    /// groups that stopped waiting for an expected writer.
    pub fn journal_stats(&self) -> (u64, u64, u64) {
        self.journal.stats()
    }

    async fn durable(rx: journal::Durable) -> Result<(), ApiError> {
        rx.wait().await.map_err(|e| stopped_error(&e))
    }

    /// The journal records of ops already applied in memory. One that cannot be
    /// serialized stops the journal (fail-stop): the change it describes is in
    /// memory and could never reach the disk, so nothing may be answered from here on.
    fn records<T>(&self, ops: Vec<T>, wrap: fn(T) -> Record) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            // Sized for a typical record, so serializing does not grow it
            // through every power of two.
            let mut rec = Vec::with_capacity(512);
            if let Err(e) = serde_json::to_writer(&mut rec, &wrap(op)) {
                self.journal
                    .fail(format!("a change could not be journaled: {e}"));
                break;
            }
            out.push(rec);
        }
        out
    }

    /// Makes the journal's next group write fail as a full disk would (fault
    /// injection for the tests of the failure path).
    #[doc(hidden)]
    pub fn inject_journal_failure(&self) {
        self.journal.inject_write_failure();
    }

    /// The refusal of every request once the journal has stopped.
    pub fn stopped(&self) -> Result<(), ApiError> {
        match self.journal.failure() {
            None => Ok(()),
            Some(why) => Err(stopped_error(&why)),
        }
    }

    /// One SQS action given as its name and JSON input (parsed as a request
    /// would be), answered once its changes are durable.
    pub async fn sqs(&self, action: &str, input: &Value, sender: &str) -> Result<Value, ApiError> {
        let call = request::Call::parse(request::Service::Sqs, action, input.clone(), None)?;
        self.sqs_call(&call, sender).await
    }

    /// One parsed SQS call, answered once its changes are durable.
    pub async fn sqs_call(&self, call: &request::Call, sender: &str) -> Result<Value, ApiError> {
        self.stopped()?;
        if call.action == request::Action::Sqs(request::SqsAction::ReceiveMessage) {
            return self.receive(call, sender).await;
        }
        let base = self.base_url();
        let (out, rx) = {
            let mut s = lock(&self.sqs);
            let (out, ops) = s.handle(call, now_ms(), sender, &base)?;
            (out, self.journal.submit(self.records(ops, Record::Sqs)))
        };
        Self::durable(rx).await?;
        Ok(out)
    }

    async fn receive(&self, call: &request::Call, _sender: &str) -> Result<Value, ApiError> {
        let request::Request::Sqs(request::SqsRequest::ReceiveMessage(input)) = &call.request
        else {
            return Err(ApiError::internal("a receive without its request"));
        };
        let name = call.queue().unwrap_or_default().to_string();
        let (wait, notify) = {
            let s = lock(&self.sqs);
            let w = s.wait_secs(&name, input)?;
            (w, s.notify_of(&name))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            let notified = notify.as_ref().map(|n| n.notified());
            let mut notified = notified.map(Box::pin);
            if let Some(n) = notified.as_mut() {
                n.as_mut().enable();
            }
            let now = now_ms();
            let (out, rx, next) = {
                let mut s = lock(&self.sqs);
                let op = s.receive_op(&name, input, now)?;
                let (got, moved) = match s.apply(&op)? {
                    sqs::Applied::Received(g, m) => (g, m),
                    _ => (Vec::new(), 0),
                };
                // Log the receive when it delivered or dead-lettered something.
                // Otherwise a read barrier: what it saw (nothing) is on disk.
                let changed = !got.is_empty() || moved > 0;
                let records = if changed {
                    self.records(vec![op], Record::Sqs)
                } else {
                    Vec::new()
                };
                let rx = Some(self.journal.submit(records));
                let out = (!got.is_empty()).then(|| s.received_json(&name, input, &got));
                // When to look again (a message becoming visible) matters only for
                // a poll that waits.
                let next = if out.is_none() && wait > 0 {
                    s.next_visible(&name)
                } else {
                    None
                };
                (out, rx, next)
            };
            if let Some(rx) = rx {
                Self::durable(rx).await?;
            }
            if let Some(out) = out {
                return Ok(out);
            }
            let t = tokio::time::Instant::now();
            if t >= deadline {
                return Ok(json!({}));
            }
            let mut until = deadline;
            if let Some(v) = next
                && v > now
            {
                until = until.min(t + Duration::from_millis(v - now));
            }
            match notified {
                Some(n) => {
                    tokio::select! {
                        _ = n => {}
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
                None => tokio::time::sleep_until(until).await,
            }
        }
    }

    /// One SSM action given as its name and JSON input (parsed as a request would
    /// be), answered once its changes are durable.
    pub async fn ssm(&self, action: &str, input: &Value, caller: &str) -> Result<Value, ApiError> {
        let call = request::Call::parse(request::Service::Ssm, action, input.clone(), None)?;
        self.ssm_call(&call, caller).await
    }

    /// One parsed SSM call, answered once its changes are durable.
    pub async fn ssm_call(&self, call: &request::Call, caller: &str) -> Result<Value, ApiError> {
        self.stopped()?;
        let (out, rx) = {
            let keys = self.keys();
            let mut p = lock(&self.ssm);
            let (out, ops) = p.handle(&keys, call, now_ms(), caller)?;
            (out, self.journal.submit(self.records(ops, Record::Ssm)))
        };
        Self::durable(rx).await?;
        Ok(out)
    }

    /// The plaintext of a parameter (a task's `secrets` at start).
    /// Answers a CloudWatch call of `principal` (its policy checked here): a put
    /// is answered once its datapoints are journaled.
    pub async fn cloudwatch_call(
        &self,
        action: cloudwatch::Action,
        input: &Value,
        principal: &str,
    ) -> Result<Value, ApiError> {
        self.stopped()?;
        if let Some(policy) = self.policy(principal) {
            let (a, r) = cloudwatch::request(action, input)?;
            policy
                .authorize(principal, [(a.as_str(), r.as_str())])
                .map_err(|m| {
                    ApiError::bad("AccessDeniedException", m).with_query_code("AccessDenied")
                })?;
        }
        match action {
            cloudwatch::Action::PutMetricData => {
                let op = cloudwatch::put(input, now_ms())?;
                let rx = {
                    let mut m = lock(&self.metrics);
                    m.expire(op.now);
                    if m.would_exceed(&op.data) {
                        return Err(ApiError::bad(
                            "LimitExceededException",
                            format!(
                                "the local cloud keeps at most {} metrics; this put would add more (datapoints older than 15 days are dropped, and metrics with them)",
                                cloudwatch::MAX_METRICS
                            ),
                        )
                        .with_query_code("LimitExceeded"));
                    }
                    m.apply(&op);
                    self.journal.submit(self.records(vec![op], Record::Metrics))
                };
                Self::durable(rx).await?;
                Ok(json!({}))
            }
            cloudwatch::Action::GetMetricData => cloudwatch::get(&lock(&self.metrics), input),
            cloudwatch::Action::ListMetrics => cloudwatch::list(&lock(&self.metrics), input),
        }
    }

    pub fn resolve_parameter(&self, name: &str) -> Result<String, ApiError> {
        self.stopped()?;
        let keys = self.keys();
        lock(&self.ssm).resolve(&keys, name)
    }

    /// Adds a new master key, re-encrypts every SecureString under it (durably),
    /// then drops the old key. Returns how many values were re-encrypted.
    pub async fn rotate_key(&self) -> Result<usize, String> {
        let rx = {
            let mut keys = self
                .keys
                .write()
                .map_err(|_| "key lock poisoned".to_string())?;
            keys.rotate()?;
            let mut p = lock(&self.ssm);
            let ops = p.reencrypt(&keys)?;
            let n = ops.len();
            (self.journal.submit(self.records(ops, Record::Ssm)), n)
        };
        Self::durable(rx.0).await.map_err(|e| e.message)?;
        let mut keys = self
            .keys
            .write()
            .map_err(|_| "key lock poisoned".to_string())?;
        keys.retire()?;
        Ok(rx.1)
    }

    /// Creates queues (idempotent); used by `pantstack up` for the manifests' queues.
    pub async fn ensure_queue(
        &self,
        name: &str,
        attrs: &[(String, String)],
    ) -> Result<(), ApiError> {
        let map: serde_json::Map<String, Value> =
            attrs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let input = json!({ "QueueName": name, "Attributes": map });
        match self.sqs("CreateQueue", &input, USER).await {
            Ok(_) => Ok(()),
            // Exists with other attributes (the manifest changed): update them.
            Err(e) if e.code == "QueueNameExists" => {
                let url = pantstack_model::physical::queue_url(&self.base_url(), ACCOUNT, name);
                let mut settable = map;
                settable.remove("FifoQueue");
                self.sqs(
                    "SetQueueAttributes",
                    &json!({ "QueueUrl": url, "Attributes": settable }),
                    USER,
                )
                .await
                .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a bucket (idempotent) with versioning as the manifest says; used by
    /// `pantstack up`.
    pub async fn ensure_bucket(&self, name: &str, versioning: bool) -> Result<(), String> {
        let rx = {
            let mut st = lock(&self.s3);
            let mut ops = Vec::new();
            let current = st.buckets.get(name).map(|b| b.versioning);
            if current.is_none() {
                ops.push(s3::Op::CreateBucket {
                    name: name.to_string(),
                    now: now_ms(),
                });
            }
            let enabled = current == Some(s3::Versioning::Enabled);
            if versioning && !enabled {
                ops.push(s3::Op::Versioning {
                    name: name.to_string(),
                    status: s3::Versioning::Enabled,
                });
            } else if !versioning && enabled {
                ops.push(s3::Op::Versioning {
                    name: name.to_string(),
                    status: s3::Versioning::Suspended,
                });
            }
            for op in &ops {
                st.apply(op);
            }
            self.journal.submit(self.records(ops, Record::S3))
        };
        Self::durable(rx).await.map_err(|e| e.message)
    }

    /// Sets a bucket's lifecycle rules to what its manifest declares, as the
    /// synthesized template does on AWS (`s3::declared_lifecycle`); a deploy
    /// replaces rules set through the API, as CloudFormation would. Journaled
    /// only when they differ.
    pub async fn ensure_lifecycle(
        &self,
        name: &str,
        rules: Vec<s3::LifecycleRule>,
    ) -> Result<(), String> {
        let rx = {
            let mut st = lock(&self.s3);
            let Some(b) = st.buckets.get(name) else {
                return Err(format!("no bucket {name}"));
            };
            if b.config.lifecycle.as_ref() == Some(&rules) {
                return Ok(());
            }
            let mut config = b.config.clone();
            config.lifecycle = Some(rules);
            let op = s3::Op::Config {
                name: name.to_string(),
                config,
            };
            st.apply(&op);
            self.journal.submit(self.records(vec![op], Record::S3))
        };
        Self::durable(rx).await.map_err(|e| e.message)
    }

    /// The ARN of a queue of this endpoint.
    pub fn queue_arn(&self, name: &str) -> String {
        lock(&self.sqs).arn(name)
    }

    /// The parsed `Policy` of a queue, if it has one: what authorizing a request
    /// to it evaluates. Parsed once per policy text (a cache beside the state).
    pub fn queue_policy(&self, queue: &str) -> Option<Arc<policy_doc::PolicyDoc>> {
        let sqs = lock(&self.sqs);
        let text = sqs.policy_of(queue)?;
        let mut cache = lock(&self.queue_policies);
        if let Some((t, doc)) = cache.get(queue)
            && t == text
        {
            return Some(doc.clone());
        }
        // Stored policies are checked when set; one that does not parse as a
        // policy (in a journal written by older versions) is evaluated as
        // allowing and denying nothing.
        let doc = Arc::new(
            policy_doc::PolicyDoc::parse(text, "sqs", &|_| true)
                .unwrap_or_else(|_| policy_doc::PolicyDoc::empty()),
        );
        cache.insert(queue.to_string(), (text.to_string(), doc.clone()));
        Some(doc)
    }

    /// The stored `Policy` document of a queue (`sqs::Sqs::policy_of`), if any.
    pub fn sqs_policy_of(&self, queue: &str) -> Option<String> {
        lock(&self.sqs).policy_of(queue).map(str::to_string)
    }

    /// The names of parameters under a path and when each last changed (ms).
    pub fn parameters_under(&self, path: &str) -> Vec<(String, u64, u64)> {
        let p = lock(&self.ssm);
        p.store
            .by_path(path, true)
            .map(|v| {
                v.into_iter()
                    .map(|(n, v)| (n.to_string(), v.version, v.modified))
                    .collect()
            })
            .unwrap_or_default()
    }
}

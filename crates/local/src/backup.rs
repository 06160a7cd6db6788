//! Backups of a local cloud (`pantstack backup`) and restoring one
//! (`pantstack restore`).
//!
//! A backup is a directory:
//! - `backup.json`: the manifest — format and its version, the pantstack version
//!   that wrote it, when, which project, environment and region, what it holds
//!   (queues, messages, buckets, object versions, parameters, deployments) and the
//!   size and SHA-256 of every other file;
//! - `journal.img`: the endpoint's state as journal image records (every queue with
//!   its messages in their full state, every bucket with all its versions, delete
//!   markers and configuration, every parameter's kept versions with labels and
//!   tags, SecureStrings still sealed);
//! - `objects/<blob>`: object data too large to sit inside its record (> 64 KiB);
//! - `state.json`: the supervisor's saved state (deployment history, revisions,
//!   load-balancer ports), when there is one;
//! - `key-binding.json`: which master key sealed the secrets (its fingerprint and
//!   file; never the key).
//!
//! Invariants:
//! - The AWS state in a backup is one instant (`Core::snapshot`), taken from the
//!   running endpoint over the control socket or from the state on disk with the
//!   endpoint's lock held, never by reading a journal another process appends to.
//! - A backup appears whole or not at all: it is written into a temporary
//!   directory beside its destination, every file and directory synced, then
//!   renamed into place. Files are 0600, directories 0700.
//! - Restore reads nothing it has not verified: every file's size and checksum,
//!   the manifest's format version, the image replayed record by record and every
//!   blob it names present. It never replaces the state of a running cloud, and
//!   replaces existing state only when told (`force`), moving it aside rather than
//!   deleting it.

use crate::client::Refused;
use crate::state::{self, Paths};
use pantstack_endpoint::backup::{Contents, Hasher, check_image, sha256_hex};
use pantstack_rt::private::{DIR_MODE, FILE_MODE, private_dir, set_mode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What `format` says in every backup's manifest.
pub const FORMAT: &str = "pantstack-backup";
/// The version of the layout this pantstack writes and reads.
pub const VERSION: u64 = 1;
pub const MANIFEST: &str = "backup.json";
pub const IMAGE: &str = "journal.img";
pub const STATE: &str = "state.json";
pub const BINDING: &str = "key-binding.json";
pub const OBJECTS: &str = "objects";
/// A manifest is a few KiB plus a line per blob; anything far larger is not one.
const MAX_MANIFEST: u64 = 64 << 20;

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub sha256: String,
}

/// What a backup holds, counted when it was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holds {
    #[serde(flatten)]
    pub aws: Contents,
    /// Units in the saved state, and the deployments their histories record.
    pub units: u64,
    pub deployments: u64,
}

/// `backup.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u64,
    /// The pantstack version that wrote it.
    pub pantstack: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created: String,
    pub project: String,
    pub environment: String,
    pub region: String,
    /// `running` (through the supervisor) or `stopped` (from the state on disk).
    pub taken_from: String,
    pub holds: Holds,
    /// Every other file, by its path relative to the backup.
    pub files: BTreeMap<String, FileSum>,
}

/// What a backup is of.
pub struct Meta {
    pub project: String,
    pub environment: String,
    pub region: String,
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> String {
    format!("cannot {what} {}: {e}", path.display())
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, "sync", e))
}

/// A new private file (0600) with `data`, synced.
fn write_new(path: &Path, data: &[u8]) -> Result<FileSum, String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| io(path, "create", e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(path, "write", e))?;
    Ok(FileSum {
        bytes: data.len() as u64,
        sha256: sha256_hex(data),
    })
}

/// Copies `from` into a new private file `to`, synced; returns its checksum.
fn copy_new(from: &Path, to: &Path) -> Result<FileSum, String> {
    let mut src = std::fs::File::open(from).map_err(|e| io(from, "read", e))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(to)
        .map_err(|e| io(to, "create", e))?;
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(|e| io(from, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(|e| io(to, "write", e))?;
        bytes += n as u64;
    }
    dst.sync_all().map_err(|e| io(to, "sync", e))?;
    Ok(FileSum {
        bytes,
        sha256: h.hex(),
    })
}

/// The checksum of a file as it is.
fn sum_of(path: &Path) -> Result<FileSum, String> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, "read", e))?;
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        sha256: h.hex(),
    })
}

/// The temporary directory a backup to `dest` is written in before its rename.
fn temp_beside(dest: &Path) -> Result<PathBuf, String> {
    let name = dest.file_name().ok_or_else(|| {
        format!(
            "{}: not a directory name to write a backup to",
            dest.display()
        )
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    // Unique within this process too: two backups to one place at once each
    // write their own, and the second rename fails on the first's directory.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp.push(format!(".tmp-{}-{n}", std::process::id()));
    Ok(dest.with_file_name(tmp))
}

/// The counts of the saved state: units, and deployments in their histories.
fn deployments_of(state_json: Option<&[u8]>) -> (u64, u64) {
    let Some(s) = state_json.and_then(|b| serde_json::from_slice::<state::SavedState>(b).ok())
    else {
        return (0, 0);
    };
    let deployments = s
        .units
        .values()
        .map(|u| u.history.len() as u64 + u64::from(u.deployment.is_some()))
        .sum();
    (s.units.len() as u64, deployments)
}

/// Takes a backup of the environment whose endpoint is `core` (running or opened
/// here) into the new directory `dest`. Returns its manifest.
pub async fn create(
    core: &pantstack_endpoint::Core,
    paths: &Paths,
    dest: &Path,
    meta: &Meta,
    taken_from: &str,
) -> Result<Manifest, String> {
    if dest.exists() {
        return Err(format!(
            "{} exists: a backup is never written over anything; name a new directory",
            dest.display()
        ));
    }
    let tmp = temp_beside(dest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, "create", e))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| io(&tmp, "create", e))?;
    set_mode(&tmp, DIR_MODE).map_err(|e| io(&tmp, "secure", e))?;
    remove_stale(&paths.aws(), ".backup-");
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = paths
        .aws()
        .join(format!(".backup-{}-{n}", std::process::id()));
    let written: Result<Manifest, String> = async {
        let created = pantstack_rt::clock::rfc3339_micros(std::time::SystemTime::now());
        let snap = core.snapshot(&staging).await?;
        // The saved state is replaced atomically: this reads one whole version.
        let state_json = std::fs::read(paths.state()).ok();
        let mut files = BTreeMap::new();
        files.insert(IMAGE.to_string(), write_new(&tmp.join(IMAGE), &snap.image)?);
        if let Some(s) = &state_json {
            files.insert(STATE.to_string(), write_new(&tmp.join(STATE), s)?);
        }
        if let Some(b) = &snap.key_binding {
            files.insert(BINDING.to_string(), write_new(&tmp.join(BINDING), b)?);
        }
        let objects = tmp.join(OBJECTS);
        std::fs::create_dir(&objects).map_err(|e| io(&objects, "create", e))?;
        set_mode(&objects, DIR_MODE).map_err(|e| io(&objects, "secure", e))?;
        for b in &snap.blobs {
            let sum = copy_new(&staging.join(b), &objects.join(b))?;
            files.insert(format!("{OBJECTS}/{b}"), sum);
        }
        sync_dir(&objects)?;
        let aws = check_image(&meta.region, &tmp.join(IMAGE))?;
        let (units, deployments) = deployments_of(state_json.as_deref());
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            pantstack: env!("CARGO_PKG_VERSION").into(),
            created,
            project: meta.project.clone(),
            environment: meta.environment.clone(),
            region: meta.region.clone(),
            taken_from: taken_from.into(),
            holds: Holds {
                aws,
                units,
                deployments,
            },
            files,
        };
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        write_new(&tmp.join(MANIFEST), &text)?;
        sync_dir(&tmp)?;
        std::fs::rename(&tmp, dest).map_err(|e| io(dest, "rename the backup to", e))?;
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(manifest)
    }
    .await;
    let _ = std::fs::remove_dir_all(&staging);
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}

/// Removes what a process other than this one left in `dir` under names
/// starting with `prefix` followed by its pid (`.backup-<pid>-<n>`): a backup or
/// restore it did not finish. Only the process that owns the state (its lock)
/// stages there, so another pid's entry is dead.
fn remove_stale(dir: &Path, prefix: &str) {
    let me = format!("{prefix}{}-", std::process::id());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && !name.starts_with(&me) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Whether `rel` is a path a backup may list: the image, the state, the key
/// binding, or a blob directly under `objects/`.
fn allowed(rel: &str) -> bool {
    match rel.split_once('/') {
        None => [IMAGE, STATE, BINDING].contains(&rel),
        Some((dir, name)) => {
            dir == OBJECTS
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                && !name.starts_with('.')
        }
    }
}

/// Reads and verifies the backup in `dir`: the manifest's format and version,
/// every file's size and checksum, the image replayed, every blob it names
/// present. `Err` names the file and what is wrong with it.
pub fn verify(dir: &Path) -> Result<Manifest, String> {
    let mpath = dir.join(MANIFEST);
    let meta = std::fs::metadata(&mpath).map_err(|e| {
        format!(
            "{}: not a pantstack backup ({e}); a backup is the directory `pantstack backup` wrote",
            mpath.display()
        )
    })?;
    if meta.len() > MAX_MANIFEST {
        return Err(format!(
            "{}: {} bytes, too large for a backup's manifest",
            mpath.display(),
            meta.len()
        ));
    }
    let text = std::fs::read(&mpath).map_err(|e| io(&mpath, "read", e))?;
    let raw: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{}: not a pantstack backup's manifest ({e}): the file is truncated or damaged",
            mpath.display()
        )
    })?;
    if raw["format"].as_str() != Some(FORMAT) {
        return Err(format!(
            "{}: not a pantstack backup (its `format` is {}, not \"{FORMAT}\")",
            mpath.display(),
            raw["format"]
        ));
    }
    if raw["version"].as_u64() != Some(VERSION) {
        return Err(format!(
            "{}: backup format version {} (written by pantstack {}); this pantstack ({}) reads version {VERSION} only: restore it with the pantstack that wrote it",
            mpath.display(),
            raw["version"],
            raw["pantstack"].as_str().unwrap_or("?"),
            env!("CARGO_PKG_VERSION")
        ));
    }
    let m: Manifest = serde_json::from_value(raw)
        .map_err(|e| format!("{}: a damaged manifest ({e})", mpath.display()))?;
    if !m.files.contains_key(IMAGE) {
        return Err(format!(
            "{}: lists no {IMAGE}: the backup is incomplete",
            mpath.display()
        ));
    }
    for (rel, want) in &m.files {
        if !allowed(rel) {
            return Err(format!(
                "{}: lists `{rel}`, which is no file of a backup",
                mpath.display()
            ));
        }
        let path = dir.join(rel);
        let got = match std::fs::symlink_metadata(&path) {
            Ok(md) if md.is_file() => md.len(),
            Ok(_) => return Err(format!("{}: not a regular file", path.display())),
            Err(e) => {
                return Err(format!(
                    "{}: missing from the backup ({e}); the backup is incomplete",
                    path.display()
                ));
            }
        };
        if got != want.bytes {
            return Err(format!(
                "{}: {got} bytes where the backup's manifest says {}: the file is truncated or was changed",
                path.display(),
                want.bytes
            ));
        }
        let sum = sum_of(&path)?;
        if sum.sha256 != want.sha256 {
            return Err(format!(
                "{}: its SHA-256 does not match the backup's manifest: the file is damaged or was changed",
                path.display()
            ));
        }
    }
    let contents = check_image(&m.region, &dir.join(IMAGE))?;
    if let Some(b) = contents
        .blobs
        .iter()
        .find(|b| !m.files.contains_key(&format!("{OBJECTS}/{b}")))
    {
        return Err(format!(
            "{}: names object data {b} that the backup does not hold: the backup is incomplete",
            dir.join(IMAGE).display()
        ));
    }
    Ok(m)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where the state the restore replaced went (`force`), if there was any.
    pub replaced: Option<PathBuf>,
    /// What the user must do before `up` serves the secrets (the master key).
    pub warnings: Vec<String>,
}

/// Whether the environment holds a local cloud's state: a journal with records,
/// or a saved state.
fn has_state(paths: &Paths) -> bool {
    let journal = paths.aws().join("journal.log");
    std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) || paths.state().exists()
}

/// Replaces environment `env`'s local cloud state under `root` with the backup in
/// `from`. Refuses while a cloud runs there, and over existing state unless
/// `force` (which moves that state aside). `key_file` is where this project's
/// master key of `env` lives.
pub fn restore(
    root: &Path,
    project: &str,
    env: &str,
    from: &Path,
    key_file: &Path,
    force: bool,
) -> Result<Restored, Refused> {
    let m = verify(from).map_err(Refused::Io)?;
    if m.project != project || m.environment != env {
        return Err(Refused::Usage(format!(
            "{} is a backup of project `{}`, environment `{}`; this is project `{project}`, environment `{env}`. Resources are named after both, so a backup is restored into the environment it came from{}",
            from.display(),
            m.project,
            m.environment,
            if m.project == project {
                format!(" (--env {})", m.environment)
            } else {
                String::new()
            }
        )));
    }
    let paths = Paths::new(root, env);
    state::secure(&paths).map_err(Refused::Io)?;
    // Held until the restore is done: no `up` can start meanwhile.
    let _lock = state::lock(&paths).map_err(|e| {
        Refused::Unresolved(format!(
            "the local cloud of `{env}` runs ({e}); a restore never replaces a running cloud's state: `pantstack down --env {env}`, then restore"
        ))
    })?;
    // `secrets` may hold the endpoint's state without a supervisor.
    let aws_lock = pantstack_endpoint::lock_path(&paths.aws());
    let _aws_lock = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&aws_lock)
    {
        Ok(f) => {
            if f.try_lock().is_err() {
                return Err(Refused::Unresolved(format!(
                    "{} is in use by another pantstack process; let it finish, then restore",
                    paths.aws().display()
                )));
            }
            Some(f)
        }
        Err(_) => None,
    };
    let existing = has_state(&paths);
    if existing && !force {
        return Err(Refused::Usage(format!(
            "{} holds the state of a local cloud; `pantstack restore --force` replaces it with the backup (the state it replaces is moved aside, not deleted)",
            paths.dir.display()
        )));
    }
    // The saved state without tasks: none of the backup's processes run here.
    let saved = std::fs::read(from.join(STATE))
        .ok()
        .filter(|_| m.files.contains_key(STATE))
        .map(|b| {
            serde_json::from_slice::<state::SavedState>(&b).map_err(|e| {
                Refused::Io(format!(
                    "{}: not a saved state ({e})",
                    from.join(STATE).display()
                ))
            })
        })
        .transpose()?
        .map(|mut s| {
            s.pid = None;
            for u in s.units.values_mut() {
                u.tasks.clear();
            }
            s
        });
    remove_stale(&paths.dir, ".restore-");
    let stage = paths.dir.join(format!(".restore-{}-0", std::process::id()));
    let staged = stage_aws(from, &m, &stage);
    if let Err(e) = staged {
        let _ = std::fs::remove_dir_all(&stage);
        return Err(Refused::Io(e));
    }
    let stamp =
        pantstack_rt::clock::rfc3339_micros(std::time::SystemTime::now()).replace([':', '.'], "-");
    let aside = paths.dir.join(format!("replaced-{stamp}"));
    let swap = || -> Result<Option<PathBuf>, String> {
        let mut moved = false;
        for (what, path) in [("aws", paths.aws()), (STATE, paths.state())] {
            if path.exists() {
                if !moved {
                    std::fs::create_dir(&aside).map_err(|e| io(&aside, "create", e))?;
                    set_mode(&aside, DIR_MODE).map_err(|e| io(&aside, "secure", e))?;
                    moved = true;
                }
                std::fs::rename(&path, aside.join(what)).map_err(|e| io(&path, "move aside", e))?;
            }
        }
        std::fs::rename(&stage, paths.aws()).map_err(|e| io(&stage, "rename", e))?;
        if let Some(s) = &saved {
            state::save(&paths.state(), s).map_err(|e| io(&paths.state(), "write", e))?;
        }
        sync_dir(&paths.dir)?;
        if moved && !existing {
            // Only an empty journal and a lock were there.
            let _ = std::fs::remove_dir_all(&aside);
            return Ok(None);
        }
        Ok(moved.then(|| aside.clone()))
    };
    let replaced = match swap() {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            let undo = if aside.exists() {
                format!(
                    "; the state it was replacing is in {}, untouched: move its entries back into {} to undo",
                    aside.display(),
                    paths.dir.display()
                )
            } else {
                String::new()
            };
            return Err(Refused::Io(format!("{e}{undo}")));
        }
    };
    let warnings = key_warnings(&m, from, key_file);
    Ok(Restored {
        manifest: m,
        replaced,
        warnings,
    })
}

/// Writes the endpoint's state directory of backup `m` (in `from`) at `stage`:
/// the image as the journal, the blobs, the key binding; all synced.
fn stage_aws(from: &Path, m: &Manifest, stage: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(stage);
    private_dir(stage).map_err(|e| io(stage, "create", e))?;
    let image = from.join(IMAGE);
    let journal = stage.join("journal.log");
    let log = pantstack_endpoint::journal::write_log(&journal, |out| {
        let mut f = std::fs::File::open(&image).map_err(|e| io(&image, "read", e))?;
        std::io::copy(&mut f, out).map_err(|e| io(&image, "copy", e))
    })?;
    drop(log);
    let objects = stage.join(OBJECTS);
    private_dir(&objects).map_err(|e| io(&objects, "create", e))?;
    for (rel, want) in &m.files {
        let Some(name) = rel.strip_prefix(&format!("{OBJECTS}/")) else {
            continue;
        };
        let got = copy_new(&from.join(rel), &objects.join(name))?;
        if got != *want {
            return Err(format!(
                "{}: changed while it was restored",
                from.join(rel).display()
            ));
        }
    }
    sync_dir(&objects)?;
    if m.files.contains_key(BINDING) {
        let b =
            std::fs::read(from.join(BINDING)).map_err(|e| io(&from.join(BINDING), "read", e))?;
        write_new(&stage.join(BINDING), &b)?;
    }
    sync_dir(stage)
}

/// What the user must do so that the restored secrets can be opened: the master
/// key the backup's secrets are sealed with must be this project's key file.
fn key_warnings(m: &Manifest, from: &Path, key_file: &Path) -> Vec<String> {
    let binding: Option<serde_json::Value> = std::fs::read(from.join(BINDING))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(b) = binding else {
        return Vec::new();
    };
    let want = b["fingerprint"].as_str().unwrap_or("?");
    let old = b["key_file"].as_str().unwrap_or("?");
    let ring = pantstack_endpoint::keys::Keyring::open_or_create_existing(key_file).ok();
    let here = ring.as_ref().map(|k| k.fingerprint());
    let params = m.holds.aws.parameters;
    if let Some(k) = ring.as_ref().filter(|_| here.as_deref() == Some(want)) {
        let held = k.key_ids();
        let missing: Vec<String> = m
            .holds
            .aws
            .sealed_under
            .iter()
            .filter(|id| !held.contains(id))
            .map(|id| id.to_string())
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        return vec![format!(
            "some of the backup's secrets are sealed under key {} of the master key {}, which that file no longer holds (`pantstack secrets rotate-key` ran after the backup was taken): those secrets cannot be opened; restore the key file from before the rotation to read them, or set them again",
            missing.join(", "),
            key_file.display()
        )];
    }
    vec![format!(
        "the backup's secrets ({params} parameters) are sealed with the master key of fingerprint {want}, kept in {old} where the backup was taken; {}. Copy that key file to {} (mode 0600) before `pantstack up`, or the local cloud will not open its secrets",
        match here {
            None => format!("{} does not exist", key_file.display()),
            Some(_) => format!("{} holds another key", key_file.display()),
        },
        key_file.display()
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_backups_own_files_may_be_listed() {
        for ok in [IMAGE, STATE, BINDING, "objects/abc-12_x.bin"] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "objects/../x",
            "objects/",
            "objects/.hidden",
            "objects/a/b",
            "backup.json",
            "aws/journal.log",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
    }
}

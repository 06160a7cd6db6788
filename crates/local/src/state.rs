//! What the supervisor keeps on disk (`.pantstack/local/<env>/state.json`), written
//! atomically (temp file, fsync, rename) on every change: load-balancer ports (stable
//! across restarts), revisions, desired counts, deployment history (and the
//! deployment in progress), running tasks (to clean up after a crash).
//!
//! Everything under `.pantstack/local/` belongs to the user alone: directories
//! 0700, files 0600, whatever the umask (`secure`). The supervisor's liveness is its
//! exclusive lock on `supervisor.lock` (`lock`, `holder`), never whether its control
//! socket answered.
//!
//! `state.json` is a [`SavedState`]: its JSON shape is the structs' field names
//! (keys sorted, as `serde_json` writes a map). Reading is lenient as to what is
//! missing (a field left out takes its default), so a file an earlier run wrote
//! with fewer fields still loads.

use crate::history::DeploymentRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(root: &Path, env: &str) -> Self {
        Paths {
            dir: root.join(".pantstack").join("local").join(env),
        }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn access_log(&self, unit: &str) -> PathBuf {
        self.dir.join("access").join(format!("{unit}.log"))
    }
    /// The process runtime's builds, one directory per build (`build.rs`).
    pub fn artifacts(&self) -> PathBuf {
        self.dir.join("artifacts")
    }
    /// The AWS endpoint's journal and lock.
    pub fn aws(&self) -> PathBuf {
        self.dir.join("aws")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
    /// Held (flock) by the live supervisor for its whole life; holds its pid.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }
}

use pantstack_rt::private::set_mode;
/// Every file and directory under `.pantstack/local/` is private to the user
/// (the rules are `pantstack_rt::private`'s, shared with the load balancer's
/// access logs).
pub use pantstack_rt::private::{DIR_MODE, FILE_MODE, append_private, private_dir};

/// The umask this process had before `secure` tightened it: image builds run
/// with it, so what they produce (an image's binaries) does not depend on ours.
static USER_UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The user's umask (022 if `secure` has not run).
pub fn user_umask() -> u32 {
    USER_UMASK.get().copied().unwrap_or(0o022)
}

/// Makes an environment's state private to this user, whatever the umask: sets
/// this process's umask to 077 (so files the AWS endpoint, the journal and anything
/// else create later are 0600, directories 0700), creates `.pantstack/local/<env>/`
/// with 0700 and sets 0700/0600 on every directory/file already below it (state
/// written by older versions, or created under a looser umask). Tasks started by the
/// supervisor inherit the umask.
pub fn secure(paths: &Paths) -> Result<(), String> {
    let before = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // The first call sees the user's umask; later calls would see ours.
    let _ = USER_UMASK.set(before.bits());
    let fail = |p: &Path, e: std::io::Error| format!("cannot secure {}: {e}", p.display());
    if let Some(local) = paths.dir.parent() {
        private_dir(local).map_err(|e| fail(local, e))?;
    }
    private_dir(&paths.dir).map_err(|e| fail(&paths.dir, e))?;
    secure_tree(&paths.dir).map_err(|e| fail(&paths.dir, e))
}

/// 0700 on every directory and 0600 on every other entry below `dir` (symlinks are
/// left alone and not followed).
fn secure_tree(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let kind = e.file_type()?;
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            set_mode(&path, DIR_MODE)?;
            secure_tree(&path)?;
        } else {
            set_mode(&path, FILE_MODE)?;
        }
    }
    Ok(())
}

/// The live supervisor's hold on its environment: an exclusive `flock` on
/// `supervisor.lock`, released by the kernel when the process ends (also on
/// SIGKILL). The file names the holder's pid.
pub struct Lock {
    _file: File,
}

/// Who holds an environment's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The pid the holder wrote (None while it is writing it).
    pub pid: Option<u32>,
}

fn open_lock(paths: &Paths) -> std::io::Result<File> {
    private_dir(&paths.dir)?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(FILE_MODE)
        .open(paths.lock())
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Takes the environment's lock for this process and records its pid. `Err` names
/// the live holder.
pub fn lock(paths: &Paths) -> Result<Lock, String> {
    let mut file =
        open_lock(paths).map_err(|e| format!("cannot open {}: {e}", paths.lock().display()))?;
    if file.try_lock().is_err() {
        let pid = read_pid(&mut file)
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        return Err(format!(
            "a supervisor{pid} already holds {}; `pantstack status` shows it, `pantstack down` stops it",
            paths.dir.display()
        ));
    }
    let me = std::process::id();
    let line = format!(
        "{me} {}\n",
        crate::task::start_ticks(me)
            .map(|t| t.to_string())
            .unwrap_or_default()
    );
    file.set_len(0)
        .and_then(|()| file.seek(std::io::SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| file.write_all(line.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", paths.lock().display()))?;
    Ok(Lock { _file: file })
}

/// Whether a live process holds the environment's lock (tried and released at
/// once). `None`: nobody does (or there is no state yet).
pub fn holder(paths: &Paths) -> Option<Holder> {
    if !paths.lock().exists() {
        return None;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(paths.lock())
        .ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(_) => Some(Holder {
            pid: read_pid(&mut file),
        }),
    }
}

/// Whether `path` is locked by another process (a missing file is not).
fn locked(path: &Path) -> bool {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f.try_lock().is_err(),
        Err(_) => false,
    }
}

/// Waits until no process holds the environment: neither the supervisor's lock nor
/// the AWS endpoint's. `Err(holder)` if one still does after `within`.
pub fn wait_released(paths: &Paths, within: Duration) -> Result<(), Option<Holder>> {
    let deadline = Instant::now() + within;
    let aws_lock = paths.aws().join("LOCK");
    loop {
        let h = holder(paths);
        if h.is_none() && !locked(&aws_lock) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(h);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `state.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedState {
    pub environment: String,
    pub project: String,
    /// The supervisor that wrote it.
    pub pid: Option<u32>,
    pub next_task: u64,
    pub next_deploy: u32,
    pub next_build: u64,
    /// The AWS endpoint's port (stable across restarts).
    pub aws_port: Option<u16>,
    pub aws_region: Option<String>,
    pub units: BTreeMap<String, SavedUnit>,
}

impl Default for SavedState {
    /// No state yet: numbering starts at 1.
    fn default() -> Self {
        SavedState {
            environment: String::new(),
            project: String::new(),
            pid: None,
            next_task: 1,
            next_deploy: 1,
            next_build: 1,
            aws_port: None,
            aws_region: None,
            units: BTreeMap::new(),
        }
    }
}

/// One unit in `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedUnit {
    /// Its load balancer's port (`null`: it has none).
    pub port: Option<u16>,
    /// The last completed revision.
    pub current: u32,
    /// The desired count (`scale` outlives a restart).
    pub desired: Option<u32>,
    /// The manifest's count when it was saved.
    pub manifest_desired: Option<u32>,
    /// The last 50 deployments, oldest first.
    pub history: Vec<DeploymentRecord>,
    /// The deployment in progress.
    pub deployment: Option<DeploymentRecord>,
    /// The number the next revision gets.
    pub next_revision: u32,
    /// Tasks not yet stopped (a crashed supervisor's are killed by the next one).
    /// An entry that is neither a process group nor a container is left out.
    #[serde(deserialize_with = "known_tasks")]
    pub tasks: Vec<SavedTask>,
    pub revisions: Vec<SavedRevision>,
}

impl SavedUnit {
    /// The highest revision number this unit's saved state mentions.
    pub fn highest_revision(&self) -> u32 {
        let history = self.history.iter().map(|h| h.revision);
        let revisions = self.revisions.iter().map(|r| r.number);
        let deploying = self.deployment.iter().map(|d| d.revision);
        history
            .chain(revisions)
            .chain(deploying)
            .fold(self.current, u32::max)
            .min(u32::MAX - 1)
    }
}

/// The entries of a task list that are tasks.
fn known_tasks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SavedTask>, D::Error> {
    let list = Vec::<serde_json::Value>::deserialize(d)?;
    Ok(list
        .into_iter()
        .filter_map(|t| serde_json::from_value(t).ok())
        .collect())
}

/// A task in `state.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTask {
    pub id: u64,
    pub revision: u32,
    pub port: u16,
    #[serde(flatten)]
    pub handle: SavedHandle,
}

/// What a saved task runs as: its fields sit next to the task's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SavedHandle {
    /// A process group; `start_ticks` tells it from a later process with the
    /// same id (`null` when it could not be read).
    Process {
        pgid: u32,
        start_ticks: Option<u64>,
    },
    Docker {
        container: String,
    },
}

/// A revision in `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedRevision {
    pub number: u32,
    pub spec: SavedSpec,
    /// Docker: its image.
    pub image: Option<String>,
    /// Processes with `local.build`: its build's directory.
    pub artifacts: Option<PathBuf>,
}

/// What a saved revision ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedSpec {
    pub command: Vec<String>,
    pub container_command: Option<Vec<String>>,
    /// Its environment, `[name, value]` pairs.
    pub env: Vec<(String, String)>,
    pub runtime: String,
}

/// The saved state; `None` when there is none or it cannot be read.
pub fn load(path: &Path) -> Option<SavedState> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The text of `state.json` for `s`: pretty-printed, keys sorted.
pub fn to_text(s: &SavedState) -> serde_json::Result<String> {
    // Through `Value`: its maps sort their keys, so the file's keys are sorted.
    serde_json::to_string_pretty(&serde_json::to_value(s)?)
}

/// Writes `s` durably with mode 0600: a reader sees the old file or the new one,
/// never a mix.
pub fn save(path: &Path, s: &SavedState) -> std::io::Result<()> {
    let text = to_text(s).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir)?;
    let tmp = dir.join(".state.json.tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The state of an environment that has none yet.
pub fn empty(env: &str) -> SavedState {
    SavedState {
        environment: env.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pantstack-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A state file in the shape the supervisor writes: every kind of history
    /// record, a deployment in progress, both kinds of task, a unit without a
    /// load balancer.
    fn written_state() -> serde_json::Value {
        let t0 = "2026-12-04T10:00:00.000001Z";
        let t1 = "2026-12-04T10:00:09.500000Z";
        serde_json::json!({
            "environment": "test",
            "project": "shop",
            "pid": 4242,
            "next_task": 17,
            "next_deploy": 9,
            "next_build": 3,
            "aws_port": 40123,
            "aws_region": "eu-west-1",
            "units": {
                "api": {
                    "port": 38001,
                    "current": 3,
                    "desired": 2,
                    "manifest_desired": 1,
                    "history": [
                        {"id": 1, "revision": 1, "from": 0, "kind": "start", "outcome": "completed",
                         "reason": "", "failures": [], "started": t0, "ended": t1},
                        {"id": 2, "revision": 2, "from": 1, "kind": "deploy", "outcome": "superseded",
                         "reason": "replaced by deployment 3", "started": t0, "ended": t1},
                        {"id": 3, "revision": 3, "from": 1, "kind": "deploy", "outcome": "failed",
                         "reason": "circuit breaker", "failures": ["task 5 exited (exit status: 1)"],
                         "started": t0, "ended": t1},
                        {"id": 4, "revision": 1, "from": 3, "kind": "rollback", "outcome": "interrupted",
                         "reason": "the supervisor (pid 4000) stopped before the deployment ended",
                         "started": t0, "ended": t1},
                    ],
                    "deployment": {"id": 8, "revision": 4, "from": 3, "kind": "deploy", "started": t0},
                    "next_revision": 5,
                    "tasks": [
                        {"id": 15, "revision": 3, "port": 41000, "pgid": 5001, "start_ticks": 123456},
                        {"id": 16, "revision": 4, "port": 41001, "pgid": 5002, "start_ticks": null},
                        {"id": 14, "revision": 3, "port": 41002, "container": "pantstack-shop-test-api-14"},
                    ],
                    "revisions": [
                        {"number": 3, "spec": {"command": ["./run", "api"], "container_command": null,
                          "env": [["PORT", "8080"], ["MODE", "a=b"]], "runtime": "process"},
                         "image": null, "artifacts": "/p/.pantstack/local/test/artifacts/2"},
                        {"number": 4, "spec": {"command": [], "container_command": ["/api", "serve"],
                          "env": [], "runtime": "docker"},
                         "image": "pantstack/shop-api:4", "artifacts": null},
                    ],
                },
                "worker": {
                    "port": null,
                    "current": 0,
                    "desired": 1,
                    "manifest_desired": null,
                    "history": [],
                    "deployment": null,
                    "next_revision": 1,
                    "tasks": [],
                    "revisions": [],
                },
            },
        })
    }

    #[test]
    fn a_state_file_loads_and_is_written_back_byte_for_byte() {
        let text = serde_json::to_string_pretty(&written_state()).unwrap();
        let dir = temp("roundtrip");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        std::fs::write(&path, &text).unwrap();
        let s = load(&path).expect("the state loads");
        assert_eq!(s.units["api"].history.len(), 4);
        assert_eq!(s.units["api"].highest_revision(), 4);
        assert_eq!(s.units["worker"].port, None);
        assert_eq!(
            s.units["api"].tasks[1].handle,
            SavedHandle::Process {
                pgid: 5002,
                start_ticks: None
            }
        );
        save(&path, &s).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_task_entry_of_no_known_kind_is_left_out() {
        let s: SavedState = serde_json::from_str(
            r#"{"units": {"api": {"tasks": [{"id": 1, "revision": 1, "port": 9},
                {"id": 2, "revision": 1, "port": 10, "container": "c"}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            s.units["api"].tasks,
            [SavedTask {
                id: 2,
                revision: 1,
                port: 10,
                handle: SavedHandle::Docker {
                    container: "c".into()
                }
            }]
        );
    }

    #[test]
    fn a_missing_field_takes_its_default() {
        let s: SavedState =
            serde_json::from_str(r#"{"environment": "dev", "units": {"api": {}}}"#).unwrap();
        assert_eq!(s.next_task, 1);
        assert_eq!(s.next_deploy, 1);
        assert_eq!(s.next_build, 1);
        assert_eq!(s.aws_port, None);
        assert_eq!(s.units["api"], SavedUnit::default());
        assert_eq!(empty("dev").units.len(), 0);
    }

    #[test]
    fn the_lock_names_its_holder_and_is_free_once_dropped() {
        let root = temp("lock");
        let paths = Paths::new(&root, "test");
        assert_eq!(holder(&paths), None);
        let l = lock(&paths).unwrap();
        // flock is per open file: a second open in this process conflicts like
        // another process would.
        let h = holder(&paths).unwrap();
        assert_eq!(h.pid, Some(std::process::id()));
        let e = lock(&paths).err().unwrap();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(l);
        assert_eq!(holder(&paths), None);
        assert!(wait_released(&paths, Duration::from_millis(10)).is_ok());
        let _ = std::fs::remove_dir_all(root);
    }
}

//! What the supervisor keeps on disk (`.pantstack/local/<env>/state.json`), written
//! atomically (temp file, fsync, rename) on every change: load-balancer ports (stable
//! across restarts), revisions, desired counts, deployment history, running tasks
//! (to clean up after a crash).

use serde_json::{Value, json};
use std::path::{Path, PathBuf};

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
    /// The AWS endpoint's journal and lock.
    pub fn aws(&self) -> PathBuf {
        self.dir.join("aws")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
}

pub fn load(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes `v` durably: a reader sees the old file or the new one, never a mix.
pub fn save(path: &Path, v: &Value) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".state.json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(
        serde_json::to_string_pretty(v)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub fn empty(env: &str) -> Value {
    json!({ "environment": env, "units": {} })
}

//! The access-log file: workers append whole buffers of lines; the file is rolled
//! when it passes a size or an age (ALB writes one file per 5 minutes), and only a
//! bounded number of rolled files is kept, the oldest deleted first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// When the access log rolls and how much of it is kept: at most `keep` rolled
/// files of about `max_bytes` each, plus the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// The current file rolls before a write would take it past this size.
    pub max_bytes: u64,
    /// The current file rolls when it is older than this (and not empty).
    pub max_age: Duration,
    /// Rolled files kept; older ones are deleted.
    pub keep: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_bytes: 32 << 20,
            max_age: Duration::from_secs(300),
            keep: 12,
        }
    }
}

impl LogLimits {
    /// Bytes after which the file rolls (default 32 MiB).
    pub const MAX_BYTES_VAR: &'static str = "PANTSTACK_LB_LOG_MAX_BYTES";
    /// Seconds after which the file rolls (default 300, as ALB's 5 minutes).
    pub const MAX_AGE_VAR: &'static str = "PANTSTACK_LB_LOG_ROTATE_SECS";
    /// Rolled files kept (default 12).
    pub const KEEP_VAR: &'static str = "PANTSTACK_LB_LOG_KEEP";

    /// The defaults, overridden by the variables that are set.
    pub fn from_env() -> std::io::Result<LogLimits> {
        let mut l = LogLimits::default();
        if let Some(v) = var(Self::MAX_BYTES_VAR)? {
            l.max_bytes = v.max(1);
        }
        if let Some(v) = var(Self::MAX_AGE_VAR)? {
            l.max_age = Duration::from_secs(v.max(1));
        }
        if let Some(v) = var(Self::KEEP_VAR)? {
            l.keep = usize::try_from(v).unwrap_or(usize::MAX);
        }
        Ok(l)
    }
}

fn var(name: &str) -> std::io::Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name}={v:?}: expected a whole number"),
            )
        }),
        Err(_) => Ok(None),
    }
}

struct Current {
    file: std::fs::File,
    size: u64,
    opened: Instant,
}

/// The access-log file of one balancer, shared by its workers.
pub(crate) struct AccessLog {
    path: PathBuf,
    current: Mutex<Current>,
    limits: Mutex<LogLimits>,
}

fn open(path: &Path) -> std::io::Result<Current> {
    // 0600 in a 0700 directory, whatever the umask (`pantstack_rt::private`).
    let file = pantstack_rt::private::append_private(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Current {
        file,
        size,
        opened: Instant::now(),
    })
}

impl AccessLog {
    pub(super) fn open(path: PathBuf, limits: LogLimits) -> std::io::Result<AccessLog> {
        let current = open(&path)?;
        Ok(AccessLog {
            path,
            current: Mutex::new(current),
            limits: Mutex::new(limits),
        })
    }

    pub(super) fn set_limits(&self, limits: LogLimits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// Appends whole lines (one `write`), rolling the file first when they would
    /// take it past its size or it is past its age.
    pub(super) fn append(&self, lines: &[u8]) {
        let limits = *self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let full = cur.size + lines.len() as u64 > limits.max_bytes;
        let old = cur.opened.elapsed() >= limits.max_age;
        if cur.size > 0 && (full || old) {
            // Where rolling fails (a full disk, say), lines go on to the same file.
            if let Ok(next) = self.roll(limits.keep) {
                *cur = next;
            }
        }
        if (&cur.file).write_all(lines).is_ok() {
            cur.size += lines.len() as u64;
        }
    }

    /// Renames the current file to `<name>.<UTC time>`, deletes the oldest rolled
    /// files beyond `keep`, and opens a new current file.
    fn roll(&self, keep: usize) -> std::io::Result<Current> {
        let stamp: String = pantstack_rt::clock::rfc3339_micros(SystemTime::now())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut rolled = dir.join(format!("{name}.{stamp}"));
        let mut n = 1;
        while rolled.exists() {
            rolled = dir.join(format!("{name}.{stamp}-{n}"));
            n += 1;
        }
        std::fs::rename(&self.path, &rolled)?;
        let next = open(&self.path);
        prune(&dir, &name, keep);
        next
    }
}

/// Deletes the oldest rolled files of `name` in `dir` beyond `keep` (their names
/// sort by time).
fn prune(dir: &Path, name: &str, keep: usize) {
    let prefix = format!("{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut rolled: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    if rolled.len() <= keep {
        return;
    }
    rolled.sort();
    let extra = rolled.len() - keep;
    for p in rolled.into_iter().take(extra) {
        let _ = std::fs::remove_file(p);
    }
}

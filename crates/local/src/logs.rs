//! The local cloud's logs, organised as CloudWatch Logs organises a service's:
//! one log group per unit (`logs/<unit>/`), one stream per task (`<task>.log`,
//! rolled over to `<task>.log.1`) and one per build (`build-N.log`). Each line is
//! `<RFC 3339 UTC time> <stdout|stderr> <the task's line>`.
//!
//! Invariants:
//! - A group's disk use is bounded by its unit's [`Retention`]: the writer rolls a
//!   stream over at [`Retention::stream_max`] (one older file kept, so a running
//!   task's stream uses at most half the group's budget), and [`enforce`] deletes
//!   the streams no task or build writes any more that are older than the
//!   retention age, then the oldest of them while the group is over its budget.
//!   A stream being written (or written in the last [`RECENT_SECS`]) is never
//!   deleted.
//! - [`Follower`] reads each file from where it left it (by inode, so a stream
//!   rolled over under it is finished, not read twice) and only whole lines.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How much of a unit's log group is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The group's disk budget (`local.log_max_mib`).
    pub max_bytes: u64,
    /// Streams no longer written are deleted this long after their last line
    /// (`logs.retention_days`).
    pub max_age_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_bytes: 64 * 1024 * 1024,
            max_age_secs: 30 * 86_400,
        }
    }
}

impl Retention {
    /// Where a stream being written rolls over: a quarter of the group's budget.
    pub fn stream_max(&self) -> u64 {
        (self.max_bytes / 4).max(16 * 1024)
    }
}

/// The stream a file of a group belongs to: `7.log` and `7.log.1` are task 7's,
/// `build-3.log` is build 3's. Other files are not streams.
pub fn stream_of(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(".log")
        .or_else(|| file_name.strip_suffix(".log.1"))
        .filter(|s| !s.is_empty())
}

/// The rolled-over file of a stream's file (`7.log` → `7.log.1`).
pub fn rolled(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// The groups under `logs_dir`: (unit, its directory), sorted.
pub fn groups(logs_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(logs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

/// A group's stream files: (stream, path), rolled-over files before the current.
pub fn stream_files(group: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(group)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stream = stream_of(&name)?.to_string();
            Some((stream, e.path()))
        })
        .collect();
    // `7.log.1` sorts after `7.log`; read the older one first.
    out.sort_by(|a, b| {
        (&a.0, !a.1.to_string_lossy().ends_with(".1"))
            .cmp(&(&b.0, !b.1.to_string_lossy().ends_with(".1")))
    });
    out
}

/// One line of a stream, split.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Seconds since the epoch (0 when the line has no stamp).
    pub time: f64,
    /// The stamp as written.
    pub stamp: String,
    /// `stdout`, `stderr` (a build's lines carry their own).
    pub stream: String,
    /// The task's line.
    pub message: String,
}

/// Splits `<stamp> <stream> <message>`; a line without a stamp is all message.
pub fn parse_line(raw: &str) -> Line {
    let mut it = raw.splitn(3, ' ');
    let (a, b, c) = (it.next(), it.next(), it.next());
    match a.and_then(|s| pantstack_rt::clock::parse_rfc3339(s).map(|t| (s, t))) {
        Some((stamp, time)) => Line {
            time,
            stamp: stamp.to_string(),
            stream: b.unwrap_or_default().to_string(),
            message: c.unwrap_or_default().to_string(),
        },
        None => Line {
            time: 0.0,
            stamp: String::new(),
            stream: String::new(),
            message: raw.to_string(),
        },
    }
}

/// Reads the new whole lines of files, each from where the last read ended.
#[derive(Default)]
pub struct Follower {
    /// (device, inode) → offset read up to.
    offsets: BTreeMap<(u64, u64), u64>,
}

impl Follower {
    /// The whole lines appended to `path` since the last call (all of it the first
    /// time). A file shorter than what was read of it was rewritten: read again.
    pub fn read_new(&mut self, path: &Path) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let Ok(meta) = f.metadata() else {
            return Vec::new();
        };
        let key = (meta.dev(), meta.ino());
        let mut start = self.offsets.get(&key).copied().unwrap_or(0);
        if meta.len() < start {
            start = 0;
        }
        if meta.len() == start || f.seek(SeekFrom::Start(start)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if f.take(meta.len() - start).read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        self.offsets.insert(key, start + end as u64 + 1);
        String::from_utf8_lossy(&bytes[..end])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A stream written this recently is spared: it may be a task that started after
/// the caller listed the live ones.
pub const RECENT_SECS: u64 = 30;

/// What [`enforce`] deleted: (path, bytes).
pub type Deleted = Vec<(PathBuf, u64)>;

/// Applies `r` to the group in `dir`: the files of streams not in `live` (task
/// ids and `build-N` still written) go when older than the retention age, then
/// oldest first while the group is over its budget.
pub fn enforce(dir: &Path, r: Retention, live: &BTreeSet<String>, now: SystemTime) -> Deleted {
    let mut files: Vec<(SystemTime, PathBuf, u64, bool)> = stream_files(dir)
        .into_iter()
        .filter_map(|(stream, path)| {
            let m = std::fs::metadata(&path).ok()?;
            let modified = m.modified().unwrap_or(now);
            Some((modified, path, m.len(), live.contains(&stream)))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    let mut deleted = Vec::new();
    for (modified, path, len, is_live) in &files {
        if *is_live {
            continue;
        }
        let age = now.duration_since(*modified).unwrap_or_default().as_secs();
        if age < RECENT_SECS {
            continue;
        }
        if (age >= r.max_age_secs || total > r.max_bytes) && std::fs::remove_file(path).is_ok() {
            total -= len;
            deleted.push((path.clone(), *len));
        }
    }
    deleted
}

/// Parses a `--since`/`--until` bound: a duration back from `now` (`30s`, `10m`,
/// `2h`, `1d`) or an RFC 3339 time (`2026-12-05T01:00:00Z`, fractional seconds and
/// `+01:00`-style offsets allowed). Seconds since the epoch.
pub fn parse_bound(s: &str, now: f64) -> Option<f64> {
    if let Some(secs) = pantstack_manifest_duration(s) {
        return Some(now - secs as f64);
    }
    let s = s.trim();
    if let Some(t) = pantstack_rt::clock::parse_rfc3339(&s.replace('z', "Z").replace('t', "T")) {
        return Some(t);
    }
    // An offset: `…+01:00` / `…-05:30`, after the time.
    let (date, time) = s.split_once(['T', 't'])?;
    let at = time.rfind(['+', '-'])?;
    let (clock, offset) = time.split_at(at);
    let sign = if offset.starts_with('-') { -1.0 } else { 1.0 };
    let (h, m) = offset[1..].split_once(':')?;
    let (h, m): (f64, f64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23.0 || m > 59.0 {
        return None;
    }
    let utc = pantstack_rt::clock::parse_rfc3339(&format!("{date}T{clock}Z"))?;
    Some(utc - sign * (h * 3600.0 + m * 60.0))
}

/// `30s`, `10m`, `2h`, `1d` in seconds (the manifests' durations).
fn pantstack_manifest_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_into_stamp_stream_and_message() {
        let l = parse_line("2026-12-05T01:02:03.000004Z stderr {\"level\":\"warn\"} x");
        assert_eq!(l.stream, "stderr");
        assert_eq!(l.message, "{\"level\":\"warn\"} x");
        assert!((l.time - 1_796_432_523.000_004).abs() < 1e-3, "{}", l.time);
        let l = parse_line("no stamp here");
        assert_eq!((l.time, l.message.as_str()), (0.0, "no stamp here"));
        assert_eq!(stream_of("12.log"), Some("12"));
        assert_eq!(stream_of("12.log.1"), Some("12"));
        assert_eq!(stream_of("build-3.log"), Some("build-3"));
        assert_eq!(stream_of("notes.txt"), None);
    }

    #[test]
    fn bounds_are_durations_or_rfc3339_times() {
        let now = 1_000_000.0;
        assert_eq!(parse_bound("10m", now), Some(now - 600.0));
        assert_eq!(parse_bound("2h", now), Some(now - 7200.0));
        let z = parse_bound("2026-12-05T01:00:00Z", now).expect("utc");
        assert_eq!(parse_bound("2026-12-05T02:30:00+01:30", now), Some(z));
        assert_eq!(parse_bound("2026-12-04T20:00:00-05:00", now), Some(z));
        assert_eq!(
            parse_bound("2026-12-05T01:00:00.5Z", now).map(|t| t - z),
            Some(0.5)
        );
        for bad in [
            "",
            "10x",
            "yesterday",
            "2026-12-05",
            "2026-12-05T01:00:00+99:00",
        ] {
            assert_eq!(parse_bound(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn the_follower_reads_whole_new_lines_once_across_a_roll_over() {
        let dir = std::env::temp_dir().join(format!("pantstack-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("1.log");
        std::fs::write(&p, "a\nb\npart").expect("write");
        let mut f = Follower::default();
        assert_eq!(f.read_new(&p), ["a", "b"]);
        assert!(f.read_new(&p).is_empty());
        std::fs::write(&p, "a\nb\npartial\nc\n").expect("append");
        assert_eq!(f.read_new(&p), ["partial", "c"]);
        // Rolled over: the old file keeps its offset under its new name.
        std::fs::rename(&p, rolled(&p)).expect("roll");
        std::fs::write(&p, "d\n").expect("new");
        assert!(f.read_new(&rolled(&p)).is_empty());
        assert_eq!(f.read_new(&p), ["d"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_deletes_old_and_excess_stopped_streams_never_live_ones() {
        let dir = std::env::temp_dir().join(format!("pantstack-ret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let kib = vec![b'x'; 1024];
        for name in [
            "1.log",
            "2.log",
            "3.log",
            "3.log.1",
            "build-1.log",
            "other.txt",
        ] {
            std::fs::write(dir.join(name), &kib).expect("write");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let live: BTreeSet<String> = ["3".to_string()].into();
        let r = Retention {
            max_bytes: 3 * 1024,
            max_age_secs: 3600,
        };
        let soon = SystemTime::now() + std::time::Duration::from_secs(RECENT_SECS);
        assert!(
            enforce(&dir, r, &live, SystemTime::now()).is_empty(),
            "recent ones stay"
        );
        let gone = enforce(&dir, r, &live, soon);
        let names: Vec<String> = gone
            .iter()
            .map(|(p, _)| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        // 5 KiB of streams, budget 3 KiB: the two oldest stopped ones go.
        assert_eq!(names, ["1.log", "2.log"]);
        assert!(dir.join("3.log").exists() && dir.join("3.log.1").exists());
        assert!(dir.join("other.txt").exists());
        // Past the retention age every stopped stream goes, live ones stay.
        let later = SystemTime::now() + std::time::Duration::from_secs(7200);
        let gone = enforce(&dir, r, &live, later);
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(!dir.join("build-1.log").exists());
        assert!(dir.join("3.log").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

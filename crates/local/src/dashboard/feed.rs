//! The dashboard's live tail: the supervisor's events and the last lines of the
//! tasks' and builds' log streams (`crate::logs`), in one numbered ring buffer
//! that the page polls with `after=N`.
//!
//! Invariants:
//! - [`Feed`] keeps at most [`KEEP`] entries, each message cut at [`MAX_MESSAGE`]
//!   bytes; entry numbers (`seq`) only grow, so `after=N` never sees one twice.
//! - [`Tail`] reads a stream file it has not seen before from at most
//!   [`FIRST_BYTES`] before its end, and at most [`MAX_READ`] bytes of a file per
//!   poll (skipping ahead when more was written): a large or fast log costs a
//!   bounded amount of memory and time. Only whole lines are read.

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Entries kept.
pub const KEEP: usize = 1000;
/// Entries answered per poll.
pub const PER_POLL: usize = 300;
/// A message's longest kept length (bytes).
pub const MAX_MESSAGE: usize = 2000;
/// How much of the end of a stream first seen is shown.
pub const FIRST_BYTES: u64 = 4 * 1024;
/// The most read of one stream per poll.
pub const MAX_READ: u64 = 64 * 1024;

/// The numbered entries.
#[derive(Debug, Default)]
pub struct Feed {
    /// The number of the last entry pushed (0: none yet).
    last: u64,
    entries: VecDeque<Value>,
}

impl Feed {
    /// Appends an entry (a JSON object), numbering it.
    pub fn push(&mut self, unit: &str, source: &str, kind: &str, time: &str, message: &str) {
        self.last += 1;
        let mut message = message.to_string();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.entries.push_back(json!({
            "seq": self.last, "time": time, "unit": unit, "source": source,
            "kind": kind, "message": message,
        }));
        while self.entries.len() > KEEP {
            self.entries.pop_front();
        }
    }

    /// A supervisor event (`{"time", "unit", "event", "message"}`).
    pub fn push_event(&mut self, ev: &Value) {
        let s = |k: &str| ev[k].as_str().unwrap_or("").to_string();
        self.push(&s("unit"), "event", &s("event"), &s("time"), &s("message"));
    }

    /// The answer to `after=n`: the oldest [`PER_POLL`] entries numbered above
    /// `n`, and the number to ask after next.
    pub fn after(&self, n: u64) -> Value {
        let list: Vec<&Value> = self
            .entries
            .iter()
            .filter(|e| e["seq"].as_u64().is_some_and(|s| s > n))
            .take(PER_POLL)
            .collect();
        let next = list
            .last()
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or(n.min(self.last));
        json!({ "entries": list, "next": next, "last": self.last })
    }
}

/// Where each stream file was read up to.
#[derive(Debug, Default)]
pub struct Tail {
    /// path → (inode, offset read up to).
    files: BTreeMap<PathBuf, (u64, u64)>,
}

/// One new line of a stream.
#[derive(Debug, PartialEq)]
pub struct TailLine {
    pub unit: String,
    /// `task 7`, `build 3`.
    pub source: String,
    pub line: crate::logs::Line,
}

impl Tail {
    /// The new whole lines of every unit's current stream files under `logs_dir`.
    pub fn poll(&mut self, logs_dir: &Path) -> Vec<TailLine> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for (unit, group) in crate::logs::groups(logs_dir) {
            for (stream, path) in crate::logs::stream_files(&group) {
                // The rolled-over files (`7.log.1`) were read while current.
                if !path.to_string_lossy().ends_with(".log") {
                    continue;
                }
                let source = match stream.strip_prefix("build-") {
                    Some(n) => format!("build {n}"),
                    None => format!("task {stream}"),
                };
                for raw in self.read_new(&path) {
                    out.push(TailLine {
                        unit: unit.clone(),
                        source: source.clone(),
                        line: crate::logs::parse_line(&raw),
                    });
                }
                seen.push(path);
            }
        }
        self.files.retain(|p, _| seen.contains(p));
        out
    }

    /// The whole lines written to `path` since the last read.
    fn read_new(&mut self, path: &Path) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let Ok(meta) = f.metadata() else {
            return Vec::new();
        };
        let len = meta.len();
        let mut start = match self.files.get(path) {
            // A new file under a known name (rolled over), or one cut short: all of it.
            Some(&(ino, off)) if ino == meta.ino() && off <= len => off,
            Some(_) => 0,
            None => len.saturating_sub(FIRST_BYTES),
        };
        // Skipping ahead starts mid-line: the partial line is dropped below.
        let mut partial = start > 0 && !self.files.contains_key(path);
        if len - start > MAX_READ {
            start = len - MAX_READ;
            partial = true;
        }
        if len == start || f.seek(SeekFrom::Start(start)).is_err() {
            self.files.insert(path.to_path_buf(), (meta.ino(), start));
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if f.take(len - start).read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            self.files.insert(path.to_path_buf(), (meta.ino(), start));
            return Vec::new();
        };
        self.files
            .insert(path.to_path_buf(), (meta.ino(), start + end as u64 + 1));
        let mut lines: Vec<String> = String::from_utf8_lossy(&bytes[..end])
            .lines()
            .map(str::to_string)
            .collect();
        if partial && !lines.is_empty() {
            lines.remove(0);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    #[test]
    fn the_feed_numbers_entries_keeps_the_newest_and_answers_after_n() {
        let mut f = Feed::default();
        assert_eq!(f.after(0)["next"], 0);
        for i in 0..(KEEP + 5) {
            f.push("api", "event", "scale", "t", &format!("m{i}"));
        }
        let a = f.after(0);
        let list = a["entries"].as_array().unwrap();
        assert_eq!(list.len(), PER_POLL);
        assert_eq!(list[0]["seq"], 6, "the 5 oldest were dropped");
        assert_eq!(a["next"], 6 + PER_POLL as u64 - 1);
        let last = f.after(KEEP as u64 + 4);
        assert_eq!(last["entries"][0]["message"], format!("m{}", KEEP + 4));
        assert_eq!(last["next"], KEEP as u64 + 5);
        assert_eq!(f.after(KEEP as u64 + 5)["entries"], json!([]));
        assert_eq!(f.after(KEEP as u64 + 5)["next"], KEEP as u64 + 5);
        // A page that remembers a number from before a restart starts over.
        assert_eq!(f.after(1_000_000)["next"], KEEP as u64 + 5);

        f.push_event(&json!({"time": "T", "unit": "api", "event": "deployment", "message": "é".repeat(MAX_MESSAGE)}));
        let e = &f.after(KEEP as u64 + 5)["entries"][0];
        assert_eq!(e["source"], "event");
        assert_eq!(e["kind"], "deployment");
        assert!(e["message"].as_str().unwrap().len() <= MAX_MESSAGE + 3);
    }

    #[test]
    fn the_tail_reads_new_whole_lines_and_only_the_end_of_a_stream_first_seen() {
        let dir = std::env::temp_dir().join(format!("pantstack-feed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("api")).unwrap();
        let stream = dir.join("api/7.log");
        let mut old = String::new();
        for i in 0..1000 {
            old.push_str(&format!("2026-01-01T00:00:00Z stdout old line {i}\n"));
        }
        std::fs::write(&stream, &old).unwrap();
        std::fs::write(
            dir.join("api/7.log.1"),
            "2026-01-01T00:00:00Z stdout rolled\n",
        )
        .unwrap();
        let mut t = Tail::default();
        let first = t.poll(&dir);
        assert!(!first.is_empty());
        assert!(first.len() < 200, "only the end: {}", first.len());
        assert_eq!(first.last().unwrap().line.message, "old line 999");
        assert!(
            first[0].line.message.starts_with("old line "),
            "no partial line"
        );
        assert_eq!(first[0].source, "task 7");
        assert_eq!(first[0].unit, "api");
        assert!(first.iter().all(|l| l.line.message != "rolled"));

        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&stream)
            .unwrap();
        f.write_all(b"2026-01-01T00:00:01Z stderr new\n2026-01-01T00:00:02Z stdout half")
            .unwrap();
        let next = t.poll(&dir);
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(next[0].line.stream, "stderr");
        assert_eq!(next[0].line.message, "new");
        f.write_all(b" done\n").unwrap();
        assert_eq!(t.poll(&dir)[0].line.message, "half done");
        assert!(t.poll(&dir).is_empty());

        // A burst larger than one poll reads: the end of it.
        let burst = "2026-01-01T00:00:03Z stdout burst\n".repeat(10_000);
        f.write_all(burst.as_bytes()).unwrap();
        let read = t.poll(&dir);
        assert!(read.len() < 3000 && !read.is_empty(), "{}", read.len());
        assert!(read.iter().all(|l| l.line.message == "burst"));

        // A build's stream, new: read from its start.
        std::fs::write(
            dir.join("api/build-3.log"),
            "2026-01-01T00:00:04Z build step 1\n",
        )
        .unwrap();
        let b = t.poll(&dir);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].source, "build 3");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

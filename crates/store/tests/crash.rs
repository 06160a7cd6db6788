//! The log after crashes: a child process appends and acknowledges records until it
//! is killed with SIGKILL; every acknowledged record is there after reopening, in
//! order, and a torn tail (a half-written record) is cut, never returned.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use pantstack_store::{Log, Recovery};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pantstack-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_all(path: &std::path::Path) -> (Vec<Vec<u8>>, Recovery) {
    let mut got = Vec::new();
    let (_, rec) = Log::open(path, |p| got.push(p.to_vec())).unwrap();
    (got, rec)
}

#[test]
fn a_torn_tail_is_cut_and_the_rest_kept() {
    let dir = temp("torn");
    let path = dir.join("log");
    {
        let (mut log, rec) = Log::open(&path, |_| {}).unwrap();
        assert_eq!(rec, Recovery::default());
        log.append(b"first").unwrap();
        log.append_all(&[b"second", b"third"]).unwrap();
    }
    // A crash in the middle of a write: a header promising more than is there.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[1, 2, 3, 4, b'x', b'y']).unwrap();
    drop(f);
    let (got, rec) = read_all(&path);
    assert_eq!(
        got,
        [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
    assert_eq!(
        rec,
        Recovery {
            records: 3,
            truncated: 10
        }
    );
    // A flipped bit in the last record: it is cut, never returned corrupted.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (got, rec) = read_all(&path);
    assert_eq!(got, [b"first".to_vec(), b"second".to_vec()]);
    assert_eq!(rec.truncated, 8 + 5);
    // Appending after recovery continues cleanly.
    let (mut log, _) = Log::open(&path, |_| {}).unwrap();
    log.append(b"fourth").unwrap();
    drop(log);
    assert_eq!(read_all(&path).0.len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_acknowledged_record_survives_kill_9() {
    let dir = temp("kill");
    let path = dir.join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("ack ") {
            acked = n.parse().unwrap();
            if acked >= 300 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-write as likely as not
    let _ = child.wait();
    assert!(acked >= 300, "the writer acknowledged only {acked}");
    let (got, _) = read_all(&path);
    assert!(
        got.len() as u64 >= acked,
        "{} records after reopening, {acked} acknowledged",
        got.len()
    );
    for (i, r) in got.iter().enumerate() {
        assert_eq!(
            r,
            format!("message {i:06} {}", "x".repeat(i % 97)).as_bytes(),
            "record {i}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records of every size across block and preallocation boundaries, in both write
/// modes, read back in order after a clean close and after a crash that leaves the
/// preallocated space behind.
#[test]
fn appends_across_blocks_and_chunks_read_back_in_order() {
    use pantstack_store::Writes;
    for writes in [Writes::Direct, Writes::Buffered] {
        let dir = temp(&format!("blocks-{writes:?}"));
        let path = dir.join("log");
        let record = |i: usize| {
            let n = [1, 7, 4087, 4088, 4096, 5000, 70_000][i % 7];
            let mut r = format!("{i}:").into_bytes();
            r.resize(n.max(r.len()), b'a' + (i % 26) as u8);
            r
        };
        let mut want = Vec::new();
        let (mut log, _) = Log::open_as(&path, writes, |_| {}).unwrap();
        if writes == Writes::Buffered {
            assert!(!log.is_direct());
        }
        // ~6 MiB: past the first 4 MiB chunk.
        let mut i = 0;
        while want.iter().map(Vec::len).sum::<usize>() < 6 << 20 {
            let group: Vec<Vec<u8>> = (0..1 + i % 3).map(|k| record(i + k)).collect();
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            log.append_all(&refs).unwrap();
            i += group.len();
            want.extend(group);
        }
        let logical = log.len();
        // A crash: no clean close, so direct mode's preallocated zeros stay.
        std::mem::forget(log);
        let on_disk = std::fs::metadata(&path).unwrap().len();
        assert!(on_disk >= logical);
        let (got, rec) = read_all(&path);
        assert_eq!(rec.records, want.len());
        assert_eq!(rec.truncated, 0, "zeros past the end are not a torn tail");
        assert!(got == want, "{writes:?}: records differ after a crash");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), logical);
        // Appending after recovery continues the same log; a clean close trims it.
        {
            let (mut log, _) = Log::open_as(&path, writes, |_| {}).unwrap();
            for k in 0..10 {
                log.append(&record(i + k)).unwrap();
                want.push(record(i + k));
            }
        }
        let (got, rec) = read_all(&path);
        assert_eq!(rec.truncated, 0);
        assert!(got == want, "{writes:?}: records differ after reopening");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Group commit, fail-stop on a failed write, and rewrites (compaction).

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

/// A fresh journal in its own directory, and a loop-thread runtime for it.
fn setup(
    name: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    Journal,
    tokio::runtime::Runtime,
) {
    let dir = temp(name);
    let path = dir.join("journal.log");
    let (j, _) = Journal::open(&path, |_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (dir, path, j, rt)
}

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pantstack-journal-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn replay(path: &Path) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let _ = Journal::open(path, |r| got.push(r.to_vec())).unwrap();
    got
}

/// Many requests on the loop thread, plus callers on other threads: every
/// acknowledged record is on disk, in submission order, and groups form.
#[test]
fn loop_thread_groups_and_other_threads_sync_themselves() {
    let dir = temp("groups");
    let path = dir.join("journal.log");
    let (j, _) = Journal::open(&path, |_| {}).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let flusher = tokio::spawn({
            let j = j.clone();
            async move { j.run_flusher().await }
        });
        let mut tasks = Vec::new();
        for t in 0..16 {
            let j = j.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    let rec = format!("t{t}-{i}").into_bytes();
                    let d = {
                        // Submitted under the "state lock", as the endpoint does.
                        let mut o = order.lock().unwrap();
                        o.push(rec.clone());
                        j.submit(vec![rec])
                    };
                    d.wait().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }));
        }
        // Meanwhile a caller on another thread (no flusher there).
        let other = std::thread::spawn({
            let j = j.clone();
            let order = order.clone();
            move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                for i in 0..20 {
                    let d = {
                        let mut o = order.lock().unwrap();
                        let rec = format!("other-{i}").into_bytes();
                        o.push(rec.clone());
                        j.submit(vec![rec])
                    };
                    rt.block_on(d.wait()).unwrap();
                }
            }
        });
        for t in tasks {
            t.await.unwrap();
        }
        other.join().unwrap();
        flusher.abort();
    });
    let (groups, grouped, _) = j.stats();
    assert_eq!(grouped, 16 * 50 + 20);
    assert!(
        groups < grouped,
        "{grouped} submissions took {groups} syncs"
    );
    drop(j);
    let got = replay(&path);
    assert_eq!(got.len(), 16 * 50 + 20);
    assert_eq!(got, *order.lock().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writers that keep coming back fill their groups: with 8 of them, a group
/// waits for all 8. When 7 stop, the one left waits for them once, not again.
#[test]
fn groups_wait_for_their_writers_and_forget_those_that_left() {
    let (dir, path, j, rt) = setup("writers");
    rt.block_on(async {
        let flusher = tokio::spawn({
            let j = j.clone();
            async move { j.run_flusher().await }
        });
        let mut tasks = Vec::new();
        for t in 0..8 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    // Writers arrive at different moments, as clients do.
                    for _ in 0..((t + i) % 4) * 6 {
                        tokio::task::yield_now().await;
                    }
                    j.submit(vec![format!("t{t}-{i}").into_bytes()])
                        .wait()
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (groups, grouped, _) = j.stats();
        assert_eq!(grouped, 8 * 40);
        // The first group cannot know whom to wait for; the rest are full,
        // except around the writers' last requests.
        assert!(
            groups <= 40 + 3,
            "{grouped} submissions took {groups} groups"
        );
        let (_, _, before) = j.stats();
        let lone = tokio::spawn({
            let j = j.clone();
            async move {
                for i in 0..20 {
                    j.submit(vec![format!("lone-{i}").into_bytes()])
                        .wait()
                        .await
                        .unwrap();
                }
            }
        });
        lone.await.unwrap();
        let (_, grouped, after) = j.stats();
        assert_eq!(grouped, 8 * 40 + 20);
        assert!(
            after - before <= 2,
            "the lone writer waited {} times for writers that had left",
            after - before
        );
        flusher.abort();
    });
    drop(j);
    assert_eq!(replay(&path).len(), 8 * 40 + 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_submit_is_durable_at_once_and_oversized_records_fail() {
    let dir = temp("empty");
    let (j, _) = Journal::open(&dir.join("journal.log"), |_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        j.submit(Vec::new()).wait().await.unwrap();
        let big = vec![b'x'; crate::MAX_RECORD + 1];
        let e = j.submit(vec![big]).wait().await.unwrap_err();
        assert!(e.contains("exceeds"), "{e}");
        j.submit(vec![b"after".to_vec()]).wait().await.unwrap();
    });
    drop(j);
    assert_eq!(replay(&dir.join("journal.log")), vec![b"after".to_vec()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rewrite replaces the log with the image, resolves what was pending (the
/// image holds it), and later appends follow the image; a leftover rewrite
/// file from a crash is ignored.
#[test]
fn rewrite_replaces_the_log_and_resolves_what_was_pending() {
    let (dir, path, j, rt) = setup("rewrite");
    rt.block_on(async {
        for r in ["a", "b"] {
            j.submit(vec![r.as_bytes().to_vec()]).wait().await.unwrap();
        }
        assert!(!j.rewrite_due(1 << 20), "below the minimum");
        assert!(j.rewrite_due(1), "grown from nothing");
        // Pending, not written: the image covers it.
        let pending = j.submit(vec![b"c".to_vec()]);
        let mut image = Vec::new();
        crate::frame(b"image", &mut image).unwrap();
        assert_eq!(j.rewrite(&image).unwrap(), image.len() as u64);
        pending.wait().await.unwrap();
        assert!(!j.rewrite_due(1), "not grown since");
        j.submit(vec![b"d".to_vec()]).wait().await.unwrap();
        assert_eq!(j.size(), (image.len() as u64 + 9, 1));
    });
    drop(j);
    // A crash mid-rewrite leaves its file beside the log: not read, removed.
    let leftover = rewrite_path(&path);
    std::fs::write(&leftover, b"half-written").unwrap();
    assert_eq!(replay(&path), vec![b"image".to_vec(), b"d".to_vec()]);
    assert!(!leftover.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A background rewrite: the image of the first bytes is built elsewhere while
/// appends go on; finishing puts the image in place with those appends after
/// it, and later appends follow.
#[test]
fn background_rewrite_keeps_what_was_appended_meanwhile() {
    let (dir, path, j, rt) = setup("background");
    rt.block_on(async {
        for r in ["a", "b"] {
            j.submit(vec![r.as_bytes().to_vec()]).wait().await.unwrap();
        }
        assert!(j.rewrite_finish().is_none(), "nothing started");
        let job = j.rewrite_begin().unwrap();
        assert!(j.rewrite_begin().is_none(), "one at a time");
        assert!(!j.rewrite_due(1), "not while one runs");
        assert!(j.rewrite(b"").is_err(), "no rewrite in place meanwhile");
        // Appended while the image is built: copied after it.
        j.submit(vec![b"c".to_vec()]).wait().await.unwrap();
        let mut seen = Vec::new();
        crate::read_prefix(&job.log, job.upto, |r| seen.push(r.to_vec())).unwrap();
        assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);
        std::fs::write(&job.tmp, {
            let mut image = Vec::new();
            crate::frame(b"ab", &mut image).unwrap();
            image
        })
        .unwrap();
        assert!(j.rewrite_finish().is_none(), "the worker has not finished");
        let (image, _) = Log::open(&job.tmp, |_| {}).unwrap();
        let upto = job.upto;
        job.finish(Ok((image, upto)));
        let (before, after, _) = j.rewrite_finish().unwrap().unwrap();
        assert_eq!((before, after), (27, 19));
        j.submit(vec![b"d".to_vec()]).wait().await.unwrap();
        // A worker that failed leaves the log as it was.
        let job = j.rewrite_begin().unwrap();
        let tmp = job.tmp.clone();
        job.finish(Err("disk full".into()));
        assert_eq!(j.rewrite_finish().unwrap().unwrap_err(), "disk full");
        assert!(!tmp.exists());
        j.submit(vec![b"e".to_vec()]).wait().await.unwrap();
    });
    drop(j);
    let want: Vec<Vec<u8>> = ["ab", "c", "d", "e"]
        .iter()
        .map(|r| r.as_bytes().to_vec())
        .collect();
    assert_eq!(replay(&path), want);
    let _ = std::fs::remove_dir_all(&dir);
}

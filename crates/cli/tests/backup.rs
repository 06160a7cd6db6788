//! `pantstack backup` and `pantstack restore` end to end: the real binary runs the
//! example's local cloud, boto3 (tests/aws/backup.py) writes queues, messages,
//! versioned objects and parameters, the state is backed up while the cloud serves
//! writes, wiped, restored and served again; what clients read and the state's
//! own bytes must be the same. Damaged, truncated and foreign backups are refused.
//! Loopback only; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;
use common::{Cloud, repo_root, text};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The Python with boto3 that .ci/run installs.
fn python_bin() -> PathBuf {
    let dir = std::env::var_os("PANTSTACK_AWS_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            PathBuf::from(home).join(".cache/pantstack-ci/awsclients")
        });
    let py = dir.join("bin/python");
    assert!(
        py.is_file(),
        "boto3 is missing from {}: `bash .ci/run` installs it (or set PANTSTACK_AWS_CLIENTS to a virtualenv with boto3)",
        dir.display()
    );
    py
}

/// tests/aws/backup.py in `mode`, with what `pantstack aws-env` prints.
fn script(c: &Cloud, args: &[&str]) -> Command {
    let o = c.run(&["aws-env", "--env", c.env]);
    assert!(o.status.success(), "aws-env: {}", text(&o.stderr));
    let mut cmd = Command::new(python_bin());
    cmd.arg(repo_root().join("tests/aws/backup.py"))
        .args(args)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for l in text(&o.stdout).lines() {
        if let Some((k, v)) = l.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            cmd.env(k, v);
        }
    }
    cmd
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Every file of a directory tree, relative path → bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = Default::default();
    walk(dir, dir, &mut out);
    out
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn up_again(c: &Cloud) {
    // Not `Cloud::up`: it sets the API token again (a new parameter version).
    let o = c.run(&["up", "--env", c.env, "--detach"]);
    ok(o, "up after the restore");
}

#[test]
fn backup_wipe_restore_round_trip_serves_the_same_bytes() {
    let c = Cloud::new("backup-round-trip", "");
    c.up();
    let base = c.root.parent().unwrap().to_path_buf();
    let expected = base.join("expected.json");
    ok(
        script(&c, &["write", expected.to_str().unwrap()])
            .output()
            .unwrap(),
        "writing the data",
    );
    let before = ok(script(&c, &["dump"]).output().unwrap(), "dump before");
    assert!(before.contains("s3cr3t-value") && before.contains("bk-versioned"));

    // Backed up while a writer puts an object, then sends a message naming it.
    let stop = base.join("stop-churn");
    let churn = script(&c, &["churn", stop.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let first = base.join("backups/first");
    let o = c.run(&["backup", "--env", c.env, first.to_str().unwrap()]);
    let said = ok(o, "backup of the running cloud");
    std::fs::write(&stop, "").unwrap();
    let churned = ok(churn.wait_with_output().unwrap(), "churn");
    assert!(said.contains("running local cloud"), "{said}");
    // The output never shows a secret.
    assert!(!said.contains("s3cr3t"), "{said}");

    // Self-describing, private, checksummed.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(first.join("backup.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "pantstack-backup");
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["environment"], "test");
    assert_eq!(manifest["taken_from"], "running");
    assert!(
        manifest["holds"]["queues"].as_u64().unwrap() >= 4,
        "{manifest:#}"
    );
    assert!(manifest["holds"]["object_versions"].as_u64().unwrap() >= 5);
    assert!(manifest["holds"]["parameters"].as_u64().unwrap() >= 4);
    assert!(
        manifest["files"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("objects/")),
        "the 200 KiB object is a blob file: {manifest:#}"
    );
    assert_eq!(mode(&first), 0o700);
    for (rel, _) in files(&first) {
        assert_eq!(mode(&first.join(&rel)), 0o600, "{rel}");
    }
    let image = std::fs::read(first.join("journal.img")).unwrap();
    assert!(
        !String::from_utf8_lossy(&image).contains("s3cr3t-value"),
        "SecureStrings stay encrypted in the backup"
    );
    assert!(
        !std::fs::read_dir(first.parent().unwrap())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-")),
        "no temporary directory is left"
    );

    // Over a running cloud: refused, nothing touched.
    let o = c.run(&["restore", first.to_str().unwrap(), "--force"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("pantstack down"),
        "{}",
        text(&o.stderr)
    );

    // Wipe.
    ok(c.run(&["down", "--env", c.env]), "down");
    let env_dir = c.root.join(".pantstack/local/test");
    // Existing state is replaced only when told.
    let o = c.run(&["restore", first.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
    std::fs::remove_dir_all(env_dir.join("aws")).unwrap();
    std::fs::remove_file(env_dir.join("state.json")).unwrap();

    let o = c.run(&["restore", first.to_str().unwrap()]);
    let said = ok(o, "restore");
    assert!(said.contains("restored `test`"), "{said}");

    // The restored state is the backed-up state, byte for byte: a backup of it
    // (taken from the state on disk) holds the same image and the same blobs.
    let second = base.join("backups/second");
    let said = ok(
        c.run(&["backup", "--env", c.env, second.to_str().unwrap()]),
        "backup of the stopped cloud",
    );
    assert!(said.contains("stopped local cloud"), "{said}");
    let (a, b) = (files(&first), files(&second));
    for (rel, bytes) in &a {
        if rel == "backup.json" || rel == "state.json" {
            continue;
        }
        assert!(b.get(rel) == Some(bytes), "{rel} differs after the restore");
    }
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same files"
    );
    // The deployments came back (tasks do not: none of them runs here).
    let state: Value =
        serde_json::from_slice(&std::fs::read(env_dir.join("state.json")).unwrap()).unwrap();
    let history = state["units"]["api"]["history"].as_array().unwrap();
    assert!(!history.is_empty(), "{state:#}");
    assert!(
        state["units"]["api"]["tasks"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Served again: clients read the same objects, versions, markers and parameters,
    // get every message back with its id, body and attributes; the one that was in
    // flight comes back once its visibility timeout ends, received twice in all.
    up_again(&c);
    let after = ok(script(&c, &["dump"]).output().unwrap(), "dump after");
    let (bv, av): (Value, Value) = (
        serde_json::from_str(&before).unwrap(),
        serde_json::from_str(&after).unwrap(),
    );
    for b in ["bk-versioned", "bk-plain"] {
        assert_eq!(bv["buckets"][b], av["buckets"][b], "bucket {b}");
    }
    assert_eq!(bv["buckets"]["bk-versioned"]["versioning"], "Enabled");
    assert_eq!(
        bv["buckets"]["bk-versioned"]["markers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for p in ["/bk/plain", "/bk/secret", "/bk/list"] {
        assert_eq!(bv["parameters"][p], av["parameters"][p], "parameter {p}");
    }
    ok(
        script(&c, &["messages", expected.to_str().unwrap()])
            .output()
            .unwrap(),
        "messages after the restore",
    );
    // Taken while writes went on, the backup is one instant: every message's object
    // (put before it) is there, and no message is missing before the last one.
    let checked = ok(script(&c, &["churned"]).output().unwrap(), "churned");
    eprintln!("churn: {} restored: {}", churned.trim(), checked.trim());
    let n: Value = serde_json::from_str(checked.trim()).unwrap();
    assert!(n["messages"].as_u64().unwrap() > 0, "{checked} {churned}");
}

#[test]
fn damaged_truncated_and_foreign_backups_are_refused_naming_the_file() {
    let c = Cloud::new("backup-refusals", "");
    let base = c.root.parent().unwrap().to_path_buf();
    // No state yet: nothing to back up.
    let o = c.run(&["backup", "--env", c.env]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    c.up();
    let good = base.join("good");
    ok(
        c.run(&["backup", "--env", c.env, good.to_str().unwrap()]),
        "backup",
    );
    // Never over an existing directory.
    let o = c.run(&["backup", "--env", c.env, good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o.stderr).contains("exists"), "{}", text(&o.stderr));
    ok(c.run(&["down", "--env", c.env]), "down");

    let copy = |name: &str| -> PathBuf {
        let d = base.join(name);
        common::copy_dir(&good, &d);
        d
    };
    let refused = |dir: &Path, says: &[&str]| {
        let before = files(&c.root.join(".pantstack/local/test/aws"));
        let o = c.run(&["restore", dir.to_str().unwrap(), "--force"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(4), "{err}");
        for s in says {
            assert!(err.contains(s), "{s:?} not in: {err}");
        }
        assert_eq!(
            files(&c.root.join(".pantstack/local/test/aws"))
                .keys()
                .collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "a refused restore changes nothing"
        );
    };

    let truncated = copy("truncated");
    let img = truncated.join("journal.img");
    let len = std::fs::metadata(&img).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    refused(&truncated, &["journal.img", "truncated"]);

    let flipped = copy("flipped");
    let img = flipped.join("journal.img");
    let mut bytes = std::fs::read(&img).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&img, bytes).unwrap();
    refused(&flipped, &["journal.img", "SHA-256"]);

    let foreign = copy("foreign");
    let m = foreign.join("backup.json");
    let t = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"version\": 1,", "\"version\": 99,");
    std::fs::write(&m, t).unwrap();
    refused(&foreign, &["backup.json", "version 99"]);

    let not_one = base.join("not-a-backup");
    std::fs::create_dir_all(&not_one).unwrap();
    refused(&not_one, &["backup.json", "not a pantstack backup"]);

    // The good one still restores over the existing state with --force, which
    // moves that state aside.
    let o = c.run(&["restore", good.to_str().unwrap(), "--force"]);
    assert!(
        !text(&o.stderr).contains("warning"),
        "the key is in place: {}",
        text(&o.stderr)
    );
    let said = ok(o, "restore --force");
    assert!(said.contains("replaced-"), "{said}");
    let aside = std::fs::read_dir(c.root.join(".pantstack/local/test"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("replaced-"))
        .expect("the replaced state moved aside");
    assert!(aside.path().join("aws/journal.log").is_file());

    // After `rotate-key` the key file no longer holds the key an older backup's
    // secrets are sealed under: the restore says so.
    ok(
        c.run(&["secrets", "rotate-key", "--env", c.env]),
        "rotate-key",
    );
    let o = c.run(&["restore", good.to_str().unwrap(), "--force"]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: ") && err.contains("no longer holds"),
        "{err}"
    );

    // Where this project's master key is missing (another machine), the restore
    // says which key the secrets need and where it must go, and creates none.
    let other_keys = base.join("other-keys");
    let o = c
        .command(&["restore", good.to_str().unwrap(), "--force"])
        .env("PANTSTACK_KEY_DIR", &other_keys)
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: ")
            && err.contains("master key of fingerprint")
            && err.contains(&other_keys.display().to_string())
            && err.contains(&c.key_dir().display().to_string()),
        "{err}"
    );
    assert!(!other_keys.exists(), "a restore creates no key");
}

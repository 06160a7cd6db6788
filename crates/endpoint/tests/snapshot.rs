//! `Core::snapshot` and `backup::check_image` without HTTP: a snapshot's image is
//! the state's image at that instant and replays to the same counts; the blobs it
//! names are staged; a journal that stopped fails the snapshot and leaves nothing
//! staged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use pantstack_endpoint::backup::check_image;
use pantstack_endpoint::{Config, Core, USER};
use serde_json::json;
use std::path::{Path, PathBuf};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pantstack-snapshot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn open(dir: &Path) -> Core {
    Core::open(&Config {
        dir: dir.join("aws"),
        key_file: dir.join("keys/test.key"),
        region: "eu-west-1".into(),
        principals: Vec::new(),
        policies: Default::default(),
        compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_the_state_at_that_instant_and_a_stopped_journal_fails_it() {
    let dir = temp("instant");
    let core = open(&dir);
    let url = core
        .sqs("CreateQueue", &json!({ "QueueName": "q" }), USER)
        .await
        .unwrap()["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..5 {
        let body = json!({ "QueueUrl": url, "MessageBody": format!("m{i}") });
        core.sqs("SendMessage", &body, USER).await.unwrap();
    }
    let secret = json!({ "Name": "/p/s", "Value": "hush-hush", "Type": "SecureString" });
    core.ssm("PutParameter", &secret, USER).await.unwrap();
    let plain = json!({ "Name": "/p/s2", "Value": "v", "Type": "String" });
    core.ssm("PutParameter", &plain, USER).await.unwrap();
    core.ensure_bucket("b", true).await.unwrap();

    let staging = dir.join("aws/.stage");
    let snap = core.snapshot(&staging).await.unwrap();
    assert_eq!(
        snap.image,
        core.image().unwrap(),
        "the image of the state as it is"
    );
    assert!(snap.blobs.is_empty(), "no object data yet");
    assert!(snap.key_binding.is_some(), "which key sealed the secrets");
    assert!(
        !String::from_utf8_lossy(&snap.image).contains("hush-hush"),
        "SecureStrings stay sealed"
    );
    let img = dir.join("image");
    std::fs::write(&img, &snap.image).unwrap();
    let c = check_image("eu-west-1", &img).unwrap();
    assert_eq!(
        (c.queues, c.messages, c.parameters, c.buckets),
        (1, 5, 2, 1),
        "{c:?}"
    );
    std::fs::remove_dir_all(&staging).unwrap();

    // A damaged image is refused, naming the file.
    let mut bad = snap.image.clone();
    let n = bad.len();
    bad.truncate(n - 3);
    std::fs::write(&img, &bad).unwrap();
    let e = check_image("eu-west-1", &img).unwrap_err();
    assert!(
        e.contains(&img.display().to_string()) && e.contains("truncated"),
        "{e}"
    );

    // After a failed journal write nothing more counts as durable: no snapshot.
    core.inject_journal_failure();
    let body = json!({ "QueueUrl": url, "MessageBody": "lost" });
    assert!(core.sqs("SendMessage", &body, USER).await.is_err());
    let e = core.snapshot(&staging).await.err().expect("refused");
    assert!(e.contains("journal"), "{e}");
    assert!(!staging.exists(), "nothing staged");
    drop(core);
    let _ = std::fs::remove_dir_all(&dir);
}

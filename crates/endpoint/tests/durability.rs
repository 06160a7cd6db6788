//! What a failed journal write does, with a real full file system (a small tmpfs
//! this test mounts; it needs root, as CI has) and with injected write errors:
//! nothing is shown before it is durable, a failed write is never answered as a
//! success (nor a retry of it), the endpoint stops and says why, and after a
//! restart the state holds everything that was acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::ParameterType;
use pantstack_endpoint::{Config, Core, USER, http};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";

struct Running {
    core: Arc<Core>,
    server: http::Server,
    sqs: aws_sdk_sqs::Client,
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
}

async fn start(state: &Path, keys: &Path) -> Running {
    let deadline = Instant::now() + Duration::from_secs(10);
    let core = loop {
        let config = Config {
            dir: state.to_path_buf(),
            key_file: keys.join("test.key"),
            region: REGION.into(),
            principals: vec![],
            policies: Default::default(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        };
        match Core::open(&config) {
            Ok(c) => break Arc::new(c),
            Err(e) if Instant::now() < deadline && e.contains("in use") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open: {e}"),
        }
    };
    let server = http::serve(core.clone(), 0).await.expect("serve");
    // No SDK retries: every answer is seen as it was given.
    let conf = common::sdk_config(&server.url(), REGION, core.credentials(USER)).await;
    let conf = conf
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    Running {
        sqs: aws_sdk_sqs::Client::new(&conf),
        ssm: aws_sdk_ssm::Client::new(&conf),
        s3,
        core,
        server,
    }
}

async fn stop(r: Running) {
    r.server.shutdown();
    drop(r);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pantstack-durability-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tmpfs of `size` mounted at `at` for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it, which needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Every message body in the queue (received with a long visibility timeout).
async fn bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    loop {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        if r.messages().is_empty() {
            return out;
        }
        for m in r.messages() {
            out.insert(m.body().unwrap().to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_endpoint_and_a_restart_has_what_was_acknowledged() {
    let dir = temp("full");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let fs = Tmpfs::mount(&mnt, "8m");
    let state = mnt.join("aws");
    let keys = dir.join("keys");
    let r = start(&state, &keys).await;
    let url = r
        .sqs
        .create_queue()
        .queue_name("q")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    r.s3.create_bucket().bucket("bkt").send().await.unwrap();

    // Writes of all three services until the disk is full, then some more.
    let (mut messages, mut params, mut objects) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut errored: BTreeSet<String> = BTreeSet::new();
    let mut failures = 0;
    let filler = "x".repeat(3000);
    for i in 0..5000 {
        let body = format!("m{i}-{filler}");
        match r
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body(&body)
            .send()
            .await
        {
            Ok(_) => {
                assert_eq!(
                    failures, 0,
                    "a send was acknowledged after the journal failed"
                );
                messages.insert(body);
            }
            Err(e) => {
                failures += 1;
                errored.insert(body);
                let code = e
                    .as_service_error()
                    .map(|s| s.meta().code().unwrap_or("").to_string());
                assert!(
                    code.as_deref() == Some("ServiceUnavailable"),
                    "a failed write is a 503 that says why: {e:?}"
                );
            }
        }
        let name = format!("/p/{i}");
        match r
            .ssm
            .put_parameter()
            .name(&name)
            .value(&filler)
            .r#type(ParameterType::String)
            .send()
            .await
        {
            Ok(_) => {
                assert_eq!(
                    failures, 0,
                    "a put was acknowledged after the journal failed"
                );
                params.insert(name);
            }
            Err(_) => {
                failures += 1;
                errored.insert(name);
            }
        }
        let key = format!("k{i}");
        match r
            .s3
            .put_object()
            .bucket("bkt")
            .key(&key)
            .body(ByteStream::from(filler.clone().into_bytes()))
            .send()
            .await
        {
            Ok(_) => {
                assert_eq!(
                    failures, 0,
                    "an object was acknowledged after the journal failed"
                );
                objects.insert(key);
            }
            Err(_) => {
                failures += 1;
                errored.insert(key);
            }
        }
        if failures >= 9 {
            break;
        }
    }
    assert!(failures >= 9, "the 8 MiB file system never filled");
    assert!(!messages.is_empty() && !params.is_empty() && !objects.is_empty());

    // Stopped: reads are refused too (memory may hold what is not on disk), and
    // a retry of a failed write is not answered as done.
    let e = r
        .ssm
        .get_parameter()
        .name(params.iter().next().unwrap())
        .send()
        .await;
    assert_eq!(e.unwrap_err().code(), Some("ServiceUnavailable"));
    let e = r.s3.list_objects_v2().bucket("bkt").send().await;
    assert!(e.is_err(), "S3 refused too");
    let failed_param = errored
        .iter()
        .find(|n| n.starts_with("/p/"))
        .unwrap()
        .clone();
    let e = r
        .ssm
        .put_parameter()
        .name(&failed_param)
        .value("retry")
        .r#type(ParameterType::String)
        .send()
        .await;
    assert_eq!(
        e.unwrap_err().code(),
        Some("ServiceUnavailable"),
        "not ParameterAlreadyExists"
    );
    stop(r).await;

    // Space freed; the restart has everything acknowledged.
    fs.grow("64m");
    let r = start(&state, &keys).await;
    let got = bodies(&r.sqs, &url).await;
    for m in &messages {
        assert!(got.contains(m), "acknowledged message lost: {}", &m[..10]);
    }
    for m in got.difference(&messages) {
        assert!(
            errored.contains(m),
            "a message that was never sent: {}",
            &m[..10]
        );
    }
    for p in &params {
        let v = r.ssm.get_parameter().name(p).send().await;
        assert!(v.is_ok(), "acknowledged parameter {p} lost: {v:?}");
    }
    let listed =
        r.s3.list_objects_v2()
            .bucket("bkt")
            .max_keys(1000)
            .send()
            .await
            .unwrap();
    let keys_now: BTreeSet<String> = listed
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_string())
        .collect();
    assert_eq!(
        keys_now, objects,
        "the bucket holds exactly the acknowledged objects"
    );
    for p in errored.iter().filter(|n| n.starts_with("/p/")) {
        let e = r.ssm.get_parameter().name(p).send().await.unwrap_err();
        assert_eq!(
            e.code(),
            Some("ParameterNotFound"),
            "{p} was never acknowledged"
        );
    }
    stop(r).await;
    drop(fs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_write_error_shows_nothing_and_loses_nothing() {
    let dir = temp("inject");
    let (state, keys) = (dir.join("aws"), dir.join("keys"));
    let r = start(&state, &keys).await;
    r.s3.create_bucket().bucket("bkt").send().await.unwrap();
    r.ssm
        .put_parameter()
        .name("/a")
        .value("kept")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    r.s3.put_object()
        .bucket("bkt")
        .key("x")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();

    r.core.inject_journal_failure();
    let e = r
        .ssm
        .put_parameter()
        .name("/b")
        .value("lost")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ServiceUnavailable"), "{e:?}");
    assert!(
        e.message()
            .unwrap_or("")
            .contains("journal could not be written"),
        "{e:?}"
    );
    // Not visible, and the retry is not answered as done.
    let e = r.ssm.get_parameter().name("/b").send().await.unwrap_err();
    assert_eq!(e.code(), Some("ServiceUnavailable"));
    let e = r
        .ssm
        .put_parameter()
        .name("/b")
        .value("lost")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ServiceUnavailable"));
    // A delete and its retry (the SDK's) are not answered 204.
    for _ in 0..2 {
        let d = r.s3.delete_object().bucket("bkt").key("x").send().await;
        assert!(
            d.is_err(),
            "a delete after the failure must not be acknowledged"
        );
    }
    stop(r).await;

    let r = start(&state, &keys).await;
    let a = r
        .ssm
        .get_parameter()
        .name("/a")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(a.parameter().unwrap().value(), Some("kept"));
    let b = r.ssm.get_parameter().name("/b").send().await.unwrap_err();
    assert_eq!(b.code(), Some("ParameterNotFound"));
    let x =
        r.s3.get_object()
            .bucket("bkt")
            .key("x")
            .send()
            .await
            .unwrap();
    assert_eq!(
        x.body.collect().await.unwrap().into_bytes().as_ref(),
        b"kept"
    );
    stop(r).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_stops_the_replay_instead_of_being_skipped() {
    let dir = temp("damaged");
    let (state, keys) = (dir.join("aws"), dir.join("keys"));
    let r = start(&state, &keys).await;
    r.ssm
        .put_parameter()
        .name("/a")
        .value("v")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    stop(r).await;
    // Damage the value's base64 in place (same length, so the frame's length
    // holds; the CRC is recomputed by rewriting the record as the store frames it).
    let log = state.join("journal.log");
    let mut records = Vec::new();
    drop(pantstack_store::Log::open(&log, |rec| records.push(rec.to_vec())).unwrap());
    let text = String::from_utf8(records.pop().unwrap()).unwrap();
    assert!(text.contains("\"value\":\"dg==\""), "{text}");
    let damaged = text.replace("\"value\":\"dg==\"", "\"value\":\"d!==\"");
    let mut framed = Vec::new();
    for r in &records {
        pantstack_store::frame(r, &mut framed).unwrap();
    }
    pantstack_store::frame(damaged.as_bytes(), &mut framed).unwrap();
    std::fs::write(&log, &framed).unwrap();
    let e = Core::open(&Config {
        dir: state.clone(),
        key_file: keys.join("test.key"),
        region: REGION.into(),
        principals: vec![],
        policies: Default::default(),
        compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
    })
    .err()
    .expect("a damaged record must stop the replay");
    assert!(e.contains("record"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CompleteMultipartUpload retried after a restart (its first answer lost with
/// the process) still answers the result it gave: the completed upload is part
/// of the journaled state, as is a suspended bucket's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_upload_answers_its_retry_after_a_restart() {
    let dir = temp("complete-retry");
    let (state, keys) = (dir.join("aws"), dir.join("keys"));
    let r = start(&state, &keys).await;
    r.s3.create_bucket()
        .bucket("bkt")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    r.s3.put_bucket_versioning()
        .bucket("bkt")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id =
        r.s3.create_multipart_upload()
            .bucket("bkt")
            .key("k")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_string();
    let part =
        r.s3.upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let first =
        r.s3.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .multipart_upload(parts.clone())
            .send()
            .await
            .unwrap();
    stop(r).await;
    let r = start(&state, &keys).await;
    let again =
        r.s3.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .multipart_upload(parts)
            .send()
            .await
            .unwrap();
    assert_eq!(again.e_tag(), first.e_tag());
    assert_eq!(again.version_id(), first.version_id());
    let v =
        r.s3.get_bucket_versioning()
            .bucket("bkt")
            .send()
            .await
            .unwrap();
    assert_eq!(
        v.status(),
        Some(&aws_sdk_s3::types::BucketVersioningStatus::Suspended)
    );
    stop(r).await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! Journal compaction through the AWS SDK for Rust: state built with real SDK calls
//! (queues with in-flight messages and receipt handles, FIFO dedup, versioned
//! objects with delete markers, a blob-sized object, an unfinished multipart
//! upload, SecureString history, a FIFO receive by `ReceiveRequestAttemptId`, a
//! queue policy written by AddPermission), the journal compacted several times
//! under churn, more changes after the last compaction, then the endpoint stopped
//! and reopened from its directory: everything must read back as it was, and the
//! handles issued before (receipts, upload ids, dedup ids, the attempt's
//! deliveries) must still work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use pantstack_endpoint::{Config, Core, http};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Running {
    core: Arc<Core>,
    server: http::Server,
    conf: aws_config::SdkConfig,
}

fn config(dir: &Path, compact_min_bytes: u64) -> Config {
    Config {
        dir: dir.join("aws"),
        key_file: dir.join("keys/test.key"),
        region: "eu-west-1".into(),
        principals: vec!["api".into()],
        policies: Default::default(),
        compact_min_bytes,
    }
}

async fn start(dir: &Path, compact_min_bytes: u64) -> Running {
    // The previous endpoint's thread lets go of the state's lock as it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let core = loop {
        match Core::open(&config(dir, compact_min_bytes)) {
            Ok(c) => break Arc::new(c),
            Err(e) if Instant::now() < deadline && e.contains("in use") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open: {e}"),
        }
    };
    let server = http::serve(core.clone(), 0).await.expect("serve");
    let creds = core.credentials("api");
    let conf = common::sdk_config(&server.url(), "eu-west-1", creds).await;
    Running { core, server, conf }
}

async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (String, String, String) {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = a.attributes().unwrap();
    (
        a[&QueueAttributeName::ApproximateNumberOfMessages].clone(),
        a[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible].clone(),
        a[&QueueAttributeName::RedrivePolicy].clone(),
    )
}

/// (key, version id, is a delete marker, size) of every version in the bucket.
async fn versions(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String, bool, i64)> {
    let l = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let mut out: Vec<_> = l
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap().to_string(),
                v.version_id().unwrap().to_string(),
                false,
                v.size().unwrap_or(-1),
            )
        })
        .chain(l.delete_markers().iter().map(|m| {
            (
                m.key().unwrap().to_string(),
                m.version_id().unwrap().to_string(),
                true,
                0,
            )
        }))
        .collect();
    out.sort();
    out
}

async fn history(ssm: &aws_sdk_ssm::Client, name: &str) -> Vec<(i64, String)> {
    ssm.get_parameter_history()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .unwrap()
        .parameters()
        .iter()
        .map(|p| (p.version(), p.value().unwrap().to_string()))
        .collect()
}

fn journal_file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("aws/journal.log"))
        .map(|m| m.len())
        .unwrap_or(0)
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_journal_rebuilds_every_service_exactly() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("pantstack-compaction-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let dir = &dir.0;
    // Small enough that the churn below compacts several times.
    let r = start(dir, 32 * 1024).await;
    let sqs = aws_sdk_sqs::Client::new(&r.conf);
    let s3 = aws_sdk_s3::Client::new(&r.conf);
    let ssm = aws_sdk_ssm::Client::new(&r.conf);

    // SQS: a queue with a DLQ, messages in flight, a FIFO queue with dedup.
    let dlq = sqs.create_queue().queue_name("dlq").send().await.unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(dlq.queue_url().unwrap())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let jobs = sqs
        .create_queue()
        .queue_name("jobs")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":5}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    for i in 0..120 {
        sqs.send_message()
            .queue_url(&jobs)
            .message_body(format!("job-{i}-{}", "x".repeat(100)))
            .send()
            .await
            .unwrap();
    }
    let got = sqs
        .receive_message()
        .queue_url(&jobs)
        .max_number_of_messages(10)
        .visibility_timeout(600)
        .send()
        .await
        .unwrap();
    let receipts: Vec<String> = got
        .messages()
        .iter()
        .map(|m| m.receipt_handle().unwrap().to_string())
        .collect();
    assert_eq!(receipts.len(), 10);
    for r in &receipts[..3] {
        sqs.delete_message()
            .queue_url(&jobs)
            .receipt_handle(r)
            .send()
            .await
            .unwrap();
    }
    let fifo = sqs
        .create_queue()
        .queue_name("orders.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let mut fifo_ids = Vec::new();
    for i in 0..5 {
        let s = sqs
            .send_message()
            .queue_url(&fifo)
            .message_body(format!("order-{i}"))
            .message_group_id("g1")
            .send()
            .await
            .unwrap();
        fifo_ids.push(s.message_id().unwrap().to_string());
    }

    // A FIFO receive with an attempt id (its retry must survive compaction), and
    // a permission on the jobs queue.
    let tries = sqs
        .create_queue()
        .queue_name("tries.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    for g in ["a", "b", "c"] {
        sqs.send_message()
            .queue_url(&tries)
            .message_body(format!("try-{g}"))
            .message_group_id(g)
            .send()
            .await
            .unwrap();
    }
    let receive_attempt = |sqs: aws_sdk_sqs::Client, url: String| async move {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(2)
            .visibility_timeout(600)
            .receive_request_attempt_id("compacted-attempt")
            .send()
            .await
            .unwrap();
        got.messages()
            .iter()
            .map(|m| {
                (
                    m.body().unwrap().to_string(),
                    m.receipt_handle().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let attempt = receive_attempt(sqs.clone(), tries.clone()).await;
    assert_eq!(attempt.len(), 2);
    sqs.add_permission()
        .queue_url(&jobs)
        .label("Partner")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    let jobs_policy = r.core.sqs_policy_of("jobs").expect("a policy");

    // SSM: history and a SecureString.
    for v in ["one", "two"] {
        ssm.put_parameter()
            .name("/app/name")
            .value(v)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
    for i in 0..3 {
        ssm.put_parameter()
            .name("/app/token")
            .value(format!("s3cret-{i}"))
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
    // SSM labels (on versions) and tags (on parameters, from PutParameter too).
    for (version, label) in [(1, "stable"), (2, "prod"), (2, "canary")] {
        ssm.label_parameter_version()
            .name("/app/name")
            .parameter_version(version)
            .labels(label)
            .send()
            .await
            .unwrap();
    }
    let tag = |k: &str, v: &str| {
        aws_sdk_ssm::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .unwrap()
    };
    ssm.add_tags_to_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id("/app/token")
        .tags(tag("team", "payments"))
        .tags(tag("env", ""))
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/app/tagged")
        .value("t")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tags(tag("owner", "api"))
        .send()
        .await
        .unwrap();

    // S3: versions, a delete marker, an object in its own blob, an open upload.
    s3.create_bucket().bucket("data").send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket("data")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let first = s3
        .put_object()
        .bucket("data")
        .key("a.txt")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("data")
        .key("a.txt")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("data")
        .key("a.txt")
        .send()
        .await
        .unwrap();
    let big: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    s3.put_object()
        .bucket("data")
        .key("big.bin")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("data")
        .key("mp.bin")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    let part = s3
        .upload_part()
        .bucket("data")
        .key("mp.bin")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"the only part"))
        .send()
        .await
        .unwrap();
    let part_etag = part.e_tag().unwrap().to_string();
    // Tags, encryption settings and the bucket's configuration.
    s3.put_object()
        .bucket("data")
        .key("tagged.txt")
        .tagging("team=blue")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/data")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .unwrap();
    let policy = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::data/keep/*"}]}"#;
    s3.put_bucket_policy()
        .bucket("data")
        .policy(policy)
        .send()
        .await
        .unwrap();
    s3.put_bucket_lifecycle_configuration()
        .bucket("data")
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::LifecycleRule::builder()
                        .id("old")
                        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
                        .filter(
                            aws_sdk_s3::types::LifecycleRuleFilter::builder()
                                .prefix("old/")
                                .build(),
                        )
                        .noncurrent_version_expiration(
                            aws_sdk_s3::types::NoncurrentVersionExpiration::builder()
                                .noncurrent_days(30)
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Churn: the state stays small while the journal grows.
    let churn = sqs
        .create_queue()
        .queue_name("churn")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let mut rounds = 0;
    while rounds < 150 || r.core.journal_size().1 < 3 {
        rounds += 1;
        assert!(
            rounds <= 600,
            "too few compactions after {rounds} rounds of churn"
        );
        let entries: Vec<_> = (0..10)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body("c".repeat(1000))
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&churn)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        let got = sqs
            .receive_message()
            .queue_url(&churn)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let dels: Vec<_> = got
            .messages()
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{i}"))
                    .receipt_handle(m.receipt_handle().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        if !dels.is_empty() {
            sqs.delete_message_batch()
                .queue_url(&churn)
                .set_entries(Some(dels))
                .send()
                .await
                .unwrap();
        }
    }
    // The churn wrote far more than the journal now holds.
    let written = rounds as u64 * 10 * 1000;
    // (The file itself also holds preallocated zeros past the records.)
    let held = r.core.journal_size().0;
    assert!(journal_file_len(dir) >= held);
    assert!(
        held < written / 4,
        "journal holds {held} bytes after {written} bytes of churn"
    );

    // Changes after the last compaction travel in the log's tail.
    sqs.delete_message()
        .queue_url(&jobs)
        .receipt_handle(&receipts[3])
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/app/name")
        .value("three")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();

    let jobs_counts = counts(&sqs, &jobs).await;
    assert_eq!(jobs_counts.0, "110");
    assert_eq!(jobs_counts.1, "6");
    let fifo_counts = counts_fifo(&sqs, &fifo).await;
    let data_versions = versions(&s3, "data").await;
    assert_eq!(data_versions.len(), 5, "{data_versions:?}");
    let name_history = history(&ssm, "/app/name").await;
    let token_history = history(&ssm, "/app/token").await;
    assert_eq!(name_history.len(), 3);
    assert_eq!(token_history.last().unwrap(), &(3, "s3cret-2".to_string()));

    // Stop, reopen from the directory, compare: first the whole state, as the
    // image a compaction would write, then through the clients.
    let image = r.core.image().unwrap();
    let estimate = r.core.image_estimate() as usize;
    assert!(
        image.len() / 2 <= estimate && estimate <= image.len() * 3 / 2,
        "the image is {} bytes, estimated {estimate}",
        image.len()
    );
    r.server.shutdown();
    drop(r);
    drop((sqs, s3, ssm));
    let r = start(dir, pantstack_endpoint::DEFAULT_COMPACT_MIN).await;
    let sqs = aws_sdk_sqs::Client::new(&r.conf);
    let s3 = aws_sdk_s3::Client::new(&r.conf);
    let ssm = aws_sdk_ssm::Client::new(&r.conf);
    assert!(
        r.core.image().unwrap() == image,
        "the reopened state differs from the state before"
    );

    assert_eq!(counts(&sqs, &jobs).await, jobs_counts);
    assert_eq!(counts_fifo(&sqs, &fifo).await, fifo_counts);
    assert_eq!(r.core.sqs_policy_of("jobs"), Some(jobs_policy));
    // The retried attempt gets the same messages and receipt handles.
    assert_eq!(receive_attempt(sqs.clone(), tries.clone()).await, attempt);
    assert_eq!(versions(&s3, "data").await, data_versions);
    assert_eq!(history(&ssm, "/app/name").await, name_history);
    assert_eq!(history(&ssm, "/app/token").await, token_history);
    let labels: Vec<(i64, Vec<String>)> = ssm
        .get_parameter_history()
        .name("/app/name")
        .send()
        .await
        .unwrap()
        .parameters()
        .iter()
        .map(|p| (p.version(), p.labels().to_vec()))
        .collect();
    assert_eq!(
        labels,
        vec![
            (1, vec!["stable".to_string()]),
            (2, vec!["prod".to_string(), "canary".to_string()]),
            (3, vec![]),
        ]
    );
    let by_label = ssm
        .get_parameter()
        .name("/app/name:prod")
        .send()
        .await
        .unwrap();
    assert_eq!(by_label.parameter().unwrap().value(), Some("two"));
    for (name, want) in [
        ("/app/token", vec![("env", ""), ("team", "payments")]),
        ("/app/tagged", vec![("owner", "api")]),
    ] {
        let got = ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .unwrap();
        let got: Vec<(&str, &str)> = got
            .tag_list()
            .iter()
            .map(|t| (t.key(), t.value()))
            .collect();
        assert_eq!(got, want, "{name}");
    }

    // Receipt handles issued before still work; the in-flight ones stay hidden.
    for r in &receipts[4..] {
        sqs.delete_message()
            .queue_url(&jobs)
            .receipt_handle(r)
            .send()
            .await
            .unwrap();
    }
    let after = counts(&sqs, &jobs).await;
    assert_eq!((after.0.as_str(), after.1.as_str()), ("110", "0"));
    let mut bodies = std::collections::BTreeSet::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&jobs)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            let body = m.body().unwrap();
            let (i, pad) = body
                .strip_prefix("job-")
                .and_then(|b| b.split_once('-'))
                .unwrap();
            assert_eq!(pad, "x".repeat(100), "body intact");
            assert!(bodies.insert(i.parse::<u32>().unwrap()), "{body} twice");
        }
    }
    assert_eq!(
        bodies.len(),
        110,
        "every message not received before is there once"
    );
    assert!(
        bodies.iter().all(|&i| i >= 10),
        "the 10 received before stay received"
    );

    // FIFO: the content-based dedup window survived; order within the group too.
    let again = sqs
        .send_message()
        .queue_url(&fifo)
        .message_body("order-0")
        .message_group_id("g1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.message_id().unwrap(), fifo_ids[0], "deduplicated");
    let got = sqs
        .receive_message()
        .queue_url(&fifo)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let order: Vec<_> = got.messages().iter().map(|m| m.body().unwrap()).collect();
    assert_eq!(
        order,
        ["order-0", "order-1", "order-2", "order-3", "order-4"]
    );

    // S3: the marker hides the key, versions and the blob read back, the upload
    // completes.
    let hidden = s3.get_object().bucket("data").key("a.txt").send().await;
    assert!(hidden.is_err(), "a delete marker is the latest version");
    let tagged = s3
        .get_object()
        .bucket("data")
        .key("tagged.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.tag_count, Some(1));
    assert_eq!(tagged.ssekms_key_id.as_deref(), Some("alias/data"));
    let got_policy = s3.get_bucket_policy().bucket("data").send().await.unwrap();
    assert_eq!(got_policy.policy.as_deref(), Some(policy));
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket("data")
        .send()
        .await
        .unwrap();
    assert_eq!(rules.rules().len(), 1);
    let v1 = s3
        .get_object()
        .bucket("data")
        .key("a.txt")
        .version_id(first.version_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(&v1.body.collect().await.unwrap().into_bytes()[..], b"first");
    let got = s3
        .get_object()
        .bucket("data")
        .key("big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), big);
    s3.complete_multipart_upload()
        .bucket("data")
        .key("mp.bin")
        .upload_id(&upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(&part_etag)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("data")
        .key("mp.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"the only part"
    );

    // SSM: the SecureString decrypts, and the next version number follows on.
    let v = ssm
        .put_parameter()
        .name("/app/token")
        .value("s3cret-3")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(v.version(), 4);
}

async fn counts_fifo(sqs: &aws_sdk_sqs::Client, url: &str) -> (String, String) {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = a.attributes().unwrap();
    (
        a[&QueueAttributeName::ApproximateNumberOfMessages].clone(),
        a[&QueueAttributeName::ContentBasedDeduplication].clone(),
    )
}

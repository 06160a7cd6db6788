//! The endpoint through the AWS SDK for Rust (aws-sdk-sqs, aws-sdk-s3, aws-sdk-ssm),
//! as a service written for AWS would use it: real SDK clients, real HTTP on
//! 127.0.0.1, the endpoint's own credentials. Each test has its own state directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use pantstack_endpoint::{Config, Core, http};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Local {
    _server: http::Server,
    conf: aws_config::SdkConfig,
    dir: PathBuf,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn local(name: &str) -> Local {
    let dir = std::env::temp_dir().join(format!("pantstack-sdk-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = Arc::new(
        Core::open(&Config {
            dir: dir.join("aws"),
            key_file: dir.join("keys/test.key"),
            region: "eu-west-1".into(),
            principals: vec!["api".into()],
            policies: Default::default(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .expect("open"),
    );
    let server = http::serve(core.clone(), 0).await.expect("serve");
    let creds = core.credentials("api");
    let conf = common::sdk_config(&server.url(), "eu-west-1", creds).await;
    Local {
        _server: server,
        conf,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_through_the_rust_sdk() {
    let l = local("sqs").await;
    let sqs = aws_sdk_sqs::Client::new(&l.conf);
    let dlq = sqs.create_queue().queue_name("dlq").send().await.unwrap();
    let dlq_url = dlq.queue_url().unwrap().to_string();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let url = sqs
        .create_queue()
        .queue_name("jobs")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":2}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let sent = sqs
        .send_message()
        .queue_url(&url)
        .message_body("job-1")
        .message_attributes(
            "kind",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("report")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    use md5::Digest;
    let want = pantstack_awsproto::sigv4::hex(&md5::Md5::digest(b"job-1"));
    assert_eq!(sent.md5_of_message_body(), Some(want.as_str()));
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let m = &got.messages()[0];
    assert_eq!(m.body(), Some("job-1"));
    assert_eq!(
        m.message_attributes().unwrap()["kind"].string_value(),
        Some("report")
    );
    assert_eq!(
        m.md5_of_message_attributes(),
        sent.md5_of_message_attributes()
    );
    // Not deleted: visible again after 1 s, then moved to the DLQ on the third receive.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert_eq!(
        again.messages().len(),
        1,
        "re-delivered after visibility expiry"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let none = sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert!(none.messages().is_empty(), "moved to the DLQ");
    let dead = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages()[0].body(), Some("job-1"));

    // Long polling wakes on a send from another client.
    let poller = sqs.clone();
    let u = url.clone();
    let t0 = Instant::now();
    let waiting = tokio::spawn(async move {
        poller
            .receive_message()
            .queue_url(&u)
            .wait_time_seconds(10)
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqs.send_message()
        .queue_url(&url)
        .message_body("wake")
        .send()
        .await
        .unwrap();
    let woke = waiting.await.unwrap();
    assert_eq!(woke.messages()[0].body(), Some("wake"));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(woke.messages()[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    // FIFO: order within a group, deduplication.
    let fifo = sqs
        .create_queue()
        .queue_name("orders.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    for (body, dedup) in [("o1", "d1"), ("o2", "d2"), ("o1-again", "d1")] {
        sqs.send_message()
            .queue_url(&fifo)
            .message_body(body)
            .message_group_id("g")
            .message_deduplication_id(dedup)
            .send()
            .await
            .unwrap();
    }
    let r = sqs
        .receive_message()
        .queue_url(&fifo)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<_> = r.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["o1", "o2"], "ordered, and the duplicate dropped");

    // Errors map to the SDK's modelled exceptions.
    let e = sqs
        .get_queue_url()
        .queue_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_queue_does_not_exist(), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_through_the_rust_sdk() {
    let l = local("s3").await;
    let s3 = aws_sdk_s3::Client::new(&l.conf);
    s3.create_bucket()
        .bucket("results")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The SDK's default: a CRC32 in an aws-chunked trailer.
    let put = s3
        .put_object()
        .bucket("results")
        .key("r/1.json")
        .body(ByteStream::from_static(b"{\"ok\":true}"))
        .send()
        .await
        .unwrap();
    assert!(put.checksum_crc32().is_some(), "{put:?}");
    let put = s3
        .put_object()
        .bucket("results")
        .key("r/2.json")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap();
    assert!(put.checksum_crc32_c().is_some(), "{put:?}");
    let get = s3
        .get_object()
        .bucket("results")
        .key("r/2.json")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(get.checksum_crc32_c(), put.checksum_crc32_c());
    let data = get.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        &data[..],
        b"second",
        "the SDK validated the checksum on read"
    );

    // Pagination with the SDK's paginator.
    for i in 0..5 {
        s3.put_object()
            .bucket("results")
            .key(format!("page/{i}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let mut pages = s3
        .list_objects_v2()
        .bucket("results")
        .prefix("page/")
        .max_keys(2)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(p) = pages.next().await {
        keys.extend(
            p.unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    assert_eq!(keys, ["page/0", "page/1", "page/2", "page/3", "page/4"]);

    // Versioning: a delete marker hides the key; the version stays readable.
    s3.put_bucket_versioning()
        .bucket("results")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v = s3
        .put_object()
        .bucket("results")
        .key("v")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    let marker = s3
        .delete_object()
        .bucket("results")
        .key("v")
        .send()
        .await
        .unwrap();
    assert_eq!(marker.delete_marker(), Some(true));
    let e = s3
        .get_object()
        .bucket("results")
        .key("v")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_no_such_key(), "{e:?}");
    let old = s3
        .get_object()
        .bucket("results")
        .key("v")
        .version_id(v.version_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(&old.body.collect().await.unwrap().into_bytes()[..], b"kept");

    // Multipart with CRC32 per part.
    let up = s3
        .create_multipart_upload()
        .bucket("results")
        .key("big")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part1 = vec![7u8; 5 * 1024 * 1024];
    let mut parts = Vec::new();
    for (n, data) in [(1, part1.clone()), (2, b"end".to_vec())] {
        let p = s3
            .upload_part()
            .bucket("results")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .set_checksum_crc32(p.checksum_crc32().map(str::to_string))
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket("results")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().ends_with("-2\""), "{done:?}");
    let got = s3
        .get_object()
        .bucket("results")
        .key("big")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(5 * 1024 * 1024 + 3));

    // A presigned GET works without the SDK.
    let presigned = s3
        .get_object()
        .bucket("results")
        .key("r/1.json")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60)).unwrap(),
        )
        .await
        .unwrap();
    let uri: hyper::Uri = presigned.uri().parse().unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", uri.port_u16().unwrap())).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        uri.path_and_query().unwrap(),
        uri.authority().unwrap()
    )
    .unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("{\"ok\":true}"),
        "{resp}"
    );

    let e = s3
        .delete_bucket()
        .bucket("results")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
        Some("BucketNotEmpty")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_through_the_rust_sdk() {
    let l = local("ssm").await;
    let ssm = aws_sdk_ssm::Client::new(&l.conf);
    ssm.put_parameter()
        .name("/shop/test/api/API_TOKEN")
        .value("sdk-secret")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/shop/test/api/LEVEL")
        .value("info")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let p = ssm
        .get_parameter()
        .name("/shop/test/api/API_TOKEN")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(p.parameter().unwrap().value(), Some("sdk-secret"));
    let enc = ssm
        .get_parameter()
        .name("/shop/test/api/API_TOKEN")
        .send()
        .await
        .unwrap();
    assert_ne!(enc.parameter().unwrap().value(), Some("sdk-secret"));
    let all = ssm
        .get_parameters_by_path()
        .path("/shop/test")
        .recursive(true)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.parameters().len(), 2);
    let e = ssm
        .get_parameter()
        .name("/shop/test/api/NOPE")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_parameter_not_found(), "{e:?}");
    // The journal holds no plaintext.
    let journal = std::fs::read(l.dir.join("aws/journal.log")).unwrap();
    assert!(!journal.windows(10).any(|w| w == b"sdk-secret"));
}

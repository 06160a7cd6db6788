//! The endpoint through the AWS SDK for Rust (aws-sdk-sqs, aws-sdk-s3, aws-sdk-ssm),
//! as a service written for AWS would use it: real SDK clients, real HTTP on
//! 127.0.0.1, the endpoint's own credentials. Each test has its own state directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use std::time::{Duration, Instant};

use common::{Local, local};

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

fn code<E: aws_sdk_sqs::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_string()
}

/// SQS's message size limit is 1 MiB since 2025-08-04 (AWS "What's new":
/// "Amazon SQS increases maximum message payload size to 1 MiB"; API reference,
/// SetQueueAttributes: MaximumMessageSize 1,024..1,048,576, default 1,048,576;
/// SendMessageBatch: the batch's total at most 1 MiB too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_messages_and_batches_up_to_1_mib() {
    let l = local("sqs-1mib").await;
    let sqs = aws_sdk_sqs::Client::new(&l.conf);
    let url = sqs
        .create_queue()
        .queue_name("big")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let size = |sqs: aws_sdk_sqs::Client, url: String| async move {
        sqs.get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&QueueAttributeName::MaximumMessageSize]
            .clone()
    };
    assert_eq!(size(sqs.clone(), url.clone()).await, "1048576");
    let set = |n: &str| {
        sqs.set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::MaximumMessageSize, n)
            .send()
    };
    let e = set("1048577").await.unwrap_err();
    assert_eq!(code(&e), "InvalidAttributeValue");
    set("2048").await.unwrap();
    assert_eq!(size(sqs.clone(), url.clone()).await, "2048");
    set("1048576").await.unwrap();
    // A 1 MiB body of `"`: 2 MiB once JSON-escaped, more than the old body limit.
    let full = "\"".repeat(1024 * 1024);
    sqs.send_message()
        .queue_url(&url)
        .message_body(&full)
        .send()
        .await
        .unwrap();
    let e = sqs
        .send_message()
        .queue_url(&url)
        .message_body(format!("{full}x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    let batch = |each: usize| {
        let mut b = sqs.send_message_batch().queue_url(&url);
        for i in 0..10 {
            b = b.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body("\"".repeat(each))
                    .build()
                    .unwrap(),
            );
        }
        b.send()
    };
    let r = batch(104_857).await.unwrap();
    assert_eq!((r.successful().len(), r.failed().len()), (10, 0));
    let e = batch(104_858).await.unwrap_err();
    assert_eq!(code(&e), "AWS.SimpleQueueService.BatchRequestTooLong");
    let got = sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert_eq!(got.messages()[0].body().unwrap().len(), 1024 * 1024);
}

/// `MessageAttributeNames`: a name, `All`, `.*`, or a prefix `bar.*` ("You can
/// also use all message attributes starting with a prefix, for example bar.*",
/// SQS API reference, ReceiveMessage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_receive_message_attribute_names_take_prefix_wildcards() {
    let l = local("sqs-attr-prefix").await;
    let sqs = aws_sdk_sqs::Client::new(&l.conf);
    let url = sqs
        .create_queue()
        .queue_name("attrs")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let s = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    let mut send = sqs.send_message().queue_url(&url).message_body("m");
    for n in ["prefix.a", "prefixB", "other", "pre"] {
        send = send.message_attributes(n, s(n));
    }
    send.send().await.unwrap();
    for (want, expect) in [
        (vec!["prefix.*"], vec!["prefix.a", "prefixB"]),
        (vec!["prefix.a"], vec!["prefix.a"]),
        (vec!["All"], vec!["other", "pre", "prefix.a", "prefixB"]),
        (vec![".*"], vec!["other", "pre", "prefix.a", "prefixB"]),
        (vec!["oth.*", "pre"], vec!["other", "pre"]),
    ] {
        let mut r = sqs.receive_message().queue_url(&url).visibility_timeout(0);
        for w in &want {
            r = r.message_attribute_names(*w);
        }
        let got = r.send().await.unwrap();
        let m = &got.messages()[0];
        let mut names: Vec<&str> = m
            .message_attributes()
            .map(|a| a.keys().map(String::as_str).collect())
            .unwrap_or_default();
        names.sort();
        assert_eq!(names, expect, "{want:?}");
    }
}

/// TagQueue past 50 tags fails and applies none of them (SQS developer guide,
/// quotas: 50 tags per queue); `Policy`/`RedrivePolicy` set to "" remove the
/// attribute (SQS API reference, SetQueueAttributes); a RedrivePolicy's DLQ must
/// exist and be of the queue's type (SQS developer guide, dead-letter queues).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_tags_policies_and_redrive_checks() {
    let l = local("sqs-tags-policies").await;
    let sqs = aws_sdk_sqs::Client::new(&l.conf);
    let create = |name: &str| {
        let mut c = sqs.create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            c = c.attributes(QueueAttributeName::FifoQueue, "true");
        }
        c.send()
    };
    let url = create("q").await.unwrap().queue_url().unwrap().to_string();
    let mut tag = sqs.tag_queue().queue_url(&url);
    for i in 0..49 {
        tag = tag.tags(format!("k{i}"), "v");
    }
    tag.send().await.unwrap();
    let e = sqs
        .tag_queue()
        .queue_url(&url)
        .tags("new1", "v")
        .tags("new2", "v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    let tags = sqs.list_queue_tags().queue_url(&url).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().len(),
        49,
        "the refused call applied nothing"
    );
    // Overwriting existing keys does not count as new tags.
    sqs.tag_queue()
        .queue_url(&url)
        .tags("k0", "w")
        .tags("new", "v")
        .send()
        .await
        .unwrap();

    let arn = |name: &str| format!("arn:aws:sqs:eu-west-1:000000000000:{name}");
    let attrs = |sqs: aws_sdk_sqs::Client, url: String| async move {
        sqs.get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes()
            .cloned()
            .unwrap_or_default()
    };
    let dlq_url = create("dlq")
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    create("dlq.fifo").await.unwrap();
    let redrive = |target: &str| {
        format!(
            r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":3}}"#,
            arn(target)
        )
    };
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"sqs:SendMessage","Resource":"*"}]}"#;
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, redrive("dlq"))
        .attributes(QueueAttributeName::Policy, policy)
        .send()
        .await
        .unwrap();
    let a = attrs(sqs.clone(), url.clone()).await;
    assert!(a.contains_key(&QueueAttributeName::RedrivePolicy));
    assert!(a.contains_key(&QueueAttributeName::Policy));
    let sources = sqs
        .list_dead_letter_source_queues()
        .queue_url(&dlq_url)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.queue_urls().len(), 1);
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, "")
        .attributes(QueueAttributeName::Policy, "")
        .send()
        .await
        .unwrap();
    let a = attrs(sqs.clone(), url.clone()).await;
    assert!(!a.contains_key(&QueueAttributeName::RedrivePolicy), "{a:?}");
    assert!(!a.contains_key(&QueueAttributeName::Policy), "{a:?}");
    let sources = sqs
        .list_dead_letter_source_queues()
        .queue_url(&dlq_url)
        .send()
        .await
        .unwrap();
    assert!(sources.queue_urls().is_empty());

    // A standard queue with a FIFO DLQ, a FIFO queue with a standard one, a DLQ
    // that does not exist or is of another account: refused, nothing changed.
    for (queue, target) in [("q", "dlq.fifo"), ("q", "nope")] {
        let e = sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::RedrivePolicy, redrive(target))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidParameterValue", "{queue} → {target}");
    }
    let other_account =
        r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:111111111111:dlq","maxReceiveCount":3}"#;
    let e = sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, other_account)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    let a = attrs(sqs.clone(), url.clone()).await;
    assert!(!a.contains_key(&QueueAttributeName::RedrivePolicy), "{a:?}");
    let e = sqs
        .create_queue()
        .queue_name("src.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::RedrivePolicy, redrive("dlq"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    sqs.create_queue()
        .queue_name("src.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::RedrivePolicy, redrive("dlq.fifo"))
        .send()
        .await
        .unwrap();
}

fn ssm_code<E: aws_sdk_ssm::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_string()
}

/// GetParameter, GetParameters, GetParameterHistory and DeleteParameter take a
/// name or an ARN (SSM API reference, GetParameter: "The name or Amazon Resource
/// Name (ARN) of the parameter"); `parameter/a/b` is `/a/b`, `parameter/top` is
/// the top-level `top`, which is also `/top` (SSM user guide, parameter
/// hierarchies: the leading slash of a name outside a hierarchy is optional).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_parameters_by_arn_and_top_level_names() {
    let l = local("ssm-arn").await;
    let ssm = aws_sdk_ssm::Client::new(&l.conf);
    let arn = |rest: &str| format!("arn:aws:ssm:eu-west-1:000000000000:parameter/{rest}");
    for (name, value) in [("/top", "t"), ("bare", "b"), ("/shop/x", "x")] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let get = |name: String| ssm.get_parameter().name(name).with_decryption(true).send();
    for (name, stored, value) in [
        ("top".to_string(), "/top", "t"),
        ("/bare".to_string(), "bare", "b"),
        (arn("top"), "/top", "t"),
        (arn("bare"), "bare", "b"),
        (arn("shop/x"), "/shop/x", "x"),
    ] {
        let p = get(name.clone()).await.unwrap();
        let p = p.parameter().unwrap();
        assert_eq!((p.name(), p.value()), (Some(stored), Some(value)), "{name}");
    }
    let p = get(arn("shop/x:1")).await.unwrap();
    assert_eq!(p.parameter().unwrap().selector(), Some(":1"));
    // Another region or account is not this store's parameter.
    for other in [
        "arn:aws:ssm:us-east-1:000000000000:parameter/shop/x",
        "arn:aws:ssm:eu-west-1:111111111111:parameter/shop/x",
    ] {
        let e = get(other.to_string())
            .await
            .unwrap_err()
            .into_service_error();
        assert!(e.is_parameter_not_found(), "{other}: {e:?}");
    }
    let many = ssm
        .get_parameters()
        .names(arn("shop/x"))
        .names("top")
        .names("arn:aws:ssm:us-east-1:000000000000:parameter/shop/x")
        .send()
        .await
        .unwrap();
    assert_eq!(many.parameters().len(), 2);
    assert_eq!(
        many.invalid_parameters(),
        ["arn:aws:ssm:us-east-1:000000000000:parameter/shop/x"]
    );
    let h = ssm
        .get_parameter_history()
        .name(arn("shop/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.parameters().len(), 1);
    // `top` exists as `/top`: one parameter, so a second create is refused.
    let e = ssm
        .put_parameter()
        .name("top")
        .value("again")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap_err();
    assert_eq!(ssm_code(&e), "ParameterAlreadyExists");
    ssm.delete_parameter()
        .name(arn("top"))
        .send()
        .await
        .unwrap();
    let e = get("/top".into()).await.unwrap_err().into_service_error();
    assert!(e.is_parameter_not_found(), "{e:?}");
    ssm.delete_parameter().name("/bare").send().await.unwrap();
}

/// ParameterFilters of GetParametersByPath and DescribeParameters, and the
/// legacy Filters of DescribeParameters, as the SSM API reference describes
/// ParameterStringFilter and ParametersFilter (keys, options, limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_parameter_filters() {
    use aws_sdk_ssm::types::{
        ParameterStringFilter, ParameterType, ParametersFilter, ParametersFilterKey,
    };
    let l = local("ssm-filters").await;
    let ssm = aws_sdk_ssm::Client::new(&l.conf);
    for (name, kind, key) in [
        ("/app/a", ParameterType::String, None),
        ("/app/b", ParameterType::SecureString, None),
        ("/app/c", ParameterType::SecureString, Some("alias/custom")),
        ("/app/sub/d", ParameterType::StringList, None),
        ("/other/name-x", ParameterType::String, None),
    ] {
        let mut p = ssm.put_parameter().name(name).value("v").r#type(kind);
        if let Some(k) = key {
            p = p.key_id(k);
        }
        p.send().await.unwrap();
    }
    let f = |key: &str, option: Option<&str>, values: &[&str]| {
        let mut b = ParameterStringFilter::builder().key(key);
        if let Some(o) = option {
            b = b.option(o);
        }
        for v in values {
            b = b.values(*v);
        }
        b.build().unwrap()
    };
    let names = |ps: &[aws_sdk_ssm::types::Parameter]| -> Vec<String> {
        ps.iter().map(|p| p.name().unwrap().to_string()).collect()
    };
    let by_path = |filter: ParameterStringFilter| {
        ssm.get_parameters_by_path()
            .path("/app")
            .recursive(true)
            .parameter_filters(filter)
            .send()
    };
    for (filter, expect) in [
        (f("Type", None, &["SecureString"]), vec!["/app/b", "/app/c"]),
        (
            f("KeyId", Some("Equals"), &["alias/custom"]),
            vec!["/app/c"],
        ),
        (
            f("KeyId", Some("BeginsWith"), &["alias/"]),
            vec!["/app/b", "/app/c"],
        ),
        (
            f("Type", Some("BeginsWith"), &["String"]),
            vec!["/app/a", "/app/sub/d"],
        ),
        (f("Label", None, &["prod"]), vec![]),
    ] {
        let r = by_path(filter.clone()).await.unwrap();
        assert_eq!(names(r.parameters()), expect, "{filter:?}");
    }
    for filter in [
        f("Name", None, &["/app/a"]),
        f("Path", None, &["/app"]),
        f("tag:team", None, &["x"]),
        f("Type", Some("Contains"), &["String"]),
        f("Label", Some("BeginsWith"), &["p"]),
        f("Nope", None, &["x"]),
        f("Type", None, &[]),
    ] {
        let e = by_path(filter.clone()).await.unwrap_err();
        assert_eq!(ssm_code(&e), "ValidationException", "{filter:?}");
    }

    let describe = || ssm.describe_parameters();
    let described =
        |r: &aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput| -> Vec<String> {
            r.parameters()
                .iter()
                .map(|p| p.name().unwrap().to_string())
                .collect()
        };
    let legacy = ParametersFilter::builder()
        .key(ParametersFilterKey::Type)
        .values("StringList")
        .build()
        .unwrap();
    let r = describe().filters(legacy.clone()).send().await.unwrap();
    assert_eq!(described(&r), ["/app/sub/d"]);
    let legacy_key = ParametersFilter::builder()
        .key(ParametersFilterKey::KeyId)
        .values("alias/custom")
        .build()
        .unwrap();
    let r = describe().filters(legacy_key).send().await.unwrap();
    assert_eq!(described(&r), ["/app/c"]);
    for (filter, expect) in [
        (
            f("Name", Some("Contains"), &["name"]),
            vec!["/other/name-x"],
        ),
        (
            f("Name", Some("BeginsWith"), &["/app/s"]),
            vec!["/app/sub/d"],
        ),
        (f("Name", None, &["/app/a"]), vec!["/app/a"]),
        (f("KeyId", None, &["alias/custom"]), vec!["/app/c"]),
        (
            f("Path", Some("Recursive"), &["/app"]),
            vec!["/app/a", "/app/b", "/app/c", "/app/sub/d"],
        ),
        (
            f("Path", None, &["/app"]),
            vec!["/app/a", "/app/b", "/app/c"],
        ),
        (
            f("Tier", None, &["Standard"]),
            vec!["/app/a", "/app/b", "/app/c", "/app/sub/d", "/other/name-x"],
        ),
    ] {
        let r = describe()
            .parameter_filters(filter.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(described(&r), expect, "{filter:?}");
    }
    for filter in [
        f("Label", None, &["x"]),
        f("Nope", None, &["x"]),
        f("Type", Some("Contains"), &["S"]),
        f("Path", Some("Equals"), &["/app"]),
        f("Name", None, &[]),
    ] {
        let e = describe()
            .parameter_filters(filter.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(ssm_code(&e), "ValidationException", "{filter:?}");
    }
    let e = describe()
        .filters(legacy)
        .parameter_filters(f("Type", None, &["String"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(ssm_code(&e), "ValidationException");
    for max in [0, 51] {
        let e = describe().max_results(max).send().await.unwrap_err();
        assert_eq!(ssm_code(&e), "ValidationException", "{max}");
    }
    let e = ssm
        .get_parameters_by_path()
        .path("/app")
        .max_results(11)
        .send()
        .await
        .unwrap_err();
    assert_eq!(ssm_code(&e), "ValidationException");
}

/// The HTTP status of an S3 error.
fn status_of<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// An S3 client on a fresh endpoint with bucket `bkt`.
async fn s3_bucket(name: &str) -> (Local, aws_sdk_s3::Client) {
    let l = local(name).await;
    let s3 = aws_sdk_s3::Client::new(&l.conf);
    s3.create_bucket()
        .bucket("bkt")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    (l, s3)
}

async fn enable_versioning(
    s3: &aws_sdk_s3::Client,
    status: aws_sdk_s3::types::BucketVersioningStatus,
) {
    s3.put_bucket_versioning()
        .bucket("bkt")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(status)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// `aws-chunked` is a transfer detail: S3 strips it from the stored
/// Content-Encoding and keeps the rest (PutObject docs, "Content-Encoding"; the
/// SigV4 streaming docs: "Amazon S3 stores the resulting object without the
/// aws-chunked encoding").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_aws_chunked_is_not_a_stored_content_encoding() {
    let (l, s3) = s3_bucket("chunked-enc").await;
    let file = l.dir.join("body.txt");
    std::fs::write(&file, b"some text to upload in aws-chunked form").unwrap();
    s3.put_object()
        .bucket("bkt")
        .key("plain")
        .body(ByteStream::from_path(&file).await.unwrap())
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_encoding(), None, "{head:?}");
    let get = s3
        .get_object()
        .bucket("bkt")
        .key("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(get.content_encoding(), None);

    s3.put_object()
        .bucket("bkt")
        .key("zipped")
        .content_encoding("gzip")
        .body(ByteStream::from_path(&file).await.unwrap())
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("zipped")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_encoding(), Some("gzip"), "{head:?}");

    // Multipart keeps CreateMultipartUpload's encoding (no aws-chunked there either).
    let up = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .content_encoding("gzip")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let p = s3
        .upload_part()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_path(&file).await.unwrap())
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("mp")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_encoding(), Some("gzip"));
}

/// ListObjectVersions pages: KeyMarker/VersionIdMarker continue after the last
/// entry returned (NextKeyMarker/NextVersionIdMarker name it); versions and
/// delete markers share one order, key ascending then newest first (S3 API
/// reference, ListObjectVersions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_list_object_versions_pages() {
    let (_l, s3) = s3_bucket("versions-pages").await;
    enable_versioning(&s3, aws_sdk_s3::types::BucketVersioningStatus::Enabled).await;
    for (key, n) in [("a", 3), ("b", 1), ("c", 2), ("d/x", 1), ("d/y", 1)] {
        for _ in 0..n {
            s3.put_object()
                .bucket("bkt")
                .key(key)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap();
        }
    }
    s3.delete_object()
        .bucket("bkt")
        .key("b")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("bkt")
        .key("a")
        .send()
        .await
        .unwrap();
    // Everything in one page, in S3's order.
    let all = s3
        .list_object_versions()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    assert_eq!(all.is_truncated(), Some(false));
    let mut everything: Vec<(String, String)> = all
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap().to_string(),
                v.version_id().unwrap().to_string(),
            )
        })
        .chain(all.delete_markers().iter().map(|v| {
            (
                v.key().unwrap().to_string(),
                v.version_id().unwrap().to_string(),
            )
        }))
        .collect();
    assert_eq!(everything.len(), 10);
    everything.sort_by(|x, y| x.0.cmp(&y.0));
    for page_size in [1, 2, 3, 4] {
        let mut seen: Vec<(String, String)> = Vec::new();
        let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
        for round in 0.. {
            assert!(round < 20, "the pages never end (size {page_size})");
            let p = s3
                .list_object_versions()
                .bucket("bkt")
                .max_keys(page_size)
                .set_key_marker(km.clone())
                .set_version_id_marker(vm.clone())
                .send()
                .await
                .unwrap();
            let mut page: Vec<(String, String)> = p
                .versions()
                .iter()
                .map(|v| {
                    (
                        v.key().unwrap().to_string(),
                        v.version_id().unwrap().to_string(),
                    )
                })
                .chain(p.delete_markers().iter().map(|v| {
                    (
                        v.key().unwrap().to_string(),
                        v.version_id().unwrap().to_string(),
                    )
                }))
                .collect();
            assert!(page.len() <= page_size as usize, "{p:?}");
            assert_eq!(p.max_keys(), Some(page_size));
            page.sort_by(|x, y| x.0.cmp(&y.0));
            seen.extend(page);
            if p.is_truncated() != Some(true) {
                assert_eq!(p.next_key_marker(), None);
                break;
            }
            km = p.next_key_marker().map(str::to_string);
            vm = p.next_version_id_marker().map(str::to_string);
            assert!(km.is_some(), "{p:?}");
        }
        let mut want = everything.clone();
        let mut got = seen.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "page size {page_size}");
    }
    // The newest version comes first within a key: a page of 1 from key `a`
    // names the delete marker; the next page is a's newest object version.
    let p = s3
        .list_object_versions()
        .bucket("bkt")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(p.delete_markers().len(), 1);
    assert_eq!(p.next_key_marker(), Some("a"));
    assert_eq!(
        p.next_version_id_marker(),
        p.delete_markers()[0].version_id()
    );
    // A key marker alone starts after every version of that key.
    let p = s3
        .list_object_versions()
        .bucket("bkt")
        .key_marker("a")
        .send()
        .await
        .unwrap();
    assert!(p.versions().iter().all(|v| v.key() != Some("a")), "{p:?}");
    assert_eq!(p.versions().len() + p.delete_markers().len(), 6);
    // A delimiter rolls `d/` up: one entry, and the next page starts after it.
    let p = s3
        .list_object_versions()
        .bucket("bkt")
        .delimiter("/")
        .key_marker("c")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(p.common_prefixes().len(), 1, "{p:?}");
    assert_eq!(p.is_truncated(), Some(false), "{p:?}");
}

/// Conditional writes (S3 user guide, "Add preconditions to S3 operations with
/// conditional requests"): If-Match on PutObject and CompleteMultipartUpload
/// writes only over that ETag (412 otherwise, 404 NoSuchKey when no object);
/// If-None-Match: * only when there is none (412).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_conditional_writes() {
    let (_l, s3) = s3_bucket("cond-writes").await;
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(404));
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
        Some("NoSuchKey")
    );
    let first = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(412));
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
        Some("PreconditionFailed")
    );
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(412));
    // Only `*` is taken; S3 answers an ETag there with 501 NotImplemented
    // (PutObject API reference; S3's answer as aws/aws-sdk-ruby#3144 shows it).
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .if_none_match(first.e_tag().unwrap())
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(501));
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"one");
    s3.put_object()
        .bucket("bkt")
        .key("k")
        .if_match(first.e_tag().unwrap())
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"two");

    // CompleteMultipartUpload checks the key as it is when it completes.
    let complete = |id: String, etag: String| {
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .parts(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(1)
                            .e_tag(etag)
                            .build(),
                    )
                    .build(),
            )
    };
    let mut uploads = Vec::new();
    for _ in 0..3 {
        let id = s3
            .create_multipart_upload()
            .bucket("bkt")
            .key("k")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_string();
        let p = s3
            .upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"multi"))
            .send()
            .await
            .unwrap();
        uploads.push((id, p.e_tag().unwrap().to_string()));
    }
    let e = complete(uploads[0].0.clone(), uploads[0].1.clone())
        .if_none_match("*")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(412), "{e:?}");
    let e = complete(uploads[0].0.clone(), uploads[0].1.clone())
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(412), "{e:?}");
    let current = s3
        .head_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    let done = complete(uploads[0].0.clone(), uploads[0].1.clone())
        .if_match(current.e_tag().unwrap())
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().ends_with("-1\""));
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"multi"
    );
    // The upload a failed condition refused is still there to complete.
    s3.delete_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    let e = complete(uploads[1].0.clone(), uploads[1].1.clone())
        .if_match(current.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(404), "{e:?}");
    complete(uploads[1].0.clone(), uploads[1].1.clone())
        .if_none_match("*")
        .send()
        .await
        .unwrap();
}

/// A CompleteMultipartUpload retried after it succeeded (its answer lost)
/// answers 200 with the same result, as S3 does for the SDKs' retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_complete_multipart_upload_retry() {
    let (_l, s3) = s3_bucket("complete-retry").await;
    enable_versioning(&s3, aws_sdk_s3::types::BucketVersioningStatus::Enabled).await;
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let p = s3
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"multi"))
        .send()
        .await
        .unwrap();
    let complete = || {
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .if_none_match("*")
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .parts(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(1)
                            .e_tag(p.e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
    };
    let first = complete().await.unwrap();
    let again = complete().await.unwrap();
    assert_eq!(again.e_tag(), first.e_tag());
    assert_eq!(again.version_id(), first.version_id());
    assert!(first.version_id().is_some());
    // Still not an upload to add parts to or to list.
    let e = s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
        Some("NoSuchUpload")
    );
}

/// 304 carries ETag and Last-Modified (RFC 9110 §15.4.5, as S3 answers);
/// every S3 answer carries x-amz-request-id and x-amz-id-2; ListBuckets pages
/// with MaxBuckets/Prefix/ContinuationToken; suspending versioning on a bucket
/// that never had it reads back `Suspended` (GetBucketVersioning docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_headers_list_buckets_and_suspended() {
    use aws_sdk_s3::operation::{RequestId, RequestIdExt};
    let (_l, s3) = s3_bucket("misc").await;
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert!(put.request_id().is_some_and(|r| !r.is_empty()), "{put:?}");
    assert!(
        put.extended_request_id().is_some_and(|r| !r.is_empty()),
        "{put:?}"
    );
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_none_match(put.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    let raw = e.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 304);
    assert_eq!(raw.headers().get("etag"), put.e_tag());
    assert!(raw.headers().get("last-modified").is_some());
    assert!(raw.headers().get("x-amz-request-id").is_some());
    let e = s3
        .head_object()
        .bucket("bkt")
        .key("k")
        .if_none_match(put.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    let raw = e.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 304);
    assert_eq!(raw.headers().get("etag"), put.e_tag());
    let e = s3
        .head_object()
        .bucket("bkt")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    let raw = e.raw_response().unwrap();
    assert!(raw.headers().get("x-amz-request-id").is_some());
    assert!(raw.headers().get("x-amz-id-2").is_some());

    for name in ["p-1", "p-2", "p-3", "q-1"] {
        s3.create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let page = s3
        .list_buckets()
        .prefix("p-")
        .max_buckets(2)
        .send()
        .await
        .unwrap();
    let names: Vec<_> = page.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["p-1", "p-2"]);
    assert_eq!(page.prefix(), Some("p-"));
    let token = page.continuation_token().unwrap().to_string();
    let page = s3
        .list_buckets()
        .prefix("p-")
        .max_buckets(2)
        .continuation_token(token)
        .send()
        .await
        .unwrap();
    let names: Vec<_> = page.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["p-3"]);
    assert_eq!(page.continuation_token(), None);
    let all = s3.list_buckets().send().await.unwrap();
    assert_eq!(all.buckets().len(), 5);
    assert_eq!(all.continuation_token(), None);

    enable_versioning(&s3, aws_sdk_s3::types::BucketVersioningStatus::Suspended).await;
    let v = s3
        .get_bucket_versioning()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        v.status(),
        Some(&aws_sdk_s3::types::BucketVersioningStatus::Suspended)
    );
}

//! S3 beyond the data, through the AWS SDK for Rust against the real endpoint:
//! object tagging, server-side encryption headers, UploadPartCopy, bucket
//! policies (stored, checked, and evaluated beside the identity policies: an
//! explicit Deny refuses, an Allow grants), CORS, default encryption, bucket
//! tags and lifecycle rules (stored, and applied on a shortened day). Each
//! behaviour follows the S3 API reference of its operation, cited at the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, CompletedMultipartUpload, CompletedPart,
    CorsConfiguration, CorsRule, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, TaggingDirective, VersioningConfiguration,
};
use pantstack_endpoint::{Config, Core, http, iam::Policy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGION: &str = "eu-west-1";

/// An endpoint where `api` may do anything to bucket `bkt` and `other` nothing
/// (an empty identity policy); `user` is unrestricted.
struct Env {
    server: Option<http::Server>,
    core: Option<Arc<Core>>,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.take();
        self.core.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn open(dir: &Path) -> Result<Core, String> {
    let api = Policy::default().allow(
        &["s3:*"],
        vec!["arn:aws:s3:::bkt".into(), "arn:aws:s3:::bkt/*".into()],
    );
    Core::open(&Config {
        dir: dir.join("aws"),
        key_file: dir.join("keys/test.key"),
        region: REGION.into(),
        principals: vec!["api".into(), "other".into()],
        policies: HashMap::from([
            ("api".to_string(), api),
            ("other".to_string(), Policy::default()),
        ]),
        compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
    })
}

impl Env {
    async fn new(name: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("pantstack-s3cfg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let core = Arc::new(open(&dir).unwrap());
        let server = http::serve(core.clone(), 0).await.unwrap();
        let env = Env {
            server: Some(server),
            core: Some(core),
            dir,
        };
        env.client("user")
            .await
            .create_bucket()
            .bucket("bkt")
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        env
    }

    fn core(&self) -> &Arc<Core> {
        self.core.as_ref().unwrap()
    }

    async fn client(&self, principal: &str) -> aws_sdk_s3::Client {
        let url = self.server.as_ref().unwrap().url();
        let conf = common::sdk_config(&url, REGION, self.core().credentials(principal)).await;
        aws_sdk_s3::Client::new(&conf)
    }

    /// Stops the endpoint and opens the same state again (replaying its journal).
    async fn restart(&mut self) {
        self.server.take();
        self.core.take();
        // The server thread lets go of the state's lock once it has drained.
        let t0 = Instant::now();
        let core = loop {
            match open(&self.dir) {
                Ok(c) => break Arc::new(c),
                Err(e) => {
                    assert!(t0.elapsed() < Duration::from_secs(10), "reopen: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.server = Some(http::serve(core.clone(), 0).await.unwrap());
        self.core = Some(core);
    }
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_string()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

async fn tags_of(
    s3: &aws_sdk_s3::Client,
    key: &str,
    version: Option<&str>,
) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = s3
        .get_object_tagging()
        .bucket("bkt")
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .unwrap()
        .tag_set
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    t.sort();
    t
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// PutObject `x-amz-tagging`, Get/Put/DeleteObjectTagging, `x-amz-tagging-count`
/// on GET, CopyObject's tagging directive (COPY by default, REPLACE takes the
/// header), tags per version, S3's limits (10 tags, unique keys: InvalidTag),
/// and tags surviving a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_tags_are_stored_per_version_and_copied_as_s3_does() {
    let mut env = Env::new("tags").await;
    let s3 = env.client("user").await;
    s3.put_object()
        .bucket("bkt")
        .key("a")
        .tagging("team=blue&stage=test%20run")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(&s3, "a", None).await,
        pairs(&[("stage", "test run"), ("team", "blue")])
    );
    let got = s3.get_object().bucket("bkt").key("a").send().await.unwrap();
    assert_eq!(got.tag_count, Some(2));

    // Copy keeps the tags by default, REPLACE takes the header's.
    s3.copy_object()
        .bucket("bkt")
        .key("b")
        .copy_source("bkt/a")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "b", None).await.len(), 2);
    s3.copy_object()
        .bucket("bkt")
        .key("c")
        .copy_source("bkt/a")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("only=one")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "c", None).await, pairs(&[("only", "one")]));

    // Limits.
    let eleven: Vec<Tag> = (0..11).map(|n| tag(&format!("k{n}"), "v")).collect();
    let e = s3
        .put_object_tagging()
        .bucket("bkt")
        .key("a")
        .tagging(
            Tagging::builder()
                .set_tag_set(Some(eleven))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidTag");
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("d")
        .tagging("k=1&k=2")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidTag");
    let e = s3.head_object().bucket("bkt").key("d").send().await;
    assert!(e.is_err(), "a refused PUT stores nothing");

    // Versioned: tags belong to a version.
    s3.put_bucket_versioning()
        .bucket("bkt")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v1 = s3
        .put_object()
        .bucket("bkt")
        .key("v")
        .tagging("gen=1")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    s3.put_object()
        .bucket("bkt")
        .key("v")
        .body(ByteStream::from_static(b"2"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(&s3, "v", None).await,
        Vec::<(String, String)>::new()
    );
    assert_eq!(tags_of(&s3, "v", Some(&v1)).await, pairs(&[("gen", "1")]));
    let out = s3
        .put_object_tagging()
        .bucket("bkt")
        .key("v")
        .version_id(&v1)
        .tagging(
            Tagging::builder()
                .tag_set(tag("gen", "one"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id.as_deref(), Some(v1.as_str()));
    s3.delete_object_tagging()
        .bucket("bkt")
        .key("a")
        .send()
        .await
        .unwrap();
    assert!(tags_of(&s3, "a", None).await.is_empty());

    env.restart().await;
    let s3 = env.client("user").await;
    assert_eq!(tags_of(&s3, "v", Some(&v1)).await, pairs(&[("gen", "one")]));
    assert_eq!(tags_of(&s3, "c", None).await, pairs(&[("only", "one")]));
    assert!(tags_of(&s3, "a", None).await.is_empty());
}

/// Every object reports its encryption (S3 encrypts every new object with
/// SSE-S3 since January 2023: `x-amz-server-side-encryption: AES256`); SSE-KMS
/// reports its key; a bucket's default encryption applies to writes that ask
/// for none; SSE-C is refused, never silently ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_encryption_is_accepted_and_reported() {
    let mut env = Env::new("sse").await;
    let s3 = env.client("user").await;
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("plain")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.server_side_encryption,
        Some(ServerSideEncryption::Aes256)
    );
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption,
        Some(ServerSideEncryption::Aes256)
    );

    let put = s3
        .put_object()
        .bucket("bkt")
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/app")
        .bucket_key_enabled(true)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.server_side_encryption,
        Some(ServerSideEncryption::AwsKms)
    );
    assert_eq!(put.ssekms_key_id.as_deref(), Some("alias/app"));
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("kms")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.server_side_encryption,
        Some(ServerSideEncryption::AwsKms)
    );
    assert_eq!(got.ssekms_key_id.as_deref(), Some("alias/app"));
    assert_eq!(got.bucket_key_enabled, Some(true));

    // A KMS key with AES256 is refused.
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("bad")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .ssekms_key_id("alias/app")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");
    // SSE-C is not served: refused.
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("ssec")
        .sse_customer_algorithm("AES256")
        .sse_customer_key("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
        .sse_customer_key_md5("ts/kIVFLVmAOWa4WZH0rLQ==")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert!(e.is_err(), "SSE-C must be refused");

    // Default encryption: AES256 until set; then new writes take it.
    let enc = s3
        .get_bucket_encryption()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration.unwrap().rules[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default
            .as_ref()
            .unwrap()
            .sse_algorithm,
        ServerSideEncryption::Aes256
    );
    s3.put_bucket_encryption()
        .bucket("bkt")
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::AwsKms)
                                .kms_master_key_id("arn:aws:kms:eu-west-1:000000000000:key/k1")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("defaulted")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.server_side_encryption,
        Some(ServerSideEncryption::AwsKms)
    );
    assert_eq!(
        put.ssekms_key_id.as_deref(),
        Some("arn:aws:kms:eu-west-1:000000000000:key/k1")
    );

    env.restart().await;
    let s3 = env.client("user").await;
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("defaulted")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption,
        Some(ServerSideEncryption::AwsKms)
    );
    let enc = s3
        .get_bucket_encryption()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration.unwrap().rules[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default
            .as_ref()
            .unwrap()
            .kms_master_key_id
            .as_deref(),
        Some("arn:aws:kms:eu-west-1:000000000000:key/k1")
    );
    s3.delete_bucket_encryption()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("after")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.server_side_encryption,
        Some(ServerSideEncryption::Aes256)
    );
}

/// UploadPartCopy: parts copied from an existing object, whole or by
/// `x-amz-copy-source-range`, complete into an object with exactly those bytes;
/// a range past the source's end is InvalidArgument (as S3 answers it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_builds_an_object_from_ranges_of_another() {
    let env = Env::new("partcopy").await;
    let s3 = env.client("user").await;
    let data: Vec<u8> = (0..(6 * 1024 * 1024 + 123))
        .map(|i| (i % 251) as u8)
        .collect();
    s3.put_object()
        .bucket("bkt")
        .key("src")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let up = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("dst")
        .send()
        .await
        .unwrap();
    let id = up.upload_id.unwrap();
    let split = 5 * 1024 * 1024;
    let mut parts = Vec::new();
    for (n, range) in [
        (1, format!("bytes=0-{}", split - 1)),
        (2, format!("bytes={split}-{}", data.len() - 1)),
    ] {
        let out = s3
            .upload_part_copy()
            .bucket("bkt")
            .key("dst")
            .upload_id(&id)
            .part_number(n)
            .copy_source("bkt/src")
            .copy_source_range(range)
            .send()
            .await
            .unwrap();
        let etag = out.copy_part_result.unwrap().e_tag.unwrap();
        parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    let e = s3
        .upload_part_copy()
        .bucket("bkt")
        .key("dst")
        .upload_id(&id)
        .part_number(3)
        .copy_source("bkt/src")
        .copy_source_range(format!("bytes=0-{}", data.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("dst")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("dst")
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.len(), data.len());
    assert!(
        body[..] == data[..],
        "the copied object differs from its source"
    );
}

/// Bucket policies: a document S3 would refuse is MalformedPolicy; a stored one
/// reads back as given and survives a restart; an explicit Deny refuses even an
/// unrestricted caller; an Allow naming a principal lets it do exactly what the
/// statement lists (within one account, either policy's Allow suffices).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_policies_are_checked_stored_and_enforced() {
    let mut env = Env::new("policy").await;
    let user = env.client("user").await;
    let e = user
        .get_bucket_policy()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchBucketPolicy");
    for bad in [
        "not json",
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::someone-elses"}]}"#,
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"sqs:*","Resource":"arn:aws:s3:::bkt"}]}"#,
    ] {
        let e = user
            .put_bucket_policy()
            .bucket("bkt")
            .policy(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), "MalformedPolicy", "{bad}");
    }
    user.put_object()
        .bucket("bkt")
        .key("locked/a")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    user.put_object()
        .bucket("bkt")
        .key("open/a")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let other = env.client("other").await;
    let e = other
        .get_object()
        .bucket("bkt")
        .key("open/a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "AccessDenied",
        "no policy allows it yet"
    );

    let doc = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"NoDeletes","Effect":"Deny","Principal":"*","Action":"s3:DeleteObject*","Resource":"arn:aws:s3:::bkt/locked/*"},
        {"Sid":"OtherReads","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/other"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/open/*"},
        {"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::bkt","arn:aws:s3:::bkt/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}
    ]}"#;
    user.put_bucket_policy()
        .bucket("bkt")
        .policy(doc)
        .send()
        .await
        .unwrap();
    let got = user.get_bucket_policy().bucket("bkt").send().await.unwrap();
    assert_eq!(got.policy.as_deref(), Some(doc));

    env.restart().await;
    let user = env.client("user").await;
    let api = env.client("api").await;
    let other = env.client("other").await;
    for (who, c) in [("user", &user), ("api", &api)] {
        let e = c
            .delete_object()
            .bucket("bkt")
            .key("locked/a")
            .send()
            .await
            .unwrap_err();
        let e = e.into_service_error();
        assert_eq!(code(&e), "AccessDenied", "{who}");
        assert!(
            e.message().unwrap_or_default().contains("explicit deny"),
            "{who}: {e:?}"
        );
    }
    api.delete_object()
        .bucket("bkt")
        .key("open/a")
        .send()
        .await
        .unwrap();
    user.put_object()
        .bucket("bkt")
        .key("open/a")
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap();
    let got = other
        .get_object()
        .bucket("bkt")
        .key("open/a")
        .send()
        .await
        .unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"y");
    let e = other
        .get_object()
        .bucket("bkt")
        .key("locked/a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "AccessDenied",
        "only open/* is allowed"
    );
    let e = other
        .put_object()
        .bucket("bkt")
        .key("open/b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "AccessDenied",
        "only GetObject is allowed"
    );
    // A policy denying everything locks out reads and writes, but a person can
    // still replace or delete it (as the account's root user can on AWS).
    user.put_bucket_policy()
        .bucket("bkt")
        .policy(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::bkt","arn:aws:s3:::bkt/*"]}]}"#)
        .send()
        .await
        .unwrap();
    let e = user
        .get_object()
        .bucket("bkt")
        .key("open/a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    let e = api
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    user.delete_bucket_policy()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    user.get_object()
        .bucket("bkt")
        .key("open/a")
        .send()
        .await
        .unwrap();
    user.delete_object()
        .bucket("bkt")
        .key("locked/a")
        .send()
        .await
        .unwrap();
}

/// CORS configuration: stored as given, read back, deleted; S3's checks
/// (methods GET/PUT/HEAD/POST/DELETE, one wildcard per origin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_and_bucket_tags_are_stored_configuration() {
    let env = Env::new("cors").await;
    let s3 = env.client("user").await;
    let e = s3.get_bucket_cors().bucket("bkt").send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchCORSConfiguration");
    let rule = CorsRule::builder()
        .id("web")
        .allowed_methods("GET")
        .allowed_methods("PUT")
        .allowed_origins("https://*.example.com")
        .allowed_headers("*")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()
        .unwrap();
    s3.put_bucket_cors()
        .bucket("bkt")
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(rule.clone())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_cors().bucket("bkt").send().await.unwrap();
    assert_eq!(got.cors_rules, Some(vec![rule]));
    let bad = CorsRule::builder()
        .allowed_methods("PATCH")
        .allowed_origins("*")
        .build()
        .unwrap();
    let e = s3
        .put_bucket_cors()
        .bucket("bkt")
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(bad)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidRequest");
    s3.delete_bucket_cors().bucket("bkt").send().await.unwrap();
    let e = s3.get_bucket_cors().bucket("bkt").send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchCORSConfiguration");

    let e = s3
        .get_bucket_tagging()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchTagSet");
    s3.put_bucket_tagging()
        .bucket("bkt")
        .tagging(
            Tagging::builder()
                .tag_set(tag("cost-center", "42"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_tagging().bucket("bkt").send().await.unwrap();
    assert_eq!(got.tag_set, vec![tag("cost-center", "42")]);
}

/// Lifecycle rules: checked as S3 checks them, read back, and applied. With a
/// one-second day, an object under an expiring prefix gets a delete marker
/// after its day (rounded up to the next "midnight"), and the noncurrent
/// version goes one day after that; other keys stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_rules_are_checked_stored_and_applied() {
    let env = Env::new("lifecycle").await;
    let s3 = env.client("user").await;
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "NoSuchLifecycleConfiguration"
    );
    let rule = |id: &str, days: i32| {
        LifecycleRule::builder()
            .id(id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
            .expiration(LifecycleExpiration::builder().days(days).build())
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(1)
                    .build(),
            )
            .build()
            .unwrap()
    };
    let e = s3
        .put_bucket_lifecycle_configuration()
        .bucket("bkt")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule("zero", 0))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");

    s3.put_bucket_versioning()
        .bucket("bkt")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    env.core().set_lifecycle_day(Duration::from_secs(1));
    for key in ["tmp/a", "keep/a"] {
        s3.put_object()
            .bucket("bkt")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    s3.put_bucket_lifecycle_configuration()
        .bucket("bkt")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule("tmp", 1))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.rules, Some(vec![rule("tmp", 1)]));

    // Expiration: a delete marker on tmp/a within two "days" and a pass.
    let t0 = Instant::now();
    loop {
        let gone = s3
            .head_object()
            .bucket("bkt")
            .key("tmp/a")
            .send()
            .await
            .is_err();
        if gone {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "tmp/a never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then the version under the marker, one day after it became noncurrent;
    // the marker, the only version left, stays (no ExpiredObjectDeleteMarker).
    loop {
        let listed = s3
            .list_object_versions()
            .bucket("bkt")
            .prefix("tmp/")
            .send()
            .await
            .unwrap();
        if listed.versions.unwrap_or_default().is_empty() {
            assert_eq!(listed.delete_markers.unwrap_or_default().len(), 1);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the noncurrent version stayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s3.head_object()
        .bucket("bkt")
        .key("keep/a")
        .send()
        .await
        .unwrap();
    s3.delete_bucket_lifecycle()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "NoSuchLifecycleConfiguration"
    );
}

/// One HTTP/1.1 exchange on loopback: (status, lower-case headers).
async fn raw(port: u16, request: String) -> (u16, Vec<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// CORS applied as S3 applies it: a browser's preflight (unsigned `OPTIONS`)
/// is answered from the first matching rule, or refused with 403 when no rule
/// allows the origin, method or headers, or the bucket has no configuration;
/// the request itself carries `Access-Control-Allow-Origin`. An origin that is
/// not a loopback page is refused whatever the configuration says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_and_responses_follow_the_bucket_configuration() {
    let env = Env::new("cors-applied").await;
    let s3 = env.client("user").await;
    let port = env
        .core()
        .base_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let preflight = |origin: &str, method: &str, headers: &str| {
        format!(
            "OPTIONS /bkt/photo.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: {headers}\r\nConnection: close\r\n\r\n"
        )
    };
    let local = "http://localhost:3000";
    let (status, _) = raw(port, preflight(local, "PUT", "content-type")).await;
    assert_eq!(status, 403, "no CORS configuration yet");
    s3.put_bucket_cors()
        .bucket("bkt")
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(
                    CorsRule::builder()
                        .allowed_origins("http://localhost:*")
                        .allowed_methods("GET")
                        .allowed_methods("PUT")
                        .allowed_headers("content-*")
                        .expose_headers("ETag")
                        .max_age_seconds(300)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (status, h) = raw(port, preflight(local, "PUT", "Content-Type")).await;
    assert_eq!(status, 200, "{h:?}");
    assert_eq!(header(&h, "access-control-allow-origin"), Some(local));
    assert_eq!(header(&h, "access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        header(&h, "access-control-allow-headers"),
        Some("Content-Type")
    );
    assert_eq!(header(&h, "access-control-max-age"), Some("300"));
    for (method, headers) in [("DELETE", "content-type"), ("PUT", "x-amz-meta-a")] {
        let (status, h) = raw(port, preflight(local, method, headers)).await;
        assert_eq!(status, 403, "{method} {headers}: {h:?}");
        assert!(header(&h, "access-control-allow-origin").is_none());
    }
    let (status, _) = raw(port, preflight("http://evil.example", "GET", "")).await;
    assert_eq!(
        status, 403,
        "a page of another site never reaches the endpoint"
    );

    // The request itself (a presigned GET, as a browser page would make it).
    s3.put_object()
        .bucket("bkt")
        .key("photo.jpg")
        .body(ByteStream::from_static(b"jpeg"))
        .send()
        .await
        .unwrap();
    let url = s3
        .get_object()
        .bucket("bkt")
        .key("photo.jpg")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60)).unwrap(),
        )
        .await
        .unwrap();
    let path = url
        .uri()
        .split_once(&format!(":{port}"))
        .unwrap()
        .1
        .to_string();
    let (status, h) = raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {local}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{h:?}");
    assert_eq!(header(&h, "access-control-allow-origin"), Some(local));
    assert_eq!(header(&h, "access-control-expose-headers"), Some("ETag"));
}

/// What an outside attacker found, each checked against S3's documented
/// answer: a refused write with a body leaves no half-read connection behind
/// (a client without retries sees every answer); SSE-C parameters on reads and
/// parts are `InvalidRequest` (no object here is SSE-C encrypted); unknown copy
/// directives are `InvalidArgument`; parts report their upload's encryption;
/// policies the local cloud would evaluate differently from AWS (condition keys
/// it does not model) or that S3 refuses are `MalformedPolicy`; lifecycle
/// filters with two conditions outside `And` are `MalformedXML`, and a rule
/// put without an ID gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_match_s3_and_keep_connections_usable() {
    let env = Env::new("refusals").await;
    let url = env.server.as_ref().unwrap().url();
    let conf = common::sdk_config(&url, REGION, env.core().credentials("user")).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    );
    for n in 0..40 {
        let e = s3
            .put_object()
            .bucket("bkt")
            .key("k")
            .tagging("a=1&a=2")
            .body(ByteStream::from(vec![7u8; 4096]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), "InvalidTag", "round {n}");
        s3.head_bucket()
            .bucket("bkt")
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {n}: the next request failed: {e:?}"));
    }

    s3.put_object()
        .bucket("bkt")
        .key("a")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("a")
        .sse_customer_algorithm("AES256")
        .sse_customer_key("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
        .sse_customer_key_md5("ts/kIVFLVmAOWa4WZH0rLQ==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidRequest");
    let e = s3
        .copy_object()
        .bucket("bkt")
        .key("b")
        .copy_source("bkt/a")
        .tagging_directive(TaggingDirective::from("BOGUS"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");

    let up = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/mp")
        .send()
        .await
        .unwrap();
    let part = s3
        .upload_part()
        .bucket("bkt")
        .key("mp")
        .upload_id(up.upload_id.as_deref().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        part.server_side_encryption,
        Some(ServerSideEncryption::AwsKms)
    );
    assert_eq!(part.ssekms_key_id.as_deref(), Some("alias/mp"));
    let done = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .upload_id(up.upload_id.as_deref().unwrap())
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag.unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.server_side_encryption,
        Some(ServerSideEncryption::AwsKms)
    );

    for bad in [
        // A key of the request the local cloud does not model.
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::bkt/*","Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}}]}"#,
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::bkt","Foo":1}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"junk"},"Action":"s3:*","Resource":"arn:aws:s3:::bkt"}]}"#,
    ] {
        let e = s3
            .put_bucket_policy()
            .bucket("bkt")
            .policy(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), "MalformedPolicy", "{bad}");
    }
    let huge = format!(
        r#"{{"Statement":[{}]}}"#,
        (0..400)
            .map(|n| format!(r#"{{"Sid":"s{n}","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/x{n}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let e = s3
        .put_bucket_policy()
        .bucket("bkt")
        .policy(huge)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "MalformedPolicy",
        "over 20 KB"
    );

    let two = LifecycleRule::builder()
        .status(ExpirationStatus::Enabled)
        .filter(
            LifecycleRuleFilter::builder()
                .prefix("a/")
                .tag(tag("k", "v"))
                .build(),
        )
        .expiration(LifecycleExpiration::builder().days(3).build())
        .build()
        .unwrap();
    let e = s3
        .put_bucket_lifecycle_configuration()
        .bucket("bkt")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(two)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "MalformedXML");
    let unnamed = LifecycleRule::builder()
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("a/").build())
        .expiration(LifecycleExpiration::builder().days(3).build())
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration()
        .bucket("bkt")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(unnamed)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    assert!(got.rules()[0].id().is_some_and(|id| !id.is_empty()));
}

/// A second attacker's findings, each against S3's documentation: DeleteObjects
/// refuses a denied key as an error of the batch and deletes the others;
/// copying a source's tags needs the tagging permissions; a partial SSE-C set is
/// `InvalidArgument`; `Expires` and `x-amz-website-redirect-location` are kept;
/// policy variables (not substituted locally) are refused; transitions with
/// both Days and Date, or twice to one class, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_copies_and_headers_follow_s3() {
    let env = Env::new("second-pass").await;
    let s3 = env.client("user").await;
    for key in ["a", "secret/x"] {
        s3.put_object()
            .bucket("bkt")
            .key(key)
            .tagging("k=v")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    s3.put_bucket_policy()
        .bucket("bkt")
        .policy(
            r#"{"Statement":[
                {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::bkt/secret/*"},
                {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/other"},"Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::bkt/*"}
            ]}"#,
        )
        .send()
        .await
        .unwrap();
    let out = s3
        .delete_objects()
        .bucket("bkt")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key("a")
                        .build()
                        .unwrap(),
                )
                .objects(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key("secret/x")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["a"]);
    let errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(errors, [("secret/x", "AccessDenied")]);
    s3.head_object()
        .bucket("bkt")
        .key("secret/x")
        .send()
        .await
        .unwrap();

    // `other` may get and put, not read or write tags: a copy that would copy
    // the source's tags is refused; replacing them with none is allowed.
    let other = env.client("other").await;
    let e = other
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/secret/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    other
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/secret/x")
        .tagging_directive(TaggingDirective::Replace)
        .send()
        .await
        .unwrap();

    let e = s3
        .put_object()
        .bucket("bkt")
        .key("c")
        .sse_customer_key("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");

    let expires = aws_sdk_s3::primitives::DateTime::from_secs(1_893_456_000);
    s3.put_object()
        .bucket("bkt")
        .key("page")
        .expires(expires)
        .website_redirect_location("/other")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("page")
        .send()
        .await
        .unwrap();
    assert_eq!(head.website_redirect_location(), Some("/other"));
    assert_eq!(head.expires_string(), Some("Tue, 01 Jan 2030 00:00:00 GMT"));

    let e = s3
        .put_bucket_policy()
        .bucket("bkt")
        .policy(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/${aws:principaltype}/*"}]}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "MalformedPolicy");

    let transition = |days: Option<i32>, class: &str| {
        aws_sdk_s3::types::Transition::builder()
            .set_days(days)
            .set_date(
                days.is_none()
                    .then(|| aws_sdk_s3::primitives::DateTime::from_secs(1_893_456_000)),
            )
            .storage_class(aws_sdk_s3::types::TransitionStorageClass::from(class))
            .build()
    };
    for (what, transitions) in [
        (
            "twice to one class",
            vec![
                transition(Some(30), "GLACIER"),
                transition(Some(60), "GLACIER"),
            ],
        ),
        (
            "days and dates mixed",
            vec![
                transition(Some(30), "GLACIER"),
                transition(None, "DEEP_ARCHIVE"),
            ],
        ),
        (
            "infrequent access before 30 days",
            vec![transition(Some(5), "STANDARD_IA")],
        ),
    ] {
        let rule = LifecycleRule::builder()
            .id("t")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .set_transitions(Some(transitions))
            .build()
            .unwrap();
        let e = s3
            .put_bucket_lifecycle_configuration()
            .bucket("bkt")
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), "InvalidArgument", "{what}");
    }
}

//! GetObject of file-backed objects (over 64 KiB), whose data goes from the
//! object's file to the socket with sendfile, through real clients (the Rust
//! SDK, boto3) and a raw socket: whole objects, ranges (first byte, middle,
//! last, suffix, open-ended, past the end: 416), versions and checksums; an
//! object overwritten and deleted while it is being sent (the bytes are the
//! version that was answered); clients that close mid-body (nothing leaks, the
//! endpoint goes on serving).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;
mod raw;

use aws_sdk_s3::primitives::ByteStream;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

/// `n` bytes that differ with `seed` and with the offset (a shifted or
/// misplaced range shows).
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn sdk(l: &raw::Local) -> aws_sdk_s3::Client {
    let conf = common::sdk_config(&l.server.url(), raw::REGION, l.core.credentials("api")).await;
    let s3 = aws_sdk_s3::Client::new(&conf);
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
    s3
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: &[u8]) -> Option<String> {
    s3.put_object()
        .bucket("bkt")
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap()
        .version_id
}

async fn get(s3: &aws_sdk_s3::Client, key: &str, range: Option<&str>) -> (Vec<u8>, Option<String>) {
    let out = s3
        .get_object()
        .bucket("bkt")
        .key(key)
        .set_range(range.map(str::to_string))
        .send()
        .await
        .unwrap();
    let content_range = out.content_range.clone();
    let body = out.body.collect().await.unwrap().into_bytes().to_vec();
    (body, content_range)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_gets_and_ranges_through_the_sdk() {
    let l = raw::local("sendfile-sdk").await;
    let s3 = sdk(&l).await;
    let n = 24 * MIB + 7;
    let obj = data(n, 1);
    put(&s3, "big", &obj).await;
    let (body, range) = get(&s3, "big", None).await;
    assert_eq!(body.len(), n);
    assert!(body == obj, "the whole object differs");
    assert_eq!(range, None);
    // Twice on the same connections: a body sent from a file leaves the
    // connection ready for the next request.
    let (again, _) = get(&s3, "big", None).await;
    assert!(again == obj);

    for (header, first, last) in [
        ("bytes=0-0".to_string(), 0, 0),
        (
            format!("bytes={}-{}", MIB + 1, 9 * MIB + 3),
            MIB + 1,
            9 * MIB + 3,
        ),
        (format!("bytes={}-{}", n - 1, n - 1), n - 1, n - 1),
        ("bytes=-1000".to_string(), n - 1000, n - 1),
        (format!("bytes={}-", n - 70_000), n - 70_000, n - 1),
        // A last byte past the end is cut to the end.
        (format!("bytes={}-{}", n - 10, n + 100), n - 10, n - 1),
    ] {
        let (body, range) = get(&s3, "big", Some(&header)).await;
        assert_eq!(
            range.as_deref(),
            Some(format!("bytes {first}-{last}/{n}").as_str()),
            "{header}"
        );
        assert!(body == obj[first..=last], "{header}: the bytes differ");
    }
    for header in [format!("bytes={n}-"), format!("bytes={}-{}", n + 5, n + 10)] {
        let e = s3
            .get_object()
            .bucket("bkt")
            .key("big")
            .range(&header)
            .send()
            .await
            .expect_err(&header);
        let raw = e.raw_response().expect("an HTTP answer");
        assert_eq!(raw.status().as_u16(), 416, "{header}");
        assert_eq!(
            e.into_service_error().meta().code(),
            Some("InvalidRange"),
            "{header}"
        );
    }
    // The endpoint still answers on the connections it used.
    let (body, _) = get(&s3, "big", Some("bytes=5-9")).await;
    assert_eq!(body, obj[5..=9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_conditions_and_checksums_decide_as_before() {
    let l = raw::local("sendfile-versions").await;
    let s3 = sdk(&l).await;
    s3.put_bucket_versioning()
        .bucket("bkt")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (a, b) = (data(3 * MIB, 2), data(2 * MIB + 1, 3));
    let va = put(&s3, "k", &a).await.expect("a version id");
    let put_b = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(b.clone()))
        .send()
        .await
        .unwrap();
    let old = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .version_id(&va)
        .send()
        .await
        .unwrap();
    assert_eq!(old.version_id.as_deref(), Some(va.as_str()));
    assert!(old.body.collect().await.unwrap().into_bytes() == a);
    // The SDK checks the object's SHA-256 against the header.
    let new = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(new.checksum_sha256, put_b.checksum_sha256);
    assert!(new.checksum_sha256.is_some());
    assert!(new.body.collect().await.unwrap().into_bytes() == b);
    let etag = put_b.e_tag.unwrap();
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("not modified");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(304));
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_match("\"0123\"")
        .send()
        .await
        .expect_err("precondition");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(412));
    let ok = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_match(&etag)
        .range("bytes=100-199")
        .send()
        .await
        .unwrap();
    assert!(ok.body.collect().await.unwrap().into_bytes() == b[100..200]);
    // Response header overrides change the head only.
    let over = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .response_content_type("text/x-test")
        .response_content_disposition("attachment")
        .send()
        .await
        .unwrap();
    assert_eq!(over.content_type.as_deref(), Some("text/x-test"));
    assert_eq!(over.content_disposition.as_deref(), Some("attachment"));
    assert!(over.body.collect().await.unwrap().into_bytes() == b);
}

/// Sends a GET on a raw socket and reads its head and at least `at_least`
/// bytes of its body: (socket, Content-Length, the body bytes read).
fn start_get(l: &raw::Local, path: &str, at_least: usize) -> (std::net::TcpStream, usize, Vec<u8>) {
    let mut s = l.connect();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&l.signed("s3", "GET", path, &[], b"")).unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let got = s.read(&mut chunk).unwrap();
        assert!(got > 0, "closed before the head");
        buf.extend_from_slice(&chunk[..got]);
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut slots);
        if let httparse::Status::Complete(n) = r.parse(&buf).unwrap() {
            assert_eq!(r.code, Some(200));
            let len: usize = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            let mut body = buf[n..].to_vec();
            while body.len() < at_least {
                let got = s.read(&mut chunk).unwrap();
                assert!(got > 0, "closed inside the body");
                body.extend_from_slice(&chunk[..got]);
            }
            return (s, len, body);
        }
    }
}

fn objects_dir(l: &raw::Local) -> PathBuf {
    l.dir.join("aws/objects")
}

fn files_in(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Waits (10 s at most) for `ok`.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_overwritten_and_deleted_mid_transfer_is_sent_as_answered() {
    let l = raw::local("sendfile-overwrite").await;
    let s3 = sdk(&l).await;
    // Larger than the socket buffers on both sides: the endpoint is still
    // sending when the object changes.
    let n = 48 * MIB;
    let old = data(n, 4);
    put(&s3, "k", &old).await;
    assert_eq!(files_in(&objects_dir(&l)), 1);
    let (mut s, len, mut body) = tokio::task::block_in_place(|| start_get(&l, "/bkt/k", MIB));
    assert_eq!(len, n);
    assert!(body.len() < n / 2, "the transfer is still going");
    // Overwritten: the old file is removed once the new version is durable.
    let new = data(2 * MIB, 5);
    put(&s3, "k", &new).await;
    let (now, _) = get(&s3, "k", None).await;
    assert!(now == new);
    // Deleted: no file is left.
    s3.delete_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        eventually("the object files are removed", || {
            files_in(&objects_dir(&l)) == 0
        })
    });
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    // The answer in progress still carries the version it was answered for.
    tokio::task::block_in_place(|| {
        let mut chunk = vec![0u8; MIB];
        while body.len() < n {
            let got = s.read(&mut chunk).unwrap();
            assert!(got > 0, "closed inside the body at {}", body.len());
            body.extend_from_slice(&chunk[..got]);
        }
    });
    assert_eq!(body.len(), n);
    assert!(body == old, "the bytes sent are not the version answered");
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Descriptors once they have stopped changing (connections closing on the
/// endpoint's side).
fn settled_descriptors() -> usize {
    let mut last = open_descriptors();
    let mut same = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while same < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = open_descriptors();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_closing_mid_body_leave_nothing_open() {
    let l = raw::local("sendfile-close").await;
    let obj = data(32 * MIB, 6);
    tokio::task::block_in_place(|| {
        let r = l.send(&l.signed("s3", "PUT", "/bkt", &[], b""));
        assert_eq!(r.status, 200, "{}", r.body);
        let r = l.send(&l.signed("s3", "PUT", "/bkt/k", &[], &obj));
        assert_eq!(r.status, 200, "{}", r.body);
        let before = settled_descriptors();
        // Closed after part of the body, right after the head, and before
        // reading anything.
        for read in [4 * MIB, 1, 0] {
            if read == 0 {
                let mut s = l.connect();
                s.write_all(&l.signed("s3", "GET", "/bkt/k", &[], b""))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(100));
                drop(s);
            } else {
                let (s, len, _) = start_get(&l, "/bkt/k", read);
                assert_eq!(len, obj.len());
                drop(s);
            }
        }
        eventually("the endpoint closes the connections and the files", || {
            open_descriptors() <= before
        });
        // And serves the object whole afterwards.
        let (mut s, len, mut body) = start_get(&l, "/bkt/k", 0);
        let mut chunk = vec![0u8; MIB];
        while body.len() < len {
            let got = s.read(&mut chunk).unwrap();
            assert!(got > 0);
            body.extend_from_slice(&chunk[..got]);
        }
        assert!(body == obj);
    });
}

/// boto3 (the Python with boto3 that .ci/run installs, or PANTSTACK_AWS_CLIENTS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reads_whole_objects_and_ranges() {
    let dir = std::env::var_os("PANTSTACK_AWS_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/pantstack-ci/awsclients")
        });
    let py = dir.join("bin/python");
    assert!(
        py.is_file(),
        "boto3 is missing from {}: `bash .ci/run` installs it (or set PANTSTACK_AWS_CLIENTS)",
        dir.display()
    );
    let l = raw::local("sendfile-boto3").await;
    let s3 = sdk(&l).await;
    let n = 9 * MIB + 3;
    let obj = data(n, 7);
    put(&s3, "big", &obj).await;
    let script = format!(
        r#"
import boto3, hashlib
s3 = boto3.client("s3")
def get(**kw):
    r = s3.get_object(Bucket="bkt", Key="big", **kw)
    return r, r["Body"].read()
r, b = get()
print("whole", len(b), hashlib.sha256(b).hexdigest())
for rg in ["bytes=0-0", "bytes=4194304-5242879", "bytes={last}-{last}", "bytes=-100"]:
    r, b = get(Range=rg)
    print(rg, r["ContentRange"], hashlib.sha256(b).hexdigest())
try:
    get(Range="bytes={n}-")
    print("no error")
except s3.exceptions.ClientError as e:
    print("past end", e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
print("ok")
"#,
        last = n - 1,
    );
    let creds = l.core.credentials("api");
    let out = tokio::task::block_in_place(|| {
        Command::new(py)
            .args(["-c", &script])
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", &creds.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_key)
            .env("AWS_REGION", raw::REGION)
            .env("AWS_DEFAULT_REGION", raw::REGION)
            .env("AWS_ENDPOINT_URL", l.server.url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .expect("python")
    });
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = |b: &[u8]| pantstack_awsproto::sigv4::sha256_hex(b);
    let mut want = vec![format!("whole {n} {}", sha(&obj))];
    for (rg, first, last) in [
        ("bytes=0-0".to_string(), 0, 0),
        ("bytes=4194304-5242879".to_string(), 4 * MIB, 5 * MIB - 1),
        (format!("bytes={}-{}", n - 1, n - 1), n - 1, n - 1),
        ("bytes=-100".to_string(), n - 100, n - 1),
    ] {
        want.push(format!(
            "{rg} bytes {first}-{last}/{n} {}",
            sha(&obj[first..=last])
        ));
    }
    want.push("past end 416 InvalidRange".into());
    want.push("ok".into());
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want);
}

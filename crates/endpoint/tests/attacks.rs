//! Attacks on the endpoint's authorization with raw, correctly signed requests
//! that no SDK would send: members an action does not have, keys given twice, a
//! queue named by both the path and the body. Each must be refused before any
//! handler runs, and none may reveal another service's data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;
mod raw;

use aws_sdk_s3::error::ProvideErrorMetadata;
use pantstack_endpoint::iam::Policy;
use pantstack_endpoint::{ACCOUNT, USER};
use pantstack_model::iam;
use raw::{REGION, local_with};
use serde_json::json;
use std::collections::HashMap;

fn policies() -> HashMap<String, Policy> {
    let of = |svc: &str| {
        Policy::default()
            .allow(
                iam::QUEUE_ACTIONS,
                vec![format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{svc}-jobs")],
            )
            .allow(
                iam::PARAMETER_ACTIONS,
                vec![
                    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/p/{svc}"),
                    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/p/{svc}/*"),
                ],
            )
    };
    HashMap::from([
        ("api".to_string(), of("api")),
        ("billing".to_string(), of("billing")),
    ])
}

const SECRET: &str = "billing-db-password-8f1c";

/// An endpoint where `billing` owns a SecureString and a queue, `api` its own.
async fn setup(name: &str) -> raw::Local {
    let l = local_with(name, policies()).await;
    for (n, v) in [("/p/billing/DB_PASSWORD", SECRET), ("/p/api/TOKEN", "t")] {
        l.core
            .ssm(
                "PutParameter",
                &json!({"Name": n, "Value": v, "Type": "SecureString"}),
                USER,
            )
            .await
            .unwrap();
    }
    for q in ["api-jobs", "billing-jobs"] {
        l.core.ensure_queue(q, &[]).await.unwrap();
    }
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_or_repeated_members_never_widen_a_units_access_to_parameters() {
    let l = setup("ssm-members").await;
    let ssm = |body: &str, action: &str| l.send(&l.json_as("api", "ssm", action, body));

    // Control: the unit reads its own secret.
    let r = ssm(
        r#"{"Name":"/p/api/TOKEN","WithDecryption":true}"#,
        "GetParameter",
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The review's attack: a `Names` the check used to read, next to the `Name`
    // the handler reads.
    let attacks = [
        (
            "GetParameter",
            r#"{"Name":"/p/billing/DB_PASSWORD","Names":["/p/api/TOKEN"],"WithDecryption":true}"#,
        ),
        (
            "GetParametersByPath",
            r#"{"Path":"/","Recursive":true,"WithDecryption":true,"Names":["/p/api/TOKEN"]}"#,
        ),
        (
            "GetParametersByPath",
            r#"{"Path":"/","Recursive":true,"WithDecryption":true,"Name":"/p/api/TOKEN"}"#,
        ),
        (
            "GetParameter",
            r#"{"Name":"/p/api/TOKEN","Name":"/p/billing/DB_PASSWORD","WithDecryption":true}"#,
        ),
        (
            "GetParameter",
            r#"{"Name":"/p/billing/DB_PASSWORD","WithDecryption":true}"#,
        ),
        (
            "GetParametersByPath",
            r#"{"Path":"/","Recursive":true,"WithDecryption":true}"#,
        ),
        (
            "GetParametersByPath",
            r#"{"Path":"/p","Recursive":true,"WithDecryption":true}"#,
        ),
        (
            "GetParameters",
            r#"{"Names":["/p/api/TOKEN","/p/billing/DB_PASSWORD"],"WithDecryption":true}"#,
        ),
        (
            "GetParameterHistory",
            r#"{"Name":"/p/billing/DB_PASSWORD","WithDecryption":true}"#,
        ),
        ("DescribeParameters", r#"{}"#),
        (
            "GetParameter",
            r#"{"Name":"arn:aws:ssm:eu-west-1:000000000000:parameter/p/billing/DB_PASSWORD","WithDecryption":true}"#,
        ),
    ];
    for (action, body) in attacks {
        let r = ssm(body, action);
        assert_eq!(r.status, 400, "{action} {body}: {}", r.body);
        assert!(
            r.body.contains("SerializationException") || r.body.contains("AccessDenied"),
            "{action} {body}: {}",
            r.body
        );
        assert!(
            !r.body.contains(SECRET),
            "{action} {body} leaked: {}",
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_is_authorized_by_the_member_the_handler_uses() {
    let l = setup("sqs-members").await;
    let base = l.server.url();
    let sqs = |action: &str, body: String| l.send(&l.json_as("api", "sqs", action, &body));

    let r = sqs("GetQueueUrl", json!({"QueueName": "api-jobs"}).to_string());
    assert_eq!(r.status, 200, "{}", r.body);

    // GetQueueUrl of another service's queue: refused, as AWS refuses it without
    // sqs:GetQueueUrl on that queue; with a QueueUrl the check used to read, too.
    for body in [
        json!({"QueueName": "billing-jobs"}),
        json!({"QueueName": "billing-jobs", "QueueUrl": format!("{base}/{ACCOUNT}/api-jobs")}),
    ] {
        let r = sqs("GetQueueUrl", body.to_string());
        assert!(r.status == 400 || r.status == 403, "{body}: {}", r.body);
        assert!(!r.body.contains("billing-jobs\""), "{body}: {}", r.body);
    }
    // SendMessage to another service's queue, by a QueueUrl given twice.
    let r = sqs(
        "SendMessage",
        format!(
            r#"{{"QueueUrl":"{base}/{ACCOUNT}/api-jobs","QueueUrl":"{base}/{ACCOUNT}/billing-jobs","MessageBody":"x"}}"#
        ),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // The query protocol: the queue in the path and another in the form.
    let form = format!(
        "Action=SendMessage&MessageBody=x&QueueUrl={}",
        pantstack_awsproto::sigv4::uri_encode(&format!("{base}/{ACCOUNT}/api-jobs"), false)
    );
    let h = [("content-type", "application/x-www-form-urlencoded")];
    let path = format!("/{ACCOUNT}/billing-jobs");
    let r = l.send(&l.signed_as("api", "sqs", "POST", &path, &h, form.as_bytes()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("InvalidAddress"), "{}", r.body);
    // A form parameter given twice.
    let form = format!(
        "Action=SendMessage&MessageBody=x&QueueUrl={0}&QueueUrl={1}",
        pantstack_awsproto::sigv4::uri_encode(&format!("{base}/{ACCOUNT}/api-jobs"), false),
        pantstack_awsproto::sigv4::uri_encode(&format!("{base}/{ACCOUNT}/billing-jobs"), false)
    );
    let r = l.send(&l.signed_as("api", "sqs", "POST", "/", &h, form.as_bytes()));
    assert_eq!(r.status, 400, "{}", r.body);

    // Nothing reached billing's queue.
    let n = l
        .core
        .sqs(
            "GetQueueAttributes",
            &json!({"QueueUrl": format!("{base}/{ACCOUNT}/billing-jobs"), "AttributeNames": ["ApproximateNumberOfMessages"]}),
            USER,
        )
        .await
        .unwrap();
    assert_eq!(n["Attributes"]["ApproximateNumberOfMessages"], "0", "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_never_deleted_without_s3_delete_object_version() {
    let mut p = policies();
    let api = p.remove("api").unwrap().allow(
        iam::OBJECT_ACTIONS,
        vec!["arn:aws:s3:::api-results/*".into()],
    );
    p.insert("api".into(), api);
    let l = local_with("s3-versions", p).await;
    l.core.ensure_bucket("api-results", true).await.unwrap();
    let conf = |who: &str| {
        let creds = l.core.credentials(who);
        let url = l.server.url();
        async move {
            let c = common::sdk_config(&url, REGION, creds).await;
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&c)
                    .force_path_style(true)
                    .build(),
            )
        }
    };
    let (user, api) = (conf(USER).await, conf("api").await);
    let put = api
        .put_object()
        .bucket("api-results")
        .key("k")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"v1"))
        .send()
        .await
        .unwrap();
    let version = put.version_id().unwrap().to_string();

    // Control: a versioned DeleteObject is refused to the unit.
    let e = api
        .delete_object()
        .bucket("api-results")
        .key("k")
        .version_id(&version)
        .send()
        .await
        .expect_err("DeleteObject with a version id needs s3:DeleteObjectVersion");
    assert_eq!(e.code(), Some("AccessDenied"), "{e:?}");

    // DeleteObjects with a VersionId entry: refused as a whole.
    let id = aws_sdk_s3::types::ObjectIdentifier::builder()
        .key("k")
        .version_id(&version)
        .build()
        .unwrap();
    let r = api
        .delete_objects()
        .bucket("api-results")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(id)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    match r {
        Err(e) => assert_eq!(e.code(), Some("AccessDenied"), "{e:?}"),
        Ok(out) => {
            assert!(out.deleted().is_empty(), "{out:?}");
        }
    }

    // The query parameter spelled with a percent-encoded letter.
    let target = format!("/api-results/k?version%49d={version}");
    let r = l.send(&l.signed_as("api", "s3", "DELETE", &target, &[], b""));
    assert_eq!(r.status, 403, "{}", r.body);

    // The version is still there.
    let got = user
        .get_object()
        .bucket("api-results")
        .key("k")
        .version_id(&version)
        .send()
        .await
        .expect("the version survived every attempt");
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"v1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_of_other_sites_and_rebound_dns_names_are_refused() {
    let l = setup("origins").await;
    l.core.ensure_bucket("api-results", false).await.unwrap();
    let body = br#"{"QueueName":"api-jobs"}"#;
    let sqs_h = [
        ("x-amz-target", "AmazonSQS.GetQueueUrl"),
        ("content-type", "application/x-amz-json-1.0"),
    ];
    let port = l.port();
    // A signed request through a rebound DNS name: refused, on SQS and S3.
    let evil = format!("evil.example:{port}");
    let r = l.send(&l.signed_host("api", &evil, "sqs", "POST", "/", &sqs_h, body));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("loopback"), "{}", r.body);
    let r = l.send(&l.signed_host("api", &evil, "s3", "GET", "/api-results", &[], b""));
    assert_eq!(r.status, 403, "{}", r.body);
    // A page of another site (or an opaque origin): refused.
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1.evil.example:80",
    ] {
        let mut h = sqs_h.to_vec();
        h.push(("origin", origin));
        let r = l.send(&l.signed_as("api", "sqs", "POST", "/", &h, body));
        assert_eq!(r.status, 403, "{origin}: {}", r.body);
    }
    // Loopback names and pages served from them are answered.
    for (host, origin) in [
        (format!("localhost:{port}"), Some("http://localhost:3000")),
        (format!("127.0.0.1:{port}"), Some("http://127.0.0.1:8080")),
        (format!("[::1]:{port}"), None),
        (format!("127.0.0.1:{port}"), None),
    ] {
        let mut h = sqs_h.to_vec();
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        let r = l.send(&l.signed_host("api", &host, "sqs", "POST", "/", &h, body));
        assert_eq!(r.status, 200, "{host} {origin:?}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_signature_version_2_and_week_long_presigned_urls() {
    let l = setup("sigv2").await;
    l.core.ensure_bucket("api-results", false).await.unwrap();
    let access = l.core.credentials("api").access_key;
    let port = l.port();
    let get = |target: &str, auth: Option<&str>| {
        let mut req = format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
        if let Some(a) = auth {
            req.push_str(&format!("authorization: {a}\r\n"));
        }
        req.push_str("content-length: 0\r\n\r\n");
        l.send(req.as_bytes())
    };
    let r = get(
        "/api-results/k",
        Some(&format!("AWS {access}:c2lnbmF0dXJl")),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("InvalidRequest"), "{}", r.body);
    let r = get(
        &format!("/api-results/k?AWSAccessKeyId={access}&Expires=2099999999&Signature=c2ln"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("InvalidRequest"), "{}", r.body);
    let r = get(
        &format!(
            "/api-results/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={access}%2F20261202%2F{REGION}%2Fs3%2Faws4_request&X-Amz-Date=20261202T000000Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
        ),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("AuthorizationQueryParametersError"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_a_nul_byte_is_put_and_deleted_with_the_right_statuses() {
    let l = setup("nul-key").await;
    l.core.ensure_bucket("any-bucket", false).await.unwrap();
    let c = common::sdk_config(&l.server.url(), REGION, l.core.credentials(USER)).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&c)
            .force_path_style(true)
            .build(),
    );
    let key = "a\u{0}b";
    let put = s3
        .put_object()
        .bucket("any-bucket")
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await;
    match put {
        Ok(_) => {
            let del = s3
                .delete_object()
                .bucket("any-bucket")
                .key(key)
                .send()
                .await;
            assert!(del.is_ok(), "a delete that succeeds answers 204: {del:?}");
            let head = s3.head_object().bucket("any-bucket").key(key).send().await;
            assert!(head.is_err(), "deleted");
        }
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(400), "a refused key is a 400: {e:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_routing_and_queue_addresses_are_refused() {
    let l = setup("routing").await;
    let base = l.server.url();
    let body = format!(r#"{{"QueueUrl":"{base}/{ACCOUNT}/api-jobs","MessageBody":"x"}}"#);
    let target = [
        ("x-amz-target", "AmazonSQS.SendMessage"),
        ("content-type", "application/x-amz-json-1.0"),
    ];
    // The JSON protocol with billing's queue in the path and api's in the body.
    let path = format!("/{ACCOUNT}/billing-jobs");
    let r = l.send(&l.signed_as("api", "sqs", "POST", &path, &target, body.as_bytes()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("InvalidAddress"), "{}", r.body);
    // X-Amz-Target and Action= both.
    let r = l.send(&l.signed_as(
        "api",
        "sqs",
        "POST",
        "/?Action=ListQueues",
        &target,
        body.as_bytes(),
    ));
    assert_eq!(r.status, 400, "{}", r.body);
    // X-Amz-Target twice.
    let mut twice = target.to_vec();
    twice.push(("x-amz-target", "AmazonSSM.GetParameter"));
    let r = l.send(&l.signed_as("api", "sqs", "POST", "/", &twice, body.as_bytes()));
    assert_eq!(r.status, 400, "{}", r.body);
    // A QueueUrl whose last segment is in its query or fragment.
    for url in [
        format!("{base}/{ACCOUNT}/billing-jobs?x=/{ACCOUNT}/api-jobs"),
        format!("{base}/{ACCOUNT}/billing-jobs#/{ACCOUNT}/api-jobs"),
        format!("{base}/{ACCOUNT}/api-jobs?b"),
    ] {
        let body = json!({"QueueUrl": url, "MessageBody": "x"}).to_string();
        let r = l.send(&l.json_as("api", "sqs", "SendMessage", &body));
        assert_eq!(r.status, 400, "{url}: {}", r.body);
        assert!(r.body.contains("InvalidAddress"), "{url}: {}", r.body);
    }
    // Host forms a browser cannot send but a rebinding trick might.
    let port = l.port();
    for host in [
        format!("127.0.0.1:{port}@evil.example"),
        "127.0.0.1:abc".to_string(),
        "localhost:99999".to_string(),
    ] {
        let r = l.send(&l.signed_host("api", &host, "sqs", "POST", "/", &target, body.as_bytes()));
        assert_eq!(r.status, 403, "{host}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_request_signed_twice_is_refused() {
    let l = setup("two-auth").await;
    l.core.ensure_bucket("api-results", false).await.unwrap();
    let access = l.core.credentials("api").access_key;
    let target = format!(
        "/api-results/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={access}%2F20261202%2F{REGION}%2Fs3%2Faws4_request&X-Amz-Date=20261202T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
    );
    let r = l.send(&l.signed_as("api", "s3", "GET", &target, &[], b""));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("InvalidArgument"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_id_names_one_upload_of_one_key() {
    let l = setup("upload-key").await;
    l.core.ensure_bucket("any-bucket", false).await.unwrap();
    let c = common::sdk_config(&l.server.url(), REGION, l.core.credentials(USER)).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&c)
            .force_path_style(true)
            .build(),
    );
    let b = "any-bucket";
    let id = s3
        .create_multipart_upload()
        .bucket(b)
        .key("own.bin")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let body = || aws_sdk_s3::primitives::ByteStream::from_static(b"part");
    let e = s3
        .upload_part()
        .bucket(b)
        .key("other.bin")
        .upload_id(&id)
        .part_number(1)
        .body(body())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NoSuchUpload"), "{e:?}");
    let e = s3
        .list_parts()
        .bucket(b)
        .key("other.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NoSuchUpload"), "{e:?}");
    let e = s3
        .abort_multipart_upload()
        .bucket(b)
        .key("other.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NoSuchUpload"), "{e:?}");
    let part = s3
        .upload_part()
        .bucket(b)
        .key("own.bin")
        .upload_id(&id)
        .part_number(1)
        .body(body())
        .send()
        .await
        .unwrap();
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let e = s3
        .complete_multipart_upload()
        .bucket(b)
        .key("zzz.bin")
        .upload_id(&id)
        .multipart_upload(done.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NoSuchUpload"), "{e:?}");
    s3.complete_multipart_upload()
        .bucket(b)
        .key("own.bin")
        .upload_id(&id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    assert!(
        s3.head_object()
            .bucket(b)
            .key("zzz.bin")
            .send()
            .await
            .is_err()
    );
    assert!(
        s3.head_object()
            .bucket(b)
            .key("own.bin")
            .send()
            .await
            .is_ok()
    );
    // WithDecryption is a boolean (a string is a SerializationException on AWS).
    let r = l.send(&l.json_as(
        "api",
        "ssm",
        "GetParameter",
        r#"{"Name":"/p/api/TOKEN","WithDecryption":"true"}"#,
    ));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("SerializationException"), "{}", r.body);
}

/// The same length, other bytes: a request signed for one body and sent with
/// another.
fn swap_body(mut request: Vec<u8>, signed: &[u8], sent: &[u8]) -> Vec<u8> {
    assert_eq!(signed.len(), sent.len());
    let at = request.len() - signed.len();
    assert_eq!(&request[at..], signed);
    request[at..].copy_from_slice(sent);
    request
}

/// A body swapped under a signed `x-amz-content-sha256` is refused, on every
/// service: S3 checks the body against the signed hash (400
/// `XAmzContentSHA256Mismatch`, as S3 answers), and SQS and SSM sign the body's own hash
/// whatever the header claims (`SignatureDoesNotMatch`). Nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_swapped_under_a_signed_payload_hash_is_refused() {
    let l = setup("payload-hash").await;
    l.core.ensure_bucket("api-results", false).await.unwrap();
    // S3 object data: small (inline) and large (its own blob), and a
    // configuration body.
    for (path, signed, sent) in [
        ("/api-results/small", vec![b'a'; 100], vec![b'b'; 100]),
        (
            "/api-results/large",
            vec![b'a'; 200_000],
            vec![b'b'; 200_000],
        ),
        (
            "/api-results/small?tagging",
            b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>".to_vec(),
            b"<Tagging><TagSet><Tag><Key>b</Key><Value>2</Value></Tag></TagSet></Tagging>".to_vec(),
        ),
    ] {
        let req = l.signed_as(USER, "s3", "PUT", path, &[], &signed);
        let r = l.send(&swap_body(req, &signed, &sent));
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.body.contains("XAmzContentSHA256Mismatch"),
            "{path}: {}",
            r.body
        );
        // The signed body itself is accepted.
        let r = l.send(&l.signed_as(USER, "s3", "PUT", path, &[], &signed));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = l.send(&l.signed_as(USER, "s3", "GET", "/api-results/large", &[], b""));
    assert!(
        r.body.starts_with("aaaa"),
        "the swapped body was not stored"
    );
    // SQS and SSM: the header names the signed body, another is sent.
    let create = br#"{"QueueName":"swapped-aa"}"#;
    let other = br#"{"QueueName":"swapped-bb"}"#;
    let sha = pantstack_awsproto::sigv4::sha256_hex(create);
    let h = [
        ("x-amz-target", "AmazonSQS.CreateQueue"),
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amz-content-sha256", sha.as_str()),
    ];
    let req = l.signed_as(USER, "sqs", "POST", "/", &h, create);
    let r = l.send(&swap_body(req, create, other));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("SignatureDoesNotMatch"), "{}", r.body);
    let put = br#"{"Name":"/swap","Value":"aa","Type":"String"}"#;
    let tampered = br#"{"Name":"/swap","Value":"bb","Type":"String"}"#;
    let sha = pantstack_awsproto::sigv4::sha256_hex(put);
    let h = [
        ("x-amz-target", "AmazonSSM.PutParameter"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-content-sha256", sha.as_str()),
    ];
    let req = l.signed_as(USER, "ssm", "POST", "/", &h, put);
    let r = l.send(&swap_body(req, put, tampered));
    assert_ne!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("SignatureDoesNotMatch") || r.body.contains("InvalidSignature"),
        "{}",
        r.body
    );
    // Signed as sent, both are answered.
    let r = l.send(&l.signed_as(USER, "ssm", "POST", "/", &h, put));
    assert_eq!(r.status, 200, "{}", r.body);
}

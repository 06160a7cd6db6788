//! Requests signed by botocore 1.35 (the AWS SDK for Python), captured with a fixed
//! clock: SSM (JSON protocol), SQS (query protocol), S3 (path with encoded
//! characters, query, `x-amz-content-sha256`) and an S3 presigned URL. Our verifier
//! must accept each exactly as sent, and refuse it after any change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use pantstack_awsproto::sigv4::{
    self, Request, SigError, parse, parse_amz_date, sha256_hex, verify,
};

const KEY: &str = "AKIDLOCALTEST00000001";
const SECRET: &str = "local/secret+key/EXAMPLE0000000000000000";

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now() -> i64 {
    parse_amz_date("20261125T180000Z").unwrap_or_default()
}

fn check(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), SigError> {
    let req = Request {
        method,
        path,
        query,
        headers,
    };
    let s = parse(&req)?;
    if s.access_key != KEY {
        return Err(SigError::UnknownKey(s.access_key));
    }
    verify(&req, &s, SECRET, &sha256_hex(body.as_bytes()), now())
}

#[test]
fn ssm_json_request() {
    let body = r#"{"Name": "/shop/test/api/API_TOKEN", "WithDecryption": true}"#;
    let headers = h(&[
        ("Host", "127.0.0.1:4566"),
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", "AmazonSSM.GetParameter"),
        ("X-Amz-Date", "20261125T180000Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST00000001/20261125/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=b9639a00d0bc9ed450da4deef891265169875d4cf62c5afe799592bd4d3f80db",
        ),
    ]);
    assert_eq!(check("POST", "/", "", &headers, body), Ok(()));
    // A changed body, target or host is refused.
    assert_eq!(
        check(
            "POST",
            "/",
            "",
            &headers,
            &body.replace("API_TOKEN", "OTHER")
        ),
        Err(SigError::Mismatch)
    );
    let mut other = headers.clone();
    other[2].1 = "AmazonSSM.DeleteParameter".into();
    assert_eq!(
        check("POST", "/", "", &other, body),
        Err(SigError::Mismatch)
    );
    let mut other = headers.clone();
    other[0].1 = "127.0.0.1:4567".into();
    assert_eq!(
        check("POST", "/", "", &other, body),
        Err(SigError::Mismatch)
    );
}

#[test]
fn sqs_query_request() {
    let body = "Action=SendMessage&QueueUrl=http%3A%2F%2F127.0.0.1%3A4566%2F000000000000%2Fjobs&MessageBody=hello+world&Version=2012-11-05";
    let headers = h(&[
        ("Host", "127.0.0.1:4566"),
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("X-Amz-Date", "20261125T180000Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST00000001/20261125/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=a828935f6418feae8153b2e34c250efd43ce44b8a7734ebeadd3ab024e348c62",
        ),
    ]);
    assert_eq!(check("POST", "/", "", &headers, body), Ok(()));
    assert_eq!(
        check("POST", "/", "", &headers, &body.replace("hello", "HELLO")),
        Err(SigError::Mismatch)
    );
}

#[test]
fn s3_request_with_encoded_path_and_query() {
    let headers = h(&[
        ("Host", "127.0.0.1:4566"),
        ("X-Amz-Date", "20261125T180000Z"),
        (
            "X-Amz-Content-SHA256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST00000001/20261125/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=1c55f0fcf3fe21389c6906cdc0087433402d766eb7a1ef8f540f6c69f56438db",
        ),
    ]);
    let path = "/results/reports/2026%20Q4/a%2Bb.txt";
    assert_eq!(
        check("GET", path, "versionId=3%2F4&list-type=2", &headers, ""),
        Ok(())
    );
    assert_eq!(
        check("GET", path, "versionId=3%2F5&list-type=2", &headers, ""),
        Err(SigError::Mismatch)
    );
    assert_eq!(
        check(
            "GET",
            "/results/reports/2026%20Q4/a%2Bc.txt",
            "versionId=3%2F4&list-type=2",
            &headers,
            ""
        ),
        Err(SigError::Mismatch)
    );
}

#[test]
fn s3_presigned_url() {
    let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDLOCALTEST00000001%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261125T180000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=0613349a9cde544fcc1f2403efab0b176981e7a327e0aca492768371f23527e1";
    let headers = h(&[("Host", "127.0.0.1:4566")]);
    let req = Request {
        method: "GET",
        path: "/results/out.json",
        query,
        headers: &headers,
    };
    let s = parse(&req).expect("presigned");
    assert_eq!(s.expires, Some(300));
    assert_eq!(verify(&req, &s, SECRET, "", now() + 299), Ok(()));
    assert!(
        matches!(
            verify(&req, &s, SECRET, "", now() + 301),
            Err(SigError::Expired(_))
        ),
        "expired after 300 s"
    );
    let other = Request {
        path: "/results/other.json",
        ..req.clone()
    };
    assert_eq!(
        verify(&other, &s, SECRET, "", now()),
        Err(SigError::Mismatch)
    );
    assert_eq!(sigv4::ALGORITHM, "AWS4-HMAC-SHA256");
}

//! The endpoint's HTTP/1.1 handling on the wire, with raw sockets on 127.0.0.1:
//! SQS requests on the fast path (pipelined, split anywhere, `Connection: close`),
//! and the hand-over to hyper on the same connection for what the fast path does
//! not take (S3, oversized or malformed requests). Requests are signed with the
//! endpoint's own credentials, as an SDK signs them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use pantstack_awsproto::sigv4;
use pantstack_endpoint::{Config, Core, http};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const REGION: &str = "eu-west-1";

struct Local {
    server: http::Server,
    access: String,
    secret: String,
    dir: PathBuf,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn local(name: &str) -> Local {
    let dir = std::env::temp_dir().join(format!("pantstack-wire-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = Arc::new(
        Core::open(&Config {
            dir: dir.join("aws"),
            key_file: dir.join("keys/test.key"),
            region: REGION.into(),
            principals: vec!["api".into()],
            policies: Default::default(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .expect("open"),
    );
    let server = http::serve(core.clone(), 0).await.expect("serve");
    let creds = core.credentials("api");
    Local {
        server,
        access: creds.access_key,
        secret: creds.secret_key,
        dir,
    }
}

fn amz_date() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl Local {
    fn port(&self) -> u16 {
        self.server.port
    }

    /// A signed request's bytes: `service` scopes the signature; `extra` headers
    /// are sent (and signed) as given.
    fn signed(
        &self,
        service: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let date = amz_date();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), format!("127.0.0.1:{}", self.port())),
            ("x-amz-date".into(), date.clone()),
        ];
        if service == "s3" {
            headers.push(("x-amz-content-sha256".into(), sigv4::sha256_hex(body)));
        }
        for (k, v) in extra {
            headers.push((k.to_string(), v.to_string()));
        }
        let auth = sigv4::authorization(
            &sigv4::Request::from_target(method, path, &headers),
            &self.access,
            &self.secret,
            REGION,
            service,
            &date,
            &sigv4::sha256_hex(body),
        );
        let mut out = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!(
            "authorization: {auth}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// An SQS JSON-protocol request.
    fn sqs(&self, action: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let target = format!("AmazonSQS.{action}");
        let mut h = vec![
            ("x-amz-target", target.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
        ];
        h.extend_from_slice(extra);
        self.signed("sqs", "POST", "/", &h, body.as_bytes())
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (framed by Content-Length) from `s`, keeping any bytes
/// past it in `rest`.
fn read_response(s: &mut TcpStream, rest: &mut Vec<u8>) -> Response {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut slots);
        if let httparse::Status::Complete(n) = r.parse(rest).unwrap() {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let status = r.code.unwrap();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .expect("content-length");
            while rest.len() < n + len {
                let mut b = [0u8; 4096];
                let got = s.read(&mut b).unwrap();
                assert!(got > 0, "connection closed inside a body");
                rest.extend_from_slice(&b[..got]);
            }
            let body = String::from_utf8_lossy(&rest[n..n + len]).into_owned();
            rest.drain(..n + len);
            return Response {
                status,
                headers,
                body,
            };
        }
        let mut b = [0u8; 4096];
        let got = s.read(&mut b).unwrap();
        assert!(got > 0, "connection closed before a response");
        rest.extend_from_slice(&b[..got]);
    }
}

fn at_eof(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_split_anywhere_are_answered_in_order_then_s3_goes_to_hyper() {
    let l = local("pipelined").await;
    let create = l.sqs("CreateQueue", r#"{"QueueName":"wire"}"#, &[]);
    let mut s = l.connect();
    s.write_all(&create).unwrap();
    let mut rest = Vec::new();
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 200, "{}", r.body);
    let url: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let url = url["QueueUrl"].as_str().unwrap().to_string();
    assert!(r.header("x-amzn-requestid").is_some());
    assert!(r.header("date").is_some());
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.0"));

    // Three requests in one stream, written in two pieces split inside a head.
    let mut all = Vec::new();
    for i in 0..2 {
        all.extend(l.sqs(
            "SendMessage",
            &format!(r#"{{"QueueUrl":"{url}","MessageBody":"m{i}"}}"#),
            &[],
        ));
    }
    all.extend(l.sqs(
        "GetQueueAttributes",
        &format!(r#"{{"QueueUrl":"{url}","AttributeNames":["ApproximateNumberOfMessages"]}}"#),
        &[],
    ));
    let cut = create.len() + 40;
    s.write_all(&all[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&all[cut..]).unwrap();
    for i in 0..2 {
        let r = read_response(&mut s, &mut rest);
        assert_eq!(r.status, 200, "send {i}: {}", r.body);
        assert!(r.body.contains("MD5OfMessageBody"), "{}", r.body);
    }
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(r#""ApproximateNumberOfMessages":"2""#),
        "{}",
        r.body
    );

    // S3 on the same connection: hyper serves it, and then SQS again.
    let bucket = l.signed("s3", "PUT", "/wire-bucket", &[], b"");
    s.write_all(&bucket).unwrap();
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 200, "{}", r.body);
    let put = l.signed("s3", "PUT", "/wire-bucket/k", &[], b"hello");
    s.write_all(&put).unwrap();
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("etag").is_some());
    s.write_all(&l.sqs(
        "GetQueueAttributes",
        &format!(r#"{{"QueueUrl":"{url}","AttributeNames":["ApproximateNumberOfMessages"]}}"#),
        &[],
    ))
    .unwrap();
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""ApproximateNumberOfMessages":"2""#));
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_errors_and_oversized_or_malformed_requests() {
    let l = local("close").await;

    // An AWS error on the fast path, then `Connection: close` is honoured.
    let mut s = l.connect();
    let mut rest = Vec::new();
    s.write_all(&l.sqs(
        "GetQueueUrl",
        r#"{"QueueName":"missing"}"#,
        &[("connection", "close")],
    ))
    .unwrap();
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains(r#""__type":"com.amazonaws.sqs#QueueDoesNotExist""#),
        "{}",
        r.body
    );
    assert_eq!(
        r.header("x-amzn-query-error"),
        Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(at_eof(&mut s));

    // A bad signature is refused as AWS refuses it.
    let mut forged = l.sqs("ListQueues", r#"{"QueueNamePrefix":"a"}"#, &[]);
    let at = forged.len() - 3;
    assert_eq!(forged[at], b'a');
    forged[at] = b'b';
    let mut s = l.connect();
    s.write_all(&forged).unwrap();
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("SignatureDoesNotMatch"), "{}", r.body);

    // A body over the limit is refused from its Content-Length, unread.
    let mut s = l.connect();
    s.write_all(
        b"POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: AmazonSQS.SendMessage\r\ncontent-length: 99999999\r\n\r\n{",
    )
    .unwrap();
    let r = read_response(&mut s, &mut rest);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("RequestEntityTooLarge"), "{}", r.body);

    // A malformed head gets 400 from hyper, and the connection closes.
    let mut s = l.connect();
    s.write_all(b"POST / HTTP/1.1\r\nx-amz-target AmazonSQS.ListQueues\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
}

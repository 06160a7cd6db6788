//! The endpoint's HTTP/1.1 handling on the wire, with raw sockets on 127.0.0.1:
//! SQS requests on the fast path (pipelined, split anywhere, `Connection: close`),
//! and the hand-over to hyper on the same connection for what the fast path does
//! not take (S3, oversized or malformed requests). Requests are signed with the
//! endpoint's own credentials, as an SDK signs them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod raw;

use raw::{at_eof, local, read_response};
use std::io::{Read, Write};
use std::time::Duration;

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
        b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-amz-target: AmazonSQS.SendMessage\r\ncontent-length: 99999999\r\n\r\n{",
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

/// Whether the server closes `s` within `within` (reads until EOF or error).
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_on_both_paths() {
    let limits = pantstack_endpoint::http::Limits {
        idle: Duration::from_millis(300),
        read: Duration::from_millis(600),
        max_connections: 64,
    };
    let l = raw::local_limits("timeouts", limits).await;
    // Idle from the start.
    let mut idle = l.connect();
    // Idle after one answered request (keep-alive).
    let mut kept = l.connect();
    kept.write_all(&l.sqs("ListQueues", "{}", &[])).unwrap();
    let r = read_response(&mut kept, &mut Vec::new());
    assert_eq!(r.status, 200, "{}", r.body);
    // A head that never ends (fast path), one byte at a time.
    let mut slow = l.connect();
    slow.write_all(b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    // A head that never ends after a hand-over to hyper (S3 GET).
    let mut s3 = l.connect();
    s3.write_all(b"GET /bucket HTTP/1.1\r\nhost: 127.0.0.1\r\nx-amz-date: 2")
        .unwrap();
    // A body that never arrives.
    let mut body = l.connect();
    body.write_all(
        b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-amz-target: AmazonSQS.ListQueues\r\ncontent-length: 10\r\n\r\n{",
    )
    .unwrap();
    for (what, s) in [
        ("idle", &mut idle),
        ("kept alive", &mut kept),
        ("slow head", &mut slow),
        ("slow head on hyper", &mut s3),
        ("slow body", &mut body),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "{what}: still open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_and_the_others_still_served() {
    let limits = pantstack_endpoint::http::Limits {
        max_connections: 8,
        ..Default::default()
    };
    let l = raw::local_limits("cap", limits).await;
    let held: Vec<_> = (0..8).map(|_| l.connect()).collect();
    // Accepted in order: let the endpoint take all eight.
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = l.connect();
    let r = read_response(&mut extra, &mut Vec::new());
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(at_eof(&mut extra));
    // A held connection is still served.
    let mut first = held.into_iter().next().unwrap();
    first.write_all(&l.sqs("ListQueues", "{}", &[])).unwrap();
    let r = read_response(&mut first, &mut Vec::new());
    assert_eq!(r.status, 200, "{}", r.body);
    // Closing one makes room for a new one.
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = l.connect();
    again.write_all(&l.sqs("ListQueues", "{}", &[])).unwrap();
    let r = read_response(&mut again, &mut Vec::new());
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_is_a_400_not_a_413() {
    let l = local("chunked").await;
    let mut s = l.connect();
    s.write_all(
        b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-amz-target: AmazonSQS.ListQueues\r\ncontent-type: application/x-amz-json-1.0\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, &mut Vec::new());
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_s3_body_is_dropped_though_bytes_keep_coming() {
    let limits = pantstack_endpoint::http::Limits {
        read: Duration::from_millis(800),
        ..Default::default()
    };
    let l = raw::local_limits("trickle", limits).await;
    let mut s = l.connect();
    // An S3 PUT (hyper's path) whose body comes 5 bytes at a time: the idle
    // timeout never fires, the progress watchdog does.
    s.write_all(
        b"PUT /bucket/key HTTP/1.1\r\nhost: 127.0.0.1\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\ncontent-length: 100000\r\n\r\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        if s.write_all(b"xxxxx").is_err() {
            closed = true;
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 512];
        match s.read(&mut b) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "a trickled body was still accepted after 10 s");
}

/// A full SQS batch (1 MiB of bodies, the limit since August 2025) fits the body
/// limit however it is encoded: the query protocol percent-encodes each byte of
/// `é` as three characters, and JSON with `ensure_ascii` (what boto3 sends)
/// writes it as `\u00e9`; both about 3 MiB on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_1_mib_batch_fits_the_body_limit_in_both_protocols() {
    let l = local("batch-1mib").await;
    let r = l.send(&l.sqs("CreateQueue", r#"{"QueueName":"big"}"#, &[]));
    assert_eq!(r.status, 200, "{}", r.body);
    let url = format!("http://127.0.0.1:{}/000000000000/big", l.port());
    // 10 entries of 52,428 `é` (104,856 bytes each): 1,048,560 bytes in all.
    let each = "é".repeat(52_428);
    let mut form = format!(
        "Action=SendMessageBatch&Version=2012-11-05&QueueUrl={}",
        pantstack_awsproto::sigv4::uri_encode(&url, false)
    );
    let encoded = pantstack_awsproto::sigv4::uri_encode(&each, false);
    for i in 1..=10 {
        form.push_str(&format!(
            "&SendMessageBatchRequestEntry.{i}.Id=m{i}&SendMessageBatchRequestEntry.{i}.MessageBody={encoded}"
        ));
    }
    assert!(form.len() > 3 * 1024 * 1024, "{}", form.len());
    let h = [("content-type", "application/x-www-form-urlencoded")];
    let r = l.send(&l.signed("sqs", "POST", "/", &h, form.as_bytes()));
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(500)]);
    assert_eq!(r.body.matches("<SendMessageBatchResultEntry>").count(), 10);

    let escaped = "\\u00e9".repeat(52_428);
    let entries: Vec<String> = (1..=10)
        .map(|i| format!(r#"{{"Id":"m{i}","MessageBody":"{escaped}"}}"#))
        .collect();
    let body = format!(
        r#"{{"QueueUrl":"{url}","Entries":[{}]}}"#,
        entries.join(",")
    );
    assert!(body.len() > 3 * 1024 * 1024, "{}", body.len());
    let r = l.send(&l.sqs("SendMessageBatch", &body, &[]));
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(500)]);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["Successful"].as_array().unwrap().len(), 10, "{v}");
}

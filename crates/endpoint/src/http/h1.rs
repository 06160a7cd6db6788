//! The endpoint's HTTP/1.1 fast path. Every connection starts here: an SQS or SSM
//! request (POST with a `Content-Length` body, the shape every AWS SDK sends them
//! in) is parsed in place with `httparse`, answered by `dispatch::api`, and written back
//! with one `write`, with no hyper dispatcher, body channel or header map between
//! the socket and the handler. Anything else — S3 (its bodies stream), chunked or
//! oversized bodies, `Expect`, upgrades, HTTP/1.0, a head `httparse` refuses — is
//! handed to hyper for the rest of the connection, with the bytes already read
//! replayed first (`pantstack_rt::stream::Prefixed`), so hyper answers it as if it had
//! read them itself.
//!
//! Both paths call the same `dispatch::api`: signatures, routing, errors and
//! durability (a reply is written only after its journal records are on disk) do
//! not depend on which path parsed the request.

use super::dispatch::{Call, MAX_BODY, Reply, api, is_s3};
use super::limits::Limits;
use crate::Core;
use bytes::Bytes;
use std::cell::RefCell;
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Largest request head the fast path reads before handing over (hyper then
/// answers it; SDK request heads are under 2 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Headers the fast path parses; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;

/// How a connection left the fast path.
pub(crate) enum Outcome {
    /// It is finished: closed by the client, by `Connection: close`, by a read or
    /// write error, or by the endpoint stopping between requests.
    Closed,
    /// Hyper serves the rest; these bytes were read and not answered.
    Handover(Vec<u8>),
}

/// A request head the fast path answers.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, up to and including the blank line.
    len: usize,
    target: String,
    headers: Vec<(String, String)>,
    body_len: usize,
    keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Partial,
    Handover,
    Ready(Head),
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Parses a request head at the start of `buf`.
fn parse(buf: &[u8]) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Handover,
    };
    let (Some("POST"), Some(1), Some(target)) = (req.method, req.version, req.path) else {
        return Parsed::Handover;
    };
    if !target.starts_with('/') {
        return Parsed::Handover;
    }
    let mut headers = Vec::with_capacity(req.headers.len());
    let mut body_len = None;
    let mut keep_alive = true;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = match std::str::from_utf8(h.value) {
            Ok(v) => v.to_owned(),
            Err(_) => String::from_utf8_lossy(h.value).into_owned(),
        };
        match name.as_str() {
            "content-length" => {
                let n = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<usize>().ok())
                    .flatten();
                match (n, body_len) {
                    (Some(n), None) => body_len = Some(n),
                    // Repeated, or not a plain number: hyper decides.
                    _ => return Parsed::Handover,
                }
            }
            "transfer-encoding" | "expect" | "upgrade" => return Parsed::Handover,
            "connection" if has_token(&value, "close") => keep_alive = false,
            _ => {}
        }
        headers.push((name, value));
    }
    let Some(body_len) = body_len else {
        return Parsed::Handover;
    };
    if body_len > MAX_BODY {
        return Parsed::Handover;
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if is_s3(get, query) {
        return Parsed::Handover;
    }
    Parsed::Ready(Head {
        len,
        target: target.to_string(),
        headers,
        body_len,
        keep_alive,
    })
}

thread_local! {
    /// The `Date` header's value, formatted once per second.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(d.1.as_bytes());
    });
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The reply as the bytes of one HTTP/1.1 response.
fn render(reply: &Reply, keep_alive: bool) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = Vec::with_capacity(256 + reply.body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, usize::from(reply.status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b"content-type: ");
    out.extend_from_slice(reply.content_type.as_bytes());
    // The request id and query error are our own ASCII (no CR or LF).
    out.extend_from_slice(b"\r\nx-amzn-requestid: ");
    out.extend_from_slice(reply.request_id.as_bytes());
    if reply.content_type == "application/cbor" {
        out.extend_from_slice(b"\r\nsmithy-protocol: rpc-v2-cbor");
    }
    if let Some(q) = &reply.query_error {
        out.extend_from_slice(b"\r\nx-amzn-query-error: ");
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b"\r\ncontent-length: ");
    push_decimal(&mut out, reply.body.len());
    out.extend_from_slice(b"\r\ndate: ");
    write_date(&mut out);
    if !keep_alive {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&reply.body);
    out
}

/// Reads more of the connection into `buf`; false at its end or on an error.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    buf.reserve(8 * 1024);
    matches!(stream.read_buf(buf).await, Ok(n) if n > 0)
}

/// Serves requests on `stream` while they take the fast path.
///
/// A connection idle between requests for `limits.idle` is closed; a request whose
/// head and body have not arrived `limits.read` after its first byte is dropped.
pub(crate) async fn serve(
    core: &Core,
    stream: &mut TcpStream,
    stop: &mut watch::Receiver<bool>,
    limits: &Limits,
) -> Outcome {
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        // When the request in `buf` (if any) must have arrived by.
        let mut deadline = tokio::time::Instant::now() + limits.read;
        let head = loop {
            match parse(&buf) {
                Parsed::Ready(h) => break h,
                Parsed::Handover => return Outcome::Handover(buf),
                Parsed::Partial if buf.len() > MAX_HEAD => return Outcome::Handover(buf),
                Parsed::Partial if buf.is_empty() => {
                    // Between requests: a stopping endpoint closes here.
                    if *stop.borrow() {
                        return Outcome::Closed;
                    }
                    let more = tokio::select! {
                        more = tokio::time::timeout(limits.idle, fill(stream, &mut buf)) => more,
                        _ = stop.wait_for(|s| *s) => return Outcome::Closed,
                    };
                    if more != Ok(true) {
                        return Outcome::Closed;
                    }
                    deadline = tokio::time::Instant::now() + limits.read;
                }
                Parsed::Partial => {
                    let more = tokio::time::timeout_at(deadline, fill(stream, &mut buf)).await;
                    if more != Ok(true) {
                        return Outcome::Closed;
                    }
                }
            }
        };
        let end = head.len + head.body_len;
        while buf.len() < end {
            let more = tokio::time::timeout_at(deadline, fill(stream, &mut buf)).await;
            if more != Ok(true) {
                return Outcome::Closed;
            }
        }
        let body = Bytes::copy_from_slice(&buf[head.len..end]);
        buf.drain(..end);
        let (path, query) = head
            .target
            .split_once('?')
            .unwrap_or((head.target.as_str(), ""));
        let call = Call {
            method: "POST",
            path,
            query,
            headers: head.headers,
        };
        let reply = api(core, &call, Ok(body)).await;
        let out = render(&reply, head.keep_alive);
        if stream.write_all(&out).await.is_err() || !head.keep_alive {
            let _ = stream.shutdown().await;
            return Outcome::Closed;
        }
    }
}

/// Entry points for the fuzz targets (not an API).
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Parses `data` as a request head: a head the fast path takes lies within
    /// the input, with lower-case names, a body within the limit and no header
    /// that would make it hyper's; the reply it could get parses as a response.
    pub fn request_head(data: &[u8]) {
        let Parsed::Ready(head) = parse(data) else {
            return;
        };
        assert!(head.len <= data.len());
        assert!(head.body_len <= MAX_BODY);
        assert!(head.target.starts_with('/'));
        for (name, _) in &head.headers {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(!matches!(
                name.as_str(),
                "transfer-encoding" | "expect" | "upgrade"
            ));
        }
        let reply = Reply {
            status: 200,
            content_type: "application/x-amz-json-1.0",
            request_id: "r".into(),
            query_error: None,
            body: data[head.len..].to_vec(),
        };
        let out = render(&reply, head.keep_alive);
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let parsed = httparse::Response::new(&mut slots).parse(&out);
        assert!(
            matches!(parsed, Ok(httparse::Status::Complete(n)) if out.len() - n == data.len() - head.len),
            "{parsed:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn decimals_are_written_as_the_formatter_writes_them() {
        for n in [0usize, 7, 10, 99, 200, 413, 65_536, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    fn ready(raw: &[u8]) -> Head {
        match parse(raw) {
            Parsed::Ready(h) => h,
            other => panic!("{other:?} for {}", String::from_utf8_lossy(raw)),
        }
    }

    const SQS: &[u8] = b"POST /?x=1 HTTP/1.1\r\nHost: h\r\nX-Amz-Target: AmazonSQS.SendMessage\r\nContent-Length: 2\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n{}";

    #[test]
    fn sqs_and_ssm_requests_take_the_fast_path_with_lowercase_names() {
        let h = ready(SQS);
        assert_eq!(h.len, SQS.len() - 2);
        assert_eq!(h.body_len, 2);
        assert_eq!(h.target, "/?x=1");
        assert!(h.keep_alive);
        assert!(
            h.headers
                .iter()
                .any(|(k, v)| k == "x-amz-target" && v == "AmazonSQS.SendMessage")
        );
        let close = b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSSM.GetParameter\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n";
        assert!(!ready(close).keep_alive);
        // The query protocol, by its form body.
        let form = b"POST /123/q HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=b";
        assert_eq!(ready(form).body_len, 3);
    }

    #[test]
    fn everything_else_is_handed_to_hyper() {
        for raw in [
            // S3, signed for it or unsigned without SQS's marks.
            &b"POST /b/k?uploads HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: 0\r\n\r\n"[..],
            b"POST /b/k HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"GET /?Action=ListQueues HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.0\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: 99999999999\r\n\r\n",
            b"POST http://h/ HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert_eq!(
                parse(raw),
                Parsed::Handover,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        let raw = format!(
            "POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n{many}Content-Length: 0\r\n\r\n"
        );
        assert_eq!(parse(raw.as_bytes()), Parsed::Handover);
    }

    #[test]
    fn partial_heads_wait_for_more_at_every_split() {
        let head_len = SQS.len() - 2;
        for cut in 0..head_len {
            assert_eq!(parse(&SQS[..cut]), Parsed::Partial, "cut at {cut}");
        }
        assert_eq!(ready(&SQS[..head_len]).len, head_len);
    }

    #[test]
    fn replies_render_as_http_1_1_responses() {
        let reply = Reply {
            status: 400,
            content_type: "application/x-amz-json-1.0",
            request_id: "rid-1".into(),
            query_error: Some("AWS.SimpleQueueService.NonExistentQueue;Sender".into()),
            body: b"{\"x\":1}".to_vec(),
        };
        let out = render(&reply, false);
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut slots);
        let n = match resp.parse(&out).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        assert_eq!(resp.code, Some(400));
        assert_eq!(resp.reason, Some("Bad Request"));
        let get = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        assert_eq!(get("content-length").as_deref(), Some("7"));
        assert_eq!(get("connection").as_deref(), Some("close"));
        assert_eq!(get("x-amzn-requestid").as_deref(), Some("rid-1"));
        assert!(
            get("date").is_some_and(|d| httpdate::parse_http_date(&d).is_ok()),
            "{:?}",
            get("date")
        );
        assert_eq!(&out[n..], b"{\"x\":1}");
        let kept = render(&reply, true);
        assert!(!String::from_utf8_lossy(&kept).contains("connection:"));
    }
}

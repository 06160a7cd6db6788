//! The dashboard's HTTP/1.1, as little of it as a browser on this machine needs:
//! one request per connection (`Connection: close`), `GET` only, no request body.
//!
//! Invariants:
//! - A request head is read whole before anything is answered, and is at most
//!   [`MAX_HEAD`] bytes: a longer one is answered `431` without reading further.
//! - Reading the head and writing the answer are each bounded in time
//!   ([`HEAD_WITHIN`], [`WRITE_WITHIN`]); a peer that stalls is dropped.
//! - Every answer carries the headers of [`Response::to_bytes`]: a length, `Connection:
//!   close`, `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, a
//!   `Content-Security-Policy` that allows only this origin's own files (no inline
//!   script), `Referrer-Policy: no-referrer` (the URL carries the token) and no
//!   framing.
//! - [`host_allowed`] accepts only a loopback name with the dashboard's own port,
//!   so a page whose name was rebound to 127.0.0.1 (DNS rebinding) is refused.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a peer has to send its whole head.
pub const HEAD_WITHIN: Duration = Duration::from_secs(2);
/// How long a peer has to take the whole answer.
pub const WRITE_WITHIN: Duration = Duration::from_secs(10);

/// A request head, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The target's path (before any `?`).
    pub path: String,
    /// The target's query (after the `?`, empty without one).
    pub query: String,
    /// The `Host` header (None: there is none).
    pub host: Option<String>,
}

/// Why no head could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// [`MAX_HEAD`] bytes came without the blank line that ends a head.
    TooLarge,
    /// The peer closed (or failed) before the head ended.
    Closed,
}

/// Reads up to the blank line ending the head (`\r\n\r\n`); what comes after it
/// (a body, a pipelined request) is ignored. The caller bounds the time.
pub async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let room = MAX_HEAD - buf.len();
        let n = r
            .read(&mut chunk[..room.min(1024)])
            .await
            .map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        // Only the new bytes and the three before them can complete the end.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(from + at);
            return Ok(buf);
        }
        if buf.len() >= MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
    }
}

/// Parses a head read by [`read_head`] (without its final blank line). `Err` is
/// the `400` answer's reason.
pub fn parse_head(raw: &[u8]) -> Result<Head, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the request line is not `METHOD TARGET VERSION`");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("bad method");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("not HTTP/1.0 or HTTP/1.1");
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the target is not an absolute path");
    }
    let mut host = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err("folded header lines are not accepted");
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err("a header line without `:`");
        };
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err("a header name that is not a token");
        }
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err("more than one Host header");
            }
            host = Some(value.trim_matches([' ', '\t']).to_string());
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        host,
    })
}

/// A header name's characters (RFC 9110 `token`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `host` (a `Host` header) names this machine's loopback with `port`:
/// `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT`.
pub fn host_allowed(host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|name| host == format!("{name}:{port}"))
}

/// The value of `key` in a query string (`a=1&b=2`), undecoded.
pub fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Whether two secrets are equal, in a time that depends only on their lengths.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// More headers (`Allow`, `Location`).
    pub extra: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            extra: Vec::new(),
        }
    }

    /// A plain-text answer (errors).
    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }

    /// A JSON answer.
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response::new(status, "application/json", v.to_string())
    }

    pub fn with(mut self, name: &'static str, value: String) -> Response {
        self.extra.push((name, value));
        self
    }

    /// The answer on the wire, with the headers every answer carries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
             Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'\r\n\
             Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_head_parses_into_method_path_query_and_host() {
        let h =
            parse_head(b"GET /tok/api/events?after=7 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAccept: */*")
                .unwrap();
        assert_eq!(
            h,
            Head {
                method: "GET".into(),
                path: "/tok/api/events".into(),
                query: "after=7".into(),
                host: Some("127.0.0.1:9".into()),
            }
        );
        assert_eq!(query_value(&h.query, "after"), Some("7"));
        assert_eq!(query_value(&h.query, "before"), None);
        let h = parse_head(b"GET / HTTP/1.0").unwrap();
        assert_eq!(h.host, None);
    }

    #[test]
    fn malformed_heads_are_refused_with_a_reason() {
        for (raw, why) in [
            (
                &b"GET /"[..],
                "the request line is not `METHOD TARGET VERSION`",
            ),
            (
                b"GET / HTTP/1.1 x",
                "the request line is not `METHOD TARGET VERSION`",
            ),
            (b"get / HTTP/1.1", "bad method"),
            (b"GET / HTTP/2", "not HTTP/1.0 or HTTP/1.1"),
            (
                b"GET http://evil/ HTTP/1.1",
                "the target is not an absolute path",
            ),
            (b"GET / HTTP/1.1\r\nHost 1", "a header line without `:`"),
            (
                b"GET / HTTP/1.1\r\nHo st: x",
                "a header name that is not a token",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n b",
                "folded header lines are not accepted",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nhost: b",
                "more than one Host header",
            ),
            (b"GET /\xff HTTP/1.1", "the request head is not UTF-8"),
        ] {
            assert_eq!(
                parse_head(raw),
                Err(why),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn only_loopback_hosts_with_the_port_are_allowed() {
        assert!(host_allowed("127.0.0.1:8080", 8080));
        assert!(host_allowed("LOCALHOST:8080", 8080));
        assert!(host_allowed("[::1]:8080", 8080));
        assert!(!host_allowed("127.0.0.1:8081", 8080), "another port");
        assert!(!host_allowed("127.0.0.1", 8080), "no port");
        assert!(!host_allowed("evil.example:8080", 8080), "a rebound name");
        assert!(!host_allowed("127.0.0.1.nip.io:8080", 8080));
        assert!(!host_allowed("10.0.0.1:8080", 8080));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abcd", b"abcd"));
        assert!(!same_secret(b"abcd", b"abce"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        let r = Response::text(404, "no").with("Allow", "GET".into());
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        for h in [
            "Content-Length: 3\r\n",
            "Connection: close\r\n",
            "Cache-Control: no-store\r\n",
            "X-Content-Type-Options: nosniff\r\n",
            "Content-Security-Policy: default-src 'self';",
            "Referrer-Policy: no-referrer\r\n",
            "Allow: GET\r\n",
        ] {
            assert!(text.contains(h), "{h} missing in {text}");
        }
        assert!(text.ends_with("\r\n\r\nno\n"));
    }

    #[tokio::test]
    async fn a_head_is_read_to_its_blank_line_and_no_further_than_the_limit() {
        let mut r: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
        assert_eq!(
            read_head(&mut r).await.unwrap(),
            b"GET / HTTP/1.1\r\nHost: x"
        );
        let mut r: &[u8] = b"GET / HTTP/1.1\r\n";
        assert_eq!(read_head(&mut r).await, Err(ReadError::Closed));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let mut r = big.as_bytes();
        assert_eq!(read_head(&mut r).await, Err(ReadError::TooLarge));
        // Exactly the limit, with its end: read.
        let fits = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD - 23));
        assert_eq!(fits.len(), MAX_HEAD);
        let mut r = fits.as_bytes();
        assert!(read_head(&mut r).await.is_ok());
    }
}

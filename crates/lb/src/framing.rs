//! Where a message ends: ALB's rules on request framing, shared by the fast path
//! (`h1.rs`), the general path (`general.rs`) and the general path's inspector of the
//! bytes hyper reads ([`Inspected`]).
//!
//! A request whose framing could be read two ways is refused with 400 and its
//! connection closed, as ALB (desync mitigation) and nginx do: `Content-Length` and
//! `Transfer-Encoding` together, a repeated or comma-listed `Content-Length`, a
//! `Transfer-Encoding` other than exactly `chunked`, a repeated `Host`, and a
//! `Connection` header naming `Content-Length`, `Transfer-Encoding` or `Host` (which
//! would make a proxy drop the header while it still forwards the body: request
//! smuggling on a pooled upstream connection). Obsolete line folding and malformed
//! chunk sizes are refused by the parsers themselves.

use crate::h1::Chunked;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Headers that say where a message ends or where it goes: a `Connection` header
/// can never make them hop-by-hop.
const FRAMING: &[&str] = &["content-length", "transfer-encoding", "host"];

fn is_framing(name: &[u8]) -> bool {
    FRAMING
        .iter()
        .any(|f| f.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub(super) fn lists(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the `Connection` header value `connection` makes the header `name`
/// hop-by-hop (to be dropped). Never for the framing headers.
pub(super) fn connection_drops(connection: &[u8], name: &[u8]) -> bool {
    !is_framing(name) && lists(connection, name)
}

/// A `Content-Length` value: digits only (no sign, no list), at most 18 of them.
pub(super) fn parse_len(v: &[u8]) -> Option<usize> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0usize, |n, d| {
        n.checked_mul(10)?.checked_add((d - b'0') as usize)
    })
}

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

/// Checks a request head's framing, fed one header at a time (no allocation).
#[derive(Default)]
pub(super) struct RequestFraming {
    length: Option<usize>,
    lengths: u8,
    encodings: u8,
    chunked: bool,
    hosts: u8,
    bad: Option<&'static str>,
}

impl RequestFraming {
    pub(super) fn header(&mut self, name: &[u8], value: &[u8]) {
        if self.bad.is_some() {
            return;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            self.lengths = self.lengths.saturating_add(1);
            if self.lengths > 1 {
                self.bad = Some("more than one Content-Length");
            }
            match parse_len(value) {
                Some(n) => self.length = Some(n),
                None => self.bad = Some("invalid Content-Length"),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.encodings = self.encodings.saturating_add(1);
            if self.encodings > 1 {
                self.bad = Some("more than one Transfer-Encoding");
            } else if value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else {
                self.bad = Some("Transfer-Encoding other than chunked");
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            self.hosts = self.hosts.saturating_add(1);
            if self.hosts > 1 {
                self.bad = Some("more than one Host");
            }
        } else if name.eq_ignore_ascii_case(b"connection")
            && value
                .split(|b| *b == b',')
                .any(|t| is_framing(t.trim_ascii()))
        {
            self.bad = Some("Connection names a framing header");
        }
    }

    /// The body's framing, or why the request is refused. `http11`: the request is
    /// HTTP/1.1 (HTTP/1.0 has no `Transfer-Encoding`).
    pub(super) fn finish(&self, http11: bool) -> Result<BodyFraming, &'static str> {
        if let Some(why) = self.bad {
            return Err(why);
        }
        if self.encodings > 0 && self.lengths > 0 {
            return Err("both Content-Length and Transfer-Encoding");
        }
        if self.encodings > 0 && !http11 {
            return Err("Transfer-Encoding in an HTTP/1.0 request");
        }
        Ok(if self.chunked {
            BodyFraming::Chunked
        } else if let Some(n) = self.length {
            BodyFraming::Length(n)
        } else {
            BodyFraming::None
        })
    }

    /// [`RequestFraming`] over a whole header list.
    pub(super) fn check<'a>(
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        http11: bool,
    ) -> Result<BodyFraming, &'static str> {
        let mut f = RequestFraming::default();
        for (n, v) in headers {
            f.header(n, v);
        }
        f.finish(http11)
    }
}

/// Whether a target's response head is framed two ways (`Content-Length` with
/// `Transfer-Encoding`, or `Content-Length`s that disagree): answered with 502, and
/// the upstream connection is not reused.
pub(super) fn response_ambiguous<'a>(
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> bool {
    let (mut length, mut encoding) = (None, false);
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(b"content-length") {
            match parse_len(v) {
                Some(l) if length.is_none_or(|p| p == l) => length = Some(l),
                _ => return true,
            }
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            encoding = true;
        }
    }
    length.is_some() && encoding
}

/// What the inspector of one general-path connection found, shared with the
/// service that answers its requests.
pub(super) struct ConnCheck {
    /// The index of the first request (counted from 0 on the connection) whose head
    /// is refused; `u64::MAX` while none is.
    bad_from: AtomicU64,
    /// Why (the first refused head).
    why: std::sync::Mutex<&'static str>,
    /// A chunked request body was malformed.
    body_bad: AtomicBool,
    /// Requests the service has seen.
    served: AtomicU64,
}

impl Default for ConnCheck {
    fn default() -> Self {
        ConnCheck {
            bad_from: AtomicU64::new(u64::MAX),
            why: std::sync::Mutex::new(""),
            body_bad: AtomicBool::new(false),
            served: AtomicU64::new(0),
        }
    }
}

impl ConnCheck {
    fn refuse_from(&self, index: u64, why: &'static str) {
        if self.bad_from.fetch_min(index, Ordering::AcqRel) > index {
            *self.why.lock().unwrap_or_else(|e| e.into_inner()) = why;
        }
    }

    /// Called by the service once per request, in order: why the request's head is
    /// refused, if it is.
    pub(super) fn next_request(&self) -> Option<&'static str> {
        let i = self.served.fetch_add(1, Ordering::AcqRel);
        (i >= self.bad_from.load(Ordering::Acquire))
            .then(|| *self.why.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether a chunked request body on this connection was malformed.
    pub(super) fn body_bad(&self) -> bool {
        self.body_bad.load(Ordering::Acquire)
    }
}

/// Where the inspector is in the client's byte stream.
enum At {
    /// Collecting a request head.
    Head,
    /// In a body with this many bytes to come.
    Length(usize),
    /// In a chunked body.
    Chunked(Chunked),
    /// No longer inspecting (after an upgrade, a refused request or a head too
    /// large for hyper, which answers that itself).
    Off,
}

/// The client side of a general-path connection, read by hyper: every request head
/// that passes is checked with the same rules as on the fast path (hyper itself
/// silently accepts some ambiguous framings: it drops a `Content-Length` next to
/// `Transfer-Encoding`, and repeats of an equal one), and chunked bodies are
/// tracked to find the next head.
pub(super) struct Inspected<T> {
    inner: T,
    check: Arc<ConnCheck>,
    at: At,
    head: Vec<u8>,
    index: u64,
}

/// The largest head the inspector collects (hyper refuses larger ones).
const HEAD_LIMIT: usize = 128 * 1024;

impl<T> Inspected<T> {
    pub(super) fn new(inner: T, check: Arc<ConnCheck>) -> Self {
        Inspected {
            inner,
            check,
            at: At::Head,
            head: Vec::new(),
            index: 0,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.at {
                At::Off => return,
                At::Length(n) => {
                    let k = data.len().min(*n);
                    *n -= k;
                    data = &data[k..];
                    if *n == 0 {
                        self.at = At::Head;
                    }
                }
                At::Chunked(c) => match c.feed(data) {
                    Ok(Some(k)) => {
                        data = &data[k..];
                        self.at = At::Head;
                    }
                    Ok(None) => return,
                    Err(()) => {
                        self.check.body_bad.store(true, Ordering::Release);
                        self.check.refuse_from(self.index, "malformed chunked body");
                        self.at = At::Off;
                    }
                },
                At::Head => {
                    let before = self.head.len();
                    self.head.extend_from_slice(data);
                    match self.parse_head() {
                        Some(n) => {
                            // What followed the head is the body (or the next head).
                            let used = n.saturating_sub(before).min(data.len());
                            data = &data[used..];
                            self.head.clear();
                        }
                        None => return,
                    }
                }
            }
        }
    }

    /// Parses the collected head; `Some(its length)` when complete (the next state
    /// set), `None` for more bytes or when inspection stops.
    fn parse_head(&mut self) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&self.head) {
            Ok(httparse::Status::Complete(n)) => {
                let index = self.index;
                self.index += 1;
                let http11 = req.version == Some(1);
                let framing = RequestFraming::check(
                    req.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
                    http11,
                );
                let upgrade = req.method == Some("CONNECT")
                    || req
                        .headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
                self.at = match framing {
                    Err(why) => {
                        self.check.refuse_from(index, why);
                        At::Off
                    }
                    Ok(_) if upgrade => At::Off,
                    Ok(BodyFraming::None) | Ok(BodyFraming::Length(0)) => At::Head,
                    Ok(BodyFraming::Length(l)) => At::Length(l),
                    Ok(BodyFraming::Chunked) => At::Chunked(Chunked::default()),
                };
                Some(n)
            }
            Ok(httparse::Status::Partial) if self.head.len() < HEAD_LIMIT => None,
            // Too large, or malformed: hyper refuses it too and closes.
            _ => {
                self.check.refuse_from(self.index, "malformed request head");
                self.at = At::Off;
                self.head = Vec::new();
                None
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Inspected<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let start = buf.filled().len();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && !matches!(me.at, At::Off)
        {
            let new = &buf.filled()[start..];
            me.feed(new);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Inspected<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &[u8]) -> Result<BodyFraming, &'static str> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => RequestFraming::check(
                req.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
                req.version == Some(1),
            ),
            _ => Err("unparsed"),
        }
    }

    #[test]
    fn ambiguous_request_framing_is_refused() {
        for bad in [
            &b"POST / HTTP/1.1\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nConnection: keep-alive, Transfer-Encoding\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-A: 1\r\n Content-Length: 3\r\n\r\n",
        ] {
            assert!(check(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            check(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: keep-alive, x-a\r\n\r\n"),
            Ok(BodyFraming::Length(3))
        );
        assert_eq!(
            check(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(check(b"GET / HTTP/1.0\r\n\r\n"), Ok(BodyFraming::None));
    }

    #[test]
    fn connection_never_drops_framing_headers() {
        assert!(!connection_drops(b"content-length, x-a", b"Content-Length"));
        assert!(!connection_drops(
            b"Transfer-Encoding",
            b"transfer-encoding"
        ));
        assert!(!connection_drops(b"host", b"Host"));
        assert!(connection_drops(b"content-length, x-a", b"X-A"));
    }

    #[test]
    fn ambiguous_responses_are_found() {
        let h = |v: &[(&'static str, &'static str)]| -> Vec<(&'static [u8], &'static [u8])> {
            v.iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect()
        };
        assert!(response_ambiguous(h(&[
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked")
        ])));
        assert!(response_ambiguous(h(&[
            ("Content-Length", "5"),
            ("Content-Length", "6")
        ])));
        assert!(response_ambiguous(h(&[("Content-Length", "5, 5")])));
        assert!(!response_ambiguous(h(&[("Content-Length", "5")])));
        assert!(!response_ambiguous(h(&[("Transfer-Encoding", "chunked")])));
    }

    #[test]
    fn the_inspector_counts_requests_across_bodies_and_flags_the_bad_one() {
        let check = Arc::new(ConnCheck::default());
        let mut i = Inspected::new((), check.clone());
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.1\r\n\r\nPOST /d HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for b in stream.chunks(7) {
            i.feed(b);
        }
        assert_eq!(check.next_request(), None);
        assert_eq!(check.next_request(), None);
        assert_eq!(check.next_request(), None);
        assert!(check.next_request().is_some());
        let check = Arc::new(ConnCheck::default());
        let mut i = Inspected::new((), check.clone());
        i.feed(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert!(check.body_bad());
    }
}

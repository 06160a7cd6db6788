//! The balancer's HTTP/1.1 fast path: the proxy hop without a general HTTP library.
//!
//! A client connection is read into one buffer and its request head parsed in place
//! (`httparse`); the head the target sees is written straight into an output buffer
//! (hop-by-hop headers dropped, `X-Forwarded-*`, `X-Request-Id`, `X-Amzn-Trace-Id`
//! set) and sent on a pooled upstream connection owned by this worker thread with one
//! `write`. The response head is parsed the same way and rewritten for the client;
//! the body is framed by `Content-Length`, chunked encoding (tracked, passed through
//! unchanged) or the end of the connection, and a small response goes back with one
//! `write`. There is no task per upstream connection, no channel and no allocation
//! per request.
//!
//! What this path does not handle it hands over, with the bytes already read, to the
//! general (hyper) path for the rest of the connection: `Upgrade` (WebSocket),
//! `CONNECT`, request bodies that are chunked, larger than [`BODY_INLINE_MAX`] or
//! sent after `Expect: 100-continue`, and HTTP/1.0 clients. Both paths share the
//! target selection, health, rules and the access log.

use crate::alb::{
    self, Answer, LogRequest, dropped_request_header, dropped_response_header, origin_form,
    request_id_bytes, trace_id_bytes,
};
use crate::framing::{self, BodyFraming, RequestFraming, connection_drops, parse_len};
use crate::group::Outstanding;
use crate::pool::keep_alive_timeout;
#[cfg(target_os = "linux")]
use crate::ring;
use crate::{Balancer, Worker};
use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest request head (request line and headers) accepted.
const HEAD_MAX: usize = 64 * 1024;
/// Request bodies up to this size are read whole and sent with the head; larger
/// ones are streamed by the general path.
pub const BODY_INLINE_MAX: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// Bytes asked for per read while copying a body.
const COPY_CHUNK: usize = 64 * 1024;

/// Whether an idle pooled upstream connection is still open. An idle upstream
/// connection never has anything to read, so one that the runtime has seen become
/// readable was closed (or misbehaved); the check costs a system call only then.
fn still_open(s: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match s.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
        Poll::Ready(Err(_)) => false,
    }
}

/// A client or upstream connection of the fast path: on the worker thread's
/// io_uring (`ring`), or on the runtime's epoll where io_uring is unavailable or
/// turned off.
pub(super) enum Stream {
    Epoll(TcpStream),
    #[cfg(target_os = "linux")]
    Ring(ring::Socket),
}

impl Stream {
    /// Reads more bytes into `buf` (no zeroing: the spare capacity is filled by the
    /// kernel). `Ok(0)` is the end of the stream. A future dropped early may leave
    /// `buf` empty.
    async fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> std::io::Result<usize> {
        match self {
            Stream::Epoll(s) => {
                buf.reserve(want.max(4096));
                s.read_buf(buf).await
            }
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => s.recv(buf, want).await,
        }
    }

    /// Writes `buf[range]` whole. A future dropped early may leave `buf` empty.
    async fn send(&mut self, buf: &mut Vec<u8>, range: Range<usize>) -> std::io::Result<()> {
        match self {
            Stream::Epoll(s) => s.write_all(buf.get(range).unwrap_or_default()).await,
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => s.send(buf, range).await,
        }
    }

    /// Counts a request as in progress on this worker while the guard lives.
    fn busy(&self) -> Option<impl Drop + use<>> {
        match self {
            Stream::Epoll(_) => None,
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => Some(s.busy()),
        }
    }

    fn still_open(&self) -> bool {
        match self {
            Stream::Epoll(s) => still_open(s),
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => still_open(s.get_ref()),
        }
    }

    async fn shutdown(&mut self) {
        match self {
            Stream::Epoll(s) => {
                let _ = s.shutdown().await;
            }
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => {
                if let Some(s) = s.get_mut() {
                    let _ = s.shutdown().await;
                }
            }
        }
    }

    /// The connection as a tokio stream, for the general path.
    fn into_tokio(self) -> Option<TcpStream> {
        match self {
            Stream::Epoll(s) => Some(s),
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => s.into_inner(),
        }
    }
}

/// One timer per connection, re-armed for each wait: moving a deadline later is an
/// atomic update inside tokio's timer, not a new registration per request.
struct Idle {
    timer: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
}

impl Idle {
    fn new(period: Duration) -> Self {
        Idle {
            timer: Box::pin(tokio::time::sleep(period)),
            period,
        }
    }

    /// `f`'s output, or `None` when nothing finished it within the period.
    async fn run<F: std::future::Future>(&mut self, f: F) -> Option<F::Output> {
        self.run_by(f, None).await
    }

    /// [`Idle::run`], ending at `deadline` too if that comes first.
    async fn run_by<F: std::future::Future>(
        &mut self,
        f: F,
        deadline: Option<tokio::time::Instant>,
    ) -> Option<F::Output> {
        let mut until = tokio::time::Instant::now() + self.period;
        if let Some(d) = deadline {
            until = until.min(d);
        }
        self.timer.as_mut().reset(until);
        tokio::select! {
            biased;
            r = f => Some(r),
            _ = self.timer.as_mut() => None,
        }
    }
}

/// Why the fast path stops serving a connection.
enum Exit {
    /// The connection is over (closed by either side, timed out, or answered with
    /// an error that closes it).
    Done,
    /// Hand the connection to the general path; the buffer holds the unread bytes
    /// from the start of the current request.
    Handover,
}

/// What the request head said, as ranges into the read buffer.
struct ReqHead {
    head_len: usize,
    method: (usize, usize),
    target: (usize, usize),
    host: Option<(usize, usize)>,
    forwarded_for: Option<(usize, usize)>,
    body_len: usize,
    close: bool,
    /// The client's `X-Request-Id`, when valid (kept and forwarded).
    request_id: Option<(usize, usize)>,
    /// The client's `X-Amzn-Trace-Id` (kept and forwarded).
    trace: Option<(usize, usize)>,
    /// The client's `User-Agent` (for the access log).
    user_agent: Option<(usize, usize)>,
}

fn range(buf: &[u8], part: &[u8]) -> (usize, usize) {
    // `part` is a slice of `buf` (httparse parses in place).
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    (start, start + part.len())
}

fn at(buf: &[u8], r: (usize, usize)) -> &[u8] {
    buf.get(r.0..r.1).unwrap_or(b"")
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn lists(value: &[u8], token: &str) -> bool {
    framing::lists(value, token.as_bytes())
}

/// A request head the fast path cannot or should not take, or a bad one.
enum Parsed {
    Ok(ReqHead),
    Partial,
    Handover,
    Bad(&'static str),
}

/// Parses the request head at the start of `buf` and, when the fast path takes it,
/// writes the head the target gets into `out` (without the balancer's own headers
/// and the final empty line).
fn parse_request(buf: &[u8], out: &mut Vec<u8>) -> Parsed {
    // Uninitialized: zeroing 128 headers cost more than parsing a small head.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Handover,
        Err(_) => return Parsed::Bad("malformed request head"),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Bad("malformed request line");
    };
    if version != 1 || method == "CONNECT" {
        return Parsed::Handover;
    }
    let mut host = None;
    let mut forwarded_for = None;
    let mut framing = RequestFraming::default();
    let mut handover = false;
    let mut close = false;
    let mut request_id = None;
    let mut trace = None;
    let mut user_agent = None;
    let mut connection: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let n = h.name;
        // The framing rules see only the headers they are about.
        if n.eq_ignore_ascii_case("host") {
            framing.header(n.as_bytes(), h.value);
            host = Some(range(buf, h.value));
        } else if n.eq_ignore_ascii_case("content-length")
            || n.eq_ignore_ascii_case("transfer-encoding")
        {
            framing.header(n.as_bytes(), h.value);
        } else if n.eq_ignore_ascii_case("upgrade") || n.eq_ignore_ascii_case("expect") {
            handover = true;
        } else if n.eq_ignore_ascii_case("connection") {
            framing.header(n.as_bytes(), h.value);
            close |= lists(h.value, "close");
            connection = Some(h.value);
        } else if n.eq_ignore_ascii_case("x-forwarded-for") {
            if forwarded_for.is_none() {
                forwarded_for = Some(range(buf, h.value));
            }
        } else if n.eq_ignore_ascii_case("x-request-id") {
            request_id = alb::keeps_request_id(h.value).then(|| range(buf, h.value));
        } else if n.eq_ignore_ascii_case("x-amzn-trace-id") && trace.is_none() {
            trace = Some(range(buf, h.value));
        } else if n.eq_ignore_ascii_case("user-agent") {
            user_agent = Some(range(buf, h.value));
        }
    }
    // Ambiguous framing is refused before anything else (also before a handover).
    let body_len = match framing.finish(true) {
        Err(why) => return Parsed::Bad(why),
        Ok(BodyFraming::Chunked) => return Parsed::Handover,
        Ok(BodyFraming::Length(n)) => n,
        Ok(BodyFraming::None) => 0,
    };
    if handover || body_len > BODY_INLINE_MAX {
        return Parsed::Handover;
    }
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(origin_form(target.as_bytes()));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        if dropped_request_header(h.name)
            || connection.is_some_and(|c| connection_drops(c, h.name.as_bytes()))
            || (h.name.eq_ignore_ascii_case("x-request-id") && request_id.is_none())
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    // httparse may return a static string for common methods: the method's place is
    // where the request line starts (after any empty lines it skipped).
    let line_start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(0);
    Parsed::Ok(ReqHead {
        head_len,
        method: (line_start, line_start + method.len()),
        target: range(buf, target.as_bytes()),
        host,
        forwarded_for,
        body_len,
        close,
        request_id,
        trace,
        user_agent,
    })
}

/// Tracks chunked transfer coding as it passes through unchanged, to find where
/// the message ends.
#[derive(Default)]
pub(super) struct Chunked {
    state: ChunkState,
    size: u64,
    digits: u8,
}

#[derive(Default, Clone, Copy, PartialEq, Debug)]
enum ChunkState {
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLineLf,
    EndLf,
    Done,
}

impl Chunked {
    /// Feeds the next bytes; `Some(n)`: the message ends after `n` of them.
    pub(super) fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match self.state {
                Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits >= 15 {
                            return Err(());
                        }
                        let v = (b as char).to_digit(16).ok_or(())?;
                        self.size = self.size * 16 + u64::from(v);
                        self.digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = Ext,
                    b'\r' if self.digits > 0 => self.state = SizeLf,
                    // Lines end with CRLF: a bare LF is where parsers disagree
                    // (smuggling), so it is malformed here.
                    _ => return Err(()),
                },
                Ext => match b {
                    b'\r' => self.state = SizeLf,
                    b'\n' => return Err(()),
                    _ => {}
                },
                SizeLf => match b {
                    b'\n' => self.after_size(),
                    _ => return Err(()),
                },
                Data => {
                    let n = (data.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr => match b {
                    b'\r' => self.state = DataLf,
                    _ => return Err(()),
                },
                DataLf => match b {
                    b'\n' => self.state = Size,
                    _ => return Err(()),
                },
                TrailerStart => match b {
                    b'\r' => self.state = EndLf,
                    b'\n' => return Err(()),
                    _ => self.state = TrailerLine,
                },
                TrailerLine => match b {
                    b'\r' => self.state = TrailerLineLf,
                    b'\n' => return Err(()),
                    _ => {}
                },
                TrailerLineLf => match b {
                    b'\n' => self.state = TrailerStart,
                    _ => return Err(()),
                },
                EndLf => match b {
                    b'\n' => {
                        self.state = Done;
                        return Ok(Some(i + 1));
                    }
                    _ => return Err(()),
                },
                Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok(None)
    }

    fn after_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        };
        self.digits = 0;
    }
}

/// How a response body is delimited.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed response head, rewritten for the client into `out`.
struct ResHead {
    head_len: usize,
    status: u16,
    framing: Framing,
    reusable: bool,
    /// The target's `Keep-Alive: timeout=N`.
    keep_alive: Option<Duration>,
}

enum ParsedRes {
    Ok(ResHead),
    Partial,
    Bad,
}

/// Parses the response head at the start of `buf`. For a final response it writes
/// the head the client gets into `out` (adding `x-request-id`, and
/// `connection: close` when `close`), for 1xx the head unchanged.
fn parse_response(
    buf: &[u8],
    head_request: bool,
    request_id: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> ParsedRes {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return ParsedRes::Partial,
        Err(_) => return ParsedRes::Bad,
    };
    let (Some(code), Some(version)) = (res.code, res.version) else {
        return ParsedRes::Bad;
    };
    if (100..200).contains(&code) {
        if code == 101 {
            return ParsedRes::Bad; // no upgrade was asked for on this path
        }
        out.extend_from_slice(&buf[..head_len]);
        return ParsedRes::Ok(ResHead {
            head_len,
            status: code,
            framing: Framing::None,
            reusable: true,
            keep_alive: None,
        });
    }
    let mut length = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut reusable = version == 1;
    let mut connection: Option<&[u8]> = None;
    let mut keep_alive = None;
    for h in res.headers.iter() {
        let n = h.name;
        if n.eq_ignore_ascii_case("content-length") {
            let Some(len) = parse_len(h.value) else {
                return ParsedRes::Bad;
            };
            if length.is_some_and(|l| l != len) {
                return ParsedRes::Bad;
            }
            length = Some(len);
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            other_coding = !chunked;
        } else if n.eq_ignore_ascii_case("connection") {
            if lists(h.value, "close") {
                reusable = false;
            }
            connection = Some(h.value);
        } else if n.eq_ignore_ascii_case("keep-alive") {
            keep_alive = keep_alive_timeout(h.value);
        }
    }
    // Framed two ways: refused (502), and the connection is not reused.
    if length.is_some() && (chunked || other_coding) {
        return ParsedRes::Bad;
    }
    let framing = if head_request || code == 204 || code == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if other_coding {
        Framing::UntilClose
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    if framing == Framing::UntilClose {
        reusable = false;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut num = [0u8; 3];
    num[0] = b'0' + (code / 100 % 10) as u8;
    num[1] = b'0' + (code / 10 % 10) as u8;
    num[2] = b'0' + (code % 10) as u8;
    out.extend_from_slice(&num);
    out.push(b' ');
    out.extend_from_slice(res.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in res.headers.iter() {
        if dropped_response_header(h.name)
            || connection.is_some_and(|c| connection_drops(c, h.name.as_bytes()))
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(request_id);
    out.extend_from_slice(b"\r\n");
    if close || framing == Framing::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    ParsedRes::Ok(ResHead {
        head_len,
        status: code,
        framing,
        reusable,
        keep_alive,
    })
}

/// The balancer's own short answer.
fn text_response(out: &mut Vec<u8>, answer: Answer, request_id: &[u8], close: bool) {
    let (status, reason, body) = (answer.status(), answer.reason(), answer.body());
    out.clear();
    let _ = std::io::Write::write_fmt(
        out,
        format_args!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n",
            body.len()
        ),
    );
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(request_id);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

fn idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"PUT" | b"DELETE" | b"OPTIONS" | b"TRACE"
    )
}

/// The outcome of one upstream exchange, up to the end of the response head.
enum Upstream {
    /// A final response head is in `rbuf` (rewritten into `out`), `up` is the
    /// connection it came on.
    Head(Stream, ResHead),
    Refused,
    TimedOut,
}

impl Balancer {
    /// Serves one client connection on the fast path; returns the connection and the
    /// bytes already read when the rest must go to the general path.
    pub(super) async fn serve_fast(
        self: &Arc<Self>,
        w: &Arc<Worker>,
        mut c: Stream,
        peer: SocketAddr,
        peer_ip: &[u8],
        idle: Duration,
    ) -> Option<(TcpStream, Vec<u8>)> {
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut out: Vec<u8> = Vec::with_capacity(8192);
        let mut rbuf: Vec<u8> = Vec::with_capacity(8192);
        let mut idle = Idle::new(idle);
        loop {
            match self
                .one_request(
                    w, &mut c, peer, peer_ip, &mut idle, &mut buf, &mut out, &mut rbuf,
                )
                .await
            {
                Ok(()) => {}
                Err(Exit::Done) => return None,
                Err(Exit::Handover) => return c.into_tokio().map(|c| (c, buf)),
            }
        }
    }

    /// Reads, forwards and answers one request; `buf` keeps any pipelined bytes
    /// after it.
    #[allow(clippy::too_many_arguments)]
    async fn one_request(
        self: &Arc<Self>,
        w: &Arc<Worker>,
        c: &mut Stream,
        peer: SocketAddr,
        peer_ip: &[u8],
        idle: &mut Idle,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
        rbuf: &mut Vec<u8>,
    ) -> Result<(), Exit> {
        // The request head (the idle timeout applies while waiting for it). From
        // its first byte, the head and a body read here must arrive within one
        // idle period in all: a client sending a byte at a time is dropped.
        out.clear();
        let mut deadline = (!buf.is_empty()).then(|| tokio::time::Instant::now() + idle.period);
        let head = loop {
            if !buf.is_empty() {
                match parse_request(buf, out) {
                    Parsed::Ok(h) => break h,
                    Parsed::Handover => return Err(Exit::Handover),
                    Parsed::Bad(why) => {
                        return self.refuse(c, out, Answer::BadRequest(why)).await;
                    }
                    Parsed::Partial if buf.len() >= HEAD_MAX => {
                        // ALB answers 400 when the headers pass 64 KiB.
                        return self
                            .refuse(
                                c,
                                out,
                                Answer::BadRequest("request head larger than 64 KiB"),
                            )
                            .await;
                    }
                    Parsed::Partial => {}
                }
            }
            match idle.run_by(c.fill(buf, 8192), deadline).await {
                Some(Ok(n)) if n > 0 => {}
                _ => return Err(Exit::Done),
            }
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + idle.period);
        };
        let _busy = c.busy();
        // Only the access log needs the time.
        let started = self.log.is_some().then(Instant::now);
        // The body (small: read whole).
        while buf.len() < head.head_len + head.body_len {
            let want = head.head_len + head.body_len - buf.len();
            match idle.run_by(c.fill(buf, want), deadline).await {
                Some(Ok(n)) if n > 0 => {}
                _ => return Err(Exit::Done),
            }
        }

        // Ids: the client's when it sent them, else new ones (on the stack).
        let generated_rid;
        let request_id: Cow<'_, [u8]> = match head.request_id {
            Some(r) => Cow::Owned(at(buf, r).to_vec()),
            None => {
                generated_rid = request_id_bytes();
                Cow::Borrowed(&generated_rid)
            }
        };
        let generated_tid;
        let trace: Cow<'_, [u8]> = match head.trace {
            Some(r) => Cow::Owned(at(buf, r).to_vec()),
            None => {
                generated_tid = trace_id_bytes();
                Cow::Borrowed(&generated_tid)
            }
        };

        let (spec, picked) = self.select(w);
        let host = head.host.map(|r| at(buf, r)).unwrap_or(b"");
        let host_str = std::str::from_utf8(host).unwrap_or("");
        let target_bytes = at(buf, head.target);
        let log_line = if self.log.is_some() {
            LogRequest::new(
                at(buf, head.method),
                host,
                origin_form(target_bytes),
                "HTTP/1.1",
                head.user_agent.map(|r| at(buf, r)).unwrap_or(b"-"),
            )
        } else {
            LogRequest::default()
        };
        let log = |status: u16, target: Option<SocketAddr>, target_status: Option<u16>| {
            if let Some(started) = started {
                self.access_log(
                    w,
                    peer,
                    target,
                    started,
                    status,
                    target_status,
                    &log_line,
                    &trace,
                    &request_id,
                );
            }
        };

        let consumed = head.head_len + head.body_len;
        // The path is only looked at when there are rules.
        let routed = spec.rules.is_empty() || {
            let path = std::str::from_utf8(origin_form(target_bytes))
                .unwrap_or("/")
                .split('?')
                .next()
                .unwrap_or("/");
            alb::routed(&spec.rules, host_str, path)
        };
        if !routed {
            log(404, None, None);
            buf.drain(..consumed);
            return self
                .answer(c, out, &head, Answer::NoRoute, &request_id)
                .await;
        }
        let Some((addr, guard)) = picked else {
            log(503, None, None);
            buf.drain(..consumed);
            return self
                .answer(c, out, &head, Answer::NoTarget, &request_id)
                .await;
        };

        // The balancer's headers, then the body.
        out.extend_from_slice(b"x-forwarded-for: ");
        alb::forwarded_for(head.forwarded_for.map(|r| at(buf, r)), peer_ip, out);
        out.extend_from_slice(b"\r\nx-forwarded-proto: ");
        out.extend_from_slice(alb::FORWARDED_PROTO.as_bytes());
        out.extend_from_slice(b"\r\nx-forwarded-port: ");
        out.extend_from_slice(self.port_value.as_bytes());
        if head.request_id.is_none() {
            out.extend_from_slice(b"\r\nx-request-id: ");
            out.extend_from_slice(&request_id);
        }
        if head.trace.is_none() {
            out.extend_from_slice(b"\r\nx-amzn-trace-id: ");
            out.extend_from_slice(&trace);
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&buf[head.head_len..head.head_len + head.body_len]);
        let method_is_head = at(buf, head.method) == b"HEAD";
        let retry_ok = idempotent(at(buf, head.method));
        buf.drain(..consumed);

        let exchange = self.exchange(
            w,
            addr,
            out,
            rbuf,
            retry_ok,
            method_is_head,
            &request_id,
            head.close,
        );
        let (mut up, res) = match idle.run(exchange).await {
            None | Some(Upstream::TimedOut) => {
                log(504, Some(addr), None);
                drop(guard);
                return self
                    .answer(c, out, &head, Answer::TargetTimedOut, &request_id)
                    .await;
            }
            Some(Upstream::Refused) => {
                log(502, Some(addr), None);
                drop(guard);
                return self
                    .answer(c, out, &head, Answer::TargetRefused, &request_id)
                    .await;
            }
            Some(Upstream::Head(up, res)) => (up, res),
        };
        let status = res.status;
        log(status, Some(addr), Some(status));
        let close = head.close || res.framing == Framing::UntilClose;
        let reused = self
            .relay_body(c, &mut up, out, rbuf, &res, idle, guard)
            .await?;
        if reused && res.reusable {
            w.raw.put(addr, up, self.upstream_keep(res.keep_alive));
        }
        if close { Err(Exit::Done) } else { Ok(()) }
    }

    /// Sends the request in `out` to `addr` (a pooled connection, or a new one) and
    /// reads up to the final response head, relaying nothing yet; 1xx heads are
    /// collected in front of it. A pooled connection found closed before any
    /// response byte is replaced once by a new one for idempotent requests.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        w: &Worker,
        addr: SocketAddr,
        out: &mut Vec<u8>,
        rbuf: &mut Vec<u8>,
        retry_ok: bool,
        head_request: bool,
        request_id: &[u8],
        close: bool,
    ) -> Upstream {
        let request_len = out.len();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (mut up, pooled) = match w.raw.take(addr, Stream::still_open) {
                Some(s) => (s, true),
                None => {
                    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
                        .await
                    {
                        Ok(Ok(s)) => {
                            let _ = s.set_nodelay(true);
                            (w.stream(s), false)
                        }
                        Ok(Err(_)) => return Upstream::Refused,
                        Err(_) => return Upstream::TimedOut,
                    }
                }
            };
            let may_retry = pooled && attempts < 3;
            if up.send(out, 0..request_len).await.is_err() {
                if may_retry {
                    continue;
                }
                return Upstream::Refused;
            }
            rbuf.clear();
            // Response heads go after the request in `out`; 1xx heads stay in
            // front of the final one.
            out.truncate(request_len);
            let mut got_any = false;
            loop {
                match parse_response(rbuf, head_request, request_id, close, out) {
                    ParsedRes::Ok(h) if h.status < 200 => {
                        rbuf.drain(..h.head_len);
                        continue;
                    }
                    ParsedRes::Ok(h) => {
                        rbuf.drain(..h.head_len);
                        out.drain(..request_len);
                        return Upstream::Head(up, h);
                    }
                    ParsedRes::Bad => return Upstream::Refused,
                    ParsedRes::Partial if rbuf.len() >= HEAD_MAX => return Upstream::Refused,
                    // Nothing was written to `out`: read on.
                    ParsedRes::Partial => {}
                }
                match up.fill(rbuf, 8192).await {
                    Ok(n) if n > 0 => got_any = true,
                    _ if !got_any && may_retry && retry_ok => break,
                    _ => return Upstream::Refused,
                }
            }
        }
    }

    /// Sends the response head in `out` and its body to the client. Returns whether
    /// the upstream connection ended cleanly at the end of the message (so it can be
    /// pooled).
    #[allow(clippy::too_many_arguments)]
    async fn relay_body(
        &self,
        c: &mut Stream,
        up: &mut Stream,
        out: &mut Vec<u8>,
        rbuf: &mut Vec<u8>,
        res: &ResHead,
        idle: &mut Idle,
        _guard: Outstanding,
    ) -> Result<bool, Exit> {
        let mut chunked = Chunked::default();
        // Bytes of the body still to come (Length), or whether it ended.
        let mut remaining = match res.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut ended = matches!(res.framing, Framing::None | Framing::Length(0));
        let take = |data: &[u8],
                    remaining: &mut usize,
                    chunked: &mut Chunked,
                    ended: &mut bool|
         -> Result<(usize, bool), Exit> {
            // (bytes of `data` that belong to the body, stray bytes after it)
            match res.framing {
                Framing::None => Ok((0, !data.is_empty())),
                Framing::Length(_) => {
                    let n = data.len().min(*remaining);
                    *remaining -= n;
                    if *remaining == 0 {
                        *ended = true;
                    }
                    Ok((n, data.len() > n))
                }
                Framing::Chunked => match chunked.feed(data) {
                    Ok(Some(n)) => {
                        *ended = true;
                        Ok((n, data.len() > n))
                    }
                    Ok(None) => Ok((data.len(), false)),
                    Err(()) => Err(Exit::Done),
                },
                Framing::UntilClose => Ok((data.len(), false)),
            }
        };
        // What arrived with the head.
        let (n, stray) = take(rbuf, &mut remaining, &mut chunked, &mut ended)?;
        out.extend_from_slice(&rbuf[..n]);
        let mut clean = !stray;
        // The head and what body there is now; the rest as it comes. A client that
        // takes nothing for an idle timeout is dropped, as ALB drops it.
        idle_write(idle, c, out, 0..usize::MAX).await?;
        out.clear();
        while !ended {
            rbuf.clear();
            let n = match idle.run(up.fill(rbuf, COPY_CHUNK)).await {
                Some(Ok(n)) => n,
                _ => return Err(Exit::Done),
            };
            if n == 0 {
                // The end of a body that lasts until the close, or a target that
                // closed early: the client learns either by its connection closing.
                return Err(Exit::Done);
            }
            let (k, stray) = take(rbuf, &mut remaining, &mut chunked, &mut ended)?;
            clean &= !stray;
            idle_write(idle, c, rbuf, 0..k).await?;
        }
        Ok(clean)
    }

    /// Answers with the balancer's own text; the connection stays open unless the
    /// client asked to close it.
    async fn answer(
        &self,
        c: &mut Stream,
        out: &mut Vec<u8>,
        head: &ReqHead,
        answer: Answer,
        request_id: &[u8],
    ) -> Result<(), Exit> {
        text_response(out, answer, request_id, head.close);
        write_client(c, out, 0..usize::MAX).await?;
        if head.close { Err(Exit::Done) } else { Ok(()) }
    }

    /// Answers a request that cannot be read any further, and closes.
    async fn refuse(&self, c: &mut Stream, out: &mut Vec<u8>, answer: Answer) -> Result<(), Exit> {
        let rid = request_id_bytes();
        text_response(out, answer, &rid, true);
        if write_client(c, out, 0..usize::MAX).await.is_ok() {
            linger(c).await;
        }
        Err(Exit::Done)
    }
}

/// Closes our side and reads what the client still sends, for a while, before the
/// socket is dropped: closing with unread input makes the kernel reset the
/// connection, which can destroy the answer before the client has read it.
async fn linger(c: &mut Stream) {
    c.shutdown().await;
    let mut sink = Vec::with_capacity(16 * 1024);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut total = 0usize;
    while total < (1 << 20) {
        sink.clear();
        match tokio::time::timeout_at(deadline, c.fill(&mut sink, 16 * 1024)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}

/// [`write_client`] within the connection's idle timeout.
async fn idle_write(
    idle: &mut Idle,
    c: &mut Stream,
    buf: &mut Vec<u8>,
    range: Range<usize>,
) -> Result<(), Exit> {
    idle.run(write_client(c, buf, range))
        .await
        .unwrap_or(Err(Exit::Done))
}

/// Sends `buf[range]` (clamped to its length) to the client.
async fn write_client(c: &mut Stream, buf: &mut Vec<u8>, range: Range<usize>) -> Result<(), Exit> {
    let range = range.start..range.end.min(buf.len());
    c.send(buf, range).await.map_err(|_| Exit::Done)
}

/// The fast path's parsers on their own, for the fuzzer (`fuzz/fuzz_targets/lb.rs`).
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// What the fast path makes of a request head.
    pub enum Request {
        /// Taken: the head's length and the head the target gets (ending with the
        /// empty line, the balancer's own headers left out).
        Forward(usize, Vec<u8>),
        /// More bytes needed.
        Partial,
        /// For the general path.
        Handover,
        /// Answered with 400.
        Bad,
    }

    pub fn request(input: &[u8]) -> Request {
        let mut out = Vec::new();
        match parse_request(input, &mut out) {
            Parsed::Ok(h) => {
                out.extend_from_slice(b"\r\n");
                Request::Forward(h.head_len, out)
            }
            Parsed::Partial => Request::Partial,
            Parsed::Handover => Request::Handover,
            Parsed::Bad(_) => Request::Bad,
        }
    }

    /// A final or 1xx response head: its length, the head the client gets, and
    /// whether its body is framed by a length (`Some(n)`).
    pub fn response(input: &[u8], head_request: bool) -> Option<(usize, Vec<u8>, Option<usize>)> {
        let mut out = Vec::new();
        match parse_response(input, head_request, b"id", false, &mut out) {
            ParsedRes::Ok(h) => {
                let length = match h.framing {
                    Framing::Length(n) => Some(n),
                    _ => None,
                };
                Some((h.head_len, out, length))
            }
            ParsedRes::Partial | ParsedRes::Bad => None,
        }
    }

    /// Where a chunked body fed in these pieces ends.
    #[derive(Debug, PartialEq)]
    pub enum ChunkedEnd {
        At(usize),
        NotYet,
        Malformed,
    }

    pub fn chunked_end(pieces: &[&[u8]]) -> ChunkedEnd {
        match track(pieces) {
            Ok(Some(n)) => ChunkedEnd::At(n),
            Ok(None) => ChunkedEnd::NotYet,
            Err(()) => ChunkedEnd::Malformed,
        }
    }
}

/// Feeds `pieces` in turn to a chunk tracker: where the body ends, if it does.
fn track(pieces: &[&[u8]]) -> Result<Option<usize>, ()> {
    let mut c = Chunked::default();
    let mut total = 0;
    for p in pieces {
        if let Some(n) = c.feed(p)? {
            return Ok(Some(total + n));
        }
        total += p.len();
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::track as chunks;

    #[test]
    fn chunked_end_is_found_across_any_split() {
        let msg: &[u8] = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let end = msg.len() - 4;
        for split in 0..msg.len() {
            let (a, b) = msg.split_at(split);
            assert_eq!(chunks(&[a, b]), Ok(Some(end)), "split at {split}");
        }
        let bytewise: Vec<&[u8]> = msg.chunks(1).collect();
        assert_eq!(chunks(&bytewise), Ok(Some(end)));
        assert_eq!(chunks(&[b"0\r\n\r\n"]), Ok(Some(5)));
        assert_eq!(chunks(&[b"3\r\nabc\r\n"]), Ok(None));
    }

    #[test]
    fn chunk_tracking_does_not_depend_on_how_bytes_arrive() {
        // Pseudo-random byte soups, biased towards chunk syntax: fed whole or one
        // byte at a time, the tracker finds the same end (or the same error).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"0123456789abcdefABCDEF\r\n; \tzx";
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let msg: Vec<u8> = (0..len)
                .map(|i| {
                    let r = x.rotate_left(i as u32 * 5) ^ (i as u64).wrapping_mul(0x2545_f491);
                    alphabet[(r % alphabet.len() as u64) as usize]
                })
                .collect();
            let whole = chunks(&[&msg]);
            let bytewise: Vec<&[u8]> = msg.chunks(1).collect();
            assert_eq!(
                whole,
                chunks(&bytewise),
                "{:?}",
                String::from_utf8_lossy(&msg)
            );
            if let Ok(Some(n)) = whole {
                assert!(n <= msg.len());
            }
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        assert_eq!(chunks(&[b"zz\r\n"]), Err(()));
        assert_eq!(chunks(&[b"\r\n"]), Err(()));
        assert_eq!(chunks(&[b"3\r\nabcX"]), Err(()));
        assert_eq!(chunks(&[b"ffffffffffffffff\r\n"]), Err(()));
    }

    #[test]
    fn request_heads_are_rewritten_or_handed_over() {
        let mut out = Vec::new();
        let buf = b"GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\n\r\n";
        let Parsed::Ok(h) = parse_request(buf, &mut out) else {
            panic!("not parsed")
        };
        assert_eq!(h.head_len, buf.len());
        assert!(!h.close);
        assert_eq!(at(buf, h.host.unwrap_or((0, 0))), b"example.com");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("GET /a?b=1 HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("Host: example.com\r\n"), "{text}");
        assert!(text.contains("Accept: */*\r\n"), "{text}");
        for gone in ["Connection", "X-Secret", "Keep-Alive", "X-Forwarded-For"] {
            assert!(!text.contains(gone), "{gone} forwarded: {text}");
        }
        for handover in [
            &b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n",
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(handover, &mut Vec::new()), Parsed::Handover),
                "{}",
                String::from_utf8_lossy(handover)
            );
        }
        assert!(matches!(
            parse_request(
                b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
                &mut Vec::new()
            ),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_request(
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &mut Vec::new()
            ),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut Vec::new()),
            Parsed::Partial
        ));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let cases: &[(&[u8], bool, Framing, bool)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                true,
                Framing::None,
                true,
            ),
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::None,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false,
                Framing::Length(0),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                Framing::Length(0),
                false,
            ),
        ];
        for (head, head_request, framing, reusable) in cases {
            let mut out = Vec::new();
            let ParsedRes::Ok(r) = parse_response(head, *head_request, b"rid", false, &mut out)
            else {
                panic!("not parsed: {}", String::from_utf8_lossy(head))
            };
            assert_eq!(r.framing, *framing, "{}", String::from_utf8_lossy(head));
            assert_eq!(r.reusable, *reusable, "{}", String::from_utf8_lossy(head));
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains("x-request-id: rid\r\n"), "{text}");
            assert!(!text.contains("Connection: close"), "{text}");
        }
        let mut out = Vec::new();
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                b"r",
                false,
                &mut out
            ),
            ParsedRes::Bad
        ));
    }
}

//! Request and response heads of the fast path, parsed in place (`httparse`) and
//! rewritten for the other side with the ALB rules of [`crate::alb`]; chunked bodies
//! tracked as they pass through. No I/O.

use super::{BODY_INLINE_MAX, MAX_HEADERS};
use crate::alb::{self, Answer, dropped_request_header, dropped_response_header, origin_form};
use crate::framing::{self, BodyFraming, RequestFraming, connection_drops, parse_len};
use crate::pool::keep_alive_timeout;
use std::mem::MaybeUninit;
use std::time::Duration;

/// What the request head said, as ranges into the read buffer.
pub(crate) struct ReqHead {
    pub(crate) head_len: usize,
    pub(crate) method: (usize, usize),
    pub(crate) target: (usize, usize),
    pub(crate) host: Option<(usize, usize)>,
    pub(crate) forwarded_for: Option<(usize, usize)>,
    pub(crate) body_len: usize,
    pub(crate) close: bool,
    /// The client's `X-Request-Id`, when valid (kept and forwarded).
    pub(crate) request_id: Option<(usize, usize)>,
    /// The client's `X-Amzn-Trace-Id` (kept and forwarded).
    pub(crate) trace: Option<(usize, usize)>,
    /// The client's `User-Agent` (for the access log).
    pub(crate) user_agent: Option<(usize, usize)>,
}

pub(crate) fn range(buf: &[u8], part: &[u8]) -> (usize, usize) {
    // `part` is a slice of `buf` (httparse parses in place).
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    (start, start + part.len())
}

pub(crate) fn at(buf: &[u8], r: (usize, usize)) -> &[u8] {
    buf.get(r.0..r.1).unwrap_or(b"")
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub(crate) fn lists(value: &[u8], token: &str) -> bool {
    framing::lists(value, token.as_bytes())
}

/// A request head the fast path cannot or should not take, or a bad one.
pub(crate) enum Parsed {
    Ok(ReqHead),
    Partial,
    Handover,
    Bad(&'static str),
}

/// Parses the request head at the start of `buf` and, when the fast path takes it,
/// writes the head the target gets into `out` (without the balancer's own headers
/// and the final empty line).
pub(crate) fn parse_request(buf: &[u8], out: &mut Vec<u8>) -> Parsed {
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
pub(crate) struct Chunked {
    pub(crate) state: ChunkState,
    pub(crate) size: u64,
    pub(crate) digits: u8,
}

#[derive(Default, Clone, Copy, PartialEq, Debug)]
pub(crate) enum ChunkState {
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
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, ()> {
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

    pub(crate) fn after_size(&mut self) {
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
pub(crate) enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed response head, rewritten for the client into `out`.
pub(crate) struct ResHead {
    pub(crate) head_len: usize,
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    pub(crate) reusable: bool,
    /// The target's `Keep-Alive: timeout=N`.
    pub(crate) keep_alive: Option<Duration>,
}

pub(crate) enum ParsedRes {
    Ok(ResHead),
    Partial,
    Bad,
}

/// Parses the response head at the start of `buf`. For a final response it writes
/// the head the client gets into `out` (adding `x-request-id`, and
/// `connection: close` when `close`), for 1xx the head unchanged.
pub(crate) fn parse_response(
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
pub(crate) fn text_response(out: &mut Vec<u8>, answer: Answer, request_id: &[u8], close: bool) {
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

pub(crate) fn idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"PUT" | b"DELETE" | b"OPTIONS" | b"TRACE"
    )
}

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

use crate::alb::{self, Answer, LogRequest, origin_form, request_id_bytes, trace_id_bytes};
use crate::group::Outstanding;
use crate::{Balancer, Worker};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub(crate) use parse::Chunked;
use parse::{
    Framing, Parsed, ParsedRes, ReqHead, ResHead, at, idempotent, parse_request, parse_response,
    text_response,
};
use stream::Idle;
pub(crate) use stream::Stream;

/// The largest request head (request line and headers) accepted.
const HEAD_MAX: usize = 64 * 1024;
/// Request bodies up to this size are read whole and sent with the head; larger
/// ones are streamed by the general path.
pub const BODY_INLINE_MAX: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// Bytes asked for per read while copying a body.
const COPY_CHUNK: usize = 64 * 1024;

/// Why the fast path stops serving a connection.
enum Exit {
    /// The connection is over (closed by either side, timed out, or answered with
    /// an error that closes it).
    Done,
    /// Hand the connection to the general path; the buffer holds the unread bytes
    /// from the start of the current request.
    Handover,
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
        let mut buf: Vec<u8> = Vec::new();
        let mut out: Vec<u8> = Vec::new();
        let mut rbuf: Vec<u8> = Vec::new();
        let mut idle = Idle::new(idle);
        loop {
            if buf.is_empty() {
                // Between requests a connection holds no buffer: they go back to
                // the worker's pool while it waits, and come from it (or are
                // allocated) once the client sends. An idle keep-alive connection
                // costs its task and its socket, not 24 KiB of buffers.
                buffers::give([&mut buf, &mut out, &mut rbuf]);
                match idle.run(c.readable()).await {
                    Some(Ok(())) => {}
                    _ => return None,
                }
                buffers::take([&mut buf, &mut out, &mut rbuf]);
            }
            // Boxed per request: the exchange's state is allocated while a request
            // is in progress only, so an idle connection's task stays small.
            match Box::pin(self.one_request(
                w, &mut c, peer, peer_ip, &mut idle, &mut buf, &mut out, &mut rbuf,
            ))
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
        // For the access log and the response-time histogram.
        let started = Instant::now();
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
            w.counters.count(status, target_status, started.elapsed());
            if self.log.is_some() {
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

mod buffers;
#[doc(hidden)]
pub mod fuzzing;
mod parse;
mod stream;
#[cfg(test)]
mod tests;

//! The general path: hyper serves what the fast path hands over (chunked or large
//! request bodies, upgrades, `Expect`, HTTP/1.0), applying the same ALB behaviour
//! ([`crate::alb`]) through hyper's types.

use crate::alb::{self, Answer, HOP_BY_HOP, LogRequest};
use crate::framing;
use crate::group::Outstanding;
use crate::pool::{Pool, Sender, keep_alive_timeout};
use crate::{Balancer, Worker};
use bytes::Bytes;
use http_body_util::{Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What the balancer answers with: a target's body (streamed, tracked) or its own
/// short text. An enum, not a boxed trait object: no allocation per response.
pub enum ProxyBody {
    Target(Tracked),
    Text(Full<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Target(t) => Pin::new(t).poll_frame(cx),
            ProxyBody::Text(f) => Pin::new(f)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Target(t) => t.is_end_stream(),
            ProxyBody::Text(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Target(t) => t.size_hint(),
            ProxyBody::Text(f) => f.size_hint(),
        }
    }
}

/// A response body that keeps its request outstanding until it is fully sent, then
/// gives its upstream connection back to the pool.
pub struct Tracked {
    inner: Incoming,
    _guard: Outstanding,
    reuse: Option<(Arc<Pool>, SocketAddr, Sender, Duration)>,
    done: bool,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            self.done = true;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if (self.done || self.inner.is_end_stream())
            && let Some((pool, addr, sender, keep)) = self.reuse.take()
            && !sender.is_closed()
        {
            pool.put(addr, sender, keep);
        }
    }
}

/// The balancer's own answer ([`Answer`]), as a response of the general path.
fn answer(a: Answer) -> Response<ProxyBody> {
    let body = match a.body() {
        Cow::Borrowed(s) => Bytes::from_static(s.as_bytes()),
        Cow::Owned(s) => Bytes::from(s),
    };
    let mut r = Response::new(ProxyBody::Text(Full::new(body)));
    *r.status_mut() = StatusCode::from_u16(a.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    if a.closes() {
        r.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
    }
    r
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// Drops what a target must not see: hop-by-hop headers and what every
/// `Connection` header names ([`alb::dropped_request_header`], the fast path's rule).
fn strip_hop_by_hop(h: &mut hyper::HeaderMap) {
    let named: Vec<String> = h
        .get_all("connection")
        .iter()
        .flat_map(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .map(|t| t.trim_ascii())
                .filter(|t| !t.is_empty() && framing::connection_drops(t, t))
                .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
        })
        .collect();
    for n in named {
        h.remove(n.as_str());
    }
    for n in HOP_BY_HOP {
        if h.contains_key(*n) {
            h.remove(*n);
        }
    }
}

impl Balancer {
    pub(crate) async fn handle(
        &self,
        w: &Worker,
        peer: SocketAddr,
        peer_ip: &HeaderValue,
        check: &framing::ConnCheck,
        mut req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        // A head framed two ways never reaches a target (hyper accepts some).
        let refused = check.next_request();
        let (spec, picked) = self.select(w);
        // Host and path are read only when rules or the access log need them.
        let needs_target = !spec.rules.is_empty() || self.log.is_some();
        let host = if needs_target {
            req.headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string()
        } else {
            String::new()
        };
        let line = if self.log.is_some() {
            LogRequest::new(
                req.method().as_str().as_bytes(),
                host.as_bytes(),
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .as_bytes(),
                match req.version() {
                    hyper::Version::HTTP_10 => "HTTP/1.0",
                    _ => "HTTP/1.1",
                },
                req.headers()
                    .get("user-agent")
                    .map(|v| v.as_bytes())
                    .unwrap_or(b"-"),
            )
        } else {
            LogRequest::default()
        };
        let request_id = match req.headers().get("x-request-id") {
            Some(v) if alb::keeps_request_id(v.as_bytes()) => v.clone(),
            _ => HeaderValue::from_bytes(&alb::request_id_bytes())
                .unwrap_or(HeaderValue::from_static("-")),
        };
        let trace = match req.headers().get("x-amzn-trace-id") {
            Some(v) => v.clone(),
            None => HeaderValue::from_bytes(&alb::trace_id_bytes())
                .unwrap_or(HeaderValue::from_static("-")),
        };

        let respond = |mut res: Response<ProxyBody>,
                       target: Option<SocketAddr>,
                       target_status: Option<u16>| {
            w.counters
                .count(res.status().as_u16(), target_status, started.elapsed());
            if self.log.is_some() {
                self.access_log(
                    w,
                    peer,
                    target,
                    started,
                    res.status().as_u16(),
                    target_status,
                    &line,
                    trace.as_bytes(),
                    request_id.as_bytes(),
                );
            }
            res.headers_mut().insert(X_REQUEST_ID, request_id.clone());
            res
        };

        if let Some(why) = refused {
            return respond(answer(Answer::BadRequest(why)), None, None);
        }
        if !alb::routed(&spec.rules, &host, req.uri().path()) {
            return respond(answer(Answer::NoRoute), None, None);
        }
        let Some((addr, guard)) = picked else {
            return respond(answer(Answer::NoTarget), None, None);
        };

        // Headers the target sees.
        let h = req.headers_mut();
        let xff = match h.get("x-forwarded-for") {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + peer_ip.len());
                alb::forwarded_for(Some(prev.as_bytes()), peer_ip.as_bytes(), &mut v);
                HeaderValue::from_bytes(&v).ok()
            }
            None => Some(peer_ip.clone()),
        };
        if let Some(xff) = xff {
            h.insert(X_FORWARDED_FOR, xff);
        }
        h.insert(
            X_FORWARDED_PROTO,
            HeaderValue::from_static(alb::FORWARDED_PROTO),
        );
        h.insert(X_FORWARDED_PORT, self.port_value.clone());
        h.insert(X_REQUEST_ID, request_id.clone());
        h.insert(X_AMZN_TRACE_ID, trace.clone());
        // The target gets the request in origin form (`/path?query`), Host kept.
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            match pq.parse() {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => {
                    return respond(answer(Answer::BadTarget), None, None);
                }
            }
        }

        if req.headers().contains_key("upgrade") {
            let res = self.upgrade(addr, req, guard).await;
            let code = res.status().as_u16();
            return respond(res, Some(addr), Some(code));
        }

        strip_hop_by_hop(req.headers_mut());
        let idle = Duration::from_millis(spec.idle_timeout_ms);
        match tokio::time::timeout(idle, w.pool.send(addr, req)).await {
            Err(_) => respond(answer(Answer::TargetTimedOut), Some(addr), None),
            // The client's chunked body was malformed: its fault, not the target's.
            Ok(Err(_)) if check.body_bad() => respond(
                answer(Answer::BadRequest("malformed chunked body")),
                None,
                None,
            ),
            Ok(Err(_)) => respond(answer(Answer::TargetRefused), Some(addr), None),
            Ok(Ok((res, _sender)))
                if framing::response_ambiguous(
                    res.headers()
                        .iter()
                        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
                ) =>
            {
                // Framed two ways: not relayed, and the connection is not reused.
                respond(answer(Answer::TargetFramedTwoWays), Some(addr), None)
            }
            Ok(Ok((res, sender))) => {
                let code = res.status().as_u16();
                let keep = self.upstream_keep(
                    res.headers()
                        .get("keep-alive")
                        .and_then(|v| keep_alive_timeout(v.as_bytes())),
                );
                let (parts, body) = res.into_parts();
                let body = ProxyBody::Target(Tracked {
                    inner: body,
                    _guard: guard,
                    reuse: Some((w.pool.clone(), addr, sender, keep)),
                    done: false,
                });
                respond(Response::from_parts(parts, body), Some(addr), Some(code))
            }
        }
    }

    /// WebSocket (any `Upgrade`): one connection to the target, then bytes both ways.
    async fn upgrade(
        &self,
        addr: SocketAddr,
        mut req: Request<Incoming>,
        guard: Outstanding,
    ) -> Response<ProxyBody> {
        let Ok(stream) = TcpStream::connect(addr).await else {
            return answer(Answer::UpgradeRefused);
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            return answer(Answer::UpgradeHandshake);
        };
        tokio::spawn(conn.with_upgrades());
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (parts, _) = req.into_parts();
        let upstream_req = Request::from_parts(parts, Empty::<Bytes>::new());
        let Ok(mut res) = sender.send_request(upstream_req).await else {
            return answer(Answer::UpgradeReset);
        };
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (parts, body) = res.into_parts();
            return Response::from_parts(
                parts,
                ProxyBody::Target(Tracked {
                    inner: body,
                    _guard: guard,
                    reuse: None,
                    done: false,
                }),
            );
        }
        let upstream_upgrade = hyper::upgrade::on(&mut res);
        tokio::spawn(async move {
            let _guard = guard;
            if let (Ok(a), Ok(b)) = (client_upgrade.await, upstream_upgrade.await) {
                let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            }
        });
        let (parts, _) = res.into_parts();
        Response::from_parts(parts, ProxyBody::Text(Full::new(Bytes::new())))
    }
}

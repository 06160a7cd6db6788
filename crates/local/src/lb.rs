//! The load balancer of one HTTP service: a listener on a fixed local port, a target
//! group with health checks, and a reverse proxy with ALB's behaviour (502 refused,
//! 503 no target, 504 timeout, `X-Forwarded-*`, `X-Request-Id`, `X-Amzn-Trace-Id`,
//! listener rules, WebSocket upgrades, streaming both ways, an access log in ALB's
//! format). The decisions (health, selection) are `crate::core`; this is the shell.

mod access_log;
mod framing;
mod h1;
#[cfg(target_os = "linux")]
mod ring;
pub use access_log::LogLimits;
#[doc(hidden)]
pub use h1::fuzzing;
use pantstack_endpoint::io::ConnectionBudget;

use crate::core::balance::{self, Algorithm, Candidate};
use crate::core::health::{State, TargetHealth};
use crate::spec::{HttpSpec, Rule};
use bytes::Bytes;
use http_body_util::{Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::watch;

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

pub struct Target {
    pub task: u64,
    pub addr: SocketAddr,
    pub health: TargetHealth,
    pub outstanding: Arc<AtomicU32>,
    pub registered: Instant,
}

/// A target group: its targets and their health.
pub struct Group {
    targets: Mutex<Vec<Target>>,
    /// Bumped on every change that matters to selection (registration, health
    /// state, draining): workers refresh their private copy when it moves.
    generation: AtomicU64,
    pub algorithm: Algorithm,
}

/// A worker's private copy of the selection state (no shared cache line is written
/// per request but the target's in-flight counter).
struct View {
    generation: u64,
    targets: Vec<(SocketAddr, State, Arc<AtomicU32>)>,
    turn: usize,
    spec_generation: u64,
    spec: Arc<HttpSpec>,
}

/// A target's view for `status`.
#[derive(Clone, Debug)]
pub struct TargetView {
    pub task: u64,
    pub addr: SocketAddr,
    pub state: State,
    pub outstanding: u32,
    pub last_failure: Option<String>,
    pub ever_healthy: bool,
}

impl Group {
    pub fn new(algorithm: Algorithm) -> Self {
        Group {
            targets: Mutex::new(Vec::new()),
            generation: AtomicU64::new(1),
            algorithm,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Target>> {
        // A panic while holding this lock is a bug elsewhere; the data stays usable.
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn register(&self, task: u64, addr: SocketAddr) {
        let mut t = self.lock();
        t.retain(|x| x.task != task);
        t.push(Target {
            task,
            addr,
            health: TargetHealth::new(),
            outstanding: Arc::new(AtomicU32::new(0)),
            registered: Instant::now(),
        });
        self.bump();
    }

    /// Starts draining: no new requests go to the target.
    pub fn deregister(&self, task: u64) {
        for t in self.lock().iter_mut().filter(|t| t.task == task) {
            t.health.drain();
        }
        self.bump();
    }

    pub fn remove(&self, task: u64) {
        self.lock().retain(|t| t.task != task);
        self.bump();
    }

    fn refresh(&self, v: &mut View) {
        let g = self.lock();
        v.generation = self.generation.load(Ordering::Acquire);
        v.targets = g
            .iter()
            .map(|t| (t.addr, t.health.state, t.outstanding.clone()))
            .collect();
    }

    pub fn view(&self, task: u64) -> Option<TargetView> {
        self.lock().iter().find(|t| t.task == task).map(view_of)
    }

    pub fn views(&self) -> Vec<TargetView> {
        self.lock().iter().map(view_of).collect()
    }

    fn record(
        &self,
        task: u64,
        result: Result<(), String>,
        th: crate::core::health::Thresholds,
    ) -> bool {
        let mut g = self.lock();
        match g.iter_mut().find(|t| t.task == task) {
            Some(t) if t.health.state != State::Draining => {
                if t.health.record(result, th).is_some() {
                    self.bump();
                }
                true
            }
            _ => false,
        }
    }

    /// Picks a target from a worker's view; the guard counts the request as
    /// outstanding until dropped.
    fn pick(&self, v: &mut View) -> Option<(SocketAddr, Outstanding)> {
        if self.generation.load(Ordering::Acquire) != v.generation {
            self.refresh(v);
        }
        let mut buf = [Candidate {
            state: State::Draining,
            outstanding: 0,
        }; 64];
        let n = v.targets.len().min(buf.len());
        for (slot, (_, state, out)) in buf.iter_mut().zip(v.targets.iter()) {
            *slot = Candidate {
                state: *state,
                outstanding: if self.algorithm == Algorithm::LeastOutstanding {
                    out.load(Ordering::Relaxed)
                } else {
                    0
                },
            };
        }
        let i = balance::pick(&buf[..n], self.algorithm, &mut v.turn)?;
        let (addr, _, out) = &v.targets[i];
        out.fetch_add(1, Ordering::Relaxed);
        Some((*addr, Outstanding(out.clone())))
    }
}

fn view_of(t: &Target) -> TargetView {
    TargetView {
        task: t.task,
        addr: t.addr,
        state: t.health.state,
        outstanding: t.outstanding.load(Ordering::Relaxed),
        last_failure: t.health.last_failure.clone(),
        ever_healthy: t.health.ever_healthy,
    }
}

/// Decrements a target's outstanding count when the response body ends.
pub struct Outstanding(Arc<AtomicU32>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub type Sender = hyper::client::conn::http1::SendRequest<Incoming>;

/// Idle upstream connections of one worker thread, by target, the most recently
/// returned last, each with the time it must be closed by. The general path keeps
/// hyper senders here (a connection goes back once its response body has been read
/// to the end), the fast path raw streams. Connections idle past their deadline are
/// closed by the worker's tick ([`ConnPool::expire`]), as ALB closes idle target
/// connections.
pub struct ConnPool<C> {
    idle: Mutex<Vec<(SocketAddr, C, Instant)>>,
}

impl<C> Default for ConnPool<C> {
    fn default() -> Self {
        ConnPool {
            idle: Mutex::new(Vec::new()),
        }
    }
}

/// At most this many idle connections per worker and kind.
const POOL_MAX: usize = 1024;

impl<C> ConnPool<C> {
    /// The most recently returned connection to `addr` that `usable` accepts. The
    /// ones it refuses on the way are dropped; the rest of the pool is not scanned
    /// (this runs per request).
    fn take(&self, addr: SocketAddr, usable: impl Fn(&C) -> bool) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(i) = idle.iter().rposition(|(a, _, _)| *a == addr) {
            let (_, c, _) = idle.swap_remove(i);
            if usable(&c) {
                return Some(c);
            }
        }
        None
    }

    /// Gives a connection back, to be closed if still idle after `keep`.
    fn put(&self, addr: SocketAddr, c: C, keep: Duration) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX && !keep.is_zero() {
            idle.push((addr, c, Instant::now() + keep));
        }
    }

    /// Closes (drops) the connections idle past their deadline.
    fn expire(&self, now: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.iter().any(|(_, _, d)| *d <= now) {
            idle.retain(|(_, _, d)| *d > now);
        }
    }
}

/// The `timeout=N` of a target's `Keep-Alive` header: how long it keeps an idle
/// connection open.
fn keep_alive_timeout(value: &[u8]) -> Option<Duration> {
    value.split(|b| *b == b',').find_map(|p| {
        let (k, v) = p
            .trim_ascii()
            .split_at(p.trim_ascii().iter().position(|b| *b == b'=')?);
        if !k.trim_ascii().eq_ignore_ascii_case(b"timeout") {
            return None;
        }
        let v = std::str::from_utf8(v.get(1..)?).ok()?.trim();
        v.parse::<u64>().ok().map(Duration::from_secs)
    })
}

pub type Pool = ConnPool<Sender>;

impl ConnPool<Sender> {
    async fn connect(addr: SocketAddr) -> Result<Sender, ()> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| ())?
            .map_err(|_| ())?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ())?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends on a pooled connection (a stale one is retried on a fresh connection:
    /// the request had not been written).
    async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Sender), ()> {
        for _ in 0..3 {
            let mut sender = match self.take(addr, |s| !s.is_closed() && s.is_ready()) {
                Some(s) => s,
                None => Self::connect(addr).await?,
            };
            match sender.try_send_request(req).await {
                Ok(res) => return Ok((res, sender)),
                Err(mut e) => match e.take_message() {
                    Some(r) => req = r,
                    None => return Err(()),
                },
            }
        }
        Err(())
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

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Text(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

/// The answer to a request whose framing is ambiguous or malformed: 400, and the
/// connection closes (as ALB and nginx do).
fn refuse(why: &str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Text(Full::new(Bytes::from(format!("{why}\n")))));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r.headers_mut()
        .insert("connection", HeaderValue::from_static("close"));
    r
}

/// A fast per-thread pseudo-random generator (xorshift64*), seeded from the
/// standard library's random hash keys: ids must be unique, not secret.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// Writes `v`'s low `digits` nibbles as lowercase hex.
fn hex_into(out: &mut [u8], v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in 0..digits {
        out[i] = HEX[((v >> ((digits - 1 - i) * 4)) & 0xf) as usize];
    }
}

/// A random UUID-shaped request id (version 4 layout), as ALB's are.
pub fn request_id() -> String {
    String::from_utf8_lossy(&request_id_bytes()).into_owned()
}

fn request_id_bytes() -> [u8; 36] {
    let (a, b) = (random_u64(), random_u64());
    let mut buf = *b"00000000-0000-4000-8000-000000000000";
    hex_into(&mut buf[0..8], a >> 32, 8);
    hex_into(&mut buf[9..13], a >> 16, 4);
    hex_into(&mut buf[15..18], a, 3);
    hex_into(&mut buf[19..23], (b >> 48) & 0x3fff | 0x8000, 4);
    hex_into(&mut buf[24..36], b, 12);
    buf
}

/// `Root=1-{epoch seconds, 8 hex}-{24 hex}`, X-Ray's trace id format.
fn trace_id() -> String {
    String::from_utf8_lossy(&trace_id_bytes()).into_owned()
}

fn trace_id_bytes() -> [u8; 40] {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut buf = *b"Root=1-00000000-000000000000000000000000";
    hex_into(&mut buf[7..15], secs, 8);
    hex_into(&mut buf[16..32], random_u64(), 16);
    hex_into(&mut buf[32..40], random_u64(), 8);
    buf
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// Hop-by-hop headers: about one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut hyper::HeaderMap) {
    // What every `Connection` header names, but never `Content-Length`,
    // `Transfer-Encoding` or `Host` (the rule the fast path follows too).
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

/// `*` matches any run of characters, `?` one (ALB path and host patterns).
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn rule_matches(r: &Rule, host: &str, path: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host);
    r.path.as_deref().is_none_or(|p| glob(p, path))
        && r.host
            .as_deref()
            .is_none_or(|h| glob(&h.to_ascii_lowercase(), &host.to_ascii_lowercase()))
}

/// One service's load balancer.
///
/// Thread per core: every worker thread runs its own current-thread runtime with its
/// own `SO_REUSEPORT` listener on the same port and its own pool of upstream
/// connections; the target group is shared.
pub struct Balancer {
    pub name: String,
    pub port: u16,
    port_value: HeaderValue,
    spec_generation: AtomicU64,
    pub group: Arc<Group>,
    spec: Mutex<Arc<HttpSpec>>,
    check_client: Client<HttpConnector, Empty<Bytes>>,
    log: Option<access_log::AccessLog>,
    stop: watch::Sender<bool>,
    io_uring_workers: AtomicUsize,
    /// Sends made through the workers' rings.
    ring_sends: Arc<AtomicU64>,
    /// How long an idle upstream connection is kept (ms).
    upstream_idle_ms: AtomicU64,
    /// Client connections at once: each takes two descriptors (client and
    /// upstream) from this balancer's share of the process's budget; the excess
    /// is answered 503 and closed.
    budget: std::sync::RwLock<ConnectionBudget>,
}

/// Per worker thread: its upstream connections (the fast path's and the general
/// path's), its view of the target group and its access-log buffer.
struct Worker {
    raw: ConnPool<h1::Stream>,
    /// This worker thread's io_uring, when the fast path uses one.
    #[cfg(target_os = "linux")]
    ring: Option<Arc<ring::Ring>>,
    pool: Arc<Pool>,
    view: Mutex<View>,
    log: Mutex<Vec<u8>>,
}

impl Worker {
    /// A connected socket for the fast path, on this worker's ring if it has one.
    fn stream(&self, s: TcpStream) -> h1::Stream {
        #[cfg(target_os = "linux")]
        if let Some(r) = &self.ring {
            return h1::Stream::Ring(ring::Socket::new(r.clone(), s));
        }
        h1::Stream::Epoll(s)
    }
}

/// How the fast path does its socket I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring where the kernel allows it, else epoll (the default).
    Auto,
    /// io_uring, or the balancer does not start.
    IoUring,
    /// io_uring for every send, even while a worker serves one request only (where
    /// `IoUring` sends at once with `send(2)`): a diagnostic, slower at low load.
    IoUringAlways,
    /// The runtime's epoll reactor, one system call per receive and send.
    Epoll,
}

impl IoBackend {
    /// The environment variable that chooses the backend.
    pub const VAR: &'static str = "PANTSTACK_LB_IO";

    /// The value of `PANTSTACK_LB_IO` that names this backend.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Auto => "auto",
            IoBackend::IoUring => "io_uring",
            IoBackend::IoUringAlways => "io_uring_always",
            IoBackend::Epoll => "epoll",
        }
    }

    /// Parses `auto` (or empty), `io_uring`, `io_uring_always` or `epoll`.
    pub fn parse(s: &str) -> Result<IoBackend, String> {
        match s {
            "auto" | "" => Ok(IoBackend::Auto),
            "io_uring" => Ok(IoBackend::IoUring),
            "io_uring_always" => Ok(IoBackend::IoUringAlways),
            "epoll" => Ok(IoBackend::Epoll),
            other => Err(format!(
                "{}={other:?}: expected one of auto, io_uring, io_uring_always, epoll",
                IoBackend::VAR
            )),
        }
    }

    /// From `PANTSTACK_LB_IO` (`auto` when unset).
    pub fn from_env() -> std::io::Result<IoBackend> {
        match std::env::var(IoBackend::VAR) {
            Ok(v) => IoBackend::parse(&v)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
            Err(_) => Ok(IoBackend::Auto),
        }
    }
}

/// Puts the calling worker thread under `SCHED_BATCH` (Linux; its nice value is
/// kept).
///
/// A worker woken by a request then does not preempt what runs on that core (the
/// client, a target, any task); it runs when that process blocks or its time slice
/// ends. With the client in another session than the balancer, as with a terminal or
/// browser next to `pantstack up`, paired A/B runs gave ~1.1× the requests/s; with
/// everything in one session they gave no change (`bench/lb/NOTES.md`). Latency on
/// an idle machine is unchanged: a worker woken on an idle core runs at once.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn throughput_policy() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is an initialized `sched_param` that lives across the call,
    // which only reads it; pid 0 names the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn throughput_policy() -> std::io::Result<()> {
    Ok(())
}

/// The environment variable for the idle timeout of upstream connections (ms).
pub const UPSTREAM_IDLE_VAR: &str = "PANTSTACK_LB_UPSTREAM_IDLE_MS";

/// `PANTSTACK_LB_UPSTREAM_IDLE_MS`, 60 000 when unset.
fn upstream_idle_from_env() -> std::io::Result<u64> {
    match std::env::var(UPSTREAM_IDLE_VAR) {
        Ok(v) => v.trim().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{UPSTREAM_IDLE_VAR}={v:?}: expected milliseconds"),
            )
        }),
        Err(_) => Ok(60_000),
    }
}

/// The environment variable for the most client connections a balancer holds.
pub const MAX_CONNECTIONS_VAR: &str = "PANTSTACK_LB_MAX_CONNECTIONS";

/// `PANTSTACK_LB_MAX_CONNECTIONS`, 4096 when unset (and at most half the
/// process's connection budget, `pantstack_endpoint::io::process_budget`).
fn max_connections_from_env() -> std::io::Result<usize> {
    match std::env::var(MAX_CONNECTIONS_VAR) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{MAX_CONNECTIONS_VAR}={v:?}: expected a number of connections above 0"),
            )),
        },
        Err(_) => Ok(4096),
    }
}

fn connector() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(5)));
    c
}

impl Balancer {
    /// Binds `port` on 127.0.0.1 (0: any free port) and serves until `shutdown`,
    /// with the I/O backend that `PANTSTACK_LB_IO` names (io_uring where available
    /// when unset). Health checks run on the caller's runtime.
    pub async fn start(
        name: &str,
        port: u16,
        spec: HttpSpec,
        access_log: Option<std::path::PathBuf>,
    ) -> std::io::Result<Arc<Balancer>> {
        Balancer::start_with(name, port, spec, access_log, IoBackend::from_env()?).await
    }

    /// [`Balancer::start`] with an explicit I/O backend.
    pub async fn start_with(
        name: &str,
        port: u16,
        spec: HttpSpec,
        access_log: Option<std::path::PathBuf>,
        io: IoBackend,
    ) -> std::io::Result<Arc<Balancer>> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 16);
        let mut sockets = Vec::new();
        let mut port = port;
        for _ in 0..workers {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.set_reuseaddr(true)?;
            s.set_reuseport(true)?;
            s.set_nodelay(true)?;
            s.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
            port = s.local_addr()?.port();
            sockets.push(s);
        }
        let check_client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector());
        let log = match access_log {
            Some(p) => Some(access_log::AccessLog::open(p, LogLimits::from_env()?)?),
            None => None,
        };
        let (stop, _) = watch::channel(false);
        let b = Arc::new(Balancer {
            name: name.to_string(),
            port,
            port_value: HeaderValue::from(port),
            spec_generation: AtomicU64::new(1),
            group: Arc::new(Group::new(spec.algorithm)),
            spec: Mutex::new(Arc::new(spec)),
            check_client,
            log,
            stop,
            io_uring_workers: AtomicUsize::new(0),
            ring_sends: Arc::new(AtomicU64::new(0)),
            upstream_idle_ms: AtomicU64::new(upstream_idle_from_env()?),
            budget: std::sync::RwLock::new(ConnectionBudget::new(max_connections_from_env()?, 2)),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        for (i, socket) in sockets.into_iter().enumerate() {
            let me = b.clone();
            let mut stopped = b.stop.subscribe();
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("lb-{name}-{i}"))
                .spawn(move || {
                    // An optimization only: where the policy cannot be set, the
                    // worker runs under the default one.
                    let _ = throughput_policy();
                    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let listener = match socket.listen(4096) {
                            Ok(l) => l,
                            Err(e) => {
                                let _ = ready.send(Err(e));
                                return;
                            }
                        };
                        #[cfg(target_os = "linux")]
                        let ring = match io {
                            IoBackend::Epoll => None,
                            IoBackend::Auto | IoBackend::IoUring | IoBackend::IoUringAlways => {
                                let always = io == IoBackend::IoUringAlways;
                                let sends = me.ring_sends.clone();
                                match ring::Ring::new(always, sends).and_then(|r| r.driver().map(|d| (r, d))) {
                                    Ok((r, driver)) => {
                                        tokio::spawn(driver);
                                        me.io_uring_workers.fetch_add(1, Ordering::Relaxed);
                                        Some(r)
                                    }
                                    Err(e) if io != IoBackend::Auto => {
                                        let _ = ready.send(Err(std::io::Error::new(
                                            e.kind(),
                                            format!("{}={}: the kernel refused io_uring: {e}", IoBackend::VAR, io.name()),
                                        )));
                                        return;
                                    }
                                    Err(_) => None,
                                }
                            }
                        };
                        #[cfg(not(target_os = "linux"))]
                        if matches!(io, IoBackend::IoUring | IoBackend::IoUringAlways) {
                            let _ = ready.send(Err(std::io::Error::new(
                                std::io::ErrorKind::Unsupported,
                                format!("{}={}: io_uring exists on Linux only", IoBackend::VAR, io.name()),
                            )));
                            return;
                        }
                        let _ = ready.send(Ok(()));
                        let worker = Arc::new(Worker {
                            #[cfg(target_os = "linux")]
                            ring,
                            raw: ConnPool::default(),
                            pool: Arc::new(Pool::default()),
                            view: Mutex::new(View {
                                generation: 0,
                                targets: Vec::new(),
                                turn: i,
                                spec_generation: 0,
                                spec: me.spec(),
                            }),
                            log: Mutex::new(Vec::new()),
                        });
                        let mut flush = tokio::time::interval(Duration::from_millis(500));
                        loop {
                            tokio::select! {
                                _ = stopped.changed() => break,
                                _ = flush.tick() => {
                                    me.flush_log(&worker, 0);
                                    let now = Instant::now();
                                    worker.raw.expire(now);
                                    worker.pool.expire(now);
                                }
                                accepted = listener.accept() => {
                                    let Ok((stream, peer)) = accepted else {
                                        // Out of descriptors (EMFILE) or reset before
                                        // accept: back off instead of spinning.
                                        tokio::time::sleep(Duration::from_millis(10)).await;
                                        continue;
                                    };
                                    let Some(permit) = me.connection_permit() else {
                                        pantstack_endpoint::io::refuse_busy(stream);
                                        continue;
                                    };
                                    let _ = stream.set_nodelay(true);
                                    let stream = worker.stream(stream);
                                    let (b, w) = (me.clone(), worker.clone());
                                    let idle = Duration::from_millis(b.spec().idle_timeout_ms);
                                    // Computed once per connection.
                                    let peer_ip = peer.ip().to_string();
                                    tokio::spawn(async move {
                                        let _permit = permit;
                                        // The fast path first; what it cannot take goes,
                                        // with the bytes read so far, to the general one.
                                        let Some((stream, read)) = b
                                            .serve_fast(&w, stream, peer, peer_ip.as_bytes(), idle)
                                            .await
                                        else {
                                            return;
                                        };
                                        let peer_ip = HeaderValue::from_str(&peer_ip)
                                            .unwrap_or(HeaderValue::from_static("-"));
                                        // Every request head hyper reads is checked by
                                        // the fast path's framing rules on its way.
                                        let check = Arc::new(framing::ConnCheck::default());
                                        let io = framing::Inspected::new(
                                            pantstack_endpoint::io::Prefixed::new(read, stream),
                                            check.clone(),
                                        );
                                        let svc = hyper::service::service_fn(move |req| {
                                            let (b, w, ip, check) = (b.clone(), w.clone(), peer_ip.clone(), check.clone());
                                            async move { Ok::<_, Infallible>(b.handle(&w, peer, &ip, &check, req).await) }
                                        });
                                        let _ = hyper::server::conn::http1::Builder::new()
                                            .keep_alive(true)
                                            .timer(TokioTimer::new())
                                            .header_read_timeout(idle)
                                            .serve_connection(TokioIo::new(io), svc)
                                            .with_upgrades()
                                            .await;
                                    });
                                }
                            }
                        }
                        me.flush_log(&worker, 0);
                    });
                })?;
        }
        drop(ready_tx);
        // Every worker listens before the port is announced.
        for r in ready_rx.iter().take(workers) {
            if let Err(e) = r {
                b.shutdown();
                return Err(e);
            }
        }
        Ok(b)
    }

    /// How many worker threads serve their fast path on io_uring (the rest use
    /// epoll).
    pub fn io_uring_workers(&self) -> usize {
        self.io_uring_workers.load(Ordering::Relaxed)
    }

    /// How many sends went through the workers' io_uring rings so far.
    pub fn io_uring_sends(&self) -> u64 {
        self.ring_sends.load(Ordering::Relaxed)
    }

    pub fn spec(&self) -> Arc<HttpSpec> {
        self.spec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_spec(&self, spec: HttpSpec) {
        *self.spec.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(spec);
        self.spec_generation.fetch_add(1, Ordering::Release);
    }

    /// The worker's own copy of the spec (refreshed when it changes), and a target.
    fn select(&self, w: &Worker) -> (Arc<HttpSpec>, Option<(SocketAddr, Outstanding)>) {
        let mut v = w.view.lock().unwrap_or_else(|e| e.into_inner());
        let g = self.spec_generation.load(Ordering::Acquire);
        if g != v.spec_generation {
            v.spec = Arc::new((*self.spec()).clone());
            v.spec_generation = g;
        }
        let picked = self.group.pick(&mut v);
        (v.spec.clone(), picked)
    }

    /// Stops accepting; each worker writes out its access log.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Writes a worker's buffered access-log lines when more than `min` bytes wait
    /// (one `write` of whole lines, so workers never interleave inside a line; the
    /// file rolls by size and age, [`LogLimits`]).
    fn flush_log(&self, w: &Worker, min: usize) {
        let Some(log) = &self.log else { return };
        let mut buf = w.log.lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() > min {
            log.append(&buf);
            buf.clear();
        }
    }

    /// Changes when the access log rolls and how many rolled files are kept (from
    /// `PANTSTACK_LB_LOG_*` at start, [`LogLimits::from_env`]).
    pub fn set_access_log_limits(&self, limits: LogLimits) {
        if let Some(log) = &self.log {
            log.set_limits(limits);
        }
    }

    /// How many client connections this balancer holds at once (from
    /// `PANTSTACK_LB_MAX_CONNECTIONS` at start, 4096 when unset; at most half the
    /// process's connection budget). Connections open now keep their permits.
    pub fn set_max_connections(&self, n: usize) {
        if let Ok(mut b) = self.budget.write() {
            *b = ConnectionBudget::new(n, 2);
        }
    }

    /// The descriptors of one more client connection (client and upstream), if
    /// this balancer and the process have them.
    fn connection_permit(&self) -> Option<pantstack_endpoint::io::ConnectionPermit> {
        self.budget.read().ok()?.try_acquire()
    }

    /// How long idle upstream connections are kept open (from
    /// `PANTSTACK_LB_UPSTREAM_IDLE_MS` at start, 60 s when unset); a target's
    /// shorter `Keep-Alive: timeout=N` wins. Checked every half second.
    pub fn set_upstream_idle_timeout(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.upstream_idle_ms.store(ms, Ordering::Relaxed);
    }

    /// How long to keep an upstream connection idle: ours, or the target's
    /// `Keep-Alive` timeout when shorter.
    fn upstream_keep(&self, target: Option<Duration>) -> Duration {
        let ours = Duration::from_millis(self.upstream_idle_ms.load(Ordering::Relaxed));
        target.map_or(ours, |t| t.min(ours))
    }

    /// Registers a target and starts its health checks.
    pub fn register(self: &Arc<Self>, task: u64, addr: SocketAddr) {
        self.group.register(task, addr);
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let spec = me.spec();
                let result = me.check(addr, &spec).await;
                if !me.group.record(task, result, spec.thresholds) || *me.stop.borrow() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(spec.interval_ms)).await;
            }
        });
    }

    async fn check(&self, addr: SocketAddr, spec: &HttpSpec) -> Result<(), String> {
        let uri = format!("http://{addr}{}", spec.health_path);
        let req = Request::get(uri)
            .header("user-agent", "ELB-HealthChecker/2.0")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(
            Duration::from_millis(spec.timeout_ms),
            self.check_client.request(req),
        )
        .await
        {
            Err(_) => Err(format!("timeout after {} ms", spec.timeout_ms)),
            Ok(Err(e)) if e.is_connect() => Err("connection refused".into()),
            Ok(Err(e)) => Err(format!("error: {e}")),
            Ok(Ok(res)) => {
                let code = res.status().as_u16();
                if spec.matcher.matches(code) {
                    Ok(())
                } else {
                    Err(format!("HTTP {code} from {}", spec.health_path))
                }
            }
        }
    }

    async fn handle(
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
            Some(v) if !v.is_empty() && v.len() <= 200 => v.clone(),
            _ => HeaderValue::from_str(&request_id()).unwrap_or(HeaderValue::from_static("-")),
        };
        let trace = match req.headers().get("x-amzn-trace-id") {
            Some(v) => v.clone(),
            None => HeaderValue::from_str(&trace_id()).unwrap_or(HeaderValue::from_static("-")),
        };

        let respond = |mut res: Response<ProxyBody>,
                       target: Option<SocketAddr>,
                       target_status: Option<u16>| {
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
            return respond(refuse(why), None, None);
        }
        if !spec.rules.is_empty()
            && !spec
                .rules
                .iter()
                .any(|r| rule_matches(r, &host, req.uri().path()))
        {
            return respond(text(StatusCode::NOT_FOUND, "no route\n"), None, None);
        }
        let Some((addr, guard)) = picked else {
            return respond(
                text(StatusCode::SERVICE_UNAVAILABLE, "no target registered\n"),
                None,
                None,
            );
        };

        // Headers the target sees.
        let h = req.headers_mut();
        let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", peer.ip())).ok(),
            None => Some(peer_ip.clone()),
        };
        if let Some(xff) = xff {
            h.insert(X_FORWARDED_FOR, xff);
        }
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
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
                    return respond(
                        text(StatusCode::BAD_REQUEST, "bad request target\n"),
                        None,
                        None,
                    );
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
            Err(_) => respond(
                text(StatusCode::GATEWAY_TIMEOUT, "target timed out\n"),
                Some(addr),
                None,
            ),
            // The client's chunked body was malformed: its fault, not the target's.
            Ok(Err(_)) if check.body_bad() => respond(refuse("malformed chunked body"), None, None),
            Ok(Err(_)) => respond(
                text(
                    StatusCode::BAD_GATEWAY,
                    "target refused or reset the connection\n",
                ),
                Some(addr),
                None,
            ),
            Ok(Ok((res, _sender)))
                if framing::response_ambiguous(
                    res.headers()
                        .iter()
                        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
                ) =>
            {
                // Framed two ways: not relayed, and the connection is not reused.
                respond(
                    text(StatusCode::BAD_GATEWAY, "target response framed two ways\n"),
                    Some(addr),
                    None,
                )
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
            return text(StatusCode::BAD_GATEWAY, "target refused the connection\n");
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            return text(StatusCode::BAD_GATEWAY, "target handshake failed\n");
        };
        tokio::spawn(conn.with_upgrades());
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (parts, _) = req.into_parts();
        let upstream_req = Request::from_parts(parts, Empty::<Bytes>::new());
        let Ok(mut res) = sender.send_request(upstream_req).await else {
            return text(StatusCode::BAD_GATEWAY, "target reset the connection\n");
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

    /// One line in the order of ALB access logs (fields we do not have are `-`);
    /// every field the client controls is escaped ([`escape_log_field`]).
    #[allow(clippy::too_many_arguments)]
    fn access_log(
        &self,
        worker: &Worker,
        client: SocketAddr,
        target: Option<SocketAddr>,
        started: Instant,
        status: u16,
        target_status: Option<u16>,
        request: &LogRequest,
        trace: &[u8],
        request_id: &[u8],
    ) {
        if self.log.is_none() {
            return;
        }
        let mut w = worker.log.lock().unwrap_or_else(|e| e.into_inner());
        let now = crate::clock::rfc3339_micros(SystemTime::now());
        let elapsed = started.elapsed().as_secs_f64();
        let name = &self.name;
        let target = target.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        let tstatus = target_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            w,
            "http {now} app/{name}/local {client} {target} 0.000 {elapsed:.3} 0.000 {status} {tstatus} - - \""
        );
        w.extend_from_slice(request.request());
        w.extend_from_slice(b"\" \"");
        w.extend_from_slice(request.user_agent());
        let _ = write!(w, "\" - - targetgroup/{name}/local \"");
        escape_log_field(&mut w, trace, true);
        let _ = write!(
            w,
            "\" \"-\" \"-\" 0 {now} \"forward\" \"-\" \"-\" \"{target}\" \"{tstatus}\" \"-\" \"-\" "
        );
        escape_log_field(&mut w, request_id, false);
        w.push(b'\n');
        let full = w.len() > 64 * 1024;
        drop(w);
        if full {
            self.flush_log(worker, 0);
        }
    }
}

/// Writes a client-controlled access-log field so that it cannot leave its place:
/// `"` and `\` are escaped with a backslash, control and non-ASCII bytes written as
/// `\xHH` (ALB escapes its quoted fields the same way), and in an unquoted field a
/// space too. An empty field is `-`.
pub(crate) fn escape_log_field(out: &mut Vec<u8>, field: &[u8], quoted: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if field.is_empty() {
        out.push(b'-');
        return;
    }
    for &b in field {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b' ' if !quoted => out.extend_from_slice(b"\\x20"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
    }
}

/// The client-controlled text of an access-log line, escaped once when the request
/// arrives (both paths build it here): the `request` field (`METHOD
/// http://host/path VERSION`) and the `user_agent` field, in one buffer.
#[derive(Default)]
pub(crate) struct LogRequest {
    buf: Vec<u8>,
    split: usize,
}

impl LogRequest {
    pub(crate) fn new(
        method: &[u8],
        host: &[u8],
        target: &[u8],
        version: &str,
        user_agent: &[u8],
    ) -> Self {
        let mut buf =
            Vec::with_capacity(method.len() + host.len() + target.len() + user_agent.len() + 24);
        escape_log_field(&mut buf, method, true);
        buf.extend_from_slice(b" http://");
        escape_log_field(&mut buf, host, true);
        escape_log_field(&mut buf, target, true);
        buf.push(b' ');
        buf.extend_from_slice(version.as_bytes());
        let split = buf.len();
        escape_log_field(&mut buf, user_agent, true);
        LogRequest { buf, split }
    }

    fn request(&self) -> &[u8] {
        self.buf.get(..self.split).unwrap_or(b"-")
    }

    fn user_agent(&self) -> &[u8] {
        self.buf.get(self.split..).unwrap_or(b"-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/jobs*", "/jobs/1"));
        assert!(glob("/jobs*", "/jobs"));
        assert!(!glob("/jobs*", "/job"));
        assert!(glob("*.example.com", "api.example.com"));
        assert!(glob("/a?c", "/abc"));
        assert!(!glob("/a?c", "/abbc"));
    }

    #[test]
    fn keep_alive_timeouts_are_read() {
        let t = |v: &[u8]| keep_alive_timeout(v);
        assert_eq!(t(b"timeout=5"), Some(Duration::from_secs(5)));
        assert_eq!(t(b"max=100, Timeout = 7"), Some(Duration::from_secs(7)));
        assert_eq!(t(b"max=100"), None);
        assert_eq!(t(b"timeout=x"), None);
    }

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{a}"
        );
        assert!(a.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
        let t = trace_id();
        assert!(t.starts_with("Root=1-") && t.len() == 40, "{t}");
        assert_ne!(t, trace_id());
    }
}

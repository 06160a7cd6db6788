//! The load balancer of one HTTP service, with ALB's behaviour: a listener on a local
//! port, a target group with health checks, and a reverse proxy (502 refused, 503 no
//! target, 504 timeout, `X-Forwarded-*`, `X-Request-Id`, `X-Amzn-Trace-Id`, listener
//! rules, WebSocket upgrades, streaming both ways, an access log in ALB's format).
//!
//! Rooms:
//! - [`alb`]: the ALB behaviour both HTTP paths apply, written once (ids, forwarded
//!   headers, hop-by-hop handling, rules, the balancer's own answers, access-log lines);
//! - `h1`: the fast path (HTTP/1.1 with small bodies, parsed in place, epoll or io_uring);
//! - `general`: hyper's path for everything the fast path hands over (chunked or large
//!   bodies, upgrades, `Expect`, HTTP/1.0);
//! - [`group`], [`health`], [`balance`]: the target group, health state machine and
//!   selection (pure decisions over a clock passed in);
//! - [`pool`]: idle upstream connections; `framing`: request-smuggling rules shared by
//!   both paths; `ring`: the io_uring driver (Linux); `access_log`: rolling log files.
//!
//! All the workspace's `unsafe` code is in this crate (`ring` and the worker
//! threads' scheduling policy), each block with its SAFETY argument.

mod access_log;
pub mod alb;
pub mod balance;
mod framing;
mod general;
pub mod group;
mod h1;
pub mod health;
pub mod pool;
#[cfg(target_os = "linux")]
mod ring;
pub mod spec;
pub mod stats;

pub use access_log::LogLimits;
pub use general::ProxyBody;
pub use group::{Group, Outstanding, Target, TargetView};
#[doc(hidden)]
pub use h1::fuzzing;
pub use spec::{HttpSpec, Matcher, Rule};

use crate::group::View;
use crate::pool::{ConnPool, Pool};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pantstack_rt::budget::{ConnectionBudget, ConnectionPermit};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;

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
    /// Every worker thread's request counters (`stats`).
    counters: Mutex<Vec<Arc<stats::Counters>>>,
}

/// Per worker thread: its upstream connections (the fast path's and the general
/// path's), its view of the target group and its access-log buffer.
pub(crate) struct Worker {
    raw: ConnPool<h1::Stream>,
    /// This worker thread's io_uring, when the fast path uses one.
    #[cfg(target_os = "linux")]
    ring: Option<Arc<ring::Ring>>,
    pool: Arc<Pool>,
    view: Mutex<View>,
    log: Mutex<Vec<u8>>,
    /// This worker's request counters (also in `Balancer::counters`).
    counters: Arc<stats::Counters>,
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
/// process's connection budget, `pantstack_rt::budget::process_budget`).
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
            counters: Mutex::new(Vec::new()),
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
                        let counters = Arc::new(stats::Counters::default());
                        me.counters
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(counters.clone());
                        let worker = Arc::new(Worker {
                            counters,
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
                                        pantstack_rt::budget::refuse_busy(stream);
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
                                        // Boxed: hyper's connection state is allocated only
                                        // for the connections that need it, not carried by
                                        // every idle fast-path connection's task.
                                        Box::pin(async move {
                                        let peer_ip = HeaderValue::from_str(&peer_ip)
                                            .unwrap_or(HeaderValue::from_static("-"));
                                        // Every request head hyper reads is checked by
                                        // the fast path's framing rules on its way.
                                        let check = Arc::new(framing::ConnCheck::default());
                                        let io = framing::Inspected::new(
                                            pantstack_rt::stream::Prefixed::new(read, stream),
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
                                        })
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

    /// The requests counted so far, summed over the worker threads.
    pub fn stats(&self) -> stats::Snapshot {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        stats::Snapshot::of(counters.iter().map(|c| &**c))
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
    fn connection_permit(&self) -> Option<ConnectionPermit> {
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
}

#[cfg(test)]
mod tests {
    use crate::alb::{glob, request_id, trace_id};
    use crate::pool::keep_alive_timeout;
    use std::time::Duration;

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

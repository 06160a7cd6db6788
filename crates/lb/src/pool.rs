//! Idle upstream connections of one worker thread, closed when idle past their
//! deadline, as ALB closes idle target connections.

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub type Sender = hyper::client::conn::http1::SendRequest<Incoming>;

/// Idle upstream connections of one worker thread, by target, the most recently
/// returned last, each with the time it must be closed by. The general path keeps
/// hyper senders here (a connection goes back once its response body has been read
/// to the end), the fast path raw streams. Connections idle past their deadline are
/// closed by the worker's tick (`ConnPool::expire`), as ALB closes idle target
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
    pub(crate) fn take(&self, addr: SocketAddr, usable: impl Fn(&C) -> bool) -> Option<C> {
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
    pub(crate) fn put(&self, addr: SocketAddr, c: C, keep: Duration) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX && !keep.is_zero() {
            idle.push((addr, c, Instant::now() + keep));
        }
    }

    /// Closes (drops) the connections idle past their deadline.
    pub(crate) fn expire(&self, now: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.iter().any(|(_, _, d)| *d <= now) {
            idle.retain(|(_, _, d)| *d > now);
        }
    }
}

/// The `timeout=N` of a target's `Keep-Alive` header: how long it keeps an idle
/// connection open.
pub(crate) fn keep_alive_timeout(value: &[u8]) -> Option<Duration> {
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
    pub(crate) async fn send(
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

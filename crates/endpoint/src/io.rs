//! I/O helpers shared by the endpoint's and the load balancer's HTTP/1.1 fast paths,
//! and the process's connection budget every listener draws from.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A client connection handed to the general path: the bytes the fast path has
/// read already come first.
pub struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Prefixed {
    pub fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.pos < me.prefix.len() {
            let n = buf.remaining().min(me.prefix.len() - me.pos);
            buf.put_slice(&me.prefix[me.pos..me.pos + n]);
            me.pos += n;
            if me.pos == me.prefix.len() {
                me.prefix = Vec::new();
                me.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
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

/// A connection that must keep moving: in every window of `window` in which it
/// is polled and waits, at least `min_bytes` must be read or written, else the
/// read or write fails with `TimedOut`. Stops slow-body and slow-reader clients
/// (a body trickled a few bytes at a time, a download never read) that an idle
/// timeout alone lets live forever; a request that is simply being answered (a
/// long poll) is not polled for I/O and is not affected.
pub struct Watchdog<S> {
    inner: S,
    window: std::time::Duration,
    min_bytes: u64,
    moved: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> Watchdog<S> {
    pub fn new(inner: S, window: std::time::Duration, min_bytes: u64) -> Self {
        Watchdog {
            inner,
            window,
            min_bytes,
            moved: 0,
            deadline: Box::pin(tokio::time::sleep(window)),
        }
    }

    /// Counts `n` bytes moved; a window that moved enough starts a new one.
    fn progress(&mut self, n: usize) {
        self.moved += n as u64;
        if self.moved >= self.min_bytes {
            self.moved = 0;
            let next = tokio::time::Instant::now() + self.window;
            self.deadline.as_mut().reset(next);
        }
    }

    /// While waiting: whether the window ended without enough progress.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// A write's result, counted; a pending write past the window fails.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                self.progress(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(too_slow())),
            other => other,
        }
    }
}

fn too_slow() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the connection moved too little data for too long",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Watchdog<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut me.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                me.progress(buf.filled().len() - before);
                Poll::Ready(r)
            }
            Poll::Pending if me.expired(cx) => Poll::Ready(Err(too_slow())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watchdog<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        me.wrote(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        me.wrote(cx, r)
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

/// File descriptors kept out of every listener's reach: the control socket,
/// health checks, task management (pipes, log files, `docker`), the journal.
pub const RESERVED_FDS: usize = 256;

/// The process's connection budget: its open-file limit less what is reserved
/// ([`RESERVED_FDS`], or an eighth of the limit if that is more). Every listener
/// of the process (the AWS endpoint, each load balancer) takes its connections'
/// descriptors from this one budget, and no listener more than a quarter of it,
/// so a flood of connections to one port can neither starve the other listeners
/// nor leave the supervisor without descriptors.
pub fn process_budget() -> &'static Arc<Semaphore> {
    static BUDGET: OnceLock<Arc<Semaphore>> = OnceLock::new();
    BUDGET.get_or_init(|| {
        let limit = open_file_limit().unwrap_or(1024);
        let reserved = RESERVED_FDS.max(limit / 8);
        Arc::new(Semaphore::new(limit.saturating_sub(reserved).max(16)))
    })
}

/// The soft limit on open files (`/proc/self/limits`), if it can be read.
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    match soft {
        "unlimited" => Some(1 << 20),
        n => n.parse().ok(),
    }
}

/// One listener's share of the process's connection budget.
#[derive(Clone)]
pub struct ConnectionBudget {
    listener: Arc<Semaphore>,
    /// Descriptors one connection uses.
    each: u32,
}

/// What one accepted connection holds; dropping it returns its descriptors.
pub struct ConnectionPermit {
    _listener: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

impl ConnectionBudget {
    /// A listener allowed `max` connections at once, each using `each`
    /// descriptors (the endpoint: its socket and an object file; a balancer: the
    /// client's socket and the upstream one), and at most a quarter of the
    /// process's budget, so that floods of three listeners leave room for the
    /// others.
    pub fn new(max: usize, each: u32) -> Self {
        let share = process_budget().available_permits() / 4;
        let fds = max
            .saturating_mul(each as usize)
            .min(share)
            .max(each as usize);
        ConnectionBudget {
            listener: Arc::new(Semaphore::new(fds)),
            each,
        }
    }

    /// How many more connections this listener may hold.
    pub fn capacity(&self) -> usize {
        self.listener.available_permits() / self.each.max(1) as usize
    }

    /// Permits for a new connection, or None when this listener or the process
    /// is at its limit: the caller refuses the connection at once.
    pub fn try_acquire(&self) -> Option<ConnectionPermit> {
        let listener = self
            .listener
            .clone()
            .try_acquire_many_owned(self.each)
            .ok()?;
        let process = process_budget()
            .clone()
            .try_acquire_many_owned(self.each)
            .ok()?;
        Some(ConnectionPermit {
            _listener: listener,
            _process: process,
        })
    }
}

/// Answers a connection refused for lack of capacity with a 503 (best effort,
/// without waiting) and closes it.
pub fn refuse_busy(stream: TcpStream) {
    const BODY: &str = "the local cloud has too many open connections on this port\n";
    let busy = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(busy.as_bytes());
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_never_takes_more_than_its_share() {
        assert!(open_file_limit().is_some_and(|n| n > 0));
        let b = ConnectionBudget::new(3, 2);
        assert_eq!(b.capacity(), 3);
        let held: Vec<_> = (0..3).filter_map(|_| b.try_acquire()).collect();
        assert_eq!(held.len(), 3);
        assert!(b.try_acquire().is_none(), "a fourth connection is refused");
        drop(held);
        assert!(b.try_acquire().is_some(), "permits come back when dropped");
        let huge = ConnectionBudget::new(usize::MAX, 2);
        assert!(huge.capacity() * 2 <= process_budget().available_permits() / 4 + 2);
    }
}

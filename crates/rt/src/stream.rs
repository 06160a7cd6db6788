//! Stream adapters for the HTTP/1.1 fast paths of the endpoint and the load balancer:
//! [`Prefixed`] replays bytes a fast path has read already to the general path;
//! [`Watchdog`] fails a connection that moves too little data for too long.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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

    /// The socket (for a write that bypasses this stream, as `sendfile` does).
    pub fn stream(&self) -> &TcpStream {
        &self.inner
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

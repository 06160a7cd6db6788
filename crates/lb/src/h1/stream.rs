//! The fast path's sockets: a connection on the runtime's epoll reactor or on the
//! worker's io_uring, and the idle timer of a client connection.

#[cfg(target_os = "linux")]
use crate::ring;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether an idle pooled upstream connection is still open. An idle upstream
/// connection never has anything to read, so one that the runtime has seen become
/// readable was closed (or misbehaved); the check costs a system call only then.
pub(crate) fn still_open(s: &TcpStream) -> bool {
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
pub(crate) enum Stream {
    Epoll(TcpStream),
    #[cfg(target_os = "linux")]
    Ring(ring::Socket),
}

impl Stream {
    /// Reads more bytes into `buf` (no zeroing: the spare capacity is filled by the
    /// kernel). `Ok(0)` is the end of the stream. A future dropped early may leave
    /// `buf` empty.
    pub(crate) async fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> std::io::Result<usize> {
        match self {
            Stream::Epoll(s) => {
                buf.reserve(want.max(4096));
                s.read_buf(buf).await
            }
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => s.recv(buf, want).await,
        }
    }

    /// Waits until the connection has bytes to read (or its end, or an error).
    pub(crate) async fn readable(&self) -> std::io::Result<()> {
        match self {
            Stream::Epoll(s) => s.readable().await,
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => s.get_ref().readable().await,
        }
    }

    /// Writes `buf[range]` whole. A future dropped early may leave `buf` empty.
    pub(crate) async fn send(
        &mut self,
        buf: &mut Vec<u8>,
        range: Range<usize>,
    ) -> std::io::Result<()> {
        match self {
            Stream::Epoll(s) => s.write_all(buf.get(range).unwrap_or_default()).await,
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => s.send(buf, range).await,
        }
    }

    /// Counts a request as in progress on this worker while the guard lives.
    pub(crate) fn busy(&self) -> Option<impl Drop + use<>> {
        match self {
            Stream::Epoll(_) => None,
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => Some(s.busy()),
        }
    }

    pub(crate) fn still_open(&self) -> bool {
        match self {
            Stream::Epoll(s) => still_open(s),
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => still_open(s.get_ref()),
        }
    }

    pub(crate) async fn shutdown(&mut self) {
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
    pub(crate) fn into_tokio(self) -> Option<TcpStream> {
        match self {
            Stream::Epoll(s) => Some(s),
            #[cfg(target_os = "linux")]
            Stream::Ring(s) => s.into_inner(),
        }
    }
}

/// One timer per connection, re-armed for each wait: moving a deadline later is an
/// atomic update inside tokio's timer, not a new registration per request.
pub(crate) struct Idle {
    pub(crate) timer: Pin<Box<tokio::time::Sleep>>,
    pub(crate) period: Duration,
}

impl Idle {
    pub(crate) fn new(period: Duration) -> Self {
        Idle {
            timer: Box::pin(tokio::time::sleep(period)),
            period,
        }
    }

    /// `f`'s output, or `None` when nothing finished it within the period.
    pub(crate) async fn run<F: std::future::Future>(&mut self, f: F) -> Option<F::Output> {
        self.run_by(f, None).await
    }

    /// [`Idle::run`], ending at `deadline` too if that comes first.
    pub(crate) async fn run_by<F: std::future::Future>(
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

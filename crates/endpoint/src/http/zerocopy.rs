//! Object data from its file to the socket with `sendfile(2)`, on hyper's path.
//!
//! s3s decides everything about a GetObject's answer (authorization, conditions,
//! the range, headers, errors); only the body's transport changes. The handler
//! opens the object's file while it holds the state's lock (so the bytes are
//! those of the version it authorized, whatever a later overwrite or delete
//! does: a new version is a new file, and an unlinked file stays readable
//! through its open descriptor) and puts a [`FileRange`] in the answer's
//! extensions. `general` then swaps the body for a [`placeholder`]: frames of a
//! private static buffer, `len` bytes in all, which hyper frames and queues
//! like any body (Content-Length, or chunks) without copying them. The
//! connection's stream, [`Zerocopy`], knows that buffer by address: a write of
//! placeholder bytes becomes a `sendfile` of as many bytes from the file of the
//! body being written, and the kernel copies them from the page cache to the
//! socket. Everything else (the head, other bodies) is written as it was.
//!
//! The file of a body is queued on the connection ([`Sink`]) when hyper first
//! polls the body, so only bodies hyper actually writes take a place in the
//! queue, in the order it writes them; placeholder bytes with no file queued,
//! or more of them than the file has, fail the connection instead of sending
//! anything else. Memory per body is constant (no buffer holds its data).

use crate::s3::FileRange;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Placeholder bytes: never sent, only recognized by address. Also the most a
/// single `sendfile` asks for (the socket's buffer bounds it further), which
/// bounds the file I/O one call may do on the endpoint's thread.
static PLACEHOLDER: [u8; 1 << 20] = [0; 1 << 20];

fn is_placeholder(b: &[u8]) -> bool {
    let base = PLACEHOLDER.as_ptr() as usize;
    let at = b.as_ptr() as usize;
    !b.is_empty() && at >= base && at + b.len() <= base + PLACEHOLDER.len()
}

/// The files of the bodies a connection is writing, in order.
#[derive(Clone, Default)]
pub(super) struct Sink(Arc<Mutex<VecDeque<FileRange>>>);

impl Sink {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<FileRange>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A body of `range.len` placeholder bytes whose data `Zerocopy` sends from
/// `range`'s file.
pub(super) fn placeholder(sink: Sink, range: FileRange) -> s3s::Body {
    let left = range.len;
    s3s::Body::http_body(Placeholder {
        sink,
        range: Some(range),
        left,
    })
}

struct Placeholder {
    sink: Sink,
    /// Queued on the sink at the first poll.
    range: Option<FileRange>,
    left: u64,
}

impl HttpBody for Placeholder {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let me = self.get_mut();
        if me.left == 0 {
            return Poll::Ready(None);
        }
        if let Some(r) = me.range.take() {
            me.sink.lock().push_back(r);
        }
        let n = me.left.min(PLACEHOLDER.len() as u64) as usize;
        me.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PLACEHOLDER[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// The connection's stream on hyper's path: placeholder bytes are sent from the
/// file of the body being written, the rest is written as given.
pub(super) struct Zerocopy {
    inner: pantstack_rt::stream::Prefixed,
    sink: Sink,
}

impl Zerocopy {
    pub(super) fn new(inner: pantstack_rt::stream::Prefixed, sink: Sink) -> Self {
        Zerocopy { inner, sink }
    }

    /// Sends at most `want` bytes of the first queued file.
    fn poll_sendfile(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<std::io::Result<usize>> {
        let mut queue = self.sink.lock();
        let Some(front) = queue.front_mut() else {
            return Poll::Ready(Err(std::io::Error::other(
                "object data to send without its file",
            )));
        };
        let n = (want as u64).min(front.len) as usize;
        let socket = self.inner.stream();
        loop {
            ready!(socket.poll_write_ready(cx))?;
            let mut offset = front.offset;
            let sent = socket.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(socket, &*front.file, Some(&mut offset), n)
                    .map_err(std::io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the object's file is shorter than the object",
                    )));
                }
                Ok(k) => {
                    front.offset += k as u64;
                    front.len -= k as u64;
                    if front.len == 0 {
                        queue.pop_front();
                    }
                    return Poll::Ready(Ok(k));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for Zerocopy {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Zerocopy {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        if is_placeholder(buf) {
            return me.poll_sendfile(cx, buf.len());
        }
        Pin::new(&mut me.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let start = bufs.iter().position(|b| !b.is_empty()).unwrap_or(0);
        let bufs = &bufs[start..];
        match bufs.first() {
            Some(b) if is_placeholder(b) => me.poll_sendfile(cx, b.len()),
            _ => {
                // The bytes up to the first placeholder, as one write.
                let end = bufs
                    .iter()
                    .position(|b| is_placeholder(b))
                    .unwrap_or(bufs.len());
                Pin::new(&mut me.inner).poll_write_vectored(cx, &bufs[..end])
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        // hyper queues body frames as they are (no copy into its own buffer)
        // only on a vectored stream: placeholders must keep their address.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn placeholders_are_known_by_address_only() {
        assert!(is_placeholder(&PLACEHOLDER[..1]));
        assert!(is_placeholder(&PLACEHOLDER[5..]));
        assert!(!is_placeholder(&PLACEHOLDER[..0]));
        // The same bytes elsewhere are data.
        let zeros = vec![0u8; 64];
        assert!(!is_placeholder(&zeros));
    }

    #[tokio::test]
    async fn a_placeholder_body_queues_its_file_when_first_polled() {
        use http_body_util::BodyExt;
        let dir = std::env::temp_dir().join(format!("zerocopy-{}", std::process::id()));
        std::fs::write(&dir, vec![7u8; 10]).unwrap();
        let file = Arc::new(std::fs::File::open(&dir).unwrap());
        let _ = std::fs::remove_file(&dir);
        let sink = Sink::default();
        let len = (PLACEHOLDER.len() + 3) as u64;
        let mut body = placeholder(
            sink.clone(),
            FileRange {
                file,
                offset: 2,
                len,
            },
        );
        assert!(sink.lock().is_empty(), "not queued before it is written");
        let mut total = 0u64;
        while let Some(f) = body.frame().await {
            let data = f.unwrap().into_data().unwrap();
            assert!(is_placeholder(&data));
            total += data.len() as u64;
            assert_eq!(sink.lock().len(), 1);
        }
        assert_eq!(total, len);
        assert_eq!(
            sink.lock().front().map(|r| (r.offset, r.len)),
            Some((2, len))
        );
    }
}

//! The fast path's sends on io_uring: one ring per worker thread, and the sends
//! that a turn of the worker's runtime starts go to the kernel in one
//! `io_uring_enter`.
//!
//! Why: with epoll each send is a system call of its own, and the process it wakes
//! (the client or a target) preempts the balancer on the way back to user space,
//! once per send. Submitted together, the sends of a turn take that preemption once.
//! Receives stay on the runtime's epoll reactor: they wake no one, and tokio's reads
//! learn from a short read that a socket is drained. While a worker serves one
//! request only there is nothing to batch with, and its sends are made at once with
//! `send(2)` as on the epoll path (see [`Ring::busy`]). `bench/lb/NOTES.md` has the
//! measurements behind each choice.
//!
//! How it fits tokio: the ring's file descriptor is registered with the worker's
//! runtime (`AsyncFd`); it becomes readable when completions are posted. A driver
//! task ([`Ring::driver`]) submits what is queued, reaps completions and wakes the
//! futures waiting for them. An operation's future wakes the driver when it queues
//! an entry; the driver is then scheduled after the tasks already runnable, so the
//! entries they queue go with it.
//!
//! # Safety boundary
//!
//! This module is the only place with unsafe code for io_uring. Its invariants:
//! - The kernel reads an operation's buffer until that operation's completion is
//!   reaped. The buffer (a `Vec<u8>`, whose heap block does not move when the `Vec`
//!   does) is owned by the operation's slot from submission until then, whatever
//!   happens to the future that started it: a future dropped early marks its slot
//!   abandoned and asks the kernel to cancel; the slot and its buffer are freed only
//!   when the completion arrives.
//! - An operation names its socket by descriptor number; the slot holds a reference
//!   to the socket, so the descriptor cannot be closed (and its number reused) while
//!   the operation is queued or in flight.
//! - A slot's `user_data` carries a generation, so a late cancellation cannot hit an
//!   operation that reused the slot.
//! - When the ring is dropped with operations in flight, it cancels them and waits
//!   (bounded); the buffers of any that still did not complete are leaked, never
//!   freed while the kernel may use them.
#![allow(unsafe_code)]

use io_uring::{IoUring, opcode, types};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

/// Entries in the submission queue (the completion queue has twice as many).
const ENTRIES: u32 = 1024;
/// The `user_data` of cancellations (their completions are ignored).
const CANCEL: u64 = u64::MAX;

enum State {
    Free,
    /// In flight; the waker of the future waiting for it.
    Waiting(Option<Waker>),
    /// Completed with this result; the future has not collected it yet.
    Done(i32),
    /// In flight, its future gone: freed when its completion arrives.
    Abandoned,
}

struct Slot {
    generation: u32,
    state: State,
    buf: Vec<u8>,
    /// Keeps the socket (and its descriptor number) alive while in flight.
    sock: Option<Arc<TcpStream>>,
}

struct Inner {
    ring: IoUring,
    slots: Vec<Slot>,
    free: Vec<u32>,
    in_flight: usize,
    driver: Option<Waker>,
    /// Completions copied out of the queue by `reap` (kept to reuse its memory).
    reaped: Vec<(u64, i32)>,
}

/// One worker thread's ring.
pub struct Ring {
    inner: Mutex<Inner>,
    fd: RawFd,
    /// Requests this worker is serving (see [`Ring::busy`]).
    busy: AtomicUsize,
    /// Sends go on the ring while more requests than this are being served.
    direct_max: usize,
    /// Sends made on the ring (shared by a balancer's workers).
    sends: Arc<AtomicU64>,
}

/// Counts a request as being served while it lives.
pub struct Busy(Arc<Ring>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

fn user_data(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

/// The slot index and generation that [`user_data`] packed.
fn slot_of(ud: u64) -> (usize, u32) {
    ((ud & 0xffff_ffff) as usize, (ud >> 32) as u32)
}

impl Inner {
    /// Queues `entry`, submitting what is queued first when the queue is full.
    fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry built here points only into a buffer owned by a
            // slot until its completion is reaped (see the module's invariants), or
            // into nothing (cancellations).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Whether the kernel must be entered: entries queued, task work pending, or
    /// completions held back after the completion queue overflowed.
    fn needs_enter(&mut self) -> bool {
        let sq = self.ring.submission();
        !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
    }

    /// Reaps every posted completion; returns the wakers to call.
    fn reap(&mut self, wake: &mut Vec<Waker>) {
        let mut done = std::mem::take(&mut self.reaped);
        let mut cq = self.ring.completion();
        cq.sync();
        done.extend(cq.map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            if ud == CANCEL {
                continue;
            }
            let (index, generation) = slot_of(ud);
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            match std::mem::replace(&mut slot.state, State::Free) {
                State::Waiting(w) => {
                    slot.state = State::Done(res);
                    slot.sock = None;
                    self.in_flight -= 1;
                    if let Some(w) = w {
                        wake.push(w);
                    }
                }
                State::Abandoned => {
                    self.in_flight -= 1;
                    self.release(index);
                }
                other => slot.state = other,
            }
        }
        done.clear();
        self.reaped = done;
    }

    fn release(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.state = State::Free;
            slot.sock = None;
            slot.buf = Vec::new();
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index as u32);
        }
    }

    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }
}

impl Ring {
    /// A ring for the calling worker thread, or why there is none (kernels before
    /// 6.0, `kernel.io_uring_disabled`, seccomp profiles that refuse io_uring): the
    /// caller then uses epoll.
    ///
    /// `always`: every send on the ring, even with one request in progress (see
    /// [`Ring::busy`]); `sends` counts the sends made on the ring.
    pub fn new(always: bool, sends: Arc<AtomicU64>) -> io::Result<Arc<Ring>> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            // Completions are run when the worker next enters the kernel (it does
            // every turn), not by interrupting it.
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(ENTRIES * 2)
            .build(ENTRIES)?;
        let fd = ring.as_raw_fd();
        Ok(Arc::new(Ring {
            inner: Mutex::new(Inner {
                ring,
                slots: Vec::new(),
                free: Vec::new(),
                in_flight: 0,
                driver: None,
                reaped: Vec::new(),
            }),
            fd,
            busy: AtomicUsize::new(0),
            direct_max: if always { 0 } else { 1 },
            sends,
        }))
    }

    /// Marks a request as being served until the guard drops. While a worker
    /// serves one request only, there is nothing to batch its sends with: they are
    /// made at once with `send(2)`, as on the epoll path, instead of waiting for
    /// the driver's turn.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The task that submits and reaps for this ring until the runtime stops; spawn
    /// it once on the worker's runtime (this registers the ring there, so it must be
    /// called inside it).
    pub fn driver(
        self: &Arc<Self>,
    ) -> io::Result<impl Future<Output = ()> + Send + 'static + use<>> {
        // SAFETY: `RingFd` holds the ring, whose descriptor stays open and the same
        // for as long as the ring lives, so for the whole life of the `AsyncFd`.
        let afd =
            unsafe { AsyncFd::register_with_interest(RingFd(self.clone()), Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
        let ring = self.clone();
        Ok(async move {
            let mut wake = Vec::new();
            loop {
                let submitted = {
                    let mut inner = ring.lock();
                    let r = if inner.needs_enter() {
                        inner.ring.submit().map(|_| ())
                    } else {
                        Ok(())
                    };
                    inner.reap(&mut wake);
                    r
                };
                for w in wake.drain(..) {
                    w.wake();
                }
                if submitted.is_err() {
                    // EINTR, or EBUSY while completions wait to be reaped: let the
                    // woken tasks run, then submit again.
                    tokio::task::yield_now().await;
                    continue;
                }
                std::future::poll_fn(|cx| ring.wait(cx, &afd)).await;
            }
        })
    }

    /// Ready when there is work for the driver: entries queued, completions posted
    /// (or held back by the kernel after the completion queue overflowed) or task
    /// work pending.
    fn wait(&self, cx: &mut Context<'_>, afd: &AsyncFd<RingFd>) -> Poll<()> {
        {
            let mut inner = self.lock();
            if inner.needs_enter() || !inner.ring.completion().is_empty() {
                return Poll::Ready(());
            }
            inner.driver = Some(cx.waker().clone());
        }
        match afd.poll_read_ready(cx) {
            Poll::Ready(Ok(mut g)) => {
                g.clear_ready();
                Poll::Ready(())
            }
            // The ring's descriptor cannot fail while it is open; try again.
            Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Starts an operation on `sock` owning `buf`; `entry` builds its entry from the
    /// buffer (whose heap block stays where it is from now on).
    fn start(
        &self,
        sock: &Arc<TcpStream>,
        buf: Vec<u8>,
        entry: impl FnOnce(&mut Vec<u8>, types::Fd) -> io_uring::squeue::Entry,
    ) -> Result<u64, (io::Error, Vec<u8>)> {
        let mut inner = self.lock();
        let index = match inner.free.pop() {
            Some(i) => i as usize,
            None => {
                inner.slots.push(Slot {
                    generation: 0,
                    state: State::Free,
                    buf: Vec::new(),
                    sock: None,
                });
                inner.slots.len() - 1
            }
        };
        let fd = types::Fd(sock.as_raw_fd());
        let Some(slot) = inner.slots.get_mut(index) else {
            return Err((io::Error::other("ring slot missing"), buf));
        };
        slot.buf = buf;
        let e = entry(&mut slot.buf, fd);
        let ud = user_data(index as u32, slot.generation);
        slot.state = State::Waiting(None);
        slot.sock = Some(sock.clone());
        if let Err(err) = inner.push(&e.user_data(ud)) {
            let buf = inner
                .slots
                .get_mut(index)
                .map(|s| std::mem::take(&mut s.buf))
                .unwrap_or_default();
            inner.release(index);
            return Err((err, buf));
        }
        inner.in_flight += 1;
        inner.wake_driver();
        Ok(ud)
    }

    /// The operation's result and buffer once it completed.
    fn poll_op(&self, ud: u64, cx: &mut Context<'_>) -> Poll<(i32, Vec<u8>)> {
        let mut inner = self.lock();
        let (index, _) = slot_of(ud);
        let Some(slot) = inner.slots.get_mut(index) else {
            return Poll::Ready((-libc::EINVAL, Vec::new()));
        };
        match slot.state {
            State::Done(res) => {
                let buf = std::mem::take(&mut slot.buf);
                inner.release(index);
                Poll::Ready((res, buf))
            }
            State::Waiting(ref mut w) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Free | State::Abandoned => Poll::Ready((-libc::EINVAL, Vec::new())),
        }
    }

    /// The future of operation `ud` was dropped before it collected the result.
    fn abandon(&self, ud: u64) {
        let mut inner = self.lock();
        let (index, _) = slot_of(ud);
        let Some(slot) = inner.slots.get_mut(index) else {
            return;
        };
        match slot.state {
            State::Done(_) => inner.release(index),
            State::Waiting(_) => {
                slot.state = State::Abandoned;
                // A failed push leaves the operation to end by itself (the socket
                // closing or the peer answering); its slot is freed then.
                let _ = inner.push(&opcode::AsyncCancel::new(ud).build().user_data(CANCEL));
                inner.wake_driver();
            }
            State::Free | State::Abandoned => {}
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if inner.in_flight > 0 {
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(CANCEL);
            if inner.push(&cancel).is_ok() {
                let ts = types::Timespec::new().nsec(100_000_000);
                let args = types::SubmitArgs::new().timespec(&ts);
                let mut wake = Vec::new();
                for _ in 0..10 {
                    if inner.in_flight == 0 {
                        break;
                    }
                    let _ = inner.ring.submitter().submit_with_args(1, &args);
                    inner.reap(&mut wake);
                }
            }
        }
        if inner.in_flight > 0 {
            // The kernel may still use these buffers: leak them rather than free.
            for slot in inner.slots.drain(..) {
                if matches!(slot.state, State::Waiting(_) | State::Abandoned) {
                    std::mem::forget(slot.buf);
                }
            }
        }
    }
}

/// The ring's descriptor, registered with the runtime; holding the ring keeps it
/// open.
struct RingFd(Arc<Ring>);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd
    }
}

/// An operation in flight; dropping it early cancels it (the buffer stays with the
/// ring until the kernel is done with it).
struct Op<'a> {
    ring: &'a Ring,
    ud: Option<u64>,
}

impl Future for Op<'_> {
    type Output = (i32, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(ud) = self.ud else {
            return Poll::Ready((-libc::EINVAL, Vec::new()));
        };
        let r = self.ring.poll_op(ud, cx);
        if r.is_ready() {
            self.ud = None;
        }
        r
    }
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        if let Some(ud) = self.ud.take() {
            self.ring.abandon(ud);
        }
    }
}

fn result(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// A connected TCP socket of the fast path: registered with the worker's runtime
/// (receives wait for epoll's readiness, as on the epoll path), its sends batched on
/// the worker's ring.
pub struct Socket {
    ring: Arc<Ring>,
    sock: Arc<TcpStream>,
}

impl Socket {
    pub fn new(ring: Arc<Ring>, sock: TcpStream) -> Socket {
        Socket {
            ring,
            sock: Arc::new(sock),
        }
    }

    /// See [`Ring::busy`].
    pub fn busy(&self) -> Busy {
        self.ring.busy()
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.sock
    }

    /// The stream itself, unless an abandoned send still holds it.
    pub fn get_mut(&mut self) -> Option<&mut TcpStream> {
        Arc::get_mut(&mut self.sock)
    }

    /// Receives up to `want` more bytes (at least what fits in 4 KiB) after
    /// `buf`'s contents. `Ok(0)` is the end of the stream.
    pub async fn recv(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
        buf.reserve(want.max(4096));
        // No send holds the socket (the usual case): tokio's own read, which
        // learns from a short read that the socket is drained.
        if let Some(s) = Arc::get_mut(&mut self.sock) {
            return tokio::io::AsyncReadExt::read_buf(s, buf).await;
        }
        loop {
            self.sock.readable().await?;
            match self.sock.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Sends `buf[range]` whole. If the future is dropped before it completes,
    /// `buf` may be left empty.
    pub async fn send(&self, buf: &mut Vec<u8>, range: Range<usize>) -> io::Result<()> {
        let mut at = range.start;
        let end = range.end.min(buf.len());
        if self.ring.busy.load(Ordering::Relaxed) <= self.ring.direct_max {
            while at < end {
                match self.sock.try_write(buf.get(at..end).unwrap_or_default()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        while at < end {
            let owned = std::mem::take(buf);
            let ud = self
                .ring
                .start(&self.sock, owned, |b, fd| {
                    let part = b.get(at..end).unwrap_or_default();
                    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
                    opcode::Send::new(fd, part.as_ptr(), len)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                })
                .map_err(|(e, b)| {
                    *buf = b;
                    e
                })?;
            self.ring.sends.fetch_add(1, Ordering::Relaxed);
            let (res, owned) = Op {
                ring: &self.ring,
                ud: Some(ud),
            }
            .await;
            *buf = owned;
            match result(res) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => at += n,
                // The send buffer is full (the socket is non-blocking).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.sock.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The socket as a tokio stream again (`None` while an abandoned send still
    /// holds it).
    pub fn into_inner(self) -> Option<TcpStream> {
        Arc::try_unwrap(self.sock).ok()
    }
}

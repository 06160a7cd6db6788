//! The endpoint's HTTP server: one listener on 127.0.0.1 whose connections start
//! on the HTTP/1.1 fast path (`h1`) and are handed to hyper (`general`) from the
//! first request the fast path does not take. Both paths answer SQS and SSM
//! through `dispatch::api`, so the answer does not depend on the path.
//!
//! Module graph (no cycles): this module uses `h1`, `general`, `limits` and
//! `zerocopy`; `h1` uses `dispatch` and `limits`; `general` uses `dispatch` and
//! `zerocopy`; `dispatch` uses neither path.

mod dispatch;
mod general;
mod h1;
mod limits;
mod zerocopy;

pub use dispatch::MAX_BODY;
#[doc(hidden)]
pub use h1::fuzzing;
pub use limits::Limits;

use crate::Core;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running endpoint.
pub struct Server {
    pub port: u16,
    stop: watch::Sender<bool>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops accepting; connections in progress finish their request.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Bytes a connection on the general path must move in each `Limits::read` window
/// while it waits on I/O (a slow body or a reader that stopped is dropped).
const MIN_PROGRESS: u64 = 1024;

/// How long a stopping endpoint lets requests in progress finish.
const DRAIN: Duration = Duration::from_secs(2);

/// Binds 127.0.0.1:`port` (0: any free port) and serves `core` until shut down.
///
/// The endpoint runs on a thread of its own (`pantstack-aws`) with a current-thread
/// runtime: its event loop parses every ready request, then syncs their journal
/// records as one group before it waits again (see `journal`), with no hand-off
/// between threads on the way.
pub async fn serve(core: Arc<Core>, port: u16) -> std::io::Result<Server> {
    serve_with(core, port, Limits::default()).await
}

/// [`serve`] with other limits (tests use short timeouts and small caps).
pub async fn serve_with(core: Arc<Core>, port: u16, limits: Limits) -> std::io::Result<Server> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    core.set_base_url(format!("http://127.0.0.1:{port}"));
    let (stop, stopped) = watch::channel(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("pantstack-aws".into())
        .spawn(move || rt.block_on(run(core, listener, stopped, limits)))?;
    Ok(Server { port, stop })
}

/// The size of the blocks `return_memory` allocates and frees: past the
/// allocator's largest size class, so each is a page of its own, freed at once.
const NUDGE_BLOCK: usize = 8 * 1024 * 1024;
/// How many: mimalloc does its housekeeping (frees the empty pages it kept for
/// reuse) once every thousand allocations that take its slow path.
const NUDGES: usize = 1000;
/// Idle seconds after activity in which `return_memory` nudges.
const NUDGE_TICKS: u32 = 10;

/// Lets the allocator give freed memory back to the system once the endpoint
/// goes idle. mimalloc returns the pages of freed objects (deleted S3 objects,
/// SQS messages) only a delay (a second) after they were freed, and only when it
/// is next called on to free a page or do its housekeeping: an endpoint that
/// went quiet right after a large deletion kept them (20,000 deleted objects:
/// 74 MB resident instead of 18). In the first ten idle seconds after journaled
/// activity, blocks that each need a page of their own are allocated (never
/// touched: no memory is used) and freed, which is that call. A busy endpoint
/// calls the allocator enough by itself. With any other allocator this only
/// allocates and frees.
async fn return_memory(core: Arc<Core>) {
    let mut seen = core.journal_stats().0;
    let mut idle = 0u32;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let groups = core.journal_stats().0;
        if groups != seen {
            seen = groups;
            idle = 0;
            continue;
        }
        if idle < NUDGE_TICKS {
            idle += 1;
            for _ in 0..NUDGES {
                drop(std::hint::black_box(Vec::<u8>::with_capacity(NUDGE_BLOCK)));
            }
        }
    }
}

async fn run(
    core: Arc<Core>,
    listener: std::net::TcpListener,
    mut stopped: watch::Receiver<bool>,
    limits: Limits,
) {
    // Two descriptors a connection: the socket, and the object file an S3 request
    // may hold open while its body arrives or its answer is read.
    let budget = pantstack_rt::budget::ConnectionBudget::new(limits.max_connections, 2);
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let flusher = tokio::spawn({
        let core = core.clone();
        async move {
            let journal = core.journal.clone();
            journal.run_flusher_then(|| core.compact_if_due()).await
        }
    });
    let lifecycle = tokio::spawn({
        let core = core.clone();
        async move {
            // A pass every twenty-fourth of a lifecycle day (50 ms..1 h: a pass
            // walks every object under the state's lock), rechecked each second
            // so a shortened day takes effect at once.
            let mut last = tokio::time::Instant::now();
            loop {
                let every = (core.lifecycle_day() / 24)
                    .clamp(Duration::from_millis(50), Duration::from_secs(3600));
                tokio::time::sleep(every.min(Duration::from_secs(1))).await;
                if last.elapsed() >= every {
                    last = tokio::time::Instant::now();
                    crate::s3::lifecycle_pass(&core).await;
                }
            }
        }
    });
    let memory = tokio::spawn(return_memory(core.clone()));
    let s3 = crate::s3::service(core.clone());
    // Every connection holds a sender; when the last is gone, all have finished.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let Ok((stream, _)) = conn else {
            // Out of descriptors (EMFILE) or a connection reset before accept: wait
            // a moment instead of spinning on a listener that stays readable.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(permit) = budget.try_acquire() else {
            pantstack_rt::budget::refuse_busy(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let s3 = s3.clone();
        let mut stop = stopped.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut stream = stream;
            // SQS and SSM requests take the fast path; the rest of a connection
            // goes to hyper from the first request that does not.
            let read = match h1::serve(&core, &mut stream, &mut stop, &limits).await {
                h1::Outcome::Closed => {
                    drop(open);
                    return;
                }
                h1::Outcome::Handover(read) => read,
            };
            // Object files go to the socket with sendfile (`zerocopy`).
            let sink = zerocopy::Sink::default();
            let io = hyper_util::rt::TokioIo::new(pantstack_rt::stream::Watchdog::new(
                zerocopy::Zerocopy::new(
                    pantstack_rt::stream::Prefixed::new(read, stream),
                    sink.clone(),
                ),
                limits.read,
                MIN_PROGRESS,
            ));
            let svc = hyper::service::service_fn(move |req| {
                general::handle(core.clone(), s3.clone(), Some(sink.clone()), req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                // Body frames queued as they are, never copied into hyper's
                // buffer: `zerocopy` knows its placeholders by address.
                .writev(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.idle)
                .serve_connection(io, svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    let _ = tokio::time::timeout(DRAIN, all_closed.recv()).await;
    lifecycle.abort();
    memory.abort();
    flusher.abort();
    core.journal.flush();
}

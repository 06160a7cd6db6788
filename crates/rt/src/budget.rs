//! The process's connection budget, which every listener (the AWS endpoint, each load
//! balancer) draws from, so a flood on one port cannot starve the others.

use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

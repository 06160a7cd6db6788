//! The limits of the endpoint's connections (both HTTP paths apply them).

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A connection with no request in progress for this long is closed, as AWS
    /// closes one after about 20 s (a long poll is a request in progress).
    pub idle: Duration,
    /// A request's head and body must arrive within this long of its first byte.
    pub read: Duration,
    /// Connections at once (each counted as two descriptors: its socket and an
    /// object file); more are answered 503 and closed at once. Also bounded by a
    /// quarter of the process's connection budget (`pantstack_rt::budget::process_budget`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle: Duration::from_secs(20),
            read: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

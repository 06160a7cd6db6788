//! What every server of the `pantstack` process shares: the connection budget all
//! listeners draw from, the stream adapters of the HTTP/1.1 fast paths, and the wall
//! clock's RFC 3339 stamps used in logs, events and state, and the
//! rule that what the local cloud writes is private to its user.

#![forbid(unsafe_code)]

pub mod budget;
pub mod clock;
pub mod private;
pub mod stream;

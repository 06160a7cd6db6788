//! The fast path's parsers on their own, for the fuzzer (`fuzz/fuzz_targets/lb.rs`).

use super::*;

/// What the fast path makes of a request head.
pub enum Request {
    /// Taken: the head's length and the head the target gets (ending with the
    /// empty line, the balancer's own headers left out).
    Forward(usize, Vec<u8>),
    /// More bytes needed.
    Partial,
    /// For the general path.
    Handover,
    /// Answered with 400.
    Bad,
}

pub fn request(input: &[u8]) -> Request {
    let mut out = Vec::new();
    match parse_request(input, &mut out) {
        Parsed::Ok(h) => {
            out.extend_from_slice(b"\r\n");
            Request::Forward(h.head_len, out)
        }
        Parsed::Partial => Request::Partial,
        Parsed::Handover => Request::Handover,
        Parsed::Bad(_) => Request::Bad,
    }
}

/// A final or 1xx response head: its length, the head the client gets, and
/// whether its body is framed by a length (`Some(n)`).
pub fn response(input: &[u8], head_request: bool) -> Option<(usize, Vec<u8>, Option<usize>)> {
    let mut out = Vec::new();
    match parse_response(input, head_request, b"id", false, &mut out) {
        ParsedRes::Ok(h) => {
            let length = match h.framing {
                Framing::Length(n) => Some(n),
                _ => None,
            };
            Some((h.head_len, out, length))
        }
        ParsedRes::Partial | ParsedRes::Bad => None,
    }
}

/// Where a chunked body fed in these pieces ends.
#[derive(Debug, PartialEq)]
pub enum ChunkedEnd {
    At(usize),
    NotYet,
    Malformed,
}

pub fn chunked_end(pieces: &[&[u8]]) -> ChunkedEnd {
    match track(pieces) {
        Ok(Some(n)) => ChunkedEnd::At(n),
        Ok(None) => ChunkedEnd::NotYet,
        Err(()) => ChunkedEnd::Malformed,
    }
}

/// Feeds `pieces` in turn to a chunk tracker: where the body ends, if it does.
pub(super) fn track(pieces: &[&[u8]]) -> Result<Option<usize>, ()> {
    let mut c = Chunked::default();
    let mut total = 0;
    for p in pieces {
        if let Some(n) = c.feed(p)? {
            return Ok(Some(total + n));
        }
        total += p.len();
    }
    Ok(None)
}

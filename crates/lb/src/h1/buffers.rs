//! The fast path's per-worker pool of connection buffers. A connection takes its
//! three buffers (request, head out, upstream read) when its client sends and
//! gives them back while it waits for the next request, so memory follows the
//! requests in progress, not the connections open. Each worker thread has its own
//! pool (the workers are current-thread runtimes), so no lock is taken.

use std::cell::RefCell;

/// What a buffer is allocated with; a request head and a small response fit.
pub(crate) const INITIAL: usize = 8192;
/// A buffer grown past this (a large head or body chunk) is freed, not pooled.
const KEEP_MAX: usize = 16 * 1024;
/// Buffers a worker keeps for reuse: enough for ~85 requests in progress at once;
/// past it, a returned buffer is freed.
const POOL_MAX: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Gives each non-empty-capacity buffer back to this thread's pool (emptied),
/// leaving an unallocated `Vec` in its place.
pub(crate) fn give<const N: usize>(bufs: [&mut Vec<u8>; N]) {
    POOL.with_borrow_mut(|pool| {
        for b in bufs {
            let mut v = std::mem::take(b);
            if v.capacity() == 0 || v.capacity() > KEEP_MAX || pool.len() >= POOL_MAX {
                continue;
            }
            v.clear();
            pool.push(v);
        }
    });
}

/// Fills each unallocated buffer from this thread's pool, or allocates it.
pub(crate) fn take<const N: usize>(bufs: [&mut Vec<u8>; N]) {
    POOL.with_borrow_mut(|pool| {
        for b in bufs {
            if b.capacity() == 0 {
                *b = pool.pop().unwrap_or_else(|| Vec::with_capacity(INITIAL));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_bounded_and_emptied() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        take([&mut a, &mut b]);
        assert_eq!((a.capacity(), b.capacity()), (INITIAL, INITIAL));
        a.extend_from_slice(b"left over");
        let pa = a.as_ptr();
        give([&mut a, &mut b]);
        assert_eq!((a.capacity(), b.capacity()), (0, 0));
        // The last given is the first taken: `a` comes back, emptied.
        let mut c = Vec::new();
        take([&mut c]);
        take([&mut c]); // already allocated: left as it is
        let mut d = Vec::new();
        take([&mut d]);
        assert!(c.is_empty() && d.is_empty());
        assert!(c.as_ptr() == pa || d.as_ptr() == pa);
        // A grown buffer is freed, not pooled.
        let mut big = Vec::with_capacity(KEEP_MAX * 2);
        give([&mut big]);
        POOL.with_borrow(|p| assert!(p.iter().all(|v| v.capacity() <= KEEP_MAX)));
        // The pool never holds more than POOL_MAX.
        let mut many: Vec<Vec<u8>> = (0..POOL_MAX + 10).map(|_| Vec::with_capacity(64)).collect();
        for v in &mut many {
            give([v]);
        }
        POOL.with_borrow(|p| assert_eq!(p.len(), POOL_MAX));
    }
}

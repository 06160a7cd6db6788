//! Request counters of a load balancer, for the ALB metrics (`RequestCount`,
//! `HTTPCode_Target_*`, `HTTPCode_ELB_*`, `TargetResponseTime`).
//!
//! Each worker thread counts into its own `Counters` (relaxed atomics on its
//! own cache lines: no thread waits for another); [`Snapshot`]s sum them.
//! Counters only grow: a reader takes the difference of two snapshots
//! ([`Snapshot::since`]) for a period.
//!
//! Response times go into a fixed histogram of [`BUCKETS`] buckets, three per
//! doubling from [`FIRST_BUCKET_US`]: a percentile read from it is within about
//! 13 % of the true value, enough for p50/p99 charts and alarms.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Histogram buckets of response time.
pub const BUCKETS: usize = 64;
/// The upper bound of the first bucket, in microseconds.
pub const FIRST_BUCKET_US: f64 = 50.0;

/// The bucket a response time falls into.
fn bucket(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= FIRST_BUCKET_US {
        return 0;
    }
    // Three buckets per doubling.
    let i = ((us / FIRST_BUCKET_US).log2() * 3.0).ceil() as usize;
    i.min(BUCKETS - 1)
}

/// A value that stands for bucket `i`, in seconds: the geometric middle of its
/// bounds.
pub fn bucket_seconds(i: usize) -> f64 {
    let upper = FIRST_BUCKET_US * 2f64.powf(i as f64 / 3.0);
    let lower = if i == 0 {
        upper / 2.0
    } else {
        FIRST_BUCKET_US * 2f64.powf((i - 1) as f64 / 3.0)
    };
    (upper * lower).sqrt() / 1e6
}

/// One worker thread's counters.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    /// Target answers by class: 2xx, 3xx, 4xx, 5xx.
    target: [AtomicU64; 4],
    /// The load balancer's own answers: 4xx, 5xx.
    elb: [AtomicU64; 2],
    /// Requests a target answered, by response time.
    times: Histogram,
}

struct Histogram([AtomicU64; BUCKETS]);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Counters {
    /// Counts one answered request: `target_status` when a target answered it (its
    /// time counts), else the load balancer's own `status`.
    pub(crate) fn count(&self, status: u16, target_status: Option<u16>, elapsed: Duration) {
        self.requests.fetch_add(1, Relaxed);
        match target_status {
            Some(s) => {
                if let Some(i) = class(s) {
                    self.target[i].fetch_add(1, Relaxed);
                }
                self.times.0[bucket(elapsed)].fetch_add(1, Relaxed);
            }
            None => match status {
                400..=499 => {
                    self.elb[0].fetch_add(1, Relaxed);
                }
                500..=599 => {
                    self.elb[1].fetch_add(1, Relaxed);
                }
                _ => {}
            },
        }
    }

    fn add_to(&self, s: &mut Snapshot) {
        s.requests += self.requests.load(Relaxed);
        for (a, b) in s.target.iter_mut().zip(&self.target) {
            *a += b.load(Relaxed);
        }
        for (a, b) in s.elb.iter_mut().zip(&self.elb) {
            *a += b.load(Relaxed);
        }
        for (a, b) in s.times.iter_mut().zip(&self.times.0) {
            *a += b.load(Relaxed);
        }
    }
}

/// 2xx → 0 … 5xx → 3.
fn class(status: u16) -> Option<usize> {
    match status {
        200..=299 => Some(0),
        300..=399 => Some(1),
        400..=499 => Some(2),
        500..=599 => Some(3),
        _ => None,
    }
}

/// The sum of every worker's counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub requests: u64,
    /// Target answers: 2xx, 3xx, 4xx, 5xx.
    pub target: [u64; 4],
    /// The load balancer's own answers: 4xx, 5xx.
    pub elb: [u64; 2],
    /// Target-answered requests per response-time bucket ([`bucket_seconds`]).
    pub times: [u64; BUCKETS],
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            requests: 0,
            target: [0; 4],
            elb: [0; 2],
            times: [0; BUCKETS],
        }
    }
}

impl Snapshot {
    pub(crate) fn of<'a>(counters: impl IntoIterator<Item = &'a Counters>) -> Snapshot {
        let mut s = Snapshot::default();
        for c in counters {
            c.add_to(&mut s);
        }
        s
    }

    /// What was counted after `earlier` (a snapshot of the same balancer).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut d = Snapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            ..Snapshot::default()
        };
        for i in 0..4 {
            d.target[i] = self.target[i].saturating_sub(earlier.target[i]);
        }
        for i in 0..2 {
            d.elb[i] = self.elb[i].saturating_sub(earlier.elb[i]);
        }
        for i in 0..BUCKETS {
            d.times[i] = self.times[i].saturating_sub(earlier.times[i]);
        }
        d
    }

    /// The response times as (seconds, count) pairs, fastest first, empty
    /// buckets left out.
    pub fn response_times(&self) -> Vec<(f64, u64)> {
        self.times
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (bucket_seconds(i), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_a_third_of_a_doubling() {
        assert_eq!(bucket(Duration::from_micros(10)), 0);
        assert_eq!(bucket(Duration::from_micros(50)), 0);
        assert_eq!(bucket(Duration::from_micros(51)), 1);
        assert_eq!(bucket(Duration::from_micros(100)), 3);
        assert_eq!(bucket(Duration::from_secs(3600)), BUCKETS - 1);
        // A time reads back within a bucket's width.
        for us in [70u64, 900, 12_000, 250_000, 3_000_000] {
            let d = Duration::from_micros(us);
            let back = bucket_seconds(bucket(d)) * 1e6;
            let ratio = back / us as f64;
            assert!((0.85..1.15).contains(&ratio), "{us} µs read back as {back}");
        }
    }

    #[test]
    fn counts_target_and_load_balancer_answers_apart() {
        let c = Counters::default();
        c.count(200, Some(200), Duration::from_millis(2));
        c.count(500, Some(500), Duration::from_millis(2));
        c.count(404, Some(404), Duration::from_millis(1));
        c.count(503, None, Duration::from_millis(1));
        c.count(400, None, Duration::ZERO);
        let s = Snapshot::of([&c]);
        assert_eq!(s.requests, 5);
        assert_eq!(s.target, [1, 0, 1, 1]);
        assert_eq!(s.elb, [1, 1]);
        // Only target answers have a response time.
        assert_eq!(s.times.iter().sum::<u64>(), 3);
        let before = s.clone();
        c.count(201, Some(201), Duration::from_millis(2));
        let d = Snapshot::of([&c]).since(&before);
        assert_eq!(d.requests, 1);
        assert_eq!(d.target, [1, 0, 0, 0]);
        assert_eq!(d.response_times().len(), 1);
    }
}

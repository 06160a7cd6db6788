//! Restart backoff for tasks that keep failing (ECS throttles crash loops): the
//! delay before the next start doubles with each consecutive failure, up to a
//! ceiling, and resets once a task has stayed healthy.

use super::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Millis,
    pub max: Millis,
    failures: u32,
    not_before: Millis,
}

impl Backoff {
    pub fn new(base: Millis, max: Millis) -> Self {
        Backoff {
            base,
            max,
            failures: 0,
            not_before: 0,
        }
    }

    /// A task failed at `now`: the next start waits longer.
    pub fn failed(&mut self, now: Millis) {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(20);
        let delay = self.base.saturating_mul(1u64 << exp).min(self.max);
        self.not_before = now + delay;
    }

    /// A task became healthy: the crash loop is over.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.not_before = 0;
    }

    pub fn may_start(&self, now: Millis) -> bool {
        now >= self.not_before
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn wait(&self, now: Millis) -> Millis {
        self.not_before.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(1000, 8000);
        assert!(b.may_start(0));
        b.failed(0);
        assert_eq!(b.wait(0), 1000);
        b.failed(1000);
        assert_eq!(b.wait(1000), 2000);
        b.failed(3000);
        assert_eq!(b.wait(3000), 4000);
        b.failed(7000);
        assert_eq!(b.wait(7000), 8000);
        b.failed(15000);
        assert_eq!(b.wait(15000), 8000, "ceiling");
        assert!(!b.may_start(20000));
        assert!(b.may_start(23000));
        b.reset();
        assert!(b.may_start(0));
        assert_eq!(b.failures(), 0);
    }
}

//! Target health, as an ALB target group tracks it.
//!
//! A new target is `Initial` until it passes one check (→ `Healthy`) or fails the
//! unhealthy threshold in a row (→ `Unhealthy`). A healthy target becomes unhealthy
//! after `unhealthy` consecutive failures; an unhealthy one healthy again after
//! `healthy` consecutive passes. `Draining` is final: the target was deregistered.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Initial,
    Healthy,
    Unhealthy,
    Draining,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
            State::Draining => "draining",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    pub state: State,
    passes: u32,
    failures: u32,
    /// Why the last check failed (status code, timeout, refused), for the user.
    pub last_failure: Option<String>,
    /// Whether the target was ever healthy.
    pub ever_healthy: bool,
}

impl Default for TargetHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl TargetHealth {
    pub fn new() -> Self {
        TargetHealth {
            state: State::Initial,
            passes: 0,
            failures: 0,
            last_failure: None,
            ever_healthy: false,
        }
    }

    /// Records one health check; returns the new state if it changed.
    pub fn record(&mut self, result: Result<(), String>, t: Thresholds) -> Option<State> {
        if self.state == State::Draining {
            return None;
        }
        let before = self.state;
        match result {
            Ok(()) => {
                self.failures = 0;
                self.passes += 1;
                let needed = if self.state == State::Initial {
                    1
                } else {
                    t.healthy
                };
                if self.state != State::Healthy && self.passes >= needed {
                    self.state = State::Healthy;
                    self.ever_healthy = true;
                }
            }
            Err(why) => {
                self.passes = 0;
                self.failures += 1;
                self.last_failure = Some(why);
                if self.state != State::Unhealthy && self.failures >= t.unhealthy {
                    self.state = State::Unhealthy;
                }
            }
        }
        (self.state != before).then_some(self.state)
    }

    pub fn drain(&mut self) {
        self.state = State::Draining;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALB: Thresholds = Thresholds {
        healthy: 5,
        unhealthy: 2,
    };

    #[test]
    fn a_new_target_needs_one_passing_check() {
        let mut h = TargetHealth::new();
        assert_eq!(h.record(Ok(()), ALB), Some(State::Healthy));
        assert!(h.ever_healthy);
    }

    #[test]
    fn unhealthy_after_the_threshold_and_back_after_healthy_threshold() {
        let mut h = TargetHealth::new();
        h.record(Ok(()), ALB);
        assert_eq!(
            h.record(Err("500".into()), ALB),
            None,
            "one failure is not enough"
        );
        assert_eq!(h.record(Err("500".into()), ALB), Some(State::Unhealthy));
        for _ in 0..4 {
            assert_eq!(h.record(Ok(()), ALB), None);
        }
        assert_eq!(
            h.record(Ok(()), ALB),
            Some(State::Healthy),
            "5 passes (ALB default)"
        );
    }

    #[test]
    fn a_failure_resets_the_passes() {
        let mut h = TargetHealth::new();
        h.record(Err("refused".into()), ALB);
        h.record(Err("refused".into()), ALB);
        assert_eq!(h.state, State::Unhealthy);
        for _ in 0..4 {
            h.record(Ok(()), ALB);
        }
        h.record(Err("timeout".into()), ALB);
        for _ in 0..4 {
            h.record(Ok(()), ALB);
        }
        assert_eq!(h.state, State::Unhealthy);
        assert_eq!(h.last_failure.as_deref(), Some("timeout"));
    }

    #[test]
    fn a_new_target_failing_becomes_unhealthy_and_draining_is_final() {
        let mut h = TargetHealth::new();
        h.record(Err("404".into()), ALB);
        assert_eq!(h.record(Err("404".into()), ALB), Some(State::Unhealthy));
        assert!(!h.ever_healthy);
        h.drain();
        assert_eq!(h.record(Ok(()), ALB), None);
        assert_eq!(h.state, State::Draining);
    }
}

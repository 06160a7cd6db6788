//! An ECS rolling deployment: which tasks to start and stop at each step under
//! minimumHealthyPercent / maximumPercent, and the deployment circuit breaker.
//!
//! The planner sees counts only (old vs new revision, running vs healthy); the
//! supervisor turns a `Step` into task starts and stops. A new task counts as healthy
//! when its target is healthy in the load balancer (without one: after it has run
//! for a while).

/// ECS's circuit-breaker threshold: ceil(0.5 × desired), clamped to 3..=200.
pub fn breaker_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub desired: u32,
    pub min_healthy_percent: u32,
    pub max_percent: u32,
    pub circuit_breaker: bool,
    /// Failed new tasks that fail the deployment (`breaker_threshold` unless set).
    pub threshold: u32,
}

impl Params {
    pub fn new(
        desired: u32,
        min_healthy_percent: u32,
        max_percent: u32,
        circuit_breaker: bool,
    ) -> Self {
        Params {
            desired,
            min_healthy_percent,
            max_percent,
            circuit_breaker,
            threshold: breaker_threshold(desired),
        }
    }

    /// Fewest healthy tasks during the deployment.
    pub fn min_healthy(&self) -> u32 {
        (self.desired * self.min_healthy_percent).div_ceil(100)
    }

    /// Most tasks (old + new) running at once.
    pub fn max_running(&self) -> u32 {
        (self.desired * self.max_percent / 100).max(1)
    }
}

/// Tasks of the deployment, by revision. "running" excludes tasks being stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub old_running: u32,
    pub old_healthy: u32,
    pub new_running: u32,
    pub new_healthy: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub start_new: u32,
    /// Old tasks to stop (unhealthy ones first).
    pub stop_old: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    InProgress,
    Completed,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub params: Params,
    pub failed_tasks: u32,
    pub outcome: Outcome,
    /// The reasons of the failed tasks, newest last (at most 10 kept).
    pub failures: Vec<String>,
}

impl Rollout {
    pub fn new(params: Params) -> Self {
        Rollout {
            params,
            failed_tasks: 0,
            outcome: Outcome::InProgress,
            failures: Vec::new(),
        }
    }

    /// What to do now. Nothing once the deployment has ended.
    pub fn step(&self, c: Counts) -> Step {
        if self.outcome != Outcome::InProgress {
            return Step::default();
        }
        let p = &self.params;
        let running = c.old_running + c.new_running;
        let start_new = p
            .desired
            .saturating_sub(c.new_running)
            .min(p.max_running().saturating_sub(running));
        let old_unhealthy = c.old_running.saturating_sub(c.old_healthy);
        // Healthy tasks above the minimum may go; unhealthy old ones always may.
        let margin = (c.old_healthy + c.new_healthy).saturating_sub(p.min_healthy());
        let stop_old = c.old_running.min(old_unhealthy + margin.min(c.old_healthy));
        Step {
            start_new,
            stop_old,
        }
    }

    /// A task of the new revision failed (exited, or failed its health checks).
    /// Returns true when this trips the circuit breaker.
    pub fn task_failed(&mut self, reason: String) -> bool {
        if self.outcome != Outcome::InProgress {
            return false;
        }
        self.failed_tasks += 1;
        self.failures.push(reason);
        if self.failures.len() > 10 {
            self.failures.remove(0);
        }
        if self.params.circuit_breaker && self.failed_tasks >= self.params.threshold {
            self.outcome = Outcome::Failed(format!(
                "circuit breaker: {} task(s) of the new revision failed (threshold {})",
                self.failed_tasks, self.params.threshold
            ));
            return true;
        }
        false
    }

    /// Marks the deployment completed once every desired task runs the new revision
    /// and is healthy, and no old task is left.
    pub fn observe(&mut self, c: Counts) -> &Outcome {
        if self.outcome == Outcome::InProgress
            && c.new_healthy >= self.params.desired
            && c.old_running == 0
        {
            self.outcome = Outcome::Completed;
        }
        &self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a deployment to the end where every started task becomes healthy at the
    /// next step; returns the most tasks running and the fewest healthy at any time.
    fn simulate(p: Params, old: u32) -> (u32, u32, u32) {
        let mut r = Rollout::new(p);
        let mut c = Counts {
            old_running: old,
            old_healthy: old,
            ..Counts::default()
        };
        let (mut most, mut fewest, mut steps) = (old, old, 0);
        while r.observe(c) == &Outcome::InProgress {
            steps += 1;
            assert!(steps < 100, "no progress: {c:?}");
            // Tasks started last step are healthy now.
            c.new_healthy = c.new_running;
            let s = r.step(c);
            c.old_running -= s.stop_old;
            c.old_healthy -= s.stop_old.min(c.old_healthy);
            fewest = fewest.min(c.old_healthy + c.new_healthy);
            c.new_running += s.start_new;
            most = most.max(c.old_running + c.new_running);
        }
        (most, fewest, steps)
    }

    #[test]
    fn threshold_is_half_the_desired_count_clamped() {
        assert_eq!(breaker_threshold(1), 3);
        assert_eq!(breaker_threshold(6), 3);
        assert_eq!(breaker_threshold(7), 4);
        assert_eq!(breaker_threshold(10), 5);
        assert_eq!(breaker_threshold(1000), 200);
    }

    #[test]
    fn default_100_200_starts_all_new_tasks_then_stops_old_ones() {
        let p = Params::new(4, 100, 200, true);
        let r = Rollout::new(p);
        let s = r.step(Counts {
            old_running: 4,
            old_healthy: 4,
            ..Counts::default()
        });
        assert_eq!(
            s,
            Step {
                start_new: 4,
                stop_old: 0
            },
            "never below 100 % healthy"
        );
        let s = r.step(Counts {
            old_running: 4,
            old_healthy: 4,
            new_running: 4,
            new_healthy: 2,
        });
        assert_eq!(s.stop_old, 2, "old tasks go as new ones become healthy");
        let (most, fewest, _) = simulate(p, 4);
        assert_eq!(most, 8, "maximumPercent 200");
        assert_eq!(fewest, 4, "minimumHealthyPercent 100");
    }

    #[test]
    fn min_50_max_100_replaces_in_place() {
        let p = Params::new(4, 50, 100, true);
        let r = Rollout::new(p);
        let s = r.step(Counts {
            old_running: 4,
            old_healthy: 4,
            ..Counts::default()
        });
        assert_eq!(
            s,
            Step {
                start_new: 0,
                stop_old: 2
            }
        );
        let (most, fewest, _) = simulate(p, 4);
        assert_eq!(most, 4);
        assert_eq!(fewest, 2);
    }

    #[test]
    fn single_task_with_defaults() {
        let (most, fewest, _) = simulate(Params::new(1, 100, 200, true), 1);
        assert_eq!((most, fewest), (2, 1));
    }

    #[test]
    fn unhealthy_old_tasks_are_stopped_first() {
        let r = Rollout::new(Params::new(2, 100, 200, true));
        let s = r.step(Counts {
            old_running: 2,
            old_healthy: 0,
            new_running: 0,
            new_healthy: 0,
        });
        assert_eq!(s.stop_old, 2);
        assert_eq!(s.start_new, 2);
    }

    #[test]
    fn the_breaker_trips_at_the_threshold_and_stops_the_rollout() {
        let mut r = Rollout::new(Params::new(2, 100, 200, true));
        assert!(!r.task_failed("exit 1".into()));
        assert!(!r.task_failed("exit 1".into()));
        assert!(r.task_failed("health checks failed: 404".into()));
        assert!(matches!(r.outcome, Outcome::Failed(_)));
        assert_eq!(r.step(Counts::default()), Step::default());
        assert_eq!(r.failures.len(), 3);
    }

    #[test]
    fn without_the_breaker_failures_never_end_the_deployment() {
        let mut r = Rollout::new(Params::new(1, 100, 200, false));
        for _ in 0..10 {
            assert!(!r.task_failed("exit 1".into()));
        }
        assert_eq!(r.outcome, Outcome::InProgress);
    }
}

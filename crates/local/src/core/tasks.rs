//! The lifecycle of a unit's tasks and what one reconciliation does about them, as
//! pure functions of what the supervisor observed and a clock passed in.
//!
//! A task is `Running` until it exits, fails its health checks or is chosen to go;
//! then `Draining` (deregistered: its in-flight requests finish, at most for the
//! deregistration delay), then `Stopping` (SIGTERM sent; SIGKILL after the stop
//! timeout), then `Done` once its exit is observed. A task that exits in any other
//! phase than `Stopping`/`Draining` exited unexpectedly: that failure counts once
//! for the restart backoff (unless the task had become healthy) and for the
//! rollout of its revision.
//!
//! Each tick is two plans, each executed by the supervisor before the next:
//! [`plan_tasks`] moves every task through its lifecycle, and [`plan_unit`] decides
//! the starts and stops of the deployment (or of the steady state). Neither does
//! I/O: the effects are [`Action`]s and [`UnitPlan`]s the supervisor applies.

use super::Millis;
use super::backoff::Backoff;
use super::rollout::{Counts, Outcome, Rollout};
use pantstack_lb::health::State as Health;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Deregistered; waiting for in-flight requests (or the deregistration delay).
    Draining {
        since: Millis,
    },
    /// SIGTERM sent; SIGKILL after the stop timeout.
    Stopping {
        since: Millis,
        killed: bool,
    },
    Done,
}

/// What the supervisor decides with about one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    pub id: u64,
    pub revision: u32,
    /// When it started (registered with the load balancer).
    pub started: Millis,
    pub phase: Phase,
    pub healthy: bool,
    /// Why the supervisor stopped it (or why it failed).
    pub reason: Option<String>,
    /// A failure already counted (circuit breaker, backoff).
    pub counted: bool,
}

/// The timings of a task's revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// Health check grace period: failed checks before it do not stop the task.
    pub grace: Millis,
    /// Without a load balancer: a task running this long counts as healthy.
    pub healthy_after: Millis,
    /// SIGTERM to SIGKILL.
    pub stop_timeout: Millis,
}

impl Default for Timings {
    /// A task whose revision is gone.
    fn default() -> Self {
        Timings {
            grace: 0,
            healthy_after: 3000,
            stop_timeout: 10_000,
        }
    }
}

/// The load balancer's view of a task's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub state: Health,
    pub outstanding: u32,
    pub last_failure: Option<String>,
}

/// How a task ended, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exited {
    /// "exit code 1", "killed by signal 9", ...
    pub text: String,
    /// The last lines of its log (read for a task that exited while running).
    pub tail: Vec<String>,
}

/// What the supervisor saw of one task this tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    pub timings: Timings,
    pub exit: Option<Exited>,
    /// None without a load balancer, or once the target is gone from it.
    pub target: Option<Target>,
}

/// An effect of [`plan_tasks`], for the supervisor to apply in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The task exited: its target leaves the load balancer.
    Remove(u64),
    /// The load balancer sends the task no new requests.
    Deregister(u64),
    /// SIGTERM (Docker: `docker stop` with this grace).
    Terminate {
        id: u64,
        grace_secs: u64,
    },
    /// SIGKILL.
    Kill(u64),
    /// A task failed: the next start waits longer.
    BackoffFailed,
    /// A task became healthy: the crash loop is over.
    BackoffReset,
    /// A task of the revision being deployed failed (the circuit breaker counts
    /// it); the last lines of task `tail_of`'s log go after the reason.
    RolloutFailed {
        reason: String,
        tail_of: Option<u64>,
    },
    /// The task is gone: kept among the recently stopped.
    Stopped {
        id: u64,
        revision: u32,
        exit: String,
        reason: String,
    },
    Event {
        kind: &'static str,
        message: String,
    },
}

/// The lifecycle step of every task of a unit: `tasks[i]` was observed as
/// `seen[i]`. Updates the tasks' states and returns the effects, and whether
/// anything worth saving changed. `deregistration` is the unit's deregistration
/// delay; `deploying`, the revision a deployment in progress rolls out.
pub fn plan_tasks(
    tasks: &mut [TaskState],
    seen: &[Observation],
    deregistration: Millis,
    deploying: Option<u32>,
    now: Millis,
) -> (Vec<Action>, bool) {
    let mut out = Vec::new();
    let mut changed = false;
    for (t, o) in tasks.iter_mut().zip(seen) {
        changed |= step_task(t, o, deregistration, deploying, now, &mut out);
    }
    (out, changed)
}

fn step_task(
    t: &mut TaskState,
    o: &Observation,
    deregistration: Millis,
    deploying: Option<u32>,
    now: Millis,
    out: &mut Vec<Action>,
) -> bool {
    if let Some(exit) = &o.exit {
        if t.phase == Phase::Done {
            return false;
        }
        exited(t, exit, deploying, out);
        return true;
    }
    let timings = o.timings;
    match t.phase {
        Phase::Running => running(t, o, deploying, now, out),
        Phase::Draining { since } => {
            let idle = o.target.as_ref().is_none_or(|v| v.outstanding == 0);
            if idle || now.saturating_sub(since) >= deregistration {
                t.phase = Phase::Stopping {
                    since: now,
                    killed: false,
                };
                out.push(Action::Terminate {
                    id: t.id,
                    grace_secs: timings.stop_timeout / 1000,
                });
            }
            false
        }
        Phase::Stopping { since, killed } => {
            if !killed && now.saturating_sub(since) >= timings.stop_timeout {
                t.phase = Phase::Stopping {
                    since,
                    killed: true,
                };
                out.push(Action::Kill(t.id));
                out.push(Action::Event {
                    kind: "task-killed",
                    message: format!(
                        "task {} did not stop within {} ms: SIGKILL",
                        t.id, timings.stop_timeout
                    ),
                });
            }
            false
        }
        Phase::Done => false,
    }
}

/// A failure's reason with the last lines of the task's log after it.
pub fn with_tail(text: String, tail: &[String]) -> String {
    if tail.is_empty() {
        text
    } else {
        format!("{text}; last lines:\n    {}", tail.join("\n    "))
    }
}

fn exited(t: &mut TaskState, exit: &Exited, deploying: Option<u32>, out: &mut Vec<Action>) {
    out.push(Action::Remove(t.id));
    let unexpected = t.phase == Phase::Running;
    t.phase = Phase::Done;
    let mut reason = t
        .reason
        .clone()
        .unwrap_or_else(|| format!("task exited ({})", exit.text));
    if unexpected {
        reason = with_tail(
            format!("task {} exited unexpectedly ({})", t.id, exit.text),
            &exit.tail,
        );
        if !t.counted {
            t.counted = true;
            if !t.healthy {
                out.push(Action::BackoffFailed);
            }
            if deploying == Some(t.revision) {
                out.push(Action::RolloutFailed {
                    reason: reason.clone(),
                    tail_of: None,
                });
            }
        }
    }
    out.push(Action::Stopped {
        id: t.id,
        revision: t.revision,
        exit: exit.text.clone(),
        reason: reason.clone(),
    });
    out.push(Action::Event {
        kind: "task-stopped",
        message: reason,
    });
}

fn running(
    t: &mut TaskState,
    o: &Observation,
    deploying: Option<u32>,
    now: Millis,
    out: &mut Vec<Action>,
) -> bool {
    let mut changed = false;
    let age = now.saturating_sub(t.started);
    let healthy_now = match &o.target {
        Some(v) => v.state == Health::Healthy,
        None => age >= o.timings.healthy_after,
    };
    if healthy_now && !t.healthy {
        t.healthy = true;
        changed = true;
        out.push(Action::BackoffReset);
        out.push(Action::Event {
            kind: "task-healthy",
            message: format!("task {} is healthy", t.id),
        });
    }
    if let Some(v) = &o.target
        && v.state == Health::Unhealthy
        && age >= o.timings.grace
    {
        let why = v
            .last_failure
            .clone()
            .unwrap_or_else(|| "failing health checks".into());
        let reason = format!("task {} failed its health checks ({why})", t.id);
        if !t.counted {
            t.counted = true;
            out.push(Action::BackoffFailed);
            if deploying == Some(t.revision) {
                out.push(Action::RolloutFailed {
                    reason: reason.clone(),
                    tail_of: Some(t.id),
                });
            }
        }
        t.reason = Some(reason.clone());
        t.phase = Phase::Draining { since: now };
        out.push(Action::Deregister(t.id));
        out.push(Action::Event {
            kind: "task-unhealthy",
            message: reason,
        });
        changed = true;
    }
    changed
}

/// Begins stopping a running task: it drains from `now`. False when it is not
/// running (already going).
pub fn begin_stop(t: &mut TaskState, reason: &str, now: Millis) -> bool {
    if t.phase != Phase::Running {
        return false;
    }
    t.reason = Some(reason.to_string());
    t.phase = Phase::Draining { since: now };
    true
}

/// A task that may count for the deployment: a running one, or one being
/// started (it counts as running, not healthy, and is never chosen to stop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    pub id: u64,
    pub revision: u32,
    pub healthy: bool,
    pub started: Millis,
    pub starting: bool,
}

/// Where the revision a deployment rolls out is in its build phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Build {
    Ready,
    Building,
    Failed(String),
}

/// A deployment in progress.
pub struct Deploying<'a> {
    pub to: u32,
    pub build: Build,
    pub rollout: &'a mut Rollout,
}

/// What a unit does this tick: tasks to start (by revision), tasks to stop (with
/// the reason), and the outcome of its deployment if it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitPlan {
    pub starts: Vec<u32>,
    pub stops: Vec<(u64, String)>,
    pub finished: Option<Outcome>,
}

/// The deployment step (or the steady state: `current` is the revision that
/// serves when it can run here) of a unit with `desired` tasks.
pub fn plan_unit(
    live: &[Live],
    desired: u32,
    current: Option<u32>,
    deploy: Option<Deploying<'_>>,
    backoff: &Backoff,
    now: Millis,
) -> UnitPlan {
    let mut plan = UnitPlan::default();
    match deploy {
        Some(Deploying {
            build: Build::Failed(why),
            ..
        }) => {
            // The build failed: nothing of the revision ever ran; what runs stays.
            plan.finished = Some(Outcome::Failed(why));
        }
        // The build phase: no task of the revision starts, nothing stops.
        Some(Deploying {
            build: Build::Building,
            ..
        }) => {}
        Some(Deploying { to, rollout, .. }) => {
            rollout.params.desired = desired;
            let count = |new: bool, healthy: bool| {
                live.iter()
                    .filter(|t| (t.revision == to) == new && (!healthy || t.healthy))
                    .count() as u32
            };
            let c = Counts {
                old_running: count(false, false),
                old_healthy: count(false, true),
                new_running: count(true, false),
                new_healthy: count(true, true),
            };
            let step = rollout.step(c);
            if step.start_new > 0 && backoff.may_start(now) {
                plan.starts
                    .extend(std::iter::repeat_n(to, step.start_new as usize));
            }
            let mut old: Vec<&Live> = live
                .iter()
                .filter(|t| t.revision != to && !t.starting)
                .collect();
            // Unhealthy first, then the newest.
            old.sort_by_key(|t| {
                (
                    t.healthy,
                    std::cmp::Reverse(t.started),
                    std::cmp::Reverse(t.id),
                )
            });
            for t in old.into_iter().take(step.stop_old as usize) {
                plan.stops
                    .push((t.id, format!("replaced by revision {to}")));
            }
            let outcome = rollout.observe(c).clone();
            if outcome != Outcome::InProgress {
                plan.finished = Some(outcome);
            }
        }
        None => {
            let Some(current) = current else {
                return plan;
            };
            let of_current: Vec<&Live> = live.iter().filter(|t| t.revision == current).collect();
            let n = of_current.len() as u32;
            if n < desired && backoff.may_start(now) {
                plan.starts
                    .extend(std::iter::repeat_n(current, (desired - n) as usize));
            }
            if n > desired {
                let mut extra: Vec<&&Live> = of_current.iter().filter(|t| !t.starting).collect();
                // Unhealthy first, then the oldest.
                extra.sort_by_key(|t| (t.healthy, t.started, t.id));
                for t in extra.into_iter().take((n - desired) as usize) {
                    plan.stops.push((t.id, format!("scaled in to {desired}")));
                }
            }
            // Tasks of other revisions (left by a rollback) go.
            for t in live.iter().filter(|t| t.revision != current && !t.starting) {
                plan.stops.push((t.id, format!("not revision {current}")));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rollout::Params;

    const TIMINGS: Timings = Timings {
        grace: 5_000,
        healthy_after: 3_000,
        stop_timeout: 10_000,
    };

    fn task(phase: Phase) -> TaskState {
        TaskState {
            id: 7,
            revision: 2,
            started: 1_000,
            phase,
            healthy: false,
            reason: None,
            counted: false,
        }
    }

    fn target(state: Health, outstanding: u32) -> Observation {
        Observation {
            timings: TIMINGS,
            exit: None,
            target: Some(Target {
                state,
                outstanding,
                last_failure: Some("HTTP 500".into()),
            }),
        }
    }

    fn exit(text: &str) -> Observation {
        Observation {
            timings: TIMINGS,
            exit: Some(Exited {
                text: text.into(),
                tail: vec!["panic: boom".into()],
            }),
            target: None,
        }
    }

    /// One task, one tick at `now` (the fake clock).
    fn tick(t: &mut TaskState, o: Observation, deploying: Option<u32>, now: Millis) -> Vec<Action> {
        plan_tasks(std::slice::from_mut(t), &[o], 20_000, deploying, now).0
    }

    fn count(actions: &[Action], f: impl Fn(&Action) -> bool) -> usize {
        actions.iter().filter(|a| f(a)).count()
    }

    #[test]
    fn failed_health_checks_within_the_grace_period_stop_nothing() {
        let mut t = task(Phase::Running);
        // Started at 1 000; grace 5 000: unhealthy at 5 999 is forgiven.
        assert!(tick(&mut t, target(Health::Unhealthy, 0), Some(2), 5_999).is_empty());
        assert_eq!(t.phase, Phase::Running);
        let a = tick(&mut t, target(Health::Unhealthy, 0), Some(2), 6_000);
        assert_eq!(t.phase, Phase::Draining { since: 6_000 });
        assert_eq!(
            t.reason.as_deref(),
            Some("task 7 failed its health checks (HTTP 500)")
        );
        assert_eq!(
            a,
            vec![
                Action::BackoffFailed,
                Action::RolloutFailed {
                    reason: "task 7 failed its health checks (HTTP 500)".into(),
                    tail_of: Some(7),
                },
                Action::Deregister(7),
                Action::Event {
                    kind: "task-unhealthy",
                    message: "task 7 failed its health checks (HTTP 500)".into(),
                },
            ]
        );
    }

    #[test]
    fn healthy_by_target_or_by_age_without_a_balancer() {
        let mut t = task(Phase::Running);
        let a = tick(&mut t, target(Health::Healthy, 0), None, 1_001);
        assert!(t.healthy);
        assert_eq!(a[0], Action::BackoffReset);
        assert!(tick(&mut t, target(Health::Healthy, 0), None, 1_200).is_empty());

        let mut t = task(Phase::Running);
        let none = Observation {
            timings: TIMINGS,
            ..Observation::default()
        };
        assert!(tick(&mut t, none.clone(), None, 3_999).is_empty());
        assert!(!t.healthy);
        tick(&mut t, none, None, 4_000);
        assert!(t.healthy, "healthy_after 3 000 ms");
    }

    #[test]
    fn a_draining_task_is_terminated_after_the_deregistration_delay() {
        let mut t = task(Phase::Draining { since: 10_000 });
        // Requests in flight: it drains for the deregistration delay (20 000).
        assert!(tick(&mut t, target(Health::Draining, 2), None, 29_999).is_empty());
        let a = tick(&mut t, target(Health::Draining, 2), None, 30_000);
        assert_eq!(
            a,
            vec![Action::Terminate {
                id: 7,
                grace_secs: 10
            }]
        );
        assert_eq!(
            t.phase,
            Phase::Stopping {
                since: 30_000,
                killed: false
            }
        );

        // Idle (or gone from the balancer): SIGTERM at once.
        let mut t = task(Phase::Draining { since: 10_000 });
        let a = tick(&mut t, target(Health::Draining, 0), None, 10_200);
        assert_eq!(count(&a, |a| matches!(a, Action::Terminate { .. })), 1);
        let mut t = task(Phase::Draining { since: 10_000 });
        let gone = Observation {
            timings: TIMINGS,
            ..Observation::default()
        };
        assert_eq!(tick(&mut t, gone, None, 10_200).len(), 1);
    }

    #[test]
    fn sigkill_once_after_the_stop_timeout() {
        let mut t = task(Phase::Stopping {
            since: 30_000,
            killed: false,
        });
        let running = || Observation {
            timings: TIMINGS,
            ..Observation::default()
        };
        assert!(tick(&mut t, running(), None, 39_999).is_empty());
        let a = tick(&mut t, running(), None, 40_000);
        assert_eq!(
            a,
            vec![
                Action::Kill(7),
                Action::Event {
                    kind: "task-killed",
                    message: "task 7 did not stop within 10000 ms: SIGKILL".into(),
                },
            ]
        );
        assert!(tick(&mut t, running(), None, 50_000).is_empty(), "once");
        // Its exit ends it; the reason it was stopped for is kept.
        t.reason = Some("scaled in to 1".into());
        let a = tick(&mut t, exit("killed by signal 9"), None, 50_200);
        assert_eq!(t.phase, Phase::Done);
        assert_eq!(
            a.last(),
            Some(&Action::Event {
                kind: "task-stopped",
                message: "scaled in to 1".into()
            })
        );
        assert_eq!(count(&a, |a| matches!(a, Action::BackoffFailed)), 0);
    }

    #[test]
    fn an_unexpected_exit_counts_once_for_the_backoff_and_the_rollout() {
        let mut t = task(Phase::Running);
        let a = tick(&mut t, exit("exit code 1"), Some(2), 2_000);
        let reason = "task 7 exited unexpectedly (exit code 1); last lines:\n    panic: boom";
        assert_eq!(
            a,
            vec![
                Action::Remove(7),
                Action::BackoffFailed,
                Action::RolloutFailed {
                    reason: reason.into(),
                    tail_of: None
                },
                Action::Stopped {
                    id: 7,
                    revision: 2,
                    exit: "exit code 1".into(),
                    reason: reason.into(),
                },
                Action::Event {
                    kind: "task-stopped",
                    message: reason.into()
                },
            ]
        );
        assert_eq!(t.phase, Phase::Done);
        assert!(t.counted);
        // Seen exited again (it is removed after the tick): nothing more.
        assert!(tick(&mut t, exit("exit code 1"), Some(2), 2_200).is_empty());

        // A task that failed its health checks, then exits while draining: one count.
        let mut t = task(Phase::Running);
        let a = tick(&mut t, target(Health::Unhealthy, 0), Some(2), 6_000);
        let b = tick(&mut t, exit("exit code 143"), Some(2), 6_200);
        let all: Vec<Action> = a.into_iter().chain(b).collect();
        assert_eq!(count(&all, |a| matches!(a, Action::BackoffFailed)), 1);
        assert_eq!(
            count(&all, |a| matches!(a, Action::RolloutFailed { .. })),
            1
        );

        // A healthy task's exit is no crash loop, but the rollout counts it; a
        // task of another revision than the deployed one does not count there.
        let mut t = task(Phase::Running);
        t.healthy = true;
        let a = tick(&mut t, exit("exit code 1"), Some(2), 9_000);
        assert_eq!(count(&a, |a| matches!(a, Action::BackoffFailed)), 0);
        assert_eq!(count(&a, |a| matches!(a, Action::RolloutFailed { .. })), 1);
        let mut t = task(Phase::Running);
        let a = tick(&mut t, exit("exit code 1"), Some(3), 9_000);
        assert_eq!(count(&a, |a| matches!(a, Action::RolloutFailed { .. })), 0);
    }

    #[test]
    fn a_draining_task_that_exits_early_is_done_without_a_failure() {
        let mut t = task(Phase::Running);
        assert!(begin_stop(&mut t, "replaced by revision 3", 10_000));
        assert!(!begin_stop(&mut t, "again", 10_200), "only a running task");
        let a = tick(&mut t, exit("exit code 0"), Some(2), 10_400);
        assert_eq!(
            a,
            vec![
                Action::Remove(7),
                Action::Stopped {
                    id: 7,
                    revision: 2,
                    exit: "exit code 0".into(),
                    reason: "replaced by revision 3".into(),
                },
                Action::Event {
                    kind: "task-stopped",
                    message: "replaced by revision 3".into()
                },
            ]
        );
        assert_eq!(t.phase, Phase::Done);
        assert!(!t.counted);
    }

    fn live(id: u64, revision: u32, healthy: bool, starting: bool) -> Live {
        Live {
            id,
            revision,
            healthy,
            started: id * 100,
            starting,
        }
    }

    #[test]
    fn a_task_being_started_counts_as_running_and_is_never_stopped() {
        let backoff = Backoff::new(1000, 60_000);
        // Steady state: 2 desired, one runs and one is starting: nothing to start.
        let l = [live(1, 1, true, false), live(2, 1, false, true)];
        let p = plan_unit(&l, 2, Some(1), None, &backoff, 0);
        assert_eq!(p, UnitPlan::default());
        // Scaled in to 1: the running one is the only one that may go.
        let p = plan_unit(&l, 0, Some(1), None, &backoff, 0);
        assert_eq!(p.stops, vec![(1, "scaled in to 0".to_string())]);

        // A deployment: the new task being started is not started again.
        let mut r = Rollout::new(Params::new(1, 100, 200, true));
        let l = [live(1, 1, true, false), live(2, 2, false, true)];
        let d = Deploying {
            to: 2,
            build: Build::Ready,
            rollout: &mut r,
        };
        let p = plan_unit(&l, 1, Some(1), Some(d), &backoff, 0);
        assert_eq!(p, UnitPlan::default());
    }

    #[test]
    fn a_failed_build_ends_the_deployment_and_the_backoff_holds_starts() {
        let mut backoff = Backoff::new(1000, 60_000);
        let mut r = Rollout::new(Params::new(1, 100, 200, true));
        let d = Deploying {
            to: 2,
            build: Build::Failed("cargo failed".into()),
            rollout: &mut r,
        };
        let p = plan_unit(&[], 1, Some(1), Some(d), &backoff, 0);
        assert_eq!(p.finished, Some(Outcome::Failed("cargo failed".into())));
        assert!(p.starts.is_empty());

        backoff.failed(0);
        assert!(
            plan_unit(&[], 1, Some(1), None, &backoff, 999)
                .starts
                .is_empty()
        );
        assert_eq!(
            plan_unit(&[], 1, Some(1), None, &backoff, 1_000).starts,
            vec![1]
        );
    }
}

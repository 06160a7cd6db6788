//! Fargate Spot in the local cloud, as pure decisions: which of a unit's tasks the
//! seed's capacity provider strategy puts on FARGATE_SPOT (`placement`), and what
//! a Spot interruption does to one (`interrupt`).
//!
//! Invariants:
//! - Placement follows ECS's strategy: the first `on_demand_base` tasks (oldest
//!   first) are on FARGATE, the rest go to the provider that stays closest to the
//!   weights (weighted round robin). A replacement is placed like any new task.
//! - An interruption is what Fargate does with its two-minute warning: the task
//!   state change (an `spot-interruption` event), the target deregistered and
//!   SIGTERM at once, then SIGKILL after the unit's stop timeout (the lifecycle's
//!   `Stopping` phase, `core::tasks`). The task leaves `Running`, so the unit's
//!   plan starts its replacement; the stop is not a failure (no backoff, no
//!   circuit-breaker count).

use super::Millis;
use super::tasks::{Action, Phase, TaskState};

/// A capacity provider strategy (`capacity.*` settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strategy {
    pub on_demand_base: u32,
    pub on_demand_weight: u32,
    pub spot_weight: u32,
}

impl Default for Strategy {
    /// The seed's: one task always on FARGATE, then 1:4 FARGATE:FARGATE_SPOT.
    fn default() -> Self {
        Strategy {
            on_demand_base: 1,
            on_demand_weight: 1,
            spot_weight: 4,
        }
    }
}

/// A capacity provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Fargate,
    FargateSpot,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Fargate => "FARGATE",
            Provider::FargateSpot => "FARGATE_SPOT",
        }
    }
}

/// The provider of each of `n` tasks, oldest first.
pub fn placement(n: usize, s: Strategy) -> Vec<Provider> {
    let mut out = Vec::with_capacity(n);
    let (mut od, mut spot) = (0u64, 0u64);
    for i in 0..n {
        let p = if i < s.on_demand_base as usize || s.spot_weight == 0 {
            Provider::Fargate
        } else if s.on_demand_weight == 0 {
            Provider::FargateSpot
        } else {
            // The provider whose count after this task is furthest below its
            // weight's share: (count + 1) / weight smallest, Spot on a tie.
            let od_next = (od + 1) * u64::from(s.spot_weight);
            let spot_next = (spot + 1) * u64::from(s.on_demand_weight);
            if spot_next <= od_next {
                Provider::FargateSpot
            } else {
                Provider::Fargate
            }
        };
        if i >= s.on_demand_base as usize {
            match p {
                Provider::Fargate => od += 1,
                Provider::FargateSpot => spot += 1,
            }
        }
        out.push(p);
    }
    out
}

/// The ids of the tasks on FARGATE_SPOT among `running` (ids with their start
/// times; placed oldest first).
pub fn spot_tasks(running: &[(u64, Millis)], s: Strategy) -> Vec<u64> {
    let mut by_age = running.to_vec();
    by_age.sort_by_key(|&(id, started)| (started, id));
    by_age
        .iter()
        .zip(placement(by_age.len(), s))
        .filter(|(_, p)| *p == Provider::FargateSpot)
        .map(|((id, _), _)| *id)
        .collect()
}

/// Interrupts a running task as Fargate reclaims Spot capacity: it goes straight
/// to `Stopping` (SIGTERM now, SIGKILL after `stop_timeout`) and leaves the load
/// balancer. `None` when it is not running (already going).
pub fn interrupt(t: &mut TaskState, stop_timeout: Millis, now: Millis) -> Option<Vec<Action>> {
    if t.phase != Phase::Running {
        return None;
    }
    let reason = format!(
        "Fargate Spot interruption (SpotInterruption): task {} got SIGTERM; SIGKILL if still running after the stop timeout ({} s)",
        t.id,
        stop_timeout / 1000
    );
    t.reason = Some(reason.clone());
    t.phase = Phase::Stopping {
        since: now,
        killed: false,
    };
    Some(vec![
        Action::Event {
            kind: "spot-interruption",
            message: reason,
        },
        Action::Deregister(t.id),
        Action::Terminate {
            id: t.id,
            grace_secs: stop_timeout / 1000,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::Provider::{Fargate as OD, FargateSpot as SPOT};
    use super::*;
    use crate::core::tasks::{Exited, Observation, Timings, plan_tasks};

    #[test]
    fn the_seeds_strategy_keeps_one_task_on_demand_then_four_spot_to_one() {
        let s = Strategy::default();
        assert_eq!(placement(1, s), [OD]);
        assert_eq!(placement(2, s), [OD, SPOT]);
        assert_eq!(placement(6, s), [OD, SPOT, SPOT, SPOT, SPOT, OD]);
        let spot = placement(101, s).iter().filter(|p| **p == SPOT).count();
        assert_eq!(spot, 80);
        // No Spot weight: nothing is Spot; no on-demand weight: all past the base.
        let none = Strategy {
            spot_weight: 0,
            ..s
        };
        assert!(placement(5, none).iter().all(|p| *p == OD));
        let all = Strategy {
            on_demand_base: 0,
            on_demand_weight: 0,
            spot_weight: 1,
        };
        assert!(placement(3, all).iter().all(|p| *p == SPOT));
        // The oldest tasks hold the base.
        assert_eq!(
            spot_tasks(&[(9, 500), (3, 100), (5, 300)], s),
            vec![5, 9],
            "task 3, the oldest, is the on-demand base"
        );
    }

    #[test]
    fn an_interruption_sends_sigterm_at_once_and_sigkill_after_the_stop_timeout() {
        let mut t = TaskState {
            id: 4,
            revision: 1,
            started: 0,
            phase: Phase::Running,
            healthy: true,
            reason: None,
            counted: false,
        };
        let actions = interrupt(&mut t, 7_000, 1_000).expect("running");
        assert!(matches!(
            actions[0],
            Action::Event {
                kind: "spot-interruption",
                ..
            }
        ));
        assert_eq!(actions[1], Action::Deregister(4));
        assert_eq!(
            actions[2],
            Action::Terminate {
                id: 4,
                grace_secs: 7
            }
        );
        assert!(interrupt(&mut t, 7_000, 1_200).is_none(), "once");
        let seen = [Observation {
            timings: Timings {
                grace: 0,
                healthy_after: 0,
                stop_timeout: 7_000,
            },
            exit: None,
            target: None,
        }];
        let mut tasks = [t];
        let (a, _) = plan_tasks(&mut tasks, &seen, 0, None, 7_999);
        assert!(a.is_empty(), "no SIGKILL before the stop timeout: {a:?}");
        let (a, _) = plan_tasks(&mut tasks, &seen, 0, None, 8_000);
        assert!(a.contains(&Action::Kill(4)), "{a:?}");
        // Its end is not a failure: no backoff, no rollout count.
        let ended = [Observation {
            exit: Some(Exited {
                text: "killed by signal 9".into(),
                tail: vec![],
            }),
            ..seen[0].clone()
        }];
        let (a, _) = plan_tasks(&mut tasks, &ended, 0, Some(1), 8_200);
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::BackoffFailed | Action::RolloutFailed { .. })),
            "{a:?}"
        );
        assert!(
            a.iter().any(|x| matches!(x, Action::Stopped { reason, .. } if reason.contains("SpotInterruption"))),
            "{a:?}"
        );
    }
}

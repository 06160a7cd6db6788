//! Target-tracking autoscaling of one unit (Application Auto Scaling for ECS), as a
//! pure state machine fed one period of metrics at a time.
//!
//! The supervisor calls [`TargetTracking::evaluate`] once per metrics period with
//! that period's [`Readings`] and the unit's desired count, and applies the
//! [`Activity`] it may get back. Invariants:
//!
//! - Each policy keeps two streaks of consecutive periods: above its target
//!   (strictly) and below `in_factor × target` (strictly). A period between the two,
//!   or without data (`None`, NaN, infinite), ends both streaks of that policy.
//! - Scale-out: when ANY policy has been above its target for `out_periods`
//!   periods, to `ceil(desired × value / target)` (`value`: the latest period's),
//!   at least `desired + 1`, at most `max`; the largest proposal wins.
//! - Scale-in: only when EVERY policy has been below its low threshold for
//!   `in_periods` periods (so every policy has data); each proposes
//!   `ceil(desired × value / target)`, and the largest (most conservative)
//!   proposal wins. Gradual: one scale-in removes at most half the tasks (rounded
//!   down) but at least one, and never goes below `min`.
//! - Cooldowns: no scale-out before `cooldown_out` after the last scale-out; no
//!   scale-in before `cooldown_in` after the last activity of any kind. Streaks
//!   keep counting during a cooldown, so a due activity happens at the first
//!   period after it. Every activity ends every streak.
//! - A desired count outside `[min, max]` (a manual scale, a manifest change) is
//!   brought to the nearest bound at the next period, before any policy is
//!   considered. These activities count for the scale-in cooldown only.
//! - While a deployment is in progress nothing scales in (neither a policy nor the
//!   `max` bound); the first period a scale-in is due but suspended yields a
//!   [`Suppressed`] note, later periods of the same suspension none.
//! - Capacity is computed from the desired count, as Application Auto Scaling does
//!   from the service's DesiredCount; BacklogPerTask is the caller's division
//!   (visible messages / running tasks, or the messages themselves when none runs).
//!
//! Nothing is persisted: a restarted supervisor starts with empty streaks and no
//! cooldown.

use super::Millis;
use super::alarms::{datapoint, plain};
use serde::Serialize;
use std::collections::VecDeque;

/// The metric a policy tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// ECSServiceAverageCPUUtilization, percent.
    Cpu,
    /// ECSServiceAverageMemoryUtilization, percent.
    Memory,
    /// ALBRequestCountPerTarget, requests per target per minute.
    RequestsPerTarget,
    /// Visible messages of the worker's queue per running task.
    BacklogPerTask,
}

impl Metric {
    /// The policy's short name, as in its alarms' names (`TargetTracking-cpu-AlarmHigh`).
    pub fn label(self) -> &'static str {
        self.names()[0]
    }

    /// The metric's name, as CloudWatch spells it.
    pub fn metric_name(self) -> &'static str {
        self.names()[1]
    }

    /// The predefined metric type of the policy (BacklogPerTask: a custom metric).
    pub fn policy_type(self) -> &'static str {
        self.names()[2]
    }

    fn names(self) -> [&'static str; 3] {
        match self {
            Metric::Cpu => ["cpu", "CPUUtilization", "ECSServiceAverageCPUUtilization"],
            Metric::Memory => [
                "memory",
                "MemoryUtilization",
                "ECSServiceAverageMemoryUtilization",
            ],
            Metric::RequestsPerTarget => [
                "requests",
                "RequestCountPerTarget",
                "ALBRequestCountPerTarget",
            ],
            Metric::BacklogPerTask => ["backlog", "BacklogPerTask", "BacklogPerTask"],
        }
    }
}

/// A target-tracking policy. `target` must be positive and finite; a policy whose
/// target is not reads as having no data (it never scales out and blocks scale-in).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub metric: Metric,
    pub target: f64,
}

/// The scalable target and its policies.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub min: u32,
    /// Below `min`, `min` is the maximum too.
    pub max: u32,
    /// At most one per metric (a second one of the same metric is ignored).
    pub policies: Vec<Policy>,
    /// Consecutive periods above target before a scale-out (AWS: 3).
    pub out_periods: u32,
    /// Consecutive periods below `in_factor × target` before a scale-in (AWS: 15).
    pub in_periods: u32,
    /// AWS: 0.9.
    pub in_factor: f64,
    /// After a scale-out, no scale-out before this has passed.
    pub cooldown_out: Millis,
    /// After any activity, no scale-in before this has passed.
    pub cooldown_in: Millis,
}

impl Params {
    pub const DEFAULT_CPU_TARGET: f64 = 70.0;

    /// AWS's periods and factor (3, 15, 0.9) and Pantstack's default cooldowns
    /// (60 s out, 300 s in).
    pub fn new(min: u32, max: u32, policies: Vec<Policy>) -> Self {
        Params {
            min,
            max,
            policies,
            out_periods: 3,
            in_periods: 15,
            in_factor: 0.9,
            cooldown_out: 60_000,
            cooldown_in: 300_000,
        }
    }

    fn bounds(&self) -> (u32, u32) {
        (self.min, self.max.max(self.min))
    }
}

/// One period's value of each metric, the statistic already applied (averages over
/// the running tasks; requests normalised to per minute). `None`: no data, or a
/// metric no policy tracks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Readings {
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub requests_per_target: Option<f64>,
    pub backlog_per_task: Option<f64>,
}

impl Readings {
    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Cpu => self.cpu,
            Metric::Memory => self.memory,
            Metric::RequestsPerTarget => self.requests_per_target,
            Metric::BacklogPerTask => self.backlog_per_task,
        }
    }
}

/// What the supervisor knows at the end of one metrics period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Period {
    pub now: Millis,
    pub readings: Readings,
    /// The unit's desired count now.
    pub desired: u32,
    /// A deployment is in progress: scale-in is suspended.
    pub deploying: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A policy was above its target.
    ScaleOut,
    /// Every policy was below its low threshold.
    ScaleIn,
    /// The desired count was below the minimum capacity.
    Minimum,
    /// The desired count was above the maximum capacity.
    Maximum,
}

/// A change of the desired count, for the supervisor to apply and record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Activity {
    pub at: Millis,
    pub from: u32,
    pub to: u32,
    pub kind: Kind,
    /// The policy whose proposal won (none for the bounds).
    pub policy: Option<Metric>,
    /// Why, in the style of Application Auto Scaling's activity causes.
    pub cause: String,
}

/// A scale-in that was due but is suspended by a deployment in progress. Given
/// once per suspension, for the supervisor to record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suppressed {
    pub at: Millis,
    pub from: u32,
    pub to: u32,
    pub cause: String,
}

/// The outcome of one period: at most one of the two.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub activity: Option<Activity>,
    pub suppressed: Option<Suppressed>,
}

/// How far a policy is along its streaks (for display).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Progress {
    pub metric: Metric,
    pub target: f64,
    /// Consecutive periods above the target, of `out_periods`.
    pub above: u32,
    /// Consecutive periods below the low threshold, of `in_periods`.
    pub below: u32,
}

/// A policy's run of consecutive periods on one side of its thresholds, with the
/// latest values (at most `cap`).
#[derive(Clone, Debug, Default, PartialEq)]
struct Run {
    side: Option<Side>,
    len: u32,
    values: VecDeque<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Above the target.
    Above,
    /// Below `in_factor × target`.
    Below,
}

impl Run {
    /// One more period, on `side` (None: between the thresholds, or no data).
    fn extend(&mut self, side: Option<Side>, v: f64, cap: u32) {
        if side != self.side {
            *self = Run {
                side,
                ..Run::default()
            };
        }
        if side.is_some() {
            self.len = self.len.saturating_add(1);
            self.values.push_back(v);
            while self.values.len() > cap.max(1) as usize {
                self.values.pop_front();
            }
        }
    }

    /// Consecutive periods on `side`.
    fn on(&self, side: Side) -> u32 {
        if self.side == Some(side) { self.len } else { 0 }
    }

    fn latest(&self) -> Option<f64> {
        self.values.back().copied()
    }

    fn text(&self) -> String {
        let v: Vec<String> = self.values.iter().map(|v| datapoint(*v)).collect();
        v.join(", ")
    }
}

/// A proposal of one policy.
struct Proposal {
    index: usize,
    to: u32,
    /// What raised a scale-in proposal above the policy's own (for the cause).
    floor: Option<Floor>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Floor {
    Minimum,
    Gradual,
}

/// The target tracking of one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetTracking {
    params: Params,
    /// `runs[i]` belongs to `params.policies[i]`.
    runs: Vec<Run>,
    last_out: Option<Millis>,
    last_activity: Option<Millis>,
    /// A `Suppressed` was given for the current suspension.
    noted: bool,
    /// This period's scale-in is suspended.
    suspending: bool,
}

impl TargetTracking {
    pub fn new(mut params: Params) -> Self {
        dedup(&mut params.policies);
        let runs = vec![Run::default(); params.policies.len()];
        TargetTracking {
            params,
            runs,
            last_out: None,
            last_activity: None,
            noted: false,
            suspending: false,
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// New parameters (a manifest change). The cooldowns carry on; the streaks
    /// start afresh when the policies changed.
    pub fn update(&mut self, mut params: Params) {
        dedup(&mut params.policies);
        if params.policies != self.params.policies {
            self.runs = vec![Run::default(); params.policies.len()];
        }
        self.params = params;
    }

    /// Each policy's streaks.
    pub fn progress(&self) -> Vec<Progress> {
        self.params
            .policies
            .iter()
            .zip(&self.runs)
            .map(|(p, r)| Progress {
                metric: p.metric,
                target: p.target,
                above: r.on(Side::Above),
                below: r.on(Side::Below),
            })
            .collect()
    }

    /// One metrics period: updates the streaks and decides.
    pub fn evaluate(&mut self, period: &Period) -> Decision {
        self.observe(&period.readings);
        self.suspending = false;
        let decision = self.decide(period);
        if !self.suspending {
            self.noted = false;
        }
        decision
    }

    fn observe(&mut self, readings: &Readings) {
        let p = &self.params;
        for (policy, run) in p.policies.iter().zip(self.runs.iter_mut()) {
            let value = readings
                .get(policy.metric)
                .filter(|v| v.is_finite() && valid_target(policy.target));
            match value {
                Some(v) if v > policy.target => run.extend(Some(Side::Above), v, p.out_periods),
                Some(v) if v < policy.target * p.in_factor => {
                    run.extend(Some(Side::Below), v, p.in_periods)
                }
                _ => run.extend(None, 0.0, 0),
            }
        }
    }

    fn decide(&mut self, period: &Period) -> Decision {
        let (min, max) = self.params.bounds();
        let (now, desired) = (period.now, period.desired);
        if desired < min {
            let cause = format!(
                "the desired capacity {desired} is below the minimum capacity {min}; \
                 changing the desired capacity from {desired} to {min}"
            );
            return self.act(period, min, Kind::Minimum, None, cause);
        }
        if desired > max {
            if period.deploying {
                let cause = format!(
                    "scale-in from {desired} to the maximum capacity {max} suspended \
                     while a deployment is in progress"
                );
                return self.suppress(period, max, cause);
            }
            let cause = format!(
                "the desired capacity {desired} is above the maximum capacity {max}; \
                 changing the desired capacity from {desired} to {max}"
            );
            return self.act(period, max, Kind::Maximum, None, cause);
        }
        if let Some(out) = self.scale_out(desired, max) {
            if cooling(self.last_out, self.params.cooldown_out, now) {
                return Decision::default();
            }
            let policy = self.params.policies[out.index];
            let high = &self.runs[out.index];
            let limit = (out.to == max).then_some(", the maximum capacity");
            let cause = format!(
                "monitor alarm TargetTracking-{}-AlarmHigh in state ALARM: {} {} > {} \
                 for {} periods; changing the desired capacity from {desired} to {}{}",
                policy.metric.label(),
                policy.metric.metric_name(),
                high.text(),
                plain(policy.target),
                high.values.len(),
                out.to,
                limit.unwrap_or_default(),
            );
            self.last_out = Some(now);
            return self.act(period, out.to, Kind::ScaleOut, Some(policy.metric), cause);
        }
        let Some(inn) = self.scale_in(desired, min) else {
            return Decision::default();
        };
        if cooling(self.last_activity, self.params.cooldown_in, now) {
            return Decision::default();
        }
        let policy = self.params.policies[inn.index];
        let low = &self.runs[inn.index];
        let alarm = format!(
            "monitor alarm TargetTracking-{}-AlarmLow",
            policy.metric.label()
        );
        if period.deploying {
            let cause = format!(
                "scale-in from {desired} to {} suspended while a deployment is in \
                 progress ({alarm} in state ALARM)",
                inn.to
            );
            return self.suppress(period, inn.to, cause);
        }
        let limit = match inn.floor {
            Some(Floor::Minimum) => ", the minimum capacity".to_string(),
            Some(Floor::Gradual) => format!(
                " (a scale-in removes at most {} of {desired} tasks)",
                step_in(desired)
            ),
            None => String::new(),
        };
        let cause = format!(
            "{alarm} in state ALARM: {} {} < {} for {} periods; changing the desired \
             capacity from {desired} to {}{limit}",
            policy.metric.metric_name(),
            low.text(),
            plain(policy.target * self.params.in_factor),
            low.values.len(),
            inn.to,
        );
        self.act(period, inn.to, Kind::ScaleIn, Some(policy.metric), cause)
    }

    /// The largest proposal of the policies above target, if above `desired`.
    fn scale_out(&self, desired: u32, max: u32) -> Option<Proposal> {
        let p = &self.params;
        let mut best: Option<Proposal> = None;
        for (index, (policy, run)) in p.policies.iter().zip(&self.runs).enumerate() {
            let Some(v) = run
                .latest()
                .filter(|_| run.on(Side::Above) >= p.out_periods.max(1))
            else {
                continue;
            };
            let to = proportional(desired, v, policy.target)
                .max(desired.saturating_add(1))
                .min(max);
            if to > desired && best.as_ref().is_none_or(|b| to > b.to) {
                best = Some(Proposal {
                    index,
                    to,
                    floor: None,
                });
            }
        }
        best
    }

    /// The largest proposal when every policy is below its low threshold, if
    /// below `desired`.
    fn scale_in(&self, desired: u32, min: u32) -> Option<Proposal> {
        let p = &self.params;
        let mut best: Option<Proposal> = None;
        for (index, (policy, run)) in p.policies.iter().zip(&self.runs).enumerate() {
            let v = run
                .latest()
                .filter(|_| run.on(Side::Below) >= p.in_periods.max(1))?;
            let own = proportional(desired, v, policy.target);
            let gradual = desired - step_in(desired);
            let to = own.max(gradual).max(min);
            let floor = if to == own {
                None
            } else if to == min && min >= gradual {
                Some(Floor::Minimum)
            } else {
                Some(Floor::Gradual)
            };
            if best.as_ref().is_none_or(|b| to > b.to) {
                best = Some(Proposal { index, to, floor });
            }
        }
        best.filter(|b| b.to < desired)
    }

    /// An activity from the period's desired count to `to`: every run ends.
    fn act(
        &mut self,
        p: &Period,
        to: u32,
        kind: Kind,
        policy: Option<Metric>,
        cause: String,
    ) -> Decision {
        self.last_activity = Some(p.now);
        self.runs.fill(Run::default());
        let (at, from) = (p.now, p.desired);
        let activity = Activity {
            at,
            from,
            to,
            kind,
            policy,
            cause,
        };
        Decision {
            activity: Some(activity),
            suppressed: None,
        }
    }

    /// A scale-in to `to` suspended by the deployment: noted once per suspension.
    fn suppress(&mut self, p: &Period, to: u32, cause: String) -> Decision {
        self.suspending = true;
        if std::mem::replace(&mut self.noted, true) {
            return Decision::default();
        }
        let (at, from) = (p.now, p.desired);
        let note = Suppressed {
            at,
            from,
            to,
            cause,
        };
        Decision {
            activity: None,
            suppressed: Some(note),
        }
    }
}

/// Most tasks one scale-in removes from `desired`: half, rounded down, at least one.
pub fn step_in(desired: u32) -> u32 {
    (desired / 2).max(1).min(desired)
}

/// An activity at `since` (if any) is less than `cooldown` ago.
fn cooling(since: Option<Millis>, cooldown: Millis, now: Millis) -> bool {
    since.is_some_and(|t| now < t.saturating_add(cooldown))
}

fn valid_target(target: f64) -> bool {
    target.is_finite() && target > 0.0
}

/// `ceil(desired × value / target)`, saturating.
fn proportional(desired: u32, value: f64, target: f64) -> u32 {
    let want = (f64::from(desired) * value / target).ceil();
    if want <= 0.0 {
        0
    } else if want >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and integral: the cast is exact.
        want as u32
    }
}

/// Keeps the first policy of each metric.
fn dedup(policies: &mut Vec<Policy>) {
    let mut seen = Vec::new();
    policies.retain(|p| {
        let first = !seen.contains(&p.metric);
        seen.push(p.metric);
        first
    });
}

#[cfg(test)]
mod tests;

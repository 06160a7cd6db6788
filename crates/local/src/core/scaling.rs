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
    pub const ALL: [Metric; 4] = [
        Metric::Cpu,
        Metric::Memory,
        Metric::RequestsPerTarget,
        Metric::BacklogPerTask,
    ];

    /// The policy's short name, as in its alarms' names (`TargetTracking-cpu-AlarmHigh`).
    pub fn label(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::RequestsPerTarget => "requests",
            Metric::BacklogPerTask => "backlog",
        }
    }

    /// The metric's name, as CloudWatch spells it.
    pub fn metric_name(self) -> &'static str {
        match self {
            Metric::Cpu => "CPUUtilization",
            Metric::Memory => "MemoryUtilization",
            Metric::RequestsPerTarget => "RequestCountPerTarget",
            Metric::BacklogPerTask => "BacklogPerTask",
        }
    }

    /// The predefined metric type of the policy (BacklogPerTask: a custom metric).
    pub fn policy_type(self) -> &'static str {
        match self {
            Metric::Cpu => "ECSServiceAverageCPUUtilization",
            Metric::Memory => "ECSServiceAverageMemoryUtilization",
            Metric::RequestsPerTarget => "ALBRequestCountPerTarget",
            Metric::BacklogPerTask => "BacklogPerTask",
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

/// The values of the current streak, at most `cap` of the latest kept.
#[derive(Clone, Debug, Default, PartialEq)]
struct Streak {
    values: VecDeque<f64>,
    len: u32,
}

impl Streak {
    fn push(&mut self, v: f64, cap: u32) {
        self.len = self.len.saturating_add(1);
        self.values.push_back(v);
        while self.values.len() > cap.max(1) as usize {
            self.values.pop_front();
        }
    }

    fn clear(&mut self) {
        self.values.clear();
        self.len = 0;
    }

    fn latest(&self) -> Option<f64> {
        self.values.back().copied()
    }

    fn text(&self) -> String {
        let v: Vec<String> = self.values.iter().map(|v| datapoint(*v)).collect();
        v.join(", ")
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Streaks {
    high: Streak,
    low: Streak,
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
    /// `streaks[i]` belongs to `params.policies[i]`.
    streaks: Vec<Streaks>,
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
        let streaks = vec![Streaks::default(); params.policies.len()];
        TargetTracking {
            params,
            streaks,
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
            self.streaks = vec![Streaks::default(); params.policies.len()];
        }
        self.params = params;
    }

    /// Each policy's streaks.
    pub fn progress(&self) -> Vec<Progress> {
        self.params
            .policies
            .iter()
            .zip(&self.streaks)
            .map(|(p, s)| Progress {
                metric: p.metric,
                target: p.target,
                above: s.high.len,
                below: s.low.len,
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
        for (policy, s) in p.policies.iter().zip(self.streaks.iter_mut()) {
            let value = readings
                .get(policy.metric)
                .filter(|v| v.is_finite() && valid_target(policy.target));
            match value {
                Some(v) if v > policy.target => {
                    s.low.clear();
                    s.high.push(v, p.out_periods);
                }
                Some(v) if v < policy.target * p.in_factor => {
                    s.high.clear();
                    s.low.push(v, p.in_periods);
                }
                _ => {
                    s.high.clear();
                    s.low.clear();
                }
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
            return self.act(now, desired, min, Kind::Minimum, None, cause);
        }
        if desired > max {
            if period.deploying {
                let cause = format!(
                    "scale-in from {desired} to the maximum capacity {max} suspended \
                     while a deployment is in progress"
                );
                return self.suppress(now, desired, max, cause);
            }
            let cause = format!(
                "the desired capacity {desired} is above the maximum capacity {max}; \
                 changing the desired capacity from {desired} to {max}"
            );
            return self.act(now, desired, max, Kind::Maximum, None, cause);
        }
        if let Some(out) = self.scale_out(desired, max) {
            if self
                .last_out
                .is_some_and(|t| now < t + self.params.cooldown_out)
            {
                return Decision::default();
            }
            let policy = self.params.policies[out.index];
            let high = &self.streaks[out.index].high;
            let cause = format!(
                "monitor alarm TargetTracking-{}-AlarmHigh in state ALARM: {} {} > {} \
                 for {} periods; changing the desired capacity from {desired} to {}{}",
                policy.metric.label(),
                policy.metric.metric_name(),
                high.text(),
                plain(policy.target),
                high.values.len(),
                out.to,
                if out.to == max {
                    ", the maximum capacity"
                } else {
                    ""
                },
            );
            self.last_out = Some(now);
            return self.act(
                now,
                desired,
                out.to,
                Kind::ScaleOut,
                Some(policy.metric),
                cause,
            );
        }
        let Some(inn) = self.scale_in(desired, min) else {
            return Decision::default();
        };
        if self
            .last_activity
            .is_some_and(|t| now < t + self.params.cooldown_in)
        {
            return Decision::default();
        }
        let policy = self.params.policies[inn.index];
        let low = &self.streaks[inn.index].low;
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
            return self.suppress(now, desired, inn.to, cause);
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
        self.act(
            now,
            desired,
            inn.to,
            Kind::ScaleIn,
            Some(policy.metric),
            cause,
        )
    }

    /// The largest proposal of the policies above target, if above `desired`.
    fn scale_out(&self, desired: u32, max: u32) -> Option<Proposal> {
        let p = &self.params;
        let mut best: Option<Proposal> = None;
        for (index, (policy, s)) in p.policies.iter().zip(&self.streaks).enumerate() {
            if s.high.len < p.out_periods.max(1) {
                continue;
            }
            let Some(v) = s.high.latest() else { continue };
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
        for (index, (policy, s)) in p.policies.iter().zip(&self.streaks).enumerate() {
            if s.low.len < p.in_periods.max(1) {
                return None;
            }
            let v = s.low.latest()?;
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

    fn act(
        &mut self,
        at: Millis,
        from: u32,
        to: u32,
        kind: Kind,
        policy: Option<Metric>,
        cause: String,
    ) -> Decision {
        self.last_activity = Some(at);
        for s in &mut self.streaks {
            s.high.clear();
            s.low.clear();
        }
        Decision {
            activity: Some(Activity {
                at,
                from,
                to,
                kind,
                policy,
                cause,
            }),
            suppressed: None,
        }
    }

    fn suppress(&mut self, at: Millis, from: u32, to: u32, cause: String) -> Decision {
        self.suspending = true;
        if self.noted {
            return Decision::default();
        }
        self.noted = true;
        Decision {
            activity: None,
            suppressed: Some(Suppressed {
                at,
                from,
                to,
                cause,
            }),
        }
    }
}

/// Most tasks one scale-in removes from `desired`: half, rounded down, at least one.
pub fn step_in(desired: u32) -> u32 {
    (desired / 2).max(1).min(desired)
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
mod tests {
    use super::*;

    /// The local default metrics period.
    const P: Millis = 10_000;

    fn cpu(target: f64) -> Policy {
        Policy {
            metric: Metric::Cpu,
            target,
        }
    }

    fn policy(metric: Metric, target: f64) -> Policy {
        Policy { metric, target }
    }

    /// A supervisor stand-in: one period per step, activities applied.
    struct Sim {
        tt: TargetTracking,
        now: Millis,
        desired: u32,
        deploying: bool,
    }

    impl Sim {
        fn new(params: Params, desired: u32) -> Self {
            Sim {
                tt: TargetTracking::new(params),
                now: 0,
                desired,
                deploying: false,
            }
        }

        fn cpu(min: u32, max: u32, desired: u32) -> Self {
            Sim::new(Params::new(min, max, vec![cpu(70.0)]), desired)
        }

        fn step(&mut self, readings: Readings) -> Decision {
            self.now += P;
            let d = self.tt.evaluate(&Period {
                now: self.now,
                readings,
                desired: self.desired,
                deploying: self.deploying,
            });
            assert!(
                d.activity.is_none() || d.suppressed.is_none(),
                "at most one of the two: {d:?}"
            );
            if let Some(a) = &d.activity {
                assert_eq!(a.from, self.desired);
                assert_eq!(a.at, self.now);
                self.desired = a.to;
            }
            d
        }

        fn cpu_step(&mut self, v: Option<f64>) -> Decision {
            self.step(Readings {
                cpu: v,
                ..Readings::default()
            })
        }

        /// Feeds `n` periods of one CPU value; all but the last must decide nothing.
        fn hold(&mut self, v: f64, n: usize) -> Decision {
            for i in 1..n {
                let d = self.cpu_step(Some(v));
                assert_eq!(d, Decision::default(), "period {i} of {n} at {v}");
            }
            self.cpu_step(Some(v))
        }

        /// Feeds periods of one value until something is decided (at most `limit`).
        fn until(&mut self, v: f64, limit: usize) -> (usize, Decision) {
            for i in 1..=limit {
                let d = self.cpu_step(Some(v));
                if d != Decision::default() {
                    return (i, d);
                }
            }
            panic!("nothing decided in {limit} periods at {v}");
        }
    }

    fn activity(d: Decision) -> Activity {
        match d.activity {
            Some(a) => a,
            None => panic!("no activity: {d:?}"),
        }
    }

    #[test]
    fn scales_out_after_exactly_three_periods_above_target_not_two() {
        let mut s = Sim::cpu(1, 10, 1);
        assert_eq!(s.cpu_step(Some(93.1)), Decision::default());
        assert_eq!(s.cpu_step(Some(95.0)), Decision::default(), "2 periods");
        let a = activity(s.cpu_step(Some(91.2)));
        assert_eq!((a.from, a.to, a.kind), (1, 2, Kind::ScaleOut));
        assert_eq!(a.policy, Some(Metric::Cpu));
        assert_eq!(
            a.cause,
            "monitor alarm TargetTracking-cpu-AlarmHigh in state ALARM: CPUUtilization \
             93.1, 95.0, 91.2 > 70 for 3 periods; changing the desired capacity from 1 to 2"
        );
    }

    #[test]
    fn a_value_at_the_target_or_no_data_breaks_the_streak() {
        let mut s = Sim::cpu(1, 10, 1);
        for v in [Some(80.0), Some(80.0), Some(70.0), Some(80.0), Some(80.0)] {
            assert_eq!(s.cpu_step(v), Decision::default(), "{v:?}");
        }
        assert!(s.cpu_step(Some(80.0)).activity.is_some());
        let mut s = Sim::cpu(1, 10, 1);
        for v in [Some(80.0), Some(80.0), None, Some(80.0), Some(80.0)] {
            assert_eq!(s.cpu_step(v), Decision::default(), "{v:?}");
        }
        assert!(s.cpu_step(Some(80.0)).activity.is_some());
        let mut s = Sim::cpu(1, 10, 1);
        for v in [80.0, 80.0, f64::NAN, 80.0, 80.0] {
            assert_eq!(s.cpu_step(Some(v)), Decision::default(), "NaN is no data");
        }
        assert!(s.cpu_step(Some(80.0)).activity.is_some());
    }

    #[test]
    fn scale_out_is_proportional_and_at_least_one_task() {
        for (desired, value, want) in [(4, 100.0, 6), (2, 71.0, 3), (10, 70.01, 11), (3, 280.0, 12)]
        {
            let mut s = Sim::cpu(1, 20, desired);
            let a = activity(s.hold(value, 3));
            assert_eq!(a.to, want, "{desired} tasks at {value}");
        }
    }

    #[test]
    fn scale_out_stops_at_the_maximum() {
        let mut s = Sim::cpu(1, 5, 4);
        let a = activity(s.hold(100.0, 3));
        assert_eq!(a.to, 5);
        assert!(
            a.cause.ends_with("from 4 to 5, the maximum capacity"),
            "{}",
            a.cause
        );
        for _ in 0..20 {
            assert_eq!(
                s.cpu_step(Some(100.0)),
                Decision::default(),
                "at the maximum"
            );
        }
    }

    #[test]
    fn a_worker_scales_out_from_zero() {
        let p = Params::new(0, 5, vec![policy(Metric::BacklogPerTask, 10.0)]);
        let mut s = Sim::new(p, 0);
        let backlog = Readings {
            backlog_per_task: Some(50.0),
            ..Readings::default()
        };
        assert_eq!(s.step(backlog), Decision::default());
        assert_eq!(s.step(backlog), Decision::default());
        let a = activity(s.step(backlog));
        assert_eq!((a.from, a.to), (0, 1));
        assert!(
            a.cause.contains("TargetTracking-backlog-AlarmHigh"),
            "{}",
            a.cause
        );
        assert!(
            a.cause.contains("BacklogPerTask 50.0, 50.0, 50.0 > 10"),
            "{}",
            a.cause
        );
    }

    #[test]
    fn scales_in_after_exactly_fifteen_periods_below_not_fourteen() {
        let mut s = Sim::cpu(1, 10, 4);
        let a = activity(s.hold(30.0, 15));
        assert_eq!((a.from, a.to, a.kind), (4, 2, Kind::ScaleIn));
        let values = vec!["30.0"; 15].join(", ");
        assert_eq!(
            a.cause,
            format!(
                "monitor alarm TargetTracking-cpu-AlarmLow in state ALARM: CPUUtilization \
                 {values} < 63 for 15 periods; changing the desired capacity from 4 to 2"
            )
        );
    }

    #[test]
    fn the_scale_in_threshold_is_strictly_below_ninety_percent_of_the_target() {
        let mut s = Sim::cpu(1, 20, 10);
        for _ in 0..30 {
            assert_eq!(s.cpu_step(Some(63.0)), Decision::default(), "63 = 0.9 × 70");
            assert_eq!(s.tt.progress()[0].below, 0);
        }
        let (n, d) = s.until(62.9, 30);
        assert_eq!(n, 15);
        let a = activity(d);
        assert_eq!((a.kind, a.to), (Kind::ScaleIn, 9), "ceil(10 × 62.9 / 70)");
        let p = Params::new(1, 20, vec![cpu(100.0)]);
        let mut s = Sim::new(p, 10);
        for v in [90.0, 95.0, 100.0] {
            for _ in 0..20 {
                assert_eq!(s.cpu_step(Some(v)), Decision::default(), "{v} of 100");
                let p = s.tt.progress()[0];
                assert_eq!((p.above, p.below), (0, 0), "no streak at {v}");
            }
        }
        s.cpu_step(Some(89.99));
        assert_eq!(s.tt.progress()[0].below, 1);
    }

    #[test]
    fn scale_in_is_gradual_and_stops_at_the_minimum() {
        let mut p = Params::new(1, 20, vec![cpu(70.0)]);
        p.cooldown_in = 0;
        let mut s = Sim::new(p, 10);
        let a = activity(s.hold(1.0, 15));
        assert_eq!(a.to, 5, "at most half");
        assert!(
            a.cause
                .ends_with("from 10 to 5 (a scale-in removes at most 5 of 10 tasks)"),
            "{}",
            a.cause
        );
        assert_eq!(activity(s.hold(1.0, 15)).to, 3);
        assert_eq!(activity(s.hold(1.0, 15)).to, 2);
        assert_eq!(activity(s.hold(1.0, 15)).to, 1);
        for _ in 0..40 {
            assert_eq!(s.cpu_step(Some(1.0)), Decision::default(), "at the minimum");
        }
        let mut s = Sim::cpu(3, 10, 4);
        let a = activity(s.hold(1.0, 15));
        assert_eq!(a.to, 3);
        assert!(
            a.cause.ends_with("from 4 to 3, the minimum capacity"),
            "{}",
            a.cause
        );
        let mut s = Sim::cpu(0, 10, 1);
        assert_eq!(
            activity(s.hold(0.0, 15)).to,
            0,
            "one task may go when min is 0"
        );
    }

    #[test]
    fn scale_in_goes_to_the_proportional_capacity_when_it_is_within_half() {
        let mut s = Sim::cpu(1, 20, 10);
        // ceil(10 × 50 / 70) = 8.
        let a = activity(s.hold(50.0, 15));
        assert_eq!(a.to, 8);
        assert!(a.cause.ends_with("from 10 to 8"), "{}", a.cause);
    }

    #[test]
    fn no_scale_out_within_the_scale_out_cooldown() {
        let mut s = Sim::cpu(1, 10, 1);
        let first = activity(s.hold(100.0, 3));
        assert_eq!(first.at, 3 * P);
        // Streak complete again at 6P, but the cooldown (60 s) runs to 9P.
        let (n, d) = s.until(100.0, 10);
        let a = activity(d);
        assert_eq!(n, 6);
        assert_eq!(a.at, first.at + 60_000);
        assert!(
            a.cause.contains("100.0, 100.0, 100.0 > 70 for 3 periods"),
            "{}",
            a.cause
        );
    }

    #[test]
    fn the_streaks_start_afresh_after_an_activity() {
        let mut p = Params::new(1, 10, vec![cpu(70.0)]);
        p.cooldown_out = 0;
        let mut s = Sim::new(p, 1);
        activity(s.hold(100.0, 3));
        let (n, _) = s.until(100.0, 10);
        assert_eq!(n, 3, "three new periods, not one");
    }

    #[test]
    fn no_scale_in_within_the_scale_in_cooldown_after_any_activity() {
        let mut s = Sim::cpu(1, 10, 2);
        let out = activity(s.hold(100.0, 3));
        let (_, d) = s.until(10.0, 100);
        let a = activity(d);
        assert_eq!(a.kind, Kind::ScaleIn);
        assert_eq!(a.at, out.at + 300_000, "cooldown_in after a scale-out");
        let (_, d) = s.until(10.0, 100);
        assert_eq!(
            activity(d).at,
            a.at + 300_000,
            "cooldown_in after a scale-in"
        );
    }

    #[test]
    fn scale_out_is_not_held_back_by_a_recent_scale_in() {
        let mut s = Sim::cpu(1, 10, 4);
        let inn = activity(s.hold(10.0, 15));
        let out = activity(s.hold(100.0, 3));
        assert_eq!(out.at, inn.at + 3 * P);
    }

    #[test]
    fn the_largest_scale_out_proposal_wins() {
        let p = Params::new(
            1,
            20,
            vec![cpu(70.0), policy(Metric::RequestsPerTarget, 100.0)],
        );
        let mut s = Sim::new(p, 2);
        let r = Readings {
            cpu: Some(80.0),
            requests_per_target: Some(300.0),
            ..Readings::default()
        };
        s.step(r);
        s.step(r);
        let a = activity(s.step(r));
        assert_eq!((a.to, a.policy), (6, Some(Metric::RequestsPerTarget)));
        assert!(
            a.cause.starts_with(
                "monitor alarm TargetTracking-requests-AlarmHigh in state ALARM: \
                 RequestCountPerTarget 300.0, 300.0, 300.0 > 100"
            ),
            "{}",
            a.cause
        );
    }

    #[test]
    fn any_policy_above_target_scales_out_while_another_is_low() {
        let p = Params::new(1, 20, vec![cpu(70.0), policy(Metric::Memory, 70.0)]);
        let mut s = Sim::new(p, 2);
        let r = Readings {
            cpu: Some(10.0),
            memory: Some(90.0),
            ..Readings::default()
        };
        s.step(r);
        s.step(r);
        let a = activity(s.step(r));
        assert_eq!((a.to, a.policy), (3, Some(Metric::Memory)));
    }

    #[test]
    fn scale_in_needs_every_policy_below() {
        let p = Params::new(1, 20, vec![cpu(70.0), policy(Metric::Memory, 70.0)]);
        let mut s = Sim::new(p, 4);
        let r = Readings {
            cpu: Some(10.0),
            memory: Some(65.0),
            ..Readings::default()
        };
        for _ in 0..40 {
            assert_eq!(s.step(r), Decision::default(), "memory is not low");
        }
    }

    #[test]
    fn one_policy_without_data_blocks_scale_in() {
        let p = Params::new(1, 20, vec![cpu(70.0), policy(Metric::Memory, 70.0)]);
        let mut s = Sim::new(p, 4);
        let both = Readings {
            cpu: Some(10.0),
            memory: Some(10.0),
            ..Readings::default()
        };
        let cpu_only = Readings {
            memory: None,
            ..both
        };
        for _ in 0..14 {
            assert_eq!(s.step(both), Decision::default());
        }
        assert_eq!(s.step(cpu_only), Decision::default(), "memory had no data");
        for _ in 0..14 {
            assert_eq!(
                s.step(both),
                Decision::default(),
                "memory's streak restarted"
            );
        }
        assert_eq!(activity(s.step(both)).kind, Kind::ScaleIn);
        for _ in 0..40 {
            assert_eq!(s.step(cpu_only), Decision::default());
        }
    }

    #[test]
    fn a_reading_no_policy_tracks_is_ignored() {
        let mut s = Sim::cpu(1, 10, 4);
        let r = Readings {
            cpu: Some(10.0),
            memory: None,
            requests_per_target: Some(1e9),
            backlog_per_task: None,
        };
        for _ in 0..14 {
            assert_eq!(s.step(r), Decision::default());
        }
        assert_eq!(activity(s.step(r)).kind, Kind::ScaleIn);
    }

    #[test]
    fn the_most_conservative_scale_in_proposal_wins() {
        let p = Params::new(1, 20, vec![cpu(70.0), policy(Metric::Memory, 70.0)]);
        let mut s = Sim::new(p, 8);
        // cpu: ceil(8 × 10 / 70) = 2 (4 after the half rule); memory: ceil(8 × 50 / 70) = 6.
        let r = Readings {
            cpu: Some(10.0),
            memory: Some(50.0),
            ..Readings::default()
        };
        for _ in 0..14 {
            s.step(r);
        }
        let a = activity(s.step(r));
        assert_eq!((a.to, a.policy), (6, Some(Metric::Memory)));
        assert!(
            a.cause.starts_with("monitor alarm TargetTracking-memory-AlarmLow in state ALARM: MemoryUtilization 50.0"),
            "{}",
            a.cause
        );
    }

    #[test]
    fn a_deployment_suspends_scale_in_once_noted_then_it_resumes() {
        let mut s = Sim::cpu(1, 10, 4);
        s.deploying = true;
        let d = s.hold(10.0, 15);
        assert_eq!(d.activity, None);
        let note = d
            .suppressed
            .as_ref()
            .map(|n| (n.from, n.to, n.at, n.cause.as_str()));
        assert_eq!(
            note,
            Some((
                4,
                2,
                15 * P,
                "scale-in from 4 to 2 suspended while a deployment is in progress \
                 (monitor alarm TargetTracking-cpu-AlarmLow in state ALARM)"
            ))
        );
        for _ in 0..10 {
            assert_eq!(s.cpu_step(Some(10.0)), Decision::default(), "noted once");
        }
        s.deploying = false;
        let a = activity(s.cpu_step(Some(10.0)));
        assert_eq!((a.from, a.to), (4, 2));
        // A later suspension (after the scale-in cooldown) is noted again.
        s.deploying = true;
        let (n, d) = s.until(10.0, 100);
        assert_eq!(n, 30, "the 300 s scale-in cooldown first");
        assert_eq!(d.suppressed.map(|n| (n.from, n.to)), Some((2, 1)));
    }

    #[test]
    fn a_deployment_does_not_suspend_scale_out() {
        let mut s = Sim::cpu(1, 10, 2);
        s.deploying = true;
        let a = activity(s.hold(100.0, 3));
        assert_eq!((a.kind, a.to), (Kind::ScaleOut, 3));
    }

    #[test]
    fn a_desired_count_out_of_bounds_goes_to_the_nearest_bound() {
        let mut s = Sim::cpu(1, 10, 0);
        let a = activity(s.cpu_step(None));
        assert_eq!(
            (a.from, a.to, a.kind, a.policy),
            (0, 1, Kind::Minimum, None)
        );
        assert_eq!(
            a.cause,
            "the desired capacity 0 is below the minimum capacity 1; changing the desired \
             capacity from 0 to 1"
        );
        let mut s = Sim::cpu(1, 10, 12);
        let a = activity(s.cpu_step(Some(100.0)));
        assert_eq!((a.to, a.kind), (10, Kind::Maximum));
        assert_eq!(
            a.cause,
            "the desired capacity 12 is above the maximum capacity 10; changing the desired \
             capacity from 12 to 10"
        );
        // min above max: min wins.
        let mut s = Sim::cpu(3, 2, 5);
        assert_eq!(activity(s.cpu_step(None)).to, 3);
    }

    #[test]
    fn the_maximum_waits_for_the_deployment_the_minimum_does_not() {
        let mut s = Sim::cpu(1, 10, 12);
        s.deploying = true;
        let d = s.cpu_step(None);
        assert_eq!(d.activity, None);
        assert_eq!(d.suppressed.map(|n| (n.from, n.to)), Some((12, 10)));
        assert_eq!(s.cpu_step(None), Decision::default());
        s.deploying = false;
        assert_eq!(activity(s.cpu_step(None)).to, 10);
        let mut s = Sim::cpu(2, 10, 1);
        s.deploying = true;
        assert_eq!(activity(s.cpu_step(None)).to, 2);
    }

    #[test]
    fn a_bound_activity_ends_the_streaks_and_starts_the_scale_in_cooldown() {
        let mut s = Sim::cpu(1, 10, 4);
        for _ in 0..14 {
            s.cpu_step(Some(10.0));
        }
        s.desired = 12; // a manual scale beyond the maximum
        assert_eq!(activity(s.cpu_step(Some(10.0))).kind, Kind::Maximum);
        let (n, d) = s.until(10.0, 100);
        assert_eq!(activity(d).kind, Kind::ScaleIn);
        assert_eq!(n, 30, "the 300 s scale-in cooldown, not the old streak");
    }

    #[test]
    fn update_keeps_the_cooldowns_and_restarts_changed_streaks() {
        let params = Params::new(1, 10, vec![cpu(70.0)]);
        let mut s = Sim::new(params.clone(), 1);
        activity(s.hold(100.0, 3));
        s.cpu_step(Some(100.0));
        s.cpu_step(Some(100.0));
        s.tt.update(Params {
            max: 20,
            ..params.clone()
        });
        assert_eq!(s.tt.progress()[0].above, 2, "same policies: streaks kept");
        s.tt.update(Params::new(1, 20, vec![cpu(60.0)]));
        assert_eq!(s.tt.progress()[0].above, 0, "a new target: streaks restart");
        let (n, d) = s.until(100.0, 10);
        assert_eq!(n, 4, "the cooldown from the first scale-out still holds");
        assert_eq!(activity(d).from, 2);
    }

    #[test]
    fn progress_counts_the_streaks_and_duplicates_are_dropped() {
        let p = Params::new(
            1,
            10,
            vec![cpu(70.0), cpu(50.0), policy(Metric::Memory, 80.0)],
        );
        let mut s = Sim::new(p, 2);
        assert_eq!(s.tt.params().policies.len(), 2);
        s.step(Readings {
            cpu: Some(90.0),
            memory: Some(10.0),
            ..Readings::default()
        });
        s.step(Readings {
            cpu: Some(90.0),
            memory: Some(10.0),
            ..Readings::default()
        });
        let p = s.tt.progress();
        assert_eq!((p[0].metric, p[0].above, p[0].below), (Metric::Cpu, 2, 0));
        assert_eq!(
            (p[1].metric, p[1].above, p[1].below),
            (Metric::Memory, 0, 2)
        );
    }

    #[test]
    fn a_policy_with_an_invalid_target_never_acts() {
        let mut s = Sim::new(Params::new(1, 10, vec![cpu(0.0)]), 4);
        for _ in 0..40 {
            assert_eq!(s.cpu_step(Some(100.0)), Decision::default());
        }
    }

    #[test]
    fn step_in_is_half_rounded_down_at_least_one() {
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 10, 11].map(step_in),
            [0, 1, 1, 1, 2, 2, 5, 5]
        );
    }

    #[test]
    fn activities_serialize_for_the_control_answer() {
        let mut s = Sim::cpu(1, 10, 0);
        let a = activity(s.cpu_step(None));
        let v = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(v["kind"], "minimum");
        assert_eq!(v["to"], 1);
        assert_eq!(v["policy"], serde_json::Value::Null);
        let mut s = Sim::cpu(1, 10, 1);
        let a = activity(s.hold(100.0, 3));
        let v = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(
            (v["kind"].as_str(), v["policy"].as_str()),
            (Some("scale-out"), Some("cpu"))
        );
    }
}

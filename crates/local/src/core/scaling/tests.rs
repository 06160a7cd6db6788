//! Target tracking over a fake clock: one `Sim::step` is one metrics period.

use super::*;
use Metric::*;

/// The local default metrics period.
const P: Millis = 10_000;
const NOTHING: Decision = Decision {
    activity: None,
    suppressed: None,
};

fn rd(values: &[(Metric, f64)]) -> Readings {
    let mut r = Readings::default();
    for (m, v) in values {
        *match m {
            Cpu => &mut r.cpu,
            Memory => &mut r.memory,
            RequestsPerTarget => &mut r.requests_per_target,
            BacklogPerTask => &mut r.backlog_per_task,
        } = Some(*v);
    }
    r
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
        let tt = TargetTracking::new(params);
        let (now, deploying) = (0, false);
        Sim {
            tt,
            now,
            desired,
            deploying,
        }
    }

    fn with(min: u32, max: u32, desired: u32, policies: &[(Metric, f64)]) -> Self {
        let policies = policies
            .iter()
            .map(|&(metric, target)| Policy { metric, target });
        Sim::new(Params::new(min, max, policies.collect()), desired)
    }

    fn cpu(min: u32, max: u32, desired: u32) -> Self {
        Sim::with(min, max, desired, &[(Cpu, 70.0)])
    }

    fn step(&mut self, readings: Readings) -> Decision {
        self.now += P;
        let (now, desired, deploying) = (self.now, self.desired, self.deploying);
        let d = self.tt.evaluate(&Period {
            now,
            readings,
            desired,
            deploying,
        });
        assert!(d.activity.is_none() || d.suppressed.is_none(), "{d:?}");
        if let Some(a) = &d.activity {
            assert_eq!((a.from, a.at), (self.desired, self.now));
            self.desired = a.to;
        }
        d
    }

    fn cpu_step(&mut self, cpu: Option<f64>) -> Decision {
        self.step(Readings {
            cpu,
            ..Readings::default()
        })
    }

    /// `n` periods of `r` that decide nothing.
    fn quiet(&mut self, r: Readings, n: usize) {
        for i in 1..=n {
            assert_eq!(self.step(r), NOTHING, "period {i} of {n}: {r:?}");
        }
    }

    /// `n - 1` periods of one CPU value that decide nothing, then the decision.
    fn hold(&mut self, v: f64, n: usize) -> Decision {
        self.quiet(rd(&[(Cpu, v)]), n - 1);
        self.cpu_step(Some(v))
    }

    /// Periods of one CPU value until something is decided (at most `limit`).
    fn until(&mut self, v: f64, limit: usize) -> (usize, Decision) {
        for i in 1..=limit {
            let d = self.cpu_step(Some(v));
            if d != NOTHING {
                return (i, d);
            }
        }
        panic!("nothing decided in {limit} periods at {v}");
    }
}

fn activity(d: Decision) -> Activity {
    d.activity
        .unwrap_or_else(|| panic!("no activity: {:?}", d.suppressed))
}

#[test]
fn scales_out_after_exactly_three_periods_above_target_not_two() {
    let mut s = Sim::cpu(1, 10, 1);
    assert_eq!(s.cpu_step(Some(93.1)), NOTHING);
    assert_eq!(s.cpu_step(Some(95.0)), NOTHING, "2 periods");
    let a = activity(s.cpu_step(Some(91.2)));
    assert_eq!(
        (a.from, a.to, a.kind, a.policy),
        (1, 2, Kind::ScaleOut, Some(Cpu))
    );
    assert_eq!(
        a.cause,
        "monitor alarm TargetTracking-cpu-AlarmHigh in state ALARM: CPUUtilization \
         93.1, 95.0, 91.2 > 70 for 3 periods; changing the desired capacity from 1 to 2"
    );
}

#[test]
fn a_value_at_the_target_or_no_data_breaks_the_streak() {
    for gap in [Some(70.0), None, Some(f64::NAN), Some(f64::INFINITY)] {
        let mut s = Sim::cpu(1, 10, 1);
        for v in [Some(80.0), Some(80.0), gap, Some(80.0), Some(80.0)] {
            assert_eq!(s.cpu_step(v), NOTHING, "{gap:?}");
        }
        assert!(s.cpu_step(Some(80.0)).activity.is_some());
    }
}

#[test]
fn scale_out_is_proportional_and_at_least_one_task() {
    for (desired, v, want) in [(4, 100.0, 6), (2, 71.0, 3), (10, 70.01, 11), (3, 280.0, 12)] {
        let mut s = Sim::cpu(1, 20, desired);
        assert_eq!(activity(s.hold(v, 3)).to, want, "{desired} tasks at {v}");
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
    s.quiet(rd(&[(Cpu, 100.0)]), 20);
}

#[test]
fn a_worker_scales_out_from_zero() {
    let mut s = Sim::with(0, 5, 0, &[(BacklogPerTask, 10.0)]);
    s.quiet(rd(&[(BacklogPerTask, 50.0)]), 2);
    let a = activity(s.step(rd(&[(BacklogPerTask, 50.0)])));
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
        assert_eq!(s.cpu_step(Some(63.0)), NOTHING, "63 = 0.9 × 70");
        assert_eq!(s.tt.progress()[0].below, 0);
    }
    let (n, d) = s.until(62.9, 30);
    assert_eq!(n, 15);
    let a = activity(d);
    assert_eq!((a.kind, a.to), (Kind::ScaleIn, 9), "ceil(10 × 62.9 / 70)");
    let mut s = Sim::with(1, 20, 10, &[(Cpu, 100.0)]);
    for v in [90.0, 95.0, 100.0] {
        for _ in 0..20 {
            assert_eq!(s.cpu_step(Some(v)), NOTHING, "{v} of 100");
            let p = s.tt.progress()[0];
            assert_eq!((p.above, p.below), (0, 0), "no streak at {v}");
        }
    }
    s.cpu_step(Some(89.99));
    assert_eq!(s.tt.progress()[0].below, 1);
}

#[test]
fn scale_in_is_gradual_and_stops_at_the_minimum() {
    let mut s = Sim::cpu(1, 20, 10);
    s.tt.params.cooldown_in = 0;
    let a = activity(s.hold(1.0, 15));
    assert_eq!(a.to, 5, "at most half");
    let limited = "from 10 to 5 (a scale-in removes at most 5 of 10 tasks)";
    assert!(a.cause.ends_with(limited), "{}", a.cause);
    let steps = [0; 3].map(|_| activity(s.hold(1.0, 15)).to);
    assert_eq!(steps, [3, 2, 1]);
    s.quiet(rd(&[(Cpu, 1.0)]), 40);
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
    // Within half: the proportional capacity, ceil(10 × 50 / 70) = 8.
    let mut s = Sim::cpu(1, 20, 10);
    assert!(activity(s.hold(50.0, 15)).cause.ends_with("from 10 to 8"));
}

#[test]
fn no_scale_out_within_the_scale_out_cooldown() {
    let mut s = Sim::cpu(1, 10, 1);
    let first = activity(s.hold(100.0, 3));
    assert_eq!(first.at, 3 * P);
    // The streak is complete again at 6P, but the cooldown (60 s) runs to 9P.
    let (n, d) = s.until(100.0, 10);
    let a = activity(d);
    assert_eq!((n, a.at), (6, first.at + 60_000));
    assert!(
        a.cause.contains(" 100.0, 100.0, 100.0 > 70 for 3 periods"),
        "{}",
        a.cause
    );
}

#[test]
fn the_streaks_start_afresh_after_an_activity() {
    let mut s = Sim::cpu(1, 10, 1);
    s.tt.params.cooldown_out = 0;
    activity(s.hold(100.0, 3));
    assert_eq!(s.until(100.0, 10).0, 3, "three new periods, not one");
}

#[test]
fn no_scale_in_within_the_scale_in_cooldown_after_any_activity() {
    let mut s = Sim::cpu(1, 10, 2);
    let out = activity(s.hold(100.0, 3));
    let a = activity(s.until(10.0, 100).1);
    assert_eq!(a.kind, Kind::ScaleIn);
    assert_eq!(a.at, out.at + 300_000, "cooldown_in after a scale-out");
    let b = activity(s.until(10.0, 100).1);
    assert_eq!(b.at, a.at + 300_000, "cooldown_in after a scale-in");
    // Scale-out is fast: a recent scale-in does not hold it back.
    let c = activity(s.hold(100.0, 3));
    assert_eq!((c.kind, c.at), (Kind::ScaleOut, b.at + 3 * P));
}

#[test]
fn the_largest_scale_out_proposal_wins() {
    let mut s = Sim::with(1, 20, 2, &[(Cpu, 70.0), (RequestsPerTarget, 100.0)]);
    let r = rd(&[(Cpu, 80.0), (RequestsPerTarget, 300.0)]);
    s.quiet(r, 2);
    let a = activity(s.step(r));
    assert_eq!((a.to, a.policy), (6, Some(RequestsPerTarget)));
    let cause = "monitor alarm TargetTracking-requests-AlarmHigh in state ALARM: \
                 RequestCountPerTarget 300.0, 300.0, 300.0 > 100";
    assert!(a.cause.starts_with(cause), "{}", a.cause);
}

#[test]
fn any_policy_above_target_scales_out_while_another_is_low() {
    let mut s = Sim::with(1, 20, 2, &[(Cpu, 70.0), (Memory, 70.0)]);
    let r = rd(&[(Cpu, 10.0), (Memory, 90.0)]);
    s.quiet(r, 2);
    let a = activity(s.step(r));
    assert_eq!((a.to, a.policy), (3, Some(Memory)));
}

#[test]
fn scale_in_needs_every_policy_below() {
    let mut s = Sim::with(1, 20, 4, &[(Cpu, 70.0), (Memory, 70.0)]);
    s.quiet(rd(&[(Cpu, 10.0), (Memory, 65.0)]), 40);
}

#[test]
fn one_policy_without_data_blocks_scale_in() {
    let mut s = Sim::with(1, 20, 4, &[(Cpu, 70.0), (Memory, 70.0)]);
    let both = rd(&[(Cpu, 10.0), (Memory, 10.0)]);
    let cpu_only = rd(&[(Cpu, 10.0)]);
    s.quiet(both, 14);
    s.quiet(cpu_only, 1);
    s.quiet(both, 14);
    assert_eq!(activity(s.step(both)).kind, Kind::ScaleIn);
    s.quiet(cpu_only, 40);
}

#[test]
fn a_reading_no_policy_tracks_is_ignored() {
    let mut s = Sim::cpu(1, 10, 4);
    let r = rd(&[(Cpu, 10.0), (RequestsPerTarget, 1e9)]);
    s.quiet(r, 14);
    assert_eq!(activity(s.step(r)).kind, Kind::ScaleIn);
}

#[test]
fn the_most_conservative_scale_in_proposal_wins() {
    let mut s = Sim::with(1, 20, 8, &[(Cpu, 70.0), (Memory, 70.0)]);
    // cpu: ceil(8 × 10 / 70) = 2 (4 by the half rule); memory: ceil(8 × 50 / 70) = 6.
    let r = rd(&[(Cpu, 10.0), (Memory, 50.0)]);
    s.quiet(r, 14);
    let a = activity(s.step(r));
    assert_eq!((a.to, a.policy), (6, Some(Memory)));
    let cause = "monitor alarm TargetTracking-memory-AlarmLow in state ALARM: \
                 MemoryUtilization 50.0";
    assert!(a.cause.starts_with(cause), "{}", a.cause);
}

#[test]
fn a_deployment_suspends_scale_in_once_noted_then_it_resumes() {
    let mut s = Sim::cpu(1, 10, 4);
    s.deploying = true;
    let d = s.hold(10.0, 15);
    assert_eq!(d.activity, None);
    let note = d.suppressed.map(|n| (n.from, n.to, n.at, n.cause));
    let cause = "scale-in from 4 to 2 suspended while a deployment is in progress \
                 (monitor alarm TargetTracking-cpu-AlarmLow in state ALARM)";
    assert_eq!(note, Some((4, 2, 15 * P, cause.to_string())));
    s.quiet(rd(&[(Cpu, 10.0)]), 10);
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
    let mut s = Sim::cpu(3, 2, 5);
    assert_eq!(activity(s.cpu_step(None)).to, 3, "min above max: min wins");
}

#[test]
fn the_maximum_waits_for_the_deployment_the_minimum_does_not() {
    let mut s = Sim::cpu(1, 10, 12);
    s.deploying = true;
    let d = s.cpu_step(None);
    assert_eq!(d.activity, None);
    assert_eq!(d.suppressed.map(|n| (n.from, n.to)), Some((12, 10)));
    s.quiet(Readings::default(), 3);
    s.deploying = false;
    assert_eq!(activity(s.cpu_step(None)).to, 10);
    let mut s = Sim::cpu(2, 10, 1);
    s.deploying = true;
    assert_eq!(activity(s.cpu_step(None)).to, 2);
}

#[test]
fn a_bound_activity_ends_the_streaks_and_starts_the_scale_in_cooldown() {
    let mut s = Sim::cpu(1, 10, 4);
    s.quiet(rd(&[(Cpu, 10.0)]), 14);
    s.desired = 12; // a manual scale beyond the maximum
    assert_eq!(activity(s.cpu_step(Some(10.0))).kind, Kind::Maximum);
    let (n, d) = s.until(10.0, 100);
    assert_eq!(activity(d).kind, Kind::ScaleIn);
    assert_eq!(n, 30, "the 300 s scale-in cooldown, not the old streak");
}

#[test]
fn update_keeps_the_cooldowns_and_restarts_changed_streaks() {
    let params = Params::new(
        1,
        10,
        vec![Policy {
            metric: Cpu,
            target: 70.0,
        }],
    );
    let mut s = Sim::new(params.clone(), 1);
    activity(s.hold(100.0, 3));
    s.quiet(rd(&[(Cpu, 100.0)]), 2);
    s.tt.update(Params {
        max: 20,
        ..params.clone()
    });
    assert_eq!(s.tt.progress()[0].above, 2, "same policies: streaks kept");
    s.tt.update(Params::new(
        1,
        20,
        vec![Policy {
            metric: Cpu,
            target: 60.0,
        }],
    ));
    assert_eq!(s.tt.progress()[0].above, 0, "a new target: streaks restart");
    let (n, d) = s.until(100.0, 10);
    assert_eq!(n, 4, "the cooldown from the first scale-out still holds");
    assert_eq!(activity(d).from, 2);
}

#[test]
fn progress_counts_the_streaks_and_duplicates_are_dropped() {
    let mut s = Sim::with(1, 10, 2, &[(Cpu, 70.0), (Cpu, 50.0), (Memory, 80.0)]);
    assert_eq!(s.tt.params().policies.len(), 2);
    s.quiet(rd(&[(Cpu, 90.0), (Memory, 10.0)]), 2);
    let p = s.tt.progress();
    assert_eq!(
        (p[0].metric, p[0].target, p[0].above, p[0].below),
        (Cpu, 70.0, 2, 0)
    );
    assert_eq!((p[1].metric, p[1].above, p[1].below), (Memory, 0, 2));
}

#[test]
fn a_policy_with_an_invalid_target_never_acts() {
    for target in [0.0, -5.0, f64::NAN] {
        let mut s = Sim::with(1, 10, 4, &[(Cpu, target)]);
        s.quiet(rd(&[(Cpu, 100.0)]), 20);
        s.quiet(rd(&[(Cpu, 0.0)]), 20);
    }
}

#[test]
fn step_in_is_half_rounded_down_at_least_one() {
    let steps = [0, 1, 2, 3, 4, 5, 10, 11].map(step_in);
    assert_eq!(steps, [0, 1, 1, 1, 2, 2, 5, 5]);
}

#[test]
fn activities_serialize_for_the_control_answer() {
    let mut s = Sim::cpu(1, 10, 0);
    let v = serde_json::to_value(activity(s.cpu_step(None))).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["to"].as_u64()),
        (Some("minimum"), Some(1))
    );
    assert!(v["policy"].is_null());
    let mut s = Sim::cpu(1, 10, 1);
    let v = serde_json::to_value(activity(s.hold(100.0, 3))).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["policy"].as_str()),
        (Some("scale-out"), Some("cpu"))
    );
    assert_eq!(
        (Cpu.policy_type(), Memory.label()),
        ("ECSServiceAverageCPUUtilization", "memory")
    );
}

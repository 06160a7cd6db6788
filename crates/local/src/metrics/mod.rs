//! The built-in metrics of the local cloud, as AWS names them, computed once per
//! metrics period (`local.metrics.period`) of each unit and kept as CloudWatch
//! datapoints in the environment's AWS endpoint (journaled, so on disk; trimmed
//! to `local.metrics.retention`). They sit beside a service's own metrics
//! (PutMetricData), and GetMetricData reads both, locally as on AWS.
//!
//! - `AWS/ECS` {ClusterName, ServiceName}: CPUUtilization and MemoryUtilization,
//!   percent of the task size (`cpu` units, `memory` MiB) as ECS reports them; one
//!   datapoint per period with the tasks' statistics (Average across tasks,
//!   Maximum the busiest).
//! - `ECS/ContainerInsights` {ClusterName, ServiceName}: RunningTaskCount,
//!   DesiredTaskCount; {ClusterName, ServiceName, TaskId}: CpuUtilized (CPU
//!   units) and MemoryUtilized (MiB) per task. (Locally no PutMetricData may
//!   write into this namespace, as into `AWS/...`.)
//! - `AWS/ApplicationELB` {LoadBalancer, TargetGroup}: RequestCount,
//!   RequestCountPerTarget, HTTPCode_Target_2XX/3XX/4XX/5XX_Count,
//!   HTTPCode_ELB_4XX/5XX_Count, TargetResponseTime (with its distribution, so
//!   p50/p99 can be read), HealthyHostCount, UnHealthyHostCount.
//! - `AWS/SQS` {QueueName}: ApproximateNumberOfMessagesVisible, ...NotVisible,
//!   ...Delayed, ApproximateAgeOfOldestMessage.
//!
//! CPU is the time the task's processes used in the period ([`procs`]) over the
//! period and the task's CPU units (1024 = one core). Unlike Fargate, the local
//! cloud does not cap a task at its size, so a busy task can exceed 100 %.
//! A task's first period has no CPU value (there is nothing to compare with).

pub mod procs;

use pantstack_endpoint::QueueMetrics;
use pantstack_endpoint::cloudwatch::{Key, Point};
use pantstack_lb::stats::Snapshot;
use std::collections::HashMap;

pub use procs::Usage;

/// The namespace of the ECS service metrics.
pub const ECS: &str = "AWS/ECS";
/// The namespace of the Container Insights metrics (see the module docs).
pub const INSIGHTS: &str = "ECS/ContainerInsights";
pub const ELB: &str = "AWS/ApplicationELB";
pub const SQS: &str = "AWS/SQS";

/// One running task of a unit, with what it used (`None`: not seen in `/proc`).
#[derive(Clone, Debug)]
pub struct TaskInput {
    pub id: u64,
    pub usage: Option<Usage>,
}

/// A unit at the end of one of its periods.
#[derive(Clone, Debug)]
pub struct UnitInput {
    pub cluster: String,
    pub unit: String,
    pub cpu_units: u32,
    pub memory_mib: u32,
    pub desired: u32,
    pub tasks: Vec<TaskInput>,
    /// Its load balancer's counters now, and its healthy and unhealthy targets.
    pub lb: Option<(Snapshot, u32, u32)>,
}

/// What a unit remembers from its last period.
#[derive(Clone, Debug, Default)]
pub struct UnitMemory {
    /// Epoch ms of the last period's end.
    pub at: Option<u64>,
    /// Each task's CPU ticks then.
    pub ticks: HashMap<u64, u64>,
    pub lb: Option<Snapshot>,
}

/// One period's values of a unit, for target tracking, alarms and display.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values {
    /// Average CPUUtilization over the tasks with a value, percent.
    pub cpu: Option<f64>,
    /// Average MemoryUtilization, percent.
    pub memory: Option<f64>,
    pub running: u32,
    pub desired: u32,
    /// Requests in the period (a load balancer's units only).
    pub requests: Option<f64>,
    /// Requests per healthy target, normalised to a minute (what
    /// ALBRequestCountPerTarget targets are written in).
    pub requests_per_target_per_minute: Option<f64>,
    pub target_5xx: Option<f64>,
    pub elb_5xx: Option<f64>,
    pub healthy: Option<f64>,
    pub unhealthy: Option<f64>,
    /// How long the period really was, seconds (periods end on the supervisor's
    /// ticks, so a little later than nominal).
    pub elapsed_s: Option<f64>,
}

fn point(t: u64, unit: &str, v: f64) -> Point {
    Point {
        t,
        unit: Some(unit.to_string()),
        sum: v,
        count: 1.0,
        min: v,
        max: v,
        values: Vec::new(),
    }
}

/// One datapoint with the statistics of `values` (none: no datapoint).
fn set(t: u64, unit: &str, values: &[f64]) -> Option<Point> {
    if values.is_empty() {
        return None;
    }
    Some(Point {
        t,
        unit: Some(unit.to_string()),
        sum: values.iter().sum(),
        count: values.len() as f64,
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        values: Vec::new(),
    })
}

fn key(ns: &str, name: &str, dims: &[(&str, &str)]) -> Key {
    let mut d: Vec<(String, String)> = dims
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    d.sort();
    Key {
        namespace: ns.to_string(),
        name: name.to_string(),
        dimensions: d,
    }
}

/// The `LoadBalancer` and `TargetGroup` dimension values of a unit's load
/// balancer (as its access log names them).
pub fn lb_dimensions(unit: &str) -> (String, String) {
    (
        format!("app/{unit}/local"),
        format!("targetgroup/{unit}/local"),
    )
}

/// The datapoints and values of a unit's period ending at `now` (epoch ms),
/// `ticks_per_s` being `/proc`'s clock. Updates `mem` for the next period.
pub fn unit_period(
    input: &UnitInput,
    mem: &mut UnitMemory,
    now: u64,
    ticks_per_s: u64,
) -> (Vec<(Key, Point)>, Values) {
    let mut data = Vec::new();
    let elapsed_s = mem
        .at
        .map(|a| now.saturating_sub(a) as f64 / 1000.0)
        .filter(|s| *s > 0.0);
    let svc = [
        ("ClusterName", input.cluster.as_str()),
        ("ServiceName", input.unit.as_str()),
    ];
    let size_cores = f64::from(input.cpu_units.max(1)) / 1024.0;
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    let mut ticks = HashMap::new();
    for t in &input.tasks {
        let Some(u) = t.usage else { continue };
        ticks.insert(t.id, u.cpu_ticks);
        let id = t.id.to_string();
        let task_dims = [svc[0], svc[1], ("TaskId", id.as_str())];
        let mib = u.rss_bytes as f64 / (1024.0 * 1024.0);
        memory.push(mib / f64::from(input.memory_mib.max(1)) * 100.0);
        data.push((
            key(INSIGHTS, "MemoryUtilized", &task_dims),
            point(now, "Megabytes", mib),
        ));
        if let (Some(s), Some(before)) = (elapsed_s, mem.ticks.get(&t.id)) {
            let cores = u.cpu_ticks.saturating_sub(*before) as f64 / ticks_per_s as f64 / s;
            cpu.push(cores / size_cores * 100.0);
            data.push((
                key(INSIGHTS, "CpuUtilized", &task_dims),
                point(now, "None", cores * 1024.0),
            ));
        }
    }
    mem.ticks = ticks;
    mem.at = Some(now);
    let running = input.tasks.len() as u32;
    let mut v = Values {
        cpu: (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64),
        memory: (!memory.is_empty()).then(|| memory.iter().sum::<f64>() / memory.len() as f64),
        running,
        desired: input.desired,
        elapsed_s,
        ..Values::default()
    };
    if let Some(p) = set(now, "Percent", &cpu) {
        data.push((key(ECS, "CPUUtilization", &svc), p));
    }
    if let Some(p) = set(now, "Percent", &memory) {
        data.push((key(ECS, "MemoryUtilization", &svc), p));
    }
    data.push((
        key(INSIGHTS, "RunningTaskCount", &svc),
        point(now, "Count", f64::from(running)),
    ));
    data.push((
        key(INSIGHTS, "DesiredTaskCount", &svc),
        point(now, "Count", f64::from(input.desired)),
    ));
    if let Some((snap, healthy, unhealthy)) = &input.lb {
        let (lb, tg) = lb_dimensions(&input.unit);
        let dims = [("LoadBalancer", lb.as_str()), ("TargetGroup", tg.as_str())];
        v.healthy = Some(f64::from(*healthy));
        v.unhealthy = Some(f64::from(*unhealthy));
        data.push((
            key(ELB, "HealthyHostCount", &dims),
            point(now, "Count", f64::from(*healthy)),
        ));
        data.push((
            key(ELB, "UnHealthyHostCount", &dims),
            point(now, "Count", f64::from(*unhealthy)),
        ));
        if let (Some(before), Some(s)) = (&mem.lb, elapsed_s) {
            let d = snap.since(before);
            let requests = d.requests as f64;
            let per_target = requests / f64::from((*healthy).max(1));
            v.requests = Some(requests);
            v.requests_per_target_per_minute = Some(per_target * 60.0 / s);
            v.target_5xx = Some(d.target[3] as f64);
            v.elb_5xx = Some(d.elb[1] as f64);
            let counts = [
                ("RequestCount", requests),
                ("RequestCountPerTarget", per_target),
                ("HTTPCode_Target_2XX_Count", d.target[0] as f64),
                ("HTTPCode_Target_3XX_Count", d.target[1] as f64),
                ("HTTPCode_Target_4XX_Count", d.target[2] as f64),
                ("HTTPCode_Target_5XX_Count", d.target[3] as f64),
                ("HTTPCode_ELB_4XX_Count", d.elb[0] as f64),
                ("HTTPCode_ELB_5XX_Count", d.elb[1] as f64),
            ];
            for (name, n) in counts {
                data.push((key(ELB, name, &dims), point(now, "Count", n)));
            }
            let times = d.response_times();
            if !times.is_empty() {
                let count: u64 = times.iter().map(|(_, n)| n).sum();
                let sum: f64 = times.iter().map(|(s, n)| s * *n as f64).sum();
                data.push((
                    key(ELB, "TargetResponseTime", &dims),
                    Point {
                        t: now,
                        unit: Some("Seconds".into()),
                        sum,
                        count: count as f64,
                        min: times.first().map_or(0.0, |t| t.0),
                        max: times.last().map_or(0.0, |t| t.0),
                        values: times.iter().map(|(s, n)| (*s, *n as f64)).collect(),
                    },
                ));
            }
        }
        mem.lb = Some(snap.clone());
    }
    (data, v)
}

/// The `AWS/SQS` datapoints of queues at `now`.
pub fn queue_period(queues: &[QueueMetrics], now: u64) -> Vec<(Key, Point)> {
    let mut data = Vec::new();
    for q in queues {
        let dims = [("QueueName", q.name.as_str())];
        for (name, unit, v) in [
            (
                "ApproximateNumberOfMessagesVisible",
                "Count",
                q.visible as f64,
            ),
            (
                "ApproximateNumberOfMessagesNotVisible",
                "Count",
                q.in_flight as f64,
            ),
            (
                "ApproximateNumberOfMessagesDelayed",
                "Count",
                q.delayed as f64,
            ),
            (
                "ApproximateAgeOfOldestMessage",
                "Seconds",
                q.oldest_age_s as f64,
            ),
        ] {
            data.push((key(SQS, name, &dims), point(now, unit, v)));
        }
    }
    data
}

/// The unit a built-in metric belongs to (by its `ServiceName` or
/// `TargetGroup`), if any.
pub fn unit_of(k: &Key) -> Option<&str> {
    k.dimensions.iter().find_map(|(n, v)| match n.as_str() {
        "ServiceName" => Some(v.as_str()),
        "TargetGroup" => v
            .strip_prefix("targetgroup/")
            .and_then(|r| r.strip_suffix("/local")),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(tasks: Vec<TaskInput>) -> UnitInput {
        UnitInput {
            cluster: "shop-dev".into(),
            unit: "api".into(),
            cpu_units: 512,
            memory_mib: 1024,
            desired: 2,
            tasks,
            lb: None,
        }
    }

    fn task(id: u64, ticks: u64, mib: u64) -> TaskInput {
        TaskInput {
            id,
            usage: Some(Usage {
                cpu_ticks: ticks,
                rss_bytes: mib * 1024 * 1024,
                processes: 1,
            }),
        }
    }

    fn find<'a>(data: &'a [(Key, Point)], name: &str) -> Vec<&'a Point> {
        data.iter()
            .filter(|(k, _)| k.name == name)
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn cpu_is_percent_of_the_task_size_from_the_second_period() {
        let mut mem = UnitMemory::default();
        let (data, v) = unit_period(&input(vec![task(1, 100, 256)]), &mut mem, 10_000, 100);
        // No earlier period: memory, counts, no CPU.
        assert_eq!(v.cpu, None);
        assert_eq!(v.memory, Some(25.0));
        assert!(find(&data, "CPUUtilization").is_empty());
        assert_eq!(find(&data, "RunningTaskCount")[0].sum, 1.0);
        // 10 s later: task 1 used 5 s of CPU (500 ticks at 100/s) = half a core
        // = 100 % of 512 units; task 2 is new (no CPU value yet).
        let (data, v) = unit_period(
            &input(vec![task(1, 600, 512), task(2, 50, 128)]),
            &mut mem,
            20_000,
            100,
        );
        assert_eq!(v.cpu, Some(100.0));
        let cpu = find(&data, "CPUUtilization");
        assert_eq!((cpu[0].count, cpu[0].max), (1.0, 100.0));
        assert_eq!(v.memory, Some((50.0 + 12.5) / 2.0));
        assert_eq!(find(&data, "CpuUtilized")[0].sum, 512.0);
        assert_eq!(v.running, 2);
    }

    #[test]
    fn load_balancer_counts_are_per_period() {
        let mut mem = UnitMemory::default();
        let mut snap = Snapshot::default();
        let mut i = input(vec![]);
        i.lb = Some((snap.clone(), 2, 1));
        let (data, v) = unit_period(&i, &mut mem, 10_000, 100);
        assert_eq!(v.requests, None);
        assert_eq!(find(&data, "UnHealthyHostCount")[0].sum, 1.0);
        snap.requests = 120;
        snap.target = [100, 0, 10, 5];
        snap.elb = [0, 5];
        snap.times[10] = 115;
        i.lb = Some((snap, 2, 1));
        let (data, v) = unit_period(&i, &mut mem, 40_000, 100);
        assert_eq!(v.requests, Some(120.0));
        // 60 per healthy target in 30 s = 120 a minute.
        assert_eq!(v.requests_per_target_per_minute, Some(120.0));
        assert_eq!(v.target_5xx, Some(5.0));
        assert_eq!(v.elb_5xx, Some(5.0));
        let rt = find(&data, "TargetResponseTime");
        assert_eq!(rt[0].count, 115.0);
        assert_eq!(rt[0].values.len(), 1);
        assert_eq!(find(&data, "HTTPCode_Target_4XX_Count")[0].sum, 10.0);
    }

    #[test]
    fn metrics_name_their_unit() {
        let k = key(
            ELB,
            "RequestCount",
            &[("TargetGroup", "targetgroup/api-worker/local")],
        );
        assert_eq!(unit_of(&k), Some("api-worker"));
        let k = key(
            ECS,
            "CPUUtilization",
            &[("ClusterName", "c"), ("ServiceName", "api")],
        );
        assert_eq!(unit_of(&k), Some("api"));
        assert_eq!(unit_of(&key(SQS, "x", &[("QueueName", "q")])), None);
    }
}

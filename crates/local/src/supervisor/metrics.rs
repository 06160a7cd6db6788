//! Built-in metrics as the supervisor collects them (`crate::metrics`): each
//! unit's period ends when `local.metrics.period` has passed on the supervisor's
//! clock since its last one; then one `/proc` pass runs as a background job
//! (the loop never waits for it), the periods of the units that are due are
//! computed when it has ended, and their datapoints are put into the AWS
//! endpoint's metrics (journaled by a task of their own). The queues' metrics
//! follow the shortest period of any unit.
//!
//! The same period's values then drive target tracking and alarms
//! (`super::scaling`).

use super::*;
use crate::metrics::{self, TaskInput, UnitInput, UnitMemory, Usage, Values};
use pantstack_endpoint::QueueMetrics;
use pantstack_endpoint::cloudwatch::Key;
use std::collections::HashMap;

type Scan = (HashMap<u32, Usage>, HashMap<String, Usage>);

/// How often built-in metrics older than their retention are trimmed.
const TRIM_EVERY: Millis = 60_000;

/// The collector's memory.
#[derive(Default)]
pub(super) struct MetricsRt {
    /// Per unit: what its last period saw, and when it ended (supervisor clock).
    mem: HashMap<String, UnitMemory>,
    last: HashMap<String, Millis>,
    queues_last: Option<Millis>,
    scan: Option<tokio::task::JoinHandle<Scan>>,
    trimmed_at: Millis,
    ticks_per_s: u64,
    /// The last period's values per unit, and the queues' depths.
    pub(super) latest: HashMap<String, Values>,
    pub(super) queues: HashMap<String, QueueMetrics>,
}

impl Supervisor {
    /// The monitoring of a unit's current (else latest) revision.
    pub(super) fn monitor_of(&self, name: &str) -> Option<&crate::monitor::Monitor> {
        let rt = self.units.get(name)?;
        rt.current_or_latest().map(|r| &r.unit.monitor)
    }

    fn due(&self, name: &str, now: Millis) -> bool {
        let Some(m) = self.monitor_of(name) else {
            return false;
        };
        match self.metrics.last.get(name) {
            Some(t) => now.saturating_sub(*t) >= m.period_ms,
            None => true,
        }
    }

    /// Once a tick: starts a `/proc` pass when a unit's period has ended, and
    /// when it has ended, computes, stores and acts on the periods.
    pub(super) async fn collect_metrics(&mut self) {
        let now = self.now();
        if let Some(job) = self.metrics.scan.take_if(|j| j.is_finished()) {
            let scan = job.await.unwrap_or_default();
            self.end_periods(now, scan).await;
            return;
        }
        if self.metrics.scan.is_some() || self.stopping {
            return;
        }
        let names: Vec<String> = self.units.keys().cloned().collect();
        if !names.iter().any(|n| self.due(n, now)) {
            return;
        }
        let mut groups = Vec::new();
        let mut containers = Vec::new();
        for rt in self.units.values() {
            for t in rt.tasks.iter().filter(|t| t.phase != Phase::Done) {
                match &t.task.handle {
                    Handle::Process { pgid } => groups.push(*pgid),
                    Handle::Docker { container } => containers.push(container.clone()),
                }
            }
        }
        self.metrics.scan = Some(tokio::task::spawn_blocking(move || {
            metrics::procs::sample(&groups, &containers)
        }));
    }

    async fn end_periods(&mut self, now: Millis, (groups, containers): Scan) {
        if self.metrics.ticks_per_s == 0 {
            self.metrics.ticks_per_s = metrics::procs::ticks_per_second();
        }
        let epoch = pantstack_endpoint::now_ms();
        let mut data = Vec::new();
        let names: Vec<String> = self.units.keys().cloned().collect();
        let mut ended = Vec::new();
        let mut shortest = Millis::MAX;
        for name in &names {
            if let Some(m) = self.monitor_of(name) {
                shortest = shortest.min(m.period_ms);
            }
            if !self.due(name, now) {
                continue;
            }
            let Some(input) = self.unit_input(name, &groups, &containers) else {
                continue;
            };
            let mem = self.metrics.mem.entry(name.clone()).or_default();
            let (d, values) = metrics::unit_period(&input, mem, epoch, self.metrics.ticks_per_s);
            data.extend(d);
            self.metrics.last.insert(name.clone(), now);
            self.metrics.latest.insert(name.clone(), values);
            ended.push(name.clone());
        }
        let queues_due = self
            .metrics
            .queues_last
            .is_none_or(|t| now.saturating_sub(t) >= shortest);
        if queues_due {
            let queues = self.aws.core.queue_metrics();
            data.extend(metrics::queue_period(&queues, epoch));
            self.metrics.queues = queues.into_iter().map(|q| (q.name.clone(), q)).collect();
            self.metrics.queues_last = Some(now);
        }
        if !data.is_empty() {
            let core = self.aws.core.clone();
            tokio::spawn(async move {
                if let Err(e) = core.put_builtin_metrics(data).await {
                    eprintln!("cannot keep the built-in metrics: {}", e.message);
                }
            });
        }
        if now.saturating_sub(self.metrics.trimmed_at) >= TRIM_EVERY {
            self.metrics.trimmed_at = now;
            self.trim_metrics(epoch);
        }
        for name in ended {
            self.after_period(&name, now).await;
        }
    }

    /// Drops built-in datapoints older than their unit's retention (queues: the
    /// longest of any unit).
    fn trim_metrics(&self, epoch: u64) {
        let retention: HashMap<String, u64> = self
            .units
            .keys()
            .filter_map(|n| self.monitor_of(n).map(|m| (n.clone(), m.retention_ms)))
            .collect();
        let longest = retention.values().copied().max().unwrap_or(0);
        self.aws.core.trim_metrics(|k: &Key| {
            if !k.is_builtin() {
                return None;
            }
            let keep = match metrics::unit_of(k) {
                Some(u) => retention.get(u).copied().unwrap_or(longest),
                None => longest,
            };
            Some(epoch.saturating_sub(keep))
        });
    }

    fn unit_input(
        &self,
        name: &str,
        groups: &HashMap<u32, Usage>,
        containers: &HashMap<String, Usage>,
    ) -> Option<UnitInput> {
        let rt = self.units.get(name)?;
        let m = self.monitor_of(name)?;
        let unit = &rt.current_or_latest()?.unit;
        let tasks = rt
            .tasks
            .iter()
            .filter(|t| t.phase == Phase::Running && t.task.exited().is_none())
            .map(|t| TaskInput {
                id: t.task.id,
                usage: match &t.task.handle {
                    Handle::Process { pgid } => groups.get(pgid).copied(),
                    Handle::Docker { container } => containers.get(container).copied(),
                },
            })
            .collect();
        // A target whose task is in its health-check grace period is not counted
        // unhealthy yet (a slow start is not an unhealthy host: ECS ignores its
        // failed checks then, and the unhealthy-hosts alarm must not roll back
        // a deployment for it).
        let now = self.now();
        let in_grace = |task: u64| {
            rt.tasks
                .iter()
                .find(|t| t.task.id == task)
                .is_some_and(|t| {
                    let grace = rt
                        .revision(t.task.revision)
                        .and_then(|r| r.unit.http.as_ref())
                        .map_or(0, |h| h.grace_ms);
                    now.saturating_sub(t.started_at) < grace
                })
        };
        let lb = rt.lb.as_ref().map(|lb| {
            let views = lb.group.views();
            let healthy = views
                .iter()
                .filter(|v| v.state == pantstack_lb::health::State::Healthy)
                .count() as u32;
            let unhealthy = views
                .iter()
                .filter(|v| v.state == pantstack_lb::health::State::Unhealthy && !in_grace(v.task))
                .count() as u32;
            (lb.stats(), healthy, unhealthy)
        });
        Some(UnitInput {
            cluster: m.cluster.clone(),
            unit: name.to_string(),
            cpu_units: unit.cpu,
            memory_mib: unit.memory_mib,
            desired: rt.desired,
            tasks,
            lb,
        })
    }

    /// The answer to `metrics`: the series of a service (or every one) as
    /// GetMetricData reads them.
    pub(super) fn metrics_answer(
        &self,
        service: Option<&str>,
        metric: Option<&str>,
        since_s: Option<u64>,
        period_s: Option<u64>,
        stat: Option<&str>,
    ) -> Value {
        let units: Vec<String> = match service {
            Some(s) => self.units_of_service(s),
            None => self.units.keys().cloned().collect(),
        };
        if units.is_empty() {
            return json!({ "done": true, "error": format!("no service or unit `{}`", service.unwrap_or("")) });
        }
        let services: Vec<String> = units
            .iter()
            .filter_map(|u| self.units.get(u))
            .filter_map(|rt| rt.revisions.last().map(|r| r.unit.service.clone()))
            .collect();
        let names = pantstack_model::physical::Names::new(&self.project, &self.cfg.env);
        let custom: Vec<String> = services
            .iter()
            .map(|s| names.metrics_namespace(s))
            .collect();
        let queue_prefixes: Vec<String> = services
            .iter()
            .map(|s| format!("{}-{s}-", names.prefix()))
            .collect();
        let keys = self.aws.core.metric_keys(|k| {
            let mine = (k.is_builtin()
                && metrics::unit_of(k).is_some_and(|u| units.iter().any(|x| x == u)))
                || custom.contains(&k.namespace)
                || (k.namespace == metrics::SQS
                    && k.dimensions.iter().any(|(n, v)| {
                        n == "QueueName" && queue_prefixes.iter().any(|p| v.starts_with(p))
                    }));
            mine && metric.is_none_or(|m| k.name.eq_ignore_ascii_case(m))
        });
        let period = period_s.unwrap_or_else(|| {
            let p = units
                .iter()
                .filter_map(|u| self.monitor_of(u))
                .map(|m| m.period_ms / 1000)
                .min()
                .unwrap_or(60);
            // GetMetricData periods: 1, 5, 10, 20, 30 or a multiple of 60.
            [1, 5, 10, 20, 30]
                .into_iter()
                .rev()
                .find(|x| *x <= p)
                .filter(|_| p < 60)
                .unwrap_or(p / 60 * 60)
        });
        let end = pantstack_endpoint::now_ms() / 1000 + 1;
        let start = end.saturating_sub(since_s.unwrap_or(900).max(1) + 1);
        let mut series = Vec::new();
        // GetMetricData takes at most 500 queries.
        for chunk in keys.chunks(500) {
            let queries: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    json!({
                        "Id": format!("m{i}"),
                        "MetricStat": {
                            "Metric": {
                                "Namespace": k.namespace,
                                "MetricName": k.name,
                                "Dimensions": k.dimensions.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
                            },
                            "Period": period,
                            "Stat": stat.unwrap_or_else(|| default_stat(&k.name)),
                        },
                    })
                })
                .collect();
            let input = json!({
                "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending",
                "MetricDataQueries": queries,
            });
            let out = match self.aws.core.get_metric_data(&input) {
                Ok(v) => v,
                Err(e) => return json!({ "done": true, "error": e.message }),
            };
            let results = out["MetricDataResults"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (k, r) in chunk.iter().zip(results) {
                let times = r["Timestamps"].as_array().cloned().unwrap_or_default();
                let values = r["Values"].as_array().cloned().unwrap_or_default();
                let points: Vec<Value> = times
                    .iter()
                    .zip(values)
                    .filter_map(|(t, v)| Some(json!([t.as_f64()? * 1000.0, v.as_f64()?])))
                    .collect();
                let dims: serde_json::Map<String, Value> = k
                    .dimensions
                    .iter()
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect();
                series.push(json!({
                    "namespace": k.namespace, "metric": k.name, "dimensions": dims,
                    "unit": metrics::unit_of(k),
                    "stat": stat.unwrap_or_else(|| default_stat(&k.name)),
                    "points": points,
                }));
            }
        }
        json!({ "done": true, "period_s": period, "series": series })
    }
}

/// The statistic a metric is usually read with.
fn default_stat(name: &str) -> &'static str {
    if name.ends_with("Count") && !name.contains("Task") && !name.contains("Host")
        || name == "RequestCountPerTarget"
    {
        "Sum"
    } else if name.starts_with("Approximate") || name.ends_with("HostCount") {
        "Maximum"
    } else {
        "Average"
    }
}

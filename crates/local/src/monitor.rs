//! What a unit is watched and scaled by, from its settings: the same target
//! tracking policies and alarms the aws target synthesizes (`pantstack-synth`'s
//! `service::ecs::add_scaling` and `monitor`), on the local metrics period.

use pantstack_model::Resolved;
use pantstack_model::physical::Names;
use pantstack_model::service::Service;
use pantstack_model::settings::keys;

/// A unit's monitoring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    /// The ECS cluster name (the `ClusterName` dimension).
    pub cluster: String,
    /// `local.metrics.period`, ms.
    pub period_ms: u64,
    /// `local.metrics.retention`, ms.
    pub retention_ms: u64,
    /// Target tracking (`None`: `local.autoscaling: false`).
    pub scaling: Option<Scaling>,
    pub alarms: Vec<AlarmSpec>,
    /// `local.alarms.command`.
    pub alarm_command: Option<String>,
    /// `local.alarms.url`.
    pub alarm_url: Option<String>,
    /// `deployment.rollback_alarms`: these alarms going to ALARM during a
    /// deployment roll it back (target 5xx and unhealthy hosts).
    pub rollback_alarms: bool,
}

/// Target tracking of one unit (`scaling.*`, or `worker.scaling.*` for the
/// worker beside an HTTP role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scaling {
    pub min: u32,
    pub max: u32,
    /// ECSServiceAverageCPUUtilization target, percent.
    pub cpu: i64,
    /// ECSServiceAverageMemoryUtilization target, percent.
    pub memory: Option<i64>,
    /// ALBRequestCountPerTarget target (requests per target per minute).
    pub requests: Option<i64>,
    /// The worker's queue and its target of visible messages per task.
    pub backlog: Option<(String, i64)>,
    pub cooldown_out_ms: u64,
    pub cooldown_in_ms: u64,
}

/// What an alarm watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlarmMetric {
    /// HTTPCode_Target_5XX_Count, per minute.
    Target5xx,
    /// UnHealthyHostCount, maximum.
    UnhealthyHosts,
    /// CPUUtilization, average.
    Cpu,
    /// ApproximateNumberOfMessagesVisible of a queue, maximum.
    QueueVisible(String),
    /// ApproximateAgeOfOldestMessage of a queue, seconds.
    QueueAge(String),
}

impl AlarmMetric {
    /// The metric as CloudWatch names it.
    pub fn name(&self) -> &'static str {
        match self {
            AlarmMetric::Target5xx => "HTTPCode_Target_5XX_Count",
            AlarmMetric::UnhealthyHosts => "UnHealthyHostCount",
            AlarmMetric::Cpu => "CPUUtilization",
            AlarmMetric::QueueVisible(_) => "ApproximateNumberOfMessagesVisible",
            AlarmMetric::QueueAge(_) => "ApproximateAgeOfOldestMessage",
        }
    }
}

/// One alarm: the value goes above `threshold` for `periods` periods in a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmSpec {
    /// The physical name (as on AWS).
    pub name: String,
    pub description: String,
    pub metric: AlarmMetric,
    pub threshold: i64,
    pub periods: u32,
}

/// The monitoring of unit `role` (`http` or `worker`) of `svc`; `main` when it
/// is the service's main role (it has the service's queue alarms then).
pub fn of(
    project: &str,
    env: &str,
    svc: &Service,
    cfg: &Resolved,
    role: &str,
    main: bool,
) -> Monitor {
    let names = Names::new(project, env);
    let worker = role == "worker";
    let (min, max) = if worker && svc.http.is_some() {
        (
            cfg.get(keys::WORKER_MIN_CAPACITY),
            cfg.get(keys::WORKER_MAX_CAPACITY),
        )
    } else {
        (cfg.get(keys::MIN_CAPACITY), cfg.get(keys::MAX_CAPACITY))
    };
    let queue = |q: &str, dlq: bool| crate::spec::queue_name(project, env, svc, q, dlq);
    let scaling = cfg.get(keys::LOCAL_AUTOSCALING).then(|| Scaling {
        min: min.max(0) as u32,
        // At most 64 tasks locally, as `local.count` and `pantstack scale`.
        max: max.clamp(1, 64) as u32,
        cpu: cfg.get(keys::CPU_TARGET),
        memory: cfg.get(keys::MEMORY_TARGET),
        requests: (!worker)
            .then(|| cfg.get(keys::REQUESTS_PER_TARGET))
            .flatten(),
        backlog: svc.worker.as_ref().filter(|_| worker).map(|w| {
            (
                queue(&w.queue.value, false),
                cfg.get(keys::BACKLOG_PER_TASK),
            )
        }),
        cooldown_out_ms: cfg.get(keys::SCALE_OUT_COOLDOWN) * 1000,
        cooldown_in_ms: cfg.get(keys::SCALE_IN_COOLDOWN) * 1000,
    });
    let name = &svc.name;
    let cpu = cfg.get(keys::ALARM_CPU_THRESHOLD);
    let mut alarms = Vec::new();
    if worker {
        alarms.push(AlarmSpec {
            name: names.alarm(name, "worker-cpu-high"),
            description: format!("{name}'s worker averages more than {cpu} % CPU"),
            metric: AlarmMetric::Cpu,
            threshold: cpu,
            periods: 5,
        });
    } else {
        let t5 = cfg.get(keys::ALARM_HTTP5XX_THRESHOLD);
        alarms.push(AlarmSpec {
            name: names.alarm(name, "target-5xx"),
            description: format!("{name} answered more than {t5} 5xx responses a minute"),
            metric: AlarmMetric::Target5xx,
            threshold: t5,
            periods: 3,
        });
        alarms.push(AlarmSpec {
            name: names.alarm(name, "unhealthy-hosts"),
            description: format!("{name} has tasks failing load-balancer health checks"),
            metric: AlarmMetric::UnhealthyHosts,
            threshold: 0,
            periods: 3,
        });
        alarms.push(AlarmSpec {
            name: names.alarm(name, "cpu-high"),
            description: format!("{name} averages more than {cpu} % CPU"),
            metric: AlarmMetric::Cpu,
            threshold: cpu,
            periods: 5,
        });
    }
    if main {
        for q in &svc.queues {
            if q.dead_letter.is_some() {
                alarms.push(AlarmSpec {
                    name: names.alarm(name, &format!("{}-dlq-not-empty", q.name)),
                    description: format!(
                        "messages of {name}'s queue {} landed in its dead-letter queue",
                        q.name
                    ),
                    metric: AlarmMetric::QueueVisible(queue(&q.name, true)),
                    threshold: 0,
                    periods: 1,
                });
            }
            if svc.worker.as_ref().is_some_and(|w| w.queue.value == q.name) {
                let age = cfg.get(keys::ALARM_QUEUE_AGE) as i64;
                alarms.push(AlarmSpec {
                    name: names.alarm(name, &format!("{}-queue-age", q.name)),
                    description: format!(
                        "the oldest message in {name}'s queue {} is older than {age} s",
                        q.name
                    ),
                    metric: AlarmMetric::QueueAge(queue(&q.name, false)),
                    threshold: age,
                    periods: 5,
                });
            }
        }
    }
    Monitor {
        cluster: names.cluster(name),
        period_ms: cfg.get(keys::LOCAL_METRICS_PERIOD).max(1) * 1000,
        retention_ms: cfg.get(keys::LOCAL_METRICS_RETENTION) * 1000,
        scaling,
        alarms,
        alarm_command: cfg.get(keys::LOCAL_ALARM_COMMAND).map(str::to_string),
        alarm_url: cfg.get(keys::LOCAL_ALARM_URL).map(str::to_string),
        rollback_alarms: cfg.get(keys::ROLLBACK_ALARMS),
    }
}

//! Alarms (target 5xx, unhealthy hosts, CPU high, DLQ not empty, oldest message)
//! with an optional SNS topic, and one CloudWatch dashboard per service.

use crate::Ctx;
use crate::cfn::{Template, att, r, sub};
use crate::storage::{dlq_id, queue_id};
use pantstack_model::Resolved;
use pantstack_model::service::Service;
use pantstack_model::settings::keys;
use serde_json::{Value, json};

struct Alarm<'a> {
    id: &'a str,
    what: &'a str,
    description: String,
    namespace: &'a str,
    metric: &'a str,
    stat: &'a str,
    dimensions: Value,
    threshold: i64,
    periods: u32,
    /// Metric math instead of one metric (blue/green: both target groups).
    metrics: Option<Value>,
}

fn add(t: &mut Template, cx: &Ctx<'_>, svc: &Service, topic: Option<&str>, a: Alarm<'_>) {
    let actions: Vec<Value> = topic.map(|x| vec![json!(x)]).unwrap_or_default();
    let mut props = json!({
        "AlarmName": cx.names.alarm(&svc.name, a.what),
        "AlarmDescription": a.description,
        "EvaluationPeriods": a.periods,
            "DatapointsToAlarm": a.periods,
            "Threshold": a.threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": actions.clone(),
            "OKActions": actions,
    });
    match a.metrics {
        Some(m) => props["Metrics"] = m,
        None => {
            props["Namespace"] = json!(a.namespace);
            props["MetricName"] = json!(a.metric);
            props["Statistic"] = json!(a.stat);
            props["Dimensions"] = a.dimensions;
            props["Period"] = json!(60);
        }
    }
    t.resource(a.id, "AWS::CloudWatch::Alarm", props);
}

/// A metric-math alarm's `Metrics`: `stat` of `metric` for each target group of a
/// blue/green service, and `expr` (over `m0`, `m1`) as the alarm's value.
fn per_target_group(cx: &Ctx<'_>, svc: &Service, metric: &str, stat: &str, expr: &str) -> Value {
    let mut m: Vec<Value> = ["TargetGroup", "AlternateTargetGroup"]
        .iter()
        .enumerate()
        .map(|(i, tg)| {
            json!({
                "Id": format!("m{i}"),
                "ReturnData": false,
                "MetricStat": { "Stat": stat, "Period": 60, "Metric": {
                    "Namespace": "AWS/ApplicationELB", "MetricName": metric,
                    "Dimensions": [
                        { "Name": "LoadBalancer", "Value": crate::shared_lb::full_name(cx, &svc.name) },
                        { "Name": "TargetGroup", "Value": att(tg, "TargetGroupFullName") },
                    ],
                } },
            })
        })
        .collect();
    m.push(json!({ "Id": "both", "Expression": expr, "ReturnData": true }));
    Value::Array(m)
}

pub fn alarms_and_dashboard(t: &mut Template, cx: &Ctx<'_>, svc: &Service, cfg: &Resolved) {
    let topic = cfg.get(keys::ALARM_TOPIC_ARN);
    let name = &svc.name;
    // ECS alternates a blue/green service between two target groups: what watches
    // targets watches both.
    let blue_green = cfg.get(keys::DEPLOYMENT_STRATEGY) != "rolling";
    let target_groups: &[&str] = if blue_green {
        &["TargetGroup", "AlternateTargetGroup"]
    } else {
        &["TargetGroup"]
    };
    let cpu = cfg.get(keys::ALARM_CPU_THRESHOLD);
    let lb_dims = json!([
        { "Name": "LoadBalancer", "Value": crate::shared_lb::full_name(cx, &svc.name) },
        { "Name": "TargetGroup", "Value": att("TargetGroup", "TargetGroupFullName") },
    ]);
    // The load balancer's own 5xx-from-targets count covers every target group.
    let lb_only = json!([
        { "Name": "LoadBalancer", "Value": crate::shared_lb::full_name(cx, &svc.name) },
    ]);
    let service_dims = |id: &str| {
        json!([
            { "Name": "ClusterName", "Value": r("Cluster") },
            { "Name": "ServiceName", "Value": att(id, "Name") },
        ])
    };
    if svc.http.is_some() {
        let t5 = cfg.get(keys::ALARM_HTTP5XX_THRESHOLD);
        add(
            t,
            cx,
            svc,
            topic,
            Alarm {
                id: "Target5xxAlarm",
                what: "target-5xx",
                description: format!("{name} answered more than {t5} 5xx responses a minute"),
                namespace: "AWS/ApplicationELB",
                metric: "HTTPCode_Target_5XX_Count",
                stat: "Sum",
                dimensions: if blue_green {
                    lb_only.clone()
                } else {
                    lb_dims.clone()
                },
                threshold: t5,
                periods: 3,
                // Sharing a load balancer with other services: its own target
                // groups only, whichever serves.
                metrics: (blue_green && cx.shared_lb).then(|| {
                    per_target_group(cx, svc, "HTTPCode_Target_5XX_Count", "Sum", "SUM([m0, m1])")
                }),
            },
        );
        add(
            t,
            cx,
            svc,
            topic,
            Alarm {
                id: "UnhealthyHostsAlarm",
                what: "unhealthy-hosts",
                description: format!("{name} has tasks failing load-balancer health checks"),
                namespace: "AWS/ApplicationELB",
                metric: "UnHealthyHostCount",
                stat: "Maximum",
                dimensions: lb_dims.clone(),
                threshold: 0,
                periods: 3,
                metrics: blue_green.then(|| {
                    per_target_group(cx, svc, "UnHealthyHostCount", "Maximum", "MAX([m0, m1])")
                }),
            },
        );
        add(
            t,
            cx,
            svc,
            topic,
            Alarm {
                id: "CpuHighAlarm",
                what: "cpu-high",
                description: format!("{name} CPU above {cpu} % for 5 minutes"),
                namespace: "AWS/ECS",
                metric: "CPUUtilization",
                stat: "Average",
                dimensions: service_dims("Service"),
                threshold: cpu,
                periods: 5,
                metrics: None,
            },
        );
    }
    if svc.worker.is_some() {
        add(
            t,
            cx,
            svc,
            topic,
            Alarm {
                id: "WorkerCpuHighAlarm",
                what: "worker-cpu-high",
                description: format!("{name} worker CPU above {cpu} % for 5 minutes"),
                namespace: "AWS/ECS",
                metric: "CPUUtilization",
                stat: "Average",
                dimensions: service_dims("ServiceWorker"),
                threshold: cpu,
                periods: 5,
                metrics: None,
            },
        );
    }
    let age = cfg.get(keys::ALARM_QUEUE_AGE);
    for q in &svc.queues {
        let lid = crate::names::logical(&[&q.name]);
        if q.dead_letter.is_some() {
            add(
                t,
                cx,
                svc,
                topic,
                Alarm {
                    id: &format!("{lid}DeadLetterAlarm"),
                    what: &format!("{}-dlq-not-empty", q.name),
                    description: format!(
                        "messages of {name}'s queue {} landed in its dead-letter queue",
                        q.name
                    ),
                    namespace: "AWS/SQS",
                    metric: "ApproximateNumberOfMessagesVisible",
                    stat: "Maximum",
                    dimensions: json!([{ "Name": "QueueName", "Value": att(&dlq_id(&q.name), "QueueName") }]),
                    threshold: 0,
                    periods: 1,
                    metrics: None,
                },
            );
        }
        if svc.worker.as_ref().is_some_and(|w| w.queue.value == q.name) {
            add(
                t,
                cx,
                svc,
                topic,
                Alarm {
                    id: &format!("{lid}QueueAgeAlarm"),
                    what: &format!("{}-queue-age", q.name),
                    description: format!(
                        "the oldest message of {name}'s queue {} is older than {age} s",
                        q.name
                    ),
                    namespace: "AWS/SQS",
                    metric: "ApproximateAgeOfOldestMessage",
                    stat: "Maximum",
                    dimensions: json!([{ "Name": "QueueName", "Value": att(&queue_id(&q.name), "QueueName") }]),
                    threshold: age as i64,
                    periods: 5,
                    metrics: None,
                },
            );
        }
    }
    dashboard(t, cx, svc, target_groups);
    rotation_notifications(t, cx, svc, topic);
}

/// A dashboard whose body is a `Fn::Sub` string: widget JSON with `${...}` for the
/// names CloudFormation knows only at deploy time.
fn dashboard(t: &mut Template, cx: &Ctx<'_>, svc: &Service, target_groups: &[&str]) {
    let mut widgets: Vec<Value> = Vec::new();
    let mut y = 0;
    let mut widget = |title: &str, metrics: Value| {
        widgets.push(json!({
            "type": "metric",
            "x": (widgets.len() % 2) * 12,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": "${AWS::Region}",
                "view": "timeSeries",
                "stat": "Average",
                "period": 60,
                "metrics": metrics,
            },
        }));
        if widgets.len().is_multiple_of(2) {
            y += 6;
        }
    };
    if svc.http.is_some() {
        widget(
            "HTTP service CPU / memory (%)",
            json!([
                [
                    "AWS/ECS",
                    "CPUUtilization",
                    "ClusterName",
                    "${Cluster}",
                    "ServiceName",
                    "${Service.Name}"
                ],
                [
                    "AWS/ECS",
                    "MemoryUtilization",
                    "ClusterName",
                    "${Cluster}",
                    "ServiceName",
                    "${Service.Name}"
                ],
            ]),
        );
        if cx.shared_lb {
            // A shared load balancer carries other services' traffic: this
            // service's target groups only (the ALB's own 5xx cannot be split).
            let per_tg = |metric: &str, stat: &str| -> Vec<Value> {
                target_groups
                    .iter()
                    .map(|tg| json!(["AWS/ApplicationELB", metric, "TargetGroup", format!("${{{tg}.TargetGroupFullName}}"), "LoadBalancer", "${LoadBalancer.LoadBalancerFullName}", { "stat": stat }]))
                    .collect()
            };
            let mut requests = per_tg("RequestCount", "Sum");
            requests.extend(per_tg("HTTPCode_Target_5XX_Count", "Sum"));
            widget(
                "Requests and errors (its target groups)",
                Value::Array(requests),
            );
            let mut latency = per_tg("TargetResponseTime", "p50");
            latency.extend(per_tg("TargetResponseTime", "p99"));
            widget("Target response time (s)", Value::Array(latency));
        } else {
            widget(
                "Requests and errors",
                json!([
                    ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", "${LoadBalancer.LoadBalancerFullName}", { "stat": "Sum" }],
                    ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", "${LoadBalancer.LoadBalancerFullName}", { "stat": "Sum" }],
                    ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", "${LoadBalancer.LoadBalancerFullName}", { "stat": "Sum" }],
                ]),
            );
            widget(
                "Target response time (s)",
                json!([
                    ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", "${LoadBalancer.LoadBalancerFullName}", { "stat": "p50" }],
                    ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", "${LoadBalancer.LoadBalancerFullName}", { "stat": "p99" }],
                ]),
            );
        }
        widget(
            "Healthy / unhealthy targets",
            Value::Array(
                target_groups
                    .iter()
                    .flat_map(|tg| {
                        ["HealthyHostCount", "UnHealthyHostCount"].map(|m| {
                            json!([
                                "AWS/ApplicationELB",
                                m,
                                "TargetGroup",
                                format!("${{{tg}.TargetGroupFullName}}"),
                                "LoadBalancer",
                                "${LoadBalancer.LoadBalancerFullName}"
                            ])
                        })
                    })
                    .collect(),
            ),
        );
    }
    if svc.worker.is_some() {
        widget(
            "Worker CPU / memory (%)",
            json!([
                [
                    "AWS/ECS",
                    "CPUUtilization",
                    "ClusterName",
                    "${Cluster}",
                    "ServiceName",
                    "${ServiceWorker.Name}"
                ],
                [
                    "AWS/ECS",
                    "MemoryUtilization",
                    "ClusterName",
                    "${Cluster}",
                    "ServiceName",
                    "${ServiceWorker.Name}"
                ],
            ]),
        );
    }
    for q in &svc.queues {
        let qid = queue_id(&q.name);
        let mut m = vec![
            json!([
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                format!("${{{qid}.QueueName}}")
            ]),
            json!(["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", format!("${{{qid}.QueueName}}"), { "yAxis": "right" }]),
        ];
        if q.dead_letter.is_some() {
            let did = dlq_id(&q.name);
            m.push(json!(["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", format!("${{{did}.QueueName}}"), { "label": "dead letters" }]));
        }
        widget(&format!("Queue {}", q.name), Value::Array(m));
    }
    let body = serde_json::to_string(&json!({ "widgets": widgets })).unwrap_or_default();
    t.resource(
        "Dashboard",
        "AWS::CloudWatch::Dashboard",
        json!({
            "DashboardName": sub(&cx.names.dashboard(&svc.name)),
            "DashboardBody": if cx.shared_lb && svc.http.is_some() {
                json!({ "Fn::Sub": [
                    body.replace("${LoadBalancer.LoadBalancerFullName}", "${LoadBalancerFullName}"),
                    { "LoadBalancerFullName": crate::shared_lb::full_name(cx, &svc.name) },
                ] })
            } else {
                sub(&body)
            },
        }),
    );
}

/// Secrets with `rotation_days` get Parameter Store's `NoChangeNotification` policy
/// (`pantstack secrets set --target aws` writes it); EventBridge routes the
/// policy's events for the service's parameters to the alarm topic. The topic's
/// own policy must let `events.amazonaws.com` publish.
fn rotation_notifications(t: &mut Template, cx: &Ctx<'_>, svc: &Service, topic: Option<&str>) {
    let Some(topic) = topic else {
        return;
    };
    let rotating: Vec<&str> = svc
        .secrets
        .iter()
        .filter(|s| s.from.is_none() && s.rotation_days.is_some())
        .map(|s| s.name.as_str())
        .collect();
    if rotating.is_empty() {
        return;
    }
    let path = cx.names.ssm_path(&svc.name);
    t.resource(
        "SecretRotationRule",
        "AWS::Events::Rule",
        json!({
            "Name": cx.names.alarm(&svc.name, "secret-rotation"),
            "Description": format!(
                "{}: a secret not rotated within its rotation_days ({}) notifies the alarm topic",
                svc.name,
                rotating.join(", ")
            ),
            "State": "ENABLED",
            "EventPattern": {
                "source": ["aws.ssm"],
                "detail-type": ["Parameter Store Policy Action"],
                "detail": { "parameter-name": [{ "prefix": format!("{path}/") }] },
            },
            "Targets": [{ "Id": "alarm-topic", "Arn": topic }],
        }),
    );
}

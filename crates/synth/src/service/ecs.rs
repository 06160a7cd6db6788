//! A role's ECS service (deployment configuration, load balancer, Service Connect)
//! and its target-tracking autoscaling.

use crate::Ctx;
use crate::cfn::{Template, att, import, join, r, sub, tags};
use crate::storage::queue_id;
use pantstack_model::Resolved;
use pantstack_model::service::Service;
use pantstack_model::settings::keys;
use serde_json::{Value, json};

use super::Role;
use super::refs::is_called;

#[allow(clippy::too_many_arguments)]
pub(super) fn add_service(
    t: &mut Template,
    cx: &Ctx<'_>,
    svc: &Service,
    cfg: &Resolved,
    role: Role,
    strategy: &Value,
    private: &Value,
    port: Option<i64>,
) {
    let name = &svc.name;
    let strategy_kind = cfg.get(keys::DEPLOYMENT_STRATEGY);
    let mut deployment = json!({
        "MinimumHealthyPercent": cfg.get(keys::MIN_HEALTHY_PERCENT),
        "MaximumPercent": cfg.get(keys::MAX_PERCENT),
        "DeploymentCircuitBreaker": {
            "Enable": cfg.get(keys::CIRCUIT_BREAKER),
            "Rollback": cfg.get(keys::ROLLBACK),
        },
    });
    let sg = match role {
        Role::Http => "TaskSecurityGroup",
        Role::Worker => "WorkerSecurityGroup",
    };
    let mut props = json!({
        "ServiceName": match role { Role::Http => name.clone(), Role::Worker => format!("{name}-worker") },
        "Cluster": r("Cluster"),
        "TaskDefinition": r(&format!("TaskDefinition{}", role.suffix())),
        "CapacityProviderStrategy": strategy.clone(),
        "DeploymentController": { "Type": "ECS" },
        "NetworkConfiguration": { "AwsvpcConfiguration": {
            "AssignPublicIp": "DISABLED",
            "Subnets": private.clone(),
            "SecurityGroups": [r(sg)],
        } },
        "PropagateTags": "SERVICE",
        "EnableECSManagedTags": true,
        "EnableExecuteCommand": false,
        "Tags": tags(cx.project(), cx.env, Some(name), None),
    });
    let mut depends: Vec<&str> = Vec::new();
    if role == Role::Http
        && let Some(p) = port
    {
        props["HealthCheckGracePeriodSeconds"] = json!(cfg.get(keys::HEALTH_CHECK_GRACE_PERIOD));
        let mut lb = json!({ "ContainerName": name, "ContainerPort": p, "TargetGroupArn": r("TargetGroup") });
        if strategy_kind != "rolling" {
            deployment["Strategy"] = json!(if strategy_kind == "canary" {
                "CANARY"
            } else {
                "BLUE_GREEN"
            });
            deployment["BakeTimeInMinutes"] = json!(5);
            if strategy_kind == "canary" {
                deployment["CanaryConfiguration"] =
                    json!({ "CanaryPercent": 10, "CanaryBakeTimeInMinutes": 5 });
            }
            lb["AdvancedConfiguration"] = json!({
                "AlternateTargetGroupArn": r("AlternateTargetGroup"),
                "ProductionListenerRule": r("ListenerRule1"),
                "RoleArn": att("LoadBalancerRole", "Arn"),
            });
        }
        props["LoadBalancers"] = json!([lb]);
        // ECS deployment alarms (Copilot's rollback alarms): the service's target
        // 5xx and unhealthy-hosts alarms in ALARM fail a deployment and roll it back.
        if cfg.get(keys::ROLLBACK_ALARMS) {
            deployment["Alarms"] = json!({
                "AlarmNames": [cx.names.alarm(name, "target-5xx"), cx.names.alarm(name, "unhealthy-hosts")],
                "Enable": true,
                "Rollback": true,
            });
        }
        if t.has_resource("HttpsListener") {
            depends.push("HttpsListener");
        }
        if t.has_resource("HttpListener") {
            depends.push("HttpListener");
        }
        if strategy_kind == "rolling" && t.has_resource("ListenerRule1") {
            depends.push("ListenerRule1");
        }
    }
    // Service Connect: a caller joins the environment's namespace as a client; a
    // called service's HTTP role also serves its name there.
    let calls = !svc.calls.is_empty();
    let served = role == Role::Http && is_called(cx, svc);
    if calls || served {
        let mut sc = json!({
            "Enabled": true,
            "Namespace": import(&cx.names.export("ServiceConnectNamespace")),
            "LogConfiguration": { "LogDriver": "awslogs", "Options": {
                "awslogs-group": r("LogGroup"),
                "awslogs-region": { "Ref": "AWS::Region" },
                "awslogs-stream-prefix": "service-connect",
            } },
        });
        if served && let Some(p) = port {
            sc["Services"] = json!([{
                "PortName": "http",
                "DiscoveryName": name,
                "ClientAliases": [{ "Port": p, "DnsName": name }],
            }]);
        }
        props["ServiceConnectConfiguration"] = sc;
    }
    props["DeploymentConfiguration"] = deployment;
    let id = format!("Service{}", role.suffix());
    let res = t.resource(&id, "AWS::ECS::Service", props);
    if !depends.is_empty() {
        res.depends_on(&depends);
    }
}

/// Target tracking: CPU (seed: 70 %), optionally memory and requests per target;
/// workers also track the queue backlog per task.
pub(super) fn add_scaling(
    t: &mut Template,
    cx: &Ctx<'_>,
    svc: &Service,
    cfg: &Resolved,
    role: Role,
    main: bool,
) {
    let sfx = role.suffix();
    let (min, max) = if main {
        (cfg.get(keys::MIN_CAPACITY), cfg.get(keys::MAX_CAPACITY))
    } else {
        (
            cfg.get(keys::WORKER_MIN_CAPACITY),
            cfg.get(keys::WORKER_MAX_CAPACITY),
        )
    };
    let target = format!("ScalingTarget{sfx}");
    let service_id = format!("Service{sfx}");
    t.resource(
        &target,
        "AWS::ApplicationAutoScaling::ScalableTarget",
        json!({
            "ServiceNamespace": "ecs",
            "ScalableDimension": "ecs:service:DesiredCount",
            "ResourceId": sub(&format!("service/${{Cluster}}/${{{service_id}.Name}}")),
            "MinCapacity": min,
            "MaxCapacity": max,
        }),
    );
    let cooldowns = (
        cfg.get(keys::SCALE_IN_COOLDOWN),
        cfg.get(keys::SCALE_OUT_COOLDOWN),
    );
    let mut policy_ = |id: &str, spec: Value, value: f64| {
        let mut cfgv = json!({
            "TargetValue": value,
            "ScaleInCooldown": cooldowns.0,
            "ScaleOutCooldown": cooldowns.1,
        });
        if let (Value::Object(m), Value::Object(s)) = (&mut cfgv, spec) {
            m.extend(s);
        }
        t.resource(
            &format!("{id}{sfx}"),
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            json!({
                "PolicyName": format!("{}{}-{}", svc.name, if role == Role::Worker { "-worker" } else { "" }, id),
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": r(&target),
                "TargetTrackingScalingPolicyConfiguration": cfgv,
            }),
        );
    };
    let cpu = cfg.get(keys::CPU_TARGET) as f64;
    policy_(
        "CpuScaling",
        json!({ "PredefinedMetricSpecification": { "PredefinedMetricType": "ECSServiceAverageCPUUtilization" } }),
        cpu,
    );
    if let Some(m) = cfg.get(keys::MEMORY_TARGET) {
        policy_(
            "MemoryScaling",
            json!({ "PredefinedMetricSpecification": { "PredefinedMetricType": "ECSServiceAverageMemoryUtilization" } }),
            m as f64,
        );
    }
    if role == Role::Http
        && let Some(rpt) = cfg.get(keys::REQUESTS_PER_TARGET)
    {
        // ALBRequestCountPerTarget names one target group, but ECS alternates a
        // blue/green service between two: there, requests of the whole load
        // balancer per running task.
        let blue_green = cfg.get(keys::DEPLOYMENT_STRATEGY) != "rolling";
        let spec = if blue_green {
            json!({ "CustomizedMetricSpecification": { "Metrics": [
                { "Id": "requests", "ReturnData": false, "MetricStat": { "Stat": "Sum", "Metric": {
                    "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                    "Dimensions": [{ "Name": "LoadBalancer", "Value": crate::shared_lb::full_name(cx, &svc.name) }],
                } } },
                { "Id": "tasks", "ReturnData": false, "MetricStat": { "Stat": "Average", "Metric": {
                    "Namespace": "ECS/ContainerInsights", "MetricName": "RunningTaskCount",
                    "Dimensions": [
                        { "Name": "ClusterName", "Value": r("Cluster") },
                        { "Name": "ServiceName", "Value": att(&service_id, "Name") },
                    ],
                } } },
                { "Id": "requests_per_task", "Label": "requests per running task", "ReturnData": true,
                  "Expression": "IF(tasks > 0, requests / tasks, requests)" },
            ] } })
        } else {
            json!({ "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ALBRequestCountPerTarget",
                "ResourceLabel": join("/", vec![crate::shared_lb::full_name(cx, &svc.name), att("TargetGroup", "TargetGroupFullName")]),
            } })
        };
        policy_("RequestScaling", spec, rpt as f64);
    }
    if role == Role::Worker
        && let Some(w) = &svc.worker
    {
        let backlog = cfg.get(keys::BACKLOG_PER_TASK) as f64;
        policy_(
            "BacklogScaling",
            json!({ "CustomizedMetricSpecification": { "Metrics": [
                { "Id": "visible", "ReturnData": false, "MetricStat": { "Stat": "Sum", "Metric": {
                    "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{ "Name": "QueueName", "Value": att(&queue_id(&w.queue.value), "QueueName") }],
                } } },
                { "Id": "tasks", "ReturnData": false, "MetricStat": { "Stat": "Average", "Metric": {
                    "Namespace": "ECS/ContainerInsights", "MetricName": "RunningTaskCount",
                    "Dimensions": [
                        { "Name": "ClusterName", "Value": r("Cluster") },
                        { "Name": "ServiceName", "Value": att(&service_id, "Name") },
                    ],
                } } },
                { "Id": "backlog_per_task", "Label": "visible messages per running task", "ReturnData": true,
                  "Expression": "IF(tasks > 0, visible / tasks, visible)" },
            ] } }),
            backlog,
        );
    }
}

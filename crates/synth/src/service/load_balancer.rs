//! The HTTP role's load balancing: its own ALB (or rules on the environment's
//! shared one), security groups, target groups (two with blue/green), listeners
//! and listener rules.

use crate::cfn::{Template, arn, import, r, sub};
use crate::{Ctx, skips};
use pantstack_model::Resolved;
use pantstack_model::service::Service;
use pantstack_model::settings::keys;
use serde_json::{Value, json};

use super::https_out;

/// ALB/ELB TLS policy of HTTPS listeners.
pub const TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

#[allow(clippy::too_many_arguments)]
pub(super) fn add_load_balancer(
    t: &mut Template,
    cx: &Ctx<'_>,
    svc: &Service,
    cfg: &Resolved,
    port: i64,
    cert: Option<&str>,
    vpc: &Value,
    public: &Value,
    tg: &Value,
) {
    let n = &cx.names;
    let name = &svc.name;
    let prefix = n.prefix();
    let mut ingress = vec![json!({
        "Description": if cert.is_some() { "HTTP from the internet (redirected to HTTPS)" } else { "HTTP from the internet" },
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0",
    })];
    if cert.is_some() {
        ingress.push(json!({
            "Description": "HTTPS from the internet",
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
        }));
    }
    // Shared (`shared_lb.rs`): the environment's load balancer and its group.
    let lb_group = if cx.shared_lb {
        import(&n.lb_export("SecurityGroupId"))
    } else {
        r("LoadBalancerSecurityGroup")
    };
    if !cx.shared_lb {
        t.resource(
        "LoadBalancerSecurityGroup",
        "AWS::EC2::SecurityGroup",
        json!({
            "GroupDescription": format!("{prefix}-{name} load balancer: listener ports from the internet, the container port to tasks"),
            "VpcId": vpc.clone(),
            "SecurityGroupIngress": ingress,
            "SecurityGroupEgress": [{
                "Description": "To the tasks' container port only",
                "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "DestinationSecurityGroupId": r("TaskSecurityGroup"),
            }],
            "Tags": tg.clone(),
        }),
    )
    .skip(&[skips::ALB_PORT_80_OPEN]);
    }
    t.resource(
        "TaskSecurityGroup",
        "AWS::EC2::SecurityGroup",
        json!({
            "GroupDescription": format!("{prefix}-{name} tasks: the container port from the load balancer only, HTTPS out"),
            "VpcId": vpc.clone(),
            "SecurityGroupEgress": [https_out()],
            "Tags": tg.clone(),
        }),
    );
    t.resource(
        "TaskIngressFromLoadBalancer",
        "AWS::EC2::SecurityGroupIngress",
        json!({
            "Description": "The container port from the load balancer",
            "GroupId": r("TaskSecurityGroup"),
            "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "SourceSecurityGroupId": lb_group,
        }),
    );

    let mut attrs = vec![
        json!({ "Key": "idle_timeout.timeout_seconds", "Value": cfg.get(keys::IDLE_TIMEOUT).to_string() }),
        json!({ "Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true" }),
        json!({ "Key": "routing.http.desync_mitigation_mode", "Value": "defensive" }),
        json!({ "Key": "access_logs.s3.enabled", "Value": "true" }),
        json!({ "Key": "access_logs.s3.bucket", "Value": import(&n.export("AccessLogBucket")) }),
        json!({ "Key": "access_logs.s3.prefix", "Value": format!("alb/{name}") }),
        json!({ "Key": "deletion_protection.enabled", "Value": (!cx.is_preview()).to_string() }),
    ];
    attrs.sort_by(|a, b| a["Key"].as_str().cmp(&b["Key"].as_str()));
    if !cx.shared_lb {
        let lb = t.resource(
            "LoadBalancer",
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            json!({
                "Name": n.elb(name, ""),
                "Type": "application",
                "Scheme": "internet-facing",
                "IpAddressType": "ipv4",
                "Subnets": public.clone(),
                "SecurityGroups": [r("LoadBalancerSecurityGroup")],
                "LoadBalancerAttributes": attrs,
                "Tags": tg.clone(),
            }),
        );
        if cx.is_preview() {
            lb.skip(&[skips::ALB_PREVIEW_DELETION]);
        }
    }

    let strategy = cfg.get(keys::DEPLOYMENT_STRATEGY).to_string();
    let blue_green = strategy != "rolling";
    let target_groups: &[(&str, &str)] = if blue_green {
        &[("TargetGroup", "-tg"), ("AlternateTargetGroup", "-tg2")]
    } else {
        &[("TargetGroup", "-tg")]
    };
    for (id, suffix) in target_groups {
        t.resource(
            id,
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            json!({
                // Shared: the load balancer's index in the name, so a service that
                // moves to another gets a new target group (one may serve only
                // one load balancer) rather than an update CloudFormation refuses.
                "Name": if cx.shared_lb {
                    n.elb(name, &format!("{suffix}{}-{port}", crate::shared_lb::shard_of(cx, name)))
                } else {
                    n.elb(name, &format!("{suffix}-{port}"))
                },
                "TargetType": "ip",
                "Protocol": "HTTP",
                "ProtocolVersion": "HTTP1",
                "Port": port,
                "VpcId": vpc.clone(),
                "HealthCheckEnabled": true,
                "HealthCheckProtocol": "HTTP",
                "HealthCheckPath": cfg.get(keys::HEALTH_CHECK_PATH),
                "HealthCheckIntervalSeconds": cfg.get(keys::HEALTH_CHECK_INTERVAL),
                "HealthCheckTimeoutSeconds": cfg.get(keys::HEALTH_CHECK_TIMEOUT),
                "HealthyThresholdCount": cfg.get(keys::HEALTHY_THRESHOLD),
                "UnhealthyThresholdCount": cfg.get(keys::UNHEALTHY_THRESHOLD),
                "Matcher": { "HttpCode": cfg.get(keys::HEALTH_CHECK_MATCHER) },
                "TargetGroupAttributes": [
                    { "Key": "deregistration_delay.timeout_seconds", "Value": cfg.get(keys::DEREGISTRATION_DELAY).to_string() },
                    { "Key": "load_balancing.algorithm.type", "Value": cfg.get(keys::LOAD_BALANCING_ALGORITHM) },
                ],
                "Tags": tg.clone(),
            }),
        );
    }

    // The action that serves traffic: forward to the target group (both, weighted,
    // with blue/green: ECS moves the weights).
    let forward = if blue_green {
        json!([{ "Type": "forward", "ForwardConfig": { "TargetGroups": [
            { "TargetGroupArn": r("TargetGroup"), "Weight": 100 },
            { "TargetGroupArn": r("AlternateTargetGroup"), "Weight": 0 },
        ] } }])
    } else {
        json!([{ "Type": "forward", "TargetGroupArn": r("TargetGroup") }])
    };
    let http = svc.http.as_ref();
    let rules = http.map(|h| h.rules.clone()).unwrap_or_default();
    let mut rule_conditions: Vec<Vec<Value>> = rules
        .iter()
        .map(|rule| {
            let mut conditions = Vec::new();
            if let Some(p) = &rule.path {
                conditions.push(
                    json!({ "Field": "path-pattern", "PathPatternConfig": { "Values": [p] } }),
                );
            }
            if let Some(h) = &rule.host {
                conditions
                    .push(json!({ "Field": "host-header", "HostHeaderConfig": { "Values": [h] } }));
            }
            conditions
        })
        .collect();
    if cx.shared_lb && rule_conditions.is_empty() {
        // The service's own path on the shared load balancer (the service sees it).
        rule_conditions.push(vec![
            json!({ "Field": "path-pattern", "PathPatternConfig": {
            "Values": [format!("/{name}"), format!("/{name}/*")],
        } }),
        ]);
    }
    // With listener rules (or blue/green, which needs a production rule), the
    // default action answers 404 and rules forward.
    let not_found = json!([{ "Type": "fixed-response", "FixedResponseConfig": {
        "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no route",
    } }]);
    let default_action = if rules.is_empty() && !blue_green {
        forward.clone()
    } else {
        not_found
    };
    let serving_listener = if cx.shared_lb {
        ""
    } else if let Some(arn_) = cert {
        t.resource(
            "HttpsListener",
            "AWS::ElasticLoadBalancingV2::Listener",
            json!({
                "LoadBalancerArn": r("LoadBalancer"),
                "Port": 443,
                "Protocol": "HTTPS",
                "SslPolicy": TLS_POLICY,
                "Certificates": [{ "CertificateArn": arn_ }],
                "DefaultActions": default_action,
            }),
        );
        t.resource(
            "HttpListener",
            "AWS::ElasticLoadBalancingV2::Listener",
            json!({
                "LoadBalancerArn": r("LoadBalancer"),
                "Port": 80,
                "Protocol": "HTTP",
                "DefaultActions": [{ "Type": "redirect", "RedirectConfig": {
                    "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301",
                    "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}",
                } }],
            }),
        );
        "HttpsListener"
    } else {
        t.resource(
            "HttpListener",
            "AWS::ElasticLoadBalancingV2::Listener",
            json!({
                "LoadBalancerArn": r("LoadBalancer"),
                "Port": 80,
                "Protocol": "HTTP",
                "DefaultActions": default_action,
            }),
        )
        .skip(&[skips::ALB_HTTP_LISTENER, skips::ALB_HTTP_LISTENER_TLS]);
        "HttpListener"
    };
    let listener = if cx.shared_lb {
        import(&n.lb_export(&crate::shared_lb::listener_export(
            cx,
            crate::shared_lb::shard_of(cx, name),
        )))
    } else {
        r(serving_listener)
    };
    if cx.shared_lb
        && let Some(arn_) = cert
    {
        // The service's own certificate beside the environment's, chosen by SNI
        // (`check` refuses it on a shared load balancer without an HTTPS listener).
        t.resource(
            "ListenerCertificate",
            "AWS::ElasticLoadBalancingV2::ListenerCertificate",
            json!({
                "ListenerArn": listener.clone(),
                "Certificates": [{ "CertificateArn": arn_ }],
            }),
        );
    }
    let first = if cx.shared_lb {
        crate::shared_lb::first_priority(cx, name)
    } else {
        1
    };
    for (i, conditions) in (1..).zip(rule_conditions.iter()) {
        let priority = first + i - 1;
        t.resource(
            &format!("ListenerRule{i}"),
            "AWS::ElasticLoadBalancingV2::ListenerRule",
            json!({
                "ListenerArn": listener.clone(),
                "Priority": priority,
                "Conditions": conditions,
                "Actions": forward.clone(),
            }),
        );
    }
    if blue_green && rule_conditions.is_empty() {
        t.resource(
            "ListenerRule1",
            "AWS::ElasticLoadBalancingV2::ListenerRule",
            json!({
                "ListenerArn": listener.clone(),
                "Priority": 1,
                "Conditions": [{ "Field": "path-pattern", "PathPatternConfig": { "Values": ["/*"] } }],
                "Actions": forward.clone(),
            }),
        );
    }
    if blue_green {
        // ECS moves listener-rule weights between the two target groups.
        t.resource(
            "LoadBalancerRole",
            "AWS::IAM::Role",
            json!({
                "RoleName": sub(&n.role(&format!("{name}-ecs-lb"))),
                "Description": format!("ECS shifts {name}'s traffic between target groups as this role"),
                "AssumeRolePolicyDocument": crate::cfn::assume_by("ecs.amazonaws.com"),
                "PermissionsBoundary": import(&n.export("RoleBoundaryArn")),
                "ManagedPolicyArns": [arn("iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers")],
                "Tags": tg.clone(),
            }),
        );
    }
}

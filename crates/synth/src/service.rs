//! A service stack `{project}-{env}-{service}`: its queues and buckets, roles, log
//! group, ECS cluster (Fargate + Fargate Spot), the HTTP role behind its own ALB and
//! the worker role, autoscaling, alarms and a dashboard.
//!
//! [`template`] assembles the stack from its parts: `roles` (IAM), `task` (task
//! definitions), `load_balancer` (the HTTP role's ALB or shared-ALB rules), `ecs`
//! (ECS services and autoscaling); `refs` resolves what it refers to of other
//! stacks, and `check` holds the checks that only matter for AWS.

mod check;
mod ecs;
mod load_balancer;
mod refs;
mod roles;
mod task;

pub use check::check;
pub use load_balancer::TLS_POLICY;
pub use refs::{
    bucket_export, callees, is_called, task_sg_export, used_grants, variable_value,
    worker_sg_export,
};
pub use roles::{execution_role, preview_task_roles, role_arn, task_role_name};
pub use task::ADOT_IMAGE;

use ecs::{add_scaling, add_service};
use load_balancer::add_load_balancer;
use roles::add_roles;
use task::add_task_definition;

use crate::Ctx;
use crate::cfn::{Template, import, r, split, sub, tags};
use crate::names::logical;
use crate::storage::{add_buckets, add_queues, bucket_id, queue_id};
use pantstack_model::Resolved;
use pantstack_model::service::Service;
use pantstack_model::settings::keys;
use serde_json::{Value, json};

/// Which role of a service a task definition / ECS service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Http,
    Worker,
}

impl Role {
    fn suffix(self) -> &'static str {
        match self {
            Role::Http => "",
            Role::Worker => "Worker",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Role::Http => "http",
            Role::Worker => "worker",
        }
    }
}

fn image(cx: &Ctx<'_>, param: &str) -> Value {
    sub(&format!(
        "${{AWS::AccountId}}.dkr.ecr.${{AWS::Region}}.${{AWS::URLSuffix}}/{}:${{{param}}}",
        cx.repo.foundation.registry
    ))
}

/// The service's stack in the environment of `cx`, its settings resolved as `cfg`.
pub fn template(cx: &Ctx<'_>, svc: &Service, cfg: &Resolved) -> Template {
    let n = &cx.names;
    let project = cx.project();
    let env = cx.env;
    let name = &svc.name;
    let mut t = Template::new(format!(
        "Pantstack {project}/{env}/{name}: {}",
        svc.description.as_deref().unwrap_or("service")
    ));
    let key = import(&n.export("KeyArn"));
    let tg = tags(project, env, Some(name), None);
    let tracing = cfg.get(keys::TRACING);

    if svc.http.is_some() {
        t.parameter(
        "ImageTag",
        json!({
            "Type": "String",
            "AllowedPattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
            "Description": format!("Tag of the {name} image in the {} repository", cx.repo.foundation.registry),
        }),
    );
    }
    if svc.worker.is_some() {
        t.parameter(
            "WorkerImageTag",
            json!({
                "Type": "String",
                "AllowedPattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
                "Description": format!("Tag of the {name}-worker image"),
            }),
        );
    }
    add_queues(&mut t, cx, svc, &key);
    add_buckets(&mut t, cx, svc, &key);

    // Logs.
    t.resource(
        "LogGroup",
        "AWS::Logs::LogGroup",
        json!({
            "LogGroupName": n.log_group(name),
            "RetentionInDays": cfg.get(keys::LOG_RETENTION_DAYS),
            "KmsKeyId": key.clone(),
            "Tags": tg.clone(),
        }),
    );

    add_roles(&mut t, cx, svc, &key, &tg, tracing);

    // Cluster: Fargate and Fargate Spot, the seed's weighted strategy.
    let strategy = capacity_strategy(cfg);
    t.resource(
        "Cluster",
        "AWS::ECS::Cluster",
        json!({
            "ClusterName": n.cluster(name),
            "ClusterSettings": [{ "Name": "containerInsights", "Value": "enabled" }],
            "CapacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "DefaultCapacityProviderStrategy": strategy.clone(),
            "Tags": tg.clone(),
        }),
    );

    let vpc = import(&n.export("VpcId"));
    let private = split(",", import(&n.export("PrivateSubnetIds")));
    let public = split(",", import(&n.export("PublicSubnetIds")));

    if let Some(http) = &svc.http {
        let port = cfg.get(keys::PORT);
        let cert = cfg.get(keys::CERTIFICATE_ARN).map(str::to_string);
        add_task_definition(
            &mut t,
            cx,
            svc,
            cfg,
            Role::Http,
            http.command.as_ref(),
            Some(port),
            tracing,
        );
        add_load_balancer(
            &mut t,
            cx,
            svc,
            cfg,
            port,
            cert.as_deref(),
            &vpc,
            &public,
            &tg,
        );
        add_service(
            &mut t,
            cx,
            svc,
            cfg,
            Role::Http,
            &strategy,
            &private,
            Some(port),
        );
        add_scaling(&mut t, cx, svc, cfg, Role::Http, true);
    }
    if let Some(w) = &svc.worker {
        add_task_definition(
            &mut t,
            cx,
            svc,
            cfg,
            Role::Worker,
            w.command.as_ref(),
            None,
            tracing,
        );
        // Workers accept no connections; they call AWS over HTTPS.
        t.resource(
            "WorkerSecurityGroup",
            "AWS::EC2::SecurityGroup",
            json!({
                "GroupDescription": format!("{}-{name} worker tasks: no ingress, HTTPS out", n.prefix()),
                "VpcId": vpc.clone(),
                "SecurityGroupEgress": [https_out()],
                "Tags": tg.clone(),
            }),
        );
        add_service(
            &mut t,
            cx,
            svc,
            cfg,
            Role::Worker,
            &strategy,
            &private,
            None,
        );
        add_scaling(&mut t, cx, svc, cfg, Role::Worker, svc.http.is_none());
    }
    crate::monitor::alarms_and_dashboard(&mut t, cx, svc, cfg);

    // Outputs.
    t.output("ClusterName", r("Cluster"), None);
    // Calls: the Service Connect stack imports these for each call's rules. Always
    // exported, calls or not: CloudFormation refuses to remove an export another
    // stack still imports, and the Service Connect stack is updated (or deleted)
    // only after the services, so a call removed must not remove an export.
    if svc.http.is_some() {
        t.output(
            "TaskSecurityGroupId",
            r("TaskSecurityGroup"),
            Some(&task_sg_export(cx, &svc.name)),
        );
    }
    if svc.worker.is_some() {
        t.output(
            "WorkerSecurityGroupId",
            r("WorkerSecurityGroup"),
            Some(&worker_sg_export(cx, &svc.name)),
        );
    }
    if svc.http.is_some() {
        let https = if cx.shared_lb {
            crate::shared_lb::certificate(cx).is_some()
        } else {
            cfg.get(keys::CERTIFICATE_ARN).is_some()
        };
        let scheme = if https { "https" } else { "http" };
        if cx.shared_lb {
            // W6001 (an output built from an import): the URL is the shared load
            // balancer's name and this service's path, which is what a user reads.
            t.metadata(
                "cfn-lint",
                json!({ "config": { "ignore_checks": ["W6001"] } }),
            );
        }
        // Its default path, or its first rule's (host, or path up to a wildcard).
        let path = match svc.http.as_ref().and_then(|h| h.rules.first()) {
            Some(rule) if rule.host.is_none() => rule
                .path
                .as_deref()
                .map(|p| {
                    p.split(['*', '?'])
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string()
                })
                .unwrap_or_default(),
            Some(_) => String::new(),
            None => format!("/{name}"),
        };
        let url = if cx.shared_lb {
            json!({ "Fn::Sub": [
                format!("{scheme}://${{DnsName}}{path}"),
                { "DnsName": import(&n.lb_export(&format!("DnsName{}", crate::shared_lb::shard_of(cx, name)))) },
            ] })
        } else {
            sub(&format!("{scheme}://${{LoadBalancer.DNSName}}"))
        };
        t.output("Url", url, None);
    }
    for q in &svc.queues {
        t.output(
            &logical(&[&q.name, "QueueUrl"]),
            r(&queue_id(&q.name)),
            None,
        );
    }
    for b in &svc.buckets {
        // Exported when another service may use it: that service imports the name.
        let export = (!b.grants.is_empty()).then(|| bucket_export(cx, &svc.name, &b.name));
        t.output(
            &logical(&[&b.name, "BucketName"]),
            r(&bucket_id(&b.name)),
            export.as_deref(),
        );
    }
    t
}

fn https_out() -> Value {
    json!({
        "Description": "HTTPS to AWS APIs (through NAT or VPC endpoints)",
        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
    })
}

fn capacity_strategy(cfg: &Resolved) -> Value {
    let base = cfg.get(keys::ON_DEMAND_BASE);
    let od = cfg.get(keys::ON_DEMAND_WEIGHT);
    let spot = cfg.get(keys::SPOT_WEIGHT);
    let mut s = Vec::new();
    if od > 0 || base > 0 {
        s.push(json!({ "CapacityProvider": "FARGATE", "Base": base, "Weight": od }));
    }
    if spot > 0 {
        s.push(json!({ "CapacityProvider": "FARGATE_SPOT", "Weight": spot }));
    }
    Value::Array(s)
}

//! A service's task role: what its code calls AWS as (its own queues, buckets,
//! parameters and key, and what other services granted it). ECS pulls images,
//! writes logs and injects secrets as the environment's execution role
//! (`execution_role`, in the foundation), which the task's code never holds.
//!
//! Invariants: a task role is per service and names only that service's
//! resources and what was granted to it. In a preview the task role is the one
//! every preview of that service shares (`{project}-preview-{service}-task-…`,
//! in the previews' foundation, `preview_task_roles`): its identity policy names
//! the service's own parameters under `/{project}/preview-*/{service}/`, and each
//! preview's queue and bucket policies name it as principal. Roles per service
//! per preview would not fit IAM's default quota of 1,000 roles an account.

use super::refs::{bucket_export, owner_queue, used_grants};
use crate::Ctx;
use crate::cfn::{Template, allow, arn, att, import, join, policy, r, sub};
use crate::names::logical;
use crate::storage::{bucket_id, dlq_id, queue_id};
use pantstack_model::iam;
use pantstack_model::service::Service;
use pantstack_model::settings::{Layer, keys};
use serde_json::{Value, json};

/// The name (an `Fn::Sub` string) of the role `service`'s code runs as: its own
/// in a long-lived environment, the one every preview shares in a preview.
pub fn task_role_name(cx: &Ctx<'_>, service: &str) -> String {
    cx.names.base_role(&format!("{service}-task"))
}

/// The ARN of a role named by an `Fn::Sub` string.
pub fn role_arn(name_sub: &str) -> Value {
    sub(&format!(
        "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{name_sub}"
    ))
}

/// The environment's execution role (foundation, one per environment): ECS
/// pulls every service's image, writes its logs and injects the secrets its task
/// definition names, as this role. ECS alone assumes it; a task's code gets the
/// task role's credentials, never these. One per environment rather than per
/// service: each service's task definition is written by CloudFormation as the
/// deploy role from synthesized templates, and names only the service's own and
/// granted parameters.
pub fn execution_role(t: &mut Template, cx: &Ctx<'_>, log_groups: Vec<Value>, ssm: Vec<Value>) {
    let n = &cx.names;
    let registry = &cx.repo.foundation.registry;
    let statements = vec![
        allow(
            "RegistryLogin",
            &["ecr:GetAuthorizationToken"],
            vec![json!("*")],
        ),
        allow(
            "PullImages",
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            vec![arn(&format!(
                "ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/{registry}"
            ))],
        ),
        allow(
            "WriteLogs",
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            log_groups,
        ),
        allow("InjectSecrets", &["ssm:GetParameters"], ssm),
        allow("DecryptSecrets", &["kms:Decrypt"], vec![att("Key", "Arn")]),
    ];
    t.resource(
        "ExecutionRole",
        "AWS::IAM::Role",
        json!({
            "RoleName": sub(&n.base_role("execution")),
            "Description": format!("ECS pulls the images, writes the logs and injects the secrets of {}'s tasks as this role", n.base_prefix()),
            "AssumeRolePolicyDocument": crate::cfn::assume_by("ecs-tasks.amazonaws.com"),
            "PermissionsBoundary": r("RoleBoundary"),
            "Policies": [{ "PolicyName": "execution", "PolicyDocument": policy(statements) }],
            "Tags": crate::cfn::tags(cx.project(), n.base, None, None),
        }),
    );
    t.output(
        "ExecutionRoleArn",
        att("ExecutionRole", "Arn"),
        Some(&n.export("ExecutionRoleArn")),
    );
}

/// The previews' foundation: one task role per service, shared by every preview.
/// Its policy holds the service's own parameters (every preview's), the
/// previews' key and tracing; queues and buckets, its own and granted, are
/// allowed by each preview's resource policies, which name this role. It depends
/// only on the service's name and tracing, so that a pull request changing a
/// service's queues, buckets, secrets or grants needs no new bootstrap.
pub fn preview_task_roles(t: &mut Template, cx: &Ctx<'_>) {
    let n = &cx.names;
    let project = cx.project();
    for unit in &cx.repo.services {
        let name = &unit.service.name;
        let path = format!("/{project}/{}-*/{name}", n.base);
        let mut task = vec![
            allow(
                "ReadOwnParameters",
                iam::PARAMETER_ACTIONS,
                vec![
                    arn(&format!(
                        "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{path}"
                    )),
                    arn(&format!(
                        "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{path}/*"
                    )),
                ],
            ),
            allow(
                "EncryptOwnData",
                &["kms:Decrypt", "kms:GenerateDataKey"],
                vec![att("Key", "Arn")],
            ),
            // Custom metrics, into the service's namespace of any preview
            // (`{project}/preview-<pr>/{service}`, its PANTSTACK_METRICS_NAMESPACE).
            json!({
                "Sid": "PutOwnMetrics",
                "Effect": "Allow",
                "Action": iam::METRICS_ACTIONS,
                "Resource": "*",
                "Condition": { "StringLike": { iam::METRICS_KEY: format!("{project}/{}-*/{name}", n.base) } },
            }),
        ];
        let cfg = cx.repo.resolve_service(unit, cx.env, &Layer::default());
        if cfg.get(keys::TRACING) {
            task.push(tracing_statement());
        }
        t.resource(
            &logical(&[name, "TaskRole"]),
            "AWS::IAM::Role",
            json!({
                "RoleName": sub(&task_role_name(cx, name)),
                "Description": format!("{name}'s code in every preview calls AWS as this role: {name}'s parameters, and the queues and buckets whose policies name it"),
                "AssumeRolePolicyDocument": crate::cfn::assume_by("ecs-tasks.amazonaws.com"),
                "PermissionsBoundary": r("RoleBoundary"),
                "Policies": [{ "PolicyName": "task", "PolicyDocument": policy(task) }],
                "Tags": crate::cfn::tags(project, n.base, Some(name), None),
            }),
        );
    }
}

fn tracing_statement() -> Value {
    allow(
        "Tracing",
        &[
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
        ],
        vec![json!("*")],
    )
}

/// The task role, in a long-lived environment (a preview's is in the previews'
/// foundation: `preview_task_roles`).
pub(super) fn add_roles(
    t: &mut Template,
    cx: &Ctx<'_>,
    svc: &Service,
    key: &Value,
    tg: &Value,
    tracing: bool,
) {
    if cx.is_preview() {
        return;
    }
    let n = &cx.names;
    let name = &svc.name;
    let boundary = import(&n.export("RoleBoundaryArn"));
    let mut task = Vec::new();
    if !svc.queues.is_empty() {
        let mut arns = Vec::new();
        for q in &svc.queues {
            arns.push(att(&queue_id(&q.name), "Arn"));
            if q.dead_letter.is_some() {
                arns.push(att(&dlq_id(&q.name), "Arn"));
            }
        }
        task.push(allow("OwnQueues", iam::QUEUE_ACTIONS, arns));
    }
    if !svc.buckets.is_empty() {
        let buckets: Vec<Value> = svc
            .buckets
            .iter()
            .map(|b| att(&bucket_id(&b.name), "Arn"))
            .collect();
        let objects: Vec<Value> = buckets
            .iter()
            .map(|b| join("", vec![b.clone(), json!("/*")]))
            .collect();
        task.push(allow("ListOwnBuckets", iam::BUCKET_ACTIONS, buckets));
        task.push(allow("OwnObjects", iam::OBJECT_ACTIONS, objects));
    }
    if svc.secrets.iter().any(|s| s.from.is_none()) {
        // Secrets arrive as environment variables at task start; the code may also
        // re-read its own parameters (after a rotation) without a restart.
        let path = n.ssm_path(name);
        task.push(allow(
            "ReadOwnParameters",
            iam::PARAMETER_ACTIONS,
            vec![
                arn(&format!(
                    "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{path}"
                )),
                arn(&format!(
                    "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{path}/*"
                )),
            ],
        ));
    }
    // What other services' grants allow it (their queue and bucket policies allow
    // this role; within one account the role's own policy must allow it too).
    let used = used_grants(cx, svc);
    for (owner, name, section, access) in &used {
        let (on_resource, on_objects) = iam::grant_actions(*access);
        if *section == "queues" {
            let fifo = owner_queue(cx, owner, name).is_some_and(|q| q.fifo);
            let mut arns = vec![arn(&format!(
                "sqs:${{AWS::Region}}:${{AWS::AccountId}}:{}",
                n.queue(owner, name, false, fifo)
            ))];
            if owner_queue(cx, owner, name).is_some_and(|q| q.dead_letter.is_some()) {
                arns.push(arn(&format!(
                    "sqs:${{AWS::Region}}:${{AWS::AccountId}}:{}",
                    n.queue(owner, name, true, fifo)
                )));
            }
            task.push(allow(
                &logical(&["granted", owner, name, "queue"]),
                &on_resource,
                arns,
            ));
        } else {
            let bucket = json!({ "Fn::Sub": [
                "arn:${AWS::Partition}:s3:::${Bucket}",
                { "Bucket": { "Fn::ImportValue": bucket_export(cx, owner, name) } },
            ] });
            let objects = json!({ "Fn::Sub": [
                "arn:${AWS::Partition}:s3:::${Bucket}/*",
                { "Bucket": { "Fn::ImportValue": bucket_export(cx, owner, name) } },
            ] });
            task.push(allow(
                &logical(&["granted", owner, name, "bucket"]),
                &on_resource,
                vec![bucket],
            ));
            if !on_objects.is_empty() {
                task.push(allow(
                    &logical(&["granted", owner, name, "objects"]),
                    &on_objects,
                    vec![objects],
                ));
            }
        }
    }
    if !svc.queues.is_empty()
        || !svc.buckets.is_empty()
        || !svc.secrets.is_empty()
        || !used.is_empty()
    {
        task.push(allow(
            "EncryptOwnData",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            vec![key.clone()],
        ));
    }
    // Custom metrics, into its own namespace only.
    task.push(json!({
        "Sid": "PutOwnMetrics",
        "Effect": "Allow",
        "Action": iam::METRICS_ACTIONS,
        "Resource": "*",
        "Condition": { "StringEquals": { iam::METRICS_KEY: n.metrics_namespace(name) } },
    }));
    if tracing {
        task.push(tracing_statement());
    }
    let mut task_role = json!({
        "RoleName": sub(&task_role_name(cx, name)),
        "Description": format!("{name}'s code calls AWS as this role: only its own queues, buckets and key"),
        "AssumeRolePolicyDocument": crate::cfn::assume_by("ecs-tasks.amazonaws.com"),
        "PermissionsBoundary": boundary.clone(),
        "Tags": tg.clone(),
    });
    if !task.is_empty() {
        task_role["Policies"] = json!([{ "PolicyName": "task", "PolicyDocument": policy(task) }]);
    }
    t.resource("TaskRole", "AWS::IAM::Role", task_role);
}

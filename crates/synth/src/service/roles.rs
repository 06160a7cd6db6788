//! A service's IAM roles: the execution role ECS pulls images, writes logs and
//! reads secrets as, and the task role its code calls AWS as (its own queues,
//! buckets, parameters and key, and what other services granted it).

use super::refs::{bucket_export, owner_queue, used_grants};
use crate::Ctx;
use crate::cfn::{Template, allow, arn, att, import, join, policy, sub};
use crate::names::logical;
use crate::storage::{bucket_id, dlq_id, queue_id};
use pantstack_model::iam;
use pantstack_model::service::Service;
use serde_json::{Value, json};

/// The execution role and the task role.
pub(super) fn add_roles(
    t: &mut Template,
    cx: &Ctx<'_>,
    svc: &Service,
    key: &Value,
    tg: &Value,
    tracing: bool,
) {
    let n = &cx.names;
    let name = &svc.name;
    let boundary = import(&n.export("RoleBoundaryArn"));
    let registry = &cx.repo.foundation.registry;
    let mut exec = vec![
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
            vec![att("LogGroup", "Arn")],
        ),
    ];
    if svc.secrets.iter().any(|s| s.from.is_none()) {
        exec.push(allow(
            "ReadOwnSecrets",
            &["ssm:GetParameters"],
            vec![arn(&format!(
                "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{}/*",
                n.ssm_path(name)
            ))],
        ));
    }
    // Secrets other services granted (`from:`): exactly those parameters.
    let taken: Vec<Value> = svc
        .secrets
        .iter()
        .filter_map(|s| {
            s.from.as_ref().map(|f| {
                arn(&format!(
                    "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{}/{}",
                    n.ssm_path(&f.value),
                    s.name
                ))
            })
        })
        .collect();
    if !taken.is_empty() {
        exec.push(allow("ReadGrantedSecrets", &["ssm:GetParameters"], taken));
    }
    if !svc.secrets.is_empty() {
        exec.push(allow(
            "DecryptOwnSecrets",
            &["kms:Decrypt"],
            vec![key.clone()],
        ));
    }
    t.resource(
        "ExecutionRole",
        "AWS::IAM::Role",
        json!({
            "RoleName": sub(&n.role(&format!("{name}-execution"))),
            "Description": format!("ECS pulls {name}'s image, writes its logs and reads its secrets as this role"),
            "AssumeRolePolicyDocument": crate::cfn::assume_by("ecs-tasks.amazonaws.com"),
            "PermissionsBoundary": boundary.clone(),
            "Policies": [{ "PolicyName": "execution", "PolicyDocument": policy(exec) }],
            "Tags": tg.clone(),
        }),
    );
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
        task.push(allow(
            "Tracing",
            &[
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
            ],
            vec![json!("*")],
        ));
    }
    let mut task_role = json!({
        "RoleName": sub(&n.role(&format!("{name}-task"))),
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

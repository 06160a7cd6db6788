//! Queues (SQS + DLQ) and buckets (S3) of a service, and the replica stack of
//! buckets replicated to another region.

use crate::Ctx;
use crate::cfn::{
    Template, allow, arn, att, deny_insecure_transport, import, join, policy, r, sub, tags,
};
use crate::names::logical;
use crate::skips;
use pantstack_model::service::{Bucket, Service};
use serde_json::{Value, json};

pub fn queue_id(q: &str) -> String {
    logical(&[q, "Queue"])
}

pub fn dlq_id(q: &str) -> String {
    logical(&[q, "DeadLetterQueue"])
}

pub fn bucket_id(b: &str) -> String {
    logical(&[b, "Bucket"])
}

/// ARN of a queue by its name (no `GetAtt`: the DLQ's redrive-allow policy names
/// its source queue, which names the DLQ).
fn queue_arn(name: &str) -> Value {
    arn(&format!("sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}"))
}

pub fn add_queues(t: &mut Template, cx: &Ctx<'_>, svc: &Service, key: &Value) {
    let n = &cx.names;
    for q in &svc.queues {
        let name = n.queue(&svc.name, &q.name, false, q.fifo);
        let mut props = json!({
            "QueueName": name,
            "VisibilityTimeout": q.visibility_timeout_secs,
            "MessageRetentionPeriod": q.retention_secs,
            "DelaySeconds": q.delay_secs,
            "ReceiveMessageWaitTimeSeconds": q.receive_wait_secs,
            "MaximumMessageSize": q.max_message_bytes,
            "KmsMasterKeyId": key.clone(),
            "KmsDataKeyReusePeriodSeconds": 300,
            "Tags": tags(cx.project(), cx.env, Some(&svc.name), None),
        });
        if q.fifo {
            props["FifoQueue"] = json!(true);
            props["ContentBasedDeduplication"] = json!(q.content_based_deduplication);
        }
        let mut policy_targets = vec![r(&queue_id(&q.name))];
        if let Some(d) = &q.dead_letter {
            let dlq_name = n.queue(&svc.name, &q.name, true, q.fifo);
            props["RedrivePolicy"] = json!({
                "deadLetterTargetArn": att(&dlq_id(&q.name), "Arn"),
                "maxReceiveCount": d.max_receive_count,
            });
            let mut dlq = json!({
                "QueueName": dlq_name,
                "MessageRetentionPeriod": d.retention_secs,
                "KmsMasterKeyId": key.clone(),
                "KmsDataKeyReusePeriodSeconds": 300,
                "RedriveAllowPolicy": {
                    "redrivePermission": "byQueue",
                    "sourceQueueArns": [queue_arn(&name)],
                },
                "Tags": tags(cx.project(), cx.env, Some(&svc.name), None),
            });
            if q.fifo {
                dlq["FifoQueue"] = json!(true);
            }
            t.resource(&dlq_id(&q.name), "AWS::SQS::Queue", dlq);
            policy_targets.push(r(&dlq_id(&q.name)));
        }
        t.resource(&queue_id(&q.name), "AWS::SQS::Queue", props);
        let arns: Vec<Value> = policy_targets
            .iter()
            .map(|v| match v.get("Ref").and_then(Value::as_str) {
                Some(id) => att(id, "Arn"),
                None => v.clone(),
            })
            .collect();
        let mut statements = vec![deny_insecure_transport(arns.clone(), "sqs:*")];
        if cx.is_preview() {
            statements.push(allow_task_role(
                cx,
                "OwnService",
                &svc.name,
                pantstack_model::iam::QUEUE_ACTIONS,
                arns.clone(),
            ));
        }
        for g in &q.grants {
            let (actions, _) = pantstack_model::iam::grant_actions(g.access);
            statements.push(allow_task_role(
                cx,
                &logical(&["grant", &g.to.value]),
                &g.to.value,
                &actions,
                arns.clone(),
            ));
        }
        t.resource(
            &logical(&[&q.name, "QueuePolicy"]),
            "AWS::SQS::QueuePolicy",
            json!({
                "Queues": policy_targets,
                "PolicyDocument": policy(statements),
            }),
        );
    }
}

/// The properties shared by source and replica buckets.
fn bucket_props(
    b: &Bucket,
    key: Value,
    versioning: bool,
    project: &str,
    env: &str,
    service: &str,
) -> Value {
    let mut rules = vec![json!({
        "Id": "abort-incomplete-multipart-uploads",
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 7 },
    })];
    if versioning && let Some(days) = b.noncurrent_expiry_days {
        rules.push(json!({
            "Id": "expire-noncurrent-versions",
            "Status": "Enabled",
            "NoncurrentVersionExpiration": { "NoncurrentDays": days },
            "ExpiredObjectDeleteMarker": true,
        }));
    }
    json!({
        "VersioningConfiguration": { "Status": if versioning { "Enabled" } else { "Suspended" } },
        "BucketEncryption": { "ServerSideEncryptionConfiguration": [{
            "ServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key },
            "BucketKeyEnabled": true,
        }] },
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": true, "BlockPublicPolicy": true,
            "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
        },
        "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
        "LifecycleConfiguration": { "Rules": rules },
        "Tags": tags(project, env, Some(service), None),
    })
}

/// An access-log bucket (ALB and S3 server access logs): SSE-S3, which is all ALB
/// log delivery supports; logs expire after 90 days.
pub fn log_bucket_props(tags: Value, abort_multipart_days: Option<u32>) -> Value {
    let mut rule = json!({
        "Id": "expire-access-logs",
        "Status": "Enabled",
        "ExpirationInDays": 90,
        "NoncurrentVersionExpiration": { "NoncurrentDays": 7 },
    });
    if let Some(d) = abort_multipart_days {
        rule["AbortIncompleteMultipartUpload"] = json!({ "DaysAfterInitiation": d });
    }
    json!({
        "BucketEncryption": { "ServerSideEncryptionConfiguration": [
            { "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" } }
        ] },
        "VersioningConfiguration": { "Status": "Enabled" },
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": true, "BlockPublicPolicy": true,
            "IgnorePublicAcls": true, "RestrictPublicBuckets": true
        },
        "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
        "LifecycleConfiguration": { "Rules": [rule] },
        "Tags": tags,
    })
}

/// A resource-policy statement allowing `service`'s task role. In a long-lived
/// environment the principal is the account, conditioned on the role's ARN (the
/// grantee's role may not exist yet; its own policy must allow it too). In a
/// preview it is the role itself, the one every preview of `service` shares (in
/// the previews' foundation, so it exists): the resource policy alone allows it,
/// within the role's permissions boundary, for exactly this preview's resource.
fn allow_task_role(
    cx: &Ctx<'_>,
    sid: &str,
    service: &str,
    actions: &[&str],
    resources: Vec<Value>,
) -> Value {
    let role = crate::service::task_role_name(cx, service);
    if !cx.is_preview() {
        return crate::cfn::allow_role(sid, &role, actions, resources);
    }
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "AWS": crate::service::role_arn(&role) },
        "Action": actions,
        "Resource": resources,
    })
}

/// A bucket's policy: TLS only, what its `grants:` allow other services, and in
/// a preview what its own service's (shared) task role may do.
fn bucket_policy(
    t: &mut Template,
    cx: &Ctx<'_>,
    owner: Option<&str>,
    id: &str,
    bucket: &str,
    grants: &[pantstack_model::service::Grant],
) {
    let arn_v = att(bucket, "Arn");
    let objects = join("", vec![arn_v.clone(), json!("/*")]);
    let mut statements = vec![deny_insecure_transport(
        vec![arn_v.clone(), objects.clone()],
        "s3:*",
    )];
    if let Some(owner) = owner.filter(|_| cx.is_preview()) {
        statements.push(allow_task_role(
            cx,
            "OwnServiceBucket",
            owner,
            pantstack_model::iam::BUCKET_ACTIONS,
            vec![arn_v.clone()],
        ));
        statements.push(allow_task_role(
            cx,
            "OwnServiceObjects",
            owner,
            pantstack_model::iam::OBJECT_ACTIONS,
            vec![objects.clone()],
        ));
    }
    for g in grants {
        let (on_bucket, on_objects) = pantstack_model::iam::grant_actions(g.access);
        statements.push(allow_task_role(
            cx,
            &logical(&["grant", &g.to.value, "bucket"]),
            &g.to.value,
            &on_bucket,
            vec![arn_v.clone()],
        ));
        if !on_objects.is_empty() {
            statements.push(allow_task_role(
                cx,
                &logical(&["grant", &g.to.value, "objects"]),
                &g.to.value,
                &on_objects,
                vec![objects.clone()],
            ));
        }
    }
    t.resource(
        id,
        "AWS::S3::BucketPolicy",
        json!({
            "Bucket": r(bucket),
            "PolicyDocument": policy(statements),
        }),
    );
}

pub fn add_buckets(t: &mut Template, cx: &Ctx<'_>, svc: &Service, key: &Value) {
    let n = &cx.names;
    let project = cx.project();
    for b in &svc.buckets {
        let id = bucket_id(&b.name);
        let mut props = bucket_props(b, key.clone(), b.versioning, project, cx.env, &svc.name);
        props["LoggingConfiguration"] = json!({
            "DestinationBucketName": import(&n.export("AccessLogBucket")),
            "LogFilePrefix": format!("s3/{}/{}/", svc.name, b.name),
        });
        if let Some(region) = &b.replication_region {
            let role = logical(&[&b.name, "ReplicationRole"]);
            let dest = sub(&format!(
                "arn:${{AWS::Partition}}:s3:::{}-${{AWS::AccountId}}",
                n.replica_bucket(&svc.name, &b.name)
            ));
            let source = att(&id, "Arn");
            let replica_key_arn_pattern = arn(&format!("kms:{region}:${{AWS::AccountId}}:key/*"));
            props["ReplicationConfiguration"] = json!({
                "Role": att(&role, "Arn"),
                "Rules": [{
                    "Id": "disaster-recovery",
                    "Status": "Enabled",
                    "Priority": 1,
                    "Filter": { "Prefix": "" },
                    "DeleteMarkerReplication": { "Status": "Enabled" },
                    "SourceSelectionCriteria": { "SseKmsEncryptedObjects": { "Status": "Enabled" } },
                    "Destination": {
                        "Bucket": dest.clone(),
                        "EncryptionConfiguration": {
                            "ReplicaKmsKeyID": arn(&format!("kms:{region}:${{AWS::AccountId}}:{}", cx.names.replica_kms_alias(&svc.name))),
                        },
                    },
                }],
            });
            // Role, bucket, then the role's policy (it names the bucket, which names
            // the role): no dependency cycle.
            t.resource(
                &role,
                "AWS::IAM::Role",
                json!({
                    "RoleName": sub(&n.role(&format!("{}-{}-replication", svc.name, b.name))),
                    "Description": format!("S3 replicates {}'s bucket {} to {region} as this role", svc.name, b.name),
                    "AssumeRolePolicyDocument": crate::cfn::assume_by("s3.amazonaws.com"),
                    "PermissionsBoundary": import(&n.export("RoleBoundaryArn")),
                    "Tags": tags(project, cx.env, Some(&svc.name), None),
                }),
            );
            t.resource(
                &logical(&[&b.name, "ReplicationPolicy"]),
                "AWS::IAM::RolePolicy",
                json!({
                    "RoleName": r(&role),
                    "PolicyName": "replicate",
                    "PolicyDocument": policy(vec![
                        allow("ReadSourceConfiguration", &["s3:GetReplicationConfiguration", "s3:ListBucket"], vec![source.clone()]),
                        allow("ReadSourceVersions", &["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"], vec![join("", vec![source.clone(), json!("/*")])]),
                        allow("WriteReplica", &["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"], vec![join("", vec![dest.clone(), json!("/*")])]),
                        allow("DecryptSource", &["kms:Decrypt"], vec![key.clone()]),
                        json!({
                            "Sid": "EncryptReplica",
                            "Effect": "Allow",
                            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                            "Resource": [replica_key_arn_pattern],
                            "Condition": { "ForAnyValue:StringEquals": { "kms:ResourceAliases": cx.names.replica_kms_alias(&svc.name) } },
                        }),
                    ]),
                }),
            );
        }
        let res = t.resource(&id, "AWS::S3::Bucket", props);
        let res = if cx.is_preview() { res } else { res.retain() };
        if !b.versioning {
            res.skip(&[skips::BUCKET_VERSIONING_OFF]);
        }
        bucket_policy(
            t,
            cx,
            Some(&svc.name),
            &logical(&[&b.name, "BucketPolicy"]),
            &id,
            &b.grants,
        );
    }
}

/// The replica stack of a service whose buckets replicate to another region (one
/// region per service; checked before synthesis).
pub fn replica_template(cx: &Ctx<'_>, svc: &Service) -> Option<(String, Template)> {
    let region = svc
        .buckets
        .iter()
        .find_map(|b| b.replication_region.clone())?;
    let n = &cx.names;
    let project = cx.project();
    let env = cx.env;
    let mut t = Template::new(format!(
        "Pantstack {project}/{env}/{}: replicas of its buckets (disaster recovery)",
        svc.name
    ));
    t.resource(
        "ReplicaKey",
        "AWS::KMS::Key",
        json!({
            "Description": format!("Pantstack {project}/{env}: bucket replicas"),
            "EnableKeyRotation": true,
            "PendingWindowInDays": 30,
            "KeyPolicy": policy(vec![json!({
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": { "AWS": arn("iam::${AWS::AccountId}:root") },
                "Action": "kms:*",
                "Resource": "*",
            })]),
            "Tags": tags(project, env, Some(&svc.name), None),
        }),
    )
    .retain();
    t.resource(
        "ReplicaKeyAlias",
        "AWS::KMS::Alias",
        json!({ "AliasName": cx.names.replica_kms_alias(&svc.name), "TargetKeyId": r("ReplicaKey") }),
    );
    t.resource(
        "ReplicaAccessLogs",
        "AWS::S3::Bucket",
        log_bucket_props(tags(project, env, Some(&svc.name), None), None),
    )
    .retain()
    .skip(&[skips::LOG_BUCKET_SELF_LOGGING]);
    let logs_arn = att("ReplicaAccessLogs", "Arn");
    t.resource(
        "ReplicaAccessLogsPolicy",
        "AWS::S3::BucketPolicy",
        json!({
            "Bucket": r("ReplicaAccessLogs"),
            "PolicyDocument": policy(vec![
                deny_insecure_transport(vec![logs_arn.clone(), join("", vec![logs_arn.clone(), json!("/*")])], "s3:*"),
                json!({
                    "Sid": "S3ServerAccessLogs",
                    "Effect": "Allow",
                    "Principal": { "Service": "logging.s3.amazonaws.com" },
                    "Action": "s3:PutObject",
                    "Resource": join("", vec![logs_arn, json!("/s3/*")]),
                    "Condition": { "StringEquals": { "aws:SourceAccount": r("AWS::AccountId") } },
                }),
            ]),
        }),
    );
    for b in svc
        .buckets
        .iter()
        .filter(|b| b.replication_region.is_some())
    {
        let id = logical(&[&b.name, "Replica"]);
        let mut props = bucket_props(b, att("ReplicaKey", "Arn"), true, project, env, &svc.name);
        props["BucketName"] = sub(&format!(
            "{}-${{AWS::AccountId}}",
            n.replica_bucket(&svc.name, &b.name)
        ));
        props["LoggingConfiguration"] = json!({
            "DestinationBucketName": r("ReplicaAccessLogs"),
            "LogFilePrefix": format!("s3/{}/{}/", svc.name, b.name),
        });
        t.resource(&id, "AWS::S3::Bucket", props).retain();
        bucket_policy(
            &mut t,
            cx,
            None,
            &logical(&[&b.name, "ReplicaPolicy"]),
            &id,
            &[],
        );
    }
    Some((region, t))
}

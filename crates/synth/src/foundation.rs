//! The foundation stack of an environment `{project}-{env}-foundation`: VPC over
//! several AZs with flow logs, the NAT tier, optional VPC endpoints, the
//! environment's KMS key, the access-log bucket, the CI role trusted through GitHub
//! OIDC, the role CloudFormation deploys service stacks with, the ECS execution
//! role of every task of the environment and, in the previews' foundation, the
//! task role each service's previews share (`service::roles`).

use crate::cfn::{
    Template, allow, arn, assume_by, att, deny_insecure_transport, if_, import, join, no_value,
    policy, r, sub, tags,
};
use crate::skips;
use crate::{Ctx, network};
use serde_json::{Value, json};

/// Regions older than August 2022 deliver ALB access logs from these accounts;
/// newer regions use the `logdelivery.elasticloadbalancing.amazonaws.com` principal.
/// (A lookup keyed by `AWS::Region`, so the template itself names no region.)
const ELB_LOG_ACCOUNTS: &[(&str, &str)] = &[
    ("af-south-1", "098369216593"),
    ("ap-east-1", "754344448648"),
    ("ap-northeast-1", "582318560864"),
    ("ap-northeast-2", "600734575887"),
    ("ap-northeast-3", "383597477331"),
    ("ap-south-1", "718504428378"),
    ("ap-southeast-1", "114774131450"),
    ("ap-southeast-2", "783225319266"),
    ("ca-central-1", "985666609251"),
    ("eu-central-1", "054676820928"),
    ("eu-north-1", "897822967062"),
    ("eu-south-1", "635631232127"),
    ("eu-west-1", "156460612806"),
    ("eu-west-2", "652711504416"),
    ("eu-west-3", "009996457667"),
    ("me-south-1", "076674570225"),
    ("sa-east-1", "507241528517"),
    ("us-east-1", "127311923021"),
    ("us-east-2", "033677994240"),
    ("us-gov-east-1", "190560391635"),
    ("us-gov-west-1", "048591011584"),
    ("us-west-1", "027434742980"),
    ("us-west-2", "797873946194"),
];

/// Interface endpoints created with `vpcEndpoints: true` (the S3 gateway endpoint
/// is added besides): what a task needs without a NAT gateway.
pub const INTERFACE_ENDPOINTS: &[&str] = &["ecr.api", "ecr.dkr", "logs", "ssm", "sqs"];

pub fn template(cx: &Ctx<'_>, layout: &network::Layout) -> Template {
    let project = cx.project();
    let env = cx.names.base;
    let n = &cx.names;
    let mut t = Template::new(format!(
        "Pantstack {project}/{env}: VPC, flow logs, KMS key, access-log bucket, CI, deploy and execution roles"
    ));
    let tg = |name: Option<&str>| tags(project, env, None, name);

    // KMS key of the environment: queues, buckets, log groups and SecureString
    // parameters are encrypted under it.
    let log_groups: Vec<Value> = n
        .log_scopes()
        .iter()
        .map(|p| {
            arn(&format!(
                "logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{p}"
            ))
        })
        .collect();
    t.resource(
        "Key",
        "AWS::KMS::Key",
        json!({
            "Description": format!("Pantstack {project}/{env}: queues, buckets, logs and secrets"),
            "EnableKeyRotation": true,
            "PendingWindowInDays": 30,
            "KeyPolicy": policy(vec![
                json!({
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": { "AWS": arn("iam::${AWS::AccountId}:root") },
                    "Action": "kms:*",
                    "Resource": "*"
                }),
                json!({
                    "Sid": "CloudWatchLogsOfThisEnvironment",
                    "Effect": "Allow",
                    "Principal": { "Service": sub("logs.${AWS::Region}.amazonaws.com") },
                    "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                    "Resource": "*",
                    "Condition": { "ArnLike": { "kms:EncryptionContext:aws:logs:arn": log_groups } }
                }),
            ]),
            "Tags": tg(None),
        }),
    )
    .retain();
    t.resource(
        "KeyAlias",
        "AWS::KMS::Alias",
        json!({ "AliasName": n.kms_alias(), "TargetKeyId": r("Key") }),
    );

    network::vpc(&mut t, cx, layout);

    // Access logs of the load balancers and of the service buckets. ALB log
    // delivery supports only SSE-S3.
    let legacy: Vec<Value> = ELB_LOG_ACCOUNTS
        .iter()
        .map(|(region, _)| json!({ "Fn::Equals": [r("AWS::Region"), region] }))
        .collect();
    let mut ors: Vec<Value> = Vec::new();
    for (i, chunk) in legacy.chunks(10).enumerate() {
        let name = format!("LegacyElbRegion{i}");
        t.condition(&name, json!({ "Fn::Or": chunk }));
        ors.push(json!({ "Condition": name }));
    }
    t.condition("LegacyElbRegion", json!({ "Fn::Or": ors }));
    let mut accounts = serde_json::Map::new();
    for (region, account) in ELB_LOG_ACCOUNTS {
        accounts.insert(region.to_string(), json!({ "Account": account }));
    }
    t.mapping("ElbLogDelivery", Value::Object(accounts));
    t.resource(
        "AccessLogs",
        "AWS::S3::Bucket",
        crate::storage::log_bucket_props(tg(None), Some(1)),
    )
    .retain()
    .skip(&[skips::LOG_BUCKET_SELF_LOGGING]);
    let logs_arn = att("AccessLogs", "Arn");
    let objects = join("", vec![logs_arn.clone(), json!("/*")]);
    let account_cond = json!({ "StringEquals": { "aws:SourceAccount": r("AWS::AccountId") } });
    t.resource(
        "AccessLogsPolicy",
        "AWS::S3::BucketPolicy",
        json!({
            "Bucket": r("AccessLogs"),
            "PolicyDocument": policy(vec![
                deny_insecure_transport(vec![logs_arn.clone(), objects.clone()], "s3:*"),
                json!({
                    "Sid": "LoadBalancerLogDelivery",
                    "Effect": "Allow",
                    "Principal": { "Service": "logdelivery.elasticloadbalancing.amazonaws.com" },
                    "Action": "s3:PutObject",
                    "Resource": join("", vec![logs_arn.clone(), json!("/alb/*")]),
                }),
                if_("LegacyElbRegion", json!({
                    "Sid": "LoadBalancerLogDeliveryLegacyRegion",
                    "Effect": "Allow",
                    "Principal": { "AWS": { "Fn::Sub": [
                        "arn:${AWS::Partition}:iam::${Account}:root",
                        { "Account": { "Fn::FindInMap": ["ElbLogDelivery", r("AWS::Region"), "Account"] } }
                    ] } },
                    "Action": "s3:PutObject",
                    "Resource": join("", vec![logs_arn.clone(), json!("/alb/*")]),
                }), no_value()),
                json!({
                    "Sid": "S3ServerAccessLogs",
                    "Effect": "Allow",
                    "Principal": { "Service": "logging.s3.amazonaws.com" },
                    "Action": "s3:PutObject",
                    "Resource": join("", vec![logs_arn.clone(), json!("/s3/*")]),
                    "Condition": account_cond,
                }),
            ]),
        }),
    );

    roles(&mut t, cx);
    crate::service::execution_role(&mut t, cx, log_groups_for_tasks(cx), ssm_for_tasks(cx));
    if cx.is_preview() {
        crate::service::preview_task_roles(&mut t, cx);
    }

    let export = |t: &mut Template, name: &str, v: Value| {
        t.output(name, v, Some(&n.export(name)));
    };
    // ECS Service Connect's namespace (`calls:`), whether or not a service calls
    // another yet: only `bootstrap` deploys the foundation, so it must not change
    // when a service adds or drops a call (a Cloud Map HTTP namespace costs nothing).
    {
        t.resource(
            "ServiceConnectNamespace",
            "AWS::ServiceDiscovery::HttpNamespace",
            json!({
                "Name": format!("{}-{}", cx.project(), cx.names.base),
                "Description": "ECS Service Connect: services reach the services they call by name",
                "Tags": crate::cfn::tags(cx.project(), cx.names.base, None, None),
            }),
        );
        export(
            &mut t,
            "ServiceConnectNamespace",
            att("ServiceConnectNamespace", "Arn"),
        );
    }
    export(&mut t, "KeyArn", att("Key", "Arn"));
    export(&mut t, "AccessLogBucket", r("AccessLogs"));
    export(&mut t, "VpcId", r("Vpc"));
    export(&mut t, "VpcCidr", att("Vpc", "CidrBlock"));
    export(
        &mut t,
        "PublicSubnetIds",
        join(
            ",",
            (0..layout.azs)
                .map(|i| r(&format!("PublicSubnet{i}")))
                .collect(),
        ),
    );
    export(
        &mut t,
        "PrivateSubnetIds",
        join(
            ",",
            (0..layout.azs)
                .map(|i| r(&format!("PrivateSubnet{i}")))
                .collect(),
        ),
    );
    t
}

/// The log groups of the environment's tasks (every preview's, in the previews'
/// foundation).
fn log_groups_for_tasks(cx: &Ctx<'_>) -> Vec<Value> {
    cx.names
        .log_scopes()
        .iter()
        .map(|p| {
            arn(&format!(
                "logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{p}"
            ))
        })
        .collect()
}

/// The environment's SecureString parameters: `/{project}/{env}/*`, or every
/// preview's `/{project}/preview-*` (never the declared preview values under
/// `/{project}/preview/`, which only `preview up` copies).
fn ssm_for_tasks(cx: &Ctx<'_>) -> Vec<Value> {
    cx.names
        .ssm_scopes()
        .iter()
        .map(|p| {
            arn(&format!(
                "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{p}"
            ))
        })
        .collect()
}

/// The GitHub OIDC `sub` claims allowed to assume the environment's CI role.
pub fn ci_subjects(cx: &Ctx<'_>, owner: &str, repo: &str) -> Vec<String> {
    let base = format!("repo:{owner}/{repo}");
    if cx.is_preview() {
        // Pull-request jobs, and the jobs of the GitHub environment `preview` (the
        // scheduled gc of idle previews).
        return vec![
            format!("{base}:pull_request"),
            format!(
                "{base}:environment:{}",
                pantstack_model::foundation::PREVIEW_STACK
            ),
        ];
    }
    // Only jobs of the GitHub environment of the same name: its protection rules
    // (required reviewers on prod) then stand between a branch and the role. A
    // `ref:refs/heads/<branch>` subject would let any job on the branch assume it.
    vec![format!("{base}:environment:{}", cx.env)]
}

/// What the previews' CI role needs beyond an environment's (whose ListStacks
/// also finds the previews, for `preview list`/`gc` and the cap): giving a
/// preview its secrets (the declared preview values under `/{project}/preview/`,
/// copied to `/{project}/preview-<pr>/` under the previews' key) and tearing one
/// down (emptying its buckets, deleting its parameters; never images, see below).
fn preview_ci(cx: &Ctx<'_>, repo_arn: &Value) -> Vec<Value> {
    let n = &cx.names;
    let project = cx.project();
    let scope = n.scope();
    let param = |p: &str| {
        arn(&format!(
            "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{p}"
        ))
    };
    vec![
        allow(
            "ReadPreviewValues",
            &["ssm:GetParameter"],
            vec![param(&format!("{project}/{}/*", n.base))],
        ),
        allow(
            "PreviewParameters",
            &[
                "ssm:GetParameter",
                "ssm:PutParameter",
                "ssm:DeleteParameter",
                "ssm:DeleteParameters",
                "ssm:GetParametersByPath",
                "ssm:AddTagsToResource",
            ],
            vec![param(&format!("{project}/{}-*", n.base))],
        ),
        json!({
            "Sid": "PreviewKeyThroughSsm",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": att("Key", "Arn"),
            "Condition": { "StringEquals": { "kms:ViaService": sub("ssm.${AWS::Region}.amazonaws.com") } },
        }),
        allow(
            "EmptyPreviewBuckets",
            &["s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteBucket"],
            vec![arn(&format!("s3:::{scope}"))],
        ),
        allow(
            "DeletePreviewObjects",
            &["s3:DeleteObject", "s3:DeleteObjectVersion"],
            vec![arn(&format!("s3:::{scope}/*"))],
        ),
        // No ecr:BatchDeleteImage: the repository is every environment's, and a
        // pull request that could delete `api-main-<sha>` could push its own
        // build under that tag. A preview's images expire by the lifecycle rule.
        allow("ListImages", &["ecr:ListImages"], vec![repo_arn.clone()]),
    ]
}

/// The deploy role CloudFormation acts as, the permissions boundary every role of
/// the environment's service stacks carries, and the CI role (GitHub OIDC) when the
/// foundation names a GitHub repository.
fn roles(t: &mut Template, cx: &Ctx<'_>) {
    let project = cx.project();
    let env = cx.names.base;
    let n = &cx.names;
    let prefix = n.base_prefix();
    let scope = n.scope();
    let tg = tags(project, env, None, None);
    let log_arns = |ra: &str| -> Vec<Value> {
        n.log_scopes()
            .iter()
            .map(|p| arn(&format!("logs:{ra}:log-group:{p}")))
            .collect()
    };
    let ssm_arns: Vec<Value> = n
        .ssm_scopes()
        .iter()
        .map(|p| {
            arn(&format!(
                "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{p}"
            ))
        })
        .collect();
    let registry = &cx.repo.foundation.registry;
    let repo_arn = arn(&format!(
        "ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/{registry}"
    ));
    // The environment's stacks here, and its replica stacks in the regions its
    // buckets replicate to (`{project}-{env}-{service}-replica`, deployed by CI too).
    let mut replica_regions: Vec<&str> = cx
        .repo
        .services
        .iter()
        .flat_map(|u| &u.service.buckets)
        .filter_map(|b| b.replication_region.as_deref())
        .collect();
    replica_regions.sort_unstable();
    replica_regions.dedup();
    let mut stacks = vec![arn(&format!(
        "cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{scope}/*"
    ))];
    for region in &replica_regions {
        stacks.push(arn(&format!(
            "cloudformation:{region}:${{AWS::AccountId}}:stack/{scope}-replica/*"
        )));
    }

    let deploy_role_arn = arn(&format!(
        "iam::${{AWS::AccountId}}:role/{}",
        n.base_role("deploy")
    ));
    let project_roles = arn(&format!("iam::${{AWS::AccountId}}:role/{scope}"));
    // The foundation's own roles (and, for previews, the task roles every
    // preview shares), which service stacks never manage.
    let mut foundation_roles: Vec<Value> = ["ci", "deploy", "execution", "flow-logs"]
        .iter()
        .map(|r| arn(&format!("iam::${{AWS::AccountId}}:role/{}", n.base_role(r))))
        .collect();
    if cx.is_preview() {
        foundation_roles.push(arn(&format!(
            "iam::${{AWS::AccountId}}:role/{}-*-task-*",
            n.base_prefix()
        )));
    }
    let boundary_arn = arn(&format!(
        "iam::${{AWS::AccountId}}:policy/{}",
        n.base_role("boundary")
    ));
    let elb = cx.names.elb_pattern();
    let any_region_key = arn("kms:*:${AWS::AccountId}:key/*");

    // What any role of a service stack may ever do (tasks, execution, replication,
    // the ECS infrastructure role of blue/green deployments).
    t.resource(
        "RoleBoundary",
        "AWS::IAM::ManagedPolicy",
        json!({
            "ManagedPolicyName": sub(&n.base_role("boundary")),
            "Description": format!("Permissions boundary of every role in {prefix} service stacks"),
            "PolicyDocument": policy(vec![
                allow("PullImages", &["ecr:GetAuthorizationToken"], vec![json!("*")]),
                allow("PullFromRepository", &["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], vec![repo_arn.clone()]),
                allow("WriteLogs", &["logs:CreateLogStream", "logs:PutLogEvents"], log_arns("${AWS::Region}:${AWS::AccountId}")),
                allow("ReadParameters", &["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"], ssm_arns.clone()),
                // The environment's keys only (the foundation's and its replica
                // stacks', in any region), known by their tags: replica keys'
                // ARNs are not known here.
                json!({
                    "Sid": "UseKeys",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    "Resource": [any_region_key.clone()],
                    "Condition": {
                        "StringEquals": { "aws:ResourceTag/pantstack:project": project },
                        "StringLike": { "aws:ResourceTag/pantstack:environment": [n.base.to_string(), format!("{}-*", n.base)] },
                    },
                }),
                allow("Queues", &[
                    "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
                ], vec![arn(&format!("sqs:${{AWS::Region}}:${{AWS::AccountId}}:{scope}"))]),
                allow("Buckets", &[
                    "s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation", "s3:GetReplicationConfiguration",
                    "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
                    "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
                    "s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
                    "s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags",
                ], vec![
                    arn(&format!("s3:::{scope}")),
                ]),
                json!({
                    "Sid": "PutMetrics",
                    "Effect": "Allow",
                    "Action": pantstack_model::iam::METRICS_ACTIONS,
                    "Resource": "*",
                    "Condition": { "StringLike": { pantstack_model::iam::METRICS_KEY: n.ssm_scopes() } },
                }),
                allow("Tracing", &["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"], vec![json!("*")]),
                allow("DescribeLoadBalancing", &["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth"], vec![json!("*")]),
                allow("ShiftTraffic", &["elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyRule", "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"], vec![
                    arn(&format!("elasticloadbalancing:${{AWS::Region}}:${{AWS::AccountId}}:listener/app/{elb}*/*")),
                    arn(&format!("elasticloadbalancing:${{AWS::Region}}:${{AWS::AccountId}}:listener-rule/app/{elb}*/*")),
                    arn(&format!("elasticloadbalancing:${{AWS::Region}}:${{AWS::AccountId}}:targetgroup/{elb}*/*")),
                ]),
            ]),
        }),
    );

    // CloudFormation's role for this environment's stacks.
    let region_account = "${AWS::Region}:${AWS::AccountId}";
    let ecs = |rest: &str| arn(&format!("ecs:{region_account}:{rest}"));
    let elbv2 = |rest: &str| arn(&format!("elasticloadbalancing:{region_account}:{rest}"));
    let vpc_arn = sub(&format!(
        "arn:${{AWS::Partition}}:ec2:{region_account}:vpc/${{Vpc}}"
    ));
    // Reads and lists on `*` (no resource-level permissions, or the handlers read
    // before they know the resource): a managed policy of their own, so the inline
    // policy stays under IAM's 10,240 characters per role.
    // The roles `bootstrap` creates match the service stacks' role scope too: a
    // template deployed through the deploy role (by CI) must not take them over
    // (importing one and rewriting whom it trusts or what it may do). In a
    // policy of its own: the role's inline policies are near IAM's 10,240
    // characters.
    t.resource(
        "DeployRoleGuard",
        "AWS::IAM::ManagedPolicy",
        json!({
            "Description": format!("What CloudFormation may never change while it deploys the {prefix} service stacks"),
            "PolicyDocument": policy(vec![json!({
                "Sid": "KeepTheFoundationsRoles",
                "Effect": "Deny",
                "Action": ["iam:Update*", "iam:Delete*", "iam:Put*", "iam:Attach*", "iam:Detach*", "iam:Tag*", "iam:Untag*"],
                "Resource": foundation_roles,
            })]),
        }),
    );
    t.resource(
        "DeployRoleReads",
        "AWS::IAM::ManagedPolicy",
        json!({
            "Description": format!("What CloudFormation reads while it deploys the {prefix} service stacks"),
            "PolicyDocument": policy(vec![
                allow("Describe", &[
                    "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeAccountAttributes",
                    "ec2:DescribeInternetGateways", "ec2:DescribeNetworkInterfaces",
                    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
                    "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
                    "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTags",
                    "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies",
                    "logs:DescribeLogGroups", "cloudwatch:DescribeAlarms", "kms:CreateKey", "events:ListRules",
                    // What the resource handlers read or list (their schemas' `handlers`).
                    "ec2:DescribeSecurityGroupRules", "ec2:DescribeInstances", "ec2:DescribeIpamPools",
                    "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeListenerAttributes",
                    "elasticloadbalancing:DescribeCapacityReservation",
                    "application-autoscaling:DescribeScheduledActions", "application-autoscaling:ListTagsForResource",
                    "cloudwatch:GetMetricData", "cloudwatch:ListTagsForResource", "cloudwatch:ListDashboards",
                    "logs:DescribeResourcePolicies", "logs:DescribeIndexPolicies",
                    "ecs:ListClusters", "ecs:ListServices", "ecs:ListTaskDefinitions", "ecs:ListTagsForResource",
                    "sqs:ListQueues", "s3:ListAllMyBuckets", "kms:ListKeys", "kms:ListAliases", "iam:ListRoles",
                ], vec![json!("*")]),
            ]),
        }),
    );
    t.resource(
        "DeployRole",
        "AWS::IAM::Role",
        json!({
            "RoleName": sub(&n.base_role("deploy")),
            "Description": format!("CloudFormation deploys the {prefix} service stacks as this role"),
            "AssumeRolePolicyDocument": assume_by("cloudformation.amazonaws.com"),
            "MaxSessionDuration": 3600,
            "ManagedPolicyArns": [r("DeployRoleReads"), r("DeployRoleGuard")],
            "Policies": [{
                "PolicyName": "deploy-service-stacks",
                "PolicyDocument": policy(vec![
                    allow("Clusters", &[
                        "ecs:CreateCluster", "ecs:DeleteCluster", "ecs:DescribeClusters", "ecs:UpdateCluster",
                        "ecs:UpdateClusterSettings", "ecs:PutClusterCapacityProviders", "ecs:TagResource", "ecs:UntagResource",
                    ], vec![ecs(&format!("cluster/{scope}"))]),
                    allow("Services", &[
                        "ecs:CreateService", "ecs:UpdateService", "ecs:DeleteService", "ecs:DescribeServices",
                        "ecs:TagResource", "ecs:UntagResource", "ecs:ListServiceDeployments",
                        "ecs:DescribeServiceDeployments", "ecs:StopServiceDeployment",
                    ], vec![ecs(&format!("service/{scope}/*")), ecs(&format!("service-deployment/{scope}/*"))]),
                    allow("TaskDefinitions", &[
                        "ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition",
                    ], vec![json!("*")]),
                    allow("TagTaskDefinitions", &["ecs:TagResource"], vec![ecs(&format!("task-definition/{scope}:*"))]),
                    allow("LoadBalancers", &[
                        "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
                        "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetSecurityGroups",
                        "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteTargetGroup",
                        "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
                        "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener", "elasticloadbalancing:ModifyListener",
                        "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyRule",
                        "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
                        "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyCapacityReservation",
                        "elasticloadbalancing:SetIpAddressType", "elasticloadbalancing:SetRulePriorities",
                        "elasticloadbalancing:SetSubnets", "elasticloadbalancing:RegisterTargets",
                        "elasticloadbalancing:DeregisterTargets",
                    ], vec![
                        elbv2(&format!("loadbalancer/app/{elb}*/*")),
                        elbv2(&format!("targetgroup/{elb}*/*")),
                        elbv2(&format!("listener/app/{elb}*/*")),
                        elbv2(&format!("listener-rule/app/{elb}*/*")),
                    ]),
                    allow("SecurityGroups", &["ec2:CreateSecurityGroup"], vec![
                        vpc_arn.clone(),
                        arn(&format!("ec2:{region_account}:security-group/*")),
                    ]),
                    json!({
                        "Sid": "SecurityGroupRules",
                        "Effect": "Allow",
                        "Action": [
                            "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
                            "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress",
                            "ec2:DeleteSecurityGroup", "ec2:CreateTags", "ec2:DeleteTags",
                            "ec2:UpdateSecurityGroupRuleDescriptionsIngress", "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
                        ],
                        "Resource": [arn(&format!("ec2:{region_account}:security-group/*")), arn(&format!("ec2:{region_account}:security-group-rule/*"))],
                        "Condition": { "ArnEquals": { "ec2:Vpc": vpc_arn.clone() } },
                    }),
                    json!({
                        "Sid": "CreateRolesInsideTheBoundary",
                        "Effect": "Allow",
                        "Action": [
                            "iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                            "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary",
                        ],
                        "Resource": project_roles.clone(),
                        "Condition": { "StringEquals": { "iam:PermissionsBoundary": boundary_arn.clone() } },
                    }),
                    allow("ManageRoles", &[
                        "iam:GetRole", "iam:GetRolePolicy", "iam:DeleteRole", "iam:TagRole", "iam:UntagRole",
                        "iam:UpdateRoleDescription", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
                        "iam:UpdateAssumeRolePolicy", "iam:UpdateRole",
                    ], vec![project_roles.clone()]),
                    json!({
                        "Sid": "PassRolesToTheirServices",
                        "Effect": "Allow",
                        "Action": "iam:PassRole",
                        "Resource": project_roles.clone(),
                        "Condition": { "StringEquals": { "iam:PassedToService": ["ecs-tasks.amazonaws.com", "ecs.amazonaws.com", "s3.amazonaws.com"] } },
                    }),
                    json!({
                        "Sid": "ServiceLinkedRoles",
                        "Effect": "Allow",
                        "Action": "iam:CreateServiceLinkedRole",
                        "Resource": arn("iam::${AWS::AccountId}:role/aws-service-role/*"),
                        "Condition": { "StringEquals": { "iam:AWSServiceName": [
                            "ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com",
                        ] } },
                    }),
                    allow("LogGroups", &[
                        "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
                        "logs:AssociateKmsKey", "logs:DisassociateKmsKey", "logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource",
                        "logs:GetDataProtectionPolicy", "logs:PutDataProtectionPolicy", "logs:DeleteDataProtectionPolicy",
                        "logs:PutIndexPolicy", "logs:DeleteIndexPolicy", "logs:PutLogGroupDeletionProtection",
                    ], log_arns(region_account)),
                    allow("Queues", &[
                        "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes",
                        "sqs:TagQueue", "sqs:UntagQueue", "sqs:ListQueueTags", "sqs:GetQueueUrl",
                    ], vec![arn(&format!("sqs:{region_account}:{scope}"))]),
                    allow("Buckets", &[
                        "s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration",
                        "s3:PutBucketPublicAccessBlock", "s3:PutBucketOwnershipControls", "s3:PutLifecycleConfiguration",
                        "s3:PutBucketLogging", "s3:PutReplicationConfiguration", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
                        "s3:PutBucketTagging", "s3:GetBucketPolicy", "s3:GetBucketTagging", "s3:GetBucketVersioning",
                        "s3:GetEncryptionConfiguration", "s3:GetLifecycleConfiguration", "s3:GetBucketLogging",
                        "s3:GetReplicationConfiguration", "s3:GetBucketPublicAccessBlock", "s3:GetBucketOwnershipControls",
                        "s3:GetBucketLocation", "s3:ListBucket",
                        // The rest of what the bucket handlers read, reset or remove.
                        "s3:PutBucketNotification", "s3:GetBucketNotification",
                        "s3:PutBucketCORS", "s3:GetBucketCORS",
                        "s3:PutBucketWebsite", "s3:GetBucketWebsite", "s3:DeleteBucketWebsite",
                        "s3:PutAccelerateConfiguration", "s3:GetAccelerateConfiguration",
                        "s3:PutAnalyticsConfiguration", "s3:GetAnalyticsConfiguration",
                        "s3:PutMetricsConfiguration", "s3:GetMetricsConfiguration",
                        "s3:PutInventoryConfiguration", "s3:GetInventoryConfiguration",
                        "s3:PutIntelligentTieringConfiguration", "s3:GetIntelligentTieringConfiguration",
                        "s3:PutBucketObjectLockConfiguration", "s3:GetBucketObjectLockConfiguration",
                        "s3:GetBucketAcl", "s3:GetBucketAbac", "s3:PutBucketAbac", "s3:GetBucketMetadataTableConfiguration",
                        "s3:TagResource", "s3:UntagResource", "s3:ListTagsForResource",
                    ], vec![arn(&format!("s3:::{scope}"))]),
                    allow("ReplicaKeys", &[
                        "kms:DescribeKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy", "kms:PutKeyPolicy",
                        "kms:GetKeyRotationStatus", "kms:TagResource", "kms:ScheduleKeyDeletion",
                        "kms:UntagResource", "kms:ListResourceTags", "kms:EnableKey", "kms:DisableKey",
                        "kms:DisableKeyRotation", "kms:UpdateKeyDescription",
                    ], vec![any_region_key.clone()]),
                    allow("ReplicaKeyAliases", &["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"], vec![
                        any_region_key.clone(),
                        arn(&format!("kms:*:${{AWS::AccountId}}:alias/{project}/{}*", n.base)),
                    ]),
                    allow("Scaling", &[
                        "application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget",
                        "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy",
                        "application-autoscaling:TagResource", "application-autoscaling:UntagResource",
                        "application-autoscaling:PutScheduledAction", "application-autoscaling:DeleteScheduledAction",
                    ], vec![arn(&format!("application-autoscaling:{region_account}:scalable-target/*"))]),
                    allow("Alarms", &["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource", "cloudwatch:UntagResource"], vec![
                        arn(&format!("cloudwatch:{region_account}:alarm:{scope}")),
                        // Target tracking creates its alarms in the caller's name.
                        arn(&format!("cloudwatch:{region_account}:alarm:TargetTracking-service/{scope}")),
                    ]),
                    allow("SecretRotationRules", &[
                        "events:PutRule", "events:DeleteRule", "events:DescribeRule", "events:PutTargets",
                        "events:RemoveTargets", "events:ListTargetsByRule", "events:TagResource", "events:UntagResource",
                        "events:ListTagsForResource",
                    ], vec![arn(&format!("events:{region_account}:rule/{scope}"))]),
                    allow("Dashboards", &["cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard"], vec![
                        arn(&format!("cloudwatch::${{AWS::AccountId}}:dashboard/{scope}")),
                    ]),
                ]),
            }],
            "Tags": tg.clone(),
        }),
    )
;
    t.output(
        "DeployRoleArn",
        att("DeployRole", "Arn"),
        Some(&n.export("DeployRoleArn")),
    );
    t.output(
        "RoleBoundaryArn",
        r("RoleBoundary"),
        Some(&n.export("RoleBoundaryArn")),
    );

    let Some(gh) = &cx.repo.foundation.github else {
        return;
    };
    let (owner, repo) = (&gh.owner, &gh.repo);
    let subjects = ci_subjects(cx, owner, repo);
    let mut change_actions = vec![
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:CreateChangeSet",
    ];
    if cx.is_preview() {
        // Previews are torn down by CI when the pull request closes.
        change_actions.push("cloudformation:DeleteStack");
    }
    t.resource(
        "CiRole",
        "AWS::IAM::Role",
        json!({
            "RoleName": sub(&n.base_role("ci")),
            "Description": format!("GitHub Actions of {owner}/{repo} deploy {prefix} as this role"),
            "MaxSessionDuration": 3600,
            "AssumeRolePolicyDocument": policy(vec![json!({
                "Effect": "Allow",
                "Principal": { "Federated": import(&n.shared_export("GitHubOidcProviderArn")) },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": { "token.actions.githubusercontent.com:aud": "sts.amazonaws.com" },
                    "StringLike": { "token.actions.githubusercontent.com:sub": subjects },
                },
            })]),
            "Policies": [{
                "PolicyName": "ci",
                "PolicyDocument": policy(vec![
                    allow("RegistryLogin", &["ecr:GetAuthorizationToken"], vec![json!("*")]),
                    allow("PushImages", &[
                        "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
                        "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                        "ecr:DescribeImages",
                    ], vec![repo_arn.clone()]),
                    json!({
                        "Sid": "ChangeStacksOnlyAsTheDeployRole",
                        "Effect": "Allow",
                        "Action": change_actions,
                        "Resource": Value::Array(stacks.clone()),
                        "Condition": { "ArnEquals": { "cloudformation:RoleArn": deploy_role_arn.clone() } },
                    }),
                    allow("ReadStacks", &[
                        "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:DescribeStackResources",
                        "cloudformation:DescribeChangeSet", "cloudformation:ExecuteChangeSet", "cloudformation:DeleteChangeSet",
                        "cloudformation:GetTemplate", "cloudformation:ListStackResources",
                    ], stacks.clone()),
                    allow("ValidateTemplates", &["cloudformation:ValidateTemplate", "cloudformation:GetTemplateSummary"], vec![json!("*")]),
                    // Finding the environment's stacks by name (removed services'
                    // stacks, the listener-rule priorities deployed services hold,
                    // previews): ListStacks has no resource-level permissions.
                    allow("FindStacks", &["cloudformation:ListStacks"], vec![json!("*")]),
                    // `pantstack deploy`: the shared stack's outputs (repository, template
                    // bucket), the templates it uploads (CloudFormation reads a
                    // TemplateURL as the caller), ECS's verdict with the stopped tasks'
                    // last log lines, and whether each secret exists.
                    allow("ReadSharedStack", &["cloudformation:DescribeStacks"], vec![arn(&format!(
                        "cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{}/*", n.shared_stack()
                    ))]),
                    allow("Templates", &["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"], vec![json!({ "Fn::Sub": [
                        format!("arn:${{AWS::Partition}}:s3:::${{Bucket}}/{scope}"),
                        { "Bucket": import(&n.shared_export("TemplateBucket")) },
                    ] })]),
                    // The environment's deploy lock (`pantstack-deploy::lock`): created
                    // and read as templates are; released by deleting it.
                    allow("DeployLock", &["s3:DeleteObject", "s3:DeleteObjectVersion"], {
                        let object = |key: String| json!({ "Fn::Sub": [
                            format!("arn:${{AWS::Partition}}:s3:::${{Bucket}}/{key}"),
                            { "Bucket": import(&n.shared_export("TemplateBucket")) },
                        ] });
                        if cx.is_preview() {
                            // Every preview's lock and the previews' lock
                            // (`{project}-preview-slots-deploy-lock.json`), and the
                            // previews' activity stamps (`pantstack_deploy::slots`).
                            vec![
                                object(format!("{}-*-deploy-lock.json", n.base_prefix())),
                                object(format!("{}-activity-*.json", n.base_prefix())),
                            ]
                        } else {
                            // Exactly this environment's lock.
                            vec![object(format!("{}-deploy-lock.json", n.base_prefix()))]
                        }
                    }),
                    allow("DeployLockVersions", &["s3:ListBucketVersions"], vec![json!({ "Fn::Sub": [
                        "arn:${AWS::Partition}:s3:::${Bucket}",
                        { "Bucket": import(&n.shared_export("TemplateBucket")) },
                    ] })]),
                    allow("ServiceVerdict", &["ecs:DescribeServices", "ecs:ListTasks", "ecs:DescribeTasks"], vec![
                        arn(&format!("ecs:${{AWS::Region}}:${{AWS::AccountId}}:service/{scope}")),
                        arn(&format!("ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/{scope}")),
                        arn(&format!("ecs:${{AWS::Region}}:${{AWS::AccountId}}:container-instance/{scope}")),
                    ]),
                    allow("TaskLogs", &["logs:GetLogEvents", "logs:FilterLogEvents"], log_arns("${AWS::Region}:${AWS::AccountId}")),
                    allow("SecretsExist", &["ssm:GetParameters"], ssm_arns.clone()),
                ].into_iter().chain(if cx.is_preview() { preview_ci(cx, &repo_arn) } else { vec![json!({
                    // `deploy` deletes the Service Connect stack when no service
                    // calls another any more (previews may delete all their stacks).
                    "Sid": "DeleteTheCallsStack",
                    "Effect": "Allow",
                    "Action": "cloudformation:DeleteStack",
                    "Resource": arn(&format!("cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{}/*", n.calls_stack())),
                    "Condition": { "ArnEquals": { "cloudformation:RoleArn": deploy_role_arn.clone() } },
                })] }).chain([
                    json!({
                        "Sid": "PassOnlyTheDeployRole",
                        "Effect": "Allow",
                        "Action": "iam:PassRole",
                        "Resource": deploy_role_arn.clone(),
                        "Condition": { "StringEquals": { "iam:PassedToService": "cloudformation.amazonaws.com" } },
                    }),
                ]).collect::<Vec<_>>()),
            }],
            "Tags": tg,
        }),
    );
    t.output(
        "CiRoleArn",
        att("CiRole", "Arn"),
        Some(&n.export("CiRoleArn")),
    );
}

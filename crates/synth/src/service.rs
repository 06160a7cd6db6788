//! A service stack `{project}-{env}-{service}`: its queues and buckets, roles, log
//! group, ECS cluster (Fargate + Fargate Spot), the HTTP role behind its own ALB and
//! the worker role, autoscaling, alarms and a dashboard.

use crate::cfn::{Template, allow, arn, att, import, join, policy, r, split, sub, tags};
use crate::names::logical;
use crate::network::{Layout, Nat};
use crate::storage::{add_buckets, add_queues, bucket_id, dlq_id, queue_id};
use crate::{Ctx, place, skips};
use pantstack_manifest::Diagnostic;
use pantstack_model::Resolved;
use pantstack_model::iam;
use pantstack_model::repo::ServiceUnit;
use pantstack_model::service::Service;
use pantstack_model::settings::keys;
use serde_json::{Value, json};

/// The ADOT collector image used as tracing sidecar (public ECR, pinned).
pub const ADOT_IMAGE: &str = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3";

/// ALB/ELB TLS policy of HTTPS listeners.
pub const TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

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

/// Checks that only matter for AWS (the model checks the rest).
/// ALB path-pattern matching: `*` any run of characters, `?` one.
fn glob(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

pub fn check(
    cx: &Ctx<'_>,
    unit: &ServiceUnit,
    cfg: &Resolved,
    layout: &Layout,
    region: &str,
) -> Vec<Diagnostic> {
    let svc = &unit.service;
    let file = &svc.manifest_file;
    let mut out = Vec::new();
    if cfg.get(keys::TRACING) && layout.nat == Nat::None {
        let (f, span) = place(cfg, keys::TRACING, file);
        out.push(
            Diagnostic::error(
                "tracing-needs-nat",
                &f,
                span,
                keys::TRACING.name(),
                format!("service `{}`: tracing runs the ADOT collector from public ECR, which a VPC without NAT gateways cannot reach (environment `{}`)", svc.name, cx.env),
            )
            .with_help("set `pantstack:natGateways: single` for this environment, or turn tracing off"),
        );
    }
    if cfg.get(keys::DEPLOYMENT_STRATEGY) != "rolling"
        && let Some(h) = &svc.http
        && h.rules.len() > 1
    {
        let (f, span) = place(cfg, keys::DEPLOYMENT_STRATEGY, file);
        out.push(
            Diagnostic::error(
                "strategy-one-rule",
                &f,
                span,
                keys::DEPLOYMENT_STRATEGY.name(),
                format!("service `{}` declares {} listener rules; ECS blue/green and canary deployments shift one production listener rule", svc.name, h.rules.len()),
            )
            .with_help("keep one rule under `http.rules` (or none: all traffic), or use `deployment.strategy: rolling`"),
        );
    }
    if cx.shared_lb && svc.http.is_some() {
        if cfg.get(keys::CERTIFICATE_ARN).is_some() {
            let (f, span) = place(cfg, keys::CERTIFICATE_ARN, file);
            out.push(
                Diagnostic::error(
                    "shared-lb-certificate",
                    &f,
                    span,
                    keys::CERTIFICATE_ARN.name(),
                    format!("service `{}` sets a certificate, but environment `{}` shares one load balancer (`network.load_balancer: shared`), whose HTTPS listener pantstack does not manage yet", svc.name, cx.env),
                )
                .with_help("remove the certificate here, or use `network.load_balancer: per_service` for this environment"),
            );
        }
        if cfg.get(keys::DEPLOYMENT_STRATEGY) != "rolling"
            && cfg.get(keys::REQUESTS_PER_TARGET).is_some()
        {
            let (f, span) = place(cfg, keys::REQUESTS_PER_TARGET, file);
            out.push(
                Diagnostic::error(
                    "shared-lb-request-scaling",
                    &f,
                    span,
                    keys::REQUESTS_PER_TARGET.name(),
                    format!("service `{}`: scaling on requests per target with blue/green on a shared load balancer would count every service's requests", svc.name),
                )
                .with_help("scale on CPU or memory, use `deployment.strategy: rolling`, or `network.load_balancer: per_service`"),
            );
        }
        let t = cfg.get(keys::IDLE_TIMEOUT);
        if t != 60 {
            let (f, span) = place(cfg, keys::IDLE_TIMEOUT, file);
            out.push(Diagnostic::warning(
                "shared-lb-idle-timeout",
                &f,
                span,
                keys::IDLE_TIMEOUT.name(),
                format!("service `{}`: `idle_timeout` {t}s is not applied: environment `{}` shares load balancers, whose idle timeout is 60 s", svc.name, cx.env),
            ));
        }
        // A rule that would catch another service's default path (`/*`, `/re*`)
        // takes its traffic whichever priority block is lower: refused.
        for rule in svc
            .http
            .as_ref()
            .map(|h| h.rules.as_slice())
            .unwrap_or_default()
        {
            let (Some(p), None) = (&rule.path, &rule.host) else {
                continue;
            };
            let catches = cx.repo.services.iter().find(|o| {
                let o = &o.service;
                o.name != svc.name
                    && o.http.as_ref().is_some_and(|h| h.rules.is_empty())
                    && glob(p, &format!("/{}/x", o.name))
            });
            if let Some(o) = catches {
                out.push(
                    Diagnostic::error(
                        "shared-lb-rule-overlap",
                        file,
                        crate::span_of(cx.repo, file, &["http", "rules"]),
                        "http.rules",
                        format!("service `{}`: its rule path `{p}` also matches `/{}/…`, service `{}`'s path on the shared load balancer", svc.name, o.service.name, o.service.name),
                    )
                    .with_help("narrow the path (`/{name}/*`), add a `host:` to the rule, or use `network.load_balancer: per_service`"),
                );
            }
        }
        let rules = svc.http.as_ref().map(|h| h.rules.len()).unwrap_or(0);
        if rules > crate::shared_lb::RULES_PER_SERVICE {
            out.push(Diagnostic::error(
                "shared-lb-rules",
                file,
                crate::span_of(cx.repo, file, &["http", "rules"]),
                "http.rules",
                format!("service `{}` declares {rules} listener rules; on a shared load balancer a service has {} at most", svc.name, crate::shared_lb::RULES_PER_SERVICE),
            ));
        }
    }
    let mut regions: Vec<&str> = Vec::new();
    for b in &svc.buckets {
        if let Some(rr) = &b.replication_region {
            if rr == region {
                out.push(
                    Diagnostic::error(
                        "replication-same-region",
                        file,
                        crate::span_of(cx.repo, file, &["buckets", &b.name, "replication", "region"]),
                        &format!("buckets.{}.replication", b.name),
                        format!("bucket `{}` replicates to {rr}, the region environment `{}` runs in; a disaster-recovery copy belongs in another region", b.name, cx.env),
                    )
                    .with_help("name another region"),
                );
            }
            if !regions.contains(&rr.as_str()) {
                regions.push(rr);
            }
        }
    }
    if regions.len() > 1 {
        out.push(Diagnostic::error(
            "replication-regions",
            file,
            crate::span_of(cx.repo, file, &["buckets"]),
            "buckets",
            format!(
                "service `{}` replicates buckets to several regions ({}); one replica region per service is supported",
                svc.name,
                regions.join(", ")
            ),
        ));
    }
    out
}

/// `${queue:jobs}` → `${JobsQueue}` (the queue URL), `${dlq:jobs}` → the DLQ URL,
/// `${bucket:results}` → the bucket name; other `${` are escaped for `Fn::Sub`.
pub fn variable_value(cx: &Ctx<'_>, value: &str) -> Value {
    if !value.contains("${") {
        return json!(value);
    }
    // Another service's queue or bucket (`${queue:api.jobs}`): its URL from its
    // deterministic name, its bucket's name from the owner's export.
    let mut imports = serde_json::Map::new();
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str("${!");
            rest = after;
            continue;
        };
        let inner = &after[..end];
        if let Some((kind, reference)) = inner.split_once(':')
            && let Some((owner, name)) = reference.split_once('.')
        {
            match kind {
                "queue" | "dlq" => {
                    let fifo = owner_queue(cx, owner, name).is_some_and(|q| q.fifo);
                    out.push_str(&format!(
                        "https://sqs.${{AWS::Region}}.${{AWS::URLSuffix}}/${{AWS::AccountId}}/{}",
                        cx.names.queue(owner, name, kind == "dlq", fifo)
                    ));
                }
                _ => {
                    let var = logical(&["import", owner, name]);
                    imports.insert(
                        var.clone(),
                        json!({ "Fn::ImportValue": bucket_export(cx, owner, name) }),
                    );
                    out.push_str(&format!("${{{var}}}"));
                }
            }
            rest = &after[end + 1..];
            continue;
        }
        let id = match inner.split_once(':') {
            Some(("queue", q)) => Some(queue_id(q)),
            Some(("dlq", q)) => Some(dlq_id(q)),
            Some(("bucket", b)) => Some(bucket_id(b)),
            _ => None,
        };
        match id {
            Some(id) => out.push_str(&format!("${{{id}}}")),
            None => out.push_str(&format!("${{!{inner}}}")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if imports.is_empty() {
        sub(&out)
    } else {
        json!({ "Fn::Sub": [out, imports] })
    }
}

/// Another service's queue, as its manifest declares it.
fn owner_queue<'a>(
    cx: &'a Ctx<'_>,
    owner: &str,
    queue: &str,
) -> Option<&'a pantstack_model::service::Queue> {
    cx.repo
        .services
        .iter()
        .find(|u| u.service.name == owner)
        .and_then(|u| u.service.queues.iter().find(|q| q.name == queue))
}

/// The export naming a bucket that grants other services access (its name is
/// CloudFormation's, so the consumer imports it).
pub fn bucket_export(cx: &Ctx<'_>, owner: &str, bucket: &str) -> String {
    // The environment's own prefix (previews share a foundation, not services).
    format!("{}-{owner}-{bucket}-bucket", cx.names.prefix())
}

/// What a service uses of other services' queues and buckets: (owner, resource,
/// section, the grant's access), once each.
pub fn used_grants(
    cx: &Ctx<'_>,
    svc: &Service,
) -> Vec<(
    String,
    String,
    &'static str,
    pantstack_model::service::Access,
)> {
    let mut out: Vec<(
        String,
        String,
        &'static str,
        pantstack_model::service::Access,
    )> = Vec::new();
    for f in &svc.foreign {
        let Some(owner) = cx.repo.services.iter().find(|u| u.service.name == f.owner) else {
            continue;
        };
        let (section, grants) = if f.kind == "bucket" {
            (
                "buckets",
                owner
                    .service
                    .buckets
                    .iter()
                    .find(|b| b.name == f.name)
                    .map(|b| &b.grants),
            )
        } else {
            (
                "queues",
                owner
                    .service
                    .queues
                    .iter()
                    .find(|q| q.name == f.name)
                    .map(|q| &q.grants),
            )
        };
        let Some(g) = grants.and_then(|gs| gs.iter().find(|g| g.to.value == svc.name)) else {
            continue;
        };
        if !out
            .iter()
            .any(|(o, n, s, _)| *o == f.owner && *n == f.name && *s == section)
        {
            out.push((f.owner.clone(), f.name.clone(), section, g.access));
        }
    }
    out
}

/// `calls:`: the services this one calls, with their container ports.
pub fn callees(cx: &Ctx<'_>, svc: &Service) -> Vec<(String, i64)> {
    svc.calls
        .iter()
        .filter_map(|c| {
            let unit = cx
                .repo
                .services
                .iter()
                .find(|u| u.service.name == c.value)?;
            unit.service.http.as_ref()?;
            let cfg =
                cx.repo
                    .resolve_service(unit, cx.env, &pantstack_model::settings::Layer::default());
            Some((c.value.clone(), cfg.get(keys::PORT)))
        })
        .collect()
}

/// Whether another service calls this one (it then joins Service Connect as a server).
pub fn is_called(cx: &Ctx<'_>, svc: &Service) -> bool {
    svc.http.is_some()
        && cx
            .repo
            .services
            .iter()
            .any(|u| u.service.calls.iter().any(|c| c.value == svc.name))
}

/// The export naming a service's task security group (every service with an HTTP
/// role): the Service Connect stack (`calls.rs`) imports it for each call's rules.
pub fn task_sg_export(cx: &Ctx<'_>, service: &str) -> String {
    format!("{}-{service}-task-sg", cx.names.prefix())
}

/// The export naming a service's worker security group (every service with a worker).
pub fn worker_sg_export(cx: &Ctx<'_>, service: &str) -> String {
    format!("{}-{service}-worker-sg", cx.names.prefix())
}

fn image(cx: &Ctx<'_>, param: &str) -> Value {
    sub(&format!(
        "${{AWS::AccountId}}.dkr.ecr.${{AWS::Region}}.${{AWS::URLSuffix}}/{}:${{{param}}}",
        cx.repo.foundation.registry
    ))
}

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

    // Roles.
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
        let scheme = if cfg.get(keys::CERTIFICATE_ARN).is_some() {
            "https"
        } else {
            "http"
        };
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
                format!("http://${{DnsName}}{path}"),
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

/// ECS's `EntryPoint` and `Command` for the manifest's `command` (the whole argv):
/// the first word replaces the image's ENTRYPOINT, the rest its CMD. With
/// `EntryPoint` set Docker never appends the image's CMD, so the container runs
/// exactly the manifest's argv whatever the image's ENTRYPOINT and CMD are (`Command`
/// alone would only replace CMD: `/api` + `/api serve`). The local Docker runtime
/// runs the same split (`docker run --entrypoint FIRST IMAGE REST...`: the docker
/// CLI's `--entrypoint` takes one word). `None` for an empty command.
pub fn entry_point_and_command(argv: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    let (first, rest) = argv.split_first()?;
    Some((vec![first.clone()], rest.to_vec()))
}

#[allow(clippy::too_many_arguments)]
fn add_task_definition(
    t: &mut Template,
    cx: &Ctx<'_>,
    svc: &Service,
    cfg: &Resolved,
    role: Role,
    command: Option<&Vec<String>>,
    port: Option<i64>,
    tracing: bool,
) {
    let n = &cx.names;
    let name = &svc.name;
    let container = match role {
        Role::Http => name.clone(),
        Role::Worker => format!("{name}-worker"),
    };
    let mut env: Vec<(String, Value)> = vec![
        ("SERVICE_NAME".into(), json!(name)),
        ("ENVIRONMENT".into(), json!(cx.env)),
        ("PANTSTACK_ROLE".into(), json!(role.label())),
    ];
    if let Some(p) = port {
        env.push(("PORT".into(), json!(p.to_string())));
    }
    // `calls:`: Service Connect's name for each callee.
    for (callee, p) in callees(cx, svc) {
        env.push((
            pantstack_model::service::call_variable(&callee),
            json!(format!("http://{callee}:{p}")),
        ));
    }
    if tracing {
        env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            json!("http://localhost:4317"),
        ));
        env.push(("AWS_XRAY_DAEMON_ADDRESS".into(), json!("localhost:2000")));
    }
    for (k, v) in &svc.variables_for(cx.env) {
        env.push((k.clone(), variable_value(cx, v)));
    }
    env.sort_by(|a, b| a.0.cmp(&b.0));
    let environment: Vec<Value> = env
        .into_iter()
        .map(|(k, v)| json!({ "Name": k, "Value": v }))
        .collect();
    let secrets: Vec<Value> = svc
        .secrets
        .iter()
        .map(|s| {
            json!({
                "Name": s.name,
                "ValueFrom": arn(&format!(
                    "ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{}/{}",
                    n.ssm_path(s.owner(name)),
                    s.name
                )),
            })
        })
        .collect();
    let logs = |prefix: &str| {
        json!({
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": r("LogGroup"),
                "awslogs-region": r("AWS::Region"),
                "awslogs-stream-prefix": prefix,
            },
        })
    };
    let param = match role {
        Role::Http => "ImageTag",
        Role::Worker => "WorkerImageTag",
    };
    let mut app = json!({
        "Name": container,
        "Image": image(cx, param),
        "Essential": true,
        "Environment": environment,
        "LogConfiguration": logs(role.label()),
        "ReadonlyRootFilesystem": true,
        // A read-only root, but a writable scratch /tmp (task storage).
        "MountPoints": [{ "SourceVolume": "tmp", "ContainerPath": "/tmp", "ReadOnly": false }],
        "Privileged": false,
        "StopTimeout": cfg.get(keys::STOP_TIMEOUT),
    });
    if !secrets.is_empty() {
        app["Secrets"] = json!(secrets);
    }
    if let Some((entry_point, rest)) = command.and_then(|c| entry_point_and_command(c)) {
        app["EntryPoint"] = json!(entry_point);
        if !rest.is_empty() {
            app["Command"] = json!(rest);
        }
    }
    if let Some(p) = port {
        app["PortMappings"] = json!([{ "ContainerPort": p, "Protocol": "tcp", "Name": "http" }]);
    }
    let mut containers = vec![app];
    if tracing {
        containers.push(json!({
            "Name": "aws-otel-collector",
            "Image": ADOT_IMAGE,
            "Essential": false,
            "Command": ["--config=/etc/ecs/ecs-default-config.yaml"],
            "LogConfiguration": logs("adot"),
            "ReadonlyRootFilesystem": true,
            "Privileged": false,
        }));
    }
    t.resource(
        &format!("TaskDefinition{}", role.suffix()),
        "AWS::ECS::TaskDefinition",
        json!({
            "Family": format!("{}-{}", n.cluster(name), role.label()),
            "Cpu": cfg.get(keys::CPU).to_string(),
            "Memory": cfg.get(keys::MEMORY).to_string(),
            "NetworkMode": "awsvpc",
            "RequiresCompatibilities": ["FARGATE"],
            "RuntimePlatform": { "CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX" },
            "ExecutionRoleArn": att("ExecutionRole", "Arn"),
            "TaskRoleArn": att("TaskRole", "Arn"),
            "ContainerDefinitions": containers,
            "Volumes": [{ "Name": "tmp" }],
            "Tags": tags(cx.project(), cx.env, Some(name), None),
        }),
    );
}

#[allow(clippy::too_many_arguments)]
fn add_load_balancer(
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
        import(&n.lb_export(&format!(
            "ListenerArn{}",
            crate::shared_lb::shard_of(cx, name)
        )))
    } else {
        r(serving_listener)
    };
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

#[allow(clippy::too_many_arguments)]
fn add_service(
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
fn add_scaling(
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

//! A role's ECS task definition: its container (image, environment, secrets,
//! command, port) and the tracing sidecar.

use crate::Ctx;
use crate::cfn::{Template, arn, att, import, r, tags};
use pantstack_model::Resolved;
use pantstack_model::service::{Service, entry_point_and_command};
use pantstack_model::settings::keys;
use serde_json::{Value, json};

use super::refs::{callees, variable_value};
use super::{Role, image};

/// The ADOT collector image used as tracing sidecar (public ECR, pinned).
pub const ADOT_IMAGE: &str = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3";

#[allow(clippy::too_many_arguments)]
pub(super) fn add_task_definition(
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
        (
            pantstack_model::iam::METRICS_NAMESPACE_VAR.into(),
            json!(n.metrics_namespace(name)),
        ),
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
            "ExecutionRoleArn": import(&n.export("ExecutionRoleArn")),
            "TaskRoleArn": if cx.is_preview() {
                super::roles::role_arn(&super::roles::task_role_name(cx, name))
            } else {
                att("TaskRole", "Arn")
            },
            "ContainerDefinitions": containers,
            "Volumes": [{ "Name": "tmp" }],
            "Tags": tags(cx.project(), cx.env, Some(name), None),
        }),
    );
}

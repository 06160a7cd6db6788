//! The environment's Service Connect stack, `{project}-{env}-service-connect`: the
//! security-group rules of every `calls:` edge, from the caller's task groups to
//! the callee's task group on its container port, and nothing else.
//!
//! Invariant: no service stack imports from another for a call. Each service that
//! calls or is called exports its task security groups; only this stack imports
//! them, after every service stack of the environment. So calls may go both ways
//! (`a` calls `b`, `b` calls `a`) without a cycle of imports, and a service stack
//! never needs another service deployed first because of a call.

use crate::Ctx;
use crate::cfn::{Template, import};
use crate::names::logical;
use crate::service::{callees, task_sg_export, worker_sg_export};
use pantstack_model::service::Service;
use serde_json::json;

/// The stacks the Service Connect stack imports from: every caller and callee.
pub fn participants(cx: &Ctx<'_>, services: &[&Service]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for svc in services {
        let edges = callees(cx, svc);
        if edges.is_empty() {
            continue;
        }
        for name in std::iter::once(svc.name.clone()).chain(edges.into_iter().map(|(c, _)| c)) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// The template, or None when no service calls another.
pub fn template(cx: &Ctx<'_>, services: &[&Service]) -> Option<Template> {
    let mut t = Template::new(format!(
        "Pantstack {}/{}: Service Connect calls between services (security-group rules, caller to callee only)",
        cx.project(),
        cx.env
    ));
    let mut any = false;
    for svc in services {
        for (callee, port) in callees(cx, svc) {
            let groups = [
                svc.http
                    .as_ref()
                    .map(|_| ("Task", task_sg_export(cx, &svc.name))),
                svc.worker
                    .as_ref()
                    .map(|_| ("Worker", worker_sg_export(cx, &svc.name))),
            ];
            for (role, export) in groups.into_iter().flatten() {
                any = true;
                t.resource(
                    &logical(&[&svc.name, role, "calls", &callee]),
                    "AWS::EC2::SecurityGroupIngress",
                    json!({
                        "Description": format!("{} calls {callee} (Service Connect)", svc.name),
                        "GroupId": import(&task_sg_export(cx, &callee)),
                        "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                        "SourceSecurityGroupId": import(&export),
                    }),
                );
                t.resource(
                    &logical(&[&svc.name, role, "to", &callee]),
                    "AWS::EC2::SecurityGroupEgress",
                    json!({
                        "Description": format!("{} calls {callee} (Service Connect)", svc.name),
                        "GroupId": import(&export),
                        "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                        "DestinationSecurityGroupId": import(&task_sg_export(cx, &callee)),
                    }),
                );
            }
        }
    }
    any.then_some(t)
}

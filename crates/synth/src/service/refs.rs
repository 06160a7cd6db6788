//! What a service stack refers to of other stacks: `${queue:…}` references in its
//! variables, the queues and buckets other services grant it, the services it
//! calls, and the export names other stacks import from it.

use crate::Ctx;
use crate::cfn::sub;
use crate::names::logical;
use crate::storage::{bucket_id, dlq_id, queue_id};
use pantstack_model::physical::queue_url;
use pantstack_model::refs::{self, Kind, Piece};
use pantstack_model::service::Service;
use pantstack_model::settings::keys;
use serde_json::{Value, json};

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
    for piece in refs::pieces(value) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            // Not a reference: escaped, so `Fn::Sub` writes it as is.
            Piece::Other(inner) => out.push_str(&format!("${{!{inner}}}")),
            Piece::Unclosed(rest) => {
                out.push_str("${!");
                out.push_str(&rest.replace("${", "${!"));
            }
            Piece::Ref(r) => match (r.known(), r.owner()) {
                (Some(kind @ (Kind::Queue | Kind::Dlq)), Some((owner, name))) => {
                    let fifo = owner_queue(cx, owner, name).is_some_and(|q| q.fifo);
                    out.push_str(&queue_url(
                        "https://sqs.${AWS::Region}.${AWS::URLSuffix}",
                        "${AWS::AccountId}",
                        &cx.names.queue(owner, name, kind == Kind::Dlq, fifo),
                    ));
                }
                (_, Some((owner, name))) => {
                    let var = logical(&["import", owner, name]);
                    imports.insert(
                        var.clone(),
                        json!({ "Fn::ImportValue": bucket_export(cx, owner, name) }),
                    );
                    out.push_str(&format!("${{{var}}}"));
                }
                (Some(kind), None) => {
                    let id = match kind {
                        Kind::Queue => queue_id(r.name),
                        Kind::Dlq => dlq_id(r.name),
                        Kind::Bucket => bucket_id(r.name),
                    };
                    out.push_str(&format!("${{{id}}}"));
                }
                (None, None) => out.push_str(&format!("${{!{}:{}}}", r.kind, r.name)),
            },
        }
    }
    if imports.is_empty() {
        sub(&out)
    } else {
        json!({ "Fn::Sub": [out, imports] })
    }
}

/// Another service's queue, as its manifest declares it.
pub(super) fn owner_queue<'a>(
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

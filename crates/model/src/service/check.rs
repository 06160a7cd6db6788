//! The checks of the `${kind:name}` references in a service's variables: each
//! names a declared queue or bucket of the service (never a secret), or another
//! service's, collected as a [`ForeignRef`] for the checks across services.

use super::{ForeignRef, Service};
use crate::refs::{Kind, references};
use pantstack_manifest::diag::did_you_mean;
use pantstack_manifest::read::join;
use pantstack_manifest::{Fields, Node, Reader};

pub(super) fn check_references(
    r: &mut Reader<'_>,
    svc: &Service,
    top: &Fields<'_>,
) -> Vec<ForeignRef> {
    let mut foreign = Vec::new();
    let queues: Vec<&str> = svc.queues.iter().map(|q| q.name.as_str()).collect();
    let buckets: Vec<&str> = svc.buckets.iter().map(|b| b.name.as_str()).collect();
    if let Some(w) = &svc.worker
        && !queues.contains(&w.queue.value.as_str())
    {
        let help = match did_you_mean(&w.queue.value, &queues) {
            Some(s) => format!("did you mean `{s}`?"),
            None if queues.is_empty() => {
                format!("declare it: `queues: {{ {}: {{}} }}`", w.queue.value)
            }
            None => format!("declared queues: {}", queues.join(", ")),
        };
        r.error(
            "undeclared-reference",
            w.queue.span,
            "worker.queue",
            format!(
                "worker consumes queue `{}`, which is not declared under `queues:`",
                w.queue.value
            ),
        )
        .help = Some(help);
    }
    let mut sections: Vec<(String, &Node)> = Vec::new();
    if let Some(n) = top.get("variables") {
        sections.push(("variables".into(), n));
    }
    for (env, node) in top
        .get("environments")
        .and_then(|n| n.as_map())
        .into_iter()
        .flatten()
    {
        if let Some(vars) = node.get("variables") {
            let env = env.scalar_text().unwrap_or_default();
            sections.push((join(&join("environments", &env), "variables"), vars));
        }
    }
    for (path, node) in sections {
        foreign.extend(check_variable_references(
            r, &svc.name, &queues, &buckets, node, &path,
        ));
    }
    for s in &svc.secrets {
        if svc.variables.iter().any(|(n, _)| *n == s.name)
            && let Some(span) = top.get("variables").and_then(|n| n.as_map()).and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.scalar_text().as_deref() == Some(s.name.as_str()))
                    .map(|(k, _)| k.span)
            })
        {
            r.error(
                "duplicate-name",
                span,
                &join("variables", &s.name),
                format!("`{}` is both a variable and a secret", s.name),
            )
            .help = Some("keep one of them".into());
        }
    }
    foreign
}

/// Every `${kind:name}` in the values of one `variables:` map names a declared
/// queue or bucket (never a secret).
fn check_variable_references(
    r: &mut Reader<'_>,
    svc_name: &str,
    queues: &[&str],
    buckets: &[&str],
    vars: &Node,
    path: &str,
) -> Vec<ForeignRef> {
    let mut foreign = Vec::new();
    let Some(vars) = vars.as_map() else {
        return foreign;
    };
    for (k, v) in vars {
        let name = k.scalar_text().unwrap_or_default();
        let field = join(path, &name);
        let Some(text) = v.scalar_text() else {
            continue;
        };
        match references(&text) {
            Err(why) => {
                r.error("invalid-reference", v.span, &field, why);
            }
            Ok(refs) => {
                for rf in refs {
                    let kind = match rf.known() {
                        Some(k) => k,
                        None if rf.kind == "secret" => {
                            r.error(
                                "invalid-reference",
                                v.span,
                                &field,
                                "secrets cannot be interpolated into variables: that would expose them in the task definition",
                            )
                            .help = Some(format!("declare it under `secrets:` and read the `{}` variable instead", rf.name));
                            continue;
                        }
                        None => {
                            let other = rf.kind;
                            let kinds = Kind::ALL.map(Kind::as_str);
                            r.error(
                                "invalid-reference",
                                v.span,
                                &field,
                                format!("unknown reference kind `{other}` in `{rf}`"),
                            )
                            .help = Some(
                                did_you_mean(other, &kinds)
                                    .map(|s| format!("did you mean `${{{s}:{}}}`?", rf.name))
                                    .unwrap_or_else(|| {
                                        "use `${queue:NAME}`, `${dlq:NAME}` or `${bucket:NAME}`"
                                            .into()
                                    }),
                            );
                            continue;
                        }
                    };
                    let section = kind.section();
                    let declared: &[&str] = match kind {
                        Kind::Queue | Kind::Dlq => queues,
                        Kind::Bucket => buckets,
                    };
                    // Another service's: `${queue:OWNER.NAME}`, checked against the
                    // owner's grants once every service is read.
                    if let Some((owner, name)) = rf.owner()
                        && owner != svc_name
                    {
                        foreign.push(ForeignRef {
                            kind: rf.kind.to_string(),
                            owner: owner.to_string(),
                            name: name.to_string(),
                            field: field.clone(),
                            span: v.span,
                        });
                        continue;
                    }
                    // `${queue:me.jobs}` in `me` is its own `jobs`.
                    let own = rf
                        .name
                        .strip_prefix(svc_name)
                        .and_then(|r| r.strip_prefix('.'))
                        .unwrap_or(rf.name);
                    if !declared.contains(&own) {
                        let help = match did_you_mean(own, declared) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("declare `{}` under `{section}:`", rf.name),
                        };
                        r.error(
                            "undeclared-reference",
                            v.span,
                            &field,
                            format!(
                                "`{rf}` refers to `{}`, which is not declared under `{section}:`",
                                rf.name
                            ),
                        )
                        .help = Some(help);
                    }
                }
            }
        }
    }
    foreign
}

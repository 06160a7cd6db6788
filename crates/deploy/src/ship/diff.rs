//! `diff`: change sets of every stack, described and deleted (nothing executed),
//! and the change of the environment's bill.

use super::*;

/// `diff`: a change set per stack, described and deleted; nothing executed.
pub async fn diff(
    e: &Env<'_>,
    tags: &BTreeMap<(String, String), String>,
) -> Result<Value, Failure> {
    // What deploy would submit: the deployed listener-rule priorities pinned.
    let pinned = e.pinned().await?;
    let e = pinned.as_ref().unwrap_or(e);
    let c = &e.clients;
    let shared = stack::describe(c, &e.shared().name).await?;
    let bucket = shared
        .as_ref()
        .and_then(|d| d.output("TemplateBucket"))
        .map(str::to_string);
    let deploy_role = match e.foundation() {
        Some(f) => stack::describe(c, &f.name)
            .await?
            .and_then(|d| d.output("DeployRoleArn").map(str::to_string)),
        None => None,
    };
    let mut report = Vec::new();
    let mut failed = Vec::new();
    let prefix = format!("{}-", e.names().prefix());
    let mut set = tokio::task::JoinSet::new();
    for s in &e.output.plan.stacks {
        let svc = s
            .name
            .strip_prefix(&prefix)
            .map(|r| r.trim_end_matches("-replica").to_string());
        let parameters = s
            .parameters
            .iter()
            .map(|prm| {
                let tag = svc
                    .as_ref()
                    .and_then(|svc| tags.get(&(svc.clone(), prm.name.clone())));
                match tag {
                    Some(t) => Param::Value(prm.name.clone(), t.clone()),
                    None => Param::Previous(prm.name.clone()),
                }
            })
            .collect();
        let spec = Spec {
            name: s.name.clone(),
            template: e.template(s, bucket.as_deref()).await?,
            parameters,
            capabilities: s.capabilities.iter().map(|c| c.to_string()).collect(),
            role_arn: if s.deployed_by == "ci" {
                deploy_role.clone()
            } else {
                None
            },
            tags: e.tags(),
        };
        let c = e.clients_for(s);
        let p = e.progress.clone();
        set.spawn(async move {
            if let Ok(Some(d)) = stack::describe(&c, &spec.name).await
                && stack::is_current(&c, &spec, &d).await
            {
                p.set(&spec.name, "no changes");
                let none = stack::ChangeSet {
                    stack: spec.name.clone(),
                    name: String::new(),
                    kind: aws_sdk_cloudformation::types::ChangeSetType::Update,
                    changes: None,
                };
                return (spec.name.clone(), Ok(none));
            }
            let r = stack::create_change_set(&c, &spec, &p, false).await;
            if let Ok(cs) = &r {
                stack::discard(&c, cs, spec.role_arn.as_deref(), &p).await;
                p.set(
                    &spec.name,
                    match &cs.changes {
                        None => "no changes",
                        Some(_) => "changes",
                    },
                );
            }
            (spec.name.clone(), r)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    // Plan order.
    for s in &e.output.plan.stacks {
        let Some((_, r)) = results.iter().find(|(n, _)| n == &s.name) else {
            continue;
        };
        match r {
            Ok(cs) => report.push(json!({
                "stack": s.name,
                "exists": cs.kind != aws_sdk_cloudformation::types::ChangeSetType::Create,
                "changes": cs.changes.as_ref().map(|ch| ch.iter().map(|x| json!({
                    "action": x.action,
                    "logical_id": x.logical_id,
                    "type": x.resource_type,
                    "replacement": x.replacement,
                })).collect::<Vec<_>>()).unwrap_or_default(),
            })),
            // A stack `bootstrap` deploys (an administrator's) that the caller
            // may not compare: said, not a failure. The CI roles may not change
            // those stacks, so their `diff` of a pull request compares what CI
            // deploys.
            Err(f) if s.deployed_by != "ci" && denied(&f.reason) => report.push(json!({
                "stack": s.name,
                "not_compared": format!(
                    "deployed by `pantstack bootstrap`, which an administrator runs; these credentials may not compare it ({})",
                    f.reason
                ),
            })),
            Err(f) => {
                failed.push(f.render());
                report.push(json!({ "stack": s.name, "error": f.render() }));
            }
        }
    }
    let v = json!({
        "ok": failed.is_empty(),
        "environment": e.env,
        "stacks": report,
        "cost": bill_change(e).await,
    });
    if failed.is_empty() {
        Ok(v)
    } else {
        Err(Failure {
            message: failed.join("\n"),
            report: v,
        })
    }
}

/// Whether an AWS error says the caller is not allowed (IAM), as opposed to a
/// template or state the change set cannot be made from.
fn denied(reason: &str) -> bool {
    [
        "AccessDenied",
        "not authorized to perform",
        "UnauthorizedOperation",
    ]
    .iter()
    .any(|k| reason.contains(k))
}

/// What a deploy would do to the monthly bill (`pantstack_synth::cost`): the
/// deployed templates (as CloudFormation keeps them) priced against this
/// checkout's. `null`-valued fields when the price table lacks the region.
async fn bill_change(e: &Env<'_>) -> Value {
    use pantstack_synth::cost;
    let region = e.output.plan.region.clone();
    let prices = match cost::Prices::for_region(cost::PRICES, &region) {
        Ok(p) => p,
        Err(why) => return json!({ "error": why }),
    };
    let mut deployed = pantstack_synth::Output {
        files: Vec::new(),
        plan: e.output.plan.clone(),
    };
    for s in &e.output.plan.stacks {
        let c = e.clients_for(s);
        if let Ok(t) = c
            .cfn
            .get_template()
            .stack_name(&s.name)
            .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
            .send()
            .await
            && let Some(body) = t.template_body()
        {
            deployed.files.push(pantstack_synth::File {
                name: s.template.clone(),
                contents: body.to_string(),
            });
        }
    }
    let total = |o: &pantstack_synth::Output| {
        let lines = cost::estimate(o, &prices);
        (
            lines.iter().map(|l| l.min).sum::<f64>(),
            lines.iter().map(|l| l.max).sum::<f64>(),
        )
    };
    let (b0, b1) = total(&deployed);
    let (a0, a1) = total(&e.output);
    let cents = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "currency": "USD",
        "per": "month",
        "prices_dated": prices.date,
        "deployed": { "min": cents(b0), "max": cents(b1) },
        "after": { "min": cents(a0), "max": cents(a1) },
        "change": { "min": cents(a0 - b0), "max": cents(a1 - b1) },
    })
}

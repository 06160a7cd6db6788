//! `deploy`: the environment's stacks (or some services'), images built and pushed
//! first, each service's ECS deployment judged, under the deploy lock.

use super::observe::{settled_verdicts, verdict_json};
use super::*;

/// What `deploy` needs besides the environment.
#[derive(Clone, Debug)]
pub struct DeployOpts {
    /// Only these services (their stacks); all when empty.
    pub services: Vec<String>,
    /// Delete the stacks of services no longer in the monorepo (whole deploys only).
    pub prune: bool,
    pub source: Source,
    pub units: Vec<pantstack_local::spec::Unit>,
    /// How long to wait for another run's deploy lock (zero: refuse at once).
    pub lock_wait: std::time::Duration,
}

/// Deletes an unplanned stack during a deploy, saying why on its progress line.
async fn delete_unplanned(c: &Clients, p: &Progress, name: &str, why: &str) -> Ran {
    p.set(name, &format!("deleting ({why})"));
    let result = stack::delete_and_wait(c, name, p)
        .await
        .map(|()| Outcome::Deleted);
    p.set(name, if result.is_ok() { "deleted" } else { "failed" });
    Ran {
        name: name.to_string(),
        result,
        outputs: vec![],
    }
}

/// Deploys the environment (or some of its services) holding its deploy lock.
pub async fn deploy(e: &Env<'_>, o: &DeployOpts) -> Result<Value, Failure> {
    // Priorities are read under the lock: no other run deploys a rule meanwhile.
    locked(e, "deploy", o.lock_wait, async {
        let result = match e.pinned().await? {
            Some(pinned) => deploy_unlocked(&pinned, o).await,
            None => deploy_unlocked(e, o).await,
        };
        mark_active(e, result).await
    })
    .await
}

/// A deploy of a preview, whatever it changed (nothing, when the push changed
/// no file of it), is activity: its stamp says so, so `preview gc` judges its
/// idle time from now. A stamp that cannot be written is a warning.
async fn mark_active(e: &Env<'_>, mut result: Result<Value, Failure>) -> Result<Value, Failure> {
    let Some(pr) = crate::preview::pr_of_env(&e.env) else {
        return result;
    };
    let written = async {
        let (bucket, _) = lock_at(e)
            .await
            .map_err(|f| f.message)?
            .ok_or("the shared stack has no template bucket")?;
        let now = crate::preview::now()?;
        crate::slots::touch(
            &e.clients,
            &bucket,
            &e.output.plan.project,
            pr,
            now,
            "deploy",
        )
        .await
    }
    .await;
    if let Err(m) = written {
        let warning = format!(
            "could not mark {} active ({m}): `preview gc` judges its idle time from its stacks' last change",
            e.env
        );
        let report = match &mut result {
            Ok(v) => v,
            Err(f) => &mut f.report,
        };
        match report["warnings"].as_array_mut() {
            Some(w) => w.push(json!(warning)),
            None => report["warnings"] = json!([warning]),
        }
    }
    result
}

/// `preview touch`: marks an existing preview active now, holding its deploy
/// lock (so a `preview gc` that holds it meanwhile, re-checking the preview's
/// idle time, is never overtaken by a stamp it did not see). `exists: false`
/// when the preview has neither stacks nor a stamp.
pub async fn touch(e: &Env<'_>, lock_wait: std::time::Duration) -> Result<Value, Failure> {
    let pr = crate::preview::pr_of_env(&e.env)
        .ok_or_else(|| Failure::new(format!("`{}` is not a preview", e.env)))?;
    let (bucket, _) = lock_at(e).await?.ok_or_else(|| {
        Failure::new(format!(
            "the shared stack {} has no template bucket (it holds the previews' locks and activity stamps): run `pantstack bootstrap --pr 1`",
            e.shared().name
        ))
    })?;
    let project = e.output.plan.project.clone();
    locked(e, "touch", lock_wait, async {
        let exists = crate::preview::one(&e.clients, &project, &bucket, pr)
            .await?
            .is_some();
        let now = crate::preview::now().map_err(Failure::new)?;
        if exists {
            crate::slots::touch(&e.clients, &bucket, &project, pr, now, "touch").await?;
        }
        Ok(json!({ "ok": true, "environment": e.env, "pr": pr, "exists": exists, "now": now }))
    })
    .await
}

async fn deploy_unlocked(e: &Env<'_>, o: &DeployOpts) -> Result<Value, Failure> {
    let c = &e.clients;
    let p = &e.progress;
    let shared = e.shared_outputs().await?;
    let foundation = match e.foundation() {
        Some(f) => match stack::describe(c, &f.name).await? {
            Some(d) if stack::is_success(&d.status) || d.status == "UPDATE_ROLLBACK_COMPLETE" => d,
            Some(d) => {
                return Err(Failure::new(format!(
                    "the foundation stack {} is {}; an administrator runs `pantstack bootstrap --env {}`",
                    f.name, d.status, e.env
                )));
            }
            None => {
                return Err(Failure::new(format!(
                    "environment `{}` has no foundation stack {} yet: an administrator runs `pantstack bootstrap --env {}` once",
                    e.env, f.name, e.env
                )));
            }
        },
        None => stack::Described::default(),
    };
    // Only `bootstrap` deploys the foundation: say when this checkout's differs.
    let mut warnings: Vec<String> = Vec::new();
    if let Some(f) = e.foundation()
        && let Ok(body) = e.body(f)
    {
        let deployed = c
            .cfn
            .get_template()
            .stack_name(&f.name)
            .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
            .send()
            .await
            .ok()
            .and_then(|t| t.template_body().map(str::to_string));
        if deployed.as_deref().is_some_and(|d| d != body) {
            p.set(&f.name, "differs from this checkout's (run bootstrap)");
            warnings.push(format!(
                "the foundation stack {} differs from what this checkout synthesizes: an administrator runs `pantstack bootstrap --env {}` to update it",
                f.name, e.env
            ));
        }
    }
    let mut stacks = service_stacks(e, &o.services);
    // Deploying some services: the Service Connect stack goes along only when every
    // service stack it imports from exists or is in this deployment.
    let mut skipped = Vec::new();
    if !o.services.is_empty() {
        let running: BTreeSet<String> = stacks.iter().map(|(s, _)| s.name.clone()).collect();
        let mut keep = Vec::new();
        for (s, svc) in stacks {
            let mut absent = None;
            if s.name == e.names().calls_stack() {
                for d in s.depends_on.iter().filter(|d| !running.contains(*d)) {
                    match stack::describe(c, d).await? {
                        Some(x)
                            if stack::is_success(&x.status)
                                || x.status.starts_with("UPDATE_ROLLBACK_COMPLETE") => {}
                        _ => {
                            absent = Some(d.clone());
                            break;
                        }
                    }
                }
            }
            match absent {
                Some(d) => {
                    let why = format!(
                        "not deployed: {d} is not deployed yet (deploy it, or the whole environment)"
                    );
                    p.set(&s.name, &why);
                    skipped.push(json!({ "stack": s.name, "result": "skipped", "reason": why }));
                }
                None => keep.push((s, svc)),
            }
        }
        stacks = keep;
    }
    let services: BTreeSet<String> = stacks.iter().filter_map(|(_, s)| s.clone()).collect();
    // Every secret a task definition references must exist, or its tasks never start.
    let wanted: Vec<String> = e
        .output
        .plan
        .secrets
        .iter()
        .filter(|s| services.contains(&s.service))
        .map(|s| s.path.clone())
        .collect();
    let missing = crate::secrets::missing(c, &wanted).await?;
    if !missing.is_empty() {
        let mut m = String::from("secrets the services need are not set:");
        for path in &missing {
            let s = e.output.plan.secrets.iter().find(|s| &s.path == path);
            let (svc, var) = s
                .map(|s| (s.service.as_str(), s.variable.as_str()))
                .unwrap_or(("?", "?"));
            m.push_str(&format!(
                "\n  {path}: set it with `pantstack secrets set {svc} {var} --target aws --env {}`",
                e.env
            ));
        }
        return Err(Failure::new(m));
    }
    // Images.
    let repository_uri = shared
        .output("RepositoryUri")
        .ok_or("the shared stack has no RepositoryUri output; run `pantstack bootstrap` again")?
        .to_string();
    let units: Vec<_> = o
        .units
        .iter()
        .filter(|u| services.contains(&u.service))
        .cloned()
        .collect();
    let planned = images::plan(&units, &o.source)?;
    let mut tags: BTreeMap<(String, String), String> = BTreeMap::new();
    if !planned.is_empty() {
        let host = images::login(c).await?;
        let _ = std::fs::create_dir_all(&e.dir);
        for img in &planned {
            let shipped = images::ship(c, img, &o.source, &repository_uri, &host, &e.dir, p)
                .await
                .map_err(|m| Failure::new(format!("image of {}: {m}", img.service)))?;
            for (param, tag) in shipped {
                tags.insert((img.service.clone(), param), tag);
            }
        }
    }
    // Stacks.
    let bucket = shared.output("TemplateBucket").map(str::to_string);
    let deploy_role = foundation.output("DeployRoleArn").map(str::to_string);
    let mut specs = Vec::new();
    for (s, svc) in &stacks {
        let mut parameters = Vec::new();
        for prm in &s.parameters {
            let v = svc
                .as_ref()
                .and_then(|svc| tags.get(&(svc.clone(), prm.name.clone())));
            parameters.push(match v {
                Some(v) => Param::Value(prm.name.clone(), v.clone()),
                None => Param::Previous(prm.name.clone()),
            });
        }
        specs.push((
            s.clone(),
            Spec {
                name: s.name.clone(),
                template: e.template(s, bucket.as_deref()).await?,
                parameters,
                capabilities: s.capabilities.iter().map(|c| c.to_string()).collect(),
                role_arn: deploy_role.clone(),
                tags: e.tags(),
            },
        ));
    }
    let mut ran = run_stacks(e, specs).await;
    // No service calls another any more: the Service Connect stack left from an
    // earlier deploy goes (its rules would keep the calls open).
    let calls = e.names().calls_stack();
    if e.stack(&calls).is_none() && stack::describe(c, &calls).await?.is_some() {
        let r = delete_unplanned(c, p, &calls, "no calls left").await;
        ran.push(r);
        stacks.push((unplanned(&calls, &c.region, vec![]), None));
    }
    // Stacks of services no longer in the monorepo: said, and deleted on request.
    let mut orphaned = Vec::new();
    for name in e.orphans().await? {
        if o.prune && o.services.is_empty() {
            let r = delete_unplanned(c, p, &name, "its service is no longer in the monorepo").await;
            ran.push(r);
            stacks.push((unplanned(&name, &c.region, vec![]), None));
        } else {
            p.set(
                &name,
                &format!(
                    "orphaned: no service of this monorepo has it; `pantstack deploy --target aws --env {} --prune` deletes it",
                    e.env
                ),
            );
            orphaned.push(name);
        }
    }
    // ECS's verdict on every service whose stack ran (rolled back ones included).
    let mut report: Vec<Value> = skipped;
    let mut ok = true;
    let mut failures = Vec::new();
    for (s, svc) in &stacks {
        let Some(r) = ran.iter().find(|r| r.name == s.name) else {
            continue;
        };
        let mut v = shared_ran_report(r);
        if let Err(f) = &r.result {
            ok = false;
            failures.push(f.render());
        }
        if let Some(svc) = svc {
            let verdicts = settled_verdicts(e, svc, r.result.is_err()).await;
            for x in &verdicts {
                if !x.ok() {
                    ok = false;
                    failures.push(x.render());
                }
            }
            v["service"] = json!(svc);
            v["ecs"] = json!(verdicts.iter().map(verdict_json).collect::<Vec<_>>());
        }
        report.push(v);
    }
    let result = json!({
        "ok": ok,
        "environment": e.env,
        "region": c.region,
        "images": tags.iter().map(|((s, p), t)| json!({ "service": s, "parameter": p, "tag": t })).collect::<Vec<_>>(),
        "stacks": report,
        "orphaned": orphaned,
        "warnings": warnings,
    });
    if ok {
        Ok(result)
    } else {
        Err(Failure {
            message: failures.join("\n"),
            report: result,
        })
    }
}

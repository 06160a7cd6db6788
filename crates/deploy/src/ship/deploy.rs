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
///
/// A preview (`preview-<pr>`) is judged again under that lock: it must exist
/// (a stack, or the slot `preview up` claimed under the previews' lock), else
/// the deploy is refused, since only `preview up` counts a new preview against
/// `previews.max` (a `preview gc` or `down` may have destroyed it while this run
/// waited). One with no stack yet gets every service; its missing secrets are
/// copied from their declared preview values, under the lock (after a
/// teardown's deletion of its parameters, never before).
pub async fn deploy(e: &Env<'_>, o: &DeployOpts) -> Result<Value, Failure> {
    // Priorities are read under the lock: no other run deploys a rule meanwhile.
    locked(e, "deploy", o.lock_wait, async {
        let mut o = o.clone();
        let mut before = match crate::preview::pr_of_env(&e.env) {
            Some(pr) => Some(preview_before(e, pr, &mut o).await?),
            None => None,
        };
        let result = async {
            if let Some(b) = &mut before {
                b.copied = preview_secrets(e, &o).await?;
            }
            match e.pinned().await? {
                Some(pinned) => deploy_unlocked(&pinned, &o).await,
                None => deploy_unlocked(e, &o).await,
            }
        }
        .await;
        match before {
            Some(b) => preview_after(e, b, result).await,
            None => result,
        }
    })
    .await
}

/// A preview as a deploy of it found it, holding its deploy lock.
struct PreviewBefore {
    pr: u64,
    bucket: String,
    /// Whether any stack of it existed (else only its claimed slot).
    had_stacks: bool,
    /// The secrets copied from their declared preview values.
    copied: Vec<String>,
}

/// Holding the preview's deploy lock: refuses a preview that does not exist,
/// and widens a deploy of some services of a preview with no stack to every
/// service.
async fn preview_before(
    e: &Env<'_>,
    pr: u64,
    o: &mut DeployOpts,
) -> Result<PreviewBefore, Failure> {
    let project = e.output.plan.project.clone();
    let (bucket, _) = lock_at(e).await?.ok_or_else(|| {
        Failure::new(format!(
            "the shared stack {} has no template bucket (it holds the previews' locks and activity stamps): run `pantstack bootstrap --pr 1`",
            e.shared().name
        ))
    })?;
    let Some(found) = crate::preview::one(&e.clients, &project, &bucket, pr).await? else {
        return Err(Failure::new(format!(
            "{} does not exist (no stack, no claimed slot): it was destroyed (`preview gc`, `preview down`) or never created, and only `preview up` creates a preview, counting it against previews.max. Run `pantstack preview up --pr {pr}`; nothing was deployed",
            e.env
        )));
    };
    let had_stacks = !found.stacks.is_empty();
    if !had_stacks && !o.services.is_empty() {
        e.progress.note(&format!(
            "{} has no stack yet: deploying every service",
            e.env
        ));
        o.services.clear();
    }
    Ok(PreviewBefore {
        pr,
        bucket,
        had_stacks,
        copied: Vec::new(),
    })
}

/// The secrets a preview's deploy needs and lacks, copied from their declared
/// preview values (under its deploy lock).
async fn preview_secrets(e: &Env<'_>, o: &DeployOpts) -> Result<Vec<String>, Failure> {
    let wanted: Vec<_> = e
        .output
        .plan
        .secrets
        .iter()
        .filter(|s| o.services.is_empty() || o.services.contains(&s.service))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let copied = crate::preview::give_secrets(&e.clients, &e.output.plan.project, &wanted).await?;
    for c in &copied {
        e.progress
            .note(&format!("secret {c}: copied from the preview value"));
    }
    Ok(copied)
}

/// After a deploy of a preview, still holding its lock: a preview that had no
/// stack and still has none after a failed deploy gives its slot back (its
/// stamp goes); any other is marked active.
async fn preview_after(
    e: &Env<'_>,
    b: PreviewBefore,
    result: Result<Value, Failure>,
) -> Result<Value, Failure> {
    let mut result = result;
    let report = match &mut result {
        Ok(v) => v,
        Err(f) => &mut f.report,
    };
    report["secrets_copied"] = json!(b.copied);
    if let Err(f) = &mut result
        && !b.had_stacks
    {
        let project = e.output.plan.project.clone();
        let now = crate::preview::one(&e.clients, &project, &b.bucket, b.pr).await;
        if let Ok(p) = now
            && p.is_none_or(|p| p.stacks.is_empty())
        {
            match crate::slots::forget(&e.clients, &b.bucket, &project, b.pr).await {
                Ok(()) => {
                    f.report["slot_given_back"] = json!(true);
                    f.message.push_str(&format!(
                        "\n{} was not created: its slot is free again",
                        e.env
                    ));
                }
                Err(m) => f.message.push_str(&format!(
                    "\n{} was not created, but its slot could not be given back ({m}): it counts against previews.max until `pantstack preview down --pr {}` or gc removes it",
                    e.env, b.pr
                )),
            }
            return result;
        }
    }
    mark_active(e, result).await
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

/// A new preview whose `preview up` failed before its deploy held the
/// preview's lock gives its claimed slot back: holding that lock, its stamp
/// is deleted if it still has no stack. `given_back: false` when there was
/// nothing to give back (a stack exists, or the slot is gone already).
pub async fn give_back(e: &Env<'_>, lock_wait: std::time::Duration) -> Result<Value, Failure> {
    let pr = crate::preview::pr_of_env(&e.env)
        .ok_or_else(|| Failure::new(format!("`{}` is not a preview", e.env)))?;
    let (bucket, _) = lock_at(e)
        .await?
        .ok_or("the shared stack has no template bucket")?;
    let project = e.output.plan.project.clone();
    locked(e, "give back", lock_wait, async {
        let p = crate::preview::one(&e.clients, &project, &bucket, pr).await?;
        let free = p.is_some_and(|p| p.stacks.is_empty());
        if free {
            crate::slots::forget(&e.clients, &bucket, &project, pr).await?;
        }
        Ok(json!({ "ok": true, "environment": e.env, "given_back": free }))
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
                    "the foundation stack {} is {}; an administrator runs `{}`",
                    f.name,
                    d.status,
                    e.bootstrap_cmd()
                )));
            }
            None => {
                return Err(Failure::new(format!(
                    "environment `{}` has no foundation stack {} yet: an administrator runs `{}` once",
                    e.env,
                    f.name,
                    e.bootstrap_cmd()
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
                "the foundation stack {} differs from what this checkout synthesizes: an administrator runs `{}` to update it",
                f.name,
                e.bootstrap_cmd()
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
            // A preview's secrets are copied from the declared preview value.
            let env = match crate::preview::pr_of_env(&e.env) {
                Some(_) => pantstack_model::foundation::PREVIEW_STACK,
                None => e.env.as_str(),
            };
            m.push_str(&format!(
                "\n  {path}: set it with `pantstack secrets set {svc} {var} --target aws --env {env}`"
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

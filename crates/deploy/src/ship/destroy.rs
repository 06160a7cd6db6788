//! `destroy`: the environment's stacks deleted in reverse order, with what they
//! retain reported (or, when asked, emptied and deleted), its images and
//! parameters, under the deploy lock.

use super::*;

/// Options of `destroy`.
#[derive(Clone, Debug, Default)]
pub struct DestroyOpts {
    /// Also delete the environment's images from ECR.
    pub images: bool,
    /// Also delete the environment's SSM parameters (its secrets).
    pub parameters: bool,
    /// Also empty and delete the buckets the stacks retain.
    pub buckets: bool,
    /// How long to wait for another run's deploy lock (zero: refuse at once).
    pub lock_wait: std::time::Duration,
}

/// Empties a bucket: every object version and delete marker.
async fn empty_bucket(c: &Clients, bucket: &str) -> Result<usize, String> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut removed = 0;
    loop {
        // Data is deleted only while this run holds the environment's lock.
        if let Some(why) = c.lock_watch.lost() {
            return Err(format!(
                "emptying s3://{bucket}: {why}, so this run stopped before deleting more"
            ));
        }
        let page = match c.s3.list_object_versions().bucket(bucket).send().await {
            Ok(p) => p,
            Err(err) => match service_error(&err) {
                Some((code, _)) if code == "NoSuchBucket" => return Ok(removed),
                _ => return Err(format!("cannot list s3://{bucket}: {}", why(&err))),
            },
        };
        let mut ids = Vec::new();
        for v in page.versions() {
            ids.push((
                v.key().unwrap_or_default().to_string(),
                v.version_id().map(str::to_string),
            ));
        }
        for m in page.delete_markers() {
            ids.push((
                m.key().unwrap_or_default().to_string(),
                m.version_id().map(str::to_string),
            ));
        }
        if ids.is_empty() {
            return Ok(removed);
        }
        let objects: Result<Vec<ObjectIdentifier>, _> = ids
            .iter()
            .map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k)
                    .set_version_id(v.clone())
                    .build()
            })
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects.map_err(|e| e.to_string())?))
            .quiet(true)
            .build()
            .map_err(|e| e.to_string())?;
        c.s3.delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|err| format!("cannot empty s3://{bucket}: {}", why(&err)))?;
        removed += ids.len();
    }
}

/// Whether a bucket exists (HeadBucket: `s3:ListBucket` on it, which the CI
/// roles have on their environment's buckets).
async fn bucket_exists(c: &Clients, bucket: &str) -> Result<bool, Failure> {
    match c.s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .raw_response()
                .is_some_and(|r| r.status().as_u16() == 404) =>
        {
            Ok(false)
        }
        Err(err) => Err(Failure::new(format!(
            "cannot tell whether bucket {bucket} exists: {}",
            why(&err)
        ))),
    }
}

/// `api-dev-1a2b3c4` or `api-dev-1a2b3c4-d5e6f7a8` → `api-dev-`.
fn build_prefix(tag: &str) -> Option<String> {
    let (head, last) = tag.rsplit_once('-')?;
    let head = if last.starts_with('d') && last.len() == 8 && is_hex(&last[1..]) {
        let (h, sha) = head.rsplit_once('-')?;
        if !(sha.len() == 7 && is_hex(sha)) {
            return None;
        }
        h
    } else if last.len() == 7 && is_hex(last) {
        head
    } else {
        return None;
    };
    Some(format!("{head}-"))
}

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// What follows a build prefix in a build's tag: `<sha7>` or `<sha7>-d<id7>`.
fn is_build_suffix(rest: &str) -> bool {
    match rest.split_once('-') {
        None => rest.len() == 7 && is_hex(rest),
        Some((sha, d)) => {
            sha.len() == 7 && is_hex(sha) && d.len() == 8 && d.starts_with('d') && is_hex(&d[1..])
        }
    }
}

/// Logical ids of the resources a template keeps when its stack is deleted.
fn retained(template: &str) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(template).unwrap_or(Value::Null);
    v["Resources"]
        .as_object()
        .map(|r| {
            r.iter()
                .filter(|(_, x)| {
                    matches!(
                        x["DeletionPolicy"].as_str(),
                        Some("Retain" | "RetainExceptOnCreate")
                    )
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// What became of one stack in `destroy`.
struct Destroyed {
    name: String,
    /// `deleted` or `absent`.
    result: &'static str,
    error: Option<String>,
    image_tags: Vec<String>,
    kept: Vec<Value>,
}

/// Deletes one stack: notes the image tags it ran and the resources it retains,
/// empties its buckets that are not retained, then deletes it and waits.
async fn destroy_stack(
    sc: Clients,
    p: std::sync::Arc<Progress>,
    name: String,
    keep: BTreeSet<String>,
) -> Destroyed {
    let mut out = Destroyed {
        name: name.clone(),
        result: "deleted",
        error: None,
        image_tags: vec![],
        kept: vec![],
    };
    let run = async {
        let Some(d) = stack::describe(&sc, &name).await? else {
            p.set(&name, "absent");
            out.result = "absent";
            return Ok(());
        };
        for (k, v) in &d.parameters {
            if (k == "ImageTag" || k == "WorkerImageTag") && !v.is_empty() {
                out.image_tags.push(v.clone());
            }
        }
        let resources = sc
            .cfn
            .list_stack_resources()
            .stack_name(&name)
            .send()
            .await
            .map_err(|err| format!("cannot list the resources of {name}: {}", why(&err)))?;
        for r in resources.stack_resource_summaries() {
            let id = r.logical_resource_id().unwrap_or_default();
            let physical = r.physical_resource_id().unwrap_or_default();
            let ty = r.resource_type().unwrap_or_default();
            if keep.contains(id) {
                out.kept.push(
                    json!({ "stack": name, "logical_id": id, "type": ty, "physical_id": physical }),
                );
            } else if ty == "AWS::S3::Bucket" && !physical.is_empty() {
                p.set(&name, &format!("emptying bucket {physical}"));
                empty_bucket(&sc, physical).await?;
            }
        }
        p.set(&name, "deleting");
        stack::delete_and_wait(&sc, &name, &p)
            .await
            .map_err(|f| f.render())?;
        p.set(&name, "deleted");
        Ok::<(), String>(())
    }
    .await;
    if let Err(f) = run {
        p.set(&name, "failed");
        out.error = Some(f);
    }
    out
}

/// Destroys the environment holding its deploy lock (when the shared stack,
/// which holds the lock's bucket, is there; without it nothing is deployed).
pub async fn destroy(e: &Env<'_>, o: &DestroyOpts) -> Result<Value, Failure> {
    if stack::describe(&e.clients, &e.shared().name)
        .await?
        .is_none()
    {
        return destroy_unlocked(e, o).await;
    }
    locked(e, "destroy", o.lock_wait, async {
        let v = destroy_unlocked(e, o).await?;
        forget_preview(e, v).await
    })
    .await
}

/// `preview gc` of one preview: holding the preview's deploy lock (the lock
/// every deploy of it, `preview up`, and `preview touch` hold while they mark
/// it active), its stacks and stamp are read again and it is torn down only if
/// it is still idle for `ttl` seconds at the previews' clock; otherwise it is
/// kept and the report says why (`kept`). A preview whose lock another run
/// holds (a deploy of it is running: it is active) is kept without waiting
/// longer than `o.lock_wait`.
pub async fn destroy_idle(e: &Env<'_>, o: &DestroyOpts, ttl: i64) -> Result<Value, Failure> {
    destroy_judged(e, o, Idle::For(ttl)).await
}

/// `preview up --replace-oldest`'s teardown of the oldest preview: as
/// [`destroy_idle`], but it is torn down only if, under its deploy lock, its
/// last activity is still no later than `last_change` (what the cap was judged
/// by); one marked active since is kept (and said), and the caller tries the
/// next oldest.
pub async fn destroy_unchanged(
    e: &Env<'_>,
    o: &DestroyOpts,
    last_change: i64,
) -> Result<Value, Failure> {
    destroy_judged(e, o, Idle::Since(last_change)).await
}

/// How a preview is judged idle under its lock.
#[derive(Clone, Copy)]
enum Idle {
    /// Idle for this many seconds at the previews' clock.
    For(i64),
    /// No activity after this time.
    Since(i64),
}

async fn destroy_judged(e: &Env<'_>, o: &DestroyOpts, idle: Idle) -> Result<Value, Failure> {
    let c = &e.clients;
    let pr = crate::preview::pr_of_env(&e.env)
        .ok_or_else(|| Failure::new(format!("`{}` is not a preview", e.env)))?;
    let (bucket, key) = lock_at(e).await?.ok_or_else(|| {
        Failure::new(format!(
            "the shared stack {} has no template bucket (it holds the previews' locks and activity stamps): run `pantstack bootstrap --pr 1`",
            e.shared().name
        ))
    })?;
    let kept = |why: String, last: Option<i64>| {
        Ok(json!({
            "ok": true,
            "environment": e.env,
            "kept": why,
            "last_change": last.map(crate::preview::iso8601),
            "stacks": [],
        }))
    };
    let held = match crate::lock::try_acquire(c, &bucket, &key, "gc", o.lock_wait).await? {
        Ok(h) => h,
        Err(who) => {
            return kept(
                format!("locked by {who}: a deploy or destroy of it is running"),
                None,
            );
        }
    };
    held_while(e, held, async {
        let now = crate::preview::now().map_err(Failure::new)?;
        let Some(p) = crate::preview::one(c, &e.output.plan.project, &bucket, pr).await? else {
            return kept("already gone".into(), None);
        };
        let active = match idle {
            Idle::For(ttl) => p.last_change + ttl > now,
            Idle::Since(t) => p.last_change > t,
        };
        if active {
            return kept(
                format!(
                    "active again: its last activity ({}) came after it was listed",
                    crate::preview::iso8601(p.last_change)
                ),
                Some(p.last_change),
            );
        }
        let mut v = destroy_unlocked(e, o).await?;
        v["idle_since"] = json!(crate::preview::iso8601(p.last_change));
        forget_preview(e, v).await
    })
    .await
}

/// A preview whose stacks are all gone gives its slot back: its activity stamp
/// goes too (else it would still count against previews.max).
async fn forget_preview(e: &Env<'_>, mut v: Value) -> Result<Value, Failure> {
    let Some(pr) = crate::preview::pr_of_env(&e.env) else {
        return Ok(v);
    };
    let Some((bucket, _)) = lock_at(e).await? else {
        return Ok(v);
    };
    match crate::slots::forget(&e.clients, &bucket, &e.output.plan.project, pr).await {
        Ok(()) => Ok(v),
        Err(m) => Err(Failure {
            message: format!(
                "the stacks of {} are deleted, but its activity stamp is not ({m}): it still counts against previews.max until `pantstack preview down --pr {pr}` runs again",
                e.env
            ),
            report: {
                v["ok"] = json!(false);
                v
            },
        }),
    }
}

async fn destroy_unlocked(e: &Env<'_>, o: &DestroyOpts) -> Result<Value, Failure> {
    let c = &e.clients;
    let p = &e.progress;
    // Services (and replicas), dependents first; then the environment's own
    // foundation. The shared stack and the previews' shared foundation stay.
    let mut order: Vec<Stack> = service_stacks(e, &[]).into_iter().map(|(s, _)| s).collect();
    order.reverse();
    let own_foundation = e
        .foundation()
        .filter(|f| f.name == format!("{}-foundation", e.names().prefix()))
        .cloned();
    let own_foundation_name = own_foundation.as_ref().map(|f| f.name.clone());
    order.extend(own_foundation);
    // Stacks of services no longer in the monorepo go too (before the foundation
    // they import from, after a Service Connect stack that may import them).
    let orphans = e.orphans().await?;
    for n in &orphans {
        let deps = own_foundation_name.iter().cloned().collect();
        order.insert(0, unplanned(n, &c.region, deps));
    }
    if let Some(sc) = order.iter_mut().find(|s| s.name == e.names().calls_stack()) {
        sc.depends_on.extend(orphans.iter().cloned());
    }
    // A Service Connect stack an earlier deploy left (no service calls another
    // now): it imports the services' groups, so it goes before all of them.
    let calls = e.names().calls_stack();
    if e.stack(&calls).is_none() && stack::describe(c, &calls).await?.is_some() {
        let services: Vec<String> = order
            .iter()
            .filter(|s| s.deployed_by == "ci")
            .map(|s| s.name.clone())
            .collect();
        order.insert(0, unplanned(&calls, &c.region, services));
    }
    let shared = stack::describe(c, &e.shared().name).await?;
    let repository = e.repo.foundation.registry.clone();
    let mut report = Vec::new();
    let mut kept = Vec::new();
    let mut image_tags: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    // The deploy DAG reversed: a stack goes once every stack that depends on it
    // (and is being destroyed) is gone; independent stacks go at once. The
    // stacks a failed one depends on are kept: they still export to it.
    let names: BTreeSet<String> = order.iter().map(|s| s.name.clone()).collect();
    let dependents = |name: &str, of: &[Stack]| -> Vec<String> {
        of.iter()
            .filter(|s| s.depends_on.iter().any(|d| d == name))
            .map(|s| s.name.clone())
            .collect()
    };
    let all = order.clone();
    let mut pending: Vec<Stack> = order;
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    let mut set = tokio::task::JoinSet::new();
    loop {
        let mut i = 0;
        while i < pending.len() {
            let waits_for: Vec<String> = dependents(&pending[i].name, &all)
                .into_iter()
                .filter(|d| names.contains(d))
                .collect();
            if let Some(bad) = waits_for.iter().find(|d| done.get(*d) == Some(&false)) {
                let s = pending.remove(i);
                let why = format!("not deleted: {bad} still uses it");
                p.set(&s.name, &why);
                done.insert(s.name.clone(), false);
                report.push(json!({ "stack": s.name, "result": "kept", "reason": why }));
                continue;
            }
            if waits_for.iter().all(|d| done.get(d) == Some(&true)) {
                let s = pending.remove(i);
                let keep = retained(e.body(&s).unwrap_or_default());
                let sc = e.clients_for(&s);
                let pr = p.clone();
                set.spawn(async move { destroy_stack(sc, pr, s.name, keep).await });
                continue;
            }
            i += 1;
        }
        match set.join_next().await {
            Some(Ok(d)) => {
                done.insert(d.name.clone(), d.error.is_none());
                image_tags.extend(d.image_tags);
                kept.extend(d.kept);
                match d.error {
                    None => report.push(json!({ "stack": d.name, "result": d.result })),
                    Some(f) => {
                        failures.push(f.clone());
                        report.push(json!({ "stack": d.name, "result": "failed", "reason": f }));
                    }
                }
            }
            Some(Err(j)) => {
                failures.push(j.to_string());
                report.push(json!({ "stack": "?", "result": "failed", "reason": j.to_string() }));
            }
            None => break,
        }
    }
    let mut images_deleted = Vec::new();
    // Every build of the deployed tags' branches (`api-dev-<sha>`, with or without
    // `-d<id>`), not only the last one; and of the environment's own branches for
    // every service, so a second `down --images` finds what a first one left.
    let mut prefixes: BTreeSet<String> =
        image_tags.iter().filter_map(|t| build_prefix(t)).collect();
    if let Some(env) = e.repo.foundation.environment(&e.env) {
        for b in env.branches.iter().filter(|b| !b.contains('*')) {
            for u in &e.repo.services {
                let roles = [
                    u.service.http.as_ref().map(|_| false),
                    u.service.worker.as_ref().map(|_| true),
                ];
                for worker in roles.into_iter().flatten() {
                    if let Ok(t) =
                        pantstack_model::tag::branch_tag(&u.service.name, worker, b, "0000000")
                        && let Some(p) = build_prefix(&t)
                    {
                        prefixes.insert(p);
                    }
                }
            }
        }
    }
    // A preview never removes the builds of a long-lived environment's branches
    // (a pull request from `dev` into `main` builds `api-dev-<sha>`, which test
    // runs).
    if e.env
        .starts_with(pantstack_model::foundation::PREVIEW_PREFIX)
    {
        let mut protected: BTreeSet<String> = BTreeSet::new();
        for env in &e.repo.foundation.environments {
            for b in env.branches.iter().filter(|b| !b.contains('*')) {
                for u in &e.repo.services {
                    for worker in [false, true] {
                        if let Ok(t) =
                            pantstack_model::tag::branch_tag(&u.service.name, worker, b, "0000000")
                            && let Some(p) = build_prefix(&t)
                        {
                            protected.insert(p);
                        }
                    }
                }
            }
        }
        prefixes.retain(|p| !protected.contains(p));
        image_tags.retain(|t| build_prefix(t).is_none_or(|p| !protected.contains(&p)));
    }
    // Images are the last step: the stacks are gone whatever happens here. Where
    // the caller may not delete images (the previews' CI role may not: it could
    // delete another environment's), they are left to the repository's lifecycle
    // rule and the report says so.
    let mut images_kept: Option<String> = None;
    if o.images && failures.is_empty() && shared.is_some() && !prefixes.is_empty() {
        let r: Result<(), String> = async {
            use aws_sdk_ecr::types::ImageIdentifier;
            let mut all = image_tags.clone();
            let mut token: Option<String> = None;
            loop {
                let page = c
                    .ecr
                    .list_images()
                    .repository_name(&repository)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|err| format!("cannot list the images: {}", why(&err)))?;
                for id in page.image_ids() {
                    if let Some(t) = id.image_tag()
                        && prefixes
                            .iter()
                            .any(|p| t.strip_prefix(p.as_str()).is_some_and(is_build_suffix))
                    {
                        all.insert(t.to_string());
                    }
                }
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            let tags: Vec<&String> = all.iter().collect();
            for chunk in tags.chunks(100) {
                let ids: Vec<ImageIdentifier> = chunk
                    .iter()
                    .map(|t| ImageIdentifier::builder().image_tag(t.as_str()).build())
                    .collect();
                let r = c
                    .ecr
                    .batch_delete_image()
                    .repository_name(&repository)
                    .set_image_ids(Some(ids))
                    .send()
                    .await
                    .map_err(|err| format!("cannot delete the images: {}", why(&err)))?;
                images_deleted.extend(
                    r.image_ids()
                        .iter()
                        .filter_map(|i| i.image_tag().map(str::to_string)),
                );
            }
            Ok(())
        }
        .await;
        if let Err(why) = r {
            images_kept = Some(format!(
                "{why}; the repository's lifecycle rule expires them"
            ));
        }
    }
    // Buckets retained by stacks an earlier `down` deleted (a teardown retried
    // after a failure). CloudFormation keeps a deleted stack's resources for 90
    // days: they name the buckets it retained, which needs only what a CI role
    // has on its own stacks. For a stack it has no record of (never created, or
    // deleted longer ago), the buckets are found by the names CloudFormation
    // gave them, `{stack}-{logical id}-{suffix}` (lowercase), which needs
    // `s3:ListAllMyBuckets`: never for a preview (its CI role has no such right,
    // and a preview's stacks are never that old).
    let absent: Vec<&str> = report
        .iter()
        .filter(|r| r["result"] == "absent")
        .filter_map(|r| r["stack"].as_str())
        .collect();
    let is_preview = crate::preview::pr_of_env(&e.env).is_some();
    let mut wanted: Vec<(String, String, String)> = Vec::new(); // (prefix, stack, logical id)
    for name in absent {
        let Some(s) = e.stack(name) else { continue };
        let Ok(body) = e.body(s) else { continue };
        let t: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let ids: Vec<String> = retained(body)
            .into_iter()
            .filter(|id| t["Resources"][id]["Type"] == "AWS::S3::Bucket")
            .collect();
        if ids.is_empty() {
            continue;
        }
        let sc = e.clients_for(s);
        let left = stack::deleted_resources(&sc, name)
            .await
            .map_err(Failure::new)?;
        if left.is_empty() && !is_preview {
            wanted.extend(ids.into_iter().map(|id| {
                (
                    format!("{name}-{id}").to_lowercase() + "-",
                    name.to_string(),
                    id,
                )
            }));
            continue;
        }
        for l in left {
            if l.resource_type == "AWS::S3::Bucket"
                && ids.contains(&l.logical_id)
                && !l.physical_id.is_empty()
                && !kept.iter().any(|k| k["physical_id"] == l.physical_id.as_str())
                // An earlier teardown may have deleted it already.
                && bucket_exists(&sc, &l.physical_id).await?
            {
                kept.push(json!({ "stack": name, "logical_id": l.logical_id, "type": "AWS::S3::Bucket", "physical_id": l.physical_id }));
            }
        }
    }
    if !wanted.is_empty() {
        let listed =
            c.s3.list_buckets()
                .send()
                .await
                .map_err(|err| Failure::new(format!("cannot list the buckets: {}", why(&err))))?;
        for b in listed.buckets() {
            let name = b.name().unwrap_or_default();
            if let Some((_, stack, id)) = wanted.iter().find(|(p, ..)| name.starts_with(p.as_str()))
                && !kept.iter().any(|k| k["physical_id"] == name)
            {
                kept.push(json!({ "stack": stack, "logical_id": id, "type": "AWS::S3::Bucket", "physical_id": name }));
            }
        }
    }
    // Retained buckets, on request, once their stacks are gone: emptied (every
    // version and delete marker), then deleted, in their stack's region.
    let mut buckets_deleted = Vec::new();
    if o.buckets && failures.is_empty() {
        for k in kept.iter_mut() {
            if k["type"] != "AWS::S3::Bucket" {
                continue;
            }
            let bucket = k["physical_id"].as_str().unwrap_or_default().to_string();
            let region = k["stack"]
                .as_str()
                .and_then(|n| e.stack(n))
                .map(|s| s.region.clone())
                .unwrap_or_else(|| c.region.clone());
            let bc = if region == c.region {
                c.clone()
            } else {
                c.in_region(&region)
            };
            p.set(&bucket, "emptying");
            empty_bucket(&bc, &bucket).await?;
            match bc.s3.delete_bucket().bucket(&bucket).send().await {
                Ok(_) => {}
                Err(err) if service_error(&err).is_some_and(|(code, _)| code == "NoSuchBucket") => {
                }
                Err(err) => {
                    return Err(Failure::new(format!(
                        "cannot delete bucket {bucket}: {}",
                        why(&err)
                    )));
                }
            }
            p.set(&bucket, "deleted");
            k["deleted"] = json!(true);
            buckets_deleted.push(bucket);
        }
        kept.retain(|k| k["deleted"] != true);
    }
    let mut parameters_deleted = Vec::new();
    if o.parameters && failures.is_empty() {
        let path = format!("/{}/{}/", e.project(), e.env); // the parent of every ssm_path
        let names = crate::secrets::under(c, &path).await?;
        crate::secrets::delete_all(c, &names).await?;
        parameters_deleted = names;
    }
    let v = json!({
        "ok": failures.is_empty(),
        "environment": e.env,
        "stacks": report,
        "retained": kept,
        "images_deleted": images_deleted,
        "images_kept": images_kept,
        "parameters_deleted": parameters_deleted,
        "buckets_deleted": buckets_deleted,
    });
    if failures.is_empty() {
        Ok(v)
    } else {
        Err(Failure {
            message: failures.join("\n"),
            report: v,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tags_of_a_branch_and_no_look_alikes() {
        assert_eq!(build_prefix("api-dev-1a2b3c4").as_deref(), Some("api-dev-"));
        assert_eq!(
            build_prefix("api-worker-dev-1a2b3c4-d0367c93").as_deref(),
            Some("api-worker-dev-")
        );
        assert_eq!(build_prefix("api-v1.2.3"), None);
        assert!(is_build_suffix("1a2b3c4"));
        assert!(is_build_suffix("1a2b3c4-d0367c93"));
        // Branch `dev-foo`: api-dev-foo-1a2b3c4 is not a build of `dev`.
        assert!(!is_build_suffix("foo-1a2b3c4"));
        assert!(!is_build_suffix("1a2b3c4x"));
    }
}

//! The verbs of the aws target: bootstrap, deploy (an environment or some of its
//! services), diff, destroy, status and logs. Each takes the synthesized output of
//! one environment (`pantstack-synth`) and drives AWS with it.

use crate::images::{self, Source};
use crate::progress::Progress;
use crate::stack::{self, Failed, Outcome, Param, Spec, Template};
use crate::verdict::{self, Verdict};
use crate::{Clients, service_error, why};
use pantstack_model::Monorepo;
use pantstack_model::physical::Names;
use pantstack_synth::Output;
use pantstack_synth::plan::Stack;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// One environment on AWS.
pub struct Env<'a> {
    pub repo: &'a Monorepo,
    pub env: String,
    pub output: Output,
    pub clients: Clients,
    pub progress: Arc<Progress>,
    /// `.pantstack/aws/<env>/`: build logs.
    pub dir: PathBuf,
}

/// A failed verb: what to print (already rendered) and the JSON report.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub report: Value,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        let message = message.into();
        Failure {
            report: json!({ "ok": false, "error": message }),
            message,
        }
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Failure {
        Failure::new(s)
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::new(s)
    }
}

const INLINE_MAX: usize = pantstack_synth::cfn::INLINE_TEMPLATE_MAX;

impl Env<'_> {
    fn project(&self) -> &str {
        &self.output.plan.project
    }

    /// The environment's physical names, as synth writes them.
    fn names(&self) -> Names<'_> {
        Names::new(self.project(), &self.env)
    }

    fn stack(&self, name: &str) -> Option<&Stack> {
        self.output.plan.stacks.iter().find(|s| s.name == name)
    }

    fn shared(&self) -> &Stack {
        // Invariant: synth always writes the shared stack first.
        &self.output.plan.stacks[0]
    }

    fn foundation(&self) -> Option<&Stack> {
        self.output
            .plan
            .stacks
            .iter()
            .find(|s| s.deployed_by == "bootstrap" && s.name != self.shared().name)
    }

    fn body(&self, s: &Stack) -> Result<&str, String> {
        self.output
            .file(&s.template)
            .ok_or_else(|| format!("synth wrote no template {}", s.template))
    }

    fn clients_for(&self, s: &Stack) -> Clients {
        if s.region == self.clients.region {
            self.clients.clone()
        } else {
            self.clients.in_region(&s.region)
        }
    }

    fn tags(&self) -> Vec<(String, String)> {
        vec![
            ("pantstack:project".into(), self.project().to_string()),
            ("pantstack:environment".into(), self.env.clone()),
        ]
    }

    /// Stacks of this environment on AWS (by pantstack's tags) that its plan no
    /// longer has: services removed from the monorepo since they were deployed.
    async fn orphans(&self) -> Result<Vec<String>, String> {
        let mut names = stack::tagged(&self.clients, &self.tags()).await?;
        let own_foundation = format!("{}-foundation", self.names().prefix());
        names.retain(|n| {
            self.stack(n).is_none()
                && *n != self.shared().name
                && *n != own_foundation
                && self.foundation().is_none_or(|f| f.name != *n)
                && n.starts_with(&format!("{}-", self.names().prefix()))
                // A Service Connect stack left with no calls is handled on its own.
                && *n != self.names().calls_stack()
        });
        Ok(names)
    }

    /// Uploads a template to the template bucket; the URL CloudFormation reads.
    async fn upload(&self, bucket: &str, s: &Stack, body: &str) -> Result<String, String> {
        let digest = Sha256::digest(body.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let key = format!("{}/{hex}.json", s.name);
        self.clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(
                body.as_bytes().to_vec(),
            ))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot upload the template of {} to s3://{bucket}/{key}: {}",
                    s.name,
                    why(&e)
                )
            })?;
        let region = &self.clients.region;
        Ok(match self.clients.endpoint() {
            Some(ep) => format!("{}/{bucket}/{key}", ep.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"),
        })
    }

    /// The template of a stack as CloudFormation takes it: uploaded when a
    /// template bucket exists, inline only when it fits and none does.
    async fn template(&self, s: &Stack, bucket: Option<&str>) -> Result<Template, String> {
        let body = self.body(s)?;
        match bucket {
            // The replica region's CloudFormation reads the bucket's region too.
            Some(b) if s.region == self.clients.region => {
                let url = self.upload(b, s, body).await?;
                if body.len() > INLINE_MAX {
                    Ok(Template::Url {
                        url,
                        body: body.to_string(),
                    })
                } else {
                    Ok(Template::Body(body.to_string()))
                }
            }
            _ if body.len() > INLINE_MAX => Err(format!(
                "the template of {} is {} bytes, over CloudFormation's 51,200 inline: it needs the template bucket (`pantstack bootstrap --env {}`)",
                s.name,
                body.len(),
                self.env
            )),
            _ => Ok(Template::Body(body.to_string())),
        }
    }

    /// The shared stack's outputs, or what to do when it is missing.
    async fn shared_outputs(&self) -> Result<stack::Described, String> {
        let name = &self.shared().name;
        match stack::describe(&self.clients, name).await? {
            Some(d)
                if stack::is_success(&d.status)
                    || d.status.starts_with("UPDATE_ROLLBACK_COMPLETE") =>
            {
                Ok(d)
            }
            Some(d) => Err(format!(
                "the shared stack {name} is {}; run `pantstack bootstrap --env {}`",
                d.status, self.env
            )),
            None => Err(format!(
                "this account and region ({}) have no {name} stack yet: an administrator runs `pantstack bootstrap --env {}` once",
                self.clients.region, self.env
            )),
        }
    }
}

/// What became of one stack.
#[derive(Debug)]
struct Ran {
    name: String,
    result: Result<Outcome, Failed>,
    outputs: Vec<(String, String)>,
}

/// Runs stacks in dependency order, independent ones at once. A stack whose
/// dependency failed is not attempted.
async fn run_stacks(e: &Env<'_>, specs: Vec<(Stack, Spec)>) -> Vec<Ran> {
    let names: BTreeSet<String> = specs.iter().map(|(s, _)| s.name.clone()).collect();
    let mut pending: Vec<(Stack, Spec)> = specs;
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    let mut ran = Vec::new();
    let mut set = tokio::task::JoinSet::new();
    loop {
        let mut i = 0;
        while i < pending.len() {
            let deps: Vec<String> = pending[i]
                .0
                .depends_on
                .iter()
                .filter(|d| names.contains(*d))
                .cloned()
                .collect();
            if let Some(bad) = deps.iter().find(|d| done.get(*d) == Some(&false)) {
                let (s, _) = pending.remove(i);
                e.progress
                    .set(&s.name, &format!("not deployed: {bad} failed"));
                done.insert(s.name.clone(), false);
                ran.push(Ran {
                    name: s.name.clone(),
                    result: Err(Failed {
                        stack: s.name.clone(),
                        status: None,
                        reason: format!("not deployed because {bad} failed"),
                        resources: vec![],
                        recovery: None,
                    }),
                    outputs: vec![],
                });
                continue;
            }
            if deps.iter().all(|d| done.get(d) == Some(&true)) {
                let (s, spec) = pending.remove(i);
                let c = e.clients_for(&s);
                let p = e.progress.clone();
                set.spawn(async move {
                    let name = s.name.clone();
                    let result = async {
                        if let Ok(Some(d)) = stack::describe(&c, &name).await
                            && stack::is_current(&c, &spec, &d).await
                        {
                            return Ok(Outcome::Unchanged);
                        }
                        let cs = stack::create_change_set(&c, &spec, &p, true).await?;
                        if cs.changes.is_none() {
                            return Ok(Outcome::Unchanged);
                        }
                        p.set(&name, "executing change set");
                        stack::execute(&c, &cs, &p).await
                    }
                    .await;
                    let outputs = match &result {
                        Ok(_) => stack::describe(&c, &name)
                            .await
                            .ok()
                            .flatten()
                            .map(|d| d.outputs)
                            .unwrap_or_default(),
                        Err(_) => vec![],
                    };
                    match &result {
                        Ok(o) => p.set(&name, o.word()),
                        Err(f) => p.set(
                            &name,
                            &format!(
                                "failed: {}",
                                f.status.clone().unwrap_or_else(|| f.reason.clone())
                            ),
                        ),
                    }
                    Ran {
                        name,
                        result,
                        outputs,
                    }
                });
                continue;
            }
            i += 1;
        }
        match set.join_next().await {
            Some(Ok(r)) => {
                done.insert(r.name.clone(), r.result.is_ok());
                ran.push(r);
            }
            Some(Err(j)) => {
                // A panicked task: nothing to attribute it to but the message.
                ran.push(Ran {
                    name: "?".into(),
                    result: Err(Failed {
                        stack: "?".into(),
                        status: None,
                        reason: j.to_string(),
                        resources: vec![],
                        recovery: None,
                    }),
                    outputs: vec![],
                });
            }
            None if pending.is_empty() => break,
            None => {
                // Dependencies outside the run that never resolve: cannot happen,
                // deps outside `names` are ignored above.
                for (s, _) in pending.drain(..) {
                    ran.push(Ran {
                        name: s.name.clone(),
                        result: Err(Failed {
                            stack: s.name.clone(),
                            status: None,
                            reason: "its dependencies never completed".into(),
                            resources: vec![],
                            recovery: None,
                        }),
                        outputs: vec![],
                    });
                }
                break;
            }
        }
    }
    ran
}

/// Options of `bootstrap`.
#[derive(Clone, Debug, Default)]
pub struct BootstrapOpts {
    /// The account's existing GitHub OIDC provider.
    pub oidc_provider_arn: Option<String>,
}

/// The service-linked roles a fresh account lacks (ECS, ELB, Application Auto
/// Scaling for ECS): created, or already there.
const LINKED_ROLES: &[&str] = &[
    "ecs.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
    "ecs.application-autoscaling.amazonaws.com",
];

pub async fn bootstrap(e: &Env<'_>, o: &BootstrapOpts) -> Result<Value, Failure> {
    let c = &e.clients;
    let p = &e.progress;
    let mut linked = Vec::new();
    for svc in LINKED_ROLES {
        let key = format!("service-linked role {svc}");
        match c
            .iam
            .create_service_linked_role()
            .aws_service_name(*svc)
            .send()
            .await
        {
            Ok(_) => {
                p.set(&key, "created");
                linked.push(json!({ "service": svc, "state": "created" }));
            }
            Err(err) => match service_error(&err) {
                Some((code, m))
                    if code == "InvalidInput" && (m.contains("taken") || m.contains("exists")) =>
                {
                    p.set(&key, "exists");
                    linked.push(json!({ "service": svc, "state": "exists" }));
                }
                Some((code, _))
                    if code.contains("AccessDenied") || code.contains("Unauthorized") =>
                {
                    return Err(Failure::new(format!(
                        "cannot create the service-linked role of {svc}: {} (bootstrap needs an administrator's credentials)",
                        why(&err)
                    )));
                }
                _ => {
                    return Err(Failure::new(format!(
                        "cannot create the service-linked role of {svc}: {}",
                        why(&err)
                    )));
                }
            },
        }
    }
    // The shared stack (inline: the template bucket is in it).
    let shared = e.shared().clone();
    let existing = stack::describe(c, &shared.name).await?;
    let mut params = vec![if existing.is_some() {
        Param::Previous("EcsServiceLinkedRole".into())
    } else {
        // Just ensured above.
        Param::Value("EcsServiceLinkedRole".into(), "exists".into())
    }];
    if shared
        .parameters
        .iter()
        .any(|x| x.name == "GitHubOidcProviderArn")
    {
        params.push(match &o.oidc_provider_arn {
            Some(a) => Param::Value("GitHubOidcProviderArn".into(), a.clone()),
            None if existing.is_some() => Param::Previous("GitHubOidcProviderArn".into()),
            None => Param::Value("GitHubOidcProviderArn".into(), String::new()),
        });
    }
    let spec = Spec {
        name: shared.name.clone(),
        template: e.template(&shared, None).await?,
        parameters: params,
        capabilities: shared.capabilities.iter().map(|c| c.to_string()).collect(),
        role_arn: None,
        tags: e.tags(),
    };
    let mut results = run_stacks(e, vec![(shared.clone(), spec)]).await;
    let shared_ran = results.remove(0);
    if let Err(f) = &shared_ran.result {
        return Err(stack_failure(
            vec![shared_ran_report(&shared_ran)],
            f.render(),
        ));
    }
    let outs = e.shared_outputs().await?;
    let bucket = outs.output("TemplateBucket").map(str::to_string);
    let mut report = vec![shared_ran_report(&shared_ran)];
    let Some(f) = e.foundation().cloned() else {
        return Ok(json!({ "ok": true, "stacks": report, "service_linked_roles": linked }));
    };
    let spec = Spec {
        name: f.name.clone(),
        template: e.template(&f, bucket.as_deref()).await?,
        parameters: vec![],
        capabilities: f.capabilities.iter().map(|c| c.to_string()).collect(),
        role_arn: None,
        tags: e.tags(),
    };
    let mut results = run_stacks(e, vec![(f.clone(), spec)]).await;
    let fr = results.remove(0);
    report.push(shared_ran_report(&fr));
    if let Err(err) = &fr.result {
        return Err(stack_failure(report, err.render()));
    }
    let get = |k: &str| {
        fr.outputs
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
    };
    Ok(json!({
        "ok": true,
        "stacks": report,
        "service_linked_roles": linked,
        "repository_uri": outs.output("RepositoryUri"),
        "template_bucket": bucket,
        "deploy_role_arn": get("DeployRoleArn"),
        "ci_role_arn": get("CiRoleArn"),
        "region": c.region,
    }))
}

fn shared_ran_report(r: &Ran) -> Value {
    match &r.result {
        Ok(o) => json!({ "stack": r.name, "result": o.word(), "outputs": outputs_map(&r.outputs) }),
        Err(f) => json!({
            "stack": r.name,
            "result": "failed",
            "status": f.status,
            "reason": f.reason,
            "failed_resources": f.resources.iter().map(|x| json!({
                "logical_id": x.logical_id, "type": x.resource_type, "status": x.status, "reason": x.reason,
            })).collect::<Vec<_>>(),
            "recovery": f.recovery,
        }),
    }
}

fn outputs_map(o: &[(String, String)]) -> Value {
    Value::Object(o.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn stack_failure(stacks: Vec<Value>, message: String) -> Failure {
    Failure {
        report: json!({ "ok": false, "stacks": stacks, "error": message }),
        message,
    }
}

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

/// The service stacks (and replica stacks) of the chosen services, in plan order.
fn service_stacks(e: &Env<'_>, services: &[String]) -> Vec<(Stack, Option<String>)> {
    let prefix = format!("{}-", e.names().prefix());
    e.output
        .plan
        .stacks
        .iter()
        .filter(|s| s.deployed_by == "ci")
        .filter_map(|s| {
            if s.name == e.names().lb_stack() {
                // The shared load balancers: before any HTTP service, always.
                return Some((s.clone(), None));
            }
            if s.name == e.names().calls_stack() {
                // The calls' rules: with the whole environment, or with a service
                // that calls or is called.
                let touched = services.is_empty()
                    || s.depends_on
                        .iter()
                        .any(|d| services.iter().any(|x| *d == format!("{prefix}{x}")));
                return touched.then(|| (s.clone(), None));
            }
            let rest = s.name.strip_prefix(&prefix)?;
            let (svc, replica) = match rest.strip_suffix("-replica") {
                Some(r) if e.repo.service(r).is_some() => (r, true),
                _ => (rest, false),
            };
            e.repo.service(svc)?;
            if !services.is_empty() && !services.iter().any(|x| x == svc) {
                return None;
            }
            Some((s.clone(), (!replica).then(|| svc.to_string())))
        })
        .collect()
}

/// A stack of the environment on AWS that its plan does not have (a Service
/// Connect stack with no calls left, a removed service's): no template, the
/// primary region, deployed by CI, after `depends_on`.
fn unplanned(name: &str, region: &str, depends_on: Vec<String>) -> Stack {
    Stack {
        name: name.to_string(),
        template: String::new(),
        region: region.to_string(),
        deployed_by: "ci",
        capabilities: vec![],
        parameters: vec![],
        depends_on,
        template_bucket: false,
    }
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

/// Runs `run` holding the environment's deploy lock (`lock`): taken first
/// (waiting up to `wait`), released after, whatever `run` returned. The
/// report says whose stale lock was taken over, if one was.
async fn locked<F>(
    e: &Env<'_>,
    verb: &str,
    wait: std::time::Duration,
    run: F,
) -> Result<Value, Failure>
where
    F: std::future::Future<Output = Result<Value, Failure>>,
{
    let c = &e.clients;
    let (bucket, key) = lock_at(e).await?.ok_or_else(|| {
        Failure::new(format!(
            "the shared stack {} has no template bucket (it holds the deploy lock): run `pantstack bootstrap --env {}`",
            e.shared().name,
            e.env
        ))
    })?;
    let held = crate::lock::acquire(c, &bucket, &key, verb, wait, &e.env).await?;
    let mut result = run.await;
    let released = crate::lock::release(c, &held).await;
    if let Ok(v) = &mut result {
        if let Some(h) = &held.took_over {
            v["lock_taken_over"] = json!(h.describe());
        }
        if let Err(m) = released {
            v["lock_release_error"] = json!(m);
        }
    }
    result
}

/// Where the environment's deploy lock lives: the template bucket (an output
/// of the shared stack; none on a shared stack older than it) and its key.
async fn lock_at(e: &Env<'_>) -> Result<Option<(String, String)>, Failure> {
    let bucket = e
        .shared_outputs()
        .await?
        .output("TemplateBucket")
        .map(str::to_string);
    Ok(bucket.map(|b| (b, crate::lock::key(&e.names().prefix()))))
}

/// Who holds the environment's deploy lock, if anyone (`pantstack unlock`).
pub async fn lock_holder(e: &Env<'_>) -> Result<Option<crate::lock::Holder>, Failure> {
    let Some((bucket, key)) = lock_at(e).await? else {
        return Ok(None);
    };
    Ok(crate::lock::holder(&e.clients, &bucket, &key)
        .await?
        .map(|(h, _)| h))
}

/// Removes the environment's deploy lock, whoever holds it.
pub async fn unlock(e: &Env<'_>) -> Result<Value, Failure> {
    let (bucket, key) = lock_at(e).await?.ok_or_else(|| {
        Failure::new("the shared stack has no template bucket: nothing is locked")
    })?;
    let removed = crate::lock::remove(&e.clients, &bucket, &key).await?;
    Ok(json!({ "ok": true, "environment": e.env, "removed": removed }))
}

/// Deploys the environment (or some of its services) holding its deploy lock.
pub async fn deploy(e: &Env<'_>, o: &DeployOpts) -> Result<Value, Failure> {
    locked(e, "deploy", o.lock_wait, deploy_unlocked(e, o)).await
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

fn verdict_json(v: &Verdict) -> Value {
    json!({
        "service": v.service,
        "deployment": v.rollout,
        "reason": v.reason,
        "running": v.running,
        "desired": v.desired,
        "pending": v.pending,
        "task_definition": v.task_definition,
        "stopped_tasks": v.stopped.iter().map(|t| json!({
            "task": t.task,
            "reason": t.reason,
            "containers": t.containers.iter().map(|(n, c, r)| json!({ "name": n, "exit_code": c, "reason": r })).collect::<Vec<_>>(),
            "last_log_lines": t.last_lines,
        })).collect::<Vec<_>>(),
    })
}

/// ECS's verdict once it has one: while a deployment is in progress (CloudFormation
/// may finish before ECS does), it is asked again until `Clients::timeout`.
async fn settled_verdicts(e: &Env<'_>, svc: &str, failed: bool) -> Vec<Verdict> {
    let deadline = std::time::Instant::now() + e.clients.timeout;
    loop {
        let v = service_verdicts(e, svc, failed).await;
        let busy: Vec<&Verdict> = v.iter().filter(|x| x.rollout == "IN_PROGRESS").collect();
        if busy.is_empty() || std::time::Instant::now() > deadline {
            for x in &v {
                e.progress.set(
                    &format!("service {}", x.service),
                    &format!(
                        "{} ({}/{} running)",
                        x.rollout.to_lowercase().replace('_', " "),
                        x.running,
                        x.desired
                    ),
                );
            }
            return v;
        }
        for x in &v {
            e.progress.set(
                &format!("service {}", x.service),
                &format!(
                    "{} ({}/{} running, {} pending)",
                    x.rollout.to_lowercase().replace('_', " "),
                    x.running,
                    x.desired,
                    x.pending
                ),
            );
        }
        tokio::time::sleep(e.clients.poll).await;
    }
}

/// The ECS services of a service's stack and their verdicts.
async fn service_verdicts(e: &Env<'_>, svc: &str, failed: bool) -> Vec<Verdict> {
    let Some(unit) = e.repo.service(svc) else {
        return vec![];
    };
    let mut names = Vec::new();
    if unit.service.http.is_some() {
        names.push(svc.to_string());
    }
    if unit.service.worker.is_some() {
        names.push(format!("{svc}-worker"));
    }
    let cluster = e.names().cluster(svc);
    let log_group = e.names().log_group(svc);
    match verdict::verdict(&e.clients, &cluster, &names, &log_group, failed).await {
        Ok(v) => v,
        Err(m) => vec![Verdict {
            service: svc.to_string(),
            rollout: "UNKNOWN".into(),
            reason: m,
            ..Verdict::default()
        }],
    }
}

/// `diff`: a change set per stack, described and deleted; nothing executed.
pub async fn diff(
    e: &Env<'_>,
    tags: &BTreeMap<(String, String), String>,
) -> Result<Value, Failure> {
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
                stack::discard(&c, cs).await;
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
    locked(e, "destroy", o.lock_wait, destroy_unlocked(e, o)).await
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
    // Buckets retained by stacks an earlier `down` deleted: CloudFormation named
    // them `{stack}-{logical id}-{suffix}` (lowercase); listed like the others, so
    // a second `down --buckets` finds what a first one left.
    let absent: Vec<&str> = report
        .iter()
        .filter(|r| r["result"] == "absent")
        .filter_map(|r| r["stack"].as_str())
        .collect();
    let mut wanted: Vec<(String, String, String)> = Vec::new(); // (prefix, stack, logical id)
    for name in absent {
        let Some(s) = e.stack(name) else { continue };
        let Ok(body) = e.body(s) else { continue };
        let t: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        for id in retained(body) {
            if t["Resources"][&id]["Type"] == "AWS::S3::Bucket" {
                wanted.push((
                    format!("{}-{}-", name, id).to_lowercase(),
                    name.to_string(),
                    id,
                ));
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

/// `status`: every stack of the environment, drift where detected, and each
/// service's tasks and last deployment.
pub async fn status(e: &Env<'_>) -> Result<Value, Failure> {
    let mut stacks = Vec::new();
    let prefix = format!("{}-", e.names().prefix());
    for s in &e.output.plan.stacks {
        let c = e.clients_for(s);
        let d = stack::describe(&c, &s.name).await?;
        let mut v = json!({
            "stack": s.name,
            "region": s.region,
            "status": d.as_ref().map(|d| d.status.clone()).unwrap_or_else(|| "ABSENT".into()),
            "drift": d.as_ref().and_then(|d| d.drift.clone()).filter(|x| x != "NOT_CHECKED"),
        });
        if let Some(d) = &d {
            if let Some(u) = d.output("Url") {
                v["url"] = json!(u);
            }
            let svc = s
                .name
                .strip_prefix(&prefix)
                .filter(|r| e.repo.service(r).is_some());
            if let Some(svc) = svc {
                let verdicts = service_verdicts(e, svc, false).await;
                v["service"] = json!(svc);
                v["ecs"] = json!(verdicts.iter().map(verdict_json).collect::<Vec<_>>());
            }
            v["outputs"] = outputs_map(&d.outputs);
        }
        stacks.push(v);
    }
    // Stacks of services no longer in the monorepo (`deploy --prune` deletes them).
    for n in e.orphans().await? {
        let d = stack::describe(&e.clients, &n).await?;
        stacks.push(json!({
            "stack": n,
            "region": e.clients.region,
            "status": d.map(|d| d.status).unwrap_or_else(|| "ABSENT".into()),
            "orphaned": true,
        }));
    }
    Ok(json!({ "environment": e.env, "region": e.clients.region, "stacks": stacks }))
}

/// One log event.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub ms: i64,
    pub stream: String,
    pub message: String,
}

/// Log events of a service (its worker with `unit` = `svc-worker`) from `since_ms`,
/// across its tasks; the next `since_ms` to follow with.
pub async fn logs(
    e: &Env<'_>,
    service: &str,
    worker: Option<bool>,
    since_ms: i64,
) -> Result<(Vec<LogLine>, i64), Failure> {
    let group = e.names().log_group(service);
    let mut token: Option<String> = None;
    let mut lines = Vec::new();
    let mut next = since_ms;
    for _ in 0..50 {
        let mut req = e
            .clients
            .logs
            .filter_log_events()
            .log_group_name(&group)
            .start_time(since_ms)
            .set_next_token(token.clone());
        if let Some(w) = worker {
            req = req.log_stream_name_prefix(if w { "worker/" } else { "http/" });
        }
        let r = match req.send().await {
            Ok(r) => r,
            Err(err) => match service_error(&err) {
                Some((code, _)) if code == "ResourceNotFoundException" => {
                    return Err(Failure::new(format!(
                        "no log group {group}: `{service}` has not been deployed to `{}`",
                        e.env
                    )));
                }
                _ => return Err(Failure::new(format!("cannot read {group}: {}", why(&err)))),
            },
        };
        for ev in r.events() {
            let ms = ev.timestamp().unwrap_or_default();
            next = next.max(ms + 1);
            lines.push(LogLine {
                ms,
                stream: ev.log_stream_name().unwrap_or_default().to_string(),
                message: ev.message().unwrap_or_default().trim_end().to_string(),
            });
        }
        token = r.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    lines.sort_by_key(|l| l.ms);
    Ok((lines, next))
}

/// The image tags a deployment would use now, for `diff` (nothing built).
pub fn tags_for(
    units: &[pantstack_local::spec::Unit],
    source: &Source,
) -> Result<BTreeMap<(String, String), String>, String> {
    let mut m = BTreeMap::new();
    for img in images::plan(units, source)? {
        for (param, tag) in img.tags {
            m.insert((img.service.clone(), param), tag);
        }
    }
    Ok(m)
}

/// Whether a stack name belongs to the environment (for messages).
pub fn is_env_stack(e: &Env<'_>, name: &str) -> bool {
    e.stack(name).is_some()
}

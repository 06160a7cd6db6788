//! The verbs of the aws target: bootstrap, deploy (an environment or some of its
//! services), diff, destroy, status and logs. Each takes the synthesized output of
//! one environment (`pantstack-synth`) and drives AWS with it.
//!
//! - this file: the environment ([`Env`]), running stacks, the deploy lock around a
//!   verb, and what the verbs share;
//! - `bootstrap`, `deploy`, `diff`, `destroy`: one verb each (the modules of
//!   the functions of those names);
//! - `observe`: `status`, `logs` and ECS's verdicts on services.

mod bootstrap;
mod deploy;
mod destroy;
mod diff;
mod observe;

pub use bootstrap::{BootstrapOpts, bootstrap};
pub use deploy::{DeployOpts, deploy, give_back, touch};
pub use destroy::{DestroyOpts, destroy, destroy_idle, destroy_unchanged};
pub use diff::diff;
pub use observe::{LogLine, logs, status};

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

/// The listener-rule priorities the environment's deployed stacks hold on its
/// shared load balancers, by the service each stack is of
/// (`pantstack_synth::Options::deployed_priorities`): the stacks named
/// `{prefix}-*` in CloudFormation's stack list (ListStacks, which the CI role
/// may call; the load balancer, shared and foundation stacks aside, and those
/// only awaiting a change set), whose rules import this environment's listeners.
/// A stack whose template cannot be read fails the whole: a priority missed
/// could be given twice.
pub async fn deployed_priorities(
    c: &Clients,
    names: &Names<'_>,
) -> Result<BTreeMap<String, Vec<u32>>, String> {
    let prefix = format!("{}-", names.prefix());
    let skip = [
        names.lb_stack(),
        names.shared_stack(),
        names.foundation_stack(),
    ];
    let mut stacks: Vec<String> = Vec::new();
    for s in stack::listed(c).await? {
        if s.status != "REVIEW_IN_PROGRESS"
            && s.name.starts_with(&prefix)
            && !skip.contains(&s.name)
            && !stacks.contains(&s.name)
        {
            stacks.push(s.name);
        }
    }
    let mut out = BTreeMap::new();
    // A few at a time: GetTemplate is throttled per account.
    for chunk in stacks.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for name in chunk {
            let c = c.clone();
            let name = name.clone();
            set.spawn(async move {
                let t = c
                    .cfn
                    .get_template()
                    .stack_name(&name)
                    .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot read the template of {name} (the listener-rule priorities it holds on the shared load balancer): {}",
                            why(&e)
                        )
                    })?;
                Ok::<_, String>((name, t.template_body().unwrap_or_default().to_string()))
            });
        }
        while let Some(r) = set.join_next().await {
            let (name, body) = r.map_err(|e| format!("reading a deployed template: {e}"))??;
            let ps = pantstack_synth::shared_lb::rule_priorities(&body, names);
            if let Some(service) = name.strip_prefix(&prefix)
                && !ps.is_empty()
            {
                out.insert(service.to_string(), ps);
            }
        }
    }
    Ok(out)
}

impl<'a> Env<'a> {
    /// With shared load balancers: this environment synthesized again with the
    /// listener-rule priorities its deployed stacks hold pinned
    /// ([`deployed_priorities`]), so that no deployed service's rules move and
    /// new services take blocks no deployed rule uses. `None` when that changes
    /// nothing (no shared load balancer, or the offline blocks already agree).
    pub async fn pinned(&self) -> Result<Option<Env<'a>>, Failure> {
        if self.stack(&self.names().lb_stack()).is_none() {
            return Ok(None);
        }
        let deployed = deployed_priorities(&self.clients, &self.names()).await?;
        if deployed.is_empty() {
            return Ok(None);
        }
        let opts = pantstack_synth::Options {
            region: Some(self.output.plan.region.clone()),
            deployed_priorities: deployed.clone(),
        };
        let output = pantstack_synth::synth(self.repo, &self.env, &opts).map_err(|d| {
            let why: Vec<String> = d
                .iter()
                .filter(|d| d.is_error())
                .map(|d| format!("{}: {}", d.file, d.message))
                .collect();
            Failure::new(format!(
                "cannot synthesize `{}` with the deployed listener-rule priorities: {}",
                self.env,
                why.join("; ")
            ))
        })?;
        if output.files == self.output.files {
            return Ok(None);
        }
        self.progress.note(&format!(
            "listener-rule priorities on the shared load balancer: {} deployed stack(s) keep theirs, new services take free blocks (offline `synth` chose others)",
            deployed.len()
        ));
        Ok(Some(Env {
            repo: self.repo,
            env: self.env.clone(),
            output,
            clients: self.clients.clone(),
            progress: self.progress.clone(),
            dir: self.dir.clone(),
        }))
    }
}

impl Env<'_> {
    fn project(&self) -> &str {
        &self.output.plan.project
    }

    /// The command that bootstraps this environment: `bootstrap --pr <n>` for
    /// a preview (the previews' shared foundation; any pull request's number
    /// does), `bootstrap --env <env>` otherwise.
    fn bootstrap_cmd(&self) -> String {
        match crate::preview::pr_of_env(&self.env) {
            Some(pr) => format!("pantstack bootstrap --pr {pr}"),
            None => format!("pantstack bootstrap --env {}", self.env),
        }
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
        let prefix = format!("{}-", self.names().prefix());
        let mut names = stack::tagged(&self.clients, &prefix, &self.tags()).await?;
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
                "the template of {} is {} bytes, over CloudFormation's 51,200 inline: it needs the template bucket (`{}`)",
                s.name,
                body.len(),
                self.bootstrap_cmd()
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
                "the shared stack {name} is {}; run `{}`",
                d.status,
                self.bootstrap_cmd()
            )),
            None => Err(format!(
                "this account and region ({}) have no {name} stack yet: an administrator runs `{}` once",
                self.clients.region,
                self.bootstrap_cmd()
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
            "the shared stack {} has no template bucket (it holds the deploy lock): run `{}`",
            e.shared().name,
            e.bootstrap_cmd()
        ))
    })?;
    let held = crate::lock::acquire(c, &bucket, &key, verb, wait, &e.env).await?;
    held_while(e, held, run).await
}

/// Runs `run` holding the environment's deploy lock `held` (renewed meanwhile,
/// released after). The report, failed or not, says whose stale lock was taken
/// over (`lock_taken_over`) and whether the lock was lost (`lock_lost`, naming
/// who took it), could not be renewed (`lock_renew_error`) or released
/// (`lock_release_error`). A run whose lock was lost stops before its next
/// stack operation (`crate::stack`) and fails, whatever it did before.
async fn held_while<F>(e: &Env<'_>, held: crate::lock::Held, run: F) -> Result<Value, Failure>
where
    F: std::future::Future<Output = Result<Value, Failure>>,
{
    let took_over = held.took_over.clone();
    let (result, kept) = crate::lock::hold_while(&e.clients, held, run).await;
    lock_report(result, took_over.as_ref(), &kept)
}

/// A run's result with what became of its lock ([`held_while`]): a lost lock
/// fails a run that succeeded.
fn lock_report(
    mut result: Result<Value, Failure>,
    took_over: Option<&crate::lock::Holder>,
    kept: &crate::lock::Kept,
) -> Result<Value, Failure> {
    let lost = kept.lost_message();
    {
        let v = match &mut result {
            Ok(v) => v,
            Err(f) => &mut f.report,
        };
        if !v.is_object() {
            *v = json!({ "ok": false });
        }
        if let Some(h) = took_over {
            v["lock_taken_over"] = json!(h.describe());
        }
        if let Some(m) = &lost {
            v["ok"] = json!(false);
            v["lock_lost"] = json!(m);
            if let Some(h) = &kept.lost_to {
                v["lock_holder"] = json!(h);
            }
        }
        if let Some(m) = &kept.renew_error {
            v["lock_renew_error"] = json!(m);
        }
        if let Some(m) = &kept.release_error {
            v["lock_release_error"] = json!(m);
        }
    }
    match (result, lost) {
        (Ok(v), Some(m)) => Err(Failure {
            message: format!(
                "{m}; it started no stack operation after that (the report lists what it did before); deploy again once the other run is done"
            ),
            report: v,
        }),
        (r, _) => r,
    }
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

/// The template bucket (the shared stack's output; none on a shared stack older
/// than it): where the deploy locks, the previews' lock and their stamps live.
pub async fn template_bucket(e: &Env<'_>) -> Result<Option<String>, Failure> {
    Ok(lock_at(e).await?.map(|(b, _)| b))
}

/// Which lock `pantstack unlock` removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOf {
    /// The environment's deploy lock.
    Environment,
    /// The previews' lock (`preview up`'s count and claim, `crate::slots`).
    Previews,
}

/// The bucket and key of the lock `which` names.
async fn lock_object(e: &Env<'_>, which: LockOf) -> Result<Option<(String, String)>, Failure> {
    Ok(match which {
        LockOf::Environment => lock_at(e).await?,
        LockOf::Previews => template_bucket(e)
            .await?
            .map(|b| (b, crate::slots::lock_key(&e.output.plan.project))),
    })
}

/// What the unlock report names: the environment, or `previews`.
fn lock_name(e: &Env<'_>, which: LockOf) -> String {
    match which {
        LockOf::Environment => format!("environment `{}`", e.env),
        LockOf::Previews => format!("the previews of `{}`", e.output.plan.project),
    }
}

/// Who holds the lock `which` names, if anyone (`pantstack unlock`), and the
/// lock's ETag, which [`unlock`] takes to remove exactly that lock.
pub async fn lock_holder(
    e: &Env<'_>,
    which: LockOf,
) -> Result<Option<(crate::lock::Holder, String)>, Failure> {
    let Some((bucket, key)) = lock_object(e, which).await? else {
        return Ok(None);
    };
    Ok(crate::lock::holder(&e.clients, &bucket, &key).await?)
}

/// Removes the lock `which` names if it is still the one with ETag `etag` (the
/// one [`lock_holder`] showed); another run's lock taken since is left alone,
/// and said.
pub async fn unlock(e: &Env<'_>, which: LockOf, etag: &str) -> Result<Value, Failure> {
    let (bucket, key) = lock_object(e, which).await?.ok_or_else(|| {
        Failure::new("the shared stack has no template bucket: nothing is locked")
    })?;
    let environment = match which {
        LockOf::Environment => json!(e.env),
        LockOf::Previews => Value::Null,
    };
    let lock = format!("s3://{bucket}/{key}");
    match crate::lock::remove(&e.clients, &bucket, &key, etag).await? {
        crate::lock::Removed::Removed(h) => {
            Ok(json!({ "ok": true, "environment": environment, "lock": lock, "removed": h }))
        }
        crate::lock::Removed::Gone => {
            Ok(json!({ "ok": true, "environment": environment, "lock": lock, "removed": null }))
        }
        crate::lock::Removed::ChangedHands(h) => Err(Failure {
            message: format!(
                "the lock changed hands while you confirmed: {} holds {} now, and was left alone; run `pantstack unlock{}` again if that run is gone too",
                h.describe(),
                lock_name(e, which),
                if which == LockOf::Previews {
                    " --previews"
                } else {
                    ""
                }
            ),
            report: json!({ "ok": false, "environment": environment, "lock": lock, "removed": null, "holder": h }),
        }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Holder, Kept};

    fn holder(owner: &str) -> Holder {
        Holder {
            owner: owner.into(),
            verb: "deploy".into(),
            since: 1_764_842_400,
            expires: 1_764_843_300,
        }
    }

    #[test]
    fn a_lost_lock_fails_the_run_and_is_in_its_report_failed_or_not() {
        let lost = Kept {
            lost: true,
            lost_to: Some(holder("ci-run-99")),
            ..Kept::default()
        };
        let done =
            json!({ "ok": true, "stacks": [{ "stack": "shop-test-api", "result": "updated" }] });
        let f = lock_report(Ok(done), None, &lost).expect_err("a lost lock fails the run");
        assert!(
            f.message.contains("ci-run-99 (deploy)") && f.message.contains("no stack operation"),
            "{}",
            f.message
        );
        assert_eq!(f.report["ok"], false);
        assert!(
            f.report["lock_lost"]
                .as_str()
                .is_some_and(|m| m.contains("ci-run-99"))
        );
        assert_eq!(f.report["lock_holder"]["owner"], "ci-run-99");
        assert_eq!(
            f.report["stacks"][0]["result"], "updated",
            "what it did before"
        );

        // A run that failed anyway keeps its own message; the lock is in its report.
        let failed = Failure::new("stack shop-test-api failed");
        let f = lock_report(Err(failed), Some(&holder("old-run")), &lost).expect_err("failed");
        assert_eq!(f.message, "stack shop-test-api failed");
        assert!(f.report["lock_lost"].is_string(), "{:#}", f.report);
        assert!(
            f.report["lock_taken_over"]
                .as_str()
                .is_some_and(|h| h.starts_with("old-run (deploy)")),
            "{:#}",
            f.report
        );

        // Kept, with a renewal and a release that failed: warnings, still ok.
        let kept = Kept {
            renew_error: Some("timeout".into()),
            release_error: Some("denied".into()),
            ..Kept::default()
        };
        let v = lock_report(Ok(json!({ "ok": true })), None, &kept).expect("ok");
        assert_eq!(v["ok"], true);
        assert!(v["lock_lost"].is_null());
        assert_eq!(v["lock_renew_error"], "timeout");
        assert_eq!(v["lock_release_error"], "denied");
    }
}

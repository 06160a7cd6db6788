//! One stack through a CloudFormation change set: create it (CREATE or UPDATE by
//! the stack's state), wait for it, see whether it has changes, execute it and
//! follow the stack's events to a final state.
//!
//! The states are AWS's: a stack in `ROLLBACK_COMPLETE` (a failed creation) can
//! only be deleted, so it is deleted and created again; one in
//! `UPDATE_ROLLBACK_FAILED` needs `continue-update-rollback`, which is the command
//! printed; a stack with an operation in progress is waited for first.

use crate::progress::Progress;
use crate::{Clients, service_error, why};
use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, Replacement, Tag,
};
use std::time::{Duration, Instant, SystemTime};

/// A stack to deploy.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    /// The template: inline when it fits, else its S3 URL.
    pub template: Template,
    pub parameters: Vec<Param>,
    pub capabilities: Vec<String>,
    /// The role CloudFormation acts as (the environment's deploy role).
    pub role_arn: Option<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub enum Template {
    Body(String),
    /// From the template bucket: the URL CloudFormation reads, and the body it
    /// holds (compared with the stack's template to tell it unchanged).
    Url {
        url: String,
        body: String,
    },
}

#[derive(Clone, Debug)]
pub enum Param {
    Value(String, String),
    /// Keep what the stack has (`UsePreviousValue`); on a new stack, the default.
    Previous(String),
}

/// How a stack's deployment ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// A stack the environment no longer has (the Service Connect stack once no
    /// service calls another).
    Deleted,
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
        }
    }
}

/// A resource that failed, with CloudFormation's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// Why a stack did not reach a good final state.
#[derive(Clone, Debug)]
pub struct Failed {
    pub stack: String,
    /// The state it was left in (`UPDATE_ROLLBACK_COMPLETE`, ...), if known.
    pub status: Option<String>,
    pub reason: String,
    pub resources: Vec<FailedResource>,
    /// What to run to get the stack out of its state, when it needs a person.
    pub recovery: Option<String>,
}

impl Failed {
    fn plain(stack: &str, reason: String) -> Failed {
        Failed {
            stack: stack.to_string(),
            status: None,
            reason,
            resources: Vec::new(),
            recovery: None,
        }
    }

    /// Refuses a stack operation once the run lost its deploy lock
    /// (`Clients::lock_watch`): another run may be changing the environment.
    fn unless_lock_lost(c: &Clients, stack: &str, what: &str) -> Result<(), Failed> {
        match c.lock_watch.lost() {
            Some(why) => Err(Failed::plain(
                stack,
                format!("{what}: {why}, so this run stopped before it"),
            )),
            None => Ok(()),
        }
    }

    pub fn render(&self) -> String {
        let mut s = format!("stack {} failed", self.stack);
        if let Some(st) = &self.status {
            s.push_str(&format!(" ({st})"));
        }
        s.push_str(&format!(": {}", self.reason));
        for r in &self.resources {
            s.push_str(&format!(
                "\n    {} ({}) {}: {}",
                r.logical_id, r.resource_type, r.status, r.reason
            ));
        }
        if let Some(c) = &self.recovery {
            s.push_str(&format!("\n  to recover: {c}"));
        }
        s
    }
}

/// What the stack is, as far as deploying is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Missing,
    /// Created for a change set that was never executed (no resources).
    Review,
    /// A failed creation: only deletion is possible.
    RolledBackCreate,
    /// Needs a person (`continue-update-rollback`, or a failed delete).
    Stuck(String),
    /// An operation is running.
    Busy(String),
    /// Can take an UPDATE change set.
    Ready(String),
}

/// Sorts a stack status into what deploying can do with it.
pub fn classify(status: &str) -> State {
    match status {
        "REVIEW_IN_PROGRESS" => State::Review,
        "ROLLBACK_COMPLETE" => State::RolledBackCreate,
        "DELETE_COMPLETE" => State::Missing,
        "UPDATE_ROLLBACK_FAILED"
        | "ROLLBACK_FAILED"
        | "DELETE_FAILED"
        | "IMPORT_ROLLBACK_FAILED" => State::Stuck(status.to_string()),
        s if s.ends_with("_IN_PROGRESS") => State::Busy(s.to_string()),
        s => State::Ready(s.to_string()),
    }
}

/// Whether a final status is a success of the operation that led to it.
pub fn is_success(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// A stack's status and outputs, or `None` when it does not exist.
pub async fn describe(c: &Clients, name: &str) -> Result<Option<Described>, String> {
    match c.cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => {
            let Some(s) = out.stacks().first() else {
                return Ok(None);
            };
            let status = s
                .stack_status()
                .map(|x| x.as_str().to_string())
                .unwrap_or_default();
            if status == "DELETE_COMPLETE" {
                return Ok(None);
            }
            Ok(Some(Described {
                status,
                reason: s.stack_status_reason().unwrap_or_default().to_string(),
                tags: s.tags().iter().map(|t| pair(t.key(), t.value())).collect(),
                drift: s
                    .drift_information()
                    .and_then(|d| d.stack_drift_status())
                    .map(|x| x.as_str().to_string()),
                outputs: s
                    .outputs()
                    .iter()
                    .map(|o| pair(o.output_key(), o.output_value()))
                    .collect(),
                parameters: s
                    .parameters()
                    .iter()
                    .map(|p| pair(p.parameter_key(), p.parameter_value()))
                    .collect(),
                role_arn: s.role_arn().map(str::to_string),
            }))
        }
        Err(e) => match service_error(&e) {
            Some((_, m)) if m.contains("does not exist") => Ok(None),
            _ => Err(format!("cannot describe stack {name}: {}", why(&e))),
        },
    }
}

/// A stack as CloudFormation's stack list gives it.
#[derive(Clone, Debug)]
pub struct Listed {
    pub name: String,
    pub status: String,
    /// Its last update, else its creation (epoch seconds).
    pub last_change: i64,
}

/// Every stack of the account and region that is not deleted (ListStacks, every
/// page): how a CI role finds stacks, since it may describe only its
/// environment's by name.
pub async fn listed(c: &Clients) -> Result<Vec<Listed>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .cfn
            .list_stacks()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| format!("cannot list the stacks: {}", why(&e)))?;
        for s in page.stack_summaries() {
            let status = s.stack_status().map(|x| x.as_str()).unwrap_or_default();
            let Some(name) = s.stack_name() else {
                continue;
            };
            if status == "DELETE_COMPLETE" {
                continue;
            }
            out.push(Listed {
                name: name.to_string(),
                status: status.to_string(),
                last_change: s
                    .last_updated_time()
                    .or(s.creation_time())
                    .map(|d| d.secs())
                    .unwrap_or_default(),
            });
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// A resource of a deleted stack: logical id, type, physical id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Left {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
}

/// The resources of every deleted stack named `name`: CloudFormation keeps a
/// deleted stack's resources for 90 days, asked by the stack's unique id (from
/// ListStacks). How a teardown finds the buckets a stack it deleted before
/// retained, with the permissions a CI role has on its own stacks (no
/// `s3:ListAllMyBuckets`). Empty when no deleted stack of that name is known.
pub async fn deleted_resources(c: &Clients, name: &str) -> Result<Vec<Left>, String> {
    let mut ids: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .cfn
            .list_stacks()
            .stack_status_filter(aws_sdk_cloudformation::types::StackStatus::DeleteComplete)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| format!("cannot list the deleted stacks: {}", why(&e)))?;
        for s in page.stack_summaries() {
            if s.stack_name() == Some(name)
                && s.stack_status().map(|x| x.as_str()) == Some("DELETE_COMPLETE")
                && let Some(id) = s.stack_id()
                && !ids.iter().any(|x| x == id)
            {
                ids.push(id.to_string());
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let mut token: Option<String> = None;
        loop {
            let page = c
                .cfn
                .list_stack_resources()
                .stack_name(&id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot list the resources of the deleted stack {id}: {}",
                        why(&e)
                    )
                })?;
            for r in page.stack_resource_summaries() {
                out.push(Left {
                    logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: r.resource_type().unwrap_or_default().to_string(),
                    physical_id: r.physical_resource_id().unwrap_or_default().to_string(),
                });
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// The stacks named `{prefix}…` that carry every one of `tags` (and are not
/// deleted), sorted. Names come from ListStacks and tags from a DescribeStacks of
/// each name, never from an unnamed DescribeStacks: a CI role may list stacks
/// (`cloudformation:ListStacks` has no resource-level permissions) and describe
/// only its environment's, and an unnamed DescribeStacks needs every stack.
pub async fn tagged(
    c: &Clients,
    prefix: &str,
    tags: &[(String, String)],
) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for s in listed(c).await? {
        if s.name.starts_with(prefix) && !names.contains(&s.name) {
            names.push(s.name);
        }
    }
    let mut out = Vec::new();
    // A few at a time: DescribeStacks is throttled per account.
    for chunk in names.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for name in chunk {
            let c = c.clone();
            let name = name.clone();
            set.spawn(async move { describe(&c, &name).await.map(|d| (name, d)) });
        }
        while let Some(joined) = set.join_next().await {
            let (name, d) = joined.map_err(|e| format!("a stack description failed: {e}"))??;
            if let Some(d) = d
                && tags.iter().all(|t| d.tags.contains(t))
            {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A key and value the SDK gives as options.
fn pair(k: Option<&str>, v: Option<&str>) -> (String, String) {
    (
        k.unwrap_or_default().to_string(),
        v.unwrap_or_default().to_string(),
    )
}

#[derive(Clone, Debug, Default)]
pub struct Described {
    pub status: String,
    /// The service role CloudFormation acts as for this stack (the deploy role
    /// for the stacks CI deploys).
    pub role_arn: Option<String>,
    pub tags: Vec<(String, String)>,
    pub reason: String,
    pub drift: Option<String>,
    pub outputs: Vec<(String, String)>,
    pub parameters: Vec<(String, String)>,
}

impl Described {
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Waits while an operation runs on the stack; its state after.
async fn settle(c: &Clients, name: &str, p: &Progress) -> Result<Option<Described>, Failed> {
    let deadline = Instant::now() + c.timeout;
    loop {
        let d = describe(c, name)
            .await
            .map_err(|e| Failed::plain(name, e))?;
        match d.as_ref().map(|d| classify(&d.status)) {
            Some(State::Busy(s)) => {
                p.set(name, &format!("waiting: {s}"));
                if Instant::now() > deadline {
                    return Err(Failed::plain(
                        name,
                        format!("still {s} after {} s", c.timeout.as_secs()),
                    ));
                }
                tokio::time::sleep(c.poll).await;
            }
            _ => return Ok(d),
        }
    }
}

/// The change set of one run: unique per run, so two runs never share one.
fn change_set_name() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("pantstack-{ms}")
}

/// A created (not executed) change set.
#[derive(Clone, Debug)]
pub struct ChangeSet {
    pub stack: String,
    pub name: String,
    pub kind: ChangeSetType,
    /// `None`: it has no changes (and was deleted).
    pub changes: Option<Vec<Change>>,
}

/// One resource change of a change set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// For modifications: `True`, `False` or `Conditional`.
    pub replacement: Option<String>,
}

/// Whether the stack already is what `spec` asks for: the same template (as
/// submitted), parameters and tags (a different role alone is no change to
/// CloudFormation either). CloudFormation would answer such a change
/// set with "didn't contain changes"; checking first saves creating one (tens of
/// seconds per stack). Sound for pantstack's templates: they hold no dynamic
/// references and no SSM-typed parameters, whose values could change underneath.
pub async fn is_current(c: &Clients, spec: &Spec, d: &Described) -> bool {
    if !matches!(classify(&d.status), State::Ready(_)) || !is_success(&d.status) {
        return false;
    }
    let body = match &spec.template {
        Template::Body(b) | Template::Url { body: b, .. } => b,
    };
    for p in &spec.parameters {
        if let Param::Value(k, v) = p
            && d.parameters.iter().find(|(x, _)| x == k).map(|(_, y)| y) != Some(v)
        {
            return false;
        }
    }
    if spec.tags.iter().any(|t| !d.tags.contains(t)) || d.tags.len() != spec.tags.len() {
        return false;
    }
    let Ok(t) = c
        .cfn
        .get_template()
        .stack_name(&spec.name)
        .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
        .send()
        .await
    else {
        return false;
    };
    t.template_body() == Some(body.as_str())
}

/// Creates the change set that brings the stack to `spec` and waits for it. A
/// stack whose creation failed (ROLLBACK_COMPLETE) is deleted first, only when
/// `may_delete` (deploy, not diff).
pub async fn create_change_set(
    c: &Clients,
    spec: &Spec,
    p: &Progress,
    may_delete: bool,
) -> Result<ChangeSet, Failed> {
    let name = &spec.name;
    Failed::unless_lock_lost(c, name, "not changed")?;
    let before = settle(c, name, p).await?;
    let kind = match before.as_ref().map(|d| classify(&d.status)) {
        None | Some(State::Missing) | Some(State::Review) => ChangeSetType::Create,
        Some(State::RolledBackCreate) if !may_delete => {
            return Err(Failed {
                stack: name.clone(),
                status: Some("ROLLBACK_COMPLETE".into()),
                reason: "its creation failed; deploy deletes it and creates it again".into(),
                resources: vec![],
                recovery: None,
            });
        }
        Some(State::RolledBackCreate) => {
            p.set(name, "deleting the failed creation (ROLLBACK_COMPLETE)");
            delete_and_wait(c, name, p).await?;
            ChangeSetType::Create
        }
        Some(State::Stuck(s)) => {
            return Err(Failed {
                stack: name.clone(),
                status: Some(s.clone()),
                reason: before.map(|d| d.reason).unwrap_or_default(),
                resources: failed_resources(c, name, None).await,
                recovery: Some(recovery(name, &s, &c.region)),
            });
        }
        Some(State::Busy(_)) => unreachable_busy(name)?,
        Some(State::Ready(_)) => ChangeSetType::Update,
    };
    let cs = change_set_name();
    let mut req = c
        .cfn
        .create_change_set()
        .stack_name(name)
        .change_set_name(&cs)
        .change_set_type(kind.clone())
        .description("pantstack deploy");
    req = match &spec.template {
        Template::Body(b) => req.template_body(b),
        Template::Url { url, .. } => req.template_url(url),
    };
    let creating = kind == ChangeSetType::Create;
    for prm in &spec.parameters {
        let b = Parameter::builder();
        let b = match prm {
            Param::Value(k, v) => b.parameter_key(k).parameter_value(v),
            // A new stack has no previous value: its default applies.
            Param::Previous(_) if creating => continue,
            Param::Previous(k) => b.parameter_key(k).use_previous_value(true),
        };
        req = req.parameters(b.build());
    }
    for cap in &spec.capabilities {
        req = req.capabilities(Capability::from(cap.as_str()));
    }
    if let Some(r) = &spec.role_arn {
        req = req.role_arn(r);
    }
    for (k, v) in &spec.tags {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    p.set(name, "creating change set");
    req.send()
        .await
        .map_err(|e| Failed::plain(name, format!("cannot create a change set: {}", why(&e))))?;
    // Wait for it.
    let deadline = Instant::now() + c.timeout;
    loop {
        let mut changes = Vec::new();
        let mut token: Option<String> = None;
        let mut status;
        let mut reason;
        loop {
            let out = c
                .cfn
                .describe_change_set()
                .stack_name(name)
                .change_set_name(&cs)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    Failed::plain(name, format!("cannot describe the change set: {}", why(&e)))
                })?;
            status = out.status().cloned();
            reason = out.status_reason().unwrap_or_default().to_string();
            for ch in out.changes() {
                if let Some(rc) = ch.resource_change() {
                    changes.push(Change {
                        action: rc.action().map(action_word).unwrap_or("?").to_string(),
                        logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
                        resource_type: rc.resource_type().unwrap_or_default().to_string(),
                        replacement: rc.replacement().map(replacement_word),
                    });
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        match status {
            Some(ChangeSetStatus::CreateComplete) => {
                return Ok(ChangeSet {
                    stack: name.clone(),
                    name: cs,
                    kind,
                    changes: Some(changes),
                });
            }
            Some(ChangeSetStatus::Failed) if no_changes(&reason) => {
                let _ = c
                    .cfn
                    .delete_change_set()
                    .stack_name(name)
                    .change_set_name(&cs)
                    .send()
                    .await;
                return Ok(ChangeSet {
                    stack: name.clone(),
                    name: cs,
                    kind,
                    changes: None,
                });
            }
            Some(ChangeSetStatus::Failed) => {
                let _ = c
                    .cfn
                    .delete_change_set()
                    .stack_name(name)
                    .change_set_name(&cs)
                    .send()
                    .await;
                return Err(Failed::plain(
                    name,
                    format!("the change set failed: {reason}"),
                ));
            }
            _ => {
                if Instant::now() > deadline {
                    return Err(Failed::plain(
                        name,
                        format!(
                            "the change set was not ready after {} s",
                            c.timeout.as_secs()
                        ),
                    ));
                }
                tokio::time::sleep(c.poll.min(Duration::from_secs(2))).await;
            }
        }
    }
}

fn unreachable_busy(name: &str) -> Result<ChangeSetType, Failed> {
    // `settle` returns only when no operation runs.
    Err(Failed::plain(
        name,
        "an operation is still in progress".into(),
    ))
}

/// CloudFormation's words for a change set without changes.
pub fn no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes")
        || reason.contains("No updates are to be performed")
        || reason.contains("no changes")
}

fn action_word(a: &ChangeAction) -> &'static str {
    match a {
        ChangeAction::Add => "add",
        ChangeAction::Modify => "modify",
        ChangeAction::Remove => "remove",
        ChangeAction::Import => "import",
        ChangeAction::Dynamic => "dynamic",
        _ => "change",
    }
}

fn replacement_word(r: &Replacement) -> String {
    r.as_str().to_string()
}

/// The command that gets a stack out of a state that needs a person.
pub fn recovery(stack: &str, status: &str, region: &str) -> String {
    match status {
        "UPDATE_ROLLBACK_FAILED" => format!(
            "aws cloudformation continue-update-rollback --region {region} --stack-name {stack} (add --resources-to-skip LOGICAL_ID for a resource that cannot roll back), then deploy again"
        ),
        "DELETE_FAILED" => format!(
            "fix or remove the resources above, then `aws cloudformation delete-stack --region {region} --stack-name {stack}` (--retain-resources LOGICAL_ID keeps one)"
        ),
        _ => format!(
            "aws cloudformation describe-stack-events --region {region} --stack-name {stack}; delete the stack once nothing in it is needed"
        ),
    }
}

/// Executes a created change set and follows the stack to a final state.
pub async fn execute(c: &Clients, cs: &ChangeSet, p: &Progress) -> Result<Outcome, Failed> {
    let name = &cs.stack;
    Failed::unless_lock_lost(c, name, "its change set was created but not executed")?;
    let started = aws_smithy_types::DateTime::from(SystemTime::now() - Duration::from_secs(5));
    c.cfn
        .execute_change_set()
        .stack_name(name)
        .change_set_name(&cs.name)
        .send()
        .await
        .map_err(|e| Failed::plain(name, format!("cannot execute the change set: {}", why(&e))))?;
    let deadline = Instant::now() + c.timeout;
    loop {
        tokio::time::sleep(c.poll).await;
        let d = describe(c, name)
            .await
            .map_err(|e| Failed::plain(name, e))?;
        let Some(d) = d else {
            return Err(Failed::plain(name, "the stack disappeared".into()));
        };
        match classify(&d.status) {
            State::Busy(s) => {
                let last = last_event(c, name).await;
                p.set(
                    name,
                    &format!("{s}{}", last.map(|l| format!("  {l}")).unwrap_or_default()),
                );
                if Instant::now() > deadline {
                    return Err(Failed::plain(
                        name,
                        format!("still {s} after {} s", c.timeout.as_secs()),
                    ));
                }
            }
            _ if is_success(&d.status) => {
                return Ok(if cs.kind == ChangeSetType::Create {
                    Outcome::Created
                } else {
                    Outcome::Updated
                });
            }
            state => {
                let recovery = match &state {
                    State::Stuck(s) => Some(recovery(name, s, &c.region)),
                    _ => None,
                };
                return Err(Failed {
                    stack: name.clone(),
                    status: Some(d.status.clone()),
                    reason: if d.reason.is_empty() {
                        "the deployment failed and was rolled back".into()
                    } else {
                        d.reason.clone()
                    },
                    resources: failed_resources(c, name, Some(started)).await,
                    recovery,
                });
            }
        }
    }
}

/// The newest event of a stack, as `LogicalId STATUS`.
async fn last_event(c: &Clients, name: &str) -> Option<String> {
    let out = c
        .cfn
        .describe_stack_events()
        .stack_name(name)
        .send()
        .await
        .ok()?;
    let e = out.stack_events().first()?;
    Some(format!(
        "{} {}",
        e.logical_resource_id().unwrap_or_default(),
        e.resource_status().map(|s| s.as_str()).unwrap_or_default()
    ))
}

/// The resources whose events since `since` (newest first, at most 300 events
/// read) say they failed, with the reasons; the stack's own event is left out.
pub async fn failed_resources(
    c: &Clients,
    name: &str,
    since: Option<aws_smithy_types::DateTime>,
) -> Vec<FailedResource> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..3 {
        let Ok(page) = c
            .cfn
            .describe_stack_events()
            .stack_name(name)
            .set_next_token(token.clone())
            .send()
            .await
        else {
            break;
        };
        let mut older = false;
        for e in page.stack_events() {
            if let (Some(s), Some(t)) = (since, e.timestamp())
                && t.secs() < s.secs()
            {
                older = true;
                break;
            }
            let status = e.resource_status().map(|s| s.as_str()).unwrap_or_default();
            let reason = e.resource_status_reason().unwrap_or_default();
            let own = e.resource_type() == Some("AWS::CloudFormation::Stack");
            if status.ends_with("_FAILED") && !own {
                // Resources cancelled because another failed say so; keep the cause.
                if reason.contains("Resource update cancelled")
                    || reason.contains("Resource creation cancelled")
                {
                    continue;
                }
                out.push(FailedResource {
                    logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: e.resource_type().unwrap_or_default().to_string(),
                    status: status.to_string(),
                    reason: reason.to_string(),
                });
            }
        }
        token = page.next_token().map(str::to_string);
        if older || token.is_none() {
            break;
        }
    }
    out.reverse();
    out
}

/// Deletes a change set (diff), and the stack it created if it was a CREATE one,
/// as `role_arn` (the role the change set was made with: a CI role may delete a
/// stack only by passing its deploy role). What cannot be cleaned up is said on
/// the progress line, not hidden: a stack left REVIEW_IN_PROGRESS counts against
/// the account's stack quota.
pub async fn discard(c: &Clients, cs: &ChangeSet, role_arn: Option<&str>, p: &Progress) {
    if let Err(e) = c
        .cfn
        .delete_change_set()
        .stack_name(&cs.stack)
        .change_set_name(&cs.name)
        .send()
        .await
    {
        p.set(
            &cs.stack,
            &format!("change set {} left in place: {}", cs.name, why(&e)),
        );
    }
    if cs.kind == ChangeSetType::Create {
        // Only a stack that is still REVIEW_IN_PROGRESS: it holds nothing.
        if let Ok(Some(d)) = describe(c, &cs.stack).await
            && d.status == "REVIEW_IN_PROGRESS"
            && let Err(e) = c
                .cfn
                .delete_stack()
                .stack_name(&cs.stack)
                .set_role_arn(role_arn.or(d.role_arn.as_deref()).map(str::to_string))
                .send()
                .await
        {
            p.set(
                &cs.stack,
                &format!(
                    "the empty stack diff created is left REVIEW_IN_PROGRESS: {}",
                    why(&e)
                ),
            );
        }
    }
}

/// Deletes a stack and waits until it is gone. The deletion passes the service
/// role the stack was deployed with: CloudFormation acts as it, and the CI roles
/// may delete a stack only through their environment's deploy role
/// (`cloudformation:RoleArn`). An absent stack is gone already.
pub async fn delete_and_wait(c: &Clients, name: &str, p: &Progress) -> Result<(), Failed> {
    Failed::unless_lock_lost(c, name, "not deleted")?;
    let started = aws_smithy_types::DateTime::from(SystemTime::now() - Duration::from_secs(5));
    let Some(before) = describe(c, name)
        .await
        .map_err(|e| Failed::plain(name, e))?
    else {
        return Ok(());
    };
    c.cfn
        .delete_stack()
        .stack_name(name)
        .set_role_arn(before.role_arn)
        .send()
        .await
        .map_err(|e| Failed::plain(name, format!("cannot delete: {}", why(&e))))?;
    let deadline = Instant::now() + c.timeout;
    loop {
        tokio::time::sleep(c.poll).await;
        match describe(c, name)
            .await
            .map_err(|e| Failed::plain(name, e))?
        {
            None => return Ok(()),
            Some(d) if d.status == "DELETE_FAILED" => {
                return Err(Failed {
                    stack: name.to_string(),
                    status: Some(d.status.clone()),
                    reason: d.reason.clone(),
                    resources: failed_resources(c, name, Some(started)).await,
                    recovery: Some(recovery(name, "DELETE_FAILED", &c.region)),
                });
            }
            Some(d) => {
                p.set(name, &d.status);
                if Instant::now() > deadline {
                    return Err(Failed::plain(
                        name,
                        format!("still {} after {} s", d.status, c.timeout.as_secs()),
                    ));
                }
            }
        }
    }
}

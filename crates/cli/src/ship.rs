//! The aws target's commands: `bootstrap`, `diff`, and `up`/`deploy`/`down`/
//! `status`/`logs`/`secrets` with `--target aws`. They synthesize the environment
//! as `synth` does and hand it to `pantstack-deploy`, which drives AWS.
//!
//! Only these functions load the AWS credential chain; every local command returns
//! before reaching here.

use crate::Failure;
use crate::args::{
    BootstrapArgs, DeployArgs, DiffArgs, DownArgs, Global, LogsArgs, SecretName, SecretsAction,
    SecretsArgs, Target, TargetArgs, UnlockArgs,
};
use crate::local::runtime;
use crate::output::Out;
use crate::synth::{Prepared, prepare};
use pantstack_deploy::images::Source;
use pantstack_deploy::progress::Progress;
use pantstack_deploy::ship::{self, Env};
use pantstack_deploy::{Clients, Connect};
use pantstack_model::Monorepo;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::sync::Arc;

mod secrets;
pub use secrets::secrets;

/// The target a command acts on: `--target`, else `PANTSTACK_TARGET`, else the
/// `target:` of the environment the command names with `--env`, else local. An
/// environment reached through the branch (no `--env`) runs locally: `pantstack
/// up` on `main` never deploys to AWS because prod says `target: aws`.
pub fn target(flag: Option<Target>, global: &Global, env: Option<&str>) -> Result<Target, Failure> {
    if let Some(t) = flag {
        return Ok(t);
    }
    match std::env::var("PANTSTACK_TARGET").ok().as_deref() {
        None | Some("") => {}
        Some("local") => return Ok(Target::Local),
        Some("aws") => return Ok(Target::Aws),
        Some(other) => {
            return Err(Failure::Usage(format!(
                "PANTSTACK_TARGET={other}: the targets are `local` and `aws`"
            )));
        }
    }
    let Some(env) = env else {
        return Ok(Target::Local);
    };
    // A monorepo that cannot be found or read: the command itself says why.
    let Ok(root) = crate::commands::find_root(global) else {
        return Ok(Target::Local);
    };
    let loaded = pantstack_model::load(&root);
    let configured = loaded.repo.foundation.environment(env).map(|e| e.target);
    Ok(match configured {
        Some(pantstack_model::foundation::Target::Aws) => Target::Aws,
        _ => Target::Local,
    })
}

/// `--profile`/`--region` only mean something on AWS.
pub fn local_only(t: &TargetArgs) -> Result<(), Failure> {
    if t.profile.is_some() || t.region.is_some() {
        return Err(Failure::Usage(
            "--profile and --region choose an AWS account and region: add --target aws".into(),
        ));
    }
    Ok(())
}

pub(crate) fn connect(
    rt: &tokio::runtime::Runtime,
    p: &Prepared,
    profile: Option<&str>,
) -> Clients {
    let c = Connect {
        profile: profile.map(str::to_string),
        region: p.output.plan.region.clone(),
    };
    rt.block_on(Clients::connect(&c))
}

pub(crate) fn env_of<'a>(p: &'a Prepared, clients: Clients) -> Env<'a> {
    Env {
        repo: &p.repo,
        env: p.env.clone(),
        output: p.output.clone(),
        clients,
        progress: Arc::new(Progress::new()),
        dir: p
            .repo
            .files
            .root
            .join(".pantstack")
            .join("aws")
            .join(&p.env),
    }
}

/// Prints a verb's result: JSON as is, or the text `render` makes of it; a failure
/// prints its message (and its JSON report with --format json) and exits 1.
/// In text, what became of the deploy lock (taken over from a stale holder,
/// lost to another run, not renewed or released) is a warning on stderr.
fn finish(
    out: &Out,
    r: Result<Value, ship::Failure>,
    render: impl Fn(&Value) -> String,
) -> Result<(), Failure> {
    match r {
        Ok(v) => {
            if out.json() {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", render(&v));
                for w in lock_warnings(&v, "") {
                    eprintln!("warning: {w}");
                }
            }
            Ok(())
        }
        Err(f) => {
            if out.json() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&f.report).unwrap_or_default()
                );
            } else {
                if f.report.get("stacks").is_some() {
                    // What was done before the failure (stacks, images).
                    let partial = render(&f.report);
                    if !partial.trim().is_empty() {
                        print!("{partial}");
                    }
                }
                for w in lock_warnings(&f.report, &f.message) {
                    eprintln!("warning: {w}");
                }
            }
            eprintln!("error: {}", f.message);
            Err(Failure::Failed)
        }
    }
}

/// The deploy lock's fields of a report, as warnings for stderr (`lock_lost`
/// not when the error message already says it).
fn lock_warnings(v: &Value, message: &str) -> Vec<String> {
    let said = |k: &str| v[k].as_str().filter(|m| !m.is_empty());
    let mut w = Vec::new();
    if let Some(h) = said("lock_taken_over") {
        w.push(format!("took over the stale deploy lock of {h}"));
    }
    if let Some(m) = said("lock_lost").filter(|m| !message.starts_with(m)) {
        w.push(m.to_string());
    }
    if let Some(m) = said("lock_renew_error") {
        w.push(format!("the deploy lock could not be renewed: {m}"));
    }
    if let Some(m) = said("lock_release_error") {
        w.push(format!(
            "the deploy lock could not be released (it expires by itself): {m}"
        ));
    }
    w
}

fn source(root: &std::path::Path) -> Result<Source, Failure> {
    Ok(Source {
        branch: crate::git::branch(root)?,
        sha: crate::git::head_sha(root)?,
        dirty: crate::git::dirty(root)?,
    })
}

fn units(p: &Prepared) -> Vec<pantstack_local::spec::Unit> {
    pantstack_local::spec::units(
        &p.repo,
        &p.env,
        Some(pantstack_local::spec::Runtime::Docker),
        &pantstack_local::spec::Aws::default(),
    )
}

fn stacks_text(v: &Value) -> String {
    let mut s = String::new();
    for w in v["warnings"].as_array().into_iter().flatten() {
        s.push_str(&format!("  warning: {}\n", w.as_str().unwrap_or_default()));
    }
    for o in v["orphaned"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  orphaned: {} (no service of this monorepo has it; --prune deletes it)\n",
            o.as_str().unwrap_or_default()
        ));
    }
    for st in v["stacks"].as_array().into_iter().flatten() {
        let result = st["result"].as_str().unwrap_or_default();
        let why = match (result, st["reason"].as_str()) {
            ("skipped" | "kept", Some(r)) => format!(" ({r})"),
            _ => String::new(),
        };
        s.push_str(&format!(
            "  {:<40} {result}{why}\n",
            st["stack"].as_str().unwrap_or_default(),
        ));
        for e in st["ecs"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "    {}: deployment {} — {} running, {} desired{}\n",
                e["service"].as_str().unwrap_or_default(),
                e["deployment"].as_str().unwrap_or_default().to_lowercase(),
                e["running"],
                e["desired"],
                e["reason"]
                    .as_str()
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        for (k, val) in st["outputs"].as_object().into_iter().flatten() {
            if k == "ClusterName" || k == "TaskSecurityGroupId" || k == "WorkerSecurityGroupId" {
                continue;
            }
            s.push_str(&format!("    {k}: {}\n", val.as_str().unwrap_or_default()));
        }
    }
    s
}

pub fn bootstrap(global: &Global, out: &Out, a: &BootstrapArgs) -> Result<(), Failure> {
    let p = prepare(global, out, a.env.as_deref(), a.pr, a.region.as_deref())?;
    let rt = runtime()?;
    let clients = connect(&rt, &p, a.profile.as_deref());
    let e = env_of(&p, clients);
    eprintln!(
        "bootstrapping `{}` in {} ({})",
        p.env,
        p.output.plan.region,
        e.clients.endpoint().unwrap_or("AWS")
    );
    let opts = ship::BootstrapOpts {
        oidc_provider_arn: a.oidc_provider_arn.clone(),
    };
    let r = rt.block_on(ship::bootstrap(&e, &opts));
    finish(out, r, |v| {
        let mut s = stacks_text(v);
        if v["ok"] == json!(true) {
            s.push_str(&format!(
                "repository: {}\ntemplate bucket: {}\ndeploy role: {}\n",
                v["repository_uri"].as_str().unwrap_or("-"),
                v["template_bucket"].as_str().unwrap_or("-"),
                v["deploy_role_arn"].as_str().unwrap_or("-"),
            ));
            match v["ci_role_arn"].as_str() {
                Some(ci) => s.push_str(&format!(
                    "CI role: {ci}\n\nIn GitHub (Settings → Secrets and variables → Actions → Variables):\n  AWS_ROLE_ARN = {ci}\n  AWS_REGION   = {}\nand in the workflow (or let `pantstack workflows` write them): a job with `environment: {}` (the role trusts that GitHub environment's jobs only) and permissions: id-token: write; aws-actions/configure-aws-credentials with role-to-assume: ${{{{ vars.AWS_ROLE_ARN }}}}; then `pantstack deploy --target aws`.\n",
                    v["region"].as_str().unwrap_or_default(),
                    Monorepo::stack_name(&p.env)
                )),
                None => s.push_str("no CI role: the foundation manifest names no GitHub repository (github:)\n"),
            }
        }
        s
    })
}

pub fn deploy(global: &Global, out: &Out, a: &DeployArgs) -> Result<(), Failure> {
    if a.prune && a.service.is_some() {
        return Err(Failure::Usage(
            "--prune deletes the stacks of services no longer in the monorepo: deploy the whole environment (no SERVICE) with it".into(),
        ));
    }
    deploy_services(
        global,
        out,
        a.env.as_deref(),
        a.service.iter().cloned().collect(),
        &a.target,
        a.prune,
        a.lock_wait.as_deref(),
    )
}

/// `--lock-wait` on a local command.
pub fn lock_wait_is_aws() -> Failure {
    Failure::Usage(
        "--lock-wait waits for the deploy lock of an environment on AWS: add --target aws".into(),
    )
}

/// `--lock-wait DURATION`: `90`, `90s`, `15m`, `1h`.
pub(crate) fn lock_wait(v: Option<&str>) -> Result<std::time::Duration, Failure> {
    match v {
        None => Ok(std::time::Duration::ZERO),
        Some(t) => pantstack_manifest::read::parse_duration(t)
            .filter(|s| *s <= 24 * 3600)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--lock-wait takes a duration of at most a day such as 90s, 15m or 1h, not `{t}`"
                ))
            }),
    }
}

pub fn deploy_services(
    global: &Global,
    out: &Out,
    env: Option<&str>,
    services: Vec<String>,
    t: &TargetArgs,
    prune: bool,
    wait: Option<&str>,
) -> Result<(), Failure> {
    let lock_wait = lock_wait(wait)?;
    let p = prepare(global, out, env, None, t.region.as_deref())?;
    // `api-worker` deploys the service it belongs to: one stack holds both roles.
    let mut wanted = Vec::new();
    for s in services {
        let name = service_of_unit(&p.repo, &s)?.0;
        if !wanted.contains(&name) {
            wanted.push(name);
        }
    }
    let src = source(&p.repo.files.root)?;
    let rt = runtime()?;
    let clients = connect(&rt, &p, t.profile.as_deref());
    let e = env_of(&p, clients);
    eprintln!(
        "deploying `{}` to {} ({}) from {} {}{}",
        p.env,
        p.output.plan.region,
        e.clients.endpoint().unwrap_or("AWS"),
        src.branch,
        &src.sha[..src.sha.len().min(7)],
        if src.dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    );
    let opts = ship::DeployOpts {
        services: wanted,
        prune,
        source: src,
        units: units(&p),
        lock_wait,
    };
    let r = rt.block_on(ship::deploy(&e, &opts));
    finish(out, r, |v| {
        let mut s = String::new();
        for i in v["images"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "  image {:<30} {}\n",
                format!(
                    "{} ({})",
                    i["service"].as_str().unwrap_or_default(),
                    i["parameter"].as_str().unwrap_or_default()
                ),
                i["tag"].as_str().unwrap_or_default()
            ));
        }
        s.push_str(&stacks_text(v));
        s
    })
}

pub fn diff(global: &Global, out: &Out, a: &DiffArgs) -> Result<(), Failure> {
    let p = prepare(global, out, a.env.as_deref(), a.pr, a.region.as_deref())?;
    let src = source(&p.repo.files.root)?;
    let tags = if src.dirty {
        eprintln!(
            "note: the working tree has uncommitted changes; deploy would build images with new tags, so image tags are compared as deployed"
        );
        Default::default()
    } else {
        ship::tags_for(&units(&p), &src).map_err(Failure::Resolve)?
    };
    let rt = runtime()?;
    let clients = connect(&rt, &p, a.profile.as_deref());
    let e = env_of(&p, clients);
    let r = rt.block_on(ship::diff(&e, &tags));
    finish(out, r, |v| {
        let mut s = String::new();
        for st in v["stacks"].as_array().into_iter().flatten() {
            let name = st["stack"].as_str().unwrap_or_default();
            if let Some(err) = st["error"].as_str() {
                s.push_str(&format!("{name}: cannot compare: {err}\n"));
                continue;
            }
            if let Some(why) = st["not_compared"].as_str() {
                s.push_str(&format!("{name}: not compared: {why}\n"));
                continue;
            }
            let changes = st["changes"].as_array().cloned().unwrap_or_default();
            if changes.is_empty() {
                s.push_str(&format!("{name}: no changes\n"));
                continue;
            }
            s.push_str(&format!(
                "{name}:{}\n",
                if st["exists"] == json!(false) {
                    " (new stack)"
                } else {
                    ""
                }
            ));
            for c in &changes {
                let sign = match c["action"].as_str() {
                    Some("add") => "+",
                    Some("remove") => "-",
                    _ => "~",
                };
                let repl = match c["replacement"].as_str() {
                    Some("True") => " (replaced)",
                    Some("Conditional") => " (may be replaced)",
                    _ => "",
                };
                s.push_str(&format!(
                    "  {sign} {} {}{repl}\n",
                    c["logical_id"].as_str().unwrap_or_default(),
                    c["type"].as_str().unwrap_or_default()
                ));
            }
        }
        let bill = &v["cost"];
        if let Some(err) = bill["error"].as_str() {
            s.push_str(&format!("cost: not estimated ({err})\n"));
        } else if bill.is_object() {
            let m = |x: &Value| x.as_f64().unwrap_or_default();
            s.push_str(&format!(
                "cost a month (USD, prices of {}, `pantstack cost` itemizes): {:.2} .. {:.2} now, {:.2} .. {:.2} after: {:+.2} .. {:+.2}\n",
                bill["prices_dated"].as_str().unwrap_or_default(),
                m(&bill["deployed"]["min"]),
                m(&bill["deployed"]["max"]),
                m(&bill["after"]["min"]),
                m(&bill["after"]["max"]),
                m(&bill["change"]["min"]),
                m(&bill["change"]["max"]),
            ));
        }
        s
    })
}

/// Before an irreversible step: on a terminal, asks `question` and goes on only
/// when the answer is `word`; without one, refuses with `no_terminal` (which
/// names the `--yes` that skips the question).
pub(crate) fn confirm(
    question: &str,
    word: &str,
    no_terminal: String,
    declined: &str,
) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::Usage(no_terminal));
    }
    eprint!("{question}");
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| Failure::Io(format!("cannot read the answer: {e}")))?;
    if line.trim() != word {
        return Err(Failure::Usage(declined.into()));
    }
    Ok(())
}

/// `pantstack unlock --target aws`: shows who holds the environment's deploy
/// lock and removes it (after confirmation, or with --yes).
pub fn unlock(global: &Global, out: &Out, a: &UnlockArgs) -> Result<(), Failure> {
    let which = if a.previews {
        if a.target.target == Some(crate::args::Target::Local) {
            return Err(Failure::Usage(
                "the previews' lock is on AWS (the local cloud has no previews): leave out --target local".into(),
            ));
        }
        ship::LockOf::Previews
    } else {
        ship::LockOf::Environment
    };
    // The previews' lock lives with every preview's records: reached through a
    // preview environment's synthesis (any pull request number).
    let p = prepare(
        global,
        out,
        a.env.as_deref(),
        a.previews.then_some(1),
        a.target.region.as_deref(),
    )?;
    let (name, is, what, answer, again) = match which {
        ship::LockOf::Environment => (
            format!("environment `{}`", p.env),
            "is",
            "the environment's name",
            p.env.clone(),
            "",
        ),
        ship::LockOf::Previews => (
            format!("the previews of `{}`", p.output.plan.project),
            "are",
            "`previews`",
            "previews".to_string(),
            " --previews",
        ),
    };
    let rt = runtime()?;
    let clients = connect(&rt, &p, a.target.profile.as_deref());
    let e = env_of(&p, clients);
    let held = rt.block_on(ship::lock_holder(&e, which));
    let held = match held {
        Ok(h) => h,
        Err(f) => return finish(out, Err(f), |_| String::new()),
    };
    let environment = (which == ship::LockOf::Environment).then(|| p.env.clone());
    let Some((h, etag)) = held else {
        return finish(
            out,
            Ok(json!({ "ok": true, "environment": environment, "removed": null })),
            |_| format!("{name} {is} not locked\n"),
        );
    };
    if !a.yes {
        confirm(
            &format!(
                "{name} {is} locked by {}. Remove the lock only if that run is gone. Type {what} to go on: ",
                h.describe()
            ),
            &answer,
            format!(
                "{name} {is} locked by {}; without a terminal to confirm on, add --yes to remove the lock (`pantstack unlock{again} --yes`)",
                h.describe()
            ),
            "not confirmed; the lock stays",
        )?;
    }
    let r = rt.block_on(ship::unlock(&e, which, &etag));
    finish(out, r, |v| match v["removed"]["owner"].as_str() {
        Some(o) => format!(
            "removed the lock of {name} held by {o} ({})\n",
            v["removed"]["verb"].as_str().unwrap_or_default()
        ),
        None => "the lock was already gone\n".into(),
    })
}

pub fn down(global: &Global, out: &Out, a: &DownArgs) -> Result<(), Failure> {
    let r = down_report(global, out, a, Judge::Always)?;
    finish(out, r, down_text)
}

/// How a teardown judges a preview first, holding its deploy lock.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Judge {
    /// No judging: `down`.
    Always,
    /// `preview gc`: only if still idle for this many seconds (else kept, and said).
    IdleFor(i64),
    /// `preview up --replace-oldest`: only if no activity after this time.
    UnchangedSince(i64),
}

/// A teardown's report (or its failure), not printed: `down` prints it, and
/// `preview gc` gathers its previews' into one.
pub(crate) fn down_report(
    global: &Global,
    out: &Out,
    a: &DownArgs,
    judge: Judge,
) -> Result<Result<Value, ship::Failure>, Failure> {
    let p = prepare(
        global,
        out,
        a.env.as_deref(),
        None,
        a.target.region.as_deref(),
    )?;
    if crate::aws::is_production(&p.env) && (!a.allow_prod || a.env.is_none()) {
        return Err(Failure::Usage(format!(
            "`{}` is production: destroying it needs --env {} --allow-prod",
            p.env, p.env
        )));
    }
    if !a.yes {
        confirm(
            &format!(
                "This deletes the stacks of `{}` in {} ({}the shared stack stays). Type the environment's name to go on: ",
                p.env,
                p.output.plan.region,
                if a.buckets {
                    "AND the buckets they retain, with all their data; "
                } else {
                    "retained buckets and "
                }
            ),
            &p.env,
            format!(
                "this destroys environment `{}` on AWS; without a terminal to confirm on, add --yes",
                p.env
            ),
            "not confirmed; nothing was deleted",
        )?;
    }
    let rt = runtime()?;
    let clients = connect(&rt, &p, a.target.profile.as_deref());
    let e = env_of(&p, clients);
    let opts = ship::DestroyOpts {
        images: a.images,
        parameters: a.parameters,
        buckets: a.buckets,
        lock_wait: lock_wait(a.lock_wait.as_deref())?,
    };
    Ok(match judge {
        Judge::Always => rt.block_on(ship::destroy(&e, &opts)),
        Judge::IdleFor(ttl) => rt.block_on(ship::destroy_idle(&e, &opts, ttl)),
        Judge::UnchangedSince(t) => rt.block_on(ship::destroy_unchanged(&e, &opts, t)),
    })
}

/// A teardown's report as text.
pub(crate) fn down_text(v: &Value) -> String {
    if let Some(why) = v["kept"].as_str() {
        return format!(
            "{} kept: {why}; nothing was deleted\n",
            v["environment"].as_str().unwrap_or_default()
        );
    }
    let mut s = stacks_text(v);
    for r in v["retained"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  retained: {} {} ({}, from {})\n",
            r["type"].as_str().unwrap_or_default(),
            r["physical_id"].as_str().unwrap_or_default(),
            r["logical_id"].as_str().unwrap_or_default(),
            r["stack"].as_str().unwrap_or_default()
        ));
    }
    for b in v["buckets_deleted"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  deleted bucket {}\n",
            b.as_str().unwrap_or_default()
        ));
    }
    let imgs = v["images_deleted"].as_array().map(Vec::len).unwrap_or(0);
    let prms = v["parameters_deleted"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    if let Some(k) = v["images_kept"].as_str() {
        s.push_str(&format!("  images kept: {k}\n"));
    }
    if imgs > 0 || prms > 0 {
        s.push_str(&format!(
            "  deleted {imgs} image(s) and {prms} parameter(s)\n"
        ));
    }
    s
}

pub fn status(
    global: &Global,
    out: &Out,
    env: Option<&str>,
    t: &TargetArgs,
) -> Result<(), Failure> {
    let p = prepare(global, out, env, None, t.region.as_deref())?;
    let rt = runtime()?;
    let clients = connect(&rt, &p, t.profile.as_deref());
    let e = env_of(&p, clients);
    let r = rt.block_on(ship::status(&e));
    finish(out, r, |v| {
        let mut s = format!(
            "{} in {}\n",
            v["environment"].as_str().unwrap_or_default(),
            v["region"].as_str().unwrap_or_default()
        );
        for st in v["stacks"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "  {:<40} {}{}\n",
                st["stack"].as_str().unwrap_or_default(),
                st["status"].as_str().unwrap_or_default(),
                if st["orphaned"] == true {
                    " (orphaned: no service of this monorepo has it; `deploy --prune` deletes it)"
                        .to_string()
                } else {
                    st["drift"]
                        .as_str()
                        .map(|d| format!(" (drift: {d})"))
                        .unwrap_or_default()
                }
            ));
            for e in st["ecs"].as_array().into_iter().flatten() {
                s.push_str(&format!(
                    "    {}: {} running / {} desired / {} pending; last deployment {}\n",
                    e["service"].as_str().unwrap_or_default(),
                    e["running"],
                    e["desired"],
                    e["pending"],
                    e["deployment"].as_str().unwrap_or_default().to_lowercase()
                ));
            }
            if let Some(u) = st["url"].as_str() {
                s.push_str(&format!("    url: {u}\n"));
            }
        }
        s
    })
}

pub fn logs(global: &Global, out: &Out, a: &LogsArgs) -> Result<(), Failure> {
    let p = prepare(
        global,
        out,
        a.env.as_deref(),
        None,
        a.target.region.as_deref(),
    )?;
    let Some(unit) = &a.service else {
        return Err(Failure::Usage(
            "logs on AWS: name a service (`pantstack logs api --target aws --env ENV`)".into(),
        ));
    };
    let (service, worker) = service_of_unit(&p.repo, unit)?;
    if p.repo.service(&service).is_none() {
        return Err(Failure::Resolve(format!(
            "no service `{service}` in this monorepo (services: {})",
            p.repo.service_names().join(", ")
        )));
    }
    let since_ms = match &a.since {
        Some(d) => {
            let secs = pantstack_manifest::read::parse_duration(d).ok_or_else(|| {
                Failure::Usage(format!(
                    "--since {d}: expected a duration such as 30s, 10m, 2h, 1d"
                ))
            })?;
            now_ms() - (secs as i64) * 1000
        }
        None => now_ms() - 3_600_000,
    };
    let rt = runtime()?;
    let clients = connect(&rt, &p, a.target.profile.as_deref());
    let e = env_of(&p, clients);
    let mut since = since_ms;
    loop {
        let (lines, next) = match rt.block_on(ship::logs(&e, &service, worker, since)) {
            Ok(x) => x,
            Err(f) => {
                eprintln!("error: {}", f.message);
                return Err(Failure::Failed);
            }
        };
        for l in &lines {
            if out.json() {
                println!(
                    "{}",
                    json!({ "timestamp_ms": l.ms, "stream": l.stream, "message": l.message })
                );
            } else {
                let t = pantstack_rt::clock::rfc3339_micros(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(l.ms.max(0) as u64),
                );
                println!(
                    "{} {} {}",
                    t.get(..23).unwrap_or(&t),
                    printable(&l.stream),
                    printable(&l.message)
                );
            }
        }
        since = next;
        if !a.follow {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// The service a unit name (`api`, `api-worker`) belongs to, and whether it names
/// the worker role; a `-worker` of a service without a worker is refused.
pub(crate) fn service_of_unit(
    repo: &Monorepo,
    unit: &str,
) -> Result<(String, Option<bool>), Failure> {
    if repo.service(unit).is_some() {
        return Ok((unit.to_string(), None));
    }
    if let Some(base) = unit.strip_suffix("-worker")
        && let Some(s) = repo.service(base)
    {
        if s.service.worker.is_none() {
            return Err(Failure::Resolve(format!(
                "`{base}` has no worker (no `worker:` section), so there is no `{unit}`"
            )));
        }
        return Ok((base.to_string(), Some(true)));
    }
    Err(Failure::Resolve(format!(
        "no service `{unit}` in this monorepo (services: {})",
        repo.service_names().join(", ")
    )))
}

/// A log line for a terminal: control characters (escape sequences a task wrote)
/// shown as `\u{..}` instead of acting on the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn aws_failure(m: String) -> Failure {
    eprintln!("error: {m}");
    Failure::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_became_of_the_lock_is_a_warning_in_text() {
        let v = json!({
            "lock_taken_over": "old-run (deploy) since 2025-12-04T10:00:00Z",
            "lock_lost": "this run lost its deploy lock while it ran: ci-run-99 (deploy) since 2025-12-04T10:05:00Z took it over",
            "lock_release_error": "denied",
        });
        let w = lock_warnings(&v, "stack shop-test-api failed");
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("old-run (deploy)"), "{w:?}");
        assert!(w[1].contains("ci-run-99 (deploy)"), "{w:?}");
        assert!(w[2].contains("denied"), "{w:?}");
        // Not twice when the error says it already.
        let said = format!(
            "{}; it started no stack operation after that",
            v["lock_lost"].as_str().unwrap_or_default()
        );
        assert_eq!(lock_warnings(&v, &said).len(), 2);
        assert!(lock_warnings(&json!({ "ok": true }), "").is_empty());
    }
}

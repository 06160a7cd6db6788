//! `pantstack preview up|down|list|gc|touch`: pull-request environments on AWS,
//! with the cap (`previews.max`), the TTL of inactivity (`previews.ttl`) and
//! their secrets. Deploys and destroys go through the same code as `deploy` and
//! `down --target aws`; what is preview-specific lives in
//! `pantstack_deploy::preview` and `pantstack_deploy::slots`.
//!
//! Invariant: `up` counts the previews (their stacks and claimed slots) and
//! claims the new preview's slot holding the previews' lock, so of two `up` runs
//! of new previews at once only as many pass as the cap has room for; the lock is
//! released before the deploy (each preview has its own deploy lock), which
//! checks again holding that lock that the preview still exists (a teardown may
//! have held it meanwhile) and refuses one that does not. Nothing is ever
//! removed to make room unless `--replace-oldest` asks, and then only a preview
//! still idle under its own lock.

use crate::Failure;
use crate::args::{DownArgs, Global, PreviewAction, PreviewArgs, Target, TargetArgs};
use crate::local::runtime;
use crate::output::Out;
use crate::ship;
use pantstack_deploy::preview::{self, Cap, Preview};
use pantstack_deploy::{Clients, lock, slots};
use pantstack_model::foundation::PREVIEW_PREFIX;
use pantstack_model::settings::{Layer, keys};
use serde_json::json;

pub fn preview(global: &Global, out: &Out, a: &PreviewArgs) -> Result<(), Failure> {
    match &a.action {
        PreviewAction::Up {
            pr,
            services,
            replace_oldest,
            lock_wait,
        } => up(
            global,
            out,
            a,
            *pr,
            services,
            *replace_oldest,
            lock_wait.as_deref(),
        ),
        PreviewAction::Down { pr, yes, lock_wait } => {
            ship::down(global, out, &down_args(a, *pr, *yes, lock_wait.clone()))
        }
        PreviewAction::List => list(global, out, a),
        PreviewAction::Gc {
            yes,
            dry_run,
            lock_wait,
        } => gc(global, out, a, *yes, *dry_run, lock_wait.as_deref()),
        PreviewAction::Touch { pr, lock_wait } => touch(global, out, a, *pr, lock_wait.as_deref()),
    }
}

fn aws(a: &PreviewArgs) -> TargetArgs {
    TargetArgs {
        target: Some(Target::Aws),
        profile: a.profile.clone(),
        region: None,
    }
}

/// A preview's teardown: its stacks, its buckets with their data, its images and
/// its parameters.
fn down_args(a: &PreviewArgs, pr: u64, yes: bool, lock_wait: Option<String>) -> DownArgs {
    DownArgs {
        env: Some(format!("{PREVIEW_PREFIX}{pr}")),
        target: aws(a),
        yes,
        allow_prod: false,
        images: true,
        parameters: true,
        buckets: true,
        lock_wait,
    }
}

struct Found {
    previews: Vec<Preview>,
    max: i64,
    ttl: i64,
    now: i64,
    /// The template bucket: the previews' lock and stamps.
    bucket: Option<String>,
    rt: tokio::runtime::Runtime,
    clients: Clients,
}

/// The previews that exist (stacks and stamps), with the cap and TTL of this
/// monorepo.
fn find(
    global: &Global,
    out: &Out,
    a: &PreviewArgs,
    pr: u64,
) -> Result<(crate::synth::Prepared, Found), Failure> {
    let p = crate::synth::prepare(global, out, None, Some(pr), None)?;
    let f = p.repo.resolve_foundation(&p.env, &Layer::default());
    let max = f.get(keys::PREVIEW_MAX);
    let ttl = f.get(keys::PREVIEW_TTL) as i64;
    let now = preview::now().map_err(Failure::Usage)?;
    let rt = runtime()?;
    let clients = ship::connect(&rt, &p, a.profile.as_deref());
    let bucket = {
        let e = ship::env_of(&p, clients.clone());
        rt.block_on(pantstack_deploy::ship::template_bucket(&e))
            .map_err(|f| ship::aws_failure(f.message))?
    };
    let previews = rt
        .block_on(preview::list(
            &clients,
            &p.output.plan.project,
            bucket.as_deref(),
        ))
        .map_err(ship::aws_failure)?;
    Ok((
        p,
        Found {
            previews,
            max,
            ttl,
            now,
            bucket,
            rt,
            clients,
        },
    ))
}

fn no_bucket() -> Failure {
    ship::aws_failure(
        "the shared stack has no template bucket (it holds the previews' lock and activity stamps): run `pantstack bootstrap --pr 1`".into(),
    )
}

fn up(
    global: &Global,
    out: &Out,
    a: &PreviewArgs,
    pr: u64,
    services: &[String],
    replace_oldest: bool,
    lock_wait: Option<&str>,
) -> Result<(), Failure> {
    if pr == 0 {
        return Err(Failure::Usage(
            "--pr takes a pull request number (1 or more)".into(),
        ));
    }
    let wait = ship::lock_wait(lock_wait)?;
    let (p, found) = find(global, out, a, pr)?;
    let bucket = found.bucket.clone().ok_or_else(no_bucket)?;
    let project = p.output.plan.project.clone();
    let (rt, clients) = (&found.rt, &found.clients);
    let held = rt
        .block_on(slots::acquire(clients, &bucket, &project, wait))
        .map_err(ship::aws_failure)?;
    if let Some(h) = &held.took_over {
        eprintln!(
            "took over the previews' lock of {}: it had expired",
            h.describe()
        );
    }
    let renewing = lock::Renewing::start(rt.handle(), clients, held);
    let claimed = claim(
        global,
        out,
        a,
        &found,
        &bucket,
        &project,
        pr,
        replace_oldest,
        lock_wait,
    );
    match rt.block_on(renewing.stop()) {
        Some(held) => {
            if let Err(m) = rt.block_on(lock::release(clients, &held)) {
                eprintln!("warning: {m}");
            }
        }
        None => eprintln!(
            "warning: the previews' lock could not be renewed in time and another run took it over while this one counted the previews"
        ),
    }
    let exists = claimed?;
    let result = deploy(global, out, a, &p, pr, exists, services, lock_wait);
    if result.is_err() && !exists {
        give_back(&p, &found, pr, lock_wait);
    }
    result
}

/// Holding the previews' lock: counts the previews (stacks and claimed slots)
/// against the cap, makes room if `--replace-oldest` asks, and claims the slot
/// of a new preview. Whether the preview existed.
#[allow(clippy::too_many_arguments)]
fn claim(
    global: &Global,
    out: &Out,
    a: &PreviewArgs,
    found: &Found,
    bucket: &str,
    project: &str,
    pr: u64,
    replace_oldest: bool,
    lock_wait: Option<&str>,
) -> Result<bool, Failure> {
    // Counted again under the lock: another run may have claimed a slot since.
    let previews = found
        .rt
        .block_on(preview::list(&found.clients, project, Some(bucket)))
        .map_err(ship::aws_failure)?;
    let exists = previews.iter().any(|x| x.pr == pr);
    if let Cap::Full { oldest } = preview::cap(&previews, pr, found.max) {
        match oldest {
            None => {
                return Err(Failure::Usage(
                    "previews.max is 0: previews are capped at none (raise `previews.max` in the foundation manifest)".into(),
                ));
            }
            Some(_) if replace_oldest => {
                make_room(global, out, a, found, &previews, pr, lock_wait)?;
            }
            Some(o) => {
                eprintln!(
                    "error: previews.max is {} and {} previews exist; the oldest is {PREVIEW_PREFIX}{} (pull request #{}, idle since {}).\nhelp: destroy one (`pantstack preview down --pr {} --yes`), or run again with --replace-oldest to destroy the oldest",
                    found.max,
                    previews.len(),
                    o.pr,
                    o.pr,
                    preview::iso8601(o.last_change),
                    o.pr
                );
                return Err(Failure::Failed);
            }
        }
    }
    if !exists {
        let now = preview::now().map_err(Failure::Usage)?;
        found
            .rt
            .block_on(slots::touch(
                &found.clients,
                bucket,
                project,
                pr,
                now,
                "claim",
            ))
            .map_err(ship::aws_failure)?;
    }
    Ok(exists)
}

/// `--replace-oldest` at the cap: the preview idle the longest is destroyed,
/// judged again holding its deploy lock (`ship::destroy_unchanged`): one
/// marked active since the count, or whose lock a run holds, is kept, and the
/// next oldest is tried. Refused when every one is active.
#[allow(clippy::too_many_arguments)]
fn make_room(
    global: &Global,
    out: &Out,
    a: &PreviewArgs,
    found: &Found,
    previews: &[Preview],
    pr: u64,
    lock_wait: Option<&str>,
) -> Result<(), Failure> {
    let mut oldest: Vec<&Preview> = previews.iter().filter(|x| x.pr != pr).collect();
    oldest.sort_by_key(|x| (x.last_change, x.pr));
    for o in oldest {
        eprintln!(
            "at the cap of {} preview(s): destroying {PREVIEW_PREFIX}{} (idle since {}) to make room, as --replace-oldest asks, unless it is active under its lock",
            found.max,
            o.pr,
            preview::iso8601(o.last_change)
        );
        let args = down_args(a, o.pr, true, lock_wait.map(str::to_string));
        match ship::down_report(
            global,
            out,
            &args,
            ship::Judge::UnchangedSince(o.last_change),
        )? {
            // On stdout as `down` prints it; with --format json on stderr (the
            // one document on stdout is the new preview's deploy).
            Ok(v) => {
                let said = ship::down_text(&v);
                if out.json() {
                    eprint!("{said}");
                } else {
                    print!("{said}");
                }
                if !v["kept"].is_string() {
                    return Ok(());
                }
            }
            Err(f) => {
                eprintln!(
                    "error: could not destroy {PREVIEW_PREFIX}{} to make room: {}",
                    o.pr, f.message
                );
                return Err(Failure::Failed);
            }
        }
    }
    eprintln!(
        "error: previews.max is {} and every preview is active (marked active since it was counted, or its deploy runs): none was replaced.\nhelp: destroy one (`pantstack preview down --pr N --yes`), or run again later",
        found.max
    );
    Err(Failure::Failed)
}

/// A new preview whose `up` failed gives its slot back if it has no stack,
/// holding the preview's deploy lock (a deploy that failed under that lock
/// has given it back already).
fn give_back(p: &crate::synth::Prepared, found: &Found, pr: u64, lock_wait: Option<&str>) {
    let wait = ship::lock_wait(lock_wait).unwrap_or_default();
    let e = ship::env_of(p, found.clients.clone());
    match found
        .rt
        .block_on(pantstack_deploy::ship::give_back(&e, wait))
    {
        Ok(v) if v["given_back"] == true => {
            eprintln!("{PREVIEW_PREFIX}{pr} was not created: its slot is free again");
        }
        Ok(_) => {}
        Err(f) => eprintln!(
            "warning: {PREVIEW_PREFIX}{pr} was not created, and its slot could not be given back ({}): it counts against previews.max until `pantstack preview down --pr {pr} --yes` or gc removes it",
            f.message
        ),
    }
}

/// The preview's deploy (under its own deploy lock, which checks that it
/// still exists and copies its missing secrets: `pantstack_deploy::ship::deploy`).
#[allow(clippy::too_many_arguments)]
fn deploy(
    global: &Global,
    out: &Out,
    a: &PreviewArgs,
    p: &crate::synth::Prepared,
    pr: u64,
    exists: bool,
    services: &[String],
    lock_wait: Option<&str>,
) -> Result<(), Failure> {
    // A new preview gets every service; an existing one those named (or all).
    let chosen: Vec<String> = if exists {
        services.to_vec()
    } else {
        Vec::new()
    };
    if !exists && !services.is_empty() {
        eprintln!("{PREVIEW_PREFIX}{pr} is new: deploying every service");
    }
    for s in &chosen {
        if p.repo.service(s).is_none() && ship::service_of_unit(&p.repo, s).is_err() {
            return Err(Failure::Resolve(format!(
                "no service `{s}` in this monorepo"
            )));
        }
    }
    ship::deploy_services(global, out, Some(&p.env), chosen, &aws(a), false, lock_wait)
}

/// Marks an existing preview active now (a push that changed none of its
/// services deploys nothing, but is activity all the same), holding the
/// preview's deploy lock, as `gc` does when it decides.
fn touch(
    global: &Global,
    out: &Out,
    a: &PreviewArgs,
    pr: u64,
    lock_wait: Option<&str>,
) -> Result<(), Failure> {
    if pr == 0 {
        return Err(Failure::Usage(
            "--pr takes a pull request number (1 or more)".into(),
        ));
    }
    let wait = ship::lock_wait(lock_wait)?;
    let p = crate::synth::prepare(global, out, None, Some(pr), None)?;
    let f = p.repo.resolve_foundation(&p.env, &Layer::default());
    let ttl = f.get(keys::PREVIEW_TTL) as i64;
    let rt = runtime()?;
    let clients = ship::connect(&rt, &p, a.profile.as_deref());
    let e = ship::env_of(&p, clients);
    let v = match rt.block_on(pantstack_deploy::ship::touch(&e, wait)) {
        Ok(v) => v,
        Err(f) => {
            if out.json() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&f.report).unwrap_or_default()
                );
            }
            return Err(ship::aws_failure(f.message));
        }
    };
    let exists = v["exists"] == true;
    let now = v["now"].as_i64().unwrap_or_default();
    if out.json() {
        let v = json!({
            "pr": pr,
            "exists": exists,
            "last_change": exists.then(|| preview::iso8601(now)),
            "expires": exists.then(|| preview::iso8601(now + ttl)),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if exists {
        println!(
            "{PREVIEW_PREFIX}{pr} marked active at {}; idle, it expires {}",
            preview::iso8601(now),
            preview::iso8601(now + ttl)
        );
    } else {
        println!("no {PREVIEW_PREFIX}{pr}: nothing to mark active");
    }
    Ok(())
}

fn list(global: &Global, out: &Out, a: &PreviewArgs) -> Result<(), Failure> {
    let (_, f) = find(global, out, a, 1)?;
    if out.json() {
        let v = json!({
            "max": f.max,
            "ttl_seconds": f.ttl,
            "now": preview::iso8601(f.now),
            "previews": f.previews.iter().map(|p| p.to_value(f.ttl, f.now)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{} preview(s) of at most {}; destroyed after {} idle",
        f.previews.len(),
        f.max,
        human(f.ttl)
    );
    for p in &f.previews {
        println!(
            "  {:<16} {} stack(s)  last change {}  {}",
            format!("{PREVIEW_PREFIX}{}", p.pr),
            p.stacks.len(),
            preview::iso8601(p.last_change),
            if p.last_change + f.ttl <= f.now {
                "EXPIRED (the next gc destroys it)".to_string()
            } else {
                format!("expires {}", preview::iso8601(p.last_change + f.ttl))
            }
        );
    }
    Ok(())
}

fn human(secs: i64) -> String {
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else {
        format!("{secs}s")
    }
}

fn gc(
    global: &Global,
    out: &Out,
    a: &PreviewArgs,
    yes: bool,
    dry_run: bool,
    lock_wait: Option<&str>,
) -> Result<(), Failure> {
    ship::lock_wait(lock_wait)?;
    let (_, f) = find(global, out, a, 1)?;
    let expired: Vec<&Preview> = preview::expired(&f.previews, f.ttl, f.now);
    let mut report = GcReport {
        expired: expired.iter().map(|p| p.to_value(f.ttl, f.now)).collect(),
        dry_run,
        ..GcReport::default()
    };
    if expired.is_empty() || dry_run {
        if out.json() {
            report.print();
        } else if expired.is_empty() {
            println!("no preview has been idle for {}", human(f.ttl));
        } else {
            for p in &expired {
                println!(
                    "would destroy {PREVIEW_PREFIX}{} (idle since {})",
                    p.pr,
                    preview::iso8601(p.last_change)
                );
            }
        }
        return Ok(());
    }
    if !yes {
        ship::confirm(
            &format!(
                "Destroy {} (idle longer than {}), with their data? Type yes: ",
                expired
                    .iter()
                    .map(|p| format!("{PREVIEW_PREFIX}{}", p.pr))
                    .collect::<Vec<_>>()
                    .join(", "),
                human(f.ttl)
            ),
            "yes",
            format!(
                "this destroys {} idle preview(s) with their data; without a terminal to confirm on, add --yes",
                expired.len()
            ),
            "not confirmed; nothing was deleted",
        )?;
    }
    // Each is judged again holding its deploy lock (the lock a deploy, `up`
    // and `touch` hold while they mark it active): one pushed to since it was
    // listed is kept. With --format json, one document says what became of
    // each (`expired`, `destroyed`, `kept`, `failed`).
    for p in &expired {
        eprintln!(
            "destroying {PREVIEW_PREFIX}{} (idle since {}) unless it is active under its lock",
            p.pr,
            preview::iso8601(p.last_change)
        );
        let env = format!("{PREVIEW_PREFIX}{}", p.pr);
        let args = down_args(a, p.pr, true, lock_wait.map(str::to_string));
        match ship::down_report(global, out, &args, ship::Judge::IdleFor(f.ttl)) {
            Ok(Ok(v)) => {
                if !out.json() {
                    print!("{}", ship::down_text(&v));
                }
                if v["kept"].is_string() {
                    report.kept.push(json!({
                        "pr": p.pr,
                        "environment": env,
                        "reason": v["kept"],
                        "last_change": v["last_change"],
                    }));
                } else {
                    report.destroyed.push(v);
                }
            }
            Ok(Err(x)) => {
                if !out.json() {
                    if x.report.get("stacks").is_some() {
                        print!("{}", ship::down_text(&x.report));
                    }
                    eprintln!("error: {}", x.message);
                }
                report.failed.push(json!({
                    "pr": p.pr,
                    "environment": env,
                    "error": x.message,
                    "report": x.report,
                }));
            }
            Err(x) => {
                let why = match &x {
                    Failure::Resolve(m) | Failure::Io(m) | Failure::Usage(m) => m.clone(),
                    Failure::Invalid | Failure::Failed => "see the messages above".into(),
                };
                if !out.json() {
                    eprintln!("error: {env}: {why}");
                }
                report
                    .failed
                    .push(json!({ "pr": p.pr, "environment": env, "error": why }));
            }
        }
    }
    if out.json() {
        report.print();
    }
    if !report.failed.is_empty() {
        let names: Vec<&str> = report
            .failed
            .iter()
            .filter_map(|x| x["environment"].as_str())
            .collect();
        eprintln!("error: could not destroy {}", names.join(", "));
        return Err(Failure::Failed);
    }
    Ok(())
}

/// What `preview gc` did, as one JSON document on every path.
#[derive(Default)]
struct GcReport {
    expired: Vec<serde_json::Value>,
    destroyed: Vec<serde_json::Value>,
    kept: Vec<serde_json::Value>,
    failed: Vec<serde_json::Value>,
    dry_run: bool,
}

impl GcReport {
    fn print(&self) {
        let v = json!({
            "ok": self.failed.is_empty(),
            "dry_run": self.dry_run,
            "expired": self.expired,
            "destroyed": self.destroyed,
            "kept": self.kept,
            "failed": self.failed,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
}

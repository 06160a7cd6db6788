//! `check`, `env`, `config`, `tag`.

use crate::Failure;
use crate::args::{ConfigArgs, EnvArgs, Global, TagArgs};
use crate::git;
use crate::output::{Out, diagnostic_json, print_diagnostics, summary, val_json};
use pantstack_model::env::{self, Reason, ResolvedEnv};
use pantstack_model::repo::Monorepo;
use pantstack_model::settings::typed::Int;
use pantstack_model::settings::{Key, Layer, Source, keys};
use pantstack_model::{Loaded, Resolved, names, tag, values};
use serde_json::json;
use std::path::PathBuf;

pub fn find_root(global: &Global) -> Result<PathBuf, Failure> {
    if let Some(r) = &global.root {
        if !r.is_dir() {
            return Err(Failure::Resolve(format!(
                "--root {}: no such directory",
                r.display()
            )));
        }
        // Absolute: paths derived from it reach builds and tasks that run elsewhere.
        return std::fs::canonicalize(r)
            .map_err(|e| Failure::Resolve(format!("--root {}: {e}", r.display())));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::Io(format!("cannot read the current directory: {e}")))?;
    if let Some(root) = pantstack_manifest::files::find_root(&cwd) {
        return Ok(root);
    }
    // A repository that holds one monorepo in a subdirectory (this one's
    // `examples/`): take it, and say so.
    let mut below: Vec<PathBuf> = std::fs::read_dir(&cwd)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(pantstack_manifest::files::FOUNDATION_DIR).is_dir())
        .collect();
    below.sort();
    match below.as_slice() {
        [one] => {
            let rel = one.strip_prefix(&cwd).unwrap_or(one);
            // Once per command, however often the root is looked up.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!(
                "note: using the monorepo in ./{} (the only one below this directory; --root chooses another)",
                rel.display()
            ));
            Ok(one.clone())
        }
        [] => Err(Failure::Resolve(format!(
            "no Pantstack monorepo at or above {} (looked for stack/infra/foundation/); run `pantstack init DIR` or pass --root",
            cwd.display()
        ))),
        many => Err(Failure::Resolve(format!(
            "no Pantstack monorepo at or above {}, and {} below it ({}): pass --root",
            cwd.display(),
            many.len(),
            many.iter()
                .map(|p| p.strip_prefix(&cwd).unwrap_or(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Loads the monorepo; errors stop every command but `check` (which reports them).
pub(crate) fn load_valid(global: &Global, out: &Out) -> Result<Loaded, Failure> {
    let root = find_root(global)?;
    let loaded = pantstack_model::load(&root);
    if loaded.has_errors() {
        let errors: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        print_diagnostics(out, Some(&loaded.repo.files), &errors);
        eprintln!(
            "{} error(s) in the monorepo at {}; fix them first (`pantstack check` lists them all)",
            errors.len(),
            root.display()
        );
        return Err(Failure::Invalid);
    }
    Ok(loaded)
}

pub fn check(global: &Global, out: &Out) -> Result<(), Failure> {
    let root = find_root(global)?;
    let loaded = pantstack_model::load(&root);
    let repo = &loaded.repo;
    let (errors, warnings) = summary(&loaded.diagnostics);
    let services = repo.service_names();
    let envs = repo.foundation.env_names();
    if out.json() {
        let v = json!({
            "root": root.display().to_string(),
            "ok": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "project": repo.foundation.project.value,
            "services": services,
            "environments": envs,
            "previews": repo.foundation.previews_enabled,
            "diagnostics": loaded.diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_diagnostics(out, Some(&repo.files), &loaded.diagnostics);
        let status = if errors == 0 {
            out.bold("ok")
        } else {
            out.bold("failed")
        };
        println!(
            "{status}: project {}, {} service(s) [{}], environments [{}]{}: {errors} error(s), {warnings} warning(s)",
            repo.foundation.project.value,
            services.len(),
            services.join(", "),
            envs.join(", "),
            if repo.foundation.previews_enabled {
                " + preview-<pr>"
            } else {
                ""
            },
        );
    }
    if errors > 0 {
        Err(Failure::Invalid)
    } else {
        Ok(())
    }
}

/// Resolves the environment from flags, CI variables or git, in that order.
pub(crate) fn resolve_env(
    repo: &Monorepo,
    branch: Option<&str>,
    pr: Option<u64>,
    named: Option<&str>,
) -> Result<ResolvedEnv, Failure> {
    let f = &repo.foundation;
    let r = if let Some(name) = named {
        env::named(f, name)
    } else if let Some(n) = pr {
        env::for_pr(f, n)
    } else if let Some(b) = branch {
        env::for_branch(f, b)
    } else if let Some(n) = git::ci_pull_request() {
        env::for_pr(f, n)
    } else {
        let b = git::branch(&repo.files.root)?;
        env::for_branch(f, &b)
    };
    r.map_err(|e| Failure::Resolve(e.to_string()))
}

fn reason_text(r: &Reason) -> String {
    match r {
        Reason::Branch { branch, pattern } if branch == pattern => format!("branch `{branch}`"),
        Reason::Branch { branch, pattern } => format!("branch `{branch}` (matches `{pattern}`)"),
        Reason::PullRequest { number } => format!("pull request #{number}"),
        Reason::Named => "named with --env".to_string(),
    }
}

fn reason_json(r: &Reason) -> serde_json::Value {
    match r {
        Reason::Branch { branch, pattern } => {
            json!({"kind": "branch", "branch": branch, "pattern": pattern})
        }
        Reason::PullRequest { number } => json!({"kind": "pull_request", "number": number}),
        Reason::Named => json!({"kind": "named"}),
    }
}

fn source_json(s: &Source) -> serde_json::Value {
    match s.location() {
        Some((file, span)) => {
            json!({"layer": s.layer(), "file": file, "line": span.line, "column": span.col})
        }
        None => json!({"layer": s.layer()}),
    }
}

fn capacity(cfg: &Resolved, lo: Key<Int>, hi: Key<Int>) -> String {
    format!("{}..{}", cfg.get(lo), cfg.get(hi))
}

pub fn env(global: &Global, out: &Out, a: &EnvArgs) -> Result<(), Failure> {
    let loaded = load_valid(global, out)?;
    let repo = &loaded.repo;
    let resolved = resolve_env(repo, a.branch.as_deref(), a.pr, a.env.as_deref())?;
    let fd = repo.resolve_foundation(&resolved.name, &Layer::default());
    let services: Vec<(String, Resolved, bool)> = repo
        .services
        .iter()
        .map(|u| {
            (
                u.service.name.clone(),
                repo.resolve_service(u, &resolved.name, &Layer::default()),
                u.service.worker.is_some() && u.service.http.is_some(),
            )
        })
        .collect();
    if out.json() {
        let v = json!({
            "environment": resolved.name,
            "stack": Monorepo::stack_name(&resolved.name),
            "reason": reason_json(&resolved.reason),
            "region": fd.region.as_ref().map(|(r, _)| r),
            "region_source": fd.region.as_ref().map(|(_, s)| source_json(s)),
            "foundation_stack_file": fd.stack_file,
            "services": services.iter().map(|(name, cfg, both)| json!({
                "name": name,
                "region": cfg.region.as_ref().map(|(r, _)| r),
                "stack_file": cfg.stack_file,
                "min_capacity": cfg.get(keys::MIN_CAPACITY),
                "max_capacity": cfg.get(keys::MAX_CAPACITY),
                "worker_min_capacity": both.then(|| cfg.get(keys::WORKER_MIN_CAPACITY)),
                "worker_max_capacity": both.then(|| cfg.get(keys::WORKER_MAX_CAPACITY)),
                "cpu": cfg.get(keys::CPU),
                "memory": cfg.get(keys::MEMORY),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<12} {}",
        out.bold("environment"),
        out.bold(&resolved.name)
    );
    println!("{:<12} {}", "from", reason_text(&resolved.reason));
    match &fd.region {
        Some((r, src)) => println!("{:<12} {r}  {}", "region", out.dim(&format!("({src})"))),
        None => println!("{:<12} {}", "region", out.dim("(not set: add `region:` to the foundation manifest or `aws:region` to its stack file)")),
    }
    println!(
        "{:<12} {}",
        "stack",
        fd.stack_file
            .as_deref()
            .unwrap_or("(no foundation stack file: defaults apply)")
    );
    println!("services");
    for (name, cfg, both) in &services {
        let mut line = format!(
            "  {name:<14} capacity {}  cpu {}  memory {}",
            capacity(cfg, keys::MIN_CAPACITY, keys::MAX_CAPACITY),
            cfg.get(keys::CPU),
            cfg.get(keys::MEMORY)
        );
        if *both {
            line.push_str(&format!(
                "  worker capacity {}",
                capacity(cfg, keys::WORKER_MIN_CAPACITY, keys::WORKER_MAX_CAPACITY)
            ));
        }
        println!("{line}");
        println!(
            "  {:<14} {}",
            "",
            out.dim(
                cfg.stack_file
                    .as_deref()
                    .unwrap_or("(no stack file for this environment: manifest and defaults apply)")
            )
        );
    }
    Ok(())
}

pub fn config(global: &Global, out: &Out, a: &ConfigArgs) -> Result<(), Failure> {
    let loaded = load_valid(global, out)?;
    let repo = &loaded.repo;
    let resolved = resolve_env(repo, None, None, a.env.as_deref())?;
    let foundation = a.service == "foundation";
    let (cli, diags) = values::cli_layer(&a.set, foundation);
    if !diags.is_empty() {
        let msgs: Vec<String> = diags
            .iter()
            .map(|d| {
                format!(
                    "{}{}",
                    d.message,
                    d.help
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        return Err(Failure::Usage(msgs.join("\n")));
    }
    let (cfg, unit) = if foundation {
        (repo.resolve_foundation(&resolved.name, &cli), None)
    } else {
        let unit = repo.service(&a.service).ok_or_else(|| {
            let names = repo.service_names();
            let hint = pantstack_manifest::diag::did_you_mean(&a.service, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            Failure::Resolve(format!(
                "no service `{}` (services: {}, or `foundation`){hint}",
                a.service,
                names.join(", ")
            ))
        })?;
        (repo.resolve_service(unit, &resolved.name, &cli), Some(unit))
    };
    // An override can make the combination invalid (min > max, ...): say so.
    let problems = match unit {
        Some(u) => cfg.check(&u.service),
        None => cfg.check_foundation(&repo.foundation.manifest_file),
    };
    if !problems.is_empty() {
        print_diagnostics(out, Some(&repo.files), &problems);
        return Err(Failure::Invalid);
    }
    let project = &repo.foundation.project.value;
    let env_name = &resolved.name;
    if out.json() {
        let mut v = json!({
            "name": cfg.name,
            "environment": env_name,
            "region": cfg.region.as_ref().map(|(r, _)| r),
            "region_source": cfg.region.as_ref().map(|(_, s)| source_json(s)),
            "stack_file": cfg.stack_file,
            "settings": cfg.values.iter().map(|rs| json!({
                "key": rs.setting.key,
                "value": rs.value.as_ref().map(val_json),
                "source": source_json(&rs.source),
                "manifest": rs.setting.manifest,
            })).collect::<Vec<_>>(),
        });
        if let Some(u) = unit {
            let s = &u.service;
            v["queues"] = json!(s.queues.iter().map(|q| json!({
                "name": q.name, "fifo": q.fifo, "visibility_timeout": q.visibility_timeout_secs,
                "retention": q.retention_secs, "dead_letter_max_receive_count": q.dead_letter.as_ref().map(|d| d.max_receive_count),
            })).collect::<Vec<_>>());
            v["buckets"] = json!(s.buckets.iter().map(|b| json!({
                "name": b.name, "versioning": b.versioning, "replication_region": b.replication_region,
            })).collect::<Vec<_>>());
            v["secrets"] = json!(s.secrets.iter().map(|x| json!({
                "name": x.name, "parameter": format!("/{project}/{env_name}/{}/{}", x.owner(&s.name), x.name), "rotation_days": x.rotation_days,
                "from": x.from.as_ref().map(|f| f.value.clone()),
            })).collect::<Vec<_>>());
            v["variables"] = json!(
                s.variables_for(env_name)
                    .iter()
                    .map(|(k, val)| json!({"name": k, "value": val}))
                    .collect::<Vec<_>>()
            );
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("{} in {}", out.bold(&cfg.name), out.bold(env_name));
    match &cfg.region {
        Some((r, src)) => println!("region {r}  {}", out.dim(&format!("({src})"))),
        None => println!("region {}", out.dim("(not set)")),
    }
    if let Some(f) = &cfg.stack_file {
        println!("stack file {f}");
    }
    println!();
    let width = cfg
        .values
        .iter()
        .map(|v| v.setting.key.len())
        .max()
        .unwrap_or(10)
        .max(7);
    println!("{:<width$}  {:<22}  SOURCE", "SETTING", "VALUE");
    for rs in &cfg.values {
        let value = rs
            .value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(off)".into());
        let mut source = rs.source.to_string();
        if let (Source::Default, Some(aws)) = (&rs.source, rs.setting.aws_default) {
            source.push_str(&format!(" (AWS default: {aws})"));
        }
        println!(
            "{:<width$}  {:<22}  {}",
            rs.setting.key,
            value,
            out.dim(&source)
        );
    }
    if let Some(u) = unit {
        let s = &u.service;
        if !s.queues.is_empty() {
            println!("\nqueues");
            for q in &s.queues {
                let dlq = q
                    .dead_letter
                    .as_ref()
                    .map(|d| format!(", dead-letter queue after {} receives", d.max_receive_count))
                    .unwrap_or_default();
                println!(
                    "  {}{}  visibility {}s, retention {}{dlq}",
                    q.name,
                    if q.fifo { " (FIFO)" } else { "" },
                    q.visibility_timeout_secs,
                    pantstack_manifest::read::format_duration(q.retention_secs)
                );
            }
        }
        if !s.buckets.is_empty() {
            println!("\nbuckets");
            for b in &s.buckets {
                let repl = b
                    .replication_region
                    .as_ref()
                    .map(|r| format!(", replicated to {r}"))
                    .unwrap_or_default();
                println!(
                    "  {}  versioning {}{repl}",
                    b.name,
                    if b.versioning { "on" } else { "off" }
                );
            }
        }
        if !s.secrets.is_empty() {
            println!("\nsecrets (SSM SecureString; values are never shown)");
            for x in &s.secrets {
                let rot = x
                    .rotation_days
                    .map(|d| format!(", rotate every {d} days"))
                    .unwrap_or_default();
                let from = x
                    .from
                    .as_ref()
                    .map(|f| format!(" (granted by {})", f.value))
                    .unwrap_or_default();
                println!(
                    "  {}  /{project}/{env_name}/{}/{}{rot}{from}",
                    x.name,
                    x.owner(&s.name),
                    x.name
                );
            }
        }
        let vars = s.variables_for(env_name);
        if !vars.is_empty() {
            println!("\nvariables");
            for (k, v) in &vars {
                println!("  {k}={v}");
            }
        }
    }
    Ok(())
}

pub fn tag(global: &Global, out: &Out, a: &TagArgs) -> Result<(), Failure> {
    names::check_service_name(&a.service).map_err(Failure::Usage)?;
    // Inside a monorepo the service must exist (and have a worker for --worker);
    // outside one, the tag is still computed so CI scripts can use it anywhere.
    let root = find_root(global).ok();
    let mut registry = None;
    if let Some(root) = &root {
        let loaded = pantstack_model::load(root);
        registry = Some(loaded.repo.foundation.registry.clone());
        if let Some(unit) = loaded.repo.service(&a.service) {
            if a.worker && unit.service.worker.is_none() {
                return Err(Failure::Resolve(format!(
                    "service `{}` has no `worker:` section, so it has no worker image",
                    a.service
                )));
            }
        } else if loaded.repo.files.foundation.manifest.is_some() {
            let names = loaded.repo.service_names();
            return Err(Failure::Resolve(format!(
                "no service `{}` in {} (services: {})",
                a.service,
                root.display(),
                names.join(", ")
            )));
        }
    }
    let t = match &a.version {
        Some(v) => tag::version_tag(&a.service, a.worker, v),
        None => {
            let git_root = root.clone().unwrap_or_else(|| PathBuf::from("."));
            let branch = match &a.branch {
                Some(b) => b.clone(),
                None => git::branch(&git_root)?,
            };
            let sha = match &a.sha {
                Some(s) => s.clone(),
                None => git::head_sha(&git_root)?,
            };
            tag::branch_tag(&a.service, a.worker, &branch, &sha)
        }
    }
    .map_err(|e| Failure::Usage(e.to_string()))?;
    if out.json() {
        let v = json!({
            "service": a.service,
            "worker": a.worker,
            "tag": t,
            "repository": registry,
            "image": registry.as_ref().map(|r| format!("{r}:{t}")),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("{t}");
    }
    Ok(())
}

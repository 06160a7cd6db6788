//! `pantstack changed` (the services a change touches) and `pantstack workflows`
//! (the GitHub Actions workflows of the monorepo). Neither contacts AWS.

use crate::Failure;
use crate::args::{ChangedArgs, Global, WorkflowsArgs};
use crate::commands::load_valid;
use crate::output::{Out, print_diagnostics};
use serde_json::json;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Result<std::process::Output, Failure> {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| Failure::Resolve(format!("cannot run git: {e}")))
}

/// Whether `rev` names a commit git has.
fn known(root: &Path, rev: &str) -> Result<bool, Failure> {
    let spec = format!("{rev}^{{commit}}");
    Ok(git(root, &["rev-parse", "--verify", "--quiet", &spec])?
        .status
        .success())
}

/// The commit a deployed image tag was built from: `api-dev-0123abc` → `0123abc`;
/// `None` for a build of uncommitted changes (`…-d<image id>`) or a release tag.
pub fn tag_commit(tag: &str) -> Option<&str> {
    let last = tag.rsplit('-').next()?;
    (last.len() == 7 && last.bytes().all(|b| b.is_ascii_hexdigit())).then_some(last)
}

/// The services to deploy so that `--env` runs HEAD: each service whose stack is
/// missing, was deployed from uncommitted changes, or whose inputs (or a related
/// service's infrastructure) changed since the commit it runs.
fn deployed(global: &Global, out: &Out, a: &ChangedArgs, head: &str) -> Result<(), Failure> {
    let p = crate::synth::prepare(global, out, a.env.as_deref(), None, None)?;
    let repo = &p.repo;
    let root = &repo.files.root;
    let rt = crate::local::runtime()?;
    let clients = crate::ship::connect(&rt, &p, a.profile.as_deref());
    let names = pantstack_model::physical::Names::new(&p.output.plan.project, &p.env);
    let mut services = Vec::new();
    let mut why = Vec::new();
    for name in repo.service_names() {
        let stack = names.service_stack(name);
        let d = rt
            .block_on(pantstack_deploy::stack::describe(&clients, &stack))
            .map_err(crate::ship::aws_failure)?;
        let Some(d) = d else {
            services.push(name.to_string());
            why.push(json!({ "service": name, "because": "not deployed" }));
            continue;
        };
        let commits: Vec<Option<&str>> = d
            .parameters
            .iter()
            .filter(|(k, _)| k == "ImageTag" || k == "WorkerImageTag")
            .map(|(_, v)| tag_commit(v))
            .collect();
        let base = match commits.as_slice() {
            [Some(c), rest @ ..] if rest.iter().all(|r| r == &Some(*c)) => *c,
            _ => {
                services.push(name.to_string());
                why.push(json!({ "service": name, "because": "its deployed images name no commit (uncommitted changes, or a release)" }));
                continue;
            }
        };
        if !known(root, base)? {
            services.push(name.to_string());
            why.push(json!({ "service": name, "because": format!("runs {base}, which this clone lacks") }));
            continue;
        }
        let paths = diff(root, base, head, false)?;
        if pantstack_model::changes::touched(repo, &paths)
            .iter()
            .any(|s| s == name)
        {
            services.push(name.to_string());
            why.push(json!({ "service": name, "because": format!("changed since {base}, which it runs") }));
        }
    }
    for w in &why {
        eprintln!(
            "{}: {}",
            w["service"].as_str().unwrap_or_default(),
            w["because"].as_str().unwrap_or_default()
        );
    }
    if out.json() {
        let v = json!({ "environment": p.env, "head": head, "services": services, "why": why });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for s in &services {
            println!("{s}");
        }
    }
    Ok(())
}

/// The files that differ between two commits (`from_merge_base`: between their
/// merge base and `head`, what a branch changed since it forked), relative to the
/// monorepo root.
fn diff(
    root: &Path,
    base: &str,
    head: &str,
    from_merge_base: bool,
) -> Result<Vec<String>, Failure> {
    let range = format!("{base}...{head}");
    let mut args = vec!["diff", "--name-only", "--no-renames", "--relative", "-z"];
    if from_merge_base {
        args.push(&range);
    } else {
        args.extend([base, head]);
    }
    args.push("--");
    let o = git(root, &args)?;
    if !o.status.success() {
        return Err(Failure::Resolve(format!(
            "`git diff {base} {head}` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(o.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

pub fn changed(global: &Global, out: &Out, a: &ChangedArgs) -> Result<(), Failure> {
    let head = a.head.as_deref().unwrap_or("HEAD");
    if a.deployed {
        if head.starts_with('-') {
            return Err(Failure::Usage(format!(
                "--head {head}: not a commit or branch name"
            )));
        }
        return deployed(global, out, a, head);
    }
    let loaded = load_valid(global, out)?;
    let repo = &loaded.repo;
    let root = &repo.files.root;
    let base = a.base.clone().unwrap_or_default();
    for (flag, rev) in [("--base", base.as_str()), ("--head", head)] {
        if rev.starts_with('-') {
            return Err(Failure::Usage(format!(
                "{flag} {rev}: not a commit or branch name"
            )));
        }
    }
    if !known(root, head)? {
        return Err(Failure::Resolve(format!(
            "--head {head}: git knows no such commit in {}",
            root.display()
        )));
    }
    let all = || -> Vec<String> { repo.service_names().iter().map(|s| s.to_string()).collect() };
    // A new branch's push names 000…0 as `before`; a force push names a commit the
    // clone may not have. Deploying everything is then the safe answer.
    let (services, files, why) = if base.is_empty() || base.bytes().all(|b| b == b'0') {
        (
            all(),
            None,
            Some("no base commit (a new branch): every service"),
        )
    } else if !known(root, &base)? {
        (
            all(),
            None,
            Some(
                "the base commit is not in this clone (force push, or a shallow checkout: use fetch-depth: 0): every service",
            ),
        )
    } else {
        let paths = diff(root, &base, head, true)?;
        let touched = pantstack_model::changes::touched(repo, &paths);
        (touched, Some(paths.len()), None)
    };
    if let Some(w) = why {
        eprintln!("note: {w}");
    }
    if out.json() {
        let v = json!({ "base": base, "head": head, "files": files, "services": services, "every_service_because": why });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for s in &services {
            println!("{s}");
        }
    }
    Ok(())
}

/// The git repository's root, and the monorepo's place in it (`""` when the same).
fn git_root(root: &Path) -> (PathBuf, String) {
    let top = git(root, &["rev-parse", "--show-toplevel"])
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(top) = top else {
        return (root.to_path_buf(), String::new());
    };
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (top_c, root_c) = (canon(&top), canon(root));
    match root_c.strip_prefix(&top_c) {
        Ok(rel) => (top_c, rel.to_string_lossy().replace('\\', "/")),
        Err(_) => (root.to_path_buf(), String::new()),
    }
}

pub fn workflows(global: &Global, out: &Out, a: &WorkflowsArgs) -> Result<(), Failure> {
    let loaded = load_valid(global, out)?;
    let repo = &loaded.repo;
    let (top, rel) = git_root(&repo.files.root);
    let install = a.install.clone().unwrap_or_else(|| {
        format!(
            "cargo install --locked pantstack@{}",
            env!("CARGO_PKG_VERSION")
        )
    });
    if install.trim().is_empty() || install.contains('\n') {
        return Err(Failure::Usage(
            "--install takes one shell line that installs pantstack".into(),
        ));
    }
    let opts = pantstack_synth::workflows::Options { install, root: rel };
    let files = match pantstack_synth::workflows::workflows(repo, &opts) {
        Ok(f) => f,
        Err(diags) => {
            print_diagnostics(out, Some(&repo.files), &diags);
            return Err(Failure::Invalid);
        }
    };
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| top.join(".github").join("workflows"));
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Failure::Io(format!("cannot {what} {}: {e}", p.display()))
    };
    let mut report = Vec::new();
    let mut stale = Vec::new();
    for f in &files {
        let path = dir.join(&f.name);
        let now = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &path, e)),
        };
        let state = match &now {
            Some(t) if *t == f.contents => "unchanged",
            Some(_) => "changed",
            None => "new",
        };
        if a.check {
            if state != "unchanged" {
                stale.push(format!(
                    "{} ({})",
                    path.display(),
                    if state == "new" { "missing" } else { "differs" }
                ));
            }
        } else if state != "unchanged" {
            fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
            let tmp = dir.join(format!(".{}.tmp", f.name));
            let mut file = fs::File::create(&tmp).map_err(|e| io("write", &tmp, e))?;
            file.write_all(f.contents.as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| io("write", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| io("write", &path, e))?;
        }
        report.push(json!({ "file": path.display().to_string(), "state": state }));
    }
    // A workflow this command wrote once and no longer generates (previews
    // disabled, no environment with a branch) would keep running: removed.
    for name in pantstack_synth::workflows::FILES {
        if files.iter().any(|f| f.name == *name) {
            continue;
        }
        let path = dir.join(name);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if !text.contains("Written by `pantstack workflows`") {
            continue;
        }
        if a.check {
            stale.push(format!("{} (no longer generated)", path.display()));
        } else {
            fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
        }
        report.push(json!({ "file": path.display().to_string(), "state": if a.check { "stale" } else { "removed" } }));
    }
    if out.json() {
        let v = json!({ "dir": dir.display().to_string(), "files": report, "check": a.check, "stale": stale });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for r in &report {
            println!(
                "  {:<60} {}",
                r["file"].as_str().unwrap_or_default(),
                r["state"].as_str().unwrap_or_default()
            );
        }
        if !a.check {
            println!(
                "\nIn GitHub: set the repository variable AWS_ACCOUNT_ID; create the environments {} (required reviewers on prod){}; bootstrap each environment once (`pantstack bootstrap --env ENV`{}).",
                repo.foundation
                    .env_names()
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if repo.foundation.previews_enabled {
                    " and `preview`"
                } else {
                    ""
                },
                if repo.foundation.previews_enabled {
                    ", and `--pr 1` for the previews"
                } else {
                    ""
                },
            );
        }
    }
    if !stale.is_empty() {
        eprintln!(
            "error: the workflows differ from what the manifests give: {}\nhelp: run `pantstack workflows` and commit the result",
            stale.join(", ")
        );
        return Err(Failure::Failed);
    }
    Ok(())
}

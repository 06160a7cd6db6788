//! `backup` and `restore` of a local cloud: which environment, where the backup
//! goes, and what is printed. The work (snapshot, format, checks, swap) is
//! `pantstack_local::backup`'s; a running cloud takes its own backup through the
//! control socket.

use crate::Failure;
use crate::args::{BackupArgs, Global, RestoreArgs};
use crate::commands::{find_root, load_valid};
use crate::output::Out;
use pantstack_local::backup::{self, Manifest, Meta};
use pantstack_local::client;
use pantstack_local::control::{self, Request};
use pantstack_local::spec;
use pantstack_local::state::{self, Paths};
use serde_json::json;
use std::path::{Path, PathBuf};

/// `path` made absolute against the working directory (the supervisor that
/// writes a running cloud's backup has its own).
fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path)
        .map_err(|e| Failure::Io(format!("{}: cannot make it absolute: {e}", path.display())))
}

/// One line of what a backup holds.
fn holds(m: &Manifest) -> String {
    let a = &m.holds.aws;
    let bytes: u64 = m.files.values().map(|f| f.bytes).sum();
    format!(
        "{} queues ({} messages), {} buckets ({} object versions, {} multipart uploads), {} parameters ({} versions), {} deployments; {bytes} bytes",
        a.queues,
        a.messages,
        a.buckets,
        a.object_versions,
        a.multipart_uploads,
        a.parameters,
        a.parameter_versions,
        m.holds.deployments
    )
}

pub fn backup(global: &Global, out: &Out, a: &BackupArgs) -> Result<(), Failure> {
    let root = find_root(global)?;
    let repo = load_valid(global, out)?.repo;
    let branch = || crate::git::branch(&root).ok();
    let env = client::target_env(&root, &repo, a.env.as_deref(), branch)?;
    let paths = Paths::new(&root, &env);
    let dest = match &a.out {
        Some(p) => absolute(p)?,
        None => {
            let stamp = pantstack_rt::clock::rfc3339_micros(std::time::SystemTime::now());
            // Seconds are enough for a name; `:` is awkward in paths.
            let stamp = stamp.get(..19).unwrap_or(&stamp).replace(':', "-");
            root.join(".pantstack")
                .join("backups")
                .join(format!("{env}-{stamp}Z"))
        }
    };
    let meta = Meta {
        project: repo.foundation.project.value.clone(),
        environment: env.clone(),
        region: spec::region(&repo, &env),
    };
    let rt = crate::local::runtime()?;
    let (manifest, from) = if client::accepts(&paths) {
        let v = rt
            .block_on(control::call(
                &paths.socket(),
                &Request::Backup { dir: dest.clone() },
                |_| {},
            ))
            .map_err(|e| Failure::from(client::Refused::from(e)))?;
        if let Some(e) = v["error"].as_str() {
            return Err(Failure::Io(e.to_string()));
        }
        let m: Manifest = serde_json::from_value(v["manifest"].clone()).map_err(|e| {
            Failure::Io(format!(
                "the supervisor's answer is not a backup's manifest ({e}); the backup is in {}",
                dest.display()
            ))
        })?;
        (m, "running")
    } else {
        if !paths.aws().join("journal.log").exists() {
            return Err(Failure::Resolve(format!(
                "`{env}` has no local cloud state in {} to back up (`pantstack up --env {env}` creates it)",
                paths.dir.display()
            )));
        }
        state::secure(&paths).map_err(Failure::Io)?;
        let core = pantstack_endpoint::Core::open(&pantstack_endpoint::Config {
            dir: paths.aws(),
            key_file: pantstack_endpoint::keys::key_file(&root, &env),
            region: meta.region.clone(),
            principals: Vec::new(),
            policies: Default::default(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .map_err(Failure::Io)?;
        let m = rt
            .block_on(backup::create(&core, &paths, &dest, &meta, "stopped"))
            .map_err(Failure::Io)?;
        (m, "stopped")
    };
    if out.json() {
        let v = json!({ "backup": dest.display().to_string(), "manifest": manifest });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "backup of `{env}` ({from} local cloud, {}) written to {}: {}",
            manifest.created,
            dest.display(),
            holds(&manifest)
        );
        println!(
            "  the secrets in it stay encrypted: restoring them elsewhere needs this project's master key file {} (keep a copy of it apart from the backup)",
            pantstack_endpoint::keys::key_file(&root, &env).display()
        );
    }
    Ok(())
}

pub fn restore(global: &Global, out: &Out, a: &RestoreArgs) -> Result<(), Failure> {
    let root = find_root(global)?;
    let repo = load_valid(global, out)?.repo;
    // The backup's environment unless another is named; either must be one of
    // this monorepo's (the name becomes paths).
    let named = match &a.env {
        Some(e) => e.clone(),
        None => std::fs::read(a.from.join(backup::MANIFEST))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["environment"].as_str().map(str::to_string))
            .ok_or_else(|| {
                Failure::Io(
                    backup::verify(&a.from)
                        .err()
                        .unwrap_or_else(|| format!("{}: names no environment", a.from.display())),
                )
            })?,
    };
    let branch = || crate::git::branch(&root).ok();
    let env = client::target_env(&root, &repo, Some(&named), branch)?;
    let key_file = pantstack_endpoint::keys::key_file(&root, &env);
    let r = backup::restore(
        &root,
        &repo.foundation.project.value,
        &env,
        &a.from,
        &key_file,
        a.force,
    )?;
    if out.json() {
        let v = json!({
            "restored": a.from.display().to_string(),
            "environment": env,
            "replaced": r.replaced.as_ref().map(|p| p.display().to_string()),
            "warnings": r.warnings,
            "manifest": r.manifest,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "restored `{env}` from {} (taken {}): {}",
            a.from.display(),
            r.manifest.created,
            holds(&r.manifest)
        );
        if let Some(p) = &r.replaced {
            println!(
                "  the state it replaced is in {} (delete it once the restored cloud serves what you expect)",
                p.display()
            );
        }
        println!("  `pantstack up --env {env}` serves it");
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

//! `pantstack synth`: writes the CloudFormation templates of an environment.

use crate::Failure;
use crate::args::{CostArgs, Global, QuotasArgs, SynthArgs, Target};
use crate::commands::{load_valid, resolve_env};
use crate::output::{Out, print_diagnostics};
use pantstack_model::Monorepo;
use pantstack_synth::Output;
use serde_json::json;
use std::fs;
use std::io::Write;
use std::path::Path;

/// A monorepo and one environment of it, synthesized: what `synth`, `cost` and
/// every aws-target command start from.
pub(crate) struct Prepared {
    pub(crate) repo: Monorepo,
    pub(crate) env: String,
    pub(crate) output: Output,
}

/// Loads the monorepo, resolves the environment and synthesizes it.
pub(crate) fn prepare(
    global: &Global,
    out: &Out,
    env: Option<&str>,
    pr: Option<u64>,
    region: Option<&str>,
) -> Result<Prepared, Failure> {
    prepare_branch(global, out, None, env, pr, region)
}

/// `prepare`, the environment also resolvable from `--branch` (`synth`, `cost`).
pub(crate) fn prepare_branch(
    global: &Global,
    out: &Out,
    branch: Option<&str>,
    env: Option<&str>,
    pr: Option<u64>,
    region: Option<&str>,
) -> Result<Prepared, Failure> {
    let loaded = load_valid(global, out)?;
    let repo = loaded.repo;
    let resolved = resolve_env(&repo, branch, pr, env)?;
    if let Some(r) = region {
        pantstack_model::foundation::check_region(r)
            .map_err(|e| Failure::Usage(format!("--region {r}: {e}")))?;
    }
    let opts = pantstack_synth::Options {
        region: region.map(str::to_string),
        ..Default::default()
    };
    let output = match pantstack_synth::synth(&repo, &resolved.name, &opts) {
        Ok(o) => o,
        Err(diags) => {
            print_diagnostics(out, Some(&repo.files), &diags);
            let n = diags.iter().filter(|d| d.is_error()).count();
            eprintln!(
                "{n} error(s): cannot synthesize environment `{}`",
                resolved.name
            );
            return Err(Failure::Invalid);
        }
    };
    Ok(Prepared {
        repo,
        env: resolved.name,
        output,
    })
}

pub fn synth(global: &Global, out: &Out, a: &SynthArgs) -> Result<(), Failure> {
    let p = prepare_branch(
        global,
        out,
        a.branch.as_deref(),
        a.env.as_deref(),
        a.pr,
        a.region.as_deref(),
    )?;
    let (repo, output) = (&p.repo, &p.output);
    let dir = a.out.clone().unwrap_or_else(|| {
        repo.files
            .root
            .join(".pantstack")
            .join("synth")
            .join(&p.env)
    });
    write_all(&dir, output)?;
    report(out, &dir, output);
    Ok(())
}

/// Writes every file atomically and removes templates a previous run left that
/// this one did not write (a deleted service). The set is written to temporary
/// files, made durable with one `syncfs` (one journal commit, not one fsync per
/// file: 200 services are 400 files), then renamed into place and the directory
/// synced, so a crash leaves each file either old or new, never partial.
fn write_all(dir: &Path, output: &Output) -> Result<(), Failure> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Failure::Io(format!("cannot {what} {}: {e}", p.display()))
    };
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let ours = dir.join(pantstack_synth::plan::FILE).exists();
    let mut written = Vec::new();
    for f in &output.files {
        let path = dir.join(&f.name);
        let tmp = dir.join(format!(".{}.tmp", f.name));
        let mut file = fs::File::create(&tmp).map_err(|e| io("write", &tmp, e))?;
        file.write_all(f.contents.as_bytes())
            .map_err(|e| io("write", &tmp, e))?;
        written.push((tmp, path));
    }
    let d = fs::File::open(dir).map_err(|e| io("open", dir, e))?;
    rustix::fs::syncfs(&d).map_err(|e| io("sync", dir, e.into()))?;
    for (tmp, path) in &written {
        fs::rename(tmp, path).map_err(|e| io("write", path, e))?;
    }
    if ours && let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".json") && !output.files.iter().any(|f| f.name == name) {
                fs::remove_file(e.path()).map_err(|err| io("remove", &e.path(), err))?;
            }
        }
    }
    d.sync_all().map_err(|e| io("sync", dir, e))?;
    Ok(())
}

fn report(out: &Out, dir: &Path, output: &Output) {
    let plan = &output.plan;
    if out.json() {
        let mut v = plan.to_value();
        v["out"] = json!(dir.display().to_string());
        v["files"] = json!(output.files.iter().map(|f| &f.name).collect::<Vec<_>>());
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!(
        "{} {} in {} → {}",
        out.bold("synthesized"),
        plan.environment,
        plan.region,
        dir.display()
    );
    println!("deploy in this order:");
    for (i, s) in plan.stacks.iter().enumerate() {
        let params: Vec<String> = s
            .parameters
            .iter()
            .filter(|p| p.default.is_none())
            .map(|p| p.name.clone())
            .collect();
        println!(
            "  {}. {:<32} {:<14} {}{}{}",
            i + 1,
            s.name,
            s.region,
            out.dim(&format!("by {}", s.deployed_by)),
            if params.is_empty() {
                String::new()
            } else {
                format!("  parameters: {}", params.join(", "))
            },
            if s.template_bucket {
                "  (over 51,200 bytes: deploy through a template bucket, --s3-bucket)"
            } else {
                ""
            }
        );
    }
    if !plan.secrets.is_empty() {
        println!("SecureString parameters that must exist before the service stacks deploy:");
        for s in &plan.secrets {
            println!(
                "  {:<40} {} ({}){}",
                s.path,
                s.service,
                s.kms_key_alias,
                s.rotation_days
                    .map(|d| format!(", rotate every {d} days"))
                    .unwrap_or_default()
            );
        }
    }
}

/// `pantstack cost`: the environment's templates priced with the shipped table.
pub fn cost(global: &Global, out: &Out, a: &CostArgs) -> Result<(), Failure> {
    let p = prepare_branch(
        global,
        out,
        a.branch.as_deref(),
        a.env.as_deref(),
        a.pr,
        a.region.as_deref(),
    )?;
    let (env, output) = (&p.env, &p.output);
    use pantstack_synth::cost;
    let region = output.plan.region.clone();
    let prices = cost::Prices::for_region(cost::PRICES, &region).map_err(Failure::Resolve)?;
    let lines = cost::estimate(output, &prices);
    let v = cost::report(env, &region, &prices, &lines);
    if out.json() {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "`{}` in {region}, USD a month (prices of {}), at the minimum .. maximum task counts:",
        env, prices.date
    );
    let money = |v: &serde_json::Value| format!("{:>9.2}", v.as_f64().unwrap_or_default());
    for s in v["stacks"].as_array().into_iter().flatten() {
        let name = s["stack"].as_str().unwrap_or_default();
        println!("\n{name:<58} {} .. {}", money(&s["min"]), money(&s["max"]));
        for l in v["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["stack"] == name)
        {
            println!(
                "  {:<56} {} .. {}",
                l["item"].as_str().unwrap_or_default(),
                money(&l["min"]),
                money(&l["max"])
            );
        }
    }
    if let Some(sh) = v["shared"].as_object() {
        println!(
            "\n{} is shared by every preview ({} a month, once): not in the total below",
            sh["stack"].as_str().unwrap_or_default(),
            money(&sh["min"]).trim()
        );
    }
    println!(
        "\n{:<58} {} .. {}\nnot counted: {}",
        "total",
        money(&v["total"]["min"]),
        money(&v["total"]["max"]),
        v["not_counted"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// `pantstack quotas`: the monorepo's environments against AWS's default
/// quotas, or with `--target aws` the account's applied ones (Service Quotas).
pub fn quotas(global: &Global, out: &Out, a: &QuotasArgs) -> Result<(), Failure> {
    let target = crate::ship::target(a.target.target, global, None)?;
    if target == Target::Local {
        crate::ship::local_only(&a.target)?;
    }
    let loaded = load_valid(global, out)?;
    let repo = &loaded.repo;
    let region = a.target.region.as_deref();
    let applied = if target == Target::Aws {
        let regions = match region {
            Some(r) => vec![r.to_string()],
            None => pantstack_synth::quotas::regions(repo),
        };
        match regions.first() {
            // No region: the report's diagnostics say where to set one.
            None => None,
            Some(first) => {
                let rt = crate::local::runtime()?;
                let c = pantstack_deploy::Connect {
                    profile: a.target.profile.clone(),
                    region: first.clone(),
                };
                let clients = rt.block_on(pantstack_deploy::Clients::connect(&c));
                Some(rt.block_on(pantstack_deploy::quotas::applied(&clients, &regions)))
            }
        }
    } else {
        None
    };
    let v = match pantstack_synth::quotas::check_with(repo, applied.as_ref(), region) {
        Ok(v) => v,
        Err(diags) => {
            print_diagnostics(out, Some(&repo.files), &diags);
            return Err(Failure::Invalid);
        }
    };
    if out.json() {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "{} service(s), every environment and {} preview(s), against {}:",
            v["services"],
            v["previews"],
            if applied.is_some() {
                "the account's quotas (Service Quotas) where it answered, else AWS's defaults"
            } else {
                "AWS's default quotas"
            }
        );
        for q in v["quotas"].as_array().into_iter().flatten() {
            let detail = match q["by_environment"].as_array() {
                Some(parts) => parts
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            p["environment"].as_str().unwrap_or_default(),
                            p["needed"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                None => q["where"].as_str().unwrap_or_default().to_string(),
            };
            println!(
                "  {:<4} {:<46} {:>6} of {:<6} {:<8} {:<10} {detail}",
                if q["fits"] == json!(true) {
                    "ok"
                } else {
                    "OVER"
                },
                q["quota"].as_str().unwrap_or_default(),
                figure(&q["needed"]),
                q["limit"],
                q["source"].as_str().unwrap_or_default(),
                q["scope"].as_str().unwrap_or_default(),
            );
            if let Some(at_min) = q["needed_at_min"].as_f64() {
                println!(
                    "       vCPUs at the minimum task counts {at_min}{}, at the maximum {}{}",
                    q["over_by_at_min"]
                        .as_f64()
                        .map(|o| format!(" (over by {o})"))
                        .unwrap_or_default(),
                    figure(&q["needed"]),
                    q["over_by"]
                        .as_f64()
                        .map(|o| format!(" (over by {o})"))
                        .unwrap_or_default(),
                );
            }
            let deploying = &q["deploying"];
            if let (Some(at_min), Some(at_max)) = (
                deploying["needed_at_min"].as_f64(),
                deploying["needed"].as_f64(),
            ) {
                let over = |k: &str| {
                    deploying[k]
                        .as_f64()
                        .map(|o| format!(" (over by {o})"))
                        .unwrap_or_default()
                };
                let by = |k: &str| {
                    deploying[k]
                        .as_str()
                        .map(|e| format!(" ({e} deploying)"))
                        .unwrap_or_default()
                };
                println!(
                    "       while one environment deploys every service at once (old and new tasks side by side): {at_min}{}{} at the minimum, {at_max}{}{} at the maximum{}",
                    by("environment_at_min"),
                    over("over_by_at_min"),
                    by("environment"),
                    over("over_by"),
                    if deploying["over_by"].is_null() {
                        ""
                    } else {
                        ": new tasks past the quota fail to start and the deployment stalls until the circuit breaker fails it (a rolling deployment starts fewer at once with a lower `deployment.max_percent`; blue/green and canary start a full set: a higher quota)"
                    }
                );
            }
            if let Some(note) = q["note"].as_str() {
                println!("       default because: {note}");
            }
            if let Some(fix) = q["fix"].as_str() {
                println!("       fix: {fix}");
            }
        }
        println!("({})", v["note"].as_str().unwrap_or_default());
    }
    let exceeded = v["exceeded"].as_u64().unwrap_or(0);
    if exceeded > 0 {
        eprintln!("error: {exceeded} quota(s) would be exceeded");
        return Err(Failure::Failed);
    }
    Ok(())
}

/// A count or vCPU figure as people write it: `8`, `8.5` (never `8.0`).
fn figure(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() => format!("{x}"),
        _ => v.to_string(),
    }
}

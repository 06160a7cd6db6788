//! `aws-env` and `secrets`: a person's access to the local cloud's AWS endpoint.
//!
//! The environment and the secrets themselves are `pantstack_local::client`'s
//! (the running cloud, or its state on disk); this module checks the command line
//! against the manifests and prints.

use crate::Failure;
use crate::args::{AwsEnvArgs, Global, SecretName, SecretsAction, SecretsArgs};
use crate::commands::{find_root, load_valid};
use crate::output::Out;
use pantstack_endpoint::keys::{Keyring, key_file};
use pantstack_local::client::{self, Secrets};
use pantstack_local::spec;
use pantstack_local::state::{self, Paths};
use pantstack_model::Monorepo;
use serde_json::json;
use std::io::{IsTerminal, Read};
use std::path::Path;

/// Whether an environment is production (by the seed's names).
pub(crate) fn is_production(env: &str) -> bool {
    matches!(env, "prod" | "production")
}

/// ` --target local` for the hints of an environment that names `target: aws`
/// (without it, the command the hint gives would act on AWS).
pub(crate) fn local_flag(repo: &Monorepo, env: &str) -> &'static str {
    match repo.foundation.environment(env).map(|e| e.target) {
        Some(pantstack_model::foundation::Target::Aws) => " --target local",
        _ => "",
    }
}

/// A secret's name as `secrets` may print it back: only when it reads as a variable
/// name (`API_TOKEN`). Anything else may be a value typed in its place
/// (`API_TOKEN=s3cr3t`) and is not repeated.
pub(crate) fn shown_secret_name(name: &str) -> String {
    if pantstack_model::names::check_env_var(name).is_ok() {
        format!("`{name}`")
    } else {
        "named on the command line (not repeated here: it is not a variable name like API_TOKEN and may be a value; a value is read from standard input, never from an argument)".into()
    }
}

/// `secrets` never repeats a service name it does not know: the words of a
/// `secrets` command line may be a value typed in the wrong place.
pub(crate) fn unknown_secret_service(repo: &Monorepo) -> Failure {
    Failure::Resolve(format!(
        "no such service in this monorepo (the name given is not repeated here: it may be a value; a value is read from standard input, never from an argument); the services are {}",
        repo.service_names().join(", ")
    ))
}

/// The environment: --env, else the only running one, else `up`'s choice.
fn target_env(root: &Path, repo: &Monorepo, named: Option<&str>) -> Result<String, Failure> {
    let branch = || crate::git::branch(root).ok();
    Ok(client::target_env(root, repo, named, branch)?)
}

pub fn aws_env(global: &Global, out: &Out, a: &AwsEnvArgs) -> Result<(), Failure> {
    let root = find_root(global)?;
    let repo = load_valid(global, out)?.repo;
    let principal = match &a.unit {
        None => pantstack_endpoint::USER.to_string(),
        Some(unit) => {
            let units = spec::unit_names(&repo);
            if !units.contains(unit) {
                return Err(Failure::Resolve(format!(
                    "--as {unit}: no such unit; the units are {}",
                    units.join(", ")
                )));
            }
            unit.clone()
        }
    };
    let env = target_env(&root, &repo, a.env.as_deref())?;
    let paths = Paths::new(&root, &env);
    let saved = state::load(&paths.state()).ok_or_else(|| {
        Failure::Resolve(format!(
            "the local cloud of `{env}` has never run here; start it with `pantstack up --env {env}{}`",
            local_flag(&repo, &env)
        ))
    })?;
    let port = saved.aws_port.ok_or_else(|| {
        Failure::Resolve(format!(
            "the local cloud of `{env}` has no AWS endpoint yet; start it with `pantstack up --env {env}{}`",
            local_flag(&repo, &env)
        ))
    })?;
    let region = saved.aws_region.as_deref().unwrap_or("us-east-1");
    let file = key_file(&root, &env);
    if !file.exists() {
        return Err(Failure::Resolve(format!(
            "no key file {} (the local cloud of `{env}` creates it on its first start)",
            file.display()
        )));
    }
    let ring = Keyring::open_or_create(&file).map_err(Failure::Io)?;
    let c = ring.credentials(&principal);
    if !client::accepts(&paths) {
        eprintln!(
            "note: the local cloud of `{env}` is not running; these settings work once `pantstack up --env {env}{}` runs",
            local_flag(&repo, &env)
        );
    }
    println!("unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE");
    println!("export AWS_ENDPOINT_URL=http://127.0.0.1:{port}");
    println!("export AWS_ACCESS_KEY_ID={}", c.access_key);
    println!("export AWS_SECRET_ACCESS_KEY={}", c.secret_key);
    println!("export AWS_REGION={region}");
    println!("export AWS_DEFAULT_REGION={region}");
    println!("export AWS_EC2_METADATA_DISABLED=true");
    // The AWS CLI v1 ignores AWS_ENDPOINT_URL for SQS (it pins the public queue
    // endpoint unless --endpoint-url is given) and older v1 releases ignore it for
    // every service; v2 accepts the flag as well. A shell function keeps `aws ...`
    // on the local cloud in this shell (and in bash's child shells).
    println!(
        "aws() {{ command aws --endpoint-url \"$AWS_ENDPOINT_URL\" \"$@\"; }}  # AWS CLI v1 needs the flag for SQS"
    );
    println!("if [ -n \"${{BASH_VERSION:-}}\" ]; then export -f aws; fi");
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Io(format!("cannot start the async runtime: {e}")))
}

/// Reads a secret value: a prompt without echo on a terminal, else all of stdin
/// (one trailing newline dropped).
pub(crate) fn read_value(what: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        eprint!("value for {what} (input hidden): ");
        let echo_off = std::process::Command::new("stty")
            .arg("-echo")
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success());
        let mut line = String::new();
        let read = stdin.read_line(&mut line);
        if echo_off {
            let _ = std::process::Command::new("stty")
                .arg("echo")
                .stdin(std::process::Stdio::inherit())
                .status();
        }
        eprintln!();
        read.map_err(|e| Failure::Io(format!("cannot read the value: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let mut s = String::new();
        stdin
            .lock()
            .read_to_string(&mut s)
            .map_err(|e| Failure::Io(format!("cannot read the value from standard input: {e}")))?;
        s.strip_suffix('\n')
            .map(|x| x.strip_suffix('\r').unwrap_or(x))
            .unwrap_or(&s)
            .to_string()
    };
    if value.is_empty() {
        return Err(Failure::Usage(format!(
            "no value for {what}: pipe it on standard input (printf %s \"$VALUE\" | pantstack secrets set ...) or type it at the prompt"
        )));
    }
    Ok(value)
}

/// A date of seconds since the epoch, as `2026-12-03 13:21:03`.
pub(crate) fn date_secs(secs: i64) -> String {
    date(secs as f64)
}

fn date(ms: f64) -> String {
    pantstack_rt::clock::rfc3339_micros(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis((ms * 1000.0) as u64),
    )
    .get(..19)
    .unwrap_or("")
    .replace('T', " ")
}

/// What `secrets list` says of a secret last set at `modified` (seconds) with a
/// rotation period of `days`, at `now`.
fn rotation_status(modified: Option<f64>, days: Option<i64>, now: f64) -> String {
    match (modified, days) {
        (None, _) => "not set".to_string(),
        (Some(m), Some(days)) if now - m > days as f64 * 86_400.0 => format!(
            "ROTATION DUE ({} days since the last rotation; period {days} days)",
            ((now - m) / 86_400.0) as i64
        ),
        (Some(_), Some(days)) => format!("ok (rotation every {days} days)"),
        (Some(_), None) => "ok".to_string(),
    }
}

pub fn secrets(global: &Global, out: &Out, a: &SecretsArgs) -> Result<(), Failure> {
    let root = find_root(global)?;
    let repo = load_valid(global, out)?.repo;
    let env = target_env(&root, &repo, a.env.as_deref())?;
    // Changing or deleting a production secret is never done by default: the
    // environment chosen from the branch (`main` → prod) must be named.
    let destructive = match &a.action {
        SecretsAction::Set(_) | SecretsAction::Rm(_) | SecretsAction::Rotate(_) => true,
        SecretsAction::RotateKey => true,
        SecretsAction::Get { .. } | SecretsAction::List { .. } | SecretsAction::MoveKey => false,
    };
    if let SecretsAction::MoveKey = a.action {
        let paths = Paths::new(&root, &env);
        if client::accepts(&paths) {
            return Err(Failure::Usage(format!(
                "the local cloud of `{env}` runs; `pantstack down --env {env}{}` first",
                local_flag(&repo, &env)
            )));
        }
        let (from, to) = pantstack_endpoint::keys::move_key(&paths.aws(), &key_file(&root, &env))
            .map_err(Failure::Resolve)?;
        println!(
            "the master key of `{env}` is now {} (copied from {}; delete that one once no other copy of the project needs it)",
            to.display(),
            from.display()
        );
        return Ok(());
    }
    if destructive && a.env.is_none() && is_production(&env) {
        return Err(Failure::Usage(format!(
            "this would change the secrets of `{env}`, chosen from the branch or the running local cloud; a command that changes production secrets needs --env {env}"
        )));
    }
    let project = repo.foundation.project.value.clone();
    // A secret must be declared by its service's manifest.
    let declared = |n: &SecretName| -> Result<(String, Option<i64>), Failure> {
        let unit = repo
            .services
            .iter()
            .find(|u| u.service.name == n.service)
            .ok_or_else(|| unknown_secret_service(&repo))?;
        let s = unit
            .service
            .secrets
            .iter()
            .find(|s| s.name == n.name)
            .ok_or_else(|| {
                let names: Vec<&str> = unit
                    .service
                    .secrets
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                Failure::Resolve(format!(
                    "{} declares no secret {} (declared: {}); add it under `secrets:` in {}",
                    n.service,
                    shown_secret_name(&n.name),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    },
                    unit.service.manifest_file
                ))
            })?;
        if let Some(from) = &s.from {
            return Err(Failure::Usage(format!(
                "{}'s `{}` is {}'s secret (taken with `from: {}`): manage it there, e.g. `pantstack secrets get {} {}`",
                n.service, n.name, from.value, from.value, from.value, n.name
            )));
        }
        Ok((
            spec::secret_parameter(&project, &env, &n.service, &n.name),
            s.rotation_days,
        ))
    };
    let rt = runtime()?;
    let secrets = Secrets::open(&root, &repo, &env)?;
    let call = |action: &str, input: serde_json::Value| rt.block_on(secrets.call(action, input));
    let fail = |(code, msg): (String, String)| Failure::Resolve(format!("{code}: {msg}"));
    match &a.action {
        SecretsAction::Set(n) | SecretsAction::Rotate(n) => {
            let (param, _) = declared(n)?;
            let rotate = matches!(a.action, SecretsAction::Rotate(_));
            let before = call("GetParameter", json!({ "Name": param }))?;
            if rotate && before.is_err() {
                return Err(Failure::Resolve(format!(
                    "{}/{} is not set yet; set it first with `pantstack secrets set {} {}`",
                    n.service, n.name, n.service, n.name
                )));
            }
            let value = read_value(&format!("{}/{}", n.service, n.name))?;
            let r = call(
                "PutParameter",
                json!({ "Name": param, "Value": value, "Type": "SecureString", "Overwrite": true }),
            )?
            .map_err(fail)?;
            if out.json() {
                println!(
                    "{}",
                    json!({ "name": param, "version": r["Version"], "environment": env })
                );
            } else {
                println!(
                    "{} {}/{} in {env}: version {} ({param})",
                    if rotate { "rotated" } else { "set" },
                    n.service,
                    n.name,
                    r["Version"]
                );
            }
        }
        SecretsAction::Get { name: n, reveal } => {
            let (param, _) = declared(n)?;
            let r = call(
                "GetParameter",
                json!({ "Name": param, "WithDecryption": reveal }),
            )?
            .map_err(fail)?;
            let p = &r["Parameter"];
            if *reveal {
                println!("{}", p["Value"].as_str().unwrap_or(""));
            } else if out.json() {
                println!(
                    "{}",
                    json!({ "name": param, "version": p["Version"], "last_modified": p["LastModifiedDate"] })
                );
            } else {
                println!(
                    "{param}: version {}, last set {} (the value is hidden; --reveal prints it)",
                    p["Version"],
                    date(p["LastModifiedDate"].as_f64().unwrap_or(0.0))
                );
            }
        }
        SecretsAction::Rm(n) => {
            let (param, _) = declared(n)?;
            call("DeleteParameter", json!({ "Name": param }))?.map_err(fail)?;
            println!("deleted {param}");
        }
        SecretsAction::MoveKey => {}
        SecretsAction::RotateKey => {
            let n = rt.block_on(secrets.rotate_key())?;
            println!(
                "re-encrypted {n} secret value(s) under a new master key; the old key is gone"
            );
        }
        SecretsAction::List { service } => {
            let now = pantstack_endpoint::now_ms() as f64 / 1000.0;
            let mut rows = Vec::new();
            for u in &repo.services {
                if service.as_ref().is_some_and(|s| *s != u.service.name) {
                    continue;
                }
                // A secret taken `from` another service is listed with its owner.
                for s in u.service.secrets.iter().filter(|s| s.from.is_none()) {
                    let param = spec::secret_parameter(&project, &env, &u.service.name, &s.name);
                    let got = call("GetParameter", json!({ "Name": param }))?;
                    let (version, modified) = match &got {
                        Ok(r) => (
                            r["Parameter"]["Version"].as_u64(),
                            r["Parameter"]["LastModifiedDate"].as_f64(),
                        ),
                        Err(_) => (None, None),
                    };
                    let status = rotation_status(modified, s.rotation_days, now);
                    rows.push(json!({
                        "service": u.service.name, "name": s.name, "parameter": param,
                        "version": version, "last_rotated": modified, "rotation_days": s.rotation_days,
                        "status": status,
                    }));
                }
            }
            if out.json() {
                println!("{}", json!(rows));
            } else if rows.is_empty() {
                println!("no secrets declared");
            } else {
                for r in &rows {
                    println!(
                        "{:<10} {:<20} {:<8} {:<20} {}",
                        r["service"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or(""),
                        r["version"]
                            .as_u64()
                            .map(|v| format!("v{v}"))
                            .unwrap_or_else(|| "-".into()),
                        r["last_rotated"]
                            .as_f64()
                            .map(date)
                            .unwrap_or_else(|| "-".into()),
                        r["status"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rotation_status;

    #[test]
    fn rotation_is_due_after_the_period() {
        let day = 86_400.0;
        assert_eq!(rotation_status(None, Some(90), 0.0), "not set");
        assert_eq!(
            rotation_status(Some(0.0), Some(90), 90.0 * day),
            "ok (rotation every 90 days)"
        );
        assert_eq!(
            rotation_status(Some(0.0), Some(90), 91.5 * day),
            "ROTATION DUE (91 days since the last rotation; period 90 days)"
        );
        assert_eq!(rotation_status(Some(0.0), None, 1000.0 * day), "ok");
    }
}

//! `deploy`, `rollback` and `deployments` in the local cloud: the supervisor runs
//! the ECS-like deployment and streams its events; these print them and its end.

use super::*;
use crate::args::{DeployArgs, ServiceArgs};

/// Prints a deployment's end, with the failures that tripped the breaker.
fn print_outcome(out: &Out, v: &Value) -> bool {
    let d = &v["deployment"];
    let unit = v["unit"].as_str().unwrap_or("?");
    if let Some(e) = v["error"].as_str() {
        println!("{unit}: {e}");
        return false;
    }
    let outcome = d["outcome"].as_str().unwrap_or("?");
    println!(
        "{} deployment {} ({}) of revision {}: {}",
        out.bold(unit),
        d["id"],
        d["kind"].as_str().unwrap_or(""),
        d["revision"],
        outcome
    );
    if outcome != "completed" {
        if let Some(r) = d["reason"].as_str() {
            println!("  why: {r}");
        }
        for f in d["failures"].as_array().into_iter().flatten() {
            println!("  - {}", f.as_str().unwrap_or(""));
        }
    }
    outcome == "completed"
}

/// `op` is `deploy` or `rollback`: what the messages call it.
fn deploy_like(global: &Global, out: &Out, a: &ServiceArgs, op: &str) -> Result<(), Failure> {
    let service = a.service.clone();
    let request = if op == "deploy" {
        Request::Deploy { service }
    } else {
        Request::Rollback { service }
    };
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    let mut ok = true;
    let mut rolled_back = false;
    let mut results = Vec::new();
    // Deployments whose outcome was shown as it happened (not shown twice).
    let mut shown: Vec<(Value, Value)> = Vec::new();
    let mut units: Vec<String> = Vec::new();
    let last = call(
        &rt,
        &paths.socket(),
        request,
        |v| {
            if units.is_empty()
                && v.get("done").is_none()
                && let Some(list) = v["units"].as_array()
            {
                units = list
                    .iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect();
            }
            if v["event"].is_object() {
                if !out.json() {
                    print_event(out, v);
                }
            } else if v["final"] == true {
                results.push(v.clone());
            } else if v["deployment"]["outcome"] == "failed" && !out.json() {
                // The failed deployment; its rollback follows.
                print_outcome(out, v);
                shown.push((v["unit"].clone(), v["deployment"]["id"].clone()));
            }
        },
    )
    .map_err(|f| match f {
        Failure::Io(m) => Failure::Io(format!(
            "{m}; the {op}'s outcome is unknown: after `pantstack up`, `pantstack deployments {}` shows it (interrupted if it did not end)",
            a.service
        )),
        f => f,
    })?;
    if let Some(e) = last["error"].as_str() {
        return Err(Failure::Resolve(e.to_string()));
    }
    let unfinished: Vec<&String> = units
        .iter()
        .filter(|u| !results.iter().any(|r| r["unit"] == u.as_str()))
        .collect();
    if !unfinished.is_empty() {
        return Err(Failure::Io(format!(
            "the supervisor answered without the end of the deployment of {}",
            unfinished
                .iter()
                .map(|u| u.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if out.json() {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!(results)).unwrap_or_default()
        );
    }
    for r in &results {
        let seen = shown.contains(&(r["unit"].clone(), r["deployment"]["id"].clone()));
        if !out.json() && !seen {
            print_outcome(out, r);
        }
        if r["deployment"]["kind"] == "rollback" && op == "deploy" {
            rolled_back = true;
        }
        if r["deployment"]["outcome"] != "completed" || r.get("error").is_some_and(|e| !e.is_null())
        {
            ok = false;
        }
    }
    if rolled_back {
        ok = false;
        if !out.json() {
            println!("the new revision failed and was rolled back");
        }
    }
    if ok { Ok(()) } else { Err(Failure::Invalid) }
}

pub fn deploy(global: &Global, out: &Out, a: &DeployArgs) -> Result<(), Failure> {
    let Some(service) = a.service.clone() else {
        return Err(Failure::Usage(
            "deploy in the local cloud: name the service (`pantstack deploy api`); `pantstack up` starts them all".into(),
        ));
    };
    let a = ServiceArgs {
        service,
        env: a.env.clone(),
    };
    deploy_like(global, out, &a, "deploy")
}

pub fn rollback(global: &Global, out: &Out, a: &ServiceArgs) -> Result<(), Failure> {
    deploy_like(global, out, a, "rollback")
}

pub fn deployments(global: &Global, out: &Out, a: &ServiceArgs) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    let v = call_short(
        &rt,
        &paths,
        Request::Deployments {
            service: a.service.clone(),
        },
    )?;
    if let Some(e) = v["error"].as_str() {
        return Err(Failure::Resolve(e.to_string()));
    }
    let units = v["units"].as_array().cloned().unwrap_or_default();
    if units.is_empty() {
        return Err(Failure::Resolve(format!(
            "no service or unit `{}`",
            a.service
        )));
    }
    if out.json() {
        println!(
            "{}",
            serde_json::to_string_pretty(&units).unwrap_or_default()
        );
        return Ok(());
    }
    for u in &units {
        println!("{}", out.bold(u["unit"].as_str().unwrap_or("?")));
        if !u["in_progress"].is_null() {
            println!(
                "  {:<4} revision {:<4} {:<9} in progress",
                u["in_progress"]["id"],
                u["in_progress"]["revision"],
                u["in_progress"]["kind"].as_str().unwrap_or("")
            );
        }
        for h in u["history"].as_array().into_iter().flatten().rev() {
            println!(
                "  {:<4} revision {:<4} {:<9} {:<11} {} {}",
                h["id"],
                h["revision"],
                h["kind"].as_str().unwrap_or(""),
                h["outcome"].as_str().unwrap_or(""),
                h["started"].as_str().unwrap_or(""),
                h["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

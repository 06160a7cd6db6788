//! `deploy`, `rollback` and `deployments` in the local cloud: the supervisor runs
//! the ECS-like deployment and streams its events; these print them and its end.

use super::*;
use crate::args::{DeployArgs, ServiceArgs};
use pantstack_local::control::Reply;
use pantstack_local::history::{DeploymentOutcome, DeploymentRecord};

/// The deployment an answer line reports (`deployment`), if it reports one.
fn deployment_of(v: &Value) -> Option<DeploymentRecord> {
    serde_json::from_value(v["deployment"].clone()).ok()
}

/// Prints a deployment's end, with the failures that tripped the breaker.
fn print_outcome(out: &Out, v: &Value) -> bool {
    let reply = Reply::of(v);
    let unit = reply.unit.as_deref().unwrap_or("?");
    if let Some(e) = &reply.error {
        println!("{unit}: {e}");
        return false;
    }
    let d = deployment_of(v).unwrap_or_default();
    let outcome = d.outcome.map_or("?", DeploymentOutcome::as_str);
    println!(
        "{} deployment {} ({}) of revision {}: {}",
        out.bold(unit),
        d.id,
        d.kind,
        d.revision,
        outcome
    );
    if !d.completed() {
        if let Some(r) = &d.reason {
            println!("  why: {r}");
        }
        for f in d.failures.iter().flatten() {
            println!("  - {f}");
        }
    }
    d.completed()
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
    let mut shown: Vec<(Option<String>, u32)> = Vec::new();
    let mut units: Vec<String> = Vec::new();
    let last = call(
        &rt,
        &paths.socket(),
        request,
        |v| {
            let reply = Reply::of(v);
            if units.is_empty()
                && reply.done.is_none()
                && let Some(list) = reply.units.clone()
            {
                units = list;
            }
            if v["event"].is_object() {
                if !out.json() {
                    print_event(out, v);
                }
            } else if reply.is_final() {
                results.push(v.clone());
            } else if let Some(d) = deployment_of(v)
                && d.outcome == Some(DeploymentOutcome::Failed)
                && !out.json()
            {
                // The failed deployment; its rollback follows.
                print_outcome(out, v);
                shown.push((reply.unit, d.id));
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
    if let Some(e) = Reply::of(&last).error {
        return Err(Failure::Resolve(e));
    }
    let unfinished: Vec<&String> = units
        .iter()
        .filter(|u| {
            !results
                .iter()
                .any(|r| Reply::of(r).unit.as_ref() == Some(*u))
        })
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
        let reply = Reply::of(r);
        let d = deployment_of(r);
        let seen = d
            .as_ref()
            .is_some_and(|d| shown.contains(&(reply.unit.clone(), d.id)));
        if !out.json() && !seen {
            print_outcome(out, r);
        }
        if d.as_ref().is_some_and(|d| d.kind == "rollback") && op == "deploy" {
            rolled_back = true;
        }
        if !d.is_some_and(|d| d.completed()) || reply.error.is_some() {
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
    if let Some(e) = Reply::of(&v).error {
        return Err(Failure::Resolve(e));
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

//! The local cloud commands: up, down, status, deploy, rollback, scale, logs,
//! trace, deployments, exec, spot-interrupt. `up` runs the supervisor (`pantstack_local`); the others talk
//! to it over its control socket. Which environment a command addresses is
//! `pantstack_local::client`'s.
//!
//! - this file: the calls to the supervisor every command shares, `status`,
//!   `down` and `scale`;
//! - `up`: starting (or attaching to) a local cloud;
//! - `deploy`: `deploy`, `rollback` and `deployments`;
//! - `tasks`: `exec`, a running task's environment;
//! - `logs`: `logs` and `trace`, the tasks' streams and the access logs;
//! - `spot`: `spot-interrupt`, a Fargate Spot interruption drill.

mod deploy;
mod logs;
mod monitor;
mod spot;
mod tasks;
mod up;

pub use deploy::{deploy, deployments, rollback};
pub use logs::{logs, trace};
pub use monitor::{activity, alarms, metrics};
pub use spot::spot_interrupt;
pub use tasks::exec;
pub use up::up;

use crate::Failure;
use crate::args::{Global, LocalArgs, ScaleArgs};
use crate::commands::find_root;
use crate::git;
use crate::output::Out;
use pantstack_local::client;
use pantstack_local::control::{self, Request};
use pantstack_local::state::Paths;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Io(format!("cannot start the async runtime: {e}")))
}

/// The environment of `up`: --env, else the current branch's, else the first one.
pub(crate) fn up_env(
    root: &Path,
    repo: &pantstack_model::Monorepo,
    named: Option<&str>,
) -> Result<String, Failure> {
    Ok(client::up_env(repo, named, || git::branch(root).ok())?)
}

fn call(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    req: Request,
    each: impl FnMut(&Value),
) -> Result<Value, Failure> {
    rt.block_on(control::call(socket, &req, each))
        .map_err(call_failure)
}

/// A short request, bounded by `client::ANSWER_WITHIN`.
pub(crate) fn call_short(
    rt: &tokio::runtime::Runtime,
    paths: &Paths,
    req: Request,
) -> Result<Value, Failure> {
    Ok(rt.block_on(client::call_short(paths, &req))?)
}

/// No supervisor: exit 3; a supervisor that went away mid-answer: exit 4.
fn call_failure(e: control::CallError) -> Failure {
    client::Refused::from(e).into()
}

fn print_event(out: &Out, v: &Value) {
    let ev = if v["event"].is_object() {
        &v["event"]
    } else {
        v
    };
    let time = ev["time"].as_str().unwrap_or("");
    let time = time.get(11..19).unwrap_or(time);
    println!(
        "{} {:<14} {:<16} {}",
        out.dim(time),
        ev["unit"].as_str().unwrap_or("-"),
        ev["event"].as_str().unwrap_or("-"),
        ev["message"].as_str().unwrap_or("")
    );
}

fn status_of(rt: &tokio::runtime::Runtime, out: &Out, paths: &Paths) -> Result<(), Failure> {
    let v = call_short(rt, paths, Request::Status)?;
    let st = &v["status"];
    if out.json() {
        println!("{}", serde_json::to_string_pretty(st).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{} {} (supervisor pid {})",
        out.bold("environment"),
        st["environment"].as_str().unwrap_or("?"),
        st["pid"]
    );
    if let Some(url) = st["dashboard"].as_str() {
        println!("{} {url}", out.bold("dashboard:"));
    }
    for u in st["units"].as_array().into_iter().flatten() {
        let dep = if u["deployment"].is_null() {
            String::new()
        } else {
            format!(
                "  deploying revision {} ({})",
                u["deployment"]["revision"],
                u["deployment"]["kind"].as_str().unwrap_or("")
            )
        };
        println!(
            "{:<16} {:<26} revision {}  desired {}  {}{dep}",
            out.bold(u["name"].as_str().unwrap_or("?")),
            u["url"].as_str().unwrap_or("(no load balancer)"),
            u["revision"],
            u["desired"],
            u["runtime"].as_str().unwrap_or("")
        );
        if let Some(b) = u["build"].as_object() {
            println!(
                "  building (build {}, {} s): log {}{}",
                b.get("id").unwrap_or(&Value::Null),
                b.get("seconds").and_then(Value::as_u64).unwrap_or(0),
                b.get("log").and_then(Value::as_str).unwrap_or("?"),
                b.get("last_line")
                    .and_then(Value::as_str)
                    .map(|l| format!("\n    {l}"))
                    .unwrap_or_default()
            );
        }
        let last = &u["last_deployment"];
        if let Some(outcome) = last["outcome"].as_str().filter(|o| *o != "completed") {
            println!(
                "  last deployment {} (revision {}): {outcome}{}",
                last["id"],
                last["revision"],
                last["reason"]
                    .as_str()
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(" — {r}"))
                    .unwrap_or_default()
            );
            for f in last["failures"].as_array().into_iter().flatten().take(3) {
                println!("    - {}", f.as_str().unwrap_or(""));
            }
        }
        for t in u["tasks"].as_array().into_iter().flatten() {
            println!(
                "  task {:<5} r{:<3} {:<22} {:<9} {:<10} up {}s{}{}",
                t["id"],
                t["revision"],
                format!("127.0.0.1:{}", t["port"]),
                t["phase"].as_str().unwrap_or(""),
                t["health"].as_str().unwrap_or(""),
                t["uptime_secs"],
                t["capacity"]
                    .as_str()
                    .map(|c| format!(" on {c}"))
                    .unwrap_or_default(),
                t["last_failure"]
                    .as_str()
                    .filter(|_| t["health"] != "healthy")
                    .map(|f| format!("  last check: {f}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn socket_of(global: &Global, named: Option<&str>) -> Result<(PathBuf, Paths), Failure> {
    let root = find_root(global)?;
    let env_name = client::running_env(&root, named)?;
    Ok((root.clone(), Paths::new(&root, &env_name)))
}

pub fn status(global: &Global, out: &Out, a: &LocalArgs) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    status_of(&rt, out, &paths)
}

/// How long `down` waits for the supervisor to exit once it said it stopped.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

pub fn down(global: &Global, out: &Out, env: Option<&str>) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, env)?;
    let rt = runtime()?;
    let answered = rt.block_on(control::call(&paths.socket(), &Request::Down, |v| {
        if v["event"].is_object() {
            print_event(out, v);
        }
    }));
    match answered {
        Ok(_) => {}
        // It went away while stopping: what counts is that it is gone (below).
        Err(control::CallError::Dropped(_)) => {}
        // Nothing answers and nothing holds the environment: a supervisor that was
        // killed may have left tasks serving; stop them.
        Err(control::CallError::Connect(m)) if pantstack_local::state::holder(&paths).is_none() => {
            let n = rt.block_on(pantstack_local::supervisor::stop_leftovers(&paths));
            if n == 0 {
                return Err(Failure::Resolve(m));
            }
            println!("no supervisor was running; stopped the {n} task(s) the last one left");
            return Ok(());
        }
        Err(e) => return Err(call_failure(e)),
    }
    // Done only when the supervisor has exited and released the environment, so
    // `down && up` works.
    if let Err(h) = pantstack_local::state::wait_released(&paths, EXIT_WITHIN) {
        let who = h
            .and_then(|h| h.pid)
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        return Err(Failure::Io(format!(
            "the supervisor{who} stopped its tasks but still holds {} after {} s; see {}",
            paths.dir.display(),
            EXIT_WITHIN.as_secs(),
            paths.supervisor_log().display()
        )));
    }
    println!("stopped");
    Ok(())
}

pub fn scale(global: &Global, out: &Out, a: &ScaleArgs) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    let v = call_short(
        &rt,
        &paths,
        Request::Scale {
            service: a.service.clone(),
            count: a.count,
        },
    )?;
    let reply = control::Reply::of(&v);
    if let Some(e) = reply.error {
        return Err(Failure::Resolve(e));
    }
    if out.json() {
        println!("{v}");
    } else {
        println!(
            "{}: desired count {}",
            reply.units.unwrap_or_default().join(", "),
            a.count
        );
        for n in v["notes"].as_array().into_iter().flatten() {
            eprintln!("note: {}", n.as_str().unwrap_or(""));
        }
    }
    Ok(())
}

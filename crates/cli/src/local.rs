//! The local cloud commands: up, down, status, deploy, rollback, scale, logs,
//! deployments. `up` runs the supervisor (`pantstack_local`); the others talk to it
//! over its control socket.

use crate::Failure;
use crate::args::{
    DeployArgs, ExecArgs, Global, LocalArgs, LogsArgs, RuntimeArg, ScaleArgs, ServiceArgs, UpArgs,
};
use crate::commands::{find_root, load_valid};
use crate::git;
use crate::output::Out;
use pantstack_local::control;
use pantstack_local::spec::Runtime;
use pantstack_local::state::Paths;
use pantstack_local::supervisor::{Config, Supervisor};
use pantstack_model::env;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::IsTerminal;
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
    let f = &repo.foundation;
    if let Some(n) = named {
        return env::named(f, n)
            .map(|e| e.name)
            .map_err(|e| Failure::Resolve(e.to_string()));
    }
    if let Ok(b) = git::branch(root)
        && let Ok(e) = env::for_branch(f, &b)
    {
        return Ok(e.name);
    }
    f.env_names()
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| Failure::Resolve("the foundation declares no environment".into()))
}

/// The environment a command addresses: --env, else the only running one.
pub(crate) fn running_env(root: &Path, named: Option<&str>) -> Result<String, Failure> {
    if let Some(n) = named {
        // The name becomes a directory and a key file: never a path.
        if n.is_empty()
            || n.len() > 64
            || !n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Failure::Usage(format!(
                "--env {n}: not an environment name (lowercase letters, digits and `-`, as `pantstack env` prints)"
            )));
        }
        return Ok(n.to_string());
    }
    let dir = root.join(".pantstack").join("local");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.path().join("control.sock").exists() {
                found.push(e.file_name().to_string_lossy().to_string());
            }
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Failure::Resolve(format!(
            "no local cloud is running for {} (start one with `pantstack up`)",
            root.display()
        ))),
        _ => Err(Failure::Usage(format!(
            "several local clouds are running ({}); pass --env",
            found.join(", ")
        ))),
    }
}

fn call(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    req: Value,
    each: impl FnMut(&Value),
) -> Result<Value, Failure> {
    rt.block_on(control::call(socket, &req, each))
        .map_err(call_failure)
}

/// How long a short request (status, scale, deployments, exec, secrets) waits for
/// the supervisor's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// A short request: bounded, so a supervisor that accepts but never answers (stopped
/// with SIGSTOP, out of descriptors, wedged) is an error naming it, not a hang.
pub(crate) fn call_short(
    rt: &tokio::runtime::Runtime,
    paths: &Paths,
    req: Value,
) -> Result<Value, Failure> {
    let socket = paths.socket();
    let answered = rt.block_on(async {
        tokio::time::timeout(ANSWER_WITHIN, control::call(&socket, &req, |_| {})).await
    });
    match answered {
        Ok(r) => r.map_err(call_failure),
        Err(_) => {
            let pid = pantstack_local::state::holder(paths).and_then(|h| h.pid);
            Err(Failure::Io(format!(
                "the local cloud's supervisor{} did not answer within {} s: it may be stopped (SIGSTOP), out of file descriptors or overloaded. Look at {}, or end it with `kill{}` and run `pantstack up` again",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                ANSWER_WITHIN.as_secs(),
                paths.supervisor_log().display(),
                pid.map(|p| format!(" {p}"))
                    .unwrap_or_else(|| " <pid>".into()),
            )))
        }
    }
}

/// No supervisor: exit 3; a supervisor that went away mid-answer: exit 4.
fn call_failure(e: control::CallError) -> Failure {
    match e {
        control::CallError::Connect(m) => Failure::Resolve(m),
        control::CallError::Dropped(m) => Failure::Io(m),
    }
}

/// How long `up` keeps asking a supervisor that holds the environment's lock for
/// its status before it gives up (each try is bounded too).
const PROBE_WITHIN: Duration = Duration::from_secs(5);
const PROBE_TRY: Duration = Duration::from_millis(1500);

/// What runs in an environment, as `up` sees it.
enum Liveness {
    /// A supervisor answers on the control socket.
    Answers,
    /// A live process holds the environment's lock but its socket does not answer.
    Silent(Option<u32>),
    /// Nothing runs (a crashed supervisor's leftovers are for the next one).
    Nothing,
}

/// Decides from the environment's lock whether a supervisor is alive, and asks its
/// socket (again, within `PROBE_WITHIN`) whether it answers. A socket that does
/// not answer never makes a live supervisor dead.
fn liveness(rt: &tokio::runtime::Runtime, paths: &Paths) -> Liveness {
    let deadline = std::time::Instant::now() + PROBE_WITHIN;
    loop {
        let answered = rt.block_on(async {
            tokio::time::timeout(
                PROBE_TRY,
                control::call(&paths.socket(), &json!({"op": "status"}), |_| {}),
            )
            .await
        });
        if matches!(answered, Ok(Ok(_))) {
            return Liveness::Answers;
        }
        match pantstack_local::state::holder(paths) {
            None => return Liveness::Nothing,
            Some(h) if std::time::Instant::now() >= deadline => return Liveness::Silent(h.pid),
            Some(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
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

pub fn up(global: &Global, out: &Out, a: &UpArgs) -> Result<(), Failure> {
    let loaded = load_valid(global, out)?;
    let root = loaded.repo.files.root.clone();
    let env_name = up_env(&root, &loaded.repo, a.env.as_deref())?;
    if a.env.is_none() && crate::aws::is_production(&env_name) {
        return Err(Failure::Usage(format!(
            "this branch deploys to `{env_name}`; the local cloud runs production's settings and secrets only when named: \
             pass --env {env_name} (or --env test for the test environment)"
        )));
    }
    let known: Vec<&str> = loaded
        .repo
        .services
        .iter()
        .map(|u| u.service.name.as_str())
        .collect();
    for s in &a.services {
        if !known.contains(&s.as_str()) {
            return Err(Failure::Resolve(format!(
                "no service `{s}` in this monorepo (services: {}){}",
                known.join(", "),
                pantstack_manifest::diag::did_you_mean(s, &known)
                    .map(|m| format!("; did you mean `{m}`?"))
                    .unwrap_or_default()
            )));
        }
    }
    let paths = Paths::new(&root, &env_name);
    let rt = runtime()?;
    let runtime_choice = a.runtime.map(|r| match r {
        RuntimeArg::Process => Runtime::Process,
        RuntimeArg::Docker => Runtime::Docker,
    });

    pantstack_local::state::secure(&paths).map_err(Failure::Io)?;
    let live_now = if a.supervise {
        Liveness::Nothing
    } else {
        liveness(&rt, &paths)
    };
    if let Liveness::Silent(pid) = live_now {
        let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        return Err(Failure::Io(format!(
            "a supervisor{who} holds the environment `{env_name}` but its control socket ({}) does not answer; \
             nothing was stopped. It may be overloaded (out of file descriptors), stopped (SIGSTOP) or still starting: \
             try again, look at {}, or end it with `kill{}` and run `pantstack up` again",
            paths.socket().display(),
            paths.supervisor_log().display(),
            pid.map(|p| format!(" {p}"))
                .unwrap_or_else(|| " <pid>".into()),
        )));
    }
    // Already running: attach (or say so).
    if matches!(live_now, Liveness::Answers) {
        if a.detach {
            println!("the local cloud for `{env_name}` is already running");
            return status_of(&rt, out, &paths);
        }
        println!(
            "the local cloud for `{env_name}` is already running: attached (Ctrl-C detaches, `pantstack down` stops it)"
        );
        status_of(&rt, out, &paths)?;
        call(&rt, &paths.socket(), json!({"op": "events"}), |v| {
            print_event(out, v)
        })?;
        return Ok(());
    }

    if a.detach && !a.supervise {
        let log = pantstack_local::state::append_private(&paths.supervisor_log()).map_err(|e| {
            Failure::Io(format!(
                "cannot open {}: {e}",
                paths.supervisor_log().display()
            ))
        })?;
        let exe = std::env::current_exe().map_err(|e| Failure::Io(e.to_string()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--root")
            .arg(&root)
            // Local whatever the environment's configured target: this is the
            // local cloud's own supervisor.
            .args(["up", "--supervise", "--target", "local", "--env", &env_name])
            .args(&a.services);
        if let Some(r) = a.runtime {
            cmd.args([
                "--runtime",
                match r {
                    RuntimeArg::Process => "process",
                    RuntimeArg::Docker => "docker",
                },
            ]);
        }
        use std::os::unix::process::CommandExt;
        let log2 = log.try_clone().map_err(|e| Failure::Io(e.to_string()))?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::Io(format!("cannot start the supervisor: {e}")))?;
        // Wait for the socket, then until every service's start deployment has
        // ended (bounded: 180 s after the last build ended; a build has its own
        // timeout), showing progress; a service that could not start is a failure
        // with its reason.
        let mut deadline = std::time::Instant::now() + Duration::from_secs(180);
        let mut shown: BTreeMap<String, String> = BTreeMap::new();
        let mut settled = None;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                let tail = pantstack_local::task::tail_file(&paths.supervisor_log(), 10);
                return Err(Failure::Io(format!(
                    "the supervisor exited ({st}):\n  {}",
                    tail.join("\n  ")
                )));
            }
            if let Ok(v) = rt.block_on(control::call(
                &paths.socket(),
                &json!({"op": "status"}),
                |_| {},
            )) {
                let units: Vec<Value> =
                    v["status"]["units"].as_array().cloned().unwrap_or_default();
                for u in &units {
                    let name = u["name"].as_str().unwrap_or("?").to_string();
                    let line = progress_line(u);
                    if shown.get(&name) != Some(&line) {
                        println!("{:<16} {line}", out.bold(&name));
                        shown.insert(name, line);
                    }
                }
                if units.iter().all(|u| u["deployment"].is_null()) {
                    settled = Some(units);
                    break;
                }
                if units.iter().any(|u| u["build"].is_object()) {
                    deadline = std::time::Instant::now() + Duration::from_secs(180);
                }
            }
            if std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "the local cloud for `{env_name}` runs in the background (pid {}); `pantstack down` stops it",
            child.id()
        );
        status_of(&rt, out, &paths)?;
        let Some(units) = settled else {
            println!(
                "still deploying after 180 s: `pantstack status` shows progress, `pantstack logs` the output"
            );
            return Ok(());
        };
        let failed: Vec<String> = units.iter().filter_map(start_failure).collect();
        if failed.is_empty() {
            return Ok(());
        }
        return Err(Failure::Io(format!(
            "{} could not start:\n{}",
            if failed.len() == 1 {
                "a service"
            } else {
                "services"
            },
            failed.join("\n")
        )));
    }

    let (branch, sha) = (
        git::branch(&root).unwrap_or_else(|_| "local".into()),
        git::head_sha(&root).unwrap_or_else(|_| "0000000".into()),
    );
    let cfg = Config {
        root: root.clone(),
        env: env_name.clone(),
        runtime: runtime_choice,
        branch,
        sha,
        only: a.services.clone(),
    };
    let live = !a.supervise;
    let out2 = *out;
    let lock = rt.block_on(async move {
        let sup = Supervisor::start(cfg).await.map_err(Failure::Resolve)?;
        let mut events = sup.subscribe();
        println!("local cloud `{env_name}` (state in {})", sup.paths().dir.display());
        for (unit, port) in sup.ports() {
            println!("  {unit:<14} http://127.0.0.1:{port}");
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            let _ = stop_tx.send(true);
        });
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if live {
                    print_event(&out2, &ev);
                } else {
                    println!("{ev}");
                }
            }
        });
        sup.run(stop_rx).await.map_err(Failure::Io)
    })?;
    println!("stopped");
    // The environment stays locked until the runtime (and the endpoint) are gone.
    drop(rt);
    drop(lock);
    Ok(())
}

/// One line of a unit's start: its deployment and healthy tasks.
fn progress_line(u: &Value) -> String {
    let healthy = u["tasks"]
        .as_array()
        .map(|ts| ts.iter().filter(|t| t["health"] == "healthy").count())
        .unwrap_or(0);
    let desired = u["desired"].as_u64().unwrap_or(0);
    if u["build"].is_object() {
        let b = &u["build"];
        // Whole ten seconds, so the line changes (and is printed) at most that often.
        let secs = b["seconds"].as_u64().unwrap_or(0) / 10 * 10;
        let last = b["last_line"]
            .as_str()
            .map(|l| {
                let l: String = l.chars().take(60).collect();
                format!(" — {l}")
            })
            .unwrap_or_default();
        return format!(
            "building revision {} ({secs} s, log {}){last}",
            u["deployment"]["revision"],
            b["log"].as_str().unwrap_or("?")
        );
    }
    if !u["deployment"].is_null() {
        return format!(
            "deploying revision {}: {healthy}/{desired} healthy",
            u["deployment"]["revision"]
        );
    }
    match u["last_deployment"]["outcome"].as_str() {
        Some("completed") | None => {
            format!("revision {}: {healthy}/{desired} healthy", u["revision"])
        }
        Some(other) => format!(
            "revision {} {other}: {}",
            u["last_deployment"]["revision"],
            u["last_deployment"]["reason"].as_str().unwrap_or("")
        ),
    }
}

/// Why a unit did not start, if it did not: its latest revision is not the one
/// running (the start deployment failed, rolled back or was cut short).
fn start_failure(u: &Value) -> Option<String> {
    let name = u["name"].as_str().unwrap_or("?");
    let running = u["revision"].as_u64().unwrap_or(0);
    let latest = u["latest_revision"].as_u64().unwrap_or(0);
    let last = &u["last_deployment"];
    let failed_outcome = last["outcome"].as_str().is_some_and(|o| o != "completed")
        && last["revision"].as_u64() == Some(latest);
    if running == latest && !failed_outcome {
        return None;
    }
    let mut why = format!(
        "  {name}: revision {latest} {}",
        last["outcome"].as_str().unwrap_or("did not start")
    );
    if let Some(r) = last["reason"].as_str().filter(|r| !r.is_empty()) {
        why.push_str(&format!(": {r}"));
    }
    for f in last["failures"].as_array().into_iter().flatten().take(3) {
        why.push_str(&format!("\n    - {}", f.as_str().unwrap_or("")));
    }
    Some(why)
}

fn status_of(rt: &tokio::runtime::Runtime, out: &Out, paths: &Paths) -> Result<(), Failure> {
    let v = call_short(rt, paths, json!({"op": "status"}))?;
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
                "  task {:<5} r{:<3} {:<22} {:<9} {:<10} up {}s{}",
                t["id"],
                t["revision"],
                format!("127.0.0.1:{}", t["port"]),
                t["phase"].as_str().unwrap_or(""),
                t["health"].as_str().unwrap_or(""),
                t["uptime_secs"],
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
    let env_name = running_env(&root, named)?;
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
    let answered = rt.block_on(control::call(
        &paths.socket(),
        &json!({"op": "down"}),
        |v| {
            if v["event"].is_object() {
                print_event(out, v);
            }
        },
    ));
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

fn deploy_like(global: &Global, out: &Out, a: &ServiceArgs, op: &str) -> Result<(), Failure> {
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
        json!({"op": op, "service": a.service}),
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

pub fn scale(global: &Global, out: &Out, a: &ScaleArgs) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    let v = call_short(
        &rt,
        &paths,
        json!({"op": "scale", "service": a.service, "count": a.count}),
    )?;
    if let Some(e) = v["error"].as_str() {
        return Err(Failure::Resolve(e.to_string()));
    }
    if out.json() {
        println!("{v}");
    } else {
        println!(
            "{}: desired count {}",
            v["units"]
                .as_array()
                .map(|u| u
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            a.count
        );
    }
    Ok(())
}

pub fn deployments(global: &Global, out: &Out, a: &ServiceArgs) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    let v = call_short(
        &rt,
        &paths,
        json!({"op": "deployments", "service": a.service}),
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

pub fn logs(global: &Global, _out: &Out, a: &LogsArgs) -> Result<(), Failure> {
    let root = find_root(global)?;
    let env_name = match running_env(&root, a.env.as_deref()) {
        Ok(e) => e,
        Err(_) => {
            // Logs outlive the local cloud: take the only environment with logs.
            let dir = root.join(".pantstack").join("local");
            let envs: Vec<String> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().join("logs").is_dir())
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .collect()
                })
                .unwrap_or_default();
            match envs.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(Failure::Resolve(
                        "no local cloud logs here; pass --env".into(),
                    ));
                }
            }
        }
    };
    let paths = Paths::new(&root, &env_name);
    let since = match &a.since {
        Some(s) => {
            let secs = pantstack_manifest::read::parse_duration(s).ok_or_else(|| {
                Failure::Usage(format!(
                    "--since {s}: expected a duration such as 30s, 10m, 2h, 1d"
                ))
            })?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            Some(now - secs as f64)
        }
        None => None,
    };
    let dirs: Vec<(String, PathBuf)> = std::fs::read_dir(paths.logs())
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    match &a.service {
                        None => true,
                        Some(s) => n == *s || n == pantstack_local::spec::worker_unit(s),
                    }
                })
                .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    if dirs.is_empty() {
        return Err(Failure::Resolve(match &a.service {
            Some(s) => format!("no logs for `{s}` in environment `{env_name}`"),
            None => format!("no logs in environment `{env_name}`"),
        }));
    }
    let mut offsets: std::collections::BTreeMap<PathBuf, u64> = Default::default();
    loop {
        let mut lines: Vec<(f64, String)> = Vec::new();
        for (unit, dir) in &dirs {
            for f in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = f.path();
                let task = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                let start = offsets.get(&path).copied().unwrap_or(0);
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                if (bytes.len() as u64) <= start {
                    continue;
                }
                let chunk = &bytes[start as usize..];
                // Only whole lines.
                let Some(end) = chunk.iter().rposition(|&b| b == b'\n') else {
                    continue;
                };
                offsets.insert(path.clone(), start + end as u64 + 1);
                for line in String::from_utf8_lossy(&chunk[..end]).lines() {
                    let ts = line
                        .split(' ')
                        .next()
                        .and_then(pantstack_rt::clock::parse_rfc3339)
                        .unwrap_or(0.0);
                    if since.is_some_and(|s| ts < s) {
                        continue;
                    }
                    lines.push((ts, format!("{unit}/{task} {line}")));
                }
            }
        }
        lines.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        for (_, l) in lines {
            println!("{l}");
        }
        if !a.follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `pantstack exec`: a command in a running task's environment (process) or
/// container (Docker). Its exit status is the command's.
pub fn exec(global: &Global, _out: &Out, a: &ExecArgs) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    let v = call_short(
        &rt,
        &paths,
        json!({"op": "exec", "service": a.service, "task": a.task}),
    )?;
    if let Some(e) = v["error"].as_str() {
        return Err(Failure::Resolve(e.to_string()));
    }
    let Some((prog, args)) = a.command.split_first() else {
        return Err(Failure::Usage(
            "no command: `pantstack exec SERVICE -- COMMAND`".into(),
        ));
    };
    let mut cmd = if let Some(container) = v["container"].as_str() {
        let mut c = std::process::Command::new("docker");
        c.arg("exec");
        if std::io::stdin().is_terminal() {
            c.arg("-it");
        } else {
            c.arg("-i");
        }
        c.arg(container).arg(prog).args(args);
        c
    } else {
        let mut c = std::process::Command::new(prog);
        c.args(args).env_clear();
        for pair in v["env"].as_array().into_iter().flatten() {
            if let (Some(k), Some(val)) = (pair[0].as_str(), pair[1].as_str()) {
                c.env(k, val);
            }
        }
        if let Some(dir) = v["dir"].as_str() {
            c.current_dir(dir);
        }
        c
    };
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => {
            // As a shell says it: 127 not found, 126 not executable.
            eprintln!("pantstack exec: cannot run `{}`: {e}", a.command.join(" "));
            std::process::exit(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };
    match status.code() {
        Some(0) => Ok(()),
        Some(c) => std::process::exit(c),
        None => std::process::exit(
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
        ),
    }
}

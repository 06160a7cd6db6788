//! `pantstack up`: starts the supervisor of an environment (in the foreground, or
//! detached until every service's start deployment has ended), or attaches to the
//! one that runs.

use super::*;
use crate::args::{RuntimeArg, UpArgs};
use crate::commands::load_valid;
use crate::git;
use pantstack_local::client::{self, Liveness};
use pantstack_local::spec::Runtime;
use pantstack_local::supervisor::{Config, Supervisor};
use std::collections::BTreeMap;

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
        rt.block_on(client::liveness(&paths))
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
        call(&rt, &paths.socket(), Request::Events, |v| {
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
            if let Ok(v) = rt.block_on(control::call(&paths.socket(), &Request::Status, |_| {})) {
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
        // Not into supervisor.log (`--supervise`): the URL carries the token.
        if let Some(url) = sup.dashboard_url().filter(|_| live) {
            println!("dashboard: {url}");
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
                let ev = ev.to_json();
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

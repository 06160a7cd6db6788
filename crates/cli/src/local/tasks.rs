//! `logs` (the tasks' output, which outlives the local cloud) and `exec` (a command
//! in a running task's environment or container).

use super::*;
use crate::args::{ExecArgs, LogsArgs};
use crate::commands::find_root;
use pantstack_local::client;
use std::io::IsTerminal;
use std::path::PathBuf;

pub fn logs(global: &Global, _out: &Out, a: &LogsArgs) -> Result<(), Failure> {
    let root = find_root(global)?;
    let env_name = match client::running_env(&root, a.env.as_deref()) {
        Ok(e) => e,
        // Logs outlive the local cloud: take the only environment with logs.
        Err(_) => client::env_with_logs(&root)
            .ok_or_else(|| Failure::Resolve("no local cloud logs here; pass --env".into()))?,
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
        Request::Exec {
            service: a.service.clone(),
            task: a.task,
        },
    )?;
    if let Some(e) = control::Reply::of(&v).error {
        return Err(Failure::Resolve(e));
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

//! `exec`: a command in a running task's environment or container.

use super::*;
use crate::args::ExecArgs;
use std::io::IsTerminal;

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

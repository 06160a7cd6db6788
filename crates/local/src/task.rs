//! Tasks: a process (the manifest's `local` command, in its own process group) or a
//! Docker container of the service's image. Output goes through the supervisor into
//! one log file per task, each line timestamped.

use crate::spec::{Runtime, Unit};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{Mutex, watch};

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            _ => f.write_str("exited"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handle {
    /// Process group id (= the leader's pid).
    Process {
        pgid: u32,
    },
    Docker {
        container: String,
    },
}

pub struct Task {
    pub id: u64,
    pub unit: String,
    pub revision: u32,
    pub port: u16,
    pub handle: Handle,
    pub log: PathBuf,
    pub exit: watch::Receiver<Option<Exit>>,
}

impl Task {
    pub fn exited(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.handle {
            Handle::Process { pgid } => Some(*pgid),
            Handle::Docker { .. } => None,
        }
    }

    /// Asks the task to stop (SIGTERM to its process group; `docker stop` sends
    /// SIGTERM and SIGKILLs after `grace_secs` by itself).
    pub async fn terminate(&self, grace_secs: u64) {
        match &self.handle {
            Handle::Process { pgid } => signal_group(*pgid, "TERM").await,
            Handle::Docker { container } => {
                let c = container.clone();
                tokio::spawn(async move {
                    let _ = Command::new("docker")
                        .args(["stop", "-t", &grace_secs.to_string(), &c])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .await;
                });
            }
        }
    }

    pub async fn kill(&self) {
        match &self.handle {
            Handle::Process { pgid } => signal_group(*pgid, "KILL").await,
            Handle::Docker { container } => {
                let _ = Command::new("docker")
                    .args(["kill", container])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
            }
        }
    }

    /// The last `n` lines of the task's log.
    pub fn tail(&self, n: usize) -> Vec<String> {
        tail_file(&self.log, n)
    }
}

pub fn tail_file(path: &Path, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Sends a signal to a whole process group with kill(1) (no unsafe code here).
pub async fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), "--".into(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// The start time of a process (field 22 of /proc/PID/stat), to tell a recorded
/// task from a later process that reused its pid.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

type LogFile = Arc<Mutex<tokio::fs::File>>;

fn pump<R: AsyncRead + Unpin + Send + 'static>(r: R, stream: &'static str, file: LogFile) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let ts = crate::clock::rfc3339_micros(std::time::SystemTime::now());
            let mut f = file.lock().await;
            use tokio::io::AsyncWriteExt;
            let _ = f
                .write_all(format!("{ts} {stream} {line}\n").as_bytes())
                .await;
        }
    });
}

pub struct StartSpec<'a> {
    pub unit: &'a Unit,
    pub id: u64,
    pub revision: u32,
    pub port: u16,
    pub log: PathBuf,
    /// Extra environment (service URLs, ...).
    pub env: &'a [(String, String)],
    /// Docker: image reference and container name.
    pub image: Option<&'a str>,
    pub container_name: Option<String>,
    pub labels: &'a [(String, String)],
}

pub async fn start(s: StartSpec<'_>) -> std::io::Result<Task> {
    if let Some(dir) = s.log.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log)
        .await?;
    let file: LogFile = Arc::new(Mutex::new(file));
    let u = s.unit;
    let mut env: Vec<(String, String)> = u.env.clone();
    env.extend(s.env.iter().cloned());
    env.push(("PORT".into(), s.port.to_string()));
    env.push(("BIND_ADDRESS".into(), "127.0.0.1".into()));
    let (tx, rx) = watch::channel(None);
    let handle = match u.runtime {
        Runtime::Process => {
            let Some((prog, args)) = u.command.split_first() else {
                return Err(std::io::Error::other(format!(
                    "{} has no `local` command in its manifest",
                    u.name
                )));
            };
            let mut cmd = Command::new(prog);
            cmd.args(args)
                .current_dir(&u.dir)
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(false);
            let mut child = cmd.spawn().map_err(|e| {
                std::io::Error::other(format!(
                    "cannot start `{}` in {}: {e}",
                    u.command.join(" "),
                    u.dir.display()
                ))
            })?;
            let pgid = child.id().unwrap_or(0);
            if let Some(out) = child.stdout.take() {
                pump(out, "stdout", file.clone());
            }
            if let Some(err) = child.stderr.take() {
                pump(err, "stderr", file.clone());
            }
            tokio::spawn(async move {
                let status = child.wait().await;
                let exit = match status {
                    Ok(st) => {
                        use std::os::unix::process::ExitStatusExt;
                        Exit {
                            code: st.code(),
                            signal: st.signal(),
                        }
                    }
                    Err(_) => Exit {
                        code: None,
                        signal: None,
                    },
                };
                let _ = tx.send(Some(exit));
            });
            Handle::Process { pgid }
        }
        Runtime::Docker => {
            let image = s.image.unwrap_or_default();
            let name = s
                .container_name
                .clone()
                .unwrap_or_else(|| format!("pantstack-{}-{}", u.name, s.id));
            let mut args: Vec<String> = vec![
                "run".into(),
                "-d".into(),
                "--name".into(),
                name.clone(),
                "--network".into(),
                "host".into(),
                "--stop-timeout".into(),
                (u.stop_timeout_ms / 1000).max(1).to_string(),
            ];
            for (k, v) in s.labels {
                args.push("--label".into());
                args.push(format!("{k}={v}"));
            }
            // `-e NAME` takes the value from the docker CLI's own environment, so
            // secrets and credentials never appear in an argument list.
            for (k, _) in &env {
                args.push("-e".into());
                args.push(k.clone());
            }
            args.push(image.to_string());
            if let Some(c) = &u.container_command {
                // The Dockerfile's ENTRYPOINT/CMD: the manifest's `command` replaces CMD.
                let (first, rest) = c
                    .split_first()
                    .map(|(a, b)| (a.clone(), b.to_vec()))
                    .unwrap_or_default();
                args.splice(
                    args.len() - 1..args.len() - 1,
                    ["--entrypoint".to_string(), first],
                );
                args.extend(rest);
            }
            let out = Command::new("docker")
                .args(&args)
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .await?;
            if !out.status.success() {
                return Err(std::io::Error::other(format!(
                    "docker run failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let container = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let mut logs = Command::new("docker")
                .args(["logs", "-f", &container])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(o) = logs.stdout.take() {
                pump(o, "stdout", file.clone());
            }
            if let Some(e) = logs.stderr.take() {
                pump(e, "stderr", file.clone());
            }
            let c = container.clone();
            tokio::spawn(async move {
                let out = Command::new("docker").args(["wait", &c]).output().await;
                let code = out.ok().and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<i32>()
                        .ok()
                });
                let _ = logs.wait().await;
                let _ = Command::new("docker")
                    .args(["rm", "-f", &c])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
                let exit = match code {
                    Some(c) if c > 128 => Exit {
                        code: Some(c),
                        signal: Some(c - 128),
                    },
                    c => Exit {
                        code: c,
                        signal: None,
                    },
                };
                let _ = tx.send(Some(exit));
            });
            Handle::Docker { container }
        }
    };
    Ok(Task {
        id: s.id,
        unit: u.name.clone(),
        revision: s.revision,
        port: s.port,
        handle,
        log: s.log,
        exit: rx,
    })
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Builds a unit's image: its `build` command, then `docker build`, tagged `tag`.
pub async fn build_image(u: &Unit, tag: &str) -> Result<(), String> {
    if let Some(b) = &u.image_build
        && let Some((prog, args)) = b.split_first()
    {
        let out = Command::new(prog)
            .args(args)
            .current_dir(&u.dir)
            .output()
            .await
            .map_err(|e| format!("cannot run `{}`: {e}", b.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "`{}` failed: {}",
                b.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let out = Command::new("docker")
        .args([
            "build",
            "-q",
            "-f",
            &u.image_dockerfile,
            "-t",
            tag,
            &u.image_context,
        ])
        .current_dir(&u.dir)
        .output()
        .await
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

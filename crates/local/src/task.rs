//! Tasks: a process (the manifest's `local` command, in its own process group) or a
//! Docker container of the service's image. Output goes through the supervisor into
//! one log stream per task (`crate::logs`), each line timestamped.

use crate::spec::{Runtime, Unit};
use rustix::process::{Pid, Signal, kill_process_group};
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
    /// SIGTERM and SIGKILLs after `grace_secs` by itself). Never waits: `docker`
    /// runs in the background, and the task's exit tells when it stopped.
    pub fn terminate(&self, grace_secs: u64) {
        match &self.handle {
            Handle::Process { pgid } => signal_group(*pgid, Signal::TERM),
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

    /// SIGKILL to its process group (`docker kill`, in the background).
    pub fn kill(&self) {
        match &self.handle {
            Handle::Process { pgid } => signal_group(*pgid, Signal::KILL),
            Handle::Docker { container } => {
                let c = container.clone();
                tokio::spawn(async move {
                    let _ = Command::new("docker")
                        .args(["kill", &c])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .await;
                });
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

/// Sends a signal to a whole process group (`kill(2)` with a negative pid, through
/// rustix). A group that is gone already is not an error: the signal had nothing
/// left to stop.
pub fn signal_group(pgid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, sig);
    }
}

/// The start time of a process (field 22 of /proc/PID/stat), to tell a recorded
/// task from a later process that reused its pid.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process runs: it exists and is not a zombie waiting to be reaped.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A task's stream (`crate::logs`): rolled over to `<task>.log.1` (replacing an
/// older one) once it reaches `max` bytes, so a running task's stream stays bounded.
struct Stream {
    file: tokio::fs::File,
    path: PathBuf,
    written: u64,
    max: u64,
}

impl Stream {
    async fn open(path: &Path, max: u64) -> std::io::Result<Stream> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::state::FILE_MODE)
            .open(path)
            .await?;
        let written = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        Ok(Stream {
            file,
            path: path.to_path_buf(),
            written,
            max,
        })
    }

    async fn write_line(&mut self, line: &[u8]) {
        use tokio::io::AsyncWriteExt;
        if self.written > 0 && self.written + line.len() as u64 > self.max {
            let _ = self.file.flush().await;
            if tokio::fs::rename(&self.path, crate::logs::rolled(&self.path))
                .await
                .is_ok()
                && let Ok(next) = Stream::open(&self.path, self.max).await
            {
                *self = next;
            }
        }
        if self.file.write_all(line).await.is_ok() {
            self.written += line.len() as u64;
        }
    }
}

type LogFile = Arc<Mutex<Stream>>;

/// The longest log line kept whole: a longer one is cut into lines of this many
/// bytes, so a task writing without newlines cannot grow the supervisor.
pub const MAX_LOG_LINE: usize = 256 * 1024;

/// Copies a task's output into its stream, a stamped line at a time, until the
/// output ends: bytes that are not UTF-8 are kept as U+FFFD (the task's pipe is
/// never closed on them, which would kill it with SIGPIPE), and lines over
/// [`MAX_LOG_LINE`] are cut.
fn pump<R: AsyncRead + Unpin + Send + 'static>(r: R, stream: &'static str, file: LogFile) {
    tokio::spawn(async move {
        let mut r = BufReader::new(r);
        let mut line: Vec<u8> = Vec::new();
        loop {
            let buf = match r.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(b) => b,
            };
            let room = MAX_LOG_LINE - line.len();
            let (take, full) = match buf.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None if buf.len() >= room => (room, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(&buf[..take]);
            r.consume(take);
            if full {
                write_stamped(&file, stream, &line).await;
                line.clear();
            }
        }
        if !line.is_empty() {
            write_stamped(&file, stream, &line).await;
        }
    });
}

async fn write_stamped(file: &LogFile, stream: &str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let ts = pantstack_rt::clock::rfc3339_micros(std::time::SystemTime::now());
    let mut f = file.lock().await;
    f.write_line(format!("{ts} {stream} {text}\n").as_bytes())
        .await;
}

/// What a task starts from: owned, so a start can run as a background job.
pub struct StartSpec {
    pub unit: Unit,
    pub id: u64,
    pub revision: u32,
    pub port: u16,
    pub log: PathBuf,
    /// Extra environment (service URLs, ...).
    pub env: Vec<(String, String)>,
    /// Docker: image reference and container name.
    pub image: Option<String>,
    pub container_name: Option<String>,
    pub labels: Vec<(String, String)>,
    /// Process runtime: the revision's build output (`$PANTSTACK_ARTIFACTS`).
    pub artifacts: Option<PathBuf>,
}

/// What a process task keeps of the supervisor's environment: ECS gives a task
/// only its task definition's variables, so a variable of the user's shell
/// (`DATABASE_URL`, `AWS_PROFILE`, ...) never reaches a task silently. Kept: what
/// finding programs and locale need, and the Rust toolchain's locations for a
/// `local` command that is `cargo run`.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_TARGET_DIR",
];

/// Starts a task. Docker: waits for `docker rm` and `docker run`, so the
/// supervisor runs it as a background job.
pub async fn start(s: StartSpec) -> std::io::Result<Task> {
    if let Some(dir) = s.log.parent() {
        crate::state::private_dir(dir)?;
    }
    let file: LogFile = Arc::new(Mutex::new(
        Stream::open(&s.log, s.unit.logs.stream_max()).await?,
    ));
    let u = &s.unit;
    let mut env: Vec<(String, String)> = u.env.clone();
    env.extend(s.env.iter().cloned());
    env.push(("PORT".into(), s.port.to_string()));
    env.push(("BIND_ADDRESS".into(), "127.0.0.1".into()));
    if let Some(dir) = &s.artifacts {
        env.push((
            crate::build::ARTIFACTS_VAR.into(),
            dir.to_string_lossy().into_owned(),
        ));
    }
    let (tx, rx) = watch::channel(None);
    let handle = match u.runtime {
        Runtime::Process => {
            let command = crate::build::expand(&u.command, s.artifacts.as_deref());
            let Some((prog, args)) = command.split_first() else {
                return Err(std::io::Error::other(format!(
                    "{} has no `local` command in its manifest",
                    u.name
                )));
            };
            let mut cmd = Command::new(prog);
            cmd.args(args)
                .current_dir(&u.dir)
                .env_clear()
                .envs(
                    INHERITED_ENV
                        .iter()
                        .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
                )
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(false);
            let mut child = cmd.spawn().map_err(|e| {
                std::io::Error::other(format!(
                    "cannot start `{}` in {}: {e}",
                    command.join(" "),
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
            let image = s.image.as_deref().unwrap_or_default();
            let name = s
                .container_name
                .clone()
                .unwrap_or_else(|| format!("pantstack-{}-{}", u.name, s.id));
            let env_names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
            let args = docker_run_args(&DockerRun {
                name: &name,
                stop_timeout_secs: (u.stop_timeout_ms / 1000).max(1),
                cpu: u.cpu,
                memory_mib: u.memory_mib,
                labels: &s.labels,
                env_names: &env_names,
                image,
                command: u.container_command.as_deref(),
            });
            // A container of this name is a leftover of an earlier supervisor of
            // this environment whose state is gone (only one supervisor holds an
            // environment, and names carry the environment and the task id).
            let _ = Command::new("docker")
                .args(["rm", "-f", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
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

/// What `docker run` is given for a container task.
pub struct DockerRun<'a> {
    pub name: &'a str,
    pub stop_timeout_secs: u64,
    /// Fargate CPU units and memory (MiB): `--cpus` and `--memory`, hard limits as
    /// on Fargate (a task over its memory is killed, OOM).
    pub cpu: u32,
    pub memory_mib: u32,
    pub labels: &'a [(String, String)],
    /// Passed as `-e NAME`: the value comes from the docker CLI's own environment,
    /// so secrets and credentials never appear in an argument list.
    pub env_names: &'a [&'a str],
    pub image: &'a str,
    /// The manifest's `command` (whole argv), if any.
    pub command: Option<&'a [String]>,
}

/// The `docker run` argument list. The command is split exactly as the task
/// definition's `EntryPoint` and `Command` on ECS
/// (`pantstack_model::service::entry_point_and_command`): `--entrypoint FIRST` and
/// the rest after the image. Docker then ignores the image's CMD, as on ECS, so
/// the container runs exactly the manifest's argv.
pub fn docker_run_args(d: &DockerRun<'_>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        d.name.to_string(),
        "--network".into(),
        "host".into(),
        "--stop-timeout".into(),
        d.stop_timeout_secs.to_string(),
        "--cpus".into(),
        format!("{}", d.cpu as f64 / 1024.0),
        "--memory".into(),
        format!("{}m", d.memory_mib),
        "--memory-swap".into(),
        format!("{}m", d.memory_mib),
    ];
    for (k, v) in d.labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    for k in d.env_names {
        args.push("-e".into());
        args.push((*k).to_string());
    }
    let split = d
        .command
        .and_then(pantstack_model::service::entry_point_and_command);
    if let Some((entry_point, _)) = &split {
        // The docker CLI's --entrypoint takes one word; ours is one word.
        args.push("--entrypoint".into());
        args.push(entry_point.join(" "));
    }
    args.push(d.image.to_string());
    if let Some((_, rest)) = split {
        args.extend(rest);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output that is not UTF-8 and a line without end are logged (the first
    /// as U+FFFD, the second cut into bounded lines), and the pump reads to the
    /// end of the output: it never stops reading, which would kill the task.
    #[tokio::test]
    async fn output_that_is_not_utf8_or_never_ends_a_line_is_logged_in_bounded_lines() {
        let dir = std::env::temp_dir().join(format!("pantstack-pump-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("1.log");
        let stream = Stream::open(&path, u64::MAX).await.expect("open");
        let file: LogFile = Arc::new(Mutex::new(stream));
        let mut out: Vec<u8> = b"caf\xe9\r\n".to_vec();
        out.extend(std::iter::repeat_n(b'x', MAX_LOG_LINE * 2 + 10));
        out.extend_from_slice(b"\nlast line\n");
        let out: &'static [u8] = Box::leak(out.into_boxed_slice());
        pump(out, "stdout", file.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("last line") || std::time::Instant::now() > deadline {
                break text.lines().map(str::to_string).collect::<Vec<_>>();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let bodies: Vec<&str> = lines
            .iter()
            .map(|l| l.splitn(3, ' ').nth(2).unwrap_or_default())
            .collect();
        assert_eq!(
            bodies.len(),
            5,
            "{:?}",
            bodies.iter().map(|b| b.len()).collect::<Vec<_>>()
        );
        assert_eq!(bodies[0], "caf\u{fffd}");
        assert_eq!(bodies[1].len(), MAX_LOG_LINE);
        assert_eq!(bodies[2].len(), MAX_LOG_LINE);
        assert_eq!(bodies[3], "x".repeat(10));
        assert_eq!(bodies[4], "last line");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn docker_runs_the_manifest_argv_as_ecs_does() {
        let command: Vec<String> = vec!["/api".into(), "serve".into(), "--fast".into()];
        let labels = vec![("pantstack.unit".to_string(), "api".to_string())];
        let args = docker_run_args(&DockerRun {
            name: "pantstack-api-1",
            stop_timeout_secs: 30,
            cpu: 256,
            memory_mib: 512,
            labels: &labels,
            env_names: &["API_TOKEN"],
            image: "shop:api-dev-abcdef0",
            command: Some(&command),
        });
        let image_at = args
            .iter()
            .position(|a| a == "shop:api-dev-abcdef0")
            .expect("image");
        let entry_at = args
            .iter()
            .position(|a| a == "--entrypoint")
            .expect("--entrypoint");
        assert!(entry_at < image_at, "{args:?}");
        // Exactly the task definition's EntryPoint, then its Command after the image.
        let (entry_point, rest) =
            pantstack_model::service::entry_point_and_command(&command).expect("split");
        assert_eq!(entry_point, vec![args[entry_at + 1].clone()]);
        assert_eq!(args[image_at + 1..], rest[..]);
        // Never the whole argv after an ENTRYPOINT it does not replace.
        let mut ran = entry_point.clone();
        ran.extend(args[image_at + 1..].iter().cloned());
        assert_eq!(ran, command);
        assert!(args.contains(&"API_TOKEN".to_string()));
        // The Fargate size as hard limits: a quarter vCPU, 512 MiB without swap.
        let at = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].as_str())
        };
        assert_eq!(at("--cpus"), Some("0.25"));
        assert_eq!(at("--memory"), Some("512m"));
        assert_eq!(at("--memory-swap"), Some("512m"));

        // No command: the image's ENTRYPOINT and CMD.
        let args = docker_run_args(&DockerRun {
            name: "n",
            stop_timeout_secs: 1,
            cpu: 1024,
            memory_mib: 2048,
            labels: &[],
            env_names: &[],
            image: "img",
            command: None,
        });
        assert_eq!(args.last().map(String::as_str), Some("img"));
        assert!(!args.contains(&"--entrypoint".to_string()));
    }
}

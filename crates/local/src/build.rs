//! The build phase of a revision, as ECS pulls an image before a task runs: the
//! process runtime's `local.build` command, or the image's `build` command and
//! `docker build` for the Docker runtime. A build runs in the background with its
//! own log and timeout; no task of the revision starts before it succeeded, so the
//! health-check grace period never pays for a compilation.
//!
//! Invariant: a revision's tasks run exactly what its build produced — the process
//! runtime's artifacts are copied by the build into a directory of their own
//! (`$PANTSTACK_ARTIFACTS`), kept while a revision refers to it; the Docker runtime's
//! image has a tag of its own.

use crate::spec::{Runtime, Unit};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The environment variable naming a revision's artifact directory, for its build
/// (to write) and its tasks (to run from); in the `local` command a word starting
/// with `$PANTSTACK_ARTIFACTS` is expanded.
pub const ARTIFACTS_VAR: &str = "PANTSTACK_ARTIFACTS";

/// What a successful build produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Built {
    /// The process runtime: the directory the build wrote.
    Dir(PathBuf),
    /// The Docker runtime: the image reference.
    Image(String),
}

/// One build to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: u64,
    pub unit: Unit,
    /// Where its output goes, one timestamped line each.
    pub log: PathBuf,
    /// Process runtime: the (fresh) artifact directory. Docker: unused.
    pub artifacts: PathBuf,
    /// Docker: the image reference to tag.
    pub image: String,
    /// Docker: labels for the image (project, environment) so stale ones are found.
    pub labels: Vec<(String, String)>,
    pub timeout: Duration,
    /// The process group of the step that runs (0 between steps), so that stopping
    /// the local cloud stops a build with every process it started.
    pub pgid: Arc<AtomicU32>,
}

/// Whether a unit has a build phase, and what identifies it: units of one service
/// with the same key (the worker and the web role of one codebase) share one build.
pub fn key(u: &Unit) -> Option<String> {
    match u.runtime {
        Runtime::Process => u
            .build
            .as_ref()
            .map(|b| format!("process\0{}\0{}", u.service, b.join("\0"))),
        Runtime::Docker => Some(format!(
            "docker\0{}\0{}\0{}\0{}",
            u.service,
            u.image_dockerfile,
            u.image_context,
            u.image_build.as_deref().unwrap_or_default().join("\0")
        )),
    }
}

/// The command line a build runs, for messages.
pub fn describe(u: &Unit) -> String {
    match u.runtime {
        Runtime::Process => u.build.as_deref().unwrap_or_default().join(" "),
        Runtime::Docker => {
            let docker = format!("docker build -f {} {}", u.image_dockerfile, u.image_context);
            match &u.image_build {
                Some(b) => format!("{} && {docker}", b.join(" ")),
                None => docker,
            }
        }
    }
}

/// Runs a build to its end: `Ok` with what it produced, or `Err` with why it failed
/// (exit status, timeout, the last lines of its output and where its log is).
pub async fn run(job: Job) -> Result<Built, String> {
    let started = Instant::now();
    let log = open_log(&job.log)
        .await
        .map_err(|e| format!("cannot open the build log {}: {e}", job.log.display()))?;
    let deadline = started + job.timeout;
    let u = &job.unit;
    let outcome = match u.runtime {
        Runtime::Process => {
            let Some(cmd) = u.build.as_deref() else {
                return Err("no `local.build` command".into());
            };
            // A fresh directory: nothing of an earlier build is taken for this one's.
            let _ = tokio::fs::remove_dir_all(&job.artifacts).await;
            crate::state::private_dir(&job.artifacts)
                .map_err(|e| format!("cannot create {}: {e}", job.artifacts.display()))?;
            let env = [(ARTIFACTS_VAR, job.artifacts.as_os_str())];
            step(cmd, &u.dir, &env, &log, deadline, job.timeout, &job.pgid).await
        }
        Runtime::Docker => {
            let mut r = Ok(());
            if let Some(cmd) = u.image_build.as_deref() {
                r = step(cmd, &u.dir, &[], &log, deadline, job.timeout, &job.pgid).await;
            }
            if r.is_ok() {
                let mut docker: Vec<String> = vec![
                    "docker".into(),
                    "build".into(),
                    "-f".into(),
                    u.image_dockerfile.clone(),
                    "-t".into(),
                    job.image.clone(),
                ];
                for (k, v) in &job.labels {
                    docker.push("--label".into());
                    docker.push(format!("{k}={v}"));
                }
                docker.push(u.image_context.clone());
                r = step(&docker, &u.dir, &[], &log, deadline, job.timeout, &job.pgid).await;
            }
            r
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            write_line(&log, "build", &format!("built in {secs:.1} s")).await;
            Ok(match u.runtime {
                Runtime::Process => Built::Dir(job.artifacts),
                Runtime::Docker => Built::Image(job.image),
            })
        }
        Err(why) => {
            let tail: Vec<String> = crate::task::tail_file(&job.log, 5)
                .iter()
                .map(|l| strip_stamp(l).to_string())
                .collect();
            write_line(&log, "build", &format!("failed after {secs:.1} s: {why}")).await;
            Err(format!(
                "build `{}` {why}{} (log: {})",
                describe(u),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("; last lines:\n    {}", tail.join("\n    "))
                },
                job.log.display()
            ))
        }
    }
}

/// A log line without its timestamp and stream (`2026-… stdout text` → `text`).
pub fn strip_stamp(line: &str) -> &str {
    line.splitn(3, ' ').nth(2).unwrap_or(line)
}

type Log = std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>;

async fn open_log(path: &Path) -> std::io::Result<Log> {
    if let Some(dir) = path.parent() {
        crate::state::private_dir(dir)?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true).mode(crate::state::FILE_MODE);
    let f = o.open(path)?;
    Ok(std::sync::Arc::new(tokio::sync::Mutex::new(
        tokio::fs::File::from_std(f),
    )))
}

async fn write_line(log: &Log, stream: &str, line: &str) {
    let ts = pantstack_rt::clock::rfc3339_micros(std::time::SystemTime::now());
    let mut f = log.lock().await;
    let _ = f
        .write_all(format!("{ts} {stream} {line}\n").as_bytes())
        .await;
    let _ = f.flush().await;
}

/// Copies a build's output (stdout and stderr through one pipe, so the order in
/// which the build wrote them is kept) into the log, a line at a time.
fn copy_output(r: std::io::PipeReader, log: Log) -> tokio::task::JoinHandle<()> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    handle.block_on(write_line(&log, "output", line));
                }
            }
        }
    })
}

/// How long a build's output is still read after its command ended: a process it
/// left behind in another session (a daemon) may hold the pipe open for ever.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Runs one command of a build in its own process group (so a timeout stops all
/// of it), with the user's environment and umask (a binary built under the
/// supervisor's 077 would be 0700: an image's non-root user could not run it).
/// A build's processes end with it: what it left running in its group is killed
/// when its command exits, and its output is not waited for past
/// [`OUTPUT_GRACE`], so nothing it started can keep the build (or the timeout)
/// from ending.
async fn step(
    cmd: &[String],
    dir: &Path,
    env: &[(&str, &std::ffi::OsStr)],
    log: &Log,
    deadline: Instant,
    timeout: Duration,
    group: &AtomicU32,
) -> Result<(), String> {
    let Some((prog, args)) = cmd.split_first() else {
        return Err("is empty".into());
    };
    write_line(log, "build", &format!("$ {}", cmd.join(" "))).await;
    let (reader, writer) = std::io::pipe().map_err(|e| format!("could not start: no pipe: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("could not start: no pipe: {e}"))?;
    let spawned = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "umask {:04o} && exec \"$0\" \"$@\"",
            crate::state::user_umask()
        ))
        .arg(prog)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    // The Command (and with it our copies of the pipe's write end) is gone here:
    // the reader sees the end once the build's processes close theirs.
    let mut child = spawned.map_err(|e| format!("could not start in {}: {e}", dir.display()))?;
    let pgid = child.id().unwrap_or(0);
    group.store(pgid, Ordering::SeqCst);
    let pump = copy_output(reader, log.clone());
    let left = deadline.saturating_duration_since(Instant::now());
    let waited = tokio::time::timeout(left, child.wait()).await;
    // Whatever the build left in its process group ends with it.
    if pgid != 0 {
        crate::task::signal_group(pgid, rustix::process::Signal::KILL);
    }
    group.store(0, Ordering::SeqCst);
    let status = match waited {
        Ok(s) => Some(s.map_err(|e| format!("could not be waited for: {e}"))?),
        Err(_) => {
            let _ = child.wait().await;
            None
        }
    };
    if tokio::time::timeout(OUTPUT_GRACE, pump).await.is_err() {
        write_line(
            log,
            "build",
            "(a process the build started in another session still holds its output; no longer read)",
        )
        .await;
    }
    let Some(status) = status else {
        return Err(format!(
            "did not finish within the build timeout (`local.build_timeout`, {} s)",
            timeout.as_secs()
        ));
    };
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    Err(match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    })
}

/// The `local` command of a revision with artifacts: a word starting with
/// `$PANTSTACK_ARTIFACTS` (or `${PANTSTACK_ARTIFACTS}`) names a file in the
/// revision's artifact directory.
pub fn expand(command: &[String], artifacts: Option<&Path>) -> Vec<String> {
    let Some(dir) = artifacts else {
        return command.to_vec();
    };
    let dir = dir.to_string_lossy();
    command
        .iter()
        .map(|w| {
            for p in ["${PANTSTACK_ARTIFACTS}", "$PANTSTACK_ARTIFACTS"] {
                if let Some(rest) = w.strip_prefix(p) {
                    return format!("{dir}{rest}");
                }
            }
            w.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_artifact_variable_is_expanded_and_only_at_a_word_start() {
        let cmd: Vec<String> = [
            "$PANTSTACK_ARTIFACTS/api",
            "serve",
            "x$PANTSTACK_ARTIFACTS",
            "${PANTSTACK_ARTIFACTS}/a",
            "$HOME",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = expand(&cmd, Some(Path::new("/s/a/7")));
        assert_eq!(
            out,
            vec![
                "/s/a/7/api",
                "serve",
                "x$PANTSTACK_ARTIFACTS",
                "/s/a/7/a",
                "$HOME"
            ]
        );
        assert_eq!(expand(&cmd, None), cmd);
    }

    #[test]
    fn stamps_are_stripped_from_log_lines() {
        assert_eq!(
            strip_stamp("2026-12-03T07:00:00.000001Z stderr error[E0425]: x y"),
            "error[E0425]: x y"
        );
        assert_eq!(strip_stamp("short"), "short");
    }
}

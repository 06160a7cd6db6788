//! A command's side of the local cloud: which environment it addresses, whether a
//! supervisor runs there and answers, bounded requests to it, and the secrets of
//! an environment whether or not its cloud runs.
//!
//! Invariants:
//! - An environment name from the command line becomes a directory and a key file:
//!   it is checked (lowercase letters, digits, `-`) before it is used.
//! - A supervisor is alive while it holds the environment's lock; a control socket
//!   that does not answer never makes a live supervisor dead ([`liveness`]).
//! - A short request is bounded ([`ANSWER_WITHIN`]): a wedged supervisor is an error
//!   naming it, never a hang.
//! - [`Secrets`] goes through the running cloud when one answers, and otherwise
//!   opens the environment's AWS state itself (the state's lock keeps the two from
//!   ever writing at once). Either way the endpoint's own SSM handler does the work,
//!   so values are sealed and journaled the same way.

use crate::control::{self, CallError, Request};
use crate::spec;
use crate::state::{self, Paths};
use pantstack_endpoint::keys::key_file;
use pantstack_model::{Monorepo, env};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a command cannot do what it asked of a local cloud, by how it ends.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The command line is wrong: an invalid `--env`, or several clouds run and
    /// none is named.
    Usage(String),
    /// Nothing to address: no cloud runs, no such environment, no answer on the
    /// socket.
    Unresolved(String),
    /// The supervisor or the environment's state failed: it went away mid-answer,
    /// did not answer in time, or the state cannot be opened.
    Io(String),
}

impl From<CallError> for Refused {
    /// No supervisor: unresolved; a supervisor that went away mid-answer: I/O.
    fn from(e: CallError) -> Refused {
        match e {
            CallError::Connect(m) => Refused::Unresolved(m),
            CallError::Dropped(m) => Refused::Io(m),
        }
    }
}

/// The directory of every environment's local cloud under `root`.
fn clouds(root: &Path) -> std::path::PathBuf {
    root.join(".pantstack").join("local")
}

/// The environment of `up`: `named`, else the branch's (`branch` is asked only
/// then; `None` when it cannot be read), else the foundation's first.
pub fn up_env(
    repo: &Monorepo,
    named: Option<&str>,
    branch: impl FnOnce() -> Option<String>,
) -> Result<String, Refused> {
    let f = &repo.foundation;
    if let Some(n) = named {
        return env::named(f, n)
            .map(|e| e.name)
            .map_err(|e| Refused::Unresolved(e.to_string()));
    }
    if let Some(b) = branch()
        && let Ok(e) = env::for_branch(f, &b)
    {
        return Ok(e.name);
    }
    f.env_names()
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| Refused::Unresolved("the foundation declares no environment".into()))
}

/// The environment a command addresses: `named`, else the only one whose cloud
/// runs (has a control socket).
pub fn running_env(root: &Path, named: Option<&str>) -> Result<String, Refused> {
    if let Some(n) = named {
        // The name becomes a directory and a key file: never a path.
        if n.is_empty()
            || n.len() > 64
            || !n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Refused::Usage(format!(
                "--env {n}: not an environment name (lowercase letters, digits and `-`, as `pantstack env` prints)"
            )));
        }
        return Ok(n.to_string());
    }
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(clouds(root)) {
        for e in entries.flatten() {
            if e.path().join("control.sock").exists() {
                found.push(e.file_name().to_string_lossy().to_string());
            }
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Refused::Unresolved(format!(
            "no local cloud is running for {} (start one with `pantstack up`)",
            root.display()
        ))),
        _ => Err(Refused::Usage(format!(
            "several local clouds are running ({}); pass --env",
            found.join(", ")
        ))),
    }
}

/// The environment of `aws-env` and `secrets`: `named` (an environment of this
/// monorepo), else the only running one, else `up`'s choice.
pub fn target_env(
    root: &Path,
    repo: &Monorepo,
    named: Option<&str>,
    branch: impl FnOnce() -> Option<String>,
) -> Result<String, Refused> {
    if let Some(n) = named {
        // Only an environment of this monorepo: the name becomes paths and key files.
        return env::named(&repo.foundation, n)
            .map(|e| e.name)
            .map_err(|e| Refused::Unresolved(e.to_string()));
    }
    match running_env(root, None) {
        Ok(e) => Ok(e),
        Err(Refused::Usage(m)) => Err(Refused::Usage(m)),
        Err(_) => up_env(repo, None, branch),
    }
}

/// The only environment under `root` with logs (logs outlive the local cloud), if
/// exactly one has them.
pub fn env_with_logs(root: &Path) -> Option<String> {
    let envs: Vec<String> = std::fs::read_dir(clouds(root))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("logs").is_dir())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    match <[String; 1]>::try_from(envs) {
        Ok([one]) => Some(one),
        Err(_) => None,
    }
}

/// Whether something accepts connections on the environment's control socket.
pub fn accepts(paths: &Paths) -> bool {
    std::os::unix::net::UnixStream::connect(paths.socket()).is_ok()
}

/// How long a short request (status, scale, deployments, exec, secrets) waits for
/// the supervisor's answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// A short request: bounded, so a supervisor that accepts but never answers
/// (stopped with SIGSTOP, out of descriptors, wedged) is an error naming it, not a
/// hang.
pub async fn call_short(paths: &Paths, req: &Request) -> Result<Value, Refused> {
    let socket = paths.socket();
    match tokio::time::timeout(ANSWER_WITHIN, control::call(&socket, req, |_| {})).await {
        Ok(r) => r.map_err(Refused::from),
        Err(_) => {
            let pid = state::holder(paths).and_then(|h| h.pid);
            Err(Refused::Io(format!(
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

/// How long `up` keeps asking a supervisor that holds the environment's lock for
/// its status before it gives up (each try is bounded too).
const PROBE_WITHIN: Duration = Duration::from_secs(5);
const PROBE_TRY: Duration = Duration::from_millis(1500);

/// What runs in an environment, as `up` sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Liveness {
    /// A supervisor answers on the control socket.
    Answers,
    /// A live process holds the environment's lock but its socket does not answer.
    Silent(Option<u32>),
    /// Nothing runs (a crashed supervisor's leftovers are for the next one).
    Nothing,
}

/// Decides from the environment's lock whether a supervisor is alive, and asks its
/// socket (again, within `PROBE_WITHIN`) whether it answers.
pub async fn liveness(paths: &Paths) -> Liveness {
    let deadline = Instant::now() + PROBE_WITHIN;
    loop {
        let answered = tokio::time::timeout(
            PROBE_TRY,
            control::call(&paths.socket(), &Request::Status, |_| {}),
        )
        .await;
        if matches!(answered, Ok(Ok(_))) {
            return Liveness::Answers;
        }
        match state::holder(paths) {
            None => return Liveness::Nothing,
            Some(h) if Instant::now() >= deadline => return Liveness::Silent(h.pid),
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// An environment's secrets (SSM parameters at its endpoint): through the running
/// cloud, or its AWS state on disk when none runs.
pub struct Secrets {
    paths: Paths,
    /// The endpoint's state, opened here; `None` while a cloud runs.
    core: Option<pantstack_endpoint::Core>,
}

impl Secrets {
    /// Opens the secrets of environment `env`: blocks while it opens the
    /// endpoint's state on disk (when no cloud runs).
    pub fn open(root: &Path, repo: &Monorepo, env: &str) -> Result<Secrets, Refused> {
        let paths = Paths::new(root, env);
        if accepts(&paths) {
            return Ok(Secrets { paths, core: None });
        }
        state::secure(&paths).map_err(Refused::Io)?;
        let core = pantstack_endpoint::Core::open(&pantstack_endpoint::Config {
            dir: paths.aws(),
            key_file: key_file(root, env),
            region: spec::region(repo, env),
            principals: Vec::new(),
            policies: Default::default(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .map_err(Refused::Io)?;
        Ok(Secrets {
            paths,
            core: Some(core),
        })
    }

    /// One SSM action as the local cloud's user; the inner `Err` is the action's
    /// (code, message).
    pub async fn call(
        &self,
        action: &str,
        input: Value,
    ) -> Result<Result<Value, (String, String)>, Refused> {
        match &self.core {
            Some(core) => Ok(core
                .ssm(action, &input, pantstack_endpoint::USER)
                .await
                .map_err(|e| (e.code, e.message))),
            None => {
                let v = call_short(
                    &self.paths,
                    &Request::Ssm {
                        action: action.to_string(),
                        input,
                    },
                )
                .await?;
                Ok(match v["error"].as_str() {
                    Some(m) => Err((v["code"].as_str().unwrap_or("").to_string(), m.to_string())),
                    None => Ok(v["result"].clone()),
                })
            }
        }
    }

    /// Re-encrypts every secret value under a new master key; how many.
    pub async fn rotate_key(&self) -> Result<usize, Refused> {
        match &self.core {
            Some(core) => core.rotate_key().await.map_err(Refused::Io),
            None => {
                let v = control::call(&self.paths.socket(), &Request::RotateKey, |_| {})
                    .await
                    .map_err(|e| Refused::Unresolved(e.into()))?;
                match v["error"].as_str() {
                    Some(e) => Err(Refused::Io(e.to_string())),
                    None => Ok(v["reencrypted"].as_u64().unwrap_or(0) as usize),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_environment_is_never_a_path() {
        let root = Path::new("/nonexistent");
        for bad in ["", "../x", "a/b", "Prod", &"a".repeat(65)] {
            assert!(
                matches!(running_env(root, Some(bad)), Err(Refused::Usage(_))),
                "{bad}"
            );
        }
        assert_eq!(running_env(root, Some("preview-7")), Ok("preview-7".into()));
        assert!(matches!(
            running_env(root, None),
            Err(Refused::Unresolved(_))
        ));
        assert_eq!(env_with_logs(root), None);
    }
}

//! The supervisor: owns the load balancers and tasks of one environment, reconciles
//! them every tick against the desired state with the decisions of `crate::core`,
//! persists what it must, and answers the control socket.
//!
//! Each tick observes (task exits, target health, finished builds and starts),
//! plans with the pure decisions of `crate::core::tasks` on the supervisor's one
//! clock (`Supervisor::now`), and executes the plan.
//!
//! Invariant: the loop never waits for a child process. Builds, task starts
//! (`docker run`), `docker stop`/`docker kill` and image pruning run as background
//! jobs; signals to processes are sent directly. The loop observes their ends on a
//! later tick (a finished build or start job, a task's exit), so health checks,
//! draining and control requests are never held up by Docker. A task being
//! started counts as running (not healthy) for its deployment, so it is not
//! started twice, and the supervisor does not exit before its start has ended.

use crate::build;
use crate::control;
use crate::core::Millis;
use crate::core::backoff::Backoff;
use crate::core::rollout::{Outcome, Params, Rollout};
use crate::core::tasks::{
    self, Action, Build, Deploying, Exited, Live, Observation, Phase, TaskState, Timings,
};
use crate::history::{DeploymentOutcome, DeploymentRecord};
use crate::spec::{self, Runtime, Unit};
use crate::state::{self, Paths, SavedHandle, SavedState, SavedUnit};
use crate::task::{self, Handle, StartSpec, Task};
use pantstack_lb::Balancer;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, mpsc};

/// How often the supervisor reconciles.
pub const TICK: Duration = Duration::from_millis(200);

pub struct Config {
    pub root: PathBuf,
    pub env: String,
    pub runtime: Option<Runtime>,
    /// Branch and commit for image tags (Docker runtime).
    pub branch: String,
    pub sha: String,
    /// Only these services (empty: every service).
    pub only: Vec<String>,
}

/// A task and its place in the lifecycle (`tasks::TaskState`).
struct TaskRt {
    task: Task,
    /// For its uptime.
    started: Instant,
    /// When it started, on the supervisor's clock (the one decisions use).
    started_at: Millis,
    phase: Phase,
    healthy: bool,
    /// Why the supervisor stopped it (or why it failed).
    reason: Option<String>,
    /// A failure already counted (circuit breaker, backoff).
    counted: bool,
}

impl TaskRt {
    fn state(&self) -> TaskState {
        TaskState {
            id: self.task.id,
            revision: self.task.revision,
            started: self.started_at,
            phase: self.phase,
            healthy: self.healthy,
            reason: self.reason.clone(),
            counted: self.counted,
        }
    }

    fn set_state(&mut self, s: TaskState) {
        self.phase = s.phase;
        self.healthy = s.healthy;
        self.reason = s.reason;
        self.counted = s.counted;
    }
}

/// A task being started: `task::start` runs as a background job.
struct Starting {
    id: u64,
    revision: u32,
    job: tokio::task::JoinHandle<std::io::Result<Task>>,
}

#[derive(Clone)]
struct Revision {
    number: u32,
    unit: Unit,
    artifact: Artifact,
    created: SystemTime,
}

/// What a revision's tasks run, and whether it is ready to (its build phase).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Artifact {
    /// The process runtime without `local.build`: the working tree as it is when
    /// a task starts (so no earlier code is kept to roll back to).
    WorkingTree,
    /// Build job `n` runs; no task of the revision starts before it ends.
    Building(u64),
    Built(build::Built),
    Failed(String),
}

impl Artifact {
    fn image(&self) -> Option<&str> {
        match self {
            Artifact::Built(build::Built::Image(i)) => Some(i),
            _ => None,
        }
    }
    fn dir(&self) -> Option<&std::path::Path> {
        match self {
            Artifact::Built(build::Built::Dir(d)) => Some(d),
            _ => None,
        }
    }
    fn state(&self) -> &'static str {
        match self {
            Artifact::WorkingTree | Artifact::Built(_) => "ready",
            Artifact::Building(_) => "building",
            Artifact::Failed(_) => "build-failed",
        }
    }
}

/// A build in progress (see `crate::build`), shared by the units of one service
/// that asked for the same build in one request.
struct BuildRt {
    id: u64,
    key: String,
    /// The control request (or the start) that asked for it.
    batch: u64,
    service: String,
    started: Instant,
    log: PathBuf,
    /// The last time progress was shown.
    shown: Instant,
    handle: tokio::task::JoinHandle<Result<build::Built, String>>,
    pgid: Arc<std::sync::atomic::AtomicU32>,
    /// Docker: the image it tags (kept while it runs).
    image: Option<String>,
}

struct Deploy {
    id: u32,
    to: u32,
    from: u32,
    kind: &'static str,
    rollout: Rollout,
    started: SystemTime,
    waiters: Vec<mpsc::UnboundedSender<Value>>,
    /// With rollback alarms: the rollout is complete and the deployment bakes
    /// (stays in progress, its alarms watched) until then (supervisor clock).
    bake_until: Option<Millis>,
}

struct UnitRt {
    name: String,
    revisions: Vec<Revision>,
    /// The last completed revision (what runs when nothing is deploying).
    current: u32,
    desired: u32,
    lb: Option<Arc<Balancer>>,
    tasks: Vec<TaskRt>,
    deploy: Option<Deploy>,
    history: Vec<DeploymentRecord>,
    /// The number the next revision gets: persisted, so a number is never reused
    /// (not even after a crash that lost the revision it was given to).
    next_revision: u32,
    backoff: Backoff,
    /// Recently stopped tasks, newest last (for `status`).
    stopped: Vec<Value>,
    /// Tasks whose start job has not ended yet.
    starting: Vec<Starting>,
}

impl UnitRt {
    fn revision(&self, n: u32) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.number == n)
    }
    fn latest(&self) -> u32 {
        self.revisions.iter().map(|r| r.number).max().unwrap_or(0)
    }
    /// Gives out a new revision number (never one given out before).
    fn take_revision(&mut self) -> u32 {
        let n = self
            .next_revision
            .max(self.latest() + 1)
            .max(self.current + 1);
        self.next_revision = n + 1;
        n
    }

    fn task(&self, id: u64) -> Option<&Task> {
        self.tasks.iter().find(|t| t.task.id == id).map(|t| &t.task)
    }

    /// The current revision, else the latest (a unit whose first deployment has
    /// not completed).
    fn current_or_latest(&self) -> Option<&Revision> {
        self.revision(self.current.max(1))
            .or_else(|| self.revisions.last())
    }

    /// The deregistration delay: the current revision's (else the latest's).
    fn deregistration(&self) -> Millis {
        self.current_or_latest()
            .and_then(|r| r.unit.http.as_ref().map(|h| h.deregistration_ms))
            .unwrap_or(0)
    }

    /// What is seen of a task now: its exit, and its target in the load balancer.
    fn observe(&self, t: &TaskRt) -> Observation {
        let timings = self
            .revision(t.task.revision)
            .map(|r| Timings {
                grace: r.unit.http.as_ref().map(|h| h.grace_ms).unwrap_or(0),
                healthy_after: r.unit.healthy_after_ms,
                stop_timeout: r.unit.stop_timeout_ms,
            })
            .unwrap_or_default();
        let exit = t.task.exited().map(|e| Exited {
            text: e.to_string(),
            tail: if t.phase == Phase::Running {
                t.task.tail(5)
            } else {
                Vec::new()
            },
        });
        let target = self
            .lb
            .as_ref()
            .and_then(|l| l.group.view(t.task.id))
            .map(|v| tasks::Target {
                state: v.state,
                outstanding: v.outstanding,
                last_failure: v.last_failure,
            });
        Observation {
            timings,
            exit,
            target,
        }
    }
}

/// The deployment in progress as recorded in state.json (and as history entry).
fn deploy_record(d: &Deploy) -> DeploymentRecord {
    DeploymentRecord::in_progress(
        d.id,
        d.to,
        d.from,
        d.kind,
        pantstack_rt::clock::rfc3339_micros(d.started),
    )
}

/// The history entry of a deployment a supervisor left unfinished (it was killed,
/// crashed or stopped): `interrupted`.
fn interrupted(record: &DeploymentRecord, reason: String) -> DeploymentRecord {
    record
        .clone()
        .ended(DeploymentOutcome::Interrupted, reason, now_text())
}

/// A request from the control socket and where to send the answer lines.
pub struct Call {
    pub request: control::Request,
    pub reply: mpsc::UnboundedSender<Value>,
}

pub struct Supervisor {
    cfg: Config,
    paths: Paths,
    project: String,
    registry: String,
    units: BTreeMap<String, UnitRt>,
    next_task: u64,
    next_deploy: u32,
    events: broadcast::Sender<Event>,
    clock: Instant,
    service_urls: Vec<(String, String)>,
    /// The AWS-compatible endpoint (SQS, SSM) of this environment.
    aws: Aws,
    stopping: bool,
    down_waiters: Vec<mpsc::UnboundedSender<Value>>,
    /// This supervisor's hold on the environment (see `state::lock`).
    lock: state::Lock,
    builds: Vec<BuildRt>,
    next_build: u64,
    /// The parameters each unit's execution role may read as the manifests say now
    /// (its own, and those other services grant it): a rollback to a revision that
    /// took a secret since revoked does not get it.
    secret_params: BTreeMap<String, Vec<String>>,
    /// Numbers the start (0) and each deploy request: the units of one service
    /// deployed by one request share one build.
    batch: u64,
    /// When log retention last ran (`logs::KEEP_LOGS_EVERY`), and its job.
    logs_kept_at: Millis,
    logs_job: Option<tokio::task::JoinHandle<()>>,
    /// The built-in metrics' collector (`metrics`).
    metrics: metrics::MetricsRt,
    /// Target tracking and alarms (`watch`).
    watch: watch::WatchRt,
    /// The web dashboard, bound at the start and served by `run` (None once
    /// serving, or when it could not bind), and its URL (`status`).
    dashboard: Option<crate::dashboard::Dashboard>,
    dashboard_url: Option<String>,
}

/// One event of the supervisor (a task started, a deployment ended, ...), as
/// `pantstack up` prints it and the control socket streams it: serialized as
/// `{"time","unit","event","message"}` (`kind` is the `event` field).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// RFC 3339 with microseconds, UTC.
    pub time: String,
    /// The unit it is about, `-` for the environment.
    pub unit: String,
    /// What happened (`task-started`, `deployment-ended`, `warning`, ...).
    #[serde(rename = "event")]
    pub kind: String,
    pub message: String,
}

impl Event {
    /// The event as JSON (`{"time","unit","event","message"}`).
    pub fn to_json(&self) -> Value {
        json!({
            "time": self.time, "unit": self.unit, "event": self.kind, "message": self.message,
        })
    }
}

fn now_text() -> String {
    pantstack_rt::clock::rfc3339_micros(SystemTime::now())
}

/// What `state.json` records of a revision's unit.
fn saved_spec(u: &Unit) -> state::SavedSpec {
    state::SavedSpec {
        command: u.command.clone(),
        container_command: u.container_command.clone(),
        env: u.env.clone(),
        runtime: u.runtime.as_str().to_string(),
    }
}

impl Supervisor {
    fn now(&self) -> Millis {
        self.clock.elapsed().as_millis() as Millis
    }

    fn emit(&self, unit: &str, kind: &str, message: String) {
        let _ = self.events.send(Event {
            time: now_text(),
            unit: unit.to_string(),
            kind: kind.to_string(),
            message,
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Loads the monorepo, cleans up after a crashed supervisor, binds the load
    /// balancers on their recorded ports and starts the first deployment.
    pub async fn start(cfg: Config) -> Result<Supervisor, String> {
        let paths = Paths::new(&cfg.root, &cfg.env);
        state::secure(&paths)?;
        raise_nofile_limit();
        // Liveness is the lock, never whether the socket answered: while another
        // supervisor holds it, nothing of its (tasks, socket) is touched.
        let lock = state::lock(&paths)?;
        if tokio::net::UnixStream::connect(paths.socket())
            .await
            .is_ok()
        {
            return Err(format!(
                "a local cloud for `{}` is already running (control socket {})",
                cfg.env,
                paths.socket().display()
            ));
        }
        let _ = std::fs::remove_file(paths.socket());
        let saved = state::load(&paths.state()).unwrap_or_else(|| state::empty(&cfg.env));
        // The lock was free: the supervisor that wrote the state is gone.
        cleanup_leftovers(&saved).await;

        let loaded = pantstack_model::load(&cfg.root);
        if loaded.has_errors() {
            let n = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
            return Err(format!(
                "the monorepo has {n} error(s); run `pantstack check`"
            ));
        }
        let repo = loaded.repo;
        let project = repo.foundation.project.value.clone();
        let registry = repo.foundation.registry.clone();
        let aws = start_aws(&cfg, &paths, &repo, &saved).await?;
        let aws_spec = spec::Aws {
            endpoint: aws.server.url(),
        };
        let mut units = spec::units(&repo, &cfg.env, cfg.runtime, &aws_spec);
        if !cfg.only.is_empty() {
            units.retain(|u| cfg.only.contains(&u.service));
        }
        let (events, _) = broadcast::channel(1024);
        // A dashboard that cannot start leaves the local cloud running without it.
        let dashboard = crate::dashboard::Dashboard::bind(&paths.dir)
            .await
            .map_err(|e| eprintln!("no dashboard: {e}"))
            .ok();
        let mut sup = Supervisor {
            cfg,
            paths,
            project,
            registry,
            units: BTreeMap::new(),
            next_task: saved.next_task,
            next_deploy: saved.next_deploy,
            events,
            clock: Instant::now(),
            service_urls: Vec::new(),
            aws,
            stopping: false,
            down_waiters: Vec::new(),
            lock,
            builds: Vec::new(),
            secret_params: units
                .iter()
                .map(|u| {
                    (
                        u.name.clone(),
                        u.secrets.iter().map(|(_, p)| p.clone()).collect(),
                    )
                })
                .collect(),
            next_build: saved.next_build,
            batch: 0,
            logs_kept_at: 0,
            logs_job: None,
            metrics: metrics::MetricsRt::default(),
            watch: watch::WatchRt::default(),
            dashboard_url: dashboard.as_ref().map(crate::dashboard::Dashboard::url),
            dashboard,
        };
        state::private_dir(&sup.paths.dir.join("access"))
            .map_err(|e| format!("cannot create {}: {e}", sup.paths.dir.display()))?;
        for u in &units {
            let none = SavedUnit::default();
            let old = saved.units.get(&u.name).unwrap_or(&none);
            let lb = match &u.http {
                Some(h) => {
                    let lb = sup.start_balancer(u, h, old.port.map(u64::from)).await;
                    let lb = match lb {
                        Ok(lb) => lb,
                        Err(e) => {
                            for rt in sup.units.values() {
                                if let Some(lb) = &rt.lb {
                                    lb.shutdown();
                                }
                            }
                            return Err(e);
                        }
                    };
                    sup.service_urls.push((
                        format!(
                            "PANTSTACK_SERVICE_URL_{}",
                            u.name.to_uppercase().replace('-', "_")
                        ),
                        format!("http://127.0.0.1:{}", lb.port),
                    ));
                    Some(lb)
                }
                None => None,
            };
            let current = old.current;
            let mut history = old.history.clone();
            if let Some(d) = &old.deployment {
                let pid = saved.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                history.push(interrupted(
                    d,
                    format!("the supervisor{pid} stopped before the deployment ended"),
                ));
            }
            let next_revision = old.next_revision.max(old.highest_revision() + 1);
            // `scale` outlives a restart, until the manifest's count changes (then
            // the manifest's new count wins, as a service update's desiredCount).
            let manifest_unchanged = old.manifest_desired == Some(u.desired);
            let desired = old
                .desired
                .filter(|_| manifest_unchanged)
                .unwrap_or(u.desired);
            sup.units.insert(
                u.name.clone(),
                UnitRt {
                    name: u.name.clone(),
                    revisions: Vec::new(),
                    current,
                    desired,
                    lb,
                    tasks: Vec::new(),
                    deploy: None,
                    history,
                    next_revision,
                    backoff: Backoff::new(1000, 60_000),
                    stopped: Vec::new(),
                    starting: Vec::new(),
                },
            );
        }
        // The interrupted deployments are history before anything new starts.
        sup.save();
        // No revision of an earlier supervisor is kept: neither are its builds.
        // Its images are removed before any build of this run starts (a build
        // running meanwhile could be handed one of them from its cache: see
        // `prune_artifacts`).
        let _ = std::fs::remove_dir_all(sup.paths.artifacts());
        if units.iter().any(|u| u.runtime == Runtime::Docker) {
            // Every one: none is this run's yet (an earlier state directory,
            // since deleted, may have numbered its builds higher).
            prune_images(sup.image_labels(), Vec::new(), u64::MAX).await;
        }
        for u in &units {
            for (var, callee) in &u.calls {
                if !sup.units.contains_key(callee) {
                    let msg = format!(
                        "calls {callee}, which this local cloud does not run: {var} is not set (`pantstack up` with {callee} too)"
                    );
                    eprintln!("{}: {msg}", u.name);
                    sup.emit(&u.name, "warning", msg);
                }
            }
        }
        for u in units {
            let name = u.name.clone();
            let next = sup
                .units
                .get_mut(&name)
                .map(UnitRt::take_revision)
                .unwrap_or(1);
            sup.add_revision(u, next, "start");
        }
        sup.save();
        Ok(sup)
    }

    /// Adds revision `number` of a unit and deploys it. A unit with a build phase
    /// (Docker: its image; processes: `local.build`) gets a build job, shared with
    /// the other units of its service in the same request; its tasks start when
    /// the build has succeeded.
    fn add_revision(&mut self, unit: Unit, number: u32, kind: &'static str) {
        let name = unit.name.clone();
        let artifact = match build::key(&unit) {
            None => Artifact::WorkingTree,
            Some(key) => {
                let shared = self
                    .builds
                    .iter()
                    .find(|b| b.key == key && b.batch == self.batch)
                    .map(|b| b.id);
                match shared {
                    Some(id) => {
                        self.emit(
                            &name,
                            "build",
                            format!("revision {number} waits for build {id} of {}", unit.service),
                        );
                        Artifact::Building(id)
                    }
                    None => Artifact::Building(self.start_build(&unit, key)),
                }
            }
        };
        let Some(rt) = self.units.get_mut(&name) else {
            return;
        };
        rt.revisions.push(Revision {
            number,
            unit,
            artifact,
            created: SystemTime::now(),
        });
        if rt.revisions.len() > 10 {
            let keep_from = rt.revisions.len() - 10;
            let current = rt.current;
            let mut i = 0;
            rt.revisions.retain(|r| {
                i += 1;
                i > keep_from || r.number == current
            });
            self.prune_artifacts();
        }
        self.begin_deploy(&name, number, kind, None);
    }

    fn begin_deploy(
        &mut self,
        name: &str,
        to: u32,
        kind: &'static str,
        waiter: Option<mpsc::UnboundedSender<Value>>,
    ) {
        let id = self.next_deploy;
        self.next_deploy += 1;
        let Some(rt) = self.units.get_mut(name) else {
            return;
        };
        let Some(rev) = rt.revision(to) else { return };
        let mut params = Params::new(
            rt.desired,
            rev.unit.min_healthy_percent,
            rev.unit.max_percent,
            rev.unit.circuit_breaker,
        );
        if let Some(t) = rev.unit.breaker_threshold {
            params.threshold = t;
        }
        // A deployment replaces any one in progress (ECS: the newest wins).
        let mut waiters: Vec<_> = waiter.into_iter().collect();
        if let Some(old) = rt.deploy.take() {
            rt.history.push(deploy_record(&old).ended(
                DeploymentOutcome::Superseded,
                format!("replaced by deployment {id}"),
                now_text(),
            ));
            waiters.extend(old.waiters);
        }
        rt.backoff.reset();
        let from = rt.current;
        rt.deploy = Some(Deploy {
            id,
            to,
            from,
            kind,
            rollout: Rollout::new(params),
            started: SystemTime::now(),
            waiters,
            bake_until: None,
        });
        let msg = format!(
            "deployment {id} ({kind}): revision {from} → {to}, {} task(s)",
            params.desired
        );
        // Durable before the first task of it starts: a crash from here on leaves
        // it in state.json, and the next `up` records it as interrupted.
        self.save();
        self.emit(name, "deployment", msg);
    }

    fn save(&self) {
        let mut units = BTreeMap::new();
        for (name, rt) in &self.units {
            let tasks = rt
                .tasks
                .iter()
                .filter(|t| t.phase != Phase::Done)
                .map(|t| state::SavedTask {
                    id: t.task.id,
                    revision: t.task.revision,
                    port: t.task.port,
                    handle: match &t.task.handle {
                        Handle::Process { pgid } => SavedHandle::Process {
                            pgid: *pgid,
                            start_ticks: task::start_ticks(*pgid),
                        },
                        Handle::Docker { container } => SavedHandle::Docker {
                            container: container.clone(),
                        },
                    },
                })
                .collect();
            let skip = rt.history.len().saturating_sub(50);
            units.insert(
                name.clone(),
                SavedUnit {
                    port: rt.lb.as_ref().map(|l| l.port),
                    current: rt.current.max(
                        rt.deploy
                            .as_ref()
                            .map(|d| d.to.min(rt.current))
                            .unwrap_or(0),
                    ),
                    desired: Some(rt.desired),
                    manifest_desired: rt
                        .revisions
                        .iter()
                        .max_by_key(|r| r.number)
                        .map(|r| r.unit.desired),
                    history: rt.history[skip..].to_vec(),
                    deployment: rt.deploy.as_ref().map(deploy_record),
                    next_revision: rt.next_revision,
                    tasks,
                    revisions: rt
                        .revisions
                        .iter()
                        .map(|r| state::SavedRevision {
                            number: r.number,
                            spec: saved_spec(&r.unit),
                            image: r.artifact.image().map(str::to_string),
                            artifacts: r.artifact.dir().map(std::path::Path::to_path_buf),
                        })
                        .collect(),
                },
            );
        }
        let s = SavedState {
            environment: self.cfg.env.clone(),
            project: self.project.clone(),
            pid: Some(std::process::id()),
            next_task: self.next_task,
            next_deploy: self.next_deploy,
            next_build: self.next_build,
            aws_port: Some(self.aws.server.port),
            aws_region: Some(self.aws.region.clone()),
            units,
        };
        if let Err(e) = state::save(&self.paths.state(), &s) {
            eprintln!("cannot save {}: {e}", self.paths.state().display());
        }
    }
}

mod answers;
mod aws;
mod builds;
mod logs;
mod metrics;
mod run;
mod spot;
mod tick;
mod watch;

pub use aws::Aws;
use aws::{raise_nofile_limit, start_aws};
use builds::prune_images;
use run::cleanup_leftovers;
pub use run::stop_leftovers;

#[cfg(test)]
mod tests {
    use super::Event;
    use serde_json::json;

    /// The event's wire format (`pantstack up`'s lines, the control socket's
    /// `{"event": ...}`) is the same whether serialized or made JSON.
    #[test]
    fn an_event_serializes_as_time_unit_event_message() {
        let ev = Event {
            time: "2026-01-02T03:04:05.000006Z".into(),
            unit: "api".into(),
            kind: "task-started".into(),
            message: "task 1 on port 8080".into(),
        };
        let want = json!({
            "time": "2026-01-02T03:04:05.000006Z",
            "unit": "api",
            "event": "task-started",
            "message": "task 1 on port 8080",
        });
        assert_eq!(ev.to_json(), want);
        assert_eq!(serde_json::to_value(&ev).ok(), Some(want.clone()));
        assert_eq!(
            json!({"event": ev}).to_string(),
            format!("{{\"event\":{want}}}")
        );
    }
}

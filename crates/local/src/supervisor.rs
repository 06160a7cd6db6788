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

    /// The deregistration delay: the current revision's (else the latest's).
    fn deregistration(&self) -> Millis {
        self.revision(self.current.max(1))
            .or_else(|| self.revisions.last())
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
    events: broadcast::Sender<Value>,
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
}

/// The endpoint and what tasks need to reach it.
pub struct Aws {
    pub core: Arc<pantstack_endpoint::Core>,
    pub server: pantstack_endpoint::http::Server,
    pub region: String,
}

impl Aws {
    /// `AWS_*` variables of a unit's tasks: the endpoint, region and its own
    /// credentials (never written to state or logs).
    fn task_env(&self, unit: &str) -> Vec<(String, String)> {
        let c = self.core.credentials(unit);
        vec![
            ("AWS_ENDPOINT_URL".into(), self.server.url()),
            ("AWS_ACCESS_KEY_ID".into(), c.access_key),
            ("AWS_SECRET_ACCESS_KEY".into(), c.secret_key),
            ("AWS_REGION".into(), self.region.clone()),
            ("AWS_DEFAULT_REGION".into(), self.region.clone()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }
}

/// Raises this process's soft limit of open files to its hard limit, so the
/// control socket, health checks and tasks keep descriptors under heavy load.
fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            },
        );
    }
}

/// When the AWS journal is compacted: `PANTSTACK_COMPACT_MIN_BYTES` (bytes) or
/// the endpoint's default (64 MiB).
fn compact_min_bytes() -> u64 {
    std::env::var("PANTSTACK_COMPACT_MIN_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(pantstack_endpoint::DEFAULT_COMPACT_MIN)
}

/// How long a day of S3 lifecycle rules lasts locally:
/// `PANTSTACK_S3_LIFECYCLE_DAY_SECONDS` (whole seconds, at least 1), else a day
/// as on AWS.
fn lifecycle_day() -> Option<Duration> {
    std::env::var("PANTSTACK_S3_LIFECYCLE_DAY_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s >= 1)
        .map(Duration::from_secs)
}

/// Opens the environment's AWS state, serves it on its recorded port and creates
/// the manifests' queues.
async fn start_aws(
    cfg: &Config,
    paths: &Paths,
    repo: &pantstack_model::Monorepo,
    saved: &SavedState,
) -> Result<Aws, String> {
    let region = spec::region(repo, &cfg.env);
    let principals = spec::unit_names(repo);
    let core = pantstack_endpoint::Core::open(&pantstack_endpoint::Config {
        dir: paths.aws(),
        key_file: pantstack_endpoint::keys::key_file(&cfg.root, &cfg.env),
        region: region.clone(),
        principals,
        policies: spec::policies(repo, &cfg.env, &region),
        compact_min_bytes: compact_min_bytes(),
    })?;
    let core = Arc::new(core);
    let port = saved.aws_port.unwrap_or(0);
    let server = pantstack_endpoint::http::serve(core.clone(), port)
        .await
        .map_err(|e| format!("cannot listen for the AWS endpoint on 127.0.0.1:{port}: {e}"))?;
    for q in spec::queues(repo, &cfg.env) {
        let mut attrs = q.attributes.clone();
        if let Some((dlq, count)) = &q.dead_letter {
            attrs.push((
                "RedrivePolicy".into(),
                json!({ "deadLetterTargetArn": core.queue_arn(dlq), "maxReceiveCount": count })
                    .to_string(),
            ));
        }
        core.ensure_queue(&q.name, &attrs)
            .await
            .map_err(|e| format!("cannot create queue {}: {e}", q.name))?;
    }
    if let Some(day) = lifecycle_day() {
        core.set_lifecycle_day(day);
    }
    for (bucket, versioning, noncurrent_days) in spec::buckets(repo, &cfg.env) {
        core.ensure_bucket(&bucket, versioning)
            .await
            .map_err(|e| format!("cannot create bucket {bucket}: {e}"))?;
        let rules = pantstack_endpoint::s3::declared_lifecycle(versioning, noncurrent_days);
        core.ensure_lifecycle(&bucket, rules)
            .await
            .map_err(|e| format!("cannot set the lifecycle rules of bucket {bucket}: {e}"))?;
    }
    Ok(Aws {
        core,
        server,
        region,
    })
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
        let _ = self.events.send(json!({
            "time": now_text(), "unit": unit, "event": kind, "message": message,
        }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Value> {
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

    /// Starts a build job in the background; returns its number.
    fn start_build(&mut self, unit: &Unit, key: String) -> u64 {
        let id = self.next_build;
        self.next_build += 1;
        let log = self
            .paths
            .logs()
            .join(&unit.service)
            .join(format!("build-{id}.log"));
        let tag =
            pantstack_model::tag::branch_tag(&unit.service, false, &self.cfg.branch, &self.cfg.sha)
                .unwrap_or_else(|_| format!("{}-local", unit.service));
        let job = build::Job {
            id,
            unit: unit.clone(),
            log: log.clone(),
            artifacts: self
                .paths
                .artifacts()
                .join(&unit.service)
                .join(id.to_string()),
            image: format!(
                "pantstack-local/{}:{tag}-{}-b{id}",
                self.registry,
                self.root_tag()
            ),
            labels: self.image_labels(),
            timeout: Duration::from_millis(unit.build_timeout_ms),
            pgid: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        };
        let pgid = job.pgid.clone();
        self.emit(
            &unit.name,
            "build",
            format!(
                "building {} (build {id}): `{}`; log: {}",
                unit.service,
                build::describe(unit),
                log.display()
            ),
        );
        self.builds.push(BuildRt {
            id,
            key,
            batch: self.batch,
            service: unit.service.clone(),
            started: Instant::now(),
            log,
            shown: Instant::now(),
            image: (unit.runtime == Runtime::Docker).then(|| job.image.clone()),
            handle: tokio::spawn(build::run(job)),
            pgid,
        });
        id
    }

    /// Labels of this environment's images (so that stale ones can be found).
    /// Two checkouts of one project on one machine build images of the same names
    /// and numbers: the checkout's directory tells them apart (label and tag).
    fn image_labels(&self) -> Vec<(String, String)> {
        vec![
            ("pantstack.project".to_string(), self.project.clone()),
            ("pantstack.environment".to_string(), self.cfg.env.clone()),
            (
                "pantstack.root".to_string(),
                self.cfg.root.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// A short, stable digest of the checkout's directory (FNV-1a), for image tags.
    fn root_tag(&self) -> String {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.cfg.root.to_string_lossy().bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        format!("{h:08x}")
    }

    /// Ends finished builds: their revisions become ready (or failed); shows the
    /// progress of long ones.
    async fn poll_builds(&mut self) {
        let mut i = 0;
        while i < self.builds.len() {
            if !self.builds[i].handle.is_finished() {
                let b = &mut self.builds[i];
                if b.shown.elapsed() >= Duration::from_secs(20) {
                    b.shown = Instant::now();
                    let last = task::tail_file(&b.log, 1)
                        .first()
                        .map(|l| format!(": {}", build::strip_stamp(l)))
                        .unwrap_or_default();
                    let msg = format!(
                        "still building {} (build {}, {} s){last}",
                        b.service,
                        b.id,
                        b.started.elapsed().as_secs()
                    );
                    let unit = b.service.clone();
                    self.emit(&unit, "build", msg);
                }
                i += 1;
                continue;
            }
            let b = self.builds.remove(i);
            let secs = b.started.elapsed().as_secs_f64();
            let result = match b.handle.await {
                Ok(r) => r,
                Err(e) => Err(format!("the build task ended abnormally: {e}")),
            };
            let artifact = match result {
                Ok(built) => Artifact::Built(built),
                Err(why) => Artifact::Failed(why),
            };
            let mut events = Vec::new();
            for rt in self.units.values_mut() {
                for r in rt.revisions.iter_mut() {
                    if r.artifact == Artifact::Building(b.id) {
                        r.artifact = artifact.clone();
                        events.push(match &artifact {
                            Artifact::Failed(why) => (
                                rt.name.clone(),
                                "build-failed",
                                format!("revision {} cannot run: {why}", r.number),
                            ),
                            _ => (
                                rt.name.clone(),
                                "built",
                                format!(
                                    "revision {} built in {secs:.1} s (build {})",
                                    r.number, b.id
                                ),
                            ),
                        });
                    }
                }
            }
            for (unit, kind, msg) in events {
                self.emit(&unit, kind, msg);
            }
            if !matches!(artifact, Artifact::Failed(_)) {
                // A build no revision took (superseded) is not kept.
                self.prune_artifacts();
            }
            self.save();
        }
    }

    /// Deletes the artifact directories and images no kept revision refers to.
    fn prune_artifacts(&mut self) {
        let keep_dirs: Vec<PathBuf> = self
            .units
            .values()
            .flat_map(|rt| {
                rt.revisions
                    .iter()
                    .filter_map(|r| r.artifact.dir().map(PathBuf::from))
            })
            .collect();
        let building: Vec<u64> = self.builds.iter().map(|b| b.id).collect();
        for service in std::fs::read_dir(self.paths.artifacts())
            .into_iter()
            .flatten()
            .flatten()
        {
            for d in std::fs::read_dir(service.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let p = d.path();
                let in_progress = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| building.contains(&n));
                if !in_progress && !keep_dirs.contains(&p) {
                    let _ = std::fs::remove_dir_all(&p);
                }
            }
        }
        // Images are pruned only while no image is being built: a build that
        // reuses its cache can produce the very image an old tag names, and
        // removing that tag between the build and its tagging deletes the image
        // under it ("failed to get digest"). The last build to end prunes.
        let building = self.builds.iter().any(|b| b.image.is_some());
        let docker = self.units.values().any(|rt| {
            rt.revisions
                .iter()
                .any(|r| r.unit.runtime == Runtime::Docker)
        });
        if docker && !building {
            let mut keep: Vec<String> = self
                .units
                .values()
                .flat_map(|rt| {
                    rt.revisions
                        .iter()
                        .filter_map(|r| r.artifact.image().map(String::from))
                })
                .collect();
            keep.extend(self.builds.iter().filter_map(|b| b.image.clone()));
            tokio::spawn(prune_images(self.image_labels(), keep, self.next_build));
        }
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

    /// Starts a task of `revision` as a background job (`task::start` waits for
    /// `docker run`): the tick that sees the job finished registers the task (or
    /// counts its failure). A start that cannot begin fails at once.
    fn start_task(&mut self, name: &str, revision: u32) {
        let id = self.next_task;
        self.next_task += 1;
        let Some(rt) = self.units.get(name) else {
            return;
        };
        let Some(rev) = rt.revision(revision).cloned() else {
            return;
        };
        let port = match task::free_port() {
            Ok(p) => p,
            Err(e) => {
                self.emit(name, "error", format!("no free port: {e}"));
                return;
            }
        };
        let log = self.paths.logs().join(name).join(format!("{id}.log"));
        let labels = vec![
            ("pantstack.project".to_string(), self.project.clone()),
            ("pantstack.environment".to_string(), self.cfg.env.clone()),
        ];
        let container_name = format!("pantstack-{}-{}-{}-{id}", self.project, self.cfg.env, name);
        let mut env = self.service_urls.clone();
        // `calls:`: the callee's load balancer (Service Connect's name on AWS).
        for (var, callee) in &rev.unit.calls {
            if let Some(port) = self
                .units
                .get(callee)
                .and_then(|c| c.lb.as_ref())
                .map(|lb| lb.port)
            {
                env.push((var.clone(), format!("http://127.0.0.1:{port}")));
            }
        }
        env.extend(self.aws.task_env(name));
        // ECS `secrets`: resolved when the task starts; a missing one stops the start.
        let mut missing = Vec::new();
        let allowed = self.secret_params.get(name).cloned().unwrap_or_default();
        for (var, param) in &rev.unit.secrets {
            if !allowed.contains(param) {
                missing.push(format!(
                    "{var} ({param}: AccessDenied: the execution role may no longer read it — the manifests no longer give it to {name})"
                ));
                continue;
            }
            match self.aws.core.resolve_parameter(param) {
                Ok(v) => env.push((var.clone(), v)),
                Err(e) => missing.push(format!(
                    "{var} ({param}: {}; set it with `pantstack secrets set {} {var}`)",
                    e.code, rev.unit.service
                )),
            }
        }
        if !matches!(rev.artifact, Artifact::WorkingTree | Artifact::Built(_)) {
            let e = std::io::Error::other(format!(
                "revision {revision} has no build to run ({})",
                rev.artifact.state()
            ));
            self.task_started(name, revision, Err(e));
        } else if missing.is_empty() {
            let spec = StartSpec {
                image: rev.artifact.image().map(str::to_string),
                artifacts: rev.artifact.dir().map(PathBuf::from),
                unit: rev.unit,
                id,
                revision,
                port,
                log,
                env,
                container_name: Some(container_name),
                labels,
            };
            if let Some(rt) = self.units.get_mut(name) {
                rt.starting.push(Starting {
                    id,
                    revision,
                    job: tokio::spawn(task::start(spec)),
                });
            }
        } else {
            let e = std::io::Error::other(format!(
                "ResourceInitializationError: unable to retrieve secrets from SSM: {}",
                missing.join(", ")
            ));
            self.task_started(name, revision, Err(e));
        }
        self.save();
    }

    /// A start ended: the task runs (registered with the load balancer), or its
    /// failure counts for the backoff and the deployment.
    fn task_started(&mut self, name: &str, revision: u32, started: std::io::Result<Task>) {
        let now = self.now();
        let Some(rt) = self.units.get_mut(name) else {
            return;
        };
        match started {
            Ok(t) => {
                let (id, port) = (t.id, t.port);
                if let Some(lb) = &rt.lb {
                    lb.register(id, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
                }
                rt.tasks.push(TaskRt {
                    task: t,
                    started: Instant::now(),
                    started_at: now,
                    phase: Phase::Running,
                    healthy: false,
                    reason: None,
                    counted: false,
                });
                self.emit(
                    name,
                    "task-started",
                    format!("task {id} (revision {revision}) on 127.0.0.1:{port}"),
                );
            }
            Err(e) => {
                rt.backoff.failed(now);
                let reason = format!("task could not start: {e}");
                if let Some(d) = rt.deploy.as_mut()
                    && d.to == revision
                {
                    d.rollout.task_failed(reason.clone());
                }
                self.emit(name, "task-failed", reason);
            }
        }
        self.save();
    }

    /// Observes the start jobs of a unit that have finished (awaiting a finished
    /// job returns at once). Returns whether any had.
    async fn observe_starts(&mut self, name: &str) -> bool {
        let Some(rt) = self.units.get_mut(name) else {
            return false;
        };
        let (done, running): (Vec<Starting>, Vec<Starting>) = std::mem::take(&mut rt.starting)
            .into_iter()
            .partition(|s| s.job.is_finished());
        rt.starting = running;
        let any = !done.is_empty();
        for s in done {
            let started = match s.job.await {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(format!(
                    "the start of task {} ended abnormally: {e}",
                    s.id
                ))),
            };
            self.task_started(name, s.revision, started);
        }
        any
    }

    /// Begins stopping a task: deregister and drain (HTTP), then SIGTERM.
    fn begin_stop(&mut self, name: &str, id: u64, reason: &str) {
        let now = self.now();
        let Some(rt) = self.units.get_mut(name) else {
            return;
        };
        let lb = rt.lb.clone();
        if let Some(t) = rt.tasks.iter_mut().find(|t| t.task.id == id) {
            let mut s = t.state();
            if tasks::begin_stop(&mut s, reason, now) {
                t.set_state(s);
                if let Some(lb) = lb {
                    lb.group.deregister(id);
                }
            }
        }
        self.emit(name, "task-stopping", format!("task {id}: {reason}"));
    }

    /// One reconciliation of every unit. Nothing in it waits for a child process
    /// (see the module docs).
    pub async fn tick(&mut self) {
        self.poll_builds().await;
        let names: Vec<String> = self.units.keys().cloned().collect();
        for name in names {
            self.tick_unit(&name).await;
        }
    }

    /// Observe → plan → execute, twice: the lifecycle of the unit's tasks
    /// (`tasks::plan_tasks`), then its deployment or steady state
    /// (`tasks::plan_unit`).
    async fn tick_unit(&mut self, name: &str) {
        let mut changed = self.observe_starts(name).await;
        let now = self.now();
        let actions = {
            let Some(rt) = self.units.get_mut(name) else {
                return;
            };
            let seen: Vec<tasks::Observation> = rt.tasks.iter().map(|t| rt.observe(t)).collect();
            let mut states: Vec<TaskState> = rt.tasks.iter().map(TaskRt::state).collect();
            let deploying = rt.deploy.as_ref().map(|d| d.to);
            let (actions, c) =
                tasks::plan_tasks(&mut states, &seen, rt.deregistration(), deploying, now);
            changed |= c;
            for (t, s) in rt.tasks.iter_mut().zip(states) {
                t.set_state(s);
            }
            actions
        };
        self.apply(name, actions, now);
        if let Some(rt) = self.units.get_mut(name) {
            let before = rt.tasks.len();
            rt.tasks.retain(|t| t.phase != Phase::Done);
            changed |= rt.tasks.len() != before;
            let keep = rt.stopped.len().saturating_sub(20);
            rt.stopped.drain(..keep);
        }
        if self.stopping {
            if changed {
                self.save();
            }
            return;
        }

        // Deployment or steady state.
        let (plan, finished) = {
            let Some(rt) = self.units.get_mut(name) else {
                return;
            };
            let live: Vec<Live> = rt
                .tasks
                .iter()
                .filter(|t| t.phase == Phase::Running)
                .map(|t| Live {
                    id: t.task.id,
                    revision: t.task.revision,
                    healthy: t.healthy,
                    started: t.started_at,
                    starting: false,
                })
                .chain(rt.starting.iter().map(|s| Live {
                    id: s.id,
                    revision: s.revision,
                    healthy: false,
                    started: now,
                    starting: true,
                }))
                .collect();
            let current = rt.revision(rt.current).map(|_| rt.current);
            let build = rt
                .deploy
                .as_ref()
                .and_then(|d| rt.revision(d.to))
                .map(|r| match &r.artifact {
                    Artifact::Failed(why) => Build::Failed(why.clone()),
                    Artifact::Building(_) => Build::Building,
                    Artifact::WorkingTree | Artifact::Built(_) => Build::Ready,
                })
                .unwrap_or(Build::Ready);
            let deploying = rt.deploy.as_mut().map(|d| Deploying {
                to: d.to,
                build,
                rollout: &mut d.rollout,
            });
            let mut plan =
                tasks::plan_unit(&live, rt.desired, current, deploying, &rt.backoff, now);
            let finished = plan
                .finished
                .take()
                .and_then(|o| rt.deploy.take().map(|d| (o, d)));
            (plan, finished)
        };
        for (id, why) in plan.stops {
            self.begin_stop(name, id, &why);
            changed = true;
        }
        for rev in plan.starts {
            self.start_task(name, rev);
            changed = true;
        }
        if let Some((outcome, d)) = finished {
            self.finish(name, outcome, d);
            changed = true;
        }
        if changed {
            self.save();
        }
    }

    /// Executes the lifecycle's effects on a unit (`tasks::plan_tasks`). Signals
    /// and `docker` commands run in the background.
    fn apply(&mut self, name: &str, actions: Vec<Action>, now: Millis) {
        let Some(rt) = self.units.get_mut(name) else {
            return;
        };
        let mut events = Vec::new();
        for a in actions {
            match a {
                Action::Remove(id) => {
                    if let Some(lb) = &rt.lb {
                        lb.group.remove(id);
                    }
                }
                Action::Deregister(id) => {
                    if let Some(lb) = &rt.lb {
                        lb.group.deregister(id);
                    }
                }
                Action::Terminate { id, grace_secs } => {
                    if let Some(t) = rt.task(id) {
                        t.terminate(grace_secs);
                    }
                }
                Action::Kill(id) => {
                    if let Some(t) = rt.task(id) {
                        t.kill();
                    }
                }
                Action::BackoffFailed => rt.backoff.failed(now),
                Action::BackoffReset => rt.backoff.reset(),
                Action::RolloutFailed { reason, tail_of } => {
                    let tail = tail_of
                        .and_then(|id| rt.task(id))
                        .map(|t| t.tail(5))
                        .unwrap_or_default();
                    if let Some(d) = rt.deploy.as_mut() {
                        d.rollout.task_failed(tasks::with_tail(reason, &tail));
                    }
                }
                Action::Stopped {
                    id,
                    revision,
                    exit,
                    reason,
                } => rt.stopped.push(json!({
                    "id": id, "revision": revision, "exit": exit,
                    "reason": reason, "stopped": now_text(),
                })),
                Action::Event { kind, message } => events.push((kind, message)),
            }
        }
        for (kind, message) in events {
            self.emit(name, kind, message);
        }
    }

    fn finish(&mut self, name: &str, outcome: Outcome, d: Deploy) {
        let Some(rt) = self.units.get_mut(name) else {
            return;
        };
        let (label, reason) = match &outcome {
            Outcome::Completed => ("completed", String::new()),
            Outcome::Failed(r) => ("failed", r.clone()),
            Outcome::InProgress => ("in_progress", String::new()),
        };
        let failures = d.rollout.failures.clone();
        let record = DeploymentRecord {
            failures: Some(failures),
            ..deploy_record(&d).ended(
                match &outcome {
                    Outcome::Completed => DeploymentOutcome::Completed,
                    Outcome::Failed(_) => DeploymentOutcome::Failed,
                    Outcome::InProgress => DeploymentOutcome::InProgress,
                },
                reason.clone(),
                now_text(),
            )
        };
        rt.history.push(record.clone());
        let mut rollback_to = None;
        match outcome {
            Outcome::Completed => rt.current = d.to,
            Outcome::Failed(_) => {
                let rollback = rt.revision(d.to).map(|r| r.unit.rollback).unwrap_or(true);
                let build_failed = rt
                    .revision(d.to)
                    .is_some_and(|r| matches!(r.artifact, Artifact::Failed(_)));
                // A failed rollback is not rolled back again (ECS leaves it failed);
                // a failed build started nothing, so there is nothing to undo.
                if rollback
                    && !build_failed
                    && d.kind != "rollback"
                    && d.from > 0
                    && d.from != d.to
                    && rt.revision(d.from).is_some()
                {
                    rollback_to = Some(d.from);
                }
            }
            Outcome::InProgress => {}
        }
        for w in &d.waiters {
            let _ = w.send(json!({ "unit": name, "deployment": record }));
        }
        let msg = match label {
            "completed" => format!("deployment {} completed: revision {} serves", d.id, d.to),
            _ => format!("deployment {} failed: {reason}", d.id),
        };
        self.emit(name, "deployment-ended", msg);
        if rollback_to.is_none() && label == "failed" {
            self.keep_what_runs(name);
        }
        if let Some(prev) = rollback_to {
            self.emit(name, "rollback", format!("rolling back to revision {prev}"));
            self.begin_deploy(name, prev, "rollback", None);
            if let Some(rt) = self.units.get_mut(name)
                && let Some(nd) = rt.deploy.as_mut()
            {
                nd.waiters = d.waiters;
                nd.from = d.to;
            }
        } else {
            for w in d.waiters {
                let _ = w.send(json!({ "final": true, "unit": name, "deployment": record }));
            }
        }
    }

    /// After a failed deployment with nothing to roll back to: a unit whose current
    /// revision cannot run here (it belongs to an earlier supervisor, or never
    /// completed) keeps the revision that has the most healthy tasks, instead of
    /// stopping them for a revision nothing can start; and says so.
    fn keep_what_runs(&mut self, name: &str) {
        let Some(rt) = self.units.get_mut(name) else {
            return;
        };
        if rt.revision(rt.current).is_some() {
            return;
        }
        let mut counts: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
        for t in rt.tasks.iter().filter(|t| t.phase == Phase::Running) {
            let e = counts.entry(t.task.revision).or_default();
            e.0 += t.healthy as u32;
            e.1 += 1;
        }
        let best = counts
            .iter()
            .filter(|(n, _)| rt.revision(**n).is_some())
            .max_by_key(|(n, (healthy, running))| (*healthy, *running, **n))
            .map(|(n, c)| (*n, *c));
        let msg = match best {
            Some((n, (healthy, running))) => {
                rt.current = n;
                format!(
                    "nothing to roll back to: revision {n} keeps its {running} task(s) ({healthy} healthy)"
                )
            }
            None => "nothing to roll back to, and no task of this unit runs".to_string(),
        };
        self.emit(name, "keep", msg);
    }

    pub fn status(&self) -> Value {
        let units: Vec<Value> = self
            .units
            .values()
            .map(|rt| {
                let views: BTreeMap<u64, pantstack_lb::TargetView> = rt
                    .lb
                    .as_ref()
                    .map(|l| l.group.views().into_iter().map(|v| (v.task, v)).collect())
                    .unwrap_or_default();
                json!({
                    "name": rt.name,
                    "url": rt.lb.as_ref().map(|l| format!("http://127.0.0.1:{}", l.port)),
                    "revision": rt.current,
                    "latest_revision": rt.latest(),
                    "desired": rt.desired,
                    "runtime": rt.revisions.last().map(|r| r.unit.runtime.as_str()),
                    "revisions": rt.revisions.iter().map(|r| json!({
                        "number": r.number, "created": pantstack_rt::clock::rfc3339_micros(r.created),
                        "image": r.artifact.image(), "artifacts": r.artifact.dir(),
                        "build": r.artifact.state(),
                        "runs": if r.artifact == Artifact::WorkingTree { "working-tree" } else { "build" },
                    })).collect::<Vec<_>>(),
                    "deployment": rt.deploy.as_ref().map(|d| json!({"id": d.id, "revision": d.to, "from": d.from, "kind": d.kind, "failed_tasks": d.rollout.failed_tasks})),
                    "build": rt.deploy.as_ref()
                        .and_then(|d| rt.revision(d.to))
                        .and_then(|r| match r.artifact { Artifact::Building(id) => Some(id), _ => None })
                        .and_then(|id| self.builds.iter().find(|b| b.id == id))
                        .map(|b| json!({
                            "id": b.id,
                            "service": b.service,
                            "seconds": b.started.elapsed().as_secs(),
                            "log": b.log,
                            "last_line": task::tail_file(&b.log, 1).first().map(|l| build::strip_stamp(l).to_string()),
                        })),
                    "tasks": rt.tasks.iter().map(|t| {
                        let v = views.get(&t.task.id);
                        json!({
                            "id": t.task.id,
                            "revision": t.task.revision,
                            "pid": t.task.pid(),
                            "port": t.task.port,
                            "phase": match t.phase { Phase::Running => "running", Phase::Draining{..} => "draining", Phase::Stopping{..} => "stopping", Phase::Done => "stopped" },
                            "health": v.map(|v| v.state.as_str()).unwrap_or(if t.healthy { "healthy" } else { "starting" }),
                            "last_failure": v.and_then(|v| v.last_failure.clone()),
                            "outstanding": v.map(|v| v.outstanding),
                            "uptime_secs": t.started.elapsed().as_secs(),
                        })
                    }).collect::<Vec<_>>(),
                    "recently_stopped": rt.stopped.iter().rev().take(5).cloned().collect::<Vec<_>>(),
                    "last_deployment": rt.history.last().cloned(),
                })
            })
            .collect();
        json!({ "environment": self.cfg.env, "project": self.project, "pid": std::process::id(), "units": units })
    }

    fn units_of_service(&self, service: &str) -> Vec<String> {
        self.units
            .values()
            .filter(|rt| {
                rt.name == service
                    || rt
                        .revisions
                        .last()
                        .is_some_and(|r| r.unit.service == service)
            })
            .map(|rt| rt.name.clone())
            .collect()
    }

    /// Handles one control request; long ones (deploy, rollback) answer later.
    async fn control(&mut self, call: Call) {
        use control::Request;
        let reply = call.reply;
        match call.request {
            Request::Status => {
                let _ = reply.send(json!({ "done": true, "status": self.status() }));
            }
            Request::Ssm { action, input } => {
                // `pantstack secrets` while the local cloud runs: the endpoint's own
                // handler, as the `user` principal.
                let r = self
                    .aws
                    .core
                    .ssm(&action, &input, pantstack_endpoint::USER)
                    .await;
                let _ = reply.send(match r {
                    Ok(v) => json!({ "done": true, "result": v }),
                    Err(e) => json!({ "done": true, "error": e.message, "code": e.code }),
                });
            }
            Request::RotateKey => {
                let r = self.aws.core.rotate_key().await;
                let _ = reply.send(match r {
                    Ok(n) => json!({ "done": true, "reencrypted": n }),
                    Err(e) => json!({ "done": true, "error": e }),
                });
            }
            Request::Deployments { service: target } => {
                let units = self.units_of_service(&target);
                let list: Vec<Value> = units
                    .iter()
                    .filter_map(|u| self.units.get(u))
                    .map(|rt| json!({ "unit": rt.name, "history": rt.history, "in_progress": rt.deploy.as_ref().map(|d| json!({"id": d.id, "revision": d.to, "kind": d.kind})) }))
                    .collect();
                let _ = reply.send(json!({ "done": true, "units": list }));
            }
            Request::Scale {
                service: target,
                count,
            } => {
                let count = count.min(64);
                let units = self.units_of_service(&target);
                if units.is_empty() {
                    let _ = reply.send(
                        json!({ "done": true, "error": format!("no service or unit `{target}`") }),
                    );
                    return;
                }
                for u in &units {
                    if let Some(rt) = self.units.get_mut(u) {
                        rt.desired = count;
                    }
                    self.emit(u, "scale", format!("desired count {count}"));
                }
                self.save();
                let _ = reply.send(json!({ "done": true, "units": units, "desired": count }));
            }
            Request::Deploy {
                service: ref target,
            }
            | Request::Rollback {
                service: ref target,
            } => {
                let deploy = matches!(call.request, Request::Deploy { .. });
                let units = self.units_of_service(target);
                if units.is_empty() {
                    let _ = reply.send(
                        json!({ "done": true, "error": format!("no service or unit `{target}`") }),
                    );
                    return;
                }
                let _ = reply.send(json!({ "units": units }));
                self.batch += 1;
                if deploy {
                    if !self.cfg.root.join("stack/infra/foundation").is_dir() {
                        let _ = reply.send(json!({ "done": true, "error": format!(
                            "the project is no longer at {} (moved while this local cloud ran): run `pantstack down --env {} --target local` and `pantstack up` from where it is now",
                            self.cfg.root.display(), self.cfg.env
                        ) }));
                        return;
                    }
                    let loaded = pantstack_model::load(&self.cfg.root);
                    if loaded.has_errors() {
                        let n = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
                        let _ = reply.send(json!({ "done": true, "error": format!("the monorepo has {n} error(s); run `pantstack check`") }));
                        return;
                    }
                    let aws_spec = spec::Aws {
                        endpoint: self.aws.server.url(),
                    };
                    // Task roles and grants as the manifests now say (a removed grant
                    // stops working now, not at the next `up`).
                    self.aws.core.set_policies(&spec::policies(
                        &loaded.repo,
                        &self.cfg.env,
                        &self.aws.region,
                    ));
                    let specs =
                        spec::units(&loaded.repo, &self.cfg.env, self.cfg.runtime, &aws_spec);
                    for s in &specs {
                        self.secret_params.insert(
                            s.name.clone(),
                            s.secrets.iter().map(|(_, p)| p.clone()).collect(),
                        );
                    }
                    for u in &units {
                        let Some(spec) = specs.iter().find(|s| &s.name == u).cloned() else {
                            continue;
                        };
                        let next = self
                            .units
                            .get_mut(u)
                            .map(UnitRt::take_revision)
                            .unwrap_or(1);
                        if let Some(lb) = self.units.get(u).and_then(|r| r.lb.clone())
                            && let Some(h) = &spec.http
                        {
                            lb.set_spec(h.clone());
                        }
                        // A count changed in the manifest applies (as a service
                        // update's desiredCount); otherwise `scale` stands.
                        if let Some(rt) = self.units.get_mut(u)
                            && rt
                                .revisions
                                .iter()
                                .max_by_key(|r| r.number)
                                .is_some_and(|r| r.unit.desired != spec.desired)
                        {
                            rt.desired = spec.desired;
                        }
                        self.add_revision(spec, next, "deploy");
                        self.attach(u, reply.clone());
                    }
                } else {
                    for u in &units {
                        let prev = self.units.get(u).and_then(|rt| {
                            rt.history
                                .iter()
                                .rev()
                                .filter(|h| h.completed())
                                .map(|h| h.revision)
                                .find(|&n| n != rt.current && rt.revision(n).is_some())
                        });
                        let working_tree = prev
                            .and_then(|p| self.units.get(u).and_then(|rt| rt.revision(p)))
                            .filter(|r| r.artifact == Artifact::WorkingTree)
                            .map(|r| r.unit.service.clone());
                        match (prev, working_tree) {
                            (Some(p), Some(service)) => {
                                let _ = reply.send(json!({ "final": true, "unit": u, "error": format!(
                                    "revision {p} ran the working tree (the process runtime keeps no build of a revision without `local.build`), \
                                     so its code is gone: rolling back would run today's code and call it revision {p}. \
                                     Declare `local.build` in modules/{service}/infrastructure/pantstack.yaml to keep each revision's build, \
                                     or run with --runtime docker (each revision keeps its image); to go back now, check out the earlier code and `pantstack deploy {service}`"
                                ) }));
                            }
                            (Some(p), None) => {
                                self.begin_deploy(u, p, "rollback", Some(reply.clone()));
                            }
                            (None, _) => {
                                let _ = reply.send(json!({ "final": true, "unit": u, "error": "no earlier completed revision to roll back to" }));
                            }
                        }
                    }
                }
            }
            Request::Exec {
                service: target,
                task: wanted,
            } => {
                // The unit: a unit's name, else the service's HTTP role, else its worker.
                let units = self.units_of_service(&target);
                let unit = units
                    .iter()
                    .find(|u| **u == target)
                    .or_else(|| units.first())
                    .and_then(|u| self.units.get(u));
                let Some(rt) = unit else {
                    let _ = reply.send(
                        json!({ "done": true, "error": format!("no service or unit `{target}`") }),
                    );
                    return;
                };
                let task = rt
                    .tasks
                    .iter()
                    .filter(|t| t.phase == Phase::Running)
                    .filter(|t| wanted.is_none_or(|w| t.task.id == w))
                    .max_by_key(|t| t.task.id);
                let answer = match task {
                    None => json!({ "done": true, "error": match wanted {
                        Some(w) => format!("{} has no running task {w}", rt.name),
                        None => format!("{} has no running task", rt.name),
                    }}),
                    Some(t) => {
                        let dir = rt.revision(t.task.revision).map(|r| r.unit.dir.clone());
                        match &t.task.handle {
                            Handle::Process { pgid } => {
                                // The task's own environment, as it started.
                                match std::fs::read(format!("/proc/{pgid}/environ")) {
                                    Ok(raw) => {
                                        let env: Vec<Value> = raw
                                            .split(|b| *b == 0)
                                            .filter_map(|kv| {
                                                let kv = String::from_utf8_lossy(kv);
                                                kv.split_once('=').map(|(k, v)| json!([k, v]))
                                            })
                                            .collect();
                                        json!({ "done": true, "task": t.task.id, "env": env, "dir": dir })
                                    }
                                    Err(e) => {
                                        json!({ "done": true, "error": format!("cannot read task {}'s environment: {e}", t.task.id) })
                                    }
                                }
                            }
                            Handle::Docker { container } => {
                                json!({ "done": true, "task": t.task.id, "container": container })
                            }
                        }
                    }
                };
                let _ = reply.send(answer);
            }
            Request::Down => {
                self.stopping = true;
                self.stop_builds().await;
                let _ = reply.send(json!({ "message": "stopping every task" }));
                self.down_waiters.push(reply);
            }
            // Served by the control connection itself, from the event stream.
            Request::Events => {}
        }
    }

    fn attach(&mut self, unit: &str, reply: mpsc::UnboundedSender<Value>) {
        if let Some(d) = self.units.get_mut(unit).and_then(|rt| rt.deploy.as_mut()) {
            d.waiters.push(reply);
        }
    }
}

/// Stops the tasks a supervisor that died (`kill -9`) left running, as recorded in
/// the environment's state file; returns how many were still alive. For `down`
/// when no supervisor holds the environment.
pub async fn stop_leftovers(paths: &Paths) -> usize {
    let Some(saved) = state::load(&paths.state()) else {
        return 0;
    };
    let mut alive = 0;
    for t in saved.units.values().flat_map(|u| &u.tasks) {
        match &t.handle {
            SavedHandle::Process { pgid, start_ticks } => {
                if start_ticks.is_some()
                    && task::start_ticks(*pgid) == *start_ticks
                    && task::running(*pgid)
                {
                    alive += 1;
                }
            }
            SavedHandle::Docker { .. } => alive += 1,
        }
    }
    cleanup_leftovers(&saved).await;
    alive
}

/// Kills what a crashed supervisor left running (recorded in the state file), so the
/// new one starts from a clean slate on the same ports.
async fn cleanup_leftovers(saved: &SavedState) {
    for t in saved.units.values().flat_map(|u| &u.tasks) {
        match &t.handle {
            SavedHandle::Process { pgid, start_ticks } => {
                if start_ticks.is_some() && task::start_ticks(*pgid) == *start_ticks {
                    task::signal_group(*pgid, rustix::process::Signal::KILL);
                }
            }
            SavedHandle::Docker { container } => {
                let _ = tokio::process::Command::new("docker")
                    .args(["rm", "-f", container])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await;
            }
        }
    }
}

impl Supervisor {
    fn stop_all(&mut self) {
        let ids: Vec<(String, u64)> = self
            .units
            .values()
            .flat_map(|rt| {
                rt.tasks
                    .iter()
                    .filter(|t| t.phase == Phase::Running)
                    .map(|t| (rt.name.clone(), t.task.id))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (u, id) in ids {
            self.begin_stop(&u, id, "the local cloud is shutting down");
        }
    }

    /// Starts a unit's load balancer on its port: the manifest's `local.port`, else
    /// the one it had (stable across restarts), else a stable one below the
    /// ephemeral range. A remembered port that another program took moves, and
    /// says so; a pinned one that is taken is an error naming the holder.
    async fn start_balancer(
        &self,
        u: &Unit,
        h: &pantstack_lb::HttpSpec,
        saved: Option<u64>,
    ) -> Result<Arc<Balancer>, String> {
        let key = format!("{}/{}/{}", self.project, self.cfg.env, u.name);
        let saved = saved
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        let port = match (u.lb_port, saved) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => crate::ports::stable_port(&key).unwrap_or(0),
        };
        let log = Some(self.paths.access_log(&u.name));
        let taken = |port: u16, e: &std::io::Error| {
            let who = crate::ports::holder(port)
                .map(|w| format!(" (held by {w})"))
                .unwrap_or_default();
            format!("cannot listen for {} on 127.0.0.1:{port}: {e}{who}", u.name)
        };
        match Balancer::start(&u.name, port, h.clone(), log.clone()).await {
            Ok(lb) => Ok(lb),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && u.lb_port.is_none() => {
                let before = taken(port, &e);
                let new = crate::ports::stable_port(&key).unwrap_or(0);
                let lb = Balancer::start(&u.name, new, h.clone(), log)
                    .await
                    .map_err(|e| taken(new, &e))?;
                let msg = format!(
                    "{before}; it moves to port {}. Pin one with `local: {{ port: N }}` in modules/{}/infrastructure/pantstack.yaml",
                    lb.port, u.service
                );
                eprintln!("{msg}");
                self.emit(&u.name, "port-moved", msg);
                Ok(lb)
            }
            Err(e) => Err(format!(
                "{}; stop that program, or pin another port with `local: {{ port: N }}` in modules/{}/infrastructure/pantstack.yaml{}",
                taken(port, &e),
                u.service,
                if u.lb_port.is_some() {
                    " (it is pinned there now)"
                } else {
                    ""
                }
            )),
        }
    }

    /// Stops every build in progress with all it started (its process group).
    async fn stop_builds(&mut self) {
        for b in self.builds.drain(..) {
            let pgid = b.pgid.load(std::sync::atomic::Ordering::SeqCst);
            if pgid != 0 {
                task::signal_group(pgid, rustix::process::Signal::KILL);
            }
            b.handle.abort();
        }
    }

    fn all_stopped(&self) -> bool {
        self.units
            .values()
            .all(|rt| rt.tasks.is_empty() && rt.starting.is_empty())
    }

    pub fn ports(&self) -> Vec<(String, u16)> {
        self.units
            .values()
            .filter_map(|rt| rt.lb.as_ref().map(|l| (rt.name.clone(), l.port)))
            .collect()
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Serves the control socket and reconciles until `down` (or `shutdown`).
    /// Returns the environment's lock: the caller keeps it until the process exits
    /// (the AWS endpoint's thread may still hold its state for a moment).
    pub async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<state::Lock, String> {
        use std::os::unix::fs::PermissionsExt;
        let sock = self.paths.socket();
        let listener = tokio::net::UnixListener::bind(&sock)
            .map_err(|e| format!("cannot listen on {}: {e}", sock.display()))?;
        // The umask (state::secure) made it 0600 already; say it explicitly.
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(state::FILE_MODE))
            .map_err(|e| format!("cannot restrict {}: {e}", sock.display()))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Call>();
        let events = self.events.clone();
        let own = crate::control::own_uid();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let peer = stream.peer_cred().ok().map(|c| c.uid());
                        if crate::control::peer_allowed(peer, own) {
                            tokio::spawn(crate::control::serve(
                                stream,
                                tx.clone(),
                                events.subscribe(),
                            ));
                        } else {
                            tokio::spawn(crate::control::refuse(stream, peer));
                        }
                    }
                    // Out of descriptors (EMFILE) or an aborted connection: the
                    // socket must keep answering once descriptors are free again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if self.stopping {
                        self.stop_all();
                    }
                    self.tick().await;
                    if self.stopping && self.all_stopped() {
                        break;
                    }
                }
                Some(req) = rx.recv() => self.control(req).await,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.stopping = true;
                        self.stop_builds().await;
                    }
                }
            }
        }
        for rt in self.units.values() {
            if let Some(lb) = &rt.lb {
                lb.shutdown();
            }
        }
        // A deployment cut short by `down` ends as interrupted, in the history
        // and for whoever waits on it.
        let names: Vec<String> = self.units.keys().cloned().collect();
        for name in names {
            let Some(rt) = self.units.get_mut(&name) else {
                continue;
            };
            if let Some(d) = rt.deploy.take() {
                let record = interrupted(
                    &deploy_record(&d),
                    "the local cloud was stopped before the deployment ended".into(),
                );
                rt.history.push(record.clone());
                for w in d.waiters {
                    let _ = w.send(json!({ "final": true, "unit": name, "deployment": record }));
                }
            }
        }
        self.emit("-", "down", "every task stopped".into());
        self.save();
        let _ = std::fs::remove_file(&sock);
        for w in self.down_waiters.drain(..) {
            let _ = w.send(json!({ "done": true, "message": "stopped" }));
        }
        // Let the control connections flush their last line.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.aws.server.shutdown();
        Ok(self.lock)
    }
}

/// Removes this environment's images (found by their labels) that no kept
/// revision or running build refers to, built before build number `below`. An
/// image a container still uses stays: `docker rmi` without `-f` refuses it.
async fn prune_images(labels: Vec<(String, String)>, keep: Vec<String>, below: u64) {
    let mut args: Vec<String> = vec![
        "images".into(),
        "--format".into(),
        "{{.Repository}}:{{.Tag}}".into(),
    ];
    for (k, v) in &labels {
        args.push("--filter".into());
        args.push(format!("label={k}={v}"));
    }
    let Ok(out) = tokio::process::Command::new("docker")
        .args(&args)
        .stderr(std::process::Stdio::null())
        .output()
        .await
    else {
        return;
    };
    for image in String::from_utf8_lossy(&out.stdout).lines() {
        let built_before = image
            .rsplit_once("-b")
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .is_some_and(|n| n < below);
        if built_before && !keep.iter().any(|k| k == image) {
            let _ = tokio::process::Command::new("docker")
                .args(["rmi", image])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await;
        }
    }
}

//! One tick of a unit: observe its tasks and start jobs, plan with
//! `crate::core::tasks`, execute the actions; deployments end in `finish`.

use super::*;

impl Supervisor {
    /// Starts a task of `revision` as a background job (`task::start` waits for
    /// `docker run`): the tick that sees the job finished registers the task (or
    /// counts its failure). A start that cannot begin fails at once.
    pub(super) fn start_task(&mut self, name: &str, revision: u32) {
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
    pub(super) fn task_started(
        &mut self,
        name: &str,
        revision: u32,
        started: std::io::Result<Task>,
    ) {
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
    pub(super) async fn observe_starts(&mut self, name: &str) -> bool {
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
    pub(super) fn begin_stop(&mut self, name: &str, id: u64, reason: &str) {
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
        self.keep_logs();
        let names: Vec<String> = self.units.keys().cloned().collect();
        for name in names {
            self.tick_unit(&name).await;
        }
        self.collect_metrics().await;
    }

    /// Observe → plan → execute, twice: the lifecycle of the unit's tasks
    /// (`tasks::plan_tasks`), then its deployment or steady state
    /// (`tasks::plan_unit`).
    pub(super) async fn tick_unit(&mut self, name: &str) {
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
        if let Some((outcome, d)) = finished
            && let Some(d) = self.bake(name, &outcome, d, now)
        {
            self.finish(name, outcome, d);
            changed = true;
        }
        if changed {
            self.save();
        }
    }

    /// Executes the lifecycle's effects on a unit (`tasks::plan_tasks`). Signals
    /// and `docker` commands run in the background.
    pub(super) fn apply(&mut self, name: &str, actions: Vec<Action>, now: Millis) {
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

    /// A completed rollout of a unit with rollback alarms bakes before it ends,
    /// as ECS monitors deployment alarms after steady state for about the alarms'
    /// evaluation time: 3 periods, and 2 more so that the new revision's own
    /// periods fill the alarms' window. The deployment stays in progress (scale-in
    /// stays suspended) and a rollback alarm going to ALARM still fails it. Gives
    /// the deployment back when it has ended (no bake, or baked).
    fn bake(
        &mut self,
        name: &str,
        outcome: &Outcome,
        mut d: Deploy,
        now: Millis,
    ) -> Option<Deploy> {
        let bake_ms = self
            .units
            .get(name)
            .and_then(|rt| rt.revision(d.to))
            .filter(|r| r.unit.monitor.rollback_alarms && r.unit.http.is_some())
            .map(|r| 5 * r.unit.monitor.period_ms);
        let (Outcome::Completed, Some(bake_ms)) = (outcome, bake_ms) else {
            return Some(d);
        };
        match d.bake_until {
            Some(t) if now >= t => Some(d),
            Some(_) => {
                if let Some(rt) = self.units.get_mut(name) {
                    rt.deploy = Some(d);
                }
                None
            }
            None => {
                d.bake_until = Some(now + bake_ms);
                let msg = format!(
                    "deployment {}: revision {} serves; its rollback alarms are watched for {} s before it completes",
                    d.id,
                    d.to,
                    bake_ms / 1000
                );
                if let Some(rt) = self.units.get_mut(name) {
                    rt.deploy = Some(d);
                }
                self.emit(name, "deployment-bake", msg);
                self.save();
                None
            }
        }
    }

    pub(super) fn finish(&mut self, name: &str, outcome: Outcome, d: Deploy) {
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
    pub(super) fn keep_what_runs(&mut self, name: &str) {
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
}

//! What the supervisor answers on its control socket: `status`, and each typed
//! `control::Request` handled against the running units.

use super::*;

impl Supervisor {
    pub fn status(&self) -> Value {
        let units: Vec<Value> = self
            .units
            .values()
            .map(|rt| {
                let spot = self.spot_tasks_of(&rt.name);
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
                            "capacity": (t.phase == Phase::Running).then(|| if spot.contains(&t.task.id) { "FARGATE_SPOT" } else { "FARGATE" }),
                        })
                    }).collect::<Vec<_>>(),
                    "recently_stopped": rt.stopped.iter().rev().take(5).cloned().collect::<Vec<_>>(),
                    "last_deployment": rt.history.last().cloned(),
                })
            })
            .collect();
        json!({ "environment": self.cfg.env, "project": self.project, "pid": std::process::id(), "dashboard": self.dashboard_url, "units": units })
    }

    pub(super) fn units_of_service(&self, service: &str) -> Vec<String> {
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
    pub(super) async fn control(&mut self, call: Call) {
        use crate::control::Request;
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
            Request::Metrics {
                service,
                metric,
                since_s,
                period_s,
                stat,
            } => {
                let _ = reply.send(self.metrics_answer(
                    service.as_deref(),
                    metric.as_deref(),
                    since_s,
                    period_s,
                    stat.as_deref(),
                ));
            }
            Request::Activity { service } => {
                let _ = reply.send(self.activity_answer(service.as_deref()));
            }
            Request::Alarms { service } => {
                let _ = reply.send(self.alarms_answer(service.as_deref()));
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
                // Target tracking brings a count outside min..max back at its next
                // period: say so rather than let it look silently undone.
                let notes: Vec<String> = units
                    .iter()
                    .filter_map(|u| {
                        let rt = self.units.get(u)?;
                        let s = rt.revisions.last()?.unit.monitor.scaling.clone()?;
                        (count < s.min || count > s.max).then(|| {
                            format!(
                                "{u}: target tracking keeps it within {}..{} (scaling.min/max) and brings it back at its next metrics period; `local.autoscaling: false` keeps a manual count",
                                s.min, s.max
                            )
                        })
                    })
                    .collect();
                let _ = reply.send(
                    json!({ "done": true, "units": units, "desired": count, "notes": notes }),
                );
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
            Request::SpotInterrupt { service, task, all } => {
                let answer = self.spot_interrupt(&service, task, all);
                let _ = reply.send(answer);
            }
            Request::Backup { dir } if !dir.is_absolute() => {
                let error = format!(
                    "backup: {} is not an absolute path (the supervisor's working directory is not yours)",
                    dir.display()
                );
                let _ = reply.send(json!({ "done": true, "error": error }));
            }
            Request::Backup { dir } => {
                // Off the control loop: the snapshot holds the endpoint's locks
                // only while it images the state; copying the files takes longer.
                let core = self.aws.core.clone();
                let paths = Paths::new(&self.cfg.root, &self.cfg.env);
                let meta = crate::backup::Meta {
                    project: self.project.clone(),
                    environment: self.cfg.env.clone(),
                    region: self.aws.region.clone(),
                };
                tokio::spawn(async move {
                    let r = crate::backup::create(&core, &paths, &dir, &meta, "running").await;
                    let _ = reply.send(match r {
                        Ok(m) => json!({ "done": true, "manifest": m }),
                        Err(e) => json!({ "done": true, "error": e }),
                    });
                });
            }
            // Served by the control connection itself, from the event stream.
            Request::Events => {}
        }
    }

    pub(super) fn attach(&mut self, unit: &str, reply: mpsc::UnboundedSender<Value>) {
        if let Some(d) = self.units.get_mut(unit).and_then(|rt| rt.deploy.as_mut()) {
            d.waiters.push(reply);
        }
    }
}

//! The supervisor's life: its loop (ticks, control calls, signals), the load
//! balancers it starts, and the stop: tasks, builds and leftovers of a killed
//! supervisor.

use super::*;

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
pub(super) async fn cleanup_leftovers(saved: &SavedState) {
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
    pub(super) fn stop_all(&mut self) {
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
    pub(super) async fn start_balancer(
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
    pub(super) async fn stop_builds(&mut self) {
        for b in self.builds.drain(..) {
            let pgid = b.pgid.load(std::sync::atomic::Ordering::SeqCst);
            if pgid != 0 {
                task::signal_group(pgid, rustix::process::Signal::KILL);
            }
            b.handle.abort();
        }
    }

    pub(super) fn all_stopped(&self) -> bool {
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

    /// The web dashboard's address (`http://127.0.0.1:PORT/TOKEN/`), if it runs.
    pub fn dashboard_url(&self) -> Option<&str> {
        self.dashboard_url.as_deref()
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
        let dashboard = self
            .dashboard
            .take()
            .map(|d| d.serve(tx.clone(), self.events.subscribe(), self.paths.logs()));
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
        if let Some(d) = dashboard {
            d.abort();
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

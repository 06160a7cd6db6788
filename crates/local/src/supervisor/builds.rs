//! Revisions' builds: started as background jobs, observed when they end (a
//! revision becomes ready or failed), their artifacts and images pruned once no
//! kept revision refers to them.

use super::*;

impl Supervisor {
    /// Starts a build job in the background; returns its number.
    pub(super) fn start_build(&mut self, unit: &Unit, key: String) -> u64 {
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
    pub(super) fn image_labels(&self) -> Vec<(String, String)> {
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
    pub(super) fn root_tag(&self) -> String {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.cfg.root.to_string_lossy().bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        format!("{h:08x}")
    }

    /// Ends finished builds: their revisions become ready (or failed); shows the
    /// progress of long ones.
    pub(super) async fn poll_builds(&mut self) {
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
    pub(super) fn prune_artifacts(&mut self) {
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
}

/// Removes this environment's images (found by their labels) that no kept
/// revision or running build refers to, built before build number `below`. An
/// image a container still uses stays: `docker rmi` without `-f` refuses it.
pub(super) async fn prune_images(labels: Vec<(String, String)>, keep: Vec<String>, below: u64) {
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

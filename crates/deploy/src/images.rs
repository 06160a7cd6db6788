//! The images of a deployment: built with Docker (each manifest's `image.build`
//! step, then `docker build`, as the local Docker runtime does), tagged by the
//! seed's strategy and pushed to the project's ECR repository after logging in
//! through ECR's API.
//!
//! ECR tags are immutable. A tag that is already in the repository is the same
//! commit's image and is used as it is (nothing built or pushed). A working tree
//! with uncommitted changes gets tags of its own (`…-<sha>-d<image id>`), so an
//! uncommitted change never hides behind the commit's tag.

use crate::progress::Progress;
use crate::{Clients, service_error, why};
use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine;
use pantstack_local::build::{self, Built, Job};
use pantstack_local::spec::Unit;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// What the images are tagged from.
#[derive(Clone, Debug)]
pub struct Source {
    pub branch: String,
    pub sha: String,
    /// The working tree has uncommitted changes.
    pub dirty: bool,
}

/// One image to build: the units (roles) that run it and their tags.
#[derive(Clone, Debug)]
pub struct Image {
    pub service: String,
    /// (stack parameter, tag): `ImageTag` for the HTTP role, `WorkerImageTag` for
    /// the worker.
    pub tags: Vec<(String, String)>,
    pub unit: Unit,
}

/// Groups units by build (a service's web and worker roles of one codebase share
/// one build) and gives each role its tag.
pub fn plan(units: &[Unit], source: &Source) -> Result<Vec<Image>, String> {
    let mut by_key: BTreeMap<String, Image> = BTreeMap::new();
    for u in units {
        let worker = u.role == "worker";
        let tag = pantstack_model::tag::branch_tag(&u.service, worker, &source.branch, &source.sha)
            .map_err(|e| format!("cannot tag {}: {e}", u.name))?;
        let param = if worker { "WorkerImageTag" } else { "ImageTag" };
        let key = build::key(u).unwrap_or_else(|| u.name.clone());
        by_key
            .entry(key)
            .or_insert_with(|| Image {
                service: u.service.clone(),
                tags: Vec::new(),
                unit: u.clone(),
            })
            .tags
            .push((param.to_string(), tag));
    }
    Ok(by_key.into_values().collect())
}

/// Logs Docker in to the registry through ECR's API; the host to push to.
pub async fn login(c: &Clients) -> Result<String, String> {
    let out = c
        .ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| format!("cannot get an ECR login: {}", why(&e)))?;
    let data = out
        .authorization_data()
        .first()
        .ok_or("ECR returned no authorization data")?;
    let token = data.authorization_token().unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|e| format!("ECR's authorization token is not base64: {e}"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| "ECR's authorization token is not text")?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("ECR's authorization token is not user:password")?;
    let endpoint = data.proxy_endpoint().unwrap_or_default();
    let host = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut child = Command::new("docker")
        .args(["login", "--username", user, "--password-stdin", &host])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(password.as_bytes())
            .await
            .map_err(|e| format!("docker login: {e}"))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| format!("docker login {host} did not finish in 60 s"))?
        .map_err(|e| format!("docker login: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker login {host} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(host)
}

/// Which of `tags` the repository has.
pub async fn existing(
    c: &Clients,
    repository: &str,
    tags: &[String],
) -> Result<Vec<String>, String> {
    let mut have = Vec::new();
    for t in tags {
        let r = c
            .ecr
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(t).build())
            .send()
            .await;
        match r {
            Ok(_) => have.push(t.clone()),
            Err(e) => match service_error(&e) {
                Some((code, _)) if code == "ImageNotFoundException" => {}
                _ => return Err(format!("cannot look up image {t}: {}", why(&e))),
            },
        }
    }
    Ok(have)
}

async fn docker(args: &[&str], log: &Path) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run docker: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if let Ok(mut f) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .await
    {
        let _ = f
            .write_all(format!("$ docker {}\n{text}", args.join(" ")).as_bytes())
            .await;
    }
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        Err(format!(
            "`docker {}` failed: {} (log: {})",
            args.first().copied().unwrap_or_default(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
            log.display()
        ))
    }
}

/// Refuses to build or push once the run lost its deploy lock
/// (`Clients::lock_watch`): the run is stopping, and another one may be pushing
/// the same tags.
fn unless_lock_lost(c: &Clients, what: &str) -> Result<(), String> {
    match c.lock_watch.lost() {
        Some(why) => Err(format!("{what}: {why}, so this run stopped before it")),
        None => Ok(()),
    }
}

/// Builds and pushes one image (unless its commit's tags are in the repository);
/// the tags its roles run, by stack parameter. Neither is started once the run
/// lost its deploy lock.
pub async fn ship(
    c: &Clients,
    image: &Image,
    source: &Source,
    repository_uri: &str,
    push_host: &str,
    logs: &Path,
    p: &Progress,
) -> Result<Vec<(String, String)>, String> {
    let key = format!("image {}", image.service);
    let repository = repository_uri
        .split_once('/')
        .map(|(_, r)| r)
        .unwrap_or(repository_uri);
    let wanted: Vec<String> = image.tags.iter().map(|(_, t)| t.clone()).collect();
    if !source.dirty {
        let have = existing(c, repository, &wanted).await?;
        if have.len() == wanted.len() {
            p.set(&key, &format!("{} already in ECR", wanted.join(", ")));
            return Ok(image.tags.clone());
        }
    }
    unless_lock_lost(c, "not built")?;
    p.set(
        &key,
        &format!("building ({})", build::describe(&image.unit)),
    );
    let log = logs.join(format!("build-{}.log", image.service));
    let local = format!(
        "pantstack-aws/{}:{}",
        image.service,
        source.sha.get(..12).unwrap_or(&source.sha)
    );
    let job = Job {
        id: 0,
        unit: image.unit.clone(),
        log: log.clone(),
        artifacts: PathBuf::new(),
        image: local.clone(),
        labels: vec![("pantstack.service".into(), image.service.clone())],
        timeout: Duration::from_millis(image.unit.build_timeout_ms.max(60_000)),
        pgid: Arc::new(AtomicU32::new(0)),
    };
    match build::run(job).await? {
        Built::Image(_) => {}
        Built::Dir(_) => return Err("the build produced no image".into()),
    }
    let mut tags = image.tags.clone();
    if source.dirty {
        let id = docker(&["image", "inspect", "--format", "{{.Id}}", &local], &log).await?;
        let short: String = id.trim_start_matches("sha256:").chars().take(7).collect();
        for (_, t) in &mut tags {
            t.truncate(128 - 9);
            t.push_str(&format!("-d{short}"));
        }
    }
    let host_repo = format!("{push_host}/{repository}");
    for (_, t) in &tags {
        unless_lock_lost(c, &format!("{t} not pushed"))?;
        p.set(&key, &format!("pushing {t}"));
        let target = format!("{host_repo}:{t}");
        docker(&["tag", &local, &target], &log).await?;
        let pushed = docker(&["push", &target], &log).await;
        // The registry's name for the image was only needed to push it.
        let _ = docker(&["rmi", &target], &log).await;
        // The same image pushed by a concurrent run under an immutable tag is there.
        if let Err(e) = pushed {
            if !existing(c, repository, std::slice::from_ref(t))
                .await?
                .is_empty()
            {
                continue;
            }
            return Err(e);
        }
    }
    p.set(
        &key,
        &format!(
            "pushed {}",
            tags.iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(tags)
}

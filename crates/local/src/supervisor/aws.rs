//! The environment's AWS endpoint as the supervisor runs it: opened on the
//! recorded port with the manifests' queues, DLQs and buckets, the process's
//! open-file limit raised, the task credentials it hands to each unit.

use super::*;

/// The endpoint and what tasks need to reach it.
pub struct Aws {
    pub core: Arc<pantstack_endpoint::Core>,
    pub server: pantstack_endpoint::http::Server,
    pub region: String,
}

impl Aws {
    /// `AWS_*` variables of a unit's tasks: the endpoint, region and its own
    /// credentials (never written to state or logs).
    pub(super) fn task_env(&self, unit: &str) -> Vec<(String, String)> {
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
pub(super) fn raise_nofile_limit() {
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
pub(super) fn compact_min_bytes() -> u64 {
    std::env::var("PANTSTACK_COMPACT_MIN_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(pantstack_endpoint::DEFAULT_COMPACT_MIN)
}

/// How long a day of S3 lifecycle rules lasts locally:
/// `PANTSTACK_S3_LIFECYCLE_DAY_SECONDS` (whole seconds, at least 1), else a day
/// as on AWS.
pub(super) fn lifecycle_day() -> Option<Duration> {
    std::env::var("PANTSTACK_S3_LIFECYCLE_DAY_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s >= 1)
        .map(Duration::from_secs)
}

/// Opens the environment's AWS state, serves it on its recorded port and creates
/// the manifests' queues.
pub(super) async fn start_aws(
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

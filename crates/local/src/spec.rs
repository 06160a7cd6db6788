//! What the local cloud runs, derived from the model: one `Unit` per role of a
//! service (`api` for its HTTP role, `api-worker` for its worker), with the settings
//! of the environment resolved.

use pantstack_endpoint::iam::Policy;
use pantstack_model::Monorepo;
use pantstack_model::ServiceUnit;
use pantstack_model::physical::{Names, queue_url};
use pantstack_model::refs::{self, Kind, Reference};
use pantstack_model::service::Service;
use pantstack_model::settings::{Layer, keys};
use std::collections::HashMap;
use std::path::PathBuf;

use pantstack_lb::balance::Algorithm;
use pantstack_lb::health::Thresholds;
use pantstack_lb::spec::{HttpSpec, Matcher, Rule};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Process,
    Docker,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Docker => "docker",
        }
    }
}

/// Everything that makes a revision: a change of any field is a new revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// `api` or `api-worker`.
    pub name: String,
    pub service: String,
    pub role: &'static str,
    /// Module directory (`modules/<service>`), absolute.
    pub dir: PathBuf,
    pub command: Vec<String>,
    /// The container command (Docker runtime).
    pub container_command: Option<Vec<String>>,
    /// Container port (Docker runtime) — the process runtime picks a free port.
    pub container_port: u16,
    pub image_dockerfile: String,
    pub image_context: String,
    pub image_build: Option<Vec<String>>,
    /// `local.build` (process runtime): the revision's build phase.
    pub build: Option<Vec<String>>,
    pub build_timeout_ms: u64,
    /// `local.port`: the load balancer's port, pinned by the manifest.
    pub lb_port: Option<u16>,
    /// `calls:`: (variable, callee unit) — the variable holds the callee's load
    /// balancer URL (on AWS: its Service Connect name).
    pub calls: Vec<(String, String)>,
    /// Fargate task size: CPU units (1024 = 1 vCPU) and MiB, enforced on
    /// containers as Fargate does.
    pub cpu: u32,
    pub memory_mib: u32,
    pub env: Vec<(String, String)>,
    /// Declared secrets: (environment variable, SSM parameter), resolved at task
    /// start (ECS `secrets`), never stored with the unit.
    pub secrets: Vec<(String, String)>,
    pub http: Option<HttpSpec>,
    pub runtime: Runtime,
    pub desired: u32,
    pub min_healthy_percent: u32,
    pub max_percent: u32,
    pub circuit_breaker: bool,
    /// Overrides ECS's threshold (`circuitBreakerThreshold`).
    pub breaker_threshold: Option<u32>,
    pub rollback: bool,
    pub stop_timeout_ms: u64,
    pub healthy_after_ms: u64,
    /// How long and how much of its log group is kept (`crate::logs`).
    pub logs: crate::logs::Retention,
    /// The capacity provider strategy its tasks are placed by (Fargate / Fargate Spot).
    pub capacity: crate::core::spot::Strategy,
    /// Metrics period, target tracking and alarms (`crate::monitor`).
    pub monitor: crate::monitor::Monitor,
}

/// What the local cloud's AWS endpoint gives the units: its URL (queue URLs are
/// built from it). Empty before the endpoint is up (then queue URLs are relative).
#[derive(Clone, Debug, Default)]
pub struct Aws {
    pub endpoint: String,
}

/// The physical name of a service's queue (the same as on AWS).
pub fn queue_name(project: &str, env: &str, service: &Service, queue: &str, dlq: bool) -> String {
    let fifo = service.queues.iter().any(|q| q.name == queue && q.fifo);
    Names::new(project, env).queue(&service.name, queue, dlq, fifo)
}

/// The local name of a service's bucket.
pub fn bucket_name(project: &str, env: &str, service: &str, bucket: &str) -> String {
    format!("{project}-{env}-{service}-{bucket}").to_ascii_lowercase()
}

/// The SSM parameter a declared secret is read from (the same path as on AWS).
pub fn secret_parameter(project: &str, env: &str, service: &str, secret: &str) -> String {
    format!("{}/{secret}", Names::new(project, env).ssm_path(service))
}

/// `${queue:jobs}` → the queue's URL at the local endpoint, `${dlq:jobs}` its DLQ's,
/// `${bucket:results}` the bucket's name; `${queue:api.jobs}` and the like name
/// another service's (granted: `check` refused the monorepo otherwise).
fn resolve_refs(
    project: &str,
    env: &str,
    repo: &Monorepo,
    service: &Service,
    aws: &Aws,
    value: &str,
) -> String {
    // The owning service and the resource's own name.
    let owner_of = |r: &Reference<'_>| -> (&Service, String) {
        match r.owner() {
            Some((o, n)) => (
                repo.services
                    .iter()
                    .find(|u| u.service.name == o)
                    .map_or(service, |u| &u.service),
                n.to_string(),
            ),
            None => (service, r.name.to_string()),
        }
    };
    let url = |r: &Reference<'_>, dlq: bool| {
        let (owner, q) = owner_of(r);
        queue_url(
            &aws.endpoint,
            pantstack_endpoint::ACCOUNT,
            &queue_name(project, env, owner, &q, dlq),
        )
    };
    refs::substitute(value, |r| {
        Some(match r.known()? {
            Kind::Queue => url(r, false),
            Kind::Dlq => url(r, true),
            Kind::Bucket => {
                let (owner, b) = owner_of(r);
                bucket_name(project, env, &owner.name, &b)
            }
        })
    })
}

/// A queue `pantstack up` creates: its name, attributes, and its DLQ (name and
/// maxReceiveCount), created before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDecl {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub dead_letter: Option<(String, u32)>,
}

/// The name of a service's worker unit.
pub fn worker_unit(service: &str) -> String {
    format!("{service}-worker")
}

/// Every unit's name (each gets its own AWS credentials), without resolving settings.
pub fn unit_names(repo: &Monorepo) -> Vec<String> {
    let mut out = Vec::new();
    for u in &repo.services {
        if u.service.http.is_some() {
            out.push(u.service.name.clone());
        }
        if u.service.worker.is_some() {
            out.push(worker_unit(&u.service.name));
        }
    }
    out
}

/// The units of a service: its HTTP role (named as the service) and its worker.
fn units_named(repo: &Monorepo, service: &str) -> Vec<String> {
    let Some(u) = repo.services.iter().find(|u| u.service.name == service) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if u.service.http.is_some() {
        out.push(service.to_string());
    }
    if u.service.worker.is_some() {
        out.push(worker_unit(service));
    }
    out
}

/// Each unit's identity-based policy at the local endpoint: what its service's task
/// role may do on AWS (`pantstack_model::iam`, the lists `synth` writes), on the
/// local names of its own queues and their DLQs, buckets and parameter path, and
/// `cloudwatch:PutMetricData` into its own metrics namespace (the condition
/// `cloudwatch:namespace`, carried as `cloudwatch::namespace_resource`).
pub fn policies(repo: &Monorepo, env: &str, region: &str) -> HashMap<String, Policy> {
    use pantstack_endpoint::ACCOUNT;
    use pantstack_endpoint::iam::{bucket_arn, parameter_arn, queue_arn};
    use pantstack_model::iam;
    let project = &repo.foundation.project.value;
    let mut out = HashMap::new();
    for u in &repo.services {
        let svc = &u.service;
        let queue = |name: String| queue_arn(region, ACCOUNT, &name);
        let mut queues = Vec::new();
        for q in &svc.queues {
            queues.push(queue(queue_name(project, env, svc, &q.name, false)));
            if q.dead_letter.is_some() {
                queues.push(queue(queue_name(project, env, svc, &q.name, true)));
            }
        }
        let buckets: Vec<String> = svc
            .buckets
            .iter()
            .map(|b| bucket_arn(&bucket_name(project, env, &svc.name, &b.name)))
            .collect();
        let objects = buckets.iter().map(|b| format!("{b}/*")).collect();
        let parameters = if svc.secrets.iter().all(|s| s.from.is_some()) {
            Vec::new()
        } else {
            let path = Names::new(project, env).ssm_path(&svc.name);
            vec![
                parameter_arn(region, ACCOUNT, &path),
                parameter_arn(region, ACCOUNT, &format!("{path}/*")),
            ]
        };
        let namespace = Names::new(project, env).metrics_namespace(&svc.name);
        let policy = Policy::default()
            .allow(
                iam::METRICS_ACTIONS,
                vec![pantstack_endpoint::cloudwatch::namespace_resource(
                    &namespace,
                )],
            )
            .allow(iam::QUEUE_ACTIONS, queues)
            .allow(iam::BUCKET_ACTIONS, buckets)
            .allow(iam::OBJECT_ACTIONS, objects)
            .allow(iam::PARAMETER_ACTIONS, parameters);
        if svc.http.is_some() {
            out.insert(svc.name.clone(), policy.clone());
        }
        if svc.worker.is_some() {
            out.insert(worker_unit(&svc.name), policy);
        }
    }
    // Queue and bucket policies: what each owner's `grants:` allow another
    // service's units (its task role on AWS), on the owner's resources.
    for u in &repo.services {
        let owner = &u.service;
        for q in &owner.queues {
            let mut arns = vec![queue_arn(
                region,
                ACCOUNT,
                &queue_name(project, env, owner, &q.name, false),
            )];
            if q.dead_letter.is_some() {
                arns.push(queue_arn(
                    region,
                    ACCOUNT,
                    &queue_name(project, env, owner, &q.name, true),
                ));
            }
            for g in &q.grants {
                let (actions, _) = iam::grant_actions(g.access);
                for unit in units_named(repo, &g.to.value) {
                    if let Some(p) = out.remove(&unit) {
                        out.insert(unit, p.grant(&actions, arns.clone()));
                    }
                }
            }
        }
        for b in &owner.buckets {
            let arn = bucket_arn(&bucket_name(project, env, &owner.name, &b.name));
            for g in &b.grants {
                let (on_bucket, on_objects) = iam::grant_actions(g.access);
                for unit in units_named(repo, &g.to.value) {
                    if let Some(p) = out.remove(&unit) {
                        let p = p
                            .grant(&on_bucket, vec![arn.clone()])
                            .grant(&on_objects, vec![format!("{arn}/*")]);
                        out.insert(unit, p);
                    }
                }
            }
        }
    }
    out
}

/// The region of an environment's local AWS endpoint: its foundation's, else us-east-1.
pub fn region(repo: &Monorepo, env: &str) -> String {
    repo.region_for(Monorepo::stack_name(env))
        .map(|(r, _)| r)
        .unwrap_or_else(|| "us-east-1".to_string())
}

/// Every bucket of the environment's manifests: its local name and whether
/// versioning is on.
pub fn buckets(repo: &Monorepo, env: &str) -> Vec<(String, bool, Option<i64>)> {
    let project = &repo.foundation.project.value;
    repo.services
        .iter()
        .flat_map(|u| {
            u.service.buckets.iter().map(|b| {
                (
                    bucket_name(project, env, &u.service.name, &b.name),
                    b.versioning,
                    b.noncurrent_expiry_days,
                )
            })
        })
        .collect()
}

/// Every queue of the environment's manifests, each DLQ before its queue.
pub fn queues(repo: &Monorepo, env: &str) -> Vec<QueueDecl> {
    let project = &repo.foundation.project.value;
    let mut out = Vec::new();
    for u in &repo.services {
        let svc = &u.service;
        for q in &svc.queues {
            let mut attrs = vec![
                (
                    "VisibilityTimeout".to_string(),
                    q.visibility_timeout_secs.to_string(),
                ),
                (
                    "MessageRetentionPeriod".into(),
                    q.retention_secs.to_string(),
                ),
                ("DelaySeconds".into(), q.delay_secs.to_string()),
                (
                    "ReceiveMessageWaitTimeSeconds".into(),
                    q.receive_wait_secs.to_string(),
                ),
                ("MaximumMessageSize".into(), q.max_message_bytes.to_string()),
            ];
            if q.fifo {
                attrs.push(("FifoQueue".into(), "true".into()));
                attrs.push((
                    "ContentBasedDeduplication".into(),
                    q.content_based_deduplication.to_string(),
                ));
            }
            let dead_letter = q.dead_letter.as_ref().map(|d| {
                let name = queue_name(project, env, svc, &q.name, true);
                let mut dattrs = vec![(
                    "MessageRetentionPeriod".to_string(),
                    d.retention_secs.to_string(),
                )];
                if q.fifo {
                    dattrs.push(("FifoQueue".into(), "true".into()));
                }
                out.push(QueueDecl {
                    name: name.clone(),
                    attributes: dattrs,
                    dead_letter: None,
                });
                (name, d.max_receive_count.clamp(1, 1000) as u32)
            });
            out.push(QueueDecl {
                name: queue_name(project, env, svc, &q.name, false),
                attributes: attrs,
                dead_letter,
            });
        }
    }
    out
}

/// The units of every service in `env`. `runtime` overrides the manifests'.
pub fn units(repo: &Monorepo, env: &str, runtime: Option<Runtime>, aws: &Aws) -> Vec<Unit> {
    repo.services
        .iter()
        .flat_map(|u| units_of(repo, u, env, runtime, aws))
        .collect()
}

pub fn units_of(
    repo: &Monorepo,
    u: &ServiceUnit,
    env: &str,
    runtime: Option<Runtime>,
    aws: &Aws,
) -> Vec<Unit> {
    let svc = &u.service;
    let cfg = repo.resolve_service(u, env, &Layer::default());
    let project = &repo.foundation.project.value;
    let dir = repo.files.root.join(&svc.dir);
    let runtime = runtime.unwrap_or(match cfg.get(keys::RUNTIME) {
        "docker" => Runtime::Docker,
        _ => Runtime::Process,
    });
    let mut env_vars: Vec<(String, String)> = vec![
        ("SERVICE_NAME".into(), svc.name.clone()),
        ("ENVIRONMENT".into(), env.to_string()),
        (
            pantstack_model::iam::METRICS_NAMESPACE_VAR.into(),
            Names::new(project, env).metrics_namespace(&svc.name),
        ),
    ];
    for (k, v) in &svc.variables_for(env) {
        env_vars.push((k.clone(), resolve_refs(project, env, repo, svc, aws, v)));
    }
    let env_name = env;
    let base = |name: String,
                role: &'static str,
                command: Vec<String>,
                container_command: Option<Vec<String>>,
                http: Option<HttpSpec>,
                desired: i64| {
        let mut env = env_vars.clone();
        env.push(("PANTSTACK_ROLE".into(), role.to_string()));
        env.sort();
        Unit {
            name,
            service: svc.name.clone(),
            role,
            dir: dir.clone(),
            command,
            container_command,
            container_port: cfg.get(keys::PORT) as u16,
            image_dockerfile: svc.image.dockerfile.clone(),
            image_context: svc.image.context.clone(),
            image_build: svc.image.build.clone(),
            build: svc.local_build.clone(),
            build_timeout_ms: cfg.get(keys::LOCAL_BUILD_TIMEOUT) * 1000,
            lb_port: http
                .as_ref()
                .and(cfg.get(keys::LOCAL_PORT))
                .and_then(|p| u16::try_from(p).ok()),
            calls: svc
                .calls
                .iter()
                .map(|c| {
                    (
                        pantstack_model::service::call_variable(&c.value),
                        c.value.clone(),
                    )
                })
                .collect(),
            cpu: cfg.get(keys::CPU) as u32,
            memory_mib: cfg.get(keys::MEMORY) as u32,
            env,
            secrets: svc
                .secrets
                .iter()
                .map(|x| {
                    (
                        x.name.clone(),
                        secret_parameter(project, env_name, x.owner(&svc.name), &x.name),
                    )
                })
                .collect(),
            http,
            runtime,
            desired: desired.max(0) as u32,
            min_healthy_percent: cfg.get(keys::MIN_HEALTHY_PERCENT) as u32,
            max_percent: cfg.get(keys::MAX_PERCENT) as u32,
            circuit_breaker: cfg.get(keys::CIRCUIT_BREAKER),
            breaker_threshold: cfg.get(keys::CIRCUIT_BREAKER_THRESHOLD).map(|t| t as u32),
            rollback: cfg.get(keys::ROLLBACK),
            stop_timeout_ms: cfg.get(keys::LOCAL_STOP_TIMEOUT) * 1000,
            healthy_after_ms: cfg.get(keys::LOCAL_HEALTHY_AFTER) * 1000,
            logs: crate::logs::Retention {
                max_bytes: cfg.get(keys::LOCAL_LOG_MAX_MIB).max(1) as u64 * 1024 * 1024,
                max_age_secs: cfg.get(keys::LOG_RETENTION_DAYS).max(0) as u64 * 86_400,
            },
            capacity: crate::core::spot::Strategy {
                on_demand_base: cfg.get(keys::ON_DEMAND_BASE).max(0) as u32,
                on_demand_weight: cfg.get(keys::ON_DEMAND_WEIGHT).max(0) as u32,
                spot_weight: cfg.get(keys::SPOT_WEIGHT).max(0) as u32,
            },
            monitor: crate::monitor::of(
                project,
                env_name,
                svc,
                &cfg,
                role,
                role == "http" || svc.http.is_none(),
            ),
        }
    };
    let desired = cfg.get(keys::LOCAL_DESIRED_COUNT);
    // The worker role: `{service}-worker`, with its own image when it has one.
    let worker = |w: &pantstack_model::service::Worker| {
        let mut wu = base(
            worker_unit(&svc.name),
            "worker",
            w.local.clone().unwrap_or_default(),
            w.command.clone(),
            None,
            desired,
        );
        if let Some(img) = &w.image {
            wu.image_dockerfile = img.dockerfile.clone();
            wu.image_context = img.context.clone();
            wu.image_build = img.build.clone();
        }
        wu
    };
    let mut units = Vec::new();
    if let Some(h) = &svc.http {
        let spec = HttpSpec {
            health_path: cfg.get(keys::HEALTH_CHECK_PATH).to_string(),
            matcher: Matcher::parse(cfg.get(keys::HEALTH_CHECK_MATCHER)),
            interval_ms: cfg.get(keys::LOCAL_HEALTH_CHECK_INTERVAL) * 1000,
            timeout_ms: cfg.get(keys::LOCAL_HEALTH_CHECK_TIMEOUT) * 1000,
            thresholds: Thresholds {
                healthy: cfg.get(keys::LOCAL_HEALTHY_THRESHOLD) as u32,
                unhealthy: cfg.get(keys::LOCAL_UNHEALTHY_THRESHOLD) as u32,
            },
            grace_ms: cfg.get(keys::LOCAL_GRACE_PERIOD) * 1000,
            deregistration_ms: cfg.get(keys::LOCAL_DEREGISTRATION_DELAY) * 1000,
            algorithm: Algorithm::parse(cfg.get(keys::LOAD_BALANCING_ALGORITHM)),
            idle_timeout_ms: cfg.get(keys::IDLE_TIMEOUT) * 1000,
            rules: h
                .rules
                .iter()
                .map(|r| Rule {
                    path: r.path.clone(),
                    host: r.host.clone(),
                })
                .collect(),
        };
        units.push(base(
            svc.name.clone(),
            "http",
            h.local.clone().unwrap_or_default(),
            h.command.clone(),
            Some(spec),
            desired,
        ));
    }
    units.extend(svc.worker.as_ref().map(worker));
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_gets_its_task_roles_policy_on_local_names() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let loaded = pantstack_model::load(&root);
        let p = policies(&loaded.repo, "test", "us-east-1");
        let mut units: Vec<&String> = p.keys().collect();
        units.sort();
        assert_eq!(units, ["api", "api-worker", "reports"]);
        assert_eq!(p["api"], p["api-worker"], "one task role for both units");
        // reports: what the api grants it (read its bucket), nothing else of the api.
        let reports = &p["reports"];
        assert!(reports.allows(
            "s3:GetObject",
            "arn:aws:s3:::shop-test-api-results/jobs/1.json"
        ));
        assert!(reports.allows("s3:ListBucket", "arn:aws:s3:::shop-test-api-results"));
        assert!(!reports.allows(
            "s3:PutObject",
            "arn:aws:s3:::shop-test-api-results/jobs/1.json"
        ));
        assert!(!reports.allows(
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:000000000000:shop-test-api-jobs"
        ));
        let q = |n: &str| format!("arn:aws:sqs:us-east-1:000000000000:{n}");
        let api = &p["api"];
        for action in ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"] {
            assert!(api.allows(action, &q("shop-test-api-jobs")), "{action}");
            assert!(api.allows(action, &q("shop-test-api-jobs-dlq")), "{action}");
            assert!(!api.allows(action, &q("shop-test-other-jobs")), "{action}");
        }
        assert!(!api.allows("sqs:PurgeQueue", &q("shop-test-api-jobs")));
        assert!(api.allows("s3:ListBucket", "arn:aws:s3:::shop-test-api-results"));
        assert!(api.allows("s3:PutObject", "arn:aws:s3:::shop-test-api-results/a/b"));
        assert!(!api.allows("s3:PutObject", "arn:aws:s3:::shop-test-api-results"));
        assert!(!api.allows(
            "s3:DeleteObjectVersion",
            "arn:aws:s3:::shop-test-api-results/a"
        ));
        let param = "arn:aws:ssm:us-east-1:000000000000:parameter/shop/test/api/API_TOKEN";
        assert!(api.allows("ssm:GetParameter", param));
        assert!(!api.allows("ssm:PutParameter", param));
        assert!(!api.allows(
            "ssm:GetParameter",
            "arn:aws:ssm:us-east-1:000000000000:parameter/shop/test/other/API_TOKEN"
        ));
        // Metrics: each service into its own namespace only, as its task role.
        let ns = pantstack_endpoint::cloudwatch::namespace_resource;
        assert!(api.allows("cloudwatch:PutMetricData", &ns("shop/test/api")));
        assert!(!api.allows("cloudwatch:PutMetricData", &ns("shop/test/reports")));
        assert!(reports.allows("cloudwatch:PutMetricData", &ns("shop/test/reports")));
        assert!(!reports.allows("cloudwatch:PutMetricData", &ns("shop/test/api")));
        assert!(!api.allows("cloudwatch:ListMetrics", "*"));
    }

    #[test]
    fn references_name_local_resources() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let loaded = pantstack_model::load(&root);
        let svc = &loaded.repo.services[0].service;
        let aws = Aws {
            endpoint: "http://127.0.0.1:9".into(),
        };
        assert_eq!(
            resolve_refs(
                "shop",
                "test",
                &loaded.repo,
                svc,
                &aws,
                "q=${queue:jobs} d=${dlq:jobs} b=${bucket:results}"
            ),
            "q=http://127.0.0.1:9/000000000000/shop-test-api-jobs d=http://127.0.0.1:9/000000000000/shop-test-api-jobs-dlq b=shop-test-api-results"
        );
        let qs = queues(&loaded.repo, "test");
        assert_eq!(qs[0].name, "shop-test-api-jobs-dlq", "the DLQ first");
        assert_eq!(
            qs[1].dead_letter,
            Some(("shop-test-api-jobs-dlq".into(), 3))
        );
        assert_eq!(
            secret_parameter("shop", "test", "api", "API_TOKEN"),
            "/shop/test/api/API_TOKEN"
        );
    }
}

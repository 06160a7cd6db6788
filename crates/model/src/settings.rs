//! Every tunable setting, in one table.
//!
//! A setting has one name (`key`), used as `pantstack:<key>` in stack files and with
//! `--set <key>=<value>` on the command line, and one place in the manifest
//! (`manifest`, a dotted path). Its value resolves as
//! default ← manifest ← stack file ← CLI override, and each layer is validated the
//! same way, by `kind`. Adding a setting is adding a row.
//!
//! Code reads a setting through its typed key, generated from the same row:
//! `resolved.get(keys::DEPLOYMENT_STRATEGY)` is a `&str`, the row's default when
//! unset. Keys are compile-time names; only user input (stack files, `--set`) is
//! looked up by string ([`by_key`]).

use pantstack_manifest::Span;

pub mod typed;

pub use typed::Key;

/// Which part of a service a setting applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// Every service.
    Service,
    /// Services with an `http:` section.
    Http,
    /// Services with a `worker:` section.
    Worker,
    /// Services with both `http:` and `worker:` (the worker's own scaling).
    WorkerBeside,
    /// The foundation layer.
    Foundation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    /// One of a fixed set of integers (e.g. CloudWatch log retention days).
    IntSet(&'static [i64]),
    /// Whole seconds.
    Duration {
        min: u64,
        max: u64,
    },
    Choice(&'static [&'static str]),
    Bool,
    /// Free text checked by a named rule.
    Text(TextRule),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextRule {
    /// An HTTP path starting with `/`.
    HttpPath,
    /// ALB matcher: `200`, `200,204`, `200-299` (codes 200..=499).
    Matcher,
    /// An ARN (`arn:aws...:...`).
    Arn,
    /// An IPv4 CIDR block with a prefix of /16../24.
    Cidr,
    /// An AWS region code (`eu-west-1`).
    Region,
    /// A shell command line (`sh -c`): not empty, one line, at most 4096 bytes.
    Command,
    /// An `http://` URL on a loopback address (`127.0.0.1`, `[::1]`, `localhost`)
    /// with a port: where the local cloud may send requests of its own.
    LoopbackUrl,
}

/// A default value (const-constructible).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    Int(i64),
    Duration(u64),
    Text(&'static str),
    Bool(bool),
    /// No value unless set (the feature is off).
    Unset,
}

/// A resolved value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Int(i64),
    Duration(u64),
    Text(String),
    Bool(bool),
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Int(i) => write!(f, "{i}"),
            Val::Duration(s) => f.write_str(&pantstack_manifest::read::format_duration(*s)),
            Val::Text(t) => f.write_str(t),
            Val::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub manifest: &'static str,
    pub applies: Applies,
    pub kind: Kind,
    pub default: Default,
    /// Where the default differs from AWS's, AWS's value (documented, never hidden).
    pub aws_default: Option<&'static str>,
    pub doc: &'static str,
}

impl Setting {
    pub fn default_val(&self) -> Option<Val> {
        match self.default {
            Default::Int(i) => Some(Val::Int(i)),
            Default::Duration(s) => Some(Val::Duration(s)),
            Default::Text(t) => Some(Val::Text(t.to_string())),
            Default::Bool(b) => Some(Val::Bool(b)),
            Default::Unset => None,
        }
    }
}

const LOG_RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Builds the table and a typed key per row from one list. A row is
///
/// `NAME: Shape [= default], "key", "manifest.path", Applies, kind, "doc" [, aws: "AWS default"];`
///
/// giving the row of [`SETTINGS`] and `keys::NAME`, a [`Key<Shape>`] that reads the
/// setting (`Key<Option<Shape>>` when the row has no default: off unless set). The
/// shape must fit the kind (`Int`: `Int`/`IntSet`, `Secs`: `Duration`, `Choice`,
/// `Text`, `Bool`), which the compiler checks.
macro_rules! settings {
    (@default $shape:ident, $default:expr) => { typed::$shape::table_default($default) };
    (@default $shape:ident) => { Default::Unset };
    (@key $shape:ident, $default:expr) => { Key<typed::$shape> };
    (@key $shape:ident) => { Key<Option<typed::$shape>> };
    (@key_default $default:expr) => { $default };
    (@key_default) => { () };
    (@aws $aws:literal) => { Some($aws) };
    (@aws) => { None };
    ($(
        $name:ident: $shape:ident $(= $default:expr)?,
        $key:literal, $manifest:literal, $applies:ident, $kind:expr, $doc:literal
        $(, aws: $aws:literal)?;
    )*) => {
        /// Each row's index in [`SETTINGS`], named as its key.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        enum Row {
            $($name),*
        }

        /// The table. Order is the order `pantstack config` shows.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                key: $key,
                manifest: $manifest,
                applies: Applies::$applies,
                kind: $kind,
                default: settings!(@default $shape $(, $default)?),
                aws_default: settings!(@aws $($aws)?),
                doc: $doc,
            }
        ),*];

        $(
            const _: () = assert!(
                typed::fits::<typed::$shape>(SETTINGS[Row::$name as usize].kind),
                concat!("the kind of setting `", $key, "` is not read as ", stringify!($shape)),
            );
        )*

        /// One typed key per setting: `resolved.get(keys::CPU)`.
        pub mod keys {
            use super::typed::{self, Key};
            use super::{Row, SETTINGS};
            $(
                #[doc = concat!("`", $key, "` (manifest `", $manifest, "`): ", $doc, ".")]
                pub const $name: settings!(@key $shape $(, $default)?) =
                    Key::new(&SETTINGS[Row::$name as usize], settings!(@key_default $($default)?));
            )*
        }
    };
}

use Kind::{Bool, Choice, Duration, Int, IntSet, Text};

#[rustfmt::skip]
settings! {
    // Task size
    CPU: Int = 256, "cpu", "cpu", Service, Int { min: 256, max: 16384 }, "Fargate CPU units per task (1024 = 1 vCPU)";
    MEMORY: Int = 512, "memory", "memory", Service, Int { min: 512, max: 122_880 }, "task memory in MiB; must pair with cpu as Fargate allows";
    // Scaling (the service's main role: http if present, else worker)
    MIN_CAPACITY: Int = 1, "minCapacity", "scaling.min", Service, Int { min: 0, max: 1000 }, "fewest tasks";
    MAX_CAPACITY: Int = 10, "maxCapacity", "scaling.max", Service, Int { min: 1, max: 1000 }, "most tasks";
    CPU_TARGET: Int = 70, "cpuTarget", "scaling.cpu", Service, Int { min: 1, max: 100 }, "target tracking on ECSServiceAverageCPUUtilization, percent";
    MEMORY_TARGET: Int, "memoryTarget", "scaling.memory", Service, Int { min: 1, max: 100 }, "target tracking on ECSServiceAverageMemoryUtilization, percent (off unless set)";
    REQUESTS_PER_TARGET: Int, "requestsPerTarget", "scaling.requests", Http, Int { min: 1, max: 1_000_000 }, "target tracking on ALBRequestCountPerTarget (off unless set)";
    SCALE_OUT_COOLDOWN: Secs = 60, "scaleOutCooldown", "scaling.cooldown_out", Service, Duration { min: 0, max: 3600 }, "wait after a scale-out before the next";
    SCALE_IN_COOLDOWN: Secs = 300, "scaleInCooldown", "scaling.cooldown_in", Service, Duration { min: 0, max: 3600 }, "wait after a scale-in before the next";
    // Worker scaling when a service has both roles
    WORKER_MIN_CAPACITY: Int = 1, "workerMinCapacity", "worker.scaling.min", WorkerBeside, Int { min: 0, max: 1000 }, "fewest worker tasks";
    WORKER_MAX_CAPACITY: Int = 10, "workerMaxCapacity", "worker.scaling.max", WorkerBeside, Int { min: 1, max: 1000 }, "most worker tasks";
    BACKLOG_PER_TASK: Int = 10, "backlogPerTask", "worker.scaling.backlog_per_task", Worker, Int { min: 1, max: 100_000 }, "queue-depth scaling: visible messages per worker task";
    // Capacity providers (the seed's Fargate Spot strategy)
    SPOT_WEIGHT: Int = 4, "spotWeight", "capacity.spot_weight", Service, Int { min: 0, max: 1000 }, "FARGATE_SPOT weight";
    ON_DEMAND_WEIGHT: Int = 1, "onDemandWeight", "capacity.on_demand_weight", Service, Int { min: 0, max: 1000 }, "FARGATE weight";
    ON_DEMAND_BASE: Int = 1, "onDemandBase", "capacity.on_demand_base", Service, Int { min: 0, max: 100_000 }, "tasks always on FARGATE before weights apply";
    // Deployments
    MIN_HEALTHY_PERCENT: Int = 100, "minHealthyPercent", "deployment.min_healthy_percent", Service, Int { min: 0, max: 100 }, "rolling update lower bound";
    MAX_PERCENT: Int = 200, "maxPercent", "deployment.max_percent", Service, Int { min: 100, max: 200 }, "rolling update upper bound";
    CIRCUIT_BREAKER: Bool = true, "circuitBreaker", "deployment.circuit_breaker", Service, Bool, "fail a deployment whose tasks keep failing";
    ROLLBACK: Bool = true, "rollback", "deployment.rollback", Service, Bool, "roll back a failed deployment to the last completed one";
    ROLLBACK_ALARMS: Bool = false, "rollbackAlarms", "deployment.rollback_alarms", Service, Bool, "roll a deployment back when the service's target-5xx or unhealthy-hosts alarm goes to ALARM during it (ECS deployment alarms; Copilot's rollback alarms)";
    CIRCUIT_BREAKER_THRESHOLD: Int, "circuitBreakerThreshold", "deployment.circuit_breaker_threshold", Service, Int { min: 1, max: 200 }, "failed tasks that fail a deployment in the local cloud (default, as ECS: ceil(0.5 × desired) clamped to 3..200; ECS's own is not configurable)";
    DEPLOYMENT_STRATEGY: Choice = "rolling", "deploymentStrategy", "deployment.strategy", Service, Choice(&["rolling", "blue_green", "canary"]), "ECS deployment strategy";
    STOP_TIMEOUT: Secs = 30, "stopTimeout", "deployment.stop_timeout", Service, Duration { min: 2, max: 120 }, "SIGTERM → SIGKILL grace";
    // HTTP
    PORT: Int = 8080, "port", "http.port", Http, Int { min: 1, max: 65535 }, "container port the service listens on";
    HEALTH_CHECK_PATH: Text = "/healthz", "healthCheckPath", "http.healthcheck.path", Http, Text(TextRule::HttpPath), "target group health check path";
    HEALTH_CHECK_INTERVAL: Secs = 30, "healthCheckInterval", "http.healthcheck.interval", Http, Duration { min: 5, max: 300 }, "time between health checks";
    HEALTH_CHECK_TIMEOUT: Secs = 5, "healthCheckTimeout", "http.healthcheck.timeout", Http, Duration { min: 2, max: 120 }, "health check timeout; less than the interval";
    HEALTHY_THRESHOLD: Int = 5, "healthyThreshold", "http.healthcheck.healthy_threshold", Http, Int { min: 2, max: 10 }, "consecutive passes to become healthy";
    UNHEALTHY_THRESHOLD: Int = 2, "unhealthyThreshold", "http.healthcheck.unhealthy_threshold", Http, Int { min: 2, max: 10 }, "consecutive failures to become unhealthy";
    HEALTH_CHECK_MATCHER: Text = "200", "healthCheckMatcher", "http.healthcheck.matcher", Http, Text(TextRule::Matcher), "HTTP codes that count as healthy";
    HEALTH_CHECK_GRACE_PERIOD: Secs = 30, "healthCheckGracePeriod", "http.healthcheck.grace_period", Http, Duration { min: 0, max: 7200 }, "ECS ignores failing health checks this long after a task starts";
    DEREGISTRATION_DELAY: Secs = 60, "deregistrationDelay", "http.deregistration_delay", Http, Duration { min: 0, max: 3600 }, "connection draining time (ends early when idle)", aws: "300s";
    LOAD_BALANCING_ALGORITHM: Choice = "round_robin", "loadBalancingAlgorithm", "http.algorithm", Http, Choice(&["round_robin", "least_outstanding_requests"]), "target selection";
    IDLE_TIMEOUT: Secs = 60, "idleTimeout", "http.idle_timeout", Http, Duration { min: 1, max: 4000 }, "load balancer idle connection timeout";
    CERTIFICATE_ARN: Text, "certificateArn", "http.certificate", Http, Text(TextRule::Arn), "ACM certificate: HTTPS listener and HTTP→HTTPS redirect when set";
    // Monitoring
    LOG_RETENTION_DAYS: Int = 30, "logRetentionDays", "logs.retention_days", Service, IntSet(LOG_RETENTION_DAYS), "CloudWatch log retention (the local cloud deletes its stopped streams older than this too)";
    TRACING: Bool = false, "tracing", "tracing", Service, Bool, "X-Ray / ADOT sidecar";
    ALARM_CPU_THRESHOLD: Int = 90, "alarmCpuThreshold", "alarms.cpu", Service, Int { min: 1, max: 100 }, "alarm when average CPU stays above, percent";
    ALARM_HTTP5XX_THRESHOLD: Int = 10, "alarmHttp5xxThreshold", "alarms.http_5xx", Http, Int { min: 1, max: 1_000_000 }, "alarm on target 5xx responses per minute";
    ALARM_QUEUE_AGE: Secs = 900, "alarmQueueAge", "alarms.queue_age", Worker, Duration { min: 60, max: 1_209_600 }, "alarm when the oldest message is older";
    ALARM_TOPIC_ARN: Text, "alarmTopicArn", "alarms.topic", Service, Text(TextRule::Arn), "SNS topic that alarms notify (none unless set)";
    // The local cloud: faster than AWS so a laptop loop is quick; each one named
    RUNTIME: Choice = "process", "runtime", "local.runtime", Service, Choice(&["process", "docker"]), "local cloud: run tasks as processes (the `local` command) or as Docker containers of the image";
    LOCAL_HEALTH_CHECK_INTERVAL: Secs = 2, "localHealthCheckInterval", "local.healthcheck.interval", Http, Duration { min: 1, max: 300 }, "local cloud: time between health checks (AWS: healthCheckInterval)";
    LOCAL_HEALTH_CHECK_TIMEOUT: Secs = 1, "localHealthCheckTimeout", "local.healthcheck.timeout", Http, Duration { min: 1, max: 120 }, "local cloud: health check timeout";
    LOCAL_HEALTHY_THRESHOLD: Int = 2, "localHealthyThreshold", "local.healthcheck.healthy_threshold", Http, Int { min: 2, max: 10 }, "local cloud: passes for an unhealthy target to recover";
    LOCAL_UNHEALTHY_THRESHOLD: Int = 2, "localUnhealthyThreshold", "local.healthcheck.unhealthy_threshold", Http, Int { min: 2, max: 10 }, "local cloud: failures to mark a target unhealthy";
    LOCAL_GRACE_PERIOD: Secs = 10, "localGracePeriod", "local.healthcheck.grace_period", Http, Duration { min: 0, max: 7200 }, "local cloud: a new task failing health checks is not replaced before this";
    LOCAL_PORT: Int, "localPort", "local.port", Http, Int { min: 1024, max: 65535 }, "local cloud: the load balancer's port (default: one chosen below the ephemeral range and kept across restarts)";
    LOCAL_DEREGISTRATION_DELAY: Secs = 5, "localDeregistrationDelay", "local.deregistration_delay", Http, Duration { min: 0, max: 3600 }, "local cloud: connection draining (ends early when idle)";
    LOCAL_STOP_TIMEOUT: Secs = 10, "localStopTimeout", "local.stop_timeout", Service, Duration { min: 1, max: 120 }, "local cloud: SIGTERM → SIGKILL grace";
    LOCAL_HEALTHY_AFTER: Secs = 3, "localHealthyAfter", "local.healthy_after", Service, Duration { min: 0, max: 600 }, "local cloud: a task without a load balancer counts as healthy after running this long (ECS: 40s)";
    LOCAL_BUILD_TIMEOUT: Secs = 1800, "localBuildTimeout", "local.build_timeout", Service, Duration { min: 10, max: 7200 }, "local cloud: a build (`local.build`, or the image's build and `docker build`) running longer fails its revision";
    LOCAL_LOG_MAX_MIB: Int = 64, "localLogMaxMiB", "local.log_max_mib", Service, Int { min: 1, max: 102_400 }, "local cloud: disk one unit's log group (its tasks' streams, its builds' logs) may use; the oldest stopped streams are deleted first and a running task's stream rolls over at a quarter of it (streams older than logs.retention_days go too)";
    LOCAL_AUTOSCALING: Bool = true, "localAutoscaling", "local.autoscaling", Service, Bool, "local cloud: target tracking (scaling.*) changes the desired count between scaling.min and scaling.max as on AWS (false: it stays where local.count and `pantstack scale` put it)";
    LOCAL_METRICS_PERIOD: Secs = 10, "localMetricsPeriod", "local.metrics.period", Service, Duration { min: 1, max: 60 }, "local cloud: the period of the built-in metrics, target tracking and alarms (AWS: 60s, which the synthesized policies and alarms use)";
    LOCAL_METRICS_RETENTION: Secs = 21_600, "localMetricsRetention", "local.metrics.retention", Service, Duration { min: 300, max: 172_800 }, "local cloud: how long the built-in metrics of the service are kept on disk, at most 20,000 datapoints a metric (55 h at a 10 s period, 5.5 h at 1 s; AWS: 15 days at 1-minute resolution)";
    LOCAL_ALARM_COMMAND: Text, "localAlarmCommand", "local.alarms.command", Service, Text(TextRule::Command), "local cloud: a command (`sh -c`) run on each alarm state change, with PANTSTACK_ALARM_NAME, _STATE, _PREVIOUS_STATE and _REASON set (the local stand-in for alarms.topic)";
    LOCAL_ALARM_URL: Text, "localAlarmUrl", "local.alarms.url", Service, Text(TextRule::LoopbackUrl), "local cloud: a loopback URL that each alarm state change is POSTed to as JSON";
    LOCAL_DESIRED_COUNT: Int = 1, "localDesiredCount", "local.count", Service, Int { min: 0, max: 64 }, "local cloud: tasks per service (`pantstack scale` changes it)";
    // Foundation
    NAT_GATEWAYS: Choice = "single", "natGateways", "network.nat", Foundation, Choice(&["none", "single", "per_az"]), "NAT cost tier: none, one shared, or one per AZ";
    VPC_CIDR: Text = "10.0.0.0/16", "vpcCidr", "network.cidr", Foundation, Text(TextRule::Cidr), "VPC address range";
    AVAILABILITY_ZONES: Int = 2, "availabilityZones", "network.azs", Foundation, Int { min: 2, max: 6 }, "AZs spanned by public and private subnets";
    LOAD_BALANCER: Choice = "per_service", "loadBalancer", "network.load_balancer", Foundation, Choice(&["per_service", "shared"]), "one internet-facing ALB per HTTP service, or one per environment that every HTTP service shares through listener rules (path `/<service>` or its `http.rules`): 200 services then fit the default quota of 50 ALBs a region";
    LOAD_BALANCERS: Int = 1, "loadBalancers", "network.load_balancers", Foundation, Int { min: 1, max: 20 }, "with a shared load balancer: how many ALBs the environment's HTTP services are spread over (each takes 100 rules and 100 target groups); raise it when `synth` says so; lowering it is not supported in place";
    LOAD_BALANCER_CERTIFICATE_ARN: Text, "loadBalancerCertificateArn", "network.load_balancer_certificate", Foundation, Text(TextRule::Arn), "with a shared load balancer: ACM certificate of its HTTPS:443 listener (TLS 1.3/1.2 policy), which the services' rules are on; port 80 then redirects to HTTPS";
    VPC_ENDPOINTS: Bool = false, "vpcEndpoints", "network.endpoints", Foundation, Bool, "S3 gateway and ECR/logs/SSM interface endpoints";
    FLOW_LOG_RETENTION_DAYS: Int = 90, "flowLogRetentionDays", "network.flow_log_retention_days", Foundation, IntSet(LOG_RETENTION_DAYS), "VPC flow log retention";
    IMAGE_REPLICA_REGION: Text, "imageReplicaRegion", "registry.replicate_to", Foundation, Text(TextRule::Region), "ECR replicates every image of the repository to this region (disaster recovery: deploy there with --region); an account has one replication configuration per region";
    IMAGE_RETENTION: Int = 20, "imageRetention", "registry.keep_images", Foundation, Int { min: 1, max: 1000 }, "ECR lifecycle: days a branch or pull-request image is kept (at least the preview TTL + 7); releases and environment-branch images are never expired";
    SCAN_ON_PUSH: Bool = true, "scanOnPush", "registry.scan_on_push", Foundation, Bool, "ECR image scanning on push";
    PREVIEW_MAX: Int = 5, "previewMax", "previews.max", Foundation, Int { min: 0, max: 100 }, "most preview environments at once";
    PREVIEW_TTL: Secs = 604_800, "previewTtl", "previews.ttl", Foundation, Duration { min: 3600, max: 7_776_000 }, "preview environments are destroyed after this idle time";
}

/// Looks a setting up by key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Looks a setting up by manifest path and layer.
pub fn by_manifest_path(path: &str, foundation: bool) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.manifest == path && (s.applies == Applies::Foundation) == foundation)
}

/// The keys valid in a stack file for a layer, for "did you mean".
pub fn key_names(foundation: bool) -> Vec<&'static str> {
    SETTINGS
        .iter()
        .filter(|s| (s.applies == Applies::Foundation) == foundation)
        .map(|s| s.key)
        .collect()
}

/// Direct children of a manifest section that are settings (`http` → `port`, ...).
pub fn children(section: &str, foundation: bool) -> Vec<&'static str> {
    SETTINGS
        .iter()
        .filter(|s| (s.applies == Applies::Foundation) == foundation)
        .filter_map(|s| {
            let rest = if section.is_empty() {
                Some(s.manifest)
            } else {
                s.manifest.strip_prefix(section)?.strip_prefix('.')
            };
            rest.filter(|r| !r.contains('.'))
        })
        .collect()
}

/// Why a value is invalid for a kind, or the parsed value.
pub fn check_text(rule: TextRule, text: &str) -> Result<(), String> {
    match rule {
        TextRule::HttpPath => {
            if !text.starts_with('/') {
                return Err("must start with `/`".into());
            }
            if text.len() > 1024 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("must be at most 1024 characters without spaces".into());
            }
            Ok(())
        }
        TextRule::Matcher => {
            let ok_code = |c: &str| c.parse::<u16>().is_ok_and(|n| (200..=499).contains(&n));
            let ok = !text.is_empty()
                && text.split(',').all(|part| match part.split_once('-') {
                    Some((a, b)) => {
                        ok_code(a) && ok_code(b) && a.parse::<u16>().ok() < b.parse::<u16>().ok()
                    }
                    None => ok_code(part),
                });
            if ok {
                Ok(())
            } else {
                Err("must be HTTP codes 200-499 like `200`, `200,204` or `200-299`".into())
            }
        }
        TextRule::Arn => {
            let parts: Vec<&str> = text.splitn(6, ':').collect();
            if parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && !parts[2].is_empty()
            {
                Ok(())
            } else {
                Err(
                    "must be an ARN like `arn:aws:acm:us-east-1:123456789012:certificate/...`"
                        .into(),
                )
            }
        }
        TextRule::Region => crate::foundation::check_region(text),
        TextRule::Command => {
            if text.trim().is_empty() {
                Err("must be a command line, not empty".into())
            } else if text.len() > 4096 {
                Err("must be at most 4096 bytes long".into())
            } else if text.contains(['\n', '\r', '\0']) {
                Err("must be one line (run a script for more)".into())
            } else {
                Ok(())
            }
        }
        TextRule::LoopbackUrl => check_loopback_url(text),
        TextRule::Cidr => {
            let err =
                || "must be an IPv4 CIDR block from /16 to /24 like `10.0.0.0/16`".to_string();
            let (ip, prefix) = text.split_once('/').ok_or_else(err)?;
            let prefix: u8 = prefix.parse().map_err(|_| err())?;
            let octets: Vec<u8> = ip
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| err())?;
            if octets.len() != 4 || !(16..=24).contains(&prefix) {
                return Err(err());
            }
            let addr = u32::from_be_bytes([octets[0], octets[1], octets[2], octets[3]]);
            if addr & (u32::MAX >> prefix) != 0 {
                return Err(format!("has host bits set; the network address is {}", {
                    let n = (addr & !(u32::MAX >> prefix)).to_be_bytes();
                    format!("{}.{}.{}.{}/{prefix}", n[0], n[1], n[2], n[3])
                }));
            }
            Ok(())
        }
    }
}

/// `http://HOST:PORT[/PATH]` with HOST a loopback address: the local cloud never
/// sends a request off the machine.
fn check_loopback_url(text: &str) -> Result<(), String> {
    let err = |why: &str| {
        format!("{why}: it must be an http URL on loopback like `http://127.0.0.1:9000/alarm`")
    };
    let rest = text
        .strip_prefix("http://")
        .ok_or_else(|| err("not http://"))?;
    let (authority, _path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority.rsplit_once(':').ok_or_else(|| err("no port"))?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    if !port_ok {
        return Err(err("bad port"));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
            .is_some_and(|a| a.is_loopback());
    if !loopback {
        return Err(err("not a loopback address"));
    }
    if text.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(err("it contains white space"));
    }
    if text.contains('#') {
        return Err(err("it has a fragment (`#...`), which is never sent"));
    }
    Ok(())
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    /// Lowered for a preview environment (`preview-<pr>`): pantstack runs previews
    /// at reduced capacity unless `Pulumi.preview.yaml` or `--set` says otherwise.
    Preview,
    Manifest {
        file: String,
        span: Span,
    },
    Stack {
        file: String,
        span: Span,
    },
    Cli,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Preview => f.write_str("preview default"),
            Source::Manifest { file, span } | Source::Stack { file, span } => {
                write!(f, "{file}:{}", span.line)
            }
            Source::Cli => f.write_str("--set"),
        }
    }
}

impl Source {
    pub fn layer(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Preview => "preview",
            Source::Manifest { .. } => "manifest",
            Source::Stack { .. } => "stack",
            Source::Cli => "cli",
        }
    }

    pub fn location(&self) -> Option<(&str, Span)> {
        match self {
            Source::Manifest { file, span } | Source::Stack { file, span } => Some((file, *span)),
            _ => None,
        }
    }
}

/// Values set by one layer (manifest, stack file or CLI), each with its source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layer {
    pub values: Vec<(&'static Setting, Val, Source)>,
}

impl Layer {
    /// The value this layer sets for `setting`, and where.
    pub fn get(&self, setting: &Setting) -> Option<(&Val, &Source)> {
        self.values
            .iter()
            .find(|(s, _, _)| s.key == setting.key)
            .map(|(_, v, src)| (v, src))
    }

    pub fn set(&mut self, setting: &'static Setting, val: Val, source: Source) {
        self.values.retain(|(s, _, _)| s.key != setting.key);
        self.values.push((setting, val, source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths_are_unique() {
        for (i, a) in SETTINGS.iter().enumerate() {
            for b in &SETTINGS[i + 1..] {
                assert_ne!(a.key, b.key);
                let same_layer =
                    (a.applies == Applies::Foundation) == (b.applies == Applies::Foundation);
                assert!(
                    !(same_layer && a.manifest == b.manifest),
                    "{} and {}",
                    a.key,
                    b.key
                );
            }
        }
    }

    #[test]
    fn defaults_are_valid_values() {
        for s in SETTINGS {
            let ok = match (s.kind, s.default) {
                (_, Default::Unset) => true,
                (Kind::Int { min, max }, Default::Int(v)) => (min..=max).contains(&v),
                (Kind::IntSet(allowed), Default::Int(v)) => allowed.contains(&v),
                (Kind::Duration { min, max }, Default::Duration(v)) => (min..=max).contains(&v),
                (Kind::Choice(choices), Default::Text(v)) => choices.contains(&v),
                (Kind::Text(rule), Default::Text(v)) => check_text(rule, v).is_ok(),
                (Kind::Bool, Default::Bool(_)) => true,
                _ => false,
            };
            assert!(ok, "the default of `{}` is not a valid value", s.key);
        }
    }

    #[test]
    fn keys_read_their_rows() {
        assert_eq!(keys::DEPLOYMENT_STRATEGY.name(), "deploymentStrategy");
        assert_eq!(keys::DEPLOYMENT_STRATEGY.read(None), "rolling");
        assert_eq!(keys::CPU.read(Some(&Val::Int(1024))), 1024);
        assert_eq!(keys::STOP_TIMEOUT.read(None), 30);
        assert_eq!(keys::MEMORY_TARGET.read(None), None);
        assert_eq!(keys::MEMORY_TARGET.read(Some(&Val::Int(60))), Some(60));
        assert!(keys::CIRCUIT_BREAKER.read(None));
        assert_eq!(keys::CERTIFICATE_ARN.setting().manifest, "http.certificate");
    }

    #[test]
    fn text_rules() {
        assert!(check_text(TextRule::Matcher, "200").is_ok());
        assert!(check_text(TextRule::Matcher, "200-299").is_ok());
        assert!(check_text(TextRule::Matcher, "200,204").is_ok());
        assert!(check_text(TextRule::Matcher, "500").is_err());
        assert!(check_text(TextRule::Matcher, "299-200").is_err());
        assert!(check_text(TextRule::HttpPath, "healthz").is_err());
        assert!(check_text(TextRule::LoopbackUrl, "http://127.0.0.1:9000/alarm").is_ok());
        assert!(check_text(TextRule::LoopbackUrl, "http://localhost:80").is_ok());
        assert!(check_text(TextRule::LoopbackUrl, "http://[::1]:8080/x").is_ok());
        assert!(check_text(TextRule::LoopbackUrl, "http://LOCALHOST:80/").is_ok());
        assert!(check_text(TextRule::LoopbackUrl, "http://[0:0:0:0:0:0:0:1]:80/").is_ok());
        assert!(check_text(TextRule::LoopbackUrl, "http://127.0.0.1:80/a#b").is_err());
        assert!(check_text(TextRule::LoopbackUrl, "http://[::2]:80/").is_err());
        assert!(check_text(TextRule::LoopbackUrl, "http://10.0.0.1:80/").is_err());
        assert!(check_text(TextRule::LoopbackUrl, "https://127.0.0.1:80/").is_err());
        assert!(check_text(TextRule::LoopbackUrl, "http://127.0.0.1/").is_err());
        assert!(check_text(TextRule::LoopbackUrl, "http://127.0.0.1:0/").is_err());
        assert!(check_text(TextRule::LoopbackUrl, "http://example.com:80/").is_err());
        assert!(check_text(TextRule::Command, "echo hi").is_ok());
        assert!(check_text(TextRule::Command, " ").is_err());
        assert!(check_text(TextRule::Command, "a\nb").is_err());
        assert!(check_text(TextRule::Cidr, "10.0.0.0/16").is_ok());
        assert!(check_text(TextRule::Cidr, "10.0.1.0/16").is_err());
        assert!(check_text(TextRule::Cidr, "10.0.0.0/8").is_err());
        assert!(
            check_text(
                TextRule::Arn,
                "arn:aws:acm:us-east-1:123456789012:certificate/abc"
            )
            .is_ok()
        );
        assert!(check_text(TextRule::Arn, "my-cert").is_err());
    }

    #[test]
    fn children_of_sections() {
        let http = children("http", false);
        assert!(http.contains(&"port") && http.contains(&"algorithm"));
        assert!(!http.contains(&"path"));
        assert_eq!(children("http.healthcheck", false).len(), 7);
    }
}

/// The settings table as Markdown (docs/manifest.md embeds it; a test keeps it current).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| stack file key (`pantstack:`) | manifest path | applies to | values | default | meaning |\n|---|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let applies = match s.applies {
            Applies::Service => "service",
            Applies::Http => "http",
            Applies::Worker => "worker",
            Applies::WorkerBeside => "http + worker",
            Applies::Foundation => "foundation",
        };
        let values = match s.kind {
            Kind::Int { min, max } => format!("{min}..{max}"),
            Kind::IntSet(v) => format!(
                "one of {}",
                v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            ),
            Kind::Duration { min, max } => format!(
                "{}..{}",
                pantstack_manifest::read::format_duration(min),
                pantstack_manifest::read::format_duration(max)
            ),
            Kind::Choice(c) => c.join(" \\| "),
            Kind::Bool => "true \\| false".into(),
            Kind::Text(TextRule::HttpPath) => "path".into(),
            Kind::Text(TextRule::Matcher) => "HTTP codes".into(),
            Kind::Text(TextRule::Arn) => "ARN".into(),
            Kind::Text(TextRule::Cidr) => "IPv4 CIDR /16../24".into(),
            Kind::Text(TextRule::Region) => "region".into(),
            Kind::Text(TextRule::Command) => "command line".into(),
            Kind::Text(TextRule::LoopbackUrl) => "loopback http URL".into(),
        };
        let default = match s.default_val() {
            Some(v) => format!("`{v}`"),
            None => "off".into(),
        };
        let default = match s.aws_default {
            Some(aws) => format!("{default} (AWS: {aws})"),
            None => default,
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {applies} | {values} | {default} | {} |\n",
            s.key, s.manifest, s.doc
        ));
    }
    out
}

#[cfg(test)]
mod doc_tests {
    #[test]
    fn docs_manifest_lists_every_setting() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/manifest.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let table = super::markdown_table();
        if std::env::var_os("PANTSTACK_WRITE_DOCS").is_some() {
            let start = doc.find("<!-- settings:start -->").expect("start marker")
                + "<!-- settings:start -->\n".len();
            let end = doc.find("<!-- settings:end -->").expect("end marker");
            let new = format!("{}{table}{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, new).expect("write docs");
            return;
        }
        assert!(
            doc.contains(&table),
            "docs/manifest.md is out of date: run PANTSTACK_WRITE_DOCS=1 cargo test -p pantstack-model docs_manifest"
        );
    }
}

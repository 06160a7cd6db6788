//! Every tunable setting, in one table.
//!
//! A setting has one name (`key`), used as `pantstack:<key>` in stack files and with
//! `--set <key>=<value>` on the command line, and one place in the manifest
//! (`manifest`, a dotted path). Its value resolves as
//! default ← manifest ← stack file ← CLI override, and each layer is validated the
//! same way, by `kind`. Adding a setting is adding a row.

use pantstack_manifest::Span;

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

const fn s(
    key: &'static str,
    manifest: &'static str,
    applies: Applies,
    kind: Kind,
    default: Default,
    doc: &'static str,
) -> Setting {
    Setting {
        key,
        manifest,
        applies,
        kind,
        default,
        aws_default: None,
        doc,
    }
}

const fn aws(mut setting: Setting, aws_default: &'static str) -> Setting {
    setting.aws_default = Some(aws_default);
    setting
}

use Applies::{Foundation, Http, Service, Worker, WorkerBeside};
use Kind::{Bool, Choice, Duration, Int, IntSet, Text};

/// The table. Order is the order `pantstack config` shows.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    // Task size
    s("cpu", "cpu", Service, Int { min: 256, max: 16384 }, Default::Int(256), "Fargate CPU units per task (1024 = 1 vCPU)"),
    s("memory", "memory", Service, Int { min: 512, max: 122_880 }, Default::Int(512), "task memory in MiB; must pair with cpu as Fargate allows"),
    // Scaling (the service's main role: http if present, else worker)
    s("minCapacity", "scaling.min", Service, Int { min: 0, max: 1000 }, Default::Int(1), "fewest tasks"),
    s("maxCapacity", "scaling.max", Service, Int { min: 1, max: 1000 }, Default::Int(10), "most tasks"),
    s("cpuTarget", "scaling.cpu", Service, Int { min: 1, max: 100 }, Default::Int(70), "target tracking on ECSServiceAverageCPUUtilization, percent"),
    s("memoryTarget", "scaling.memory", Service, Int { min: 1, max: 100 }, Default::Unset, "target tracking on ECSServiceAverageMemoryUtilization, percent (off unless set)"),
    s("requestsPerTarget", "scaling.requests", Http, Int { min: 1, max: 1_000_000 }, Default::Unset, "target tracking on ALBRequestCountPerTarget (off unless set)"),
    s("scaleOutCooldown", "scaling.cooldown_out", Service, Duration { min: 0, max: 3600 }, Default::Duration(60), "wait after a scale-out before the next"),
    s("scaleInCooldown", "scaling.cooldown_in", Service, Duration { min: 0, max: 3600 }, Default::Duration(300), "wait after a scale-in before the next"),
    // Worker scaling when a service has both roles
    s("workerMinCapacity", "worker.scaling.min", WorkerBeside, Int { min: 0, max: 1000 }, Default::Int(1), "fewest worker tasks"),
    s("workerMaxCapacity", "worker.scaling.max", WorkerBeside, Int { min: 1, max: 1000 }, Default::Int(10), "most worker tasks"),
    s("backlogPerTask", "worker.scaling.backlog_per_task", Worker, Int { min: 1, max: 100_000 }, Default::Int(10), "queue-depth scaling: visible messages per worker task"),
    // Capacity providers (the seed's Fargate Spot strategy)
    s("spotWeight", "capacity.spot_weight", Service, Int { min: 0, max: 1000 }, Default::Int(4), "FARGATE_SPOT weight"),
    s("onDemandWeight", "capacity.on_demand_weight", Service, Int { min: 0, max: 1000 }, Default::Int(1), "FARGATE weight"),
    s("onDemandBase", "capacity.on_demand_base", Service, Int { min: 0, max: 100_000 }, Default::Int(1), "tasks always on FARGATE before weights apply"),
    // Deployments
    s("minHealthyPercent", "deployment.min_healthy_percent", Service, Int { min: 0, max: 100 }, Default::Int(100), "rolling update lower bound"),
    s("maxPercent", "deployment.max_percent", Service, Int { min: 100, max: 200 }, Default::Int(200), "rolling update upper bound"),
    s("circuitBreaker", "deployment.circuit_breaker", Service, Bool, Default::Bool(true), "fail a deployment whose tasks keep failing"),
    s("rollback", "deployment.rollback", Service, Bool, Default::Bool(true), "roll back a failed deployment to the last completed one"),
    s("circuitBreakerThreshold", "deployment.circuit_breaker_threshold", Service, Int { min: 1, max: 200 }, Default::Unset, "failed tasks that fail a deployment in the local cloud (default, as ECS: ceil(0.5 × desired) clamped to 3..200; ECS's own is not configurable)"),
    s("deploymentStrategy", "deployment.strategy", Service, Choice(&["rolling", "blue_green", "canary"]), Default::Text("rolling"), "ECS deployment strategy"),
    s("stopTimeout", "deployment.stop_timeout", Service, Duration { min: 2, max: 120 }, Default::Duration(30), "SIGTERM → SIGKILL grace"),
    // HTTP
    s("port", "http.port", Http, Int { min: 1, max: 65535 }, Default::Int(8080), "container port the service listens on"),
    s("healthCheckPath", "http.healthcheck.path", Http, Text(TextRule::HttpPath), Default::Text("/healthz"), "target group health check path"),
    s("healthCheckInterval", "http.healthcheck.interval", Http, Duration { min: 5, max: 300 }, Default::Duration(30), "time between health checks"),
    s("healthCheckTimeout", "http.healthcheck.timeout", Http, Duration { min: 2, max: 120 }, Default::Duration(5), "health check timeout; less than the interval"),
    s("healthyThreshold", "http.healthcheck.healthy_threshold", Http, Int { min: 2, max: 10 }, Default::Int(5), "consecutive passes to become healthy"),
    s("unhealthyThreshold", "http.healthcheck.unhealthy_threshold", Http, Int { min: 2, max: 10 }, Default::Int(2), "consecutive failures to become unhealthy"),
    s("healthCheckMatcher", "http.healthcheck.matcher", Http, Text(TextRule::Matcher), Default::Text("200"), "HTTP codes that count as healthy"),
    s("healthCheckGracePeriod", "http.healthcheck.grace_period", Http, Duration { min: 0, max: 7200 }, Default::Duration(30), "ECS ignores failing health checks this long after a task starts"),
    aws(s("deregistrationDelay", "http.deregistration_delay", Http, Duration { min: 0, max: 3600 }, Default::Duration(60), "connection draining time (ends early when idle)"), "300s"),
    s("loadBalancingAlgorithm", "http.algorithm", Http, Choice(&["round_robin", "least_outstanding_requests"]), Default::Text("round_robin"), "target selection"),
    s("idleTimeout", "http.idle_timeout", Http, Duration { min: 1, max: 4000 }, Default::Duration(60), "load balancer idle connection timeout"),
    s("certificateArn", "http.certificate", Http, Text(TextRule::Arn), Default::Unset, "ACM certificate: HTTPS listener and HTTP→HTTPS redirect when set"),
    // Monitoring
    s("logRetentionDays", "logs.retention_days", Service, IntSet(LOG_RETENTION_DAYS), Default::Int(30), "CloudWatch log retention"),
    s("tracing", "tracing", Service, Bool, Default::Bool(false), "X-Ray / ADOT sidecar"),
    s("alarmCpuThreshold", "alarms.cpu", Service, Int { min: 1, max: 100 }, Default::Int(90), "alarm when average CPU stays above, percent"),
    s("alarmHttp5xxThreshold", "alarms.http_5xx", Http, Int { min: 1, max: 1_000_000 }, Default::Int(10), "alarm on target 5xx responses per minute"),
    s("alarmQueueAge", "alarms.queue_age", Worker, Duration { min: 60, max: 1_209_600 }, Default::Duration(900), "alarm when the oldest message is older"),
    s("alarmTopicArn", "alarms.topic", Service, Text(TextRule::Arn), Default::Unset, "SNS topic that alarms notify (none unless set)"),
    // The local cloud: faster than AWS so a laptop loop is quick; each one named
    s("runtime", "local.runtime", Service, Choice(&["process", "docker"]), Default::Text("process"), "local cloud: run tasks as processes (the `local` command) or as Docker containers of the image"),
    s("localHealthCheckInterval", "local.healthcheck.interval", Http, Duration { min: 1, max: 300 }, Default::Duration(2), "local cloud: time between health checks (AWS: healthCheckInterval)"),
    s("localHealthCheckTimeout", "local.healthcheck.timeout", Http, Duration { min: 1, max: 120 }, Default::Duration(1), "local cloud: health check timeout"),
    s("localHealthyThreshold", "local.healthcheck.healthy_threshold", Http, Int { min: 2, max: 10 }, Default::Int(2), "local cloud: passes for an unhealthy target to recover"),
    s("localUnhealthyThreshold", "local.healthcheck.unhealthy_threshold", Http, Int { min: 2, max: 10 }, Default::Int(2), "local cloud: failures to mark a target unhealthy"),
    s("localGracePeriod", "local.healthcheck.grace_period", Http, Duration { min: 0, max: 7200 }, Default::Duration(10), "local cloud: a new task failing health checks is not replaced before this"),
    s("localPort", "local.port", Http, Int { min: 1024, max: 65535 }, Default::Unset, "local cloud: the load balancer's port (default: one chosen below the ephemeral range and kept across restarts)"),
    s("localDeregistrationDelay", "local.deregistration_delay", Http, Duration { min: 0, max: 3600 }, Default::Duration(5), "local cloud: connection draining (ends early when idle)"),
    s("localStopTimeout", "local.stop_timeout", Service, Duration { min: 1, max: 120 }, Default::Duration(10), "local cloud: SIGTERM → SIGKILL grace"),
    s("localHealthyAfter", "local.healthy_after", Service, Duration { min: 0, max: 600 }, Default::Duration(3), "local cloud: a task without a load balancer counts as healthy after running this long (ECS: 40s)"),
    s("localBuildTimeout", "local.build_timeout", Service, Duration { min: 10, max: 7200 }, Default::Duration(1800), "local cloud: a build (`local.build`, or the image's build and `docker build`) running longer fails its revision"),
    s("localDesiredCount", "local.count", Service, Int { min: 0, max: 64 }, Default::Int(1), "local cloud: tasks per service (`pantstack scale` changes it)"),
    // Foundation
    s("natGateways", "network.nat", Foundation, Choice(&["none", "single", "per_az"]), Default::Text("single"), "NAT cost tier: none, one shared, or one per AZ"),
    s("vpcCidr", "network.cidr", Foundation, Text(TextRule::Cidr), Default::Text("10.0.0.0/16"), "VPC address range"),
    s("availabilityZones", "network.azs", Foundation, Int { min: 2, max: 6 }, Default::Int(2), "AZs spanned by public and private subnets"),
    s("loadBalancer", "network.load_balancer", Foundation, Choice(&["per_service", "shared"]), Default::Text("per_service"), "one internet-facing ALB per HTTP service, or one per environment that every HTTP service shares through listener rules (path `/<service>` or its `http.rules`): 200 services then fit the default quota of 50 ALBs a region"),
    s("loadBalancers", "network.load_balancers", Foundation, Int { min: 1, max: 20 }, Default::Int(1), "with a shared load balancer: how many ALBs the environment's HTTP services are spread over (each takes 100 rules and 100 target groups); raise it when `synth` says so; lowering it is not supported in place"),
    s("vpcEndpoints", "network.endpoints", Foundation, Bool, Default::Bool(false), "S3 gateway and ECR/logs/SSM interface endpoints"),
    s("flowLogRetentionDays", "network.flow_log_retention_days", Foundation, IntSet(LOG_RETENTION_DAYS), Default::Int(90), "VPC flow log retention"),
    s("imageReplicaRegion", "registry.replicate_to", Foundation, Text(TextRule::Region), Default::Unset, "ECR replicates every image of the repository to this region (disaster recovery: deploy there with --region); an account has one replication configuration per region"),
    s("imageRetention", "registry.keep_images", Foundation, Int { min: 1, max: 1000 }, Default::Int(20), "ECR lifecycle: days a branch or pull-request image is kept (at least the preview TTL + 7); releases and environment-branch images are never expired"),
    s("scanOnPush", "registry.scan_on_push", Foundation, Bool, Default::Bool(true), "ECR image scanning on push"),
    s("previewMax", "previews.max", Foundation, Int { min: 0, max: 100 }, Default::Int(5), "most preview environments at once"),
    s("previewTtl", "previews.ttl", Foundation, Duration { min: 3600, max: 7_776_000 }, Default::Duration(604_800), "preview environments are destroyed after this idle time"),
];

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
pub fn keys(foundation: bool) -> Vec<&'static str> {
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

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    Manifest { file: String, span: Span },
    Stack { file: String, span: Span },
    Cli,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
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
    pub fn get(&self, key: &str) -> Option<(&Val, &Source)> {
        self.values
            .iter()
            .find(|(s, _, _)| s.key == key)
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
    fn text_rules() {
        assert!(check_text(TextRule::Matcher, "200").is_ok());
        assert!(check_text(TextRule::Matcher, "200-299").is_ok());
        assert!(check_text(TextRule::Matcher, "200,204").is_ok());
        assert!(check_text(TextRule::Matcher, "500").is_err());
        assert!(check_text(TextRule::Matcher, "299-200").is_err());
        assert!(check_text(TextRule::HttpPath, "healthz").is_err());
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

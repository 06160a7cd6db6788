//! pantstack-deploy — the aws target. AWS is the distributed engine: this crate
//! drives it and reimplements none of it. CloudFormation change sets deploy the
//! stacks `pantstack-synth` writes (`stacks.json` order, independent stacks at
//! once), Docker builds the images and pushes them to ECR, ECS gives the verdict on
//! each service's deployment, CloudWatch Logs the stopped tasks' last lines, SSM
//! holds the secrets and S3 the templates.
//!
//! Invariants:
//! - Credentials and region come from the standard AWS chain (`--profile`,
//!   `AWS_ENDPOINT_URL` and the rest honoured by `aws-config`); nothing of the local
//!   target ever calls into this crate, so local commands never load the chain.
//! - Nothing is executed by `diff`: its change sets are deleted, and a stack it had
//!   to create for a CREATE change set (REVIEW_IN_PROGRESS, no resources) too.
//! - A secret's value goes from standard input to SSM and nowhere else: never in
//!   argv, output, templates or files.
//! - Every wait is bounded (`Clients::timeout`) and polls at `Clients::poll`.

#![forbid(unsafe_code)]

pub mod images;
pub mod lock;
pub mod preview;
pub mod progress;
pub mod quotas;
pub mod secrets;
pub mod ship;
pub mod slots;
pub mod stack;
pub mod verdict;

use aws_types::SdkConfig;
use aws_types::region::Region;
use std::time::Duration;

/// Where and as whom to reach AWS.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    /// `--profile`: a profile of ~/.aws/config.
    pub profile: Option<String>,
    /// `--region`, else the environment's configured region.
    pub region: String,
}

/// The SDK clients of one region.
#[derive(Clone, Debug)]
pub struct Clients {
    pub config: SdkConfig,
    pub region: String,
    pub cfn: aws_sdk_cloudformation::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    /// How often a wait asks again (`PANTSTACK_AWS_POLL_MS`, default 5 s).
    pub poll: Duration,
    /// How long one stack may take (`PANTSTACK_AWS_TIMEOUT_S`, default 1 h).
    pub timeout: Duration,
    /// How long a deploy lock lasts unless renewed (`PANTSTACK_LOCK_TTL_S`,
    /// default 15 min); its holder renews it every third of that.
    pub lock_ttl: Duration,
    /// Whether a lock the run holds through these clients (or their clones)
    /// was lost: no stack operation starts then (`lock::hold_while`).
    pub lock_watch: lock::Watch,
}

fn env_ms(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Clients {
    /// Loads the standard AWS chain for `c.region`. A named profile's credentials
    /// win over the environment's (as with the AWS CLI's `--profile`); every call
    /// is bounded (connect 10 s, a silent server 60 s, an attempt 2 min, an
    /// operation with its retries 5 min).
    pub async fn connect(c: &Connect) -> Clients {
        // PANTSTACK_AWS_CALL_TIMEOUT_S scales them (tests use a few seconds).
        let call = env_ms("PANTSTACK_AWS_CALL_TIMEOUT_S", 60).max(1);
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(call.min(10)))
            .read_timeout(Duration::from_secs(call))
            .operation_attempt_timeout(Duration::from_secs(call * 2))
            .operation_timeout(Duration::from_secs(call * 5))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(c.region.clone()))
            .timeout_config(timeouts);
        if let Some(p) = &c.profile {
            loader = loader.profile_name(p).credentials_provider(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .profile_name(p)
                    .build(),
            );
        }
        let config = loader.load().await;
        Clients::from_config(config, &c.region)
    }

    /// Clients of `region` with the same credentials and endpoint.
    pub fn in_region(&self, region: &str) -> Clients {
        let config = self
            .config
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        let mut c = Clients::from_config(config, region);
        c.poll = self.poll;
        c.timeout = self.timeout;
        c.lock_ttl = self.lock_ttl;
        c.lock_watch = self.lock_watch.clone();
        c
    }

    pub fn from_config(config: SdkConfig, region: &str) -> Clients {
        // A configured endpoint (AWS_ENDPOINT_URL: an emulator, a VPC endpoint) has
        // no per-bucket host names: S3 is addressed by path there.
        let path_style = config.endpoint_url().is_some();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(path_style)
                .build(),
        );
        Clients {
            region: region.to_string(),
            cfn: aws_sdk_cloudformation::Client::new(&config),
            ecr: aws_sdk_ecr::Client::new(&config),
            ecs: aws_sdk_ecs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            s3,
            poll: Duration::from_millis(env_ms("PANTSTACK_AWS_POLL_MS", 5000)),
            timeout: Duration::from_secs(env_ms("PANTSTACK_AWS_TIMEOUT_S", 3600)),
            lock_ttl: Duration::from_secs(match env_ms("PANTSTACK_LOCK_TTL_S", 15 * 60) {
                0 => 15 * 60,
                s => s,
            }),
            lock_watch: lock::Watch::default(),
            config,
        }
    }

    /// The endpoint every client talks to, when one is configured.
    pub fn endpoint(&self) -> Option<&str> {
        self.config.endpoint_url()
    }
}

/// An SDK error as one line: the service's code and message when it answered,
/// else the transport's reason (no credentials, connection refused); never the
/// request.
pub fn why<E, R>(e: &aws_sdk_cloudformation::error::SdkError<E, R>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(s) = e.as_service_error()
        && let Some(code) = s.code()
    {
        return format!("{code}: {}", s.message().unwrap_or_default());
    }
    use std::fmt::Write;
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            let _ = write!(s, ": {t}");
        }
        src = inner.source();
    }
    s
}

/// The service's error code and message of an SDK error, if the service answered.
pub fn service_error<E, R>(
    e: &aws_sdk_cloudformation::error::SdkError<E, R>,
) -> Option<(String, String)>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    e.as_service_error().map(|s| {
        (
            s.code().unwrap_or_default().to_string(),
            s.message().unwrap_or_default().to_string(),
        )
    })
}

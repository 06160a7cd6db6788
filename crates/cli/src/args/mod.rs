//! Command-line arguments. Every command has `--help` with examples.

// clap prints these doc comments as `--help` text, where `<env>` and `<pr>` are
// placeholders for the reader, not HTML tags.
#![allow(rustdoc::invalid_html_tags)]

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod monitor;
mod previews;
pub use monitor::{ActivityArgs, AlarmsArgs, LogsArgs, MetricsArgs, SpotInterruptArgs, TraceArgs};
pub use previews::{ChangedArgs, PreviewAction, PreviewArgs, WorkflowsArgs};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the monorepo has errors (diagnostics were printed)
  2  invalid command-line usage
  3  cannot resolve: unmapped branch, unknown service or environment, git unavailable
  4  I/O failure (a file could not be read or written; the local cloud's supervisor
     went away mid-command or holds the environment without answering)";

#[derive(Parser, Debug)]
#[command(
    name = "pantstack",
    version,
    about = "Run a monorepo of containerized services on AWS (ECS Fargate, ALB, SQS, S3) and on this machine",
    long_about = None,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Monorepo root (default: the nearest directory upwards holding stack/infra/foundation)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Output format of reporting commands
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// When to use colour (auto: only on a terminal, and not with NO_COLOR set)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// An HTTP service behind the load balancer
    Http,
    /// A queue worker
    Worker,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the whole monorepo and report every problem at once
    #[command(after_help = "Examples:
  pantstack check
  pantstack check --root examples --format json

Every error names the file, line, column and key, and says what would be valid.
Exits 1 when there is any error; warnings alone exit 0.")]
    Check,

    /// Show which environment a branch or pull request deploys to, and its settings
    #[command(after_help = "Examples:
  pantstack env                  # from git (or GITHUB_REF=refs/pull/N/merge in CI)
  pantstack env --branch dev     # → test
  pantstack env --branch main    # → prod
  pantstack env --pr 42          # → preview-42
  pantstack env --env prod --format json

Branches map to environments under `environments:` in
stack/infra/foundation/pantstack.yaml. A branch mapped to none exits 3.")]
    Env(EnvArgs),

    /// Show the resolved configuration of a service in an environment, with the source of each value
    #[command(after_help = "Examples:
  pantstack config api --env test
  pantstack config api --env prod --set minCapacity=3
  pantstack config foundation --env prod --format json

Values resolve as default ← manifest (pantstack.yaml) ← stack file (Pulumi.<env>.yaml)
← --set. Every setting can be set in a stack file as `pantstack:<key>`.")]
    Config(ConfigArgs),

    /// Print the image tag of a service build, by the seed's tagging strategy
    #[command(after_help = "Examples:
  pantstack tag api                                  # branch and sha from git
  pantstack tag api --branch feature/Login --sha 0123456789abcdef   # api-feature-login-0123456
  pantstack tag api --worker --branch dev --sha abc1234             # api-worker-dev-abc1234
  pantstack tag api --version 1.2.3                                 # api-v1.2.3

Branch names are made valid for Docker tags and shortened to keep tags within 128
characters; shas are shortened to 7; versions must be semantic versions.")]
    Tag(TagArgs),

    /// Write the CloudFormation templates of an environment and the order to deploy them
    #[command(after_help = "Examples:
  pantstack synth --env test                 # → .pantstack/synth/test/
  pantstack synth --env prod --out cfn/prod
  pantstack synth --pr 42                    # preview-42
  pantstack synth --env prod --region eu-west-1   # the same stacks in another region

Writes {project}-shared.json (ECR repository, GitHub OIDC provider),
{project}-{env}-foundation.json (VPC, KMS key, CI and deploy roles), one
{project}-{env}-{service}.json per service (plus -replica for buckets replicated to
another region) and stacks.json: stack names, regions, parameters, deployment order
and the SecureString parameters that must exist. Output is the same byte for byte
for the same monorepo. Nothing contacts AWS.")]
    Synth(SynthArgs),

    /// AWS: create or update what an administrator deploys once: the shared stack (ECR, template bucket, OIDC provider), the environment's foundation and the service-linked roles
    #[command(after_help = "Examples:
  pantstack bootstrap --env test
  pantstack bootstrap --env prod --profile admin
  pantstack bootstrap --pr 1        # the foundation every preview-<pr> shares

Needs an administrator's credentials (the standard AWS chain: environment,
--profile, SSO, instance role; AWS_ENDPOINT_URL is honoured). Creates the ECS, ELB
and Application Auto Scaling service-linked roles where the account lacks them,
then deploys {project}-shared and {project}-{env}-foundation through change sets,
and prints the CI role to put in GitHub. Run it again after changing the
foundation manifest; a stack without changes is `unchanged`.")]
    Bootstrap(BootstrapArgs),

    /// AWS: what `deploy --target aws` would change, stack by stack (change sets created, described and deleted)
    #[command(after_help = "Examples:
  pantstack diff --env test
  pantstack diff --pr 42 --format json

For each stack: added, modified (with replacement True/Conditional) and removed
resources, or `no changes`. Nothing is executed. Images are not built: the tags of
the current commit are compared.")]
    Diff(DiffArgs),

    /// Run every service of an environment on this machine (the local cloud)
    #[command(after_help = "Examples:
  pantstack up                      # environment of the current branch (else the first one)
  pantstack up --env test --detach  # in the background; then `pantstack status`
  pantstack up --runtime docker     # tasks as containers of the services' images
  pantstack up api                  # only some services (the others do not start)

Each HTTP service gets a load balancer on 127.0.0.1 whose port stays the same across
restarts. State, logs and access logs live in .pantstack/local/<env>/. Ctrl-C (or
`pantstack down`) drains and stops everything. A second `up` attaches to the running
one; `up` after a crash cleans up and starts again on the same ports. A supervisor that
holds the environment but does not answer is left alone: `up` exits 4 with its pid.
The state is private to your user (directories 0700, files 0600, whatever the umask).

With --target aws (or PANTSTACK_TARGET=aws): deploys the environment to AWS, as
`pantstack deploy --target aws` does.")]
    Up(UpArgs),

    /// Drain and stop the local cloud
    #[command(after_help = "Examples:
  pantstack down
  pantstack down --env test

Returns once every task has stopped and the supervisor has exited (at most 30 s after
it stopped its tasks), so `pantstack down && pantstack up` works.

With --target aws: destroys the environment on AWS — its service stacks, then its
foundation (never the shared stack, nor the foundation previews share). Buckets
that are not retained are emptied first (every version). Asks on a terminal;
--yes otherwise; prod needs --allow-prod too. --images and --parameters also
delete the environment's images and SSM parameters. Retained resources are listed.

  pantstack down --target aws --env preview-42 --yes --images --parameters")]
    Down(DownArgs),

    /// Show the local cloud: services, revisions, tasks with health, URLs
    #[command(after_help = "Examples:
  pantstack status
  pantstack status --format json
  pantstack status --target aws --env test   # stacks, drift, tasks, last deployment, URLs")]
    Status(LocalArgs),

    /// Roll out a new revision of a service in the local cloud (ECS rolling update)
    #[command(after_help = "Examples:
  pantstack deploy api
  pantstack deploy --target aws --env test       # build, push, every stack, ECS's verdict
  pantstack deploy api --target aws --env test   # one service's images and stack

Re-reads the manifests, makes a new revision of every role of the service and rolls
it out under minHealthyPercent / maxPercent. If its tasks keep failing, the circuit
breaker fails the deployment and the last completed revision comes back by itself;
the reason (failed checks, exit codes, last log lines) is printed. Exits 1 then, and
4 if the supervisor goes away before the deployment ends (the next `up` records it
as interrupted in `pantstack deployments`).

With --target aws: builds the images with Docker, tags them by the seed's strategy
and pushes them to ECR; checks that every secret exists; uploads the templates to
the template bucket; deploys one change set per stack in dependency order
(independent stacks at once), then reports ECS's verdict per service (completed,
or failed and rolled back by the circuit breaker, with the stopped tasks' reasons
and last log lines) and the outputs (URLs, queues, buckets). Exits 1 on failure.")]
    Deploy(DeployArgs),

    /// Roll a service back to its previous completed revision
    #[command(after_help = "Examples:
  pantstack rollback api")]
    Rollback(ServiceArgs),

    /// Set how many tasks a service runs in the local cloud
    #[command(after_help = "Examples:
  pantstack scale api 3
  pantstack scale api-worker 0")]
    Scale(ScaleArgs),

    /// Show the logs of a service's tasks (or of every service, interleaved), with timestamps
    #[command(after_help = "Examples:
  pantstack logs                    # every service, interleaved by time
  pantstack logs api
  pantstack logs api -f             # keeps following, tasks started later included
  pantstack logs api-worker --since 10m
  pantstack logs api --grep 'job 42' --since 2026-12-05T01:00:00Z --until 30m
  pantstack logs api --format json  # one JSON object a line: service, unit, task, timestamp, message

Each unit (`api`, `api-worker`) is a log group, each task (`7`) and build
(`build-N`) a stream in it. --grep keeps the lines whose message contains PATTERN,
a plain substring (case-sensitive unless -i), not a regular expression. --since and
--until take a duration back from now (30s, 10m, 2h, 1d) or an RFC 3339 time. A
line that is a JSON object is shown by its fields: level, message, then the others.
Retention: `local.log_max_mib` (64 MiB per unit by default) and `logs.retention_days`.

With --target aws: the service's CloudWatch Logs, across its tasks (-f follows).")]
    Logs(LogsArgs),

    /// Follow one request across services: the load balancers' access-log entries and the log lines that carry its id
    #[command(after_help = "Examples:
  pantstack trace 3f0c…                     # the X-Request-Id a response carried
  pantstack trace Root=1-675…               # or its X-Amzn-Trace-Id
  pantstack trace req-123 --format json

Every load balancer's access log (`.pantstack/local/<env>/access/`, rolled files
too) is searched for entries whose request id or trace id is ID, and every task's
log for lines that contain it; they are printed in time order, across services. A
service that passes X-Request-Id on to the services it calls (as the example's
`reports` does) shows up in each of their load balancers.")]
    Trace(TraceArgs),

    /// Show the metrics of the local cloud: tasks' CPU and memory, the load balancers', queues', and your own
    #[command(after_help = "Examples:
  pantstack metrics                                   # every service, last 15 minutes
  pantstack metrics api --metric CPUUtilization --since 1h
  pantstack metrics api --metric TargetResponseTime --stat p99
  pantstack metrics api --format json

Built-in metrics carry AWS's names and namespaces (AWS/ECS, ECS/ContainerInsights,
AWS/ApplicationELB, AWS/SQS), one datapoint per local.metrics.period (10 s by
default; AWS: 60 s), kept local.metrics.retention (6 h by default). A service's own
metrics (PutMetricData into its PANTSTACK_METRICS_NAMESPACE) show beside them.
Any AWS SDK reads the same through GetMetricData on the local endpoint.")]
    Metrics(MetricsArgs),

    /// Show the scaling activities of the local cloud (target tracking), with their causes
    #[command(after_help = "Examples:
  pantstack activity api
  pantstack activity --format json

Target tracking follows the stack file's scaling.* settings as on AWS: out after 3
periods above the target, in after 15 below 0.9 x the target, within scaling.min and
scaling.max, with cooldowns, never in during a deployment (local.autoscaling: false
turns it off).")]
    Activity(ActivityArgs),

    /// Show the alarms of the local cloud (the ones the aws target synthesizes) and their states
    #[command(after_help = "Examples:
  pantstack alarms
  pantstack alarms api --history

States are OK, ALARM and INSUFFICIENT_DATA as in CloudWatch. On each change the local
cloud runs local.alarms.command and POSTs to local.alarms.url when they are set; with
deployment.rollback_alarms: true, the target-5xx and unhealthy-hosts alarms going to
ALARM roll a deployment back.")]
    Alarms(AlarmsArgs),

    /// Drill a Fargate Spot interruption: a FARGATE_SPOT task gets the two-minute warning and is replaced
    #[command(after_help = "Examples:
  pantstack spot-interrupt api
  pantstack spot-interrupt api --all          # every Spot task at once
  pantstack spot-interrupt api --task 7

Which tasks run on FARGATE_SPOT follows the capacity provider strategy
(capacity.on_demand_base, capacity.on_demand_weight, capacity.spot_weight; the
seed's: 1 task on FARGATE, then 1:4), oldest tasks first. As on Fargate, the task
is deregistered and gets SIGTERM at once (the `spot-interruption` event is the
task-state-change notice), and SIGKILL after the service's stop timeout
(local.stop_timeout); the scheduler starts its replacement. `pantstack status`
shows each task's capacity provider and why the interrupted one stopped.")]
    SpotInterrupt(SpotInterruptArgs),

    /// Run a command in a running task: its environment (processes) or its container (Docker)
    #[command(after_help = "Examples:
  pantstack exec api -- env                   # what the task sees (credentials and secrets too)
  pantstack exec api-worker -- sh -c 'echo $JOBS_QUEUE_URL'
  pantstack exec api --task 7 -- ls /

For a process task: the command runs on this machine in the service's directory with
exactly the task's environment (its variables, secrets, AWS credentials and endpoint).
For a container: `docker exec` in it (ECS Exec's counterpart).")]
    Exec(ExecArgs),

    /// Show the deployment history of a service, with outcomes
    #[command(after_help = "Examples:
  pantstack deployments api")]
    Deployments(ServiceArgs),

    /// Remove an environment's deploy lock on AWS, or the previews' lock (a run that died holding it)
    #[command(after_help = "Examples:
  pantstack unlock --target aws --env test
  pantstack unlock --target aws --env test --yes    # without a terminal (CI)
  pantstack unlock --previews                       # the previews' lock of `preview up`

A deploy or destroy on AWS holds its environment's lock (in the template bucket), `preview up`
the previews' lock; a lock expires 15 minutes after its holder last renewed it (every 5 while
it runs). unlock removes the lock it showed at once, after showing who holds it and asking.")]
    Unlock(UnlockArgs),

    /// Estimate an environment's monthly AWS bill from its templates and a dated price table
    #[command(after_help = "Examples:
  pantstack cost --env prod
  pantstack cost --pr 42 --format json

Per stack and line: Fargate vCPU and GB hours at the services' minimum and maximum
task counts (FARGATE_SPOT by the capacity weights), load balancers with their LCUs
and addresses, NAT gateways, interface endpoints, KMS keys, alarms, dashboards and
log ingestion, from crates/synth/prices/aws-prices.json (its date is printed).
Traffic- and data-dependent charges are not counted. Nothing contacts AWS.")]
    Cost(CostArgs),

    /// Check that every environment (and previews.max previews) fits AWS's quotas
    #[command(after_help = "Examples:
  pantstack quotas
  pantstack quotas --format json
  pantstack quotas --target aws              # the account's applied quotas
  pantstack quotas --target aws --profile admin --region eu-west-1

Synthesizes each environment and counts what it creates: load balancers, target
groups, listener rules, target groups and targets per load balancer, IAM roles,
stacks, VPCs, Elastic IPs, buckets, and the Fargate On-Demand and Spot vCPUs of
the services' tasks (at the minimum and the maximum task counts, split by each
service's capacity provider strategy), per region or per account, against AWS's
default quotas. With --target aws (or PANTSTACK_TARGET=aws) the limits are the
account's applied quotas, read from Service Quotas (GetServiceQuota) in each
environment's region; a quota it does not answer (no code, no permission,
unreachable) keeps its default, and the report says which and why. Exits 1 naming
each quota the monorepo would exceed and what to change.")]
    Quotas(QuotasArgs),

    /// AWS: preview environments of pull requests (preview-<pr>): up, down, list, gc
    #[command(after_help = "Examples:
  pantstack preview up --pr 42                 # every service (or those named)
  pantstack preview list
  pantstack preview down --pr 42 --yes         # stacks, data, images and parameters
  pantstack preview gc --yes                   # previews idle longer than previews.ttl
  pantstack preview touch --pr 42              # a push that changed none of its services

A preview runs each service with the settings of the `preview` stack files
(reduced capacity), in the foundation every preview shares (`pantstack bootstrap
--pr 1`, once). At most previews.max exist at once: `up` of one more is refused,
naming the oldest; the user chooses (`preview down --pr N`, or `up --replace-oldest`).
`up` counts the previews and claims the new one's slot under the previews' lock,
so two pull requests opened at once cannot both pass the cap. Every `up` (even one
that changes nothing) and `touch` mark a preview active: gc destroys those idle
for previews.ttl. Its secrets are the declared preview values (`pantstack secrets
set --target aws --env preview SERVICE NAME`, once per secret), copied to
/{project}/preview-<pr>/. PANTSTACK_NOW (RFC 3339 or Unix seconds) sets the clock
gc and list judge by and activity is stamped with.")]
    Preview(PreviewArgs),

    /// Print the services a change touches (their module, image context or the foundation)
    #[command(after_help = "Examples:
  pantstack changed --base origin/dev          # against a branch
  pantstack changed --base \"$BEFORE\" --format json
  pantstack changed --deployed --env test      # against what test runs (AWS)

The generated deploy workflow builds and deploys only these. A base that git does
not know (a new branch's 000…, a force-pushed commit) touches every service.")]
    Changed(ChangedArgs),

    /// Write the GitHub Actions workflows of the monorepo (checks, deploys, previews)
    #[command(after_help = "Examples:
  pantstack workflows                          # → <git root>/.github/workflows/
  pantstack workflows --check                  # exit 1 when they differ from the manifests
  pantstack workflows --out ci/ --install 'cargo install --locked --path tools/pantstack'

Checks on every pull request (check, synth, diff of its preview); deploys of each
environment from its branches (prod behind its protected GitHub environment),
building only the services whose files changed; previews opened, updated and
destroyed with their pull request, and a daily gc. Every AWS step assumes the
environment's CI role through GitHub OIDC (set the repository variable
AWS_ACCOUNT_ID); actions are pinned by commit.")]
    Workflows(WorkflowsArgs),

    /// Print `export AWS_...` lines that point a shell's AWS tools at the local cloud
    #[command(
        name = "aws-env",
        after_help = "Examples:
  eval \"$(pantstack aws-env)\"
  aws sqs list-queues
  aws ssm get-parameters-by-path --path /shop/test --recursive
  eval \"$(pantstack aws-env --as api)\"   # what the api service may do, and no more

Prints AWS_ENDPOINT_URL (the local cloud's SQS, S3 and SSM endpoint), the access key
and secret issued to people for this local cloud (they may do anything), and its
region. With --as UNIT, a unit's own credentials instead, limited to what its
service's task role may do on AWS. Every AWS SDK and the AWS CLI read these. The
local cloud must have run at least once."
    )]
    AwsEnv(AwsEnvArgs),

    /// Manage a service's secrets in the local cloud (SSM SecureString parameters)
    #[command(after_help = "Examples:
  printf %s \"$TOKEN\" | pantstack secrets set api API_TOKEN
  pantstack secrets set api API_TOKEN          # prompts, without echo
  pantstack secrets list                       # every declared secret; flags rotation due
  pantstack secrets get api API_TOKEN          # metadata; --reveal prints the value
  pantstack secrets rotate api API_TOKEN       # a new value (stdin or prompt), dated
  pantstack secrets rm api API_TOKEN
  pantstack secrets rotate-key                 # re-encrypt everything under a new master key
  pantstack secrets move-key                   # after moving or copying the project

A secret of service S is the parameter /{project}/{env}/S/NAME, as on AWS. Values are
read from standard input or a prompt, never from the command line, and are stored
encrypted (AES-256-GCM) under a master key kept outside the project tree. Tasks get
them as environment variables when they start. Works whether or not the local cloud
runs.")]
    Secrets(SecretsArgs),

    /// Write a consistent backup of a local cloud: queues, buckets, secrets, deployments
    #[command(after_help = "Examples:
  pantstack backup                             # into .pantstack/backups/<env>-<time>
  pantstack backup /mnt/backups/shop-test      # a new directory (never over anything)
  pantstack backup --env prod --format json    # the manifest as JSON

One point in time of the environment's local cloud, taken whether or not it runs
(through the supervisor while it serves, else from its state on disk): every SQS
queue with its messages (ids, bodies, attributes, receive counts, visibility), every
S3 bucket with all its versions, delete markers and configuration, every SSM
parameter with its versions, labels and tags (SecureStrings stay encrypted: the
master key is not in the backup), and the deployment history. The directory holds
backup.json (format version, pantstack version, time, contents, SHA-256 of every
file); it is written beside its destination and renamed into place, files 0600.
docs/operations.md has the recovery procedures.")]
    Backup(BackupArgs),

    /// Rebuild a local cloud's state from a backup (`pantstack backup`)
    #[command(after_help = "Examples:
  pantstack restore .pantstack/backups/test-2026-12-05T01-20-00Z
  pantstack restore /mnt/backups/shop-test --force   # replace the state there is

Verifies the backup first (format version, every file's size and SHA-256, every
record replayed) and refuses a damaged, truncated or foreign one, naming the file.
Never touches a running local cloud (`pantstack down` first). Existing state is
replaced only with --force, and is then moved aside to
.pantstack/local/<env>/replaced-<time>/, not deleted. The restored secrets open only
with the master key they were sealed with: restore says which key file is needed
when this machine lacks it. Then `pantstack up` serves the restored data.")]
    Restore(RestoreArgs),

    /// Create a new monorepo in the seed's layout (foundation + an HTTP service with a worker)
    #[command(after_help = "Examples:
  pantstack init demo
  pantstack init demo --project shop --github acme/shop
  cd demo && pantstack check && pantstack env --branch dev")]
    Init(InitArgs),

    /// Add a service to the monorepo
    #[command(after_help = "Examples:
  pantstack new billing --kind http
  pantstack new mailer --kind worker

Writes modules/<name>/ (code, Dockerfile, build.sh) and
modules/<name>/infrastructure/ (Pulumi.yaml, a stack file per environment, pantstack.yaml).")]
    New(NewArgs),

    /// Print shell completions
    #[command(after_help = "Examples:
  pantstack completions bash > /etc/bash_completion.d/pantstack
  pantstack completions zsh > \"${fpath[1]}/_pantstack\"
  pantstack completions fish > ~/.config/fish/completions/pantstack.fish")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct EnvArgs {
    /// Branch to resolve (default: the current git branch)
    #[arg(long, conflicts_with_all = ["pr", "env"])]
    pub branch: Option<String>,
    /// Pull request number: its preview environment
    #[arg(long, conflicts_with = "env")]
    pub pr: Option<u64>,
    /// An environment by name (test, prod, preview-42, ...)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Service name, or `foundation`
    pub service: String,
    /// Environment (default: from --branch, --pr or git as `pantstack env` resolves it)
    #[arg(long)]
    pub env: Option<String>,
    /// Override a setting: KEY=VALUE (repeatable), e.g. minCapacity=2
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Only these services (default: every service)
    pub services: Vec<String>,
    /// Environment (default: the current branch's; `prod` only when named)
    #[arg(long)]
    pub env: Option<String>,
    /// Run in the background and return once every service is up
    #[arg(long)]
    pub detach: bool,
    /// Run tasks as processes or Docker containers (default: each manifest's `local.runtime`)
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    /// Internal: the background supervisor started by --detach
    #[arg(long, hide = true)]
    pub supervise: bool,
    /// AWS: wait up to this long (`90s`, `15m`) for another deploy or destroy of the environment to release its lock (default: refuse at once)
    #[arg(long, value_name = "DURATION")]
    pub lock_wait: Option<String>,

    #[command(flatten)]
    pub target: TargetArgs,
}

/// Where a command acts: the local cloud (default) or AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The local cloud on this machine
    Local,
    /// AWS: CloudFormation, ECS, ECR (credentials from the standard AWS chain)
    Aws,
}

#[derive(Args, Debug, Default, Clone)]
pub struct TargetArgs {
    /// Where to act: `local` (the default) or `aws`; PANTSTACK_TARGET=aws sets it for a shell or CI job
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// AWS: a profile of ~/.aws/config (aws target only)
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS: the region, instead of the environment's (aws target only)
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RuntimeArg {
    Process,
    Docker,
}

#[derive(Args, Debug)]
pub struct QuotasArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Environment (default: the one running, if only one is; on AWS: the branch's)
    #[arg(long)]
    pub env: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// AWS: destroy without asking (required without a terminal)
    #[arg(long)]
    pub yes: bool,
    /// AWS: destroying a production environment needs this as well
    #[arg(long)]
    pub allow_prod: bool,
    /// AWS: also delete the environment's images from ECR
    #[arg(long)]
    pub images: bool,
    /// AWS: also delete the environment's parameters (its secrets) from SSM
    #[arg(long)]
    pub parameters: bool,
    /// AWS: also empty and delete the buckets the stacks retain (their data is lost)
    #[arg(long)]
    pub buckets: bool,
    /// AWS: wait up to this long (`90s`, `15m`) for another deploy or destroy of the environment to release its lock (default: refuse at once)
    #[arg(long, value_name = "DURATION")]
    pub lock_wait: Option<String>,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Environment (default: the current branch's)
    #[arg(long, conflicts_with = "previews")]
    pub env: Option<String>,
    /// The previews' lock (`preview up`'s count against previews.max and slot claim) instead of an environment's; AWS
    #[arg(long)]
    pub previews: bool,
    /// Remove the lock without asking (required without a terminal)
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// Service (every role) or one role (`api-worker`); on AWS: every service when left out
    pub service: Option<String>,
    /// Environment (default: the one running, if only one is; on AWS: the branch's)
    #[arg(long)]
    pub env: Option<String>,
    /// AWS, whole environment: also delete the stacks of services no longer in the monorepo
    #[arg(long)]
    pub prune: bool,
    /// AWS: wait up to this long (`90s`, `15m`) for another deploy or destroy of the environment to release its lock (default: refuse at once)
    #[arg(long, value_name = "DURATION")]
    pub lock_wait: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct BootstrapArgs {
    /// Environment (default: the current branch's)
    #[arg(long, conflicts_with = "pr")]
    pub env: Option<String>,
    /// Pull request number: the previews' shared foundation
    #[arg(long)]
    pub pr: Option<u64>,
    /// AWS: a profile of ~/.aws/config
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS: the region, instead of the environment's
    #[arg(long)]
    pub region: Option<String>,
    /// The account's existing GitHub OIDC provider (an account has one per URL)
    #[arg(long, value_name = "ARN")]
    pub oidc_provider_arn: Option<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Environment (default: the current branch's)
    #[arg(long, conflicts_with = "pr")]
    pub env: Option<String>,
    /// Pull request number: its preview environment
    #[arg(long)]
    pub pr: Option<u64>,
    /// AWS: a profile of ~/.aws/config
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS: the region, instead of the environment's
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Args, Debug)]
pub struct AwsEnvArgs {
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
    /// The credentials of a service unit (`api`, `api-worker`) instead of a person's
    #[arg(long = "as", value_name = "UNIT")]
    pub unit: Option<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The new directory to write (default: .pantstack/backups/<env>-<UTC time>)
    #[arg(value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Environment (default: the one running, else the current branch's)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup directory (`pantstack backup` wrote it)
    #[arg(value_name = "DIR")]
    pub from: PathBuf,
    /// Environment (default: the backup's)
    #[arg(long)]
    pub env: Option<String>,
    /// Replace the environment's existing state (moved aside, not deleted)
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub action: SecretsAction,
    /// Environment (default: the one running, else the current branch's; changing
    /// or deleting prod's secrets needs --env prod)
    #[arg(long, global = true)]
    pub env: Option<String>,
    /// Where the secrets are: `local` (the default) or `aws` (SSM of the environment's region)
    #[arg(long, value_enum, global = true)]
    pub target: Option<Target>,
    /// AWS: a profile of ~/.aws/config
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS: the region, instead of the environment's
    #[arg(long, global = true)]
    pub region: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SecretsAction {
    /// Set a secret's value (from standard input, or a prompt on a terminal)
    Set(SecretName),
    /// Show a secret's version and dates; --reveal prints its value
    Get {
        #[command(flatten)]
        name: SecretName,
        /// Print the value itself
        #[arg(long)]
        reveal: bool,
    },
    /// List declared secrets: set or not, last rotation, rotation due
    List {
        /// Only this service
        service: Option<String>,
    },
    /// Delete a secret (every version)
    Rm(SecretName),
    /// Give an existing secret a new value; its date is the rotation date
    Rotate(SecretName),
    /// Re-encrypt every secret under a new master key, then drop the old key
    RotateKey,
    /// After moving or copying the project: take its master key along (the key
    /// file is named after the project's directory)
    MoveKey,
}

#[derive(Args, Debug)]
pub struct SecretName {
    /// The service that declares the secret
    pub service: String,
    /// The secret's name (the environment variable its tasks see)
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Service (every role) or one role (`api-worker`)
    pub service: String,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Service (every role) or one role (`api-worker`)
    pub service: String,
    /// Desired number of tasks (0..64)
    #[arg(value_parser = clap::value_parser!(u32).range(0..=64))]
    pub count: u32,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Service (its HTTP role first) or one role (`api-worker`)
    pub service: String,
    /// The task (default: the newest running task of the unit)
    #[arg(long)]
    pub task: Option<u64>,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Environment (default: from --branch, --pr or git as `pantstack env` resolves it)
    #[arg(long, conflicts_with_all = ["branch", "pr"])]
    pub env: Option<String>,
    /// Branch whose environment to synthesize
    #[arg(long, conflicts_with = "pr")]
    pub branch: Option<String>,
    /// Pull request number: its preview environment
    #[arg(long)]
    pub pr: Option<u64>,
    /// Output directory (default: .pantstack/synth/<env> under the monorepo root)
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Region to synthesize for, instead of the environment's (templates name no region)
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Args, Debug)]
pub struct CostArgs {
    /// Environment (default: from --branch, --pr or git as `pantstack env` resolves it)
    #[arg(long, conflicts_with_all = ["branch", "pr"])]
    pub env: Option<String>,
    /// Branch whose environment to estimate
    #[arg(long, conflicts_with = "pr")]
    pub branch: Option<String>,
    /// Pull request number: its preview environment
    #[arg(long)]
    pub pr: Option<u64>,
    /// Region whose prices to use, instead of the environment's
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Service name
    pub service: String,
    /// Tag the service's worker image ({service}-worker-...)
    #[arg(long)]
    pub worker: bool,
    /// Branch (default: the current git branch)
    #[arg(long, conflicts_with = "version")]
    pub branch: Option<String>,
    /// Commit (default: git HEAD)
    #[arg(long, conflicts_with = "version")]
    pub sha: Option<String>,
    /// Release version (semver): {service}-v{version}
    #[arg(long)]
    pub version: Option<String>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to create (must not exist or be empty)
    pub dir: PathBuf,
    /// Project slug used in resource names (default: the directory's name)
    #[arg(long)]
    pub project: Option<String>,
    /// GitHub repository trusted by the CI role, as OWNER/REPO
    #[arg(long, value_name = "OWNER/REPO")]
    pub github: Option<String>,
    /// AWS region of the environments
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Service name (lowercase letters, digits, `-`)
    pub name: String,
    /// What the service is
    #[arg(long, value_enum)]
    pub kind: Kind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

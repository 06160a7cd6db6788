//! A service: its manifest (`modules/<service>/infrastructure/pantstack.yaml`), read
//! into the typed model.
//!
//! - this file: the model's types of a service;
//! - `read`: reading a manifest into them ([`read_service`]);
//! - `check`: the checks of the `${kind:name}` references in its variables (the
//!   grammar is [`crate::refs`]'s).

mod check;
mod read;

pub use read::read_service;

use crate::settings::Layer;
use pantstack_manifest::Span;

/// A value with the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub file: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Relative to the module directory (`modules/<service>/`).
    pub dockerfile: String,
    pub context: String,
    /// Command run in the module directory before `docker build` (e.g. a static
    /// `cargo build` whose binary the Dockerfile copies).
    pub build: Option<Vec<String>>,
}

impl Image {
    fn default_for() -> Self {
        Image {
            dockerfile: "Dockerfile".into(),
            context: ".".into(),
            build: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ListenerRule {
    pub path: Option<String>,
    pub host: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Http {
    /// Container command: the whole argv (`["/api", "serve"]`), run whatever the
    /// image's ENTRYPOINT and CMD are; `None` runs the image's.
    pub command: Option<Vec<String>>,
    /// Command that runs the service without Docker, from the module directory.
    pub local: Option<Vec<String>>,
    pub rules: Vec<ListenerRule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Worker {
    pub queue: Located<String>,
    pub command: Option<Vec<String>>,
    pub local: Option<Vec<String>>,
    /// A separate image for the worker; `None` builds the service's image.
    pub image: Option<Image>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub max_receive_count: i64,
    pub retention_secs: u64,
}

/// How another service may use a queue or bucket (`grants:`), in the terms users
/// think in; `crate::iam` maps each to the IAM actions it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A queue: send messages to it.
    Send,
    /// A queue: receive, delete and change the visibility of its messages.
    Consume,
    /// A queue: both.
    SendConsume,
    /// A bucket: list it and read its objects (any version).
    Read,
    /// A bucket: write and delete its objects.
    Write,
    /// A bucket: both.
    ReadWrite,
}

impl Access {
    pub const QUEUE: &[(&str, Access)] = &[
        ("send", Access::Send),
        ("consume", Access::Consume),
        ("send-consume", Access::SendConsume),
    ];
    pub const BUCKET: &[(&str, Access)] = &[
        ("read", Access::Read),
        ("write", Access::Write),
        ("read-write", Access::ReadWrite),
    ];

    pub fn as_str(self) -> &'static str {
        Access::QUEUE
            .iter()
            .chain(Access::BUCKET)
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// `grants: { billing: send }` on a queue or bucket: the service `to` may use it.
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    pub to: Located<String>,
    pub access: Access,
}

/// A reference to another service's queue or bucket in a variable:
/// `${queue:api.jobs}`, `${dlq:api.jobs}`, `${bucket:api.results}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ForeignRef {
    pub kind: String,
    pub owner: String,
    pub name: String,
    pub field: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Queue {
    pub name: String,
    /// Other services that may use it.
    pub grants: Vec<Grant>,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    pub visibility_timeout_secs: u64,
    pub retention_secs: u64,
    pub delay_secs: u64,
    pub receive_wait_secs: u64,
    pub max_message_bytes: i64,
    pub dead_letter: Option<DeadLetter>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub name: String,
    /// Other services that may use it.
    pub grants: Vec<Grant>,
    pub versioning: bool,
    pub noncurrent_expiry_days: Option<i64>,
    pub replication_region: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Secret {
    /// The environment variable the task sees.
    pub name: String,
    pub rotation_days: Option<i64>,
    pub description: Option<String>,
    /// Other services that may read it (`grants: { reports: read }`).
    pub grants: Vec<Grant>,
    /// `from: api`: another service's secret of this name, which it granted; the
    /// owner sets and rotates it.
    pub from: Option<Located<String>>,
}

impl Secret {
    /// The service whose parameter holds the value.
    pub fn owner<'a>(&'a self, service: &'a str) -> &'a str {
        self.from
            .as_ref()
            .map(|f| f.value.as_str())
            .unwrap_or(service)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    /// `modules/<service>`.
    pub dir: String,
    pub manifest_file: String,
    pub description: Option<String>,
    pub image: Image,
    pub http: Option<Http>,
    pub worker: Option<Worker>,
    pub queues: Vec<Queue>,
    pub buckets: Vec<Bucket>,
    pub secrets: Vec<Secret>,
    /// Plain environment variables; values may reference `${queue:NAME}`,
    /// `${dlq:NAME}`, `${bucket:NAME}`.
    pub variables: Vec<(String, String)>,
    /// `environments.<env>.variables`: values that replace or add to `variables` in
    /// one environment (`preview` applies to every `preview-<pr>`), on AWS and in the
    /// local cloud alike.
    pub env_variables: Vec<EnvVariables>,
    /// `calls: [billing]`: services this one calls over HTTP (ECS Service Connect on
    /// AWS; the callee's load balancer locally), each reached at `<NAME>_URL`.
    pub calls: Vec<Located<String>>,
    /// References to other services' queues and buckets in `variables` (checked
    /// against their owners' grants once every service is read).
    pub foreign: Vec<ForeignRef>,
    /// `local.build`: the local cloud's build phase for the process runtime, run in
    /// the module directory once per revision before its tasks start; what it
    /// writes to `$PANTSTACK_ARTIFACTS` is kept with the revision.
    pub local_build: Option<Vec<String>>,
    /// Settings written in the manifest.
    pub settings: Layer,
}

/// `environments.<env>:` of a service manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvVariables {
    pub env: String,
    pub span: Span,
    pub variables: Vec<(String, String)>,
}

/// The variable through which a caller reaches `service` (`calls:`).
pub fn call_variable(service: &str) -> String {
    format!("{}_URL", service.to_ascii_uppercase().replace('-', "_"))
}

impl Service {
    /// The variables of the service in environment `env`: `variables` with the
    /// environment's own values applied (`preview` for every `preview-<pr>`).
    pub fn variables_for(&self, env: &str) -> Vec<(String, String)> {
        let mut out = self.variables.clone();
        let preview = env.starts_with("preview-");
        for e in &self.env_variables {
            if e.env == env || (preview && e.env == "preview") {
                for (k, v) in &e.variables {
                    match out.iter_mut().find(|(n, _)| n == k) {
                        Some(slot) => slot.1 = v.clone(),
                        None => out.push((k.clone(), v.clone())),
                    }
                }
            }
        }
        out
    }
}

/// ECS's `EntryPoint` and `Command` for the manifest's `command` (the whole argv):
/// the first word replaces the image's ENTRYPOINT, the rest its CMD. With
/// `EntryPoint` set Docker never appends the image's CMD, so the container runs
/// exactly the manifest's argv whatever the image's ENTRYPOINT and CMD are (`Command`
/// alone would only replace CMD: `/api` + `/api serve`). The local Docker runtime
/// runs the same split (`docker run --entrypoint FIRST IMAGE REST...`: the docker
/// CLI's `--entrypoint` takes one word). `None` for an empty command.
pub fn entry_point_and_command(argv: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    let (first, rest) = argv.split_first()?;
    Some((vec![first.clone()], rest.to_vec()))
}

//! CloudFormation synthesis: the seed architecture as templates.
//!
//! `synth(repo, env)` turns the validated model of a monorepo into the templates of
//! one environment — the shared stack (ECR repository, GitHub OIDC provider), the
//! environment's foundation (VPC, KMS key, CI and deploy roles) and one stack per
//! service (ALB, ECS on Fargate/Fargate Spot, SQS, S3, IAM, autoscaling, alarms,
//! dashboard) plus, for buckets replicated to another region, a replica stack there —
//! and a plan saying in which order and with which parameters to deploy them.
//!
//! Pure: no I/O, no clock, no randomness. The same model gives the same bytes.

#![forbid(unsafe_code)]

pub mod calls;
pub mod cfn;
pub mod cost;
pub mod foundation;
pub mod lifecycle;
pub mod monitor;
pub mod names;
pub mod network;
pub mod plan;
pub mod quotas;
pub mod service;
pub mod shared;
pub mod shared_lb;
pub mod skips;
pub mod storage;
pub mod workflows;

use pantstack_manifest::{Diagnostic, Span};
use pantstack_model::foundation::PREVIEW_PREFIX;
use pantstack_model::physical::Names;
use pantstack_model::settings::typed::Type;
use pantstack_model::settings::{Key, Layer, Source, keys};
use pantstack_model::{Monorepo, Resolved};

/// One file of the output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub contents: String,
}

#[derive(Clone, Debug)]
pub struct Output {
    pub files: Vec<File>,
    pub plan: plan::Plan,
}

impl Output {
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.contents.as_str())
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Overrides the environment's region (`--region`).
    pub region: Option<String>,
    /// The listener-rule priorities the environment's deployed stacks hold on its
    /// shared load balancers, by service (`shared_lb::rule_priorities` of each
    /// deployed template; the aws target reads them before deploying or diffing):
    /// those services keep their priority blocks and new ones take free blocks.
    /// Empty offline: every block comes from the hash of the service's name.
    pub deployed_priorities: std::collections::BTreeMap<String, Vec<u32>>,
}

/// What the templates of one environment are built from.
pub struct Ctx<'a> {
    pub repo: &'a Monorepo,
    pub env: &'a str,
    pub region: String,
    pub names: Names<'a>,
    pub foundation: Resolved,
    /// `network.load_balancer: shared`: HTTP services add rules to the
    /// environment's load balancer (`shared_lb.rs`) instead of having their own.
    pub shared_lb: bool,
    /// Each HTTP service's block of listener-rule priorities on the shared one.
    pub lb_slots: Vec<(String, u32)>,
    /// How many shared load balancers, and the one each HTTP service is on.
    pub lb_count: usize,
    pub lb_shards: Vec<(String, usize)>,
}

impl Ctx<'_> {
    pub fn project(&self) -> &str {
        &self.repo.foundation.project.value
    }

    pub fn is_preview(&self) -> bool {
        self.env.starts_with(PREVIEW_PREFIX)
    }
}

/// Where a diagnostic about a resolved setting points: the file and line that set
/// it, else `fallback`.
fn place<T: Type>(r: &Resolved, key: Key<T>, fallback: &str) -> (String, Span) {
    match r.entry(key).map(|v| &v.source) {
        Some(Source::Manifest { file, span }) | Some(Source::Stack { file, span }) => {
            (file.clone(), *span)
        }
        Some(Source::Cli) => ("--set".into(), Span::default()),
        _ => (fallback.to_string(), Span::default()),
    }
}

/// The position of `path` (keys from the top) in a manifest, re-read from the
/// monorepo's text (diagnostics only: the typed model keeps no spans for these).
pub(crate) fn span_of(repo: &Monorepo, file: &str, path: &[&str]) -> Span {
    let Some(text) = repo.files.text_of(file) else {
        return Span::default();
    };
    let Ok(mut node) = pantstack_manifest::yaml::parse(file, text, Default::default()) else {
        return Span::default();
    };
    for key in path {
        match node.get(key) {
            Some(n) => node = n.clone(),
            None => break,
        }
    }
    node.span
}

fn too_large(name: &str, len: usize, file: &str) -> Diagnostic {
    Diagnostic::error(
        "template-too-large",
        file,
        Span::default(),
        "",
        format!(
            "template {name} is {len} bytes; CloudFormation accepts at most {} bytes, even from an S3 bucket",
            cfn::S3_TEMPLATE_MAX
        ),
    )
    .with_help("split the service: move some queues or buckets into another service")
}

/// CloudFormation's hard limits on one template: 1 MB from S3 (over 51,200 bytes
/// it must come from a bucket: `stacks.json` says so) and 500 resources.
fn check_limits(name: &str, t: &cfn::Template, text: &str, file: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if text.len() > cfn::S3_TEMPLATE_MAX {
        out.push(too_large(name, text.len(), file));
    }
    if t.resource_count() > cfn::RESOURCES_MAX {
        out.push(
            Diagnostic::error(
                "too-many-resources",
                file,
                Span::default(),
                "",
                format!(
                    "template {name} has {} resources; CloudFormation accepts at most {} per template",
                    t.resource_count(),
                    cfn::RESOURCES_MAX
                ),
            )
            .with_help("split the service: move some queues or buckets into another service"),
        );
    }
    out
}

/// Synthesizes every template of environment `env` (already validated by the
/// caller: `env::named`). `Err` holds every reason it cannot, as diagnostics.
pub fn synth(repo: &Monorepo, env: &str, opts: &Options) -> Result<Output, Vec<Diagnostic>> {
    let fd = repo.resolve_foundation(env, &Layer::default());
    let fmanifest = repo.foundation.manifest_file.clone();
    let mut diags = fd.check_foundation(&fmanifest);
    let region = match (&opts.region, &fd.region) {
        (Some(r), _) => r.clone(),
        (None, Some((r, _))) => r.clone(),
        (None, None) => {
            diags.push(
                Diagnostic::error(
                    "no-region",
                    &fmanifest,
                    Span::default(),
                    "region",
                    format!("no region for environment `{env}`"),
                )
                .with_help("add `region:` to the foundation manifest, `aws:region` to the stack file, or pass --region"),
            );
            String::new()
        }
    };
    if let Err(e) = pantstack_model::foundation::check_region(&region)
        && !region.is_empty()
    {
        diags.push(Diagnostic::error(
            "invalid-region",
            "--region",
            Span::default(),
            "region",
            e,
        ));
    }

    // The network layout.
    let nat = match fd.get(keys::NAT_GATEWAYS) {
        "none" => network::Nat::None,
        "per_az" => network::Nat::PerAz,
        _ => network::Nat::Single,
    };
    let endpoints = fd.get(keys::VPC_ENDPOINTS);
    let cidr = fd.get(keys::VPC_CIDR).to_string();
    let azs = fd.get(keys::AVAILABILITY_ZONES).clamp(2, 6) as usize;
    let (public, private) = match network::subnets(&cidr, azs) {
        Ok(s) => s,
        Err(e) => {
            let (file, span) = place(&fd, keys::VPC_CIDR, &fmanifest);
            diags.push(Diagnostic::error(
                "vpc-too-small",
                &file,
                span,
                keys::VPC_CIDR.name(),
                e,
            ));
            (Vec::new(), Vec::new())
        }
    };
    if nat == network::Nat::None && !endpoints {
        let (file, span) = place(&fd, keys::NAT_GATEWAYS, &fmanifest);
        diags.push(
            Diagnostic::error(
                "no-egress",
                &file,
                span,
                keys::NAT_GATEWAYS.name(),
                format!("environment `{env}` has no NAT gateway and no VPC endpoints: tasks in private subnets could not pull images, write logs or read secrets"),
            )
            .with_help("set `pantstack:vpcEndpoints: true` (S3 gateway + ECR/logs/SSM/SQS interface endpoints) or `pantstack:natGateways: single`"),
        );
    }
    let layout = network::Layout {
        cidr,
        azs,
        nat,
        endpoints,
        flow_log_retention_days: fd.get(keys::FLOW_LOG_RETENTION_DAYS),
        public,
        private,
    };

    let shared = fd.get(keys::LOAD_BALANCER) == "shared";
    // What each HTTP service takes of a shared load balancer: its target groups
    // (two with blue/green) or its listener rules, whichever is more, and its
    // most targets: most tasks × the deployment's maximum percent (a blue/green
    // or canary deployment runs both sets in full).
    let http_units: Vec<(String, shared_lb::Load)> = repo
        .services
        .iter()
        .filter(|u| shared && u.service.http.is_some())
        .map(|u| {
            let cfg = repo.resolve_service(u, env, &Layer::default());
            let tgs = if cfg.get(keys::DEPLOYMENT_STRATEGY) != "rolling" {
                2
            } else {
                1
            };
            let rules = u
                .service
                .http
                .as_ref()
                .map(|h| h.rules.len())
                .unwrap_or(0)
                .max(1) as u32;
            let pct = if tgs == 2 {
                cfg.get(keys::MAX_PERCENT).max(200)
            } else {
                cfg.get(keys::MAX_PERCENT)
            };
            let targets = (cfg.get(keys::MAX_CAPACITY).max(0) * pct.max(100) / 100) as u32;
            (
                u.service.name.clone(),
                shared_lb::Load {
                    units: rules.max(tgs),
                    targets,
                },
            )
        })
        .collect();
    for (name, l) in &http_units {
        if l.targets > shared_lb::TARGETS_PER_LOAD_BALANCER
            && let Some(u) = repo.services.iter().find(|u| u.service.name == *name)
        {
            let cfg = repo.resolve_service(u, env, &Layer::default());
            let (file, span) = place(&cfg, keys::MAX_CAPACITY, &u.service.manifest_file);
            diags.push(
                Diagnostic::error(
                    "too-many-targets",
                    &file,
                    span,
                    keys::MAX_CAPACITY.name(),
                    format!("service `{name}` (environment `{env}`) may register {} targets on its shared load balancer (most tasks × the deployment's maximum percent); one load balancer takes {} by default", l.targets, shared_lb::TARGETS_PER_LOAD_BALANCER),
                )
                .with_help("lower `scaling.max` or `deployment.max_percent`, or a load balancer per service in this environment (`network.load_balancer: per_service`)"),
            );
        }
    }
    let lb_count = fd.get(keys::LOAD_BALANCERS).max(1) as usize;
    let lb_shards = if shared {
        match shared_lb::shards(&http_units, lb_count) {
            Ok(s) => s,
            Err(_) if diags.iter().any(|d| d.code == "too-many-targets") => Vec::new(),
            Err(need) => {
                let (file, span) = place(&fd, keys::LOAD_BALANCERS, &fmanifest);
                diags.push(
                    Diagnostic::error(
                        "load-balancers-full",
                        &file,
                        span,
                        keys::LOAD_BALANCERS.name(),
                        format!("environment `{env}`: its {} HTTP services need {need} shared load balancers (each takes {} listener rules and target groups, and {} targets: most tasks, doubled while a rolling deployment runs), not {lb_count}", http_units.len(), shared_lb::PER_LOAD_BALANCER, shared_lb::TARGETS_PER_LOAD_BALANCER),
                    )
                    .with_help(format!("set `network.load_balancers: {need}` (services on a load balancer that changes get new target groups and URLs)")),
                );
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if shared && http_units.len() > shared_lb::SLOTS as usize {
        diags.push(Diagnostic::error(
            "too-many-http-services",
            &fmanifest,
            Span::default(),
            keys::LOAD_BALANCER.name(),
            format!("environment `{env}` has {} HTTP services; shared load balancers give each a block of listener-rule priorities, {} at most", http_units.len(), shared_lb::SLOTS),
        ));
    }
    let project = &repo.foundation.project.value;
    let cx = Ctx {
        repo,
        env,
        region: region.clone(),
        names: Names::new(project, env),
        shared_lb: shared,
        lb_count,
        lb_shards,
        lb_slots: if shared {
            shared_lb::slots(
                &repo
                    .services
                    .iter()
                    .filter(|u| u.service.http.is_some())
                    .map(|u| u.service.name.as_str())
                    .collect::<Vec<_>>(),
                &opts.deployed_priorities,
            )
        } else {
            Vec::new()
        },
        foundation: fd,
    };

    let mut services = Vec::new();
    for unit in &repo.services {
        let cfg = repo.resolve_service(unit, env, &Layer::default());
        diags.extend(cfg.check(&unit.service));
        diags.extend(service::check(&cx, unit, &cfg, &layout, &region));
        services.push((unit, cfg));
    }
    // Deployment order: a service whose granted bucket another imports comes first.
    let services = match import_order(&cx, services) {
        Ok(s) => s,
        Err(d) => {
            diags.push(d);
            Vec::new()
        }
    };
    if diags.iter().any(|d| d.is_error()) {
        pantstack_manifest::diag::sort(&mut diags);
        return Err(diags);
    }

    let mut files: Vec<File> = Vec::new();
    let mut plan = plan::Plan::new(&cx);
    let mut limits = Vec::new();
    let shared = shared::template(&cx);
    plan.add_shared(&cx, &shared);
    files.push(File {
        name: format!("{}.json", cx.names.shared_stack()),
        contents: shared.render(),
    });
    let fdn = foundation::template(&cx, &layout);
    plan.add_foundation(&cx);
    let name = format!("{}.json", cx.names.foundation_stack());
    let contents = fdn.render();
    // The previews' foundation grows with the services (a task role each).
    limits.extend(check_limits(&name, &fdn, &contents, &fmanifest));
    files.push(File { name, contents });
    if cx.shared_lb && services.iter().any(|(u, _)| u.service.http.is_some()) {
        let t = shared_lb::template(&cx);
        plan.add_shared_lb(&cx);
        files.push(File {
            name: format!("{}.json", cx.names.lb_stack()),
            contents: t.render(),
        });
    }
    for (unit, cfg) in &services {
        let svc = &unit.service;
        if let Some((replica_region, t)) = storage::replica_template(&cx, svc) {
            plan.add_replica(&cx, svc, &replica_region);
            let name = format!("{}.json", cx.names.replica_stack(&svc.name));
            let contents = t.render();
            limits.extend(check_limits(&name, &t, &contents, &svc.manifest_file));
            files.push(File { name, contents });
        }
        let t = service::template(&cx, svc, cfg);
        plan.add_service(&cx, svc);
        let name = format!("{}.json", cx.names.service_stack(&svc.name));
        let contents = t.render();
        limits.extend(check_limits(&name, &t, &contents, &svc.manifest_file));
        files.push(File { name, contents });
    }
    let callers: Vec<&pantstack_model::service::Service> =
        services.iter().map(|(u, _)| &u.service).collect();
    if let Some(t) = calls::template(&cx, &callers) {
        plan.add_calls(&cx, &calls::participants(&cx, &callers));
        let name = format!("{}.json", cx.names.calls_stack());
        let contents = t.render();
        limits.extend(check_limits(&name, &t, &contents, &fmanifest));
        files.push(File { name, contents });
    }
    for f in files.iter().take(1) {
        // The shared template: bounded whatever the monorepo holds (the lifecycle
        // policy has a fixed number of rules), but checked alike.
        if f.contents.len() > cfn::S3_TEMPLATE_MAX {
            limits.push(too_large(&f.name, f.contents.len(), &fmanifest));
        }
    }
    if !limits.is_empty() {
        pantstack_manifest::diag::sort(&mut limits);
        return Err(limits);
    }
    plan.mark_sizes(&files);
    files.push(File {
        name: plan::FILE.into(),
        contents: plan.render(),
    });
    Ok(Output { files, plan })
}

/// Services in an order where each comes after the owners of the buckets it was
/// granted (it imports their names); a cycle is an error naming its services.
/// Calls add no order: their rules are in the Service Connect stack, after all.
fn import_order<'a, T>(
    cx: &Ctx<'_>,
    mut left: Vec<(&'a pantstack_model::ServiceUnit, T)>,
) -> Result<Vec<(&'a pantstack_model::ServiceUnit, T)>, pantstack_manifest::Diagnostic> {
    let mut done: Vec<(&'a pantstack_model::ServiceUnit, T)> = Vec::new();
    while !left.is_empty() {
        let ready = left.iter().position(|(u, _)| {
            service::used_grants(cx, &u.service)
                .iter()
                .filter(|(_, _, section, _)| *section == "buckets")
                .map(|(owner, ..)| owner.clone())
                .all(|owner| done.iter().any(|(d, _)| d.service.name == owner))
        });
        match ready {
            Some(i) => done.push(left.remove(i)),
            None => {
                let names: Vec<&str> = left.iter().map(|(u, _)| u.service.name.as_str()).collect();
                let first = &left[0].0.service;
                return Err(pantstack_manifest::Diagnostic::error(
                    "grant-cycle",
                    &first.manifest_file,
                    pantstack_manifest::Span::default(),
                    "buckets",
                    format!(
                        "bucket grants form a cycle between {}: each stack would import from another that imports from it",
                        names.join(", ")
                    ),
                )
                .with_help("grant buckets in one direction only between these services (queues, secrets and calls may go both ways)"));
            }
        }
    }
    Ok(done)
}

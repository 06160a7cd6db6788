//! The whole monorepo: foundation, services, their stack files, and the checks that
//! need more than one file (environments defined, regions agree, names unique).

use crate::foundation::{self, Foundation, PREVIEW_PREFIX, PREVIEW_STACK};
use crate::names;
use crate::service::{self, Located, Service};
use crate::settings::{self, Applies, Layer, Setting, Source, Val};
use crate::values;
use pantstack_manifest::diag::did_you_mean;
use pantstack_manifest::files::{self, LayerFiles, RepoFiles, SourceFile};
use pantstack_manifest::pulumi::{self, StackFile};
use pantstack_manifest::{Diagnostic, Limits, Node, Reader, Span, yaml};
use std::path::Path;

/// One `Pulumi.<stack>.yaml`, interpreted.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack {
    pub name: String,
    pub file: String,
    pub region: Option<Located<String>>,
    pub environment: Option<Located<String>>,
    pub settings: Layer,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceUnit {
    pub service: Service,
    /// `name` of its `Pulumi.yaml`.
    pub pulumi_name: Option<String>,
    pub stacks: Vec<Stack>,
}

#[derive(Clone, Debug)]
pub struct Monorepo {
    pub files: RepoFiles,
    pub foundation: Foundation,
    pub foundation_stacks: Vec<Stack>,
    pub services: Vec<ServiceUnit>,
}

/// A loaded monorepo and everything found wrong with it.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub repo: Monorepo,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

fn parse_file(f: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<Node> {
    match yaml::parse(&f.path, &f.text, Limits::default()) {
        Ok(n) => Some(n),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

fn read_stacks(layer: &LayerFiles, foundation: bool, diags: &mut Vec<Diagnostic>) -> Vec<Stack> {
    let mut out = Vec::new();
    for (name, f) in &layer.stacks {
        let Some(node) = parse_file(f, diags) else {
            continue;
        };
        let mut r = Reader::new(&f.path);
        let sf: StackFile = pulumi::read_stack(&mut r, name, &node);
        let mut stack = Stack {
            name: name.clone(),
            file: f.path.clone(),
            region: None,
            environment: None,
            settings: Layer::default(),
        };
        if let Some(e) = sf.get("aws", "region")
            && let Some(reg) = r.string(&e.value, "config.aws:region")
        {
            match foundation::check_region(&reg) {
                Ok(()) => {
                    stack.region = Some(Located {
                        value: reg,
                        file: f.path.clone(),
                        span: e.value.span,
                    })
                }
                Err(why) => {
                    r.error("invalid-value", e.value.span, "config.aws:region", why);
                }
            }
        }
        if let Some(e) = sf.get("pantstack", "environment")
            && let Some(env) = r.string(&e.value, "config.pantstack:environment")
        {
            stack.environment = Some(Located {
                value: env,
                file: f.path.clone(),
                span: e.value.span,
            });
        }
        values::stack_layer(&mut r, &sf, foundation, &mut stack.settings);
        diags.extend(r.diags);
        out.push(stack);
    }
    out
}

fn read_project_file(
    layer: &LayerFiles,
    diags: &mut Vec<Diagnostic>,
) -> Option<pulumi::ProjectFile> {
    let Some(f) = &layer.project else {
        diags.push(
            Diagnostic::error(
                "missing-file",
                &format!("{}/{}", layer.dir, files::PROJECT_FILE),
                Span::default(),
                "",
                format!("`{}/{}` is missing", layer.dir, files::PROJECT_FILE),
            )
            .with_help("add a Pulumi.yaml with `name`, `runtime` and `description`"),
        );
        return None;
    };
    let node = parse_file(f, diags)?;
    let mut r = Reader::new(&f.path);
    let p = pulumi::read_project(&mut r, &node);
    diags.extend(r.diags);
    Some(p)
}

/// Reads, parses and validates the monorepo at `root`.
pub fn load(root: &Path) -> Loaded {
    let (files, mut diags) = files::load(root);
    let foundation_project = read_project_file(&files.foundation, &mut diags);
    let fallback = foundation_project
        .as_ref()
        .and_then(|p| p.name.as_ref())
        .map(|(n, _)| n.trim_end_matches("-foundation").to_string());
    // A foundation manifest that is missing or unparsable still yields a model
    // (defaults), but only the problems already reported are shown for it.
    let (path, node) = match &files.foundation.manifest {
        Some(f) => (f.path.clone(), parse_file(f, &mut diags)),
        None => {
            let path = format!("{}/{}", files::FOUNDATION_DIR, files::MANIFEST_FILE);
            if root.join(files::FOUNDATION_DIR).is_dir() {
                diags.push(
                    Diagnostic::error("missing-file", &path, Span::default(), "", format!("`{path}` is missing"))
                        .with_help("it declares the project slug, GitHub repository and environments; `pantstack init` writes one"),
                );
            }
            (path, None)
        }
    };
    let null = Node {
        value: pantstack_manifest::Value::Null,
        span: Span::default(),
    };
    let mut r = Reader::new(&path);
    let foundation =
        foundation::read_foundation(&mut r, node.as_ref().unwrap_or(&null), fallback.as_deref());
    if node.is_some() {
        diags.extend(r.diags);
    }
    let foundation_stacks = read_stacks(&files.foundation, true, &mut diags);

    let mut services = Vec::new();
    // `service:` names declared so far, to report a name declared twice.
    let mut declared: Vec<(String, String)> = Vec::new();
    for (dir_name, layer) in &files.services {
        if let Err(why) = names::check_service_name(dir_name) {
            diags.push(
                Diagnostic::error(
                    "invalid-name",
                    &format!("modules/{dir_name}"),
                    Span::default(),
                    "",
                    why,
                )
                .with_help(format!(
                    "rename the directory to `modules/{}`",
                    names::suggest_label(dir_name, names::MAX_SERVICE_NAME)
                )),
            );
        }
        let project = read_project_file(layer, &mut diags);
        let Some(mf) = &layer.manifest else {
            diags.push(
                Diagnostic::error(
                    "missing-file",
                    &format!("{}/{}", layer.dir, files::MANIFEST_FILE),
                    Span::default(),
                    "",
                    format!(
                        "service `{dir_name}` has no manifest `{}/{}`",
                        layer.dir,
                        files::MANIFEST_FILE
                    ),
                )
                .with_help(format!("`pantstack new {dir_name} --kind http` writes one")),
            );
            continue;
        };
        let Some(node) = parse_file(mf, &mut diags) else {
            continue;
        };
        let mut r = Reader::new(&mf.path);
        let svc = service::read_service(&mut r, dir_name, &node);
        if let Some(n) = node.get("service")
            && let Some(name) = n.scalar_text()
        {
            if let Some((_, first)) = declared.iter().find(|(d, _)| *d == name) {
                r.error(
                    "duplicate-service",
                    n.span,
                    "service",
                    format!("service `{name}` is declared twice: also in `{first}`"),
                )
                .help = Some("each module declares its own service; rename one of them".into());
            }
            declared.push((name, mf.path.clone()));
        }
        diags.extend(r.diags);
        let pulumi_name = project.and_then(|p| p.name);
        if let Some((name, span)) = &pulumi_name {
            let expected = format!("{}-{}", foundation.project.value, dir_name);
            if *name != expected {
                diags.push(
                    Diagnostic::warning(
                        "naming",
                        &format!("{}/{}", layer.dir, files::PROJECT_FILE),
                        *span,
                        "name",
                        format!("project name `{name}` does not follow `{{project}}-{{service}}`"),
                    )
                    .with_help(format!("the seed's convention is `name: {expected}`")),
                );
            }
        }
        let stacks = read_stacks(layer, false, &mut diags);
        services.push(ServiceUnit {
            service: svc,
            pulumi_name: pulumi_name.map(|(n, _)| n),
            stacks,
        });
    }
    let repo = Monorepo {
        files,
        foundation,
        foundation_stacks,
        services,
    };
    repo.check_stacks(&mut diags);
    repo.check_every_environment(&mut diags);
    check_grants(&repo, &mut diags);
    check_import_cycles(&repo, &mut diags);
    check_name_collisions(&repo, &mut diags);
    // `environments.<env>:` of a service must name a declared environment.
    let envs = repo.foundation.env_names();
    for u in &repo.services {
        for e in &u.service.env_variables {
            if e.env != "preview" && !envs.iter().any(|n| *n == e.env) {
                let help = match pantstack_manifest::diag::did_you_mean(&e.env, &envs) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "declared environments: {}, and `preview` for every preview",
                        envs.join(", ")
                    ),
                };
                diags.push(
                    Diagnostic::error(
                        "unknown-environment",
                        &u.service.manifest_file,
                        e.span,
                        &format!("environments.{}", e.env),
                        format!("no environment `{}` is declared in the foundation", e.env),
                    )
                    .with_help(help),
                );
            }
        }
    }
    pantstack_manifest::diag::sort(&mut diags);
    diags.dedup();
    Loaded {
        repo,
        diagnostics: diags,
    }
}

impl Monorepo {
    pub fn service(&self, name: &str) -> Option<&ServiceUnit> {
        self.services.iter().find(|s| s.service.name == name)
    }

    pub fn service_names(&self) -> Vec<&str> {
        self.services
            .iter()
            .map(|s| s.service.name.as_str())
            .collect()
    }

    /// The stack name that configures an environment: itself, or `preview` for
    /// `preview-<pr>`.
    pub fn stack_name(env: &str) -> &str {
        if env.starts_with(PREVIEW_PREFIX) {
            PREVIEW_STACK
        } else {
            env
        }
    }

    fn valid_stack_names(&self) -> Vec<&str> {
        let mut v = self.foundation.env_names();
        if self.foundation.previews_enabled {
            v.push(PREVIEW_STACK);
        }
        v
    }

    fn check_stacks(&self, diags: &mut Vec<Diagnostic>) {
        let valid = self.valid_stack_names();
        let all = self
            .foundation_stacks
            .iter()
            .chain(self.services.iter().flat_map(|s| s.stacks.iter()));
        for stack in all {
            if !valid.contains(&stack.name.as_str()) {
                let help = match did_you_mean(&stack.name, &valid) {
                    Some(s) => format!(
                        "did you mean `Pulumi.{s}.yaml`? Otherwise add `{}` under `environments:` in stack/infra/foundation/pantstack.yaml",
                        stack.name
                    ),
                    None => format!(
                        "defined environments: {}; add `{}` under `environments:` in stack/infra/foundation/pantstack.yaml",
                        valid.join(", "),
                        stack.name
                    ),
                };
                diags.push(
                    Diagnostic::error(
                        "undefined-environment",
                        &stack.file,
                        Span::new(1, 1, 1),
                        "",
                        format!(
                            "stack file for environment `{}`, which the project does not define",
                            stack.name
                        ),
                    )
                    .with_help(help),
                );
                continue;
            }
            if let Some(env) = &stack.environment
                && env.value != stack.name
            {
                diags.push(
                    Diagnostic::error(
                        "environment-mismatch",
                        &env.file,
                        env.span,
                        "config.pantstack:environment",
                        format!(
                            "`pantstack:environment` is `{}` in the stack file of `{}`",
                            env.value, stack.name
                        ),
                    )
                    .with_help(format!(
                        "write `pantstack:environment: {}`, or rename the file to `Pulumi.{}.yaml`",
                        stack.name, env.value
                    )),
                );
            }
        }
        // A service's region must be its foundation's region in that environment:
        // services import the foundation's stack exports, which do not cross regions.
        for unit in &self.services {
            for stack in &unit.stacks {
                let (Some(svc_region), Some((fd_region, fd_src))) =
                    (&stack.region, self.region_for(&stack.name))
                else {
                    continue;
                };
                if svc_region.value != fd_region {
                    diags.push(
                        Diagnostic::error(
                            "region-mismatch",
                            &svc_region.file,
                            svc_region.span,
                            "config.aws:region",
                            format!(
                                "service `{}` is in `{}` but the foundation of `{}` is in `{fd_region}` ({fd_src})",
                                unit.service.name, svc_region.value, stack.name
                            ),
                        )
                        .with_help("services import the foundation's exports, which are per region; use the same region or remove `aws:region` here"),
                    );
                }
            }
        }
    }

    /// The region of an environment's foundation: its stack file's `aws:region`, else
    /// the manifest's `region`.
    pub fn region_for(&self, stack_name: &str) -> Option<(String, Source)> {
        if let Some(st) = self.foundation_stacks.iter().find(|s| s.name == stack_name)
            && let Some(r) = &st.region
        {
            return Some((
                r.value.clone(),
                Source::Stack {
                    file: r.file.clone(),
                    span: r.span,
                },
            ));
        }
        self.foundation.region.as_ref().map(|r| {
            (
                r.value.clone(),
                Source::Manifest {
                    file: r.file.clone(),
                    span: r.span,
                },
            )
        })
    }

    fn check_every_environment(&self, diags: &mut Vec<Diagnostic>) {
        let mut envs: Vec<String> = self
            .foundation
            .env_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        if self.foundation.previews_enabled {
            envs.push(format!("{PREVIEW_PREFIX}1"));
        }
        // The same problem found in several environments (a manifest value that is
        // wrong everywhere) is reported once, naming every environment.
        let mut found: Vec<(Diagnostic, Vec<String>)> = Vec::new();
        for env in &envs {
            let fd = self.resolve_foundation(env, &Layer::default());
            let mut here = fd.check_foundation(&self.foundation.manifest_file);
            for unit in &self.services {
                let cfg = self.resolve_service(unit, env, &Layer::default());
                here.extend(cfg.check(&unit.service));
            }
            for d in here {
                let same = found.iter_mut().find(|(f, _)| {
                    (&f.file, f.span, f.code, &f.field) == (&d.file, d.span, d.code, &d.field)
                });
                match same {
                    Some((_, list)) => list.push(env.clone()),
                    None => found.push((d, vec![env.clone()])),
                }
            }
        }
        for (mut d, list) in found {
            let shown: Vec<String> = list
                .iter()
                .map(|e| {
                    if e.starts_with(PREVIEW_PREFIX) {
                        format!("`{PREVIEW_PREFIX}<pr>`")
                    } else {
                        format!("`{e}`")
                    }
                })
                .collect();
            let first = format!("environment `{}`", list[0]);
            let replacement = if shown.len() == 1 {
                format!("environment {}", shown[0])
            } else {
                format!("environments {}", shown.join(", "))
            };
            d.message = d.message.replace(&first, &replacement);
            diags.push(d);
        }
    }

    fn stack_of<'a>(stacks: &'a [Stack], env: &str) -> Option<&'a Stack> {
        let name = Self::stack_name(env);
        stacks.iter().find(|s| s.name == name)
    }

    /// Resolves a service's configuration in an environment: default ← manifest ←
    /// stack file ← CLI.
    pub fn resolve_service(&self, unit: &ServiceUnit, env: &str, cli: &Layer) -> Resolved {
        let svc = &unit.service;
        let applies = |a: Applies| match a {
            Applies::Service => true,
            Applies::Http => svc.http.is_some(),
            Applies::Worker => svc.worker.is_some(),
            Applies::WorkerBeside => svc.http.is_some() && svc.worker.is_some(),
            Applies::Foundation => false,
        };
        let stack = Self::stack_of(&unit.stacks, env);
        let mut region = self.region_for(Self::stack_name(env));
        if let Some(r) = stack.and_then(|s| s.region.as_ref()) {
            region = Some((
                r.value.clone(),
                Source::Stack {
                    file: r.file.clone(),
                    span: r.span,
                },
            ));
        }
        let layers = [
            &svc.settings,
            stack.map(|s| &s.settings).unwrap_or(&EMPTY),
            cli,
        ];
        Resolved::build(
            &svc.name,
            env,
            region,
            stack.map(|s| s.file.clone()),
            &layers,
            |s| s.applies != Applies::Foundation,
            applies,
        )
    }

    pub fn resolve_foundation(&self, env: &str, cli: &Layer) -> Resolved {
        let stack = Self::stack_of(&self.foundation_stacks, env);
        let layers = [
            &self.foundation.settings,
            stack.map(|s| &s.settings).unwrap_or(&EMPTY),
            cli,
        ];
        Resolved::build(
            "foundation",
            env,
            self.region_for(Self::stack_name(env)),
            stack.map(|s| s.file.clone()),
            &layers,
            |s| s.applies == Applies::Foundation,
            |_| true,
        )
    }
}

static EMPTY: Layer = Layer { values: Vec::new() };

/// One setting's resolved value (or `None`: off) and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedSetting {
    pub setting: &'static Setting,
    pub value: Option<Val>,
    pub source: Source,
}

/// The resolved configuration of a service (or the foundation) in an environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub name: String,
    pub env: String,
    pub region: Option<(String, Source)>,
    pub stack_file: Option<String>,
    pub values: Vec<ResolvedSetting>,
    /// Values set in a layer for a setting that does not apply (e.g. `port` on a
    /// worker-only service).
    pub misplaced: Vec<(&'static Setting, Source)>,
}

impl Resolved {
    fn build(
        name: &str,
        env: &str,
        region: Option<(String, Source)>,
        stack_file: Option<String>,
        layers: &[&Layer],
        in_layer: impl Fn(&Setting) -> bool,
        applies: impl Fn(Applies) -> bool,
    ) -> Resolved {
        let mut values = Vec::new();
        let mut misplaced = Vec::new();
        for setting in settings::SETTINGS.iter().filter(|s| in_layer(s)) {
            let mut value = setting.default_val();
            let mut source = Source::Default;
            for layer in layers {
                if let Some((v, src)) = layer.get(setting.key) {
                    value = Some(v.clone());
                    source = src.clone();
                }
            }
            if applies(setting.applies) {
                values.push(ResolvedSetting {
                    setting,
                    value,
                    source,
                });
            } else if source != Source::Default {
                misplaced.push((setting, source));
            }
        }
        Resolved {
            name: name.to_string(),
            env: env.to_string(),
            region,
            stack_file,
            values,
            misplaced,
        }
    }

    pub fn get(&self, key: &str) -> Option<&ResolvedSetting> {
        self.values.iter().find(|v| v.setting.key == key)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)?.value {
            Some(Val::Int(i)) => Some(i),
            _ => None,
        }
    }

    pub fn secs(&self, key: &str) -> Option<u64> {
        match self.get(key)?.value {
            Some(Val::Duration(s)) => Some(s),
            _ => None,
        }
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        match &self.get(key)?.value {
            Some(Val::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// Where to point a diagnostic about `key`: its own source if it is in a file,
    /// else `other`'s, else the manifest.
    fn place(&self, key: &str, other: &str, fallback: &str) -> (String, Span, String) {
        for k in [key, other] {
            if let Some(rs) = self.get(k) {
                match &rs.source {
                    Source::Manifest { file, span } | Source::Stack { file, span } => {
                        return (file.clone(), *span, rs.setting.key.to_string());
                    }
                    Source::Cli => {
                        return (
                            "--set".to_string(),
                            Span::default(),
                            rs.setting.key.to_string(),
                        );
                    }
                    Source::Default => {}
                }
            }
        }
        (fallback.to_string(), Span::default(), key.to_string())
    }

    /// Checks that need several settings at once, in this environment.
    pub fn check(&self, svc: &Service) -> Vec<Diagnostic> {
        self.check_with(&svc.manifest_file, Some(svc))
    }

    pub fn check_foundation(&self, manifest: &str) -> Vec<Diagnostic> {
        self.check_with(manifest, None)
    }

    fn check_with(&self, fallback: &str, svc: Option<&Service>) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let env = &self.env;
        let later = |a: &str, b: &str| -> &'static str {
            // The setting whose source is the most specific layer is the one to fix.
            let rank = |k: &str| match self.get(k).map(|r| &r.source) {
                Some(Source::Cli) => 3,
                Some(Source::Stack { .. }) => 2,
                Some(Source::Manifest { .. }) => 1,
                _ => 0,
            };
            let key = if rank(b) > rank(a) { b } else { a };
            settings::by_key(key).map(|s| s.key).unwrap_or("")
        };
        for (lo, hi) in [
            ("minCapacity", "maxCapacity"),
            ("workerMinCapacity", "workerMaxCapacity"),
        ] {
            if let (Some(min), Some(max)) = (self.int(lo), self.int(hi))
                && min > max
            {
                let k = later(lo, hi);
                let other = if k == lo { hi } else { lo };
                let (file, span, field) = self.place(k, other, fallback);
                out.push(
                    Diagnostic::error(
                        "min-above-max",
                        &file,
                        span,
                        &field,
                        format!("{lo} ({min}) is greater than {hi} ({max}) in environment `{env}`"),
                    )
                    .with_help(format!(
                        "raise `{hi}` to at least {min} or lower `{lo}` to at most {max}"
                    )),
                );
            }
        }
        if let (Some(cpu), Some(mem)) = (self.int("cpu"), self.int("memory"))
            && let Err(valid) = fargate_pair(cpu, mem)
        {
            let k = later("cpu", "memory");
            let other = if k == "cpu" { "memory" } else { "cpu" };
            let (file, span, field) = self.place(k, other, fallback);
            out.push(
                    Diagnostic::error(
                        "invalid-task-size",
                        &file,
                        span,
                        &field,
                        format!("Fargate does not offer cpu {cpu} with memory {mem} MiB (environment `{env}`)"),
                    )
                    .with_help(valid),
                );
        }
        if let (Some(t), Some(i)) = (
            self.secs("healthCheckTimeout"),
            self.secs("healthCheckInterval"),
        ) && t >= i
        {
            let k = later("healthCheckTimeout", "healthCheckInterval");
            let other = if k == "healthCheckTimeout" {
                "healthCheckInterval"
            } else {
                "healthCheckTimeout"
            };
            let (file, span, field) = self.place(k, other, fallback);
            out.push(
                    Diagnostic::error(
                        "timeout-not-below-interval",
                        &file,
                        span,
                        &field,
                        format!("health check timeout ({t}s) must be less than its interval ({i}s) in environment `{env}`"),
                    )
                    .with_help("ALB requires timeout < interval"),
                );
        }
        if let (Some(min), Some(max)) = (self.int("minHealthyPercent"), self.int("maxPercent"))
            && min == 100
            && max == 100
        {
            let (file, span, field) = self.place(
                later("minHealthyPercent", "maxPercent"),
                "maxPercent",
                fallback,
            );
            out.push(
                    Diagnostic::error(
                        "deployment-stuck",
                        &file,
                        span,
                        &field,
                        "minHealthyPercent 100 with maxPercent 100 leaves ECS no room to replace a task",
                    )
                    .with_help("raise maxPercent above 100 or lower minHealthyPercent"),
                );
        }
        if let (Some(0), Some(0)) = (self.int("spotWeight"), self.int("onDemandWeight")) {
            let (file, span, field) = self.place(
                later("spotWeight", "onDemandWeight"),
                "spotWeight",
                fallback,
            );
            out.push(
                Diagnostic::error("invalid-value", &file, span, &field, "spotWeight and onDemandWeight are both 0")
                    .with_help("give at least one capacity provider a weight (the seed uses spot 4, on-demand 1)"),
            );
        }
        if let Some(svc) = svc
            && svc.http.is_none()
            && let Some(strategy) = self.text("deploymentStrategy").filter(|s| *s != "rolling")
        {
            let (file, span, field) =
                self.place("deploymentStrategy", "deploymentStrategy", fallback);
            out.push(
                        Diagnostic::error(
                            "invalid-value",
                            &file,
                            span,
                            &field,
                            format!("deployment strategy `{strategy}` shifts load balancer traffic; service `{}` has no `http:`", svc.name),
                        )
                        .with_help("use `rolling` for workers"),
                    );
        }
        for (setting, source) in &self.misplaced {
            let (file, span) = source
                .location()
                .map(|(f, s)| (f.to_string(), s))
                .unwrap_or(("--set".into(), Span::default()));
            let what = match setting.applies {
                Applies::Http => "services with `http:`",
                Applies::Worker => "services with `worker:`",
                Applies::WorkerBeside => {
                    "services with both `http:` and `worker:` (a worker-only service uses minCapacity/maxCapacity)"
                }
                _ => "another layer",
            };
            out.push(
                Diagnostic::error(
                    "setting-does-not-apply",
                    &file,
                    span,
                    setting.key,
                    format!(
                        "`{}` applies only to {what}; `{}` is not one",
                        setting.key, self.name
                    ),
                )
                .with_help("remove it"),
            );
        }
        out
    }
}

/// Fargate's CPU/memory combinations. `Err` carries the valid memory sizes for `cpu`.
pub fn fargate_pair(cpu: i64, mem: i64) -> Result<(), String> {
    let range: Option<(i64, i64, i64)> = match cpu {
        256 => Some((512, 2048, 512)),
        512 => Some((1024, 4096, 1024)),
        1024 => Some((2048, 8192, 1024)),
        2048 => Some((4096, 16384, 1024)),
        4096 => Some((8192, 30720, 1024)),
        8192 => Some((16384, 61440, 4096)),
        16384 => Some((32768, 122_880, 8192)),
        _ => None,
    };
    let Some((lo, hi, step)) = range else {
        return Err("cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384".into());
    };
    if cpu == 256 {
        // 512, 1024, 2048
        if [512, 1024, 2048].contains(&mem) {
            return Ok(());
        }
        return Err("with cpu 256, memory must be 512, 1024 or 2048".into());
    }
    if mem >= lo && mem <= hi && (mem - lo) % step == 0 {
        Ok(())
    } else {
        Err(format!(
            "with cpu {cpu}, memory must be {lo} to {hi} in steps of {step}"
        ))
    }
}

/// Grants between services: a grant names a service of the monorepo (not its
/// owner); a reference to another service's queue or bucket (`${queue:api.jobs}`)
/// names a declared one that grants the referring service access; a grant nobody
/// uses is a warning.
/// The help for a service name that is not one of `names`.
fn services_help(name: &str, names: &[&str]) -> String {
    match pantstack_manifest::diag::did_you_mean(name, names) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("services: {}", names.join(", ")),
    }
}

/// `name`, where a service of the monorepo is expected, is none of them.
fn unknown_service(
    file: &str,
    span: pantstack_manifest::Span,
    field: &str,
    name: &str,
    names: &[&str],
) -> Diagnostic {
    Diagnostic::error(
        "unknown-service",
        file,
        span,
        field,
        format!("no service `{name}` in this monorepo"),
    )
    .with_help(services_help(name, names))
}

/// Stack imports between services (on AWS a bucket's taker imports its name) must
/// not form a cycle: each stack would need the other deployed first. Reported at
/// the edge that closes it. Calls import nothing between service stacks (their
/// rules are in the environment's Service Connect stack), so they may go both ways.
fn check_import_cycles(repo: &Monorepo, diags: &mut Vec<Diagnostic>) {
    // (from, to, file, span, field)
    let mut edges: Vec<(&str, &str, &str, pantstack_manifest::Span, String)> = Vec::new();
    for u in &repo.services {
        let s = &u.service;
        for f in s.foreign.iter().filter(|f| f.kind == "bucket") {
            edges.push((&s.name, &f.owner, &s.manifest_file, f.span, f.field.clone()));
        }
    }
    let mut reported: Vec<Vec<&str>> = Vec::new();
    for (from, to, file, span, field) in &edges {
        // A path from `to` back to `from` closes a cycle through this edge.
        let mut stack: Vec<Vec<&str>> = vec![vec![to]];
        let mut seen: Vec<&str> = Vec::new();
        while let Some(path) = stack.pop() {
            let last = path[path.len() - 1];
            if last == *from {
                let mut cycle: Vec<&str> = vec![from];
                cycle.extend(path.iter().copied());
                let mut key = cycle.clone();
                key.sort();
                key.dedup();
                if !reported.contains(&key) {
                    reported.push(key);
                    diags.push(
                        Diagnostic::error("import-cycle", file, *span, field, format!(
                            "{} form a cycle of bucket grants: on AWS each of these stacks would import the next one's bucket, which imports from it",
                            cycle.join(" → ")
                        ))
                        .with_help("take buckets in one direction only along this cycle (queues, secrets and calls may go both ways)"),
                    );
                }
                break;
            }
            if seen.contains(&last) {
                continue;
            }
            seen.push(last);
            for (f2, t2, ..) in &edges {
                if *f2 == last {
                    let mut p = path.clone();
                    p.push(t2);
                    stack.push(p);
                }
            }
        }
    }
}

/// Physical names built from `{service}-{queue}` and `{service}-{bucket}` must not
/// collide across services (`api` + `x-jobs` and `api-x` + `jobs`): one would get
/// the other's resource.
fn check_name_collisions(repo: &Monorepo, diags: &mut Vec<Diagnostic>) {
    for (kind, section) in [("queue", "queues"), ("bucket", "buckets")] {
        let mut seen: Vec<(String, &str)> = Vec::new();
        for u in &repo.services {
            let s = &u.service;
            let names: Vec<&str> = if kind == "queue" {
                s.queues.iter().map(|q| q.name.as_str()).collect()
            } else {
                s.buckets.iter().map(|b| b.name.as_str()).collect()
            };
            for n in names {
                let joined = format!("{}-{n}", s.name);
                if let Some((_, other)) = seen.iter().find(|(j, _)| *j == joined) {
                    diags.push(
                        Diagnostic::error("name-collision", &s.manifest_file, Default::default(), &format!("{section}.{n}"), format!(
                            "{kind} `{n}` of `{}` gets the same name as a {kind} of `{other}` (`…-{joined}`)",
                            s.name
                        ))
                        .with_help("rename one of them"),
                    );
                } else {
                    seen.push((joined, &s.name));
                }
            }
        }
    }
}

fn check_grants(repo: &Monorepo, diags: &mut Vec<Diagnostic>) {
    use pantstack_manifest::diag::did_you_mean;
    let names: Vec<&str> = repo
        .services
        .iter()
        .map(|u| u.service.name.as_str())
        .collect();
    for u in &repo.services {
        let svc = &u.service;
        let grants = svc
            .queues
            .iter()
            .map(|q| ("queues", q.name.as_str(), &q.grants))
            .chain(
                svc.buckets
                    .iter()
                    .map(|b| ("buckets", b.name.as_str(), &b.grants)),
            );
        for (section, resource, list) in grants {
            for g in list {
                let field = format!("{section}.{resource}.grants.{}", g.to.value);
                if g.to.value == svc.name {
                    diags.push(
                        Diagnostic::error(
                            "invalid-grant",
                            &svc.manifest_file,
                            g.to.span,
                            &field,
                            format!(
                                "`{}` grants itself: a service always uses its own {section}",
                                svc.name
                            ),
                        )
                        .with_help("remove this grant"),
                    );
                    continue;
                }
                let Some(consumer) = repo.services.iter().find(|c| c.service.name == g.to.value)
                else {
                    diags.push(unknown_service(
                        &svc.manifest_file,
                        g.to.span,
                        &field,
                        &g.to.value,
                        &names,
                    ));
                    continue;
                };
                let kinds: &[&str] = if section == "queues" {
                    &["queue", "dlq"]
                } else {
                    &["bucket"]
                };
                let used = consumer.service.foreign.iter().any(|f| {
                    f.owner == svc.name && f.name == resource && kinds.contains(&f.kind.as_str())
                });
                if !used {
                    diags.push(
                        Diagnostic::warning(
                            "unused-grant",
                            &svc.manifest_file,
                            g.to.span,
                            &field,
                            format!(
                                "`{}` is granted {section}.{resource} but never refers to it",
                                g.to.value
                            ),
                        )
                        .with_help(format!(
                            "in {}, reference it as `${{{}:{}.{resource}}}`, or remove the grant",
                            consumer.service.manifest_file, kinds[0], svc.name
                        )),
                    );
                }
            }
        }
        // Calls: to another service of the monorepo that serves HTTP.
        for (i, c) in svc.calls.iter().enumerate() {
            if svc.calls[..i].iter().any(|p| p.value == c.value) {
                diags.push(
                    Diagnostic::error(
                        "duplicate-name",
                        &svc.manifest_file,
                        c.span,
                        "calls",
                        format!("`{}` is listed twice in `calls`", c.value),
                    )
                    .with_help("list each service once"),
                );
                continue;
            }
            let field = "calls";
            if c.value == svc.name {
                diags.push(
                    Diagnostic::error(
                        "invalid-call",
                        &svc.manifest_file,
                        c.span,
                        field,
                        format!("`{}` calls itself", svc.name),
                    )
                    .with_help("a service reaches itself without Service Connect; remove it"),
                );
                continue;
            }
            let Some(callee) = repo.services.iter().find(|o| o.service.name == c.value) else {
                diags.push(unknown_service(
                    &svc.manifest_file,
                    c.span,
                    field,
                    &c.value,
                    &names,
                ));
                continue;
            };
            if callee.service.http.is_none() {
                diags.push(
                    Diagnostic::error(
                        "invalid-call",
                        &svc.manifest_file,
                        c.span,
                        field,
                        format!(
                            "`{}` serves no HTTP (it declares no `http:`), so it cannot be called",
                            c.value
                        ),
                    )
                    .with_help(format!(
                        "give {} an `http:` section, or send it messages through a granted queue",
                        c.value
                    )),
                );
                continue;
            }
            let var = crate::service::call_variable(&c.value);
            if crate::names::is_reserved_var(&var) {
                diags.push(
                    Diagnostic::error("reserved-name", &svc.manifest_file, c.span, field, format!("calling `{}` would set `{var}`, which pantstack sets for every task (the AWS SDKs read it)", c.value))
                        .with_help(format!("rename the service `{}`", c.value)),
                );
                continue;
            }
            if svc.variables.iter().any(|(k, _)| *k == var)
                || svc
                    .env_variables
                    .iter()
                    .any(|e| e.variables.iter().any(|(k, _)| *k == var))
                || svc.secrets.iter().any(|s| s.name == var)
            {
                diags.push(
                    Diagnostic::error(
                        "duplicate-name",
                        &svc.manifest_file,
                        c.span,
                        field,
                        format!(
                            "`{var}` is set by `calls: [{}]` and declared under `variables:` or `secrets:` too",
                            c.value
                        ),
                    )
                    .with_help(format!(
                        "rename or remove that `{var}` (its value is {}'s address)",
                        c.value
                    )),
                );
            }
        }
        // Secrets: granted by their owner (`grants: { reports: read }`), taken with
        // `from: OWNER`.
        for sec in &svc.secrets {
            // A taken secret's grants are its owner's to give (refused when read).
            let own_grants: &[crate::service::Grant] =
                if sec.from.is_some() { &[] } else { &sec.grants };
            for g in own_grants {
                let field = format!("secrets.{}.grants.{}", sec.name, g.to.value);
                if g.to.value == svc.name {
                    diags.push(
                        Diagnostic::error(
                            "invalid-grant",
                            &svc.manifest_file,
                            g.to.span,
                            &field,
                            format!("`{}` grants itself its own secret", svc.name),
                        )
                        .with_help("remove this grant"),
                    );
                    continue;
                }
                let Some(consumer) = repo.services.iter().find(|c| c.service.name == g.to.value)
                else {
                    diags.push(unknown_service(
                        &svc.manifest_file,
                        g.to.span,
                        &field,
                        &g.to.value,
                        &names,
                    ));
                    continue;
                };
                let used = consumer.service.secrets.iter().any(|c| {
                    c.name == sec.name && c.from.as_ref().is_some_and(|f| f.value == svc.name)
                });
                if !used {
                    diags.push(
                        Diagnostic::warning("unused-grant", &svc.manifest_file, g.to.span, &field, format!("`{}` is granted the secret {} but does not take it", g.to.value, sec.name))
                            .with_help(format!("in {}, declare `secrets: {{ {}: {{ from: {} }} }}`, or remove the grant", consumer.service.manifest_file, sec.name, svc.name)),
                    );
                }
            }
            let Some(from) = &sec.from else {
                continue;
            };
            let field = format!("secrets.{}.from", sec.name);
            if from.value == svc.name {
                diags.push(
                    Diagnostic::error(
                        "invalid-grant",
                        &svc.manifest_file,
                        from.span,
                        &field,
                        format!("`{}` takes its secret `{}` from itself", svc.name, sec.name),
                    )
                    .with_help("remove `from`: a service's secrets are its own"),
                );
                continue;
            }
            let Some(owner) = repo.services.iter().find(|o| o.service.name == from.value) else {
                diags.push(unknown_service(
                    &svc.manifest_file,
                    from.span,
                    &field,
                    &from.value,
                    &names,
                ));
                continue;
            };
            let Some(theirs) = owner
                .service
                .secrets
                .iter()
                .find(|o| o.name == sec.name && o.from.is_none())
            else {
                diags.push(
                    Diagnostic::error(
                        "undeclared-reference",
                        &svc.manifest_file,
                        from.span,
                        &field,
                        format!(
                            "`{}` declares no secret `{}` of its own",
                            from.value, sec.name
                        ),
                    )
                    .with_help(format!(
                        "declare it under `secrets:` in {}",
                        owner.service.manifest_file
                    )),
                );
                continue;
            };
            if !theirs.grants.iter().any(|g| g.to.value == svc.name) {
                diags.push(
                    Diagnostic::error(
                        "not-granted",
                        &svc.manifest_file,
                        from.span,
                        &field,
                        format!(
                            "`{}` does not grant `{}` its secret `{}`",
                            from.value, svc.name, sec.name
                        ),
                    )
                    .with_help(format!(
                        "in {}, add under `secrets.{}`: `grants: {{ {}: read }}`",
                        owner.service.manifest_file, sec.name, svc.name
                    )),
                );
            }
        }
        for f in &svc.foreign {
            let Some(owner) = repo.services.iter().find(|o| o.service.name == f.owner) else {
                let help = services_help(&f.owner, &names);
                diags.push(
                    Diagnostic::error(
                        "undeclared-reference",
                        &svc.manifest_file,
                        f.span,
                        &f.field,
                        format!(
                            "`${{{}:{}.{}}}` names service `{}`, which this monorepo does not have",
                            f.kind, f.owner, f.name, f.owner
                        ),
                    )
                    .with_help(help),
                );
                continue;
            };
            let o = &owner.service;
            let (section, grants, declared): (
                &str,
                Option<&Vec<crate::service::Grant>>,
                Vec<&str>,
            ) = match f.kind.as_str() {
                "bucket" => (
                    "buckets",
                    o.buckets
                        .iter()
                        .find(|b| b.name == f.name)
                        .map(|b| &b.grants),
                    o.buckets.iter().map(|b| b.name.as_str()).collect(),
                ),
                _ => (
                    "queues",
                    o.queues
                        .iter()
                        .find(|q| q.name == f.name && (f.kind != "dlq" || q.dead_letter.is_some()))
                        .map(|q| &q.grants),
                    o.queues.iter().map(|q| q.name.as_str()).collect(),
                ),
            };
            let Some(grants) = grants else {
                let help = match did_you_mean(&f.name, &declared) {
                    Some(s) => format!("did you mean `{}.{s}`?", f.owner),
                    None if declared.is_empty() => format!("`{}` declares no {section}", f.owner),
                    None => format!("{}'s {section}: {}", f.owner, declared.join(", ")),
                };
                diags.push(
                    Diagnostic::error(
                        "undeclared-reference",
                        &svc.manifest_file,
                        f.span,
                        &f.field,
                        format!(
                            "`${{{}:{}.{}}}`: `{}` declares no such {}",
                            f.kind,
                            f.owner,
                            f.name,
                            f.owner,
                            if f.kind == "dlq" {
                                "queue with a dead-letter queue"
                            } else {
                                &section[..section.len() - 1]
                            }
                        ),
                    )
                    .with_help(help),
                );
                continue;
            };
            if !grants.iter().any(|g| g.to.value == svc.name) {
                let level = if section == "buckets" { "read" } else { "send" };
                diags.push(
                    Diagnostic::error(
                        "not-granted",
                        &svc.manifest_file,
                        f.span,
                        &f.field,
                        format!(
                            "`{}` does not grant `{}` its {} `{}`",
                            f.owner,
                            svc.name,
                            &section[..section.len() - 1],
                            f.name
                        ),
                    )
                    .with_help(format!(
                        "in {}, add under `{section}.{}`: `grants: {{ {}: {level} }}` (or {})",
                        o.manifest_file,
                        f.name,
                        svc.name,
                        if section == "buckets" {
                            "write, read-write"
                        } else {
                            "consume, send-consume"
                        }
                    )),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fargate_pairs() {
        assert!(fargate_pair(256, 512).is_ok());
        assert!(fargate_pair(256, 4096).is_err());
        assert!(fargate_pair(1024, 3072).is_ok());
        assert!(fargate_pair(8192, 20480).is_ok());
        assert!(fargate_pair(8192, 18000).is_err());
        assert!(fargate_pair(300, 512).is_err());
    }
}

//! The whole monorepo: foundation, services, their stack files, and the checks that
//! need more than one file (environments defined, regions agree, names unique).
//!
//! [`load`] reads and checks it; [`Monorepo::resolve_service`] and
//! [`Monorepo::resolve_foundation`] give a unit's settings in an environment as a
//! [`Resolved`] (`resolved`); the checks between services (grants, references,
//! calls, secrets, import cycles, name collisions) are in `wiring`.

use crate::foundation::{self, Foundation, PREVIEW_PREFIX, PREVIEW_STACK};
use crate::names;
use crate::service::{self, Located, Service};
use crate::settings::{Applies, Layer, Source};
use crate::values;
use pantstack_manifest::diag::did_you_mean;
use pantstack_manifest::files::{self, LayerFiles, RepoFiles, SourceFile};
use pantstack_manifest::pulumi::{self, StackFile};
use pantstack_manifest::{Diagnostic, Limits, Node, Reader, Span, yaml};
use std::path::Path;

mod resolved;
mod wiring;

pub use resolved::{PREVIEW_MAX_TASKS, PREVIEW_MIN_TASKS, Resolved, ResolvedSetting, fargate_pair};
use wiring::{check_grants, check_import_cycles, check_name_collisions};

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
                let preview = stack.name.starts_with(PREVIEW_PREFIX);
                let help = if preview && valid.contains(&PREVIEW_STACK) {
                    format!(
                        "every preview reads `Pulumi.{PREVIEW_STACK}.yaml` (with `pantstack:environment: {PREVIEW_STACK}`): rename the file; one pull request's preview has no stack file of its own"
                    )
                } else if preview {
                    "previews are off: set `previews.enabled: true` in stack/infra/foundation/pantstack.yaml, then name the file `Pulumi.preview.yaml`".to_string()
                } else {
                    match did_you_mean(&stack.name, &valid) {
                        Some(s) => format!(
                            "did you mean `Pulumi.{s}.yaml`? Otherwise add `{}` under `environments:` in stack/infra/foundation/pantstack.yaml",
                            stack.name
                        ),
                        None => format!(
                            "defined environments: {}; add `{}` under `environments:` in stack/infra/foundation/pantstack.yaml",
                            valid.join(", "),
                            stack.name
                        ),
                    }
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
                    .with_help(if env.value.starts_with(PREVIEW_PREFIX) {
                        format!(
                            "write `pantstack:environment: {}`: every preview reads this file, none has one of its own",
                            stack.name
                        )
                    } else {
                        format!(
                            "write `pantstack:environment: {}`, or rename the file to `Pulumi.{}.yaml`",
                            stack.name, env.value
                        )
                    }),
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
    /// stack file ← CLI; a preview's capacity is lowered where the defaults or the
    /// manifest set it (`Resolved::reduce_for_preview`).
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
        let mut resolved = Resolved::build(
            &svc.name,
            env,
            region,
            stack.map(|s| s.file.clone()),
            &layers,
            |s| s.applies != Applies::Foundation,
            applies,
        );
        if env.starts_with(PREVIEW_PREFIX) {
            resolved.reduce_for_preview();
        }
        resolved
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

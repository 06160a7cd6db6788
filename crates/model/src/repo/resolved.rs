//! A service's (or the foundation's) configuration in one environment: every
//! setting that applies, resolved default ← manifest ← stack file ← CLI, with its
//! source; read through the typed keys of [`settings::keys`](crate::settings::keys).
//!
//! Invariant: `values` holds exactly the settings that apply to the unit (its layer,
//! and for a service its roles); a value set for one that does not apply is in
//! `misplaced`, reported by [`Resolved::check`], and never read.

use crate::service::Service;
use crate::settings::typed::Type;
use crate::settings::{self, Applies, Key, Layer, Setting, Source, Val, keys};
use pantstack_manifest::{Diagnostic, Span};

/// The most tasks a preview environment's service (and its worker) keeps at rest,
/// unless its `Pulumi.preview.yaml` or `--set` says otherwise.
pub const PREVIEW_MIN_TASKS: i64 = 1;
/// The most tasks a preview environment's service (and its worker) scales out to,
/// unless its `Pulumi.preview.yaml` or `--set` says otherwise.
pub const PREVIEW_MAX_TASKS: i64 = 2;

/// Whether a deployment at `n` tasks can replace one: ECS may run
/// `maxPercent` of them rounded down and must keep `minHealthyPercent` rounded
/// up; one task more than `n`, or one fewer healthy, is the room it needs.
pub fn deployment_has_room(n: i64, min_healthy_percent: i64, max_percent: i64) -> bool {
    n <= 0 || n * max_percent / 100 > n || (n * min_healthy_percent + 99) / 100 < n
}

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
    pub(super) fn build(
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
                if let Some((v, src)) = layer.get(setting) {
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

    /// Lowers a preview environment's capacity (`preview-<pr>`): at most
    /// [`PREVIEW_MIN_TASKS`] tasks at rest and [`PREVIEW_MAX_TASKS`] at most (never
    /// below the fewest), and no task reserved on On-Demand Fargate (Spot first, by
    /// the weights). Only values that come from the defaults or the manifest are
    /// lowered, and only downwards: `Pulumi.preview.yaml` or `--set` decide
    /// otherwise, and a value already lower stays. A lowered value's source is
    /// [`Source::Preview`], so `config` shows why.
    pub(super) fn reduce_for_preview(&mut self) {
        let (healthy, most) = (
            self.get(keys::MIN_HEALTHY_PERCENT),
            self.get(keys::MAX_PERCENT),
        );
        for (lo, hi) in [
            (keys::MIN_CAPACITY, keys::MAX_CAPACITY),
            (keys::WORKER_MIN_CAPACITY, keys::WORKER_MAX_CAPACITY),
        ] {
            // Never so few that a deployment has no room to replace a task
            // (maxPercent below 200 rounds down to no extra task at 1).
            let fewest = (PREVIEW_MIN_TASKS..self.get(lo))
                .find(|n| deployment_has_room(*n, healthy, most))
                .unwrap_or(self.get(lo));
            self.lower(lo.setting(), fewest);
            let fewest = self.get(lo);
            self.lower(hi.setting(), PREVIEW_MAX_TASKS.max(fewest));
        }
        self.lower(keys::ON_DEMAND_BASE.setting(), 0);
    }

    fn lower(&mut self, setting: &Setting, cap: i64) {
        let Some(rs) = self
            .values
            .iter_mut()
            .find(|v| v.setting.key == setting.key)
        else {
            return;
        };
        if !matches!(rs.source, Source::Default | Source::Manifest { .. }) {
            return;
        }
        if let Some(Val::Int(v)) = rs.value
            && v > cap
        {
            rs.value = Some(Val::Int(cap));
            rs.source = Source::Preview;
        }
    }

    /// The value of a setting here; its default when it is unset or does not apply
    /// to this unit (`None` for a setting that is off unless set).
    pub fn get<T: Type>(&self, key: Key<T>) -> T::Out<'_> {
        key.read(self.entry(key).and_then(|e| e.value.as_ref()))
    }

    /// A setting's resolved value and source, if it applies to this unit.
    pub fn entry<T: Type>(&self, key: Key<T>) -> Option<&ResolvedSetting> {
        self.entry_of(key.setting())
    }

    fn entry_of(&self, setting: &Setting) -> Option<&ResolvedSetting> {
        self.values.iter().find(|v| v.setting.key == setting.key)
    }

    /// Where to point a diagnostic about `key`: its own source if it is in a file,
    /// else `other`'s, else the manifest.
    fn place(
        &self,
        key: &'static Setting,
        other: &'static Setting,
        fallback: &str,
    ) -> (String, Span, String) {
        for k in [key, other] {
            if let Some(rs) = self.entry_of(k) {
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
                    Source::Default | Source::Preview => {}
                }
            }
        }
        (fallback.to_string(), Span::default(), key.key.to_string())
    }

    /// Of two settings, the one set in the most specific layer: the one to fix.
    fn later(&self, a: &'static Setting, b: &'static Setting) -> &'static Setting {
        let rank = |s: &Setting| match self.entry_of(s).map(|r| &r.source) {
            Some(Source::Cli) => 3,
            Some(Source::Stack { .. }) => 2,
            Some(Source::Manifest { .. }) => 1,
            _ => 0,
        };
        if rank(b) > rank(a) { b } else { a }
    }

    /// Where to point a diagnostic about the pair `a`, `b`: the later one's place,
    /// the other as its second choice.
    fn place_pair(
        &self,
        a: &'static Setting,
        b: &'static Setting,
        fallback: &str,
    ) -> (String, Span, String) {
        let k = self.later(a, b);
        let other = if k.key == a.key { b } else { a };
        self.place(k, other, fallback)
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
        if let Some(svc) = svc {
            self.check_service(svc, fallback, &mut out);
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

    /// The checks of a service's settings (none of them applies to the foundation).
    fn check_service(&self, svc: &Service, fallback: &str, out: &mut Vec<Diagnostic>) {
        let env = &self.env;
        for (lo, hi) in [
            (keys::MIN_CAPACITY, keys::MAX_CAPACITY),
            (keys::WORKER_MIN_CAPACITY, keys::WORKER_MAX_CAPACITY),
        ] {
            let (min, max) = (self.get(lo), self.get(hi));
            if min > max {
                let (lo, hi) = (lo.setting(), hi.setting());
                let (file, span, field) = self.place_pair(lo, hi, fallback);
                out.push(
                    Diagnostic::error(
                        "min-above-max",
                        &file,
                        span,
                        &field,
                        format!(
                            "{} ({min}) is greater than {} ({max}) in environment `{env}`",
                            lo.key, hi.key
                        ),
                    )
                    .with_help(format!(
                        "raise `{}` to at least {min} or lower `{}` to at most {max}",
                        hi.key, lo.key
                    )),
                );
            }
        }
        let (cpu, mem) = (self.get(keys::CPU), self.get(keys::MEMORY));
        if let Err(valid) = fargate_pair(cpu, mem) {
            let (file, span, field) =
                self.place_pair(keys::CPU.setting(), keys::MEMORY.setting(), fallback);
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
        let (t, i) = (
            self.get(keys::HEALTH_CHECK_TIMEOUT),
            self.get(keys::HEALTH_CHECK_INTERVAL),
        );
        if t >= i {
            let (file, span, field) = self.place_pair(
                keys::HEALTH_CHECK_TIMEOUT.setting(),
                keys::HEALTH_CHECK_INTERVAL.setting(),
                fallback,
            );
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
        let (healthy, most) = (
            self.get(keys::MIN_HEALTHY_PERCENT),
            self.get(keys::MAX_PERCENT),
        );
        // At a small task count ECS's rounding (maximumPercent down,
        // minimumHealthyPercent up) can leave no room either: checked at each
        // role's fewest tasks (at least 1: a service scaled to 0 scales out to
        // 1), the count where the room is smallest.
        let stuck_at = [
            (keys::MIN_CAPACITY, "scaling.min"),
            (keys::WORKER_MIN_CAPACITY, "worker.scaling.min"),
        ]
        .into_iter()
        .filter(|(k, _)| self.entry(*k).is_some())
        .map(|(k, path)| (self.get(k).max(1), path))
        .find(|(n, _)| !deployment_has_room(*n, healthy, most));
        // Both diagnostics point at the later of the two percentages.
        let (min, max) = (
            keys::MIN_HEALTHY_PERCENT.setting(),
            keys::MAX_PERCENT.setting(),
        );
        let (file, span, field) = self.place(self.later(min, max), max, fallback);
        if let (Some((n, path)), false) = (stuck_at, healthy == 100 && most == 100) {
            let room = (1..=1000)
                .find(|m| deployment_has_room(*m, healthy, most))
                .map(|m| format!(", or `{path}` at least {m}"))
                .unwrap_or_default();
            out.push(
                Diagnostic::error(
                    "deployment-stuck",
                    &file,
                    span,
                    &field,
                    format!(
                        "at {n} task(s) (`{path}` in environment `{env}`), minHealthyPercent {healthy} and maxPercent {most} leave ECS no room to replace a task: it may run {} and must keep {} healthy",
                        n * most / 100,
                        (n * healthy + 99) / 100
                    ),
                )
                .with_help(format!(
                    "raise maxPercent to 200, lower minHealthyPercent{room}"
                )),
            );
        }
        if healthy == 100 && most == 100 {
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
        if self.get(keys::SPOT_WEIGHT) == 0 && self.get(keys::ON_DEMAND_WEIGHT) == 0 {
            let (spot, od) = (
                keys::SPOT_WEIGHT.setting(),
                keys::ON_DEMAND_WEIGHT.setting(),
            );
            let (file, span, field) = self.place(self.later(spot, od), spot, fallback);
            out.push(
                Diagnostic::error("invalid-value", &file, span, &field, "spotWeight and onDemandWeight are both 0")
                    .with_help("give at least one capacity provider a weight (the seed uses spot 4, on-demand 1)"),
            );
        }
        let strategy = self.get(keys::DEPLOYMENT_STRATEGY);
        if svc.http.is_none() && strategy != "rolling" {
            let s = keys::DEPLOYMENT_STRATEGY.setting();
            let (file, span, field) = self.place(s, s, fallback);
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

    fn layer(source: Source, values: &[(Key<crate::settings::typed::Int>, i64)]) -> Layer {
        let mut l = Layer::default();
        for (k, v) in values {
            l.set(k.setting(), Val::Int(*v), source.clone());
        }
        l
    }

    fn preview(layers: &[&Layer]) -> Resolved {
        let mut r = Resolved::build(
            "api",
            "preview-7",
            None,
            None,
            layers,
            |s| s.applies != Applies::Foundation,
            |_| true,
        );
        r.reduce_for_preview();
        r
    }

    fn val_src(r: &Resolved, k: Key<crate::settings::typed::Int>) -> (i64, &'static str) {
        let e = r.entry(k).expect("applies");
        (r.get(k), e.source.layer())
    }

    #[test]
    fn a_preview_runs_at_reduced_capacity_unless_its_stack_file_says_otherwise() {
        let manifest = Source::Manifest {
            file: "services/api/pantstack.yaml".into(),
            span: Span::default(),
        };
        let stack = Source::Stack {
            file: "services/api/Pulumi.preview.yaml".into(),
            span: Span::default(),
        };
        // The defaults: at most 2 tasks, none reserved on On-Demand.
        let r = preview(&[]);
        assert_eq!(val_src(&r, keys::MIN_CAPACITY), (1, "default"));
        assert_eq!(val_src(&r, keys::MAX_CAPACITY), (2, "preview"));
        assert_eq!(val_src(&r, keys::WORKER_MAX_CAPACITY), (2, "preview"));
        assert_eq!(val_src(&r, keys::ON_DEMAND_BASE), (0, "preview"));
        assert_eq!(
            r.entry(keys::MAX_CAPACITY).map(|e| e.source.to_string()),
            Some("preview default".into())
        );
        // The manifest's capacity is lowered too; a lower one is kept, never raised.
        let m = layer(
            manifest.clone(),
            &[
                (keys::MIN_CAPACITY, 3),
                (keys::MAX_CAPACITY, 20),
                (keys::WORKER_MAX_CAPACITY, 1),
                (keys::WORKER_MIN_CAPACITY, 0),
            ],
        );
        let r = preview(&[&m]);
        assert_eq!(val_src(&r, keys::MIN_CAPACITY), (1, "preview"));
        assert_eq!(val_src(&r, keys::MAX_CAPACITY), (2, "preview"));
        assert_eq!(val_src(&r, keys::WORKER_MAX_CAPACITY), (1, "manifest"));
        assert_eq!(val_src(&r, keys::WORKER_MIN_CAPACITY), (0, "manifest"));
        // Pulumi.preview.yaml and --set win; the most is never below the fewest.
        let st = layer(
            stack,
            &[(keys::MIN_CAPACITY, 4), (keys::WORKER_MAX_CAPACITY, 6)],
        );
        let cli = layer(Source::Cli, &[(keys::ON_DEMAND_BASE, 2)]);
        let r = preview(&[&m, &st, &cli]);
        assert_eq!(val_src(&r, keys::MIN_CAPACITY), (4, "stack"));
        assert_eq!(val_src(&r, keys::MAX_CAPACITY), (4, "preview"));
        assert_eq!(val_src(&r, keys::WORKER_MAX_CAPACITY), (6, "stack"));
        assert_eq!(val_src(&r, keys::ON_DEMAND_BASE), (2, "cli"));
        let svc_check = r.check_with("services/api/pantstack.yaml", None);
        assert!(svc_check.is_empty(), "{svc_check:?}");
    }
}

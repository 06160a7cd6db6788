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
                    Source::Default => {}
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
        if self.get(keys::MIN_HEALTHY_PERCENT) == 100 && self.get(keys::MAX_PERCENT) == 100 {
            let (min, max) = (
                keys::MIN_HEALTHY_PERCENT.setting(),
                keys::MAX_PERCENT.setting(),
            );
            let (file, span, field) = self.place(self.later(min, max), max, fallback);
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
}
